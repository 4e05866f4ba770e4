"""Structures in two Debian packages: pymatgen's test files and Avogadro's crystal library.

* ``pymatgen-test-files`` (2022.11.7, MIT; its COD CIFs CC0): the fixtures of pymatgen's test suite, of
  which we keep the CIFs and the JSON files. A JSON file may hold one structure or many (lists of
  computed entries, phase diagrams, band structures carrying their structure): every pymatgen
  ``Structure`` dict in it is found by walking the document, and repeats (the same structure in several
  fixtures) are kept once, by the sha256 of their canonical JSON.
* ``libavogadro-data`` (1.97.0, BSD-3-Clause; COD entries public domain / CC0, IZA frameworks public
  domain): ``avogadro2/crystals/<category>/*.cif``, 510 CIFs in 22 categories (elements, oxides,
  halides, zeolites...). A CIF carrying ``_cod_database_code`` is stored under its COD id (``cod:9008680``,
  the rule ingest applies to any COD file, so the same entry from two packages is one material); the
  zeolites are IZA frameworks (``avogadro:zeolites-ABW``), the rest named by category and file.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from matconcept.encoders.datasets.core import BadEntry, BadEntryHandler, DatasetItem, DatasetSource
from matconcept.encoders.datasets.fetch import copy_deb_members
from matconcept.encoders.sources import COD_CODE_SCAN_BYTES, RawEntry

PMG_TEST_PREFIX = "pmgtest"
PMG_TEST_VERSION = "2022.11.7-3"
PMG_TEST_DIR = ("usr", "share", "doc", "pymatgen-test-files", "examples", "test_files")
PMG_TEST_SUFFIXES = (".json", ".json.gz", ".cif")
MAX_JSON_BYTES = 25_000_000
"""The largest fixture kept (a 20 MB band structure holds one structure; larger ones hold none)."""
MAX_STRUCTURES_PER_FILE = 5000

AVOGADRO_PREFIX = "avogadro"
AVOGADRO_VERSION = "1.97.0-3"
AVOGADRO_DIR = ("usr", "share", "avogadro2", "crystals")
_COD_RE = re.compile(rb"^\s*_cod_database_code\s+['\"]?(\d+)", re.MULTILINE)
_SAFE_ID_RE = re.compile(r"[^A-Za-z0-9_.+-]+")


def _safe_id(text: str) -> str:
    """A path turned into an id: separators as ``.``, anything unusual as ``_``."""
    return _SAFE_ID_RE.sub("_", text.replace("/", "."))


# ------------------------------------------------------------------------------------- pymatgen-test-files


def extract_pymatgen_tests(archive: Path, folder: Path) -> int:
    """Keep the CIF and JSON fixtures (their folders under ``test_files/`` kept) and the copyright file."""

    def keep(path: PurePosixPath) -> PurePosixPath | None:
        parts = path.parts
        if parts[: len(PMG_TEST_DIR)] == PMG_TEST_DIR and path.name.lower().endswith(PMG_TEST_SUFFIXES):
            return PurePosixPath(*parts[len(PMG_TEST_DIR) :])
        if parts == ("usr", "share", "doc", "pymatgen-test-files", "copyright"):
            return PurePosixPath("copyright")
        return None

    return copy_deb_members(archive, folder, keep, max_bytes=MAX_JSON_BYTES)


def _is_structure(node: dict) -> bool:
    lattice = node.get("lattice")
    return isinstance(lattice, dict) and "matrix" in lattice and isinstance(node.get("sites"), list)


def find_structures(document: object, limit: int = MAX_STRUCTURES_PER_FILE) -> list[dict]:
    """Every pymatgen ``Structure`` dict in a JSON document (depth first, document order), not looking
    inside a structure (its sites hold no structures). ``Molecule`` dicts have no lattice and are skipped."""
    found: list[dict] = []
    stack = [document]
    while stack and len(found) < limit:
        node = stack.pop()
        if isinstance(node, dict):
            if _is_structure(node):
                found.append(node)
                continue
            stack.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))
    return found


def read_pymatgen_tests(folder: Path, on_bad: BadEntryHandler) -> Iterator[DatasetItem]:
    """One item per distinct structure: CIFs as files, structures found in JSON as canonical JSON."""
    seen: set[str] = set()
    ids: set[str] = set()

    def unique(source_id: str) -> str:  # two file names may map to one id ("(PO4)" and "_PO4_")
        out, n = source_id, 1
        while out in ids:
            n += 1
            out = f"{source_id}-v{n}"
        ids.add(out)
        return out

    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name.lower().endswith(PMG_TEST_SUFFIXES)):
        rel = path.relative_to(folder).as_posix()
        data = path.read_bytes()
        if path.name.lower().endswith(".cif"):
            digest = hashlib.sha256(data).hexdigest()
            if digest not in seen:
                seen.add(digest)
                stem = rel.removesuffix(path.suffix)
                source_id = unique(_safe_id(stem))
                yield DatasetItem(PMG_TEST_PREFIX, source_id, RawEntry(str(path), path.stem, data, len(data)))
            continue
        try:
            document = json.loads(gzip.decompress(data) if path.name.endswith(".gz") else data)
        except (ValueError, OSError, EOFError) as exc:
            on_bad(BadEntry(PMG_TEST_PREFIX, str(path), f"not JSON: {exc}"))
            continue
        structures = find_structures(document)
        stem = _safe_id(re.sub(r"\.json(\.gz)?$", "", rel))
        for index, structure in enumerate(structures):
            text = json.dumps(structure, sort_keys=True).encode()
            digest = hashlib.sha256(text).hexdigest()
            if digest in seen:
                continue
            seen.add(digest)
            source_id = unique(stem if len(structures) == 1 else f"{stem}-{index}")
            yield DatasetItem(PMG_TEST_PREFIX, source_id, RawEntry(f"{path}#{index}.json", source_id, text, len(text)))


# ----------------------------------------------------------------------------------------- libavogadro-data


def extract_avogadro(archive: Path, folder: Path) -> int:
    """Keep ``crystals/<category>/*.cif`` as ``<category>/*.cif`` and the copyright file."""

    def keep(path: PurePosixPath) -> PurePosixPath | None:
        parts = path.parts
        if parts[: len(AVOGADRO_DIR)] == AVOGADRO_DIR and len(parts) == len(AVOGADRO_DIR) + 2:
            return PurePosixPath(*parts[-2:]) if path.suffix.lower() == ".cif" else None
        if parts == ("usr", "share", "doc", "libavogadro-data", "copyright"):
            return PurePosixPath("copyright")
        return None

    return copy_deb_members(archive, folder, keep)


def read_avogadro(folder: Path, on_bad: BadEntryHandler) -> Iterator[DatasetItem]:
    """One item per CIF: ``cod:<id>`` when it names its COD entry, else ``avogadro:<category>-<name>``.

    Seven COD codes appear twice: the same file in two categories is kept once (both categories in its
    label); a different file reusing a code (polytypes such as SiC-2H and SiC-3C copied from one entry)
    is kept under its ``avogadro:`` name instead.
    """
    items: dict[str, DatasetItem] = {}
    for item in _avogadro_files(folder, on_bad):
        first = items.get(item.material_id)
        if first is None:
            items[item.material_id] = item
        elif first.entry.data == item.entry.data:
            if item.labels["category"] not in first.labels["category"].split(","):
                first.labels["category"] += f",{item.labels['category']}"
        else:
            renamed = _safe_id(f"{item.labels['category']}-{item.labels['name']}")
            items[f"{AVOGADRO_PREFIX}:{renamed}"] = DatasetItem(AVOGADRO_PREFIX, renamed, item.entry, item.labels)
    yield from items.values()


def _avogadro_files(folder: Path, on_bad: BadEntryHandler) -> Iterator[DatasetItem]:
    for path in sorted(folder.glob("*/*.cif")):
        data = path.read_bytes()
        if not data.strip():
            on_bad(BadEntry(AVOGADRO_PREFIX, str(path), "empty file"))
            continue
        category = path.parent.name
        labels = {"category": category, "name": path.stem}
        match = _COD_RE.search(data[:COD_CODE_SCAN_BYTES])
        if match:
            source, source_id = "cod", match.group(1).decode()
        else:
            source, source_id = AVOGADRO_PREFIX, _safe_id(f"{category}-{path.stem}")
        if category == "zeolites":
            labels["iza_code"] = path.stem
        yield DatasetItem(source, source_id, RawEntry(str(path), path.stem, data, len(data)), labels)


PYMATGEN_TEST_FILES = DatasetSource(
    name="pymatgen-test-files",
    package="pymatgen-test-files",
    version=PMG_TEST_VERSION,
    registry="debian",
    archive=f"pymatgen-test-files_{PMG_TEST_VERSION}_all.deb",
    licence="MIT (pymatgen); its COD CIFs CC0",
    extract=extract_pymatgen_tests,
    read=read_pymatgen_tests,
)

AVOGADRO = DatasetSource(
    name="libavogadro-data",
    package="libavogadro-data",
    version=AVOGADRO_VERSION,
    registry="debian",
    archive=f"libavogadro-data_{AVOGADRO_VERSION}_all.deb",
    licence="BSD-3-Clause (Avogadro); COD entries public domain (CC0), IZA frameworks public domain",
    extract=extract_avogadro,
    read=read_avogadro,
)
