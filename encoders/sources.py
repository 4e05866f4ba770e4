"""Walk user inputs — files, directories, ``.tar``/``.tar.gz``/``.zip`` archives — into raw entries.

One generator shared by ``matconcept embed`` and ``matconcept ingest``: it yields each candidate
structure file as bytes with a name that says where it came from (``archive.tar.gz!cif/1/00/00/1000000.cif``),
so that a bad entry can be reported precisely and skipped without stopping the walk. Entries larger
than the byte limit are yielded as ``oversize`` (no content read) so the caller reports them.
"""

from __future__ import annotations

import logging
import os
import re
import tarfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

STRUCTURE_SUFFIXES = (".cif", ".mcif", ".json", ".vasp")
STRUCTURE_NAMES = ("poscar", "contcar")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip")
COD_CODE_SCAN_BYTES = 1 << 20
"""The COD id tag sits near the top of a CIF; scanning 1 MB bounds the cost on huge files."""
_COD_CODE_RE = re.compile(rb"^\s*_cod_database_code\s+['\"]?([A-Za-z0-9_.-]+)", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class RawEntry:
    """One candidate structure file.

    Attributes:
        name: Where it came from: a path, or ``archive!member`` for archive members.
        stem: The file name without directories and suffix (a COD id for a COD mirror).
        data: The file's bytes (``None`` when ``size`` exceeded the limit and nothing was read).
        size: Size in bytes.
    """

    name: str
    stem: str
    data: bytes | None
    size: int


def entry_source_id(entry: RawEntry, source: str) -> str:
    """The id a file gets within ``source``: the file name without suffix, except for ``cod``.

    For ``source="cod"`` the ``_cod_database_code`` of the CIF is the id when present (a COD mirror
    names files ``cif/1/00/00/1000000.cif`` anyway); other collections are identified by file name,
    because edited or derived CIFs often keep the code of the COD entry they started from. Read from
    the raw bytes (before parsing) so a re-run can skip unchanged entries without parsing them.
    """
    if source == "cod" and entry.data:
        match = _COD_CODE_RE.search(entry.data[:COD_CODE_SCAN_BYTES])
        if match:
            return match.group(1).decode("ascii")
    return entry.stem


def _stem(name: str) -> str:
    base = name.rsplit("/", 1)[-1].rsplit("!", 1)[-1]
    for suffix in (".json.gz", *STRUCTURE_SUFFIXES):
        if base.lower().endswith(suffix):
            return base[: -len(suffix)]
    return base


def is_structure_name(name: str, suffixes: tuple[str, ...] = STRUCTURE_SUFFIXES) -> bool:
    lower = name.lower().rsplit("/", 1)[-1]
    return lower.endswith(suffixes) or lower.startswith(STRUCTURE_NAMES)


def is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def _read_file(path: Path, max_bytes: int) -> RawEntry:
    size = path.stat().st_size
    data = path.read_bytes() if size <= max_bytes else None
    return RawEntry(str(path), _stem(path.name), data, size)


def _iter_tar(path: Path, max_bytes: int, suffixes: tuple[str, ...]) -> Iterator[RawEntry]:
    with tarfile.open(path, mode="r:*") as tar:
        for member in tar:
            if not member.isfile() or not is_structure_name(member.name, suffixes):
                continue
            name = f"{path}!{member.name}"
            if member.size > max_bytes:
                yield RawEntry(name, _stem(member.name), None, member.size)
                continue
            handle = tar.extractfile(member)
            data = handle.read() if handle else b""
            yield RawEntry(name, _stem(member.name), data, member.size)


def _iter_zip(path: Path, max_bytes: int, suffixes: tuple[str, ...]) -> Iterator[RawEntry]:
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.is_dir() or not is_structure_name(info.filename, suffixes):
                continue
            name = f"{path}!{info.filename}"
            if info.file_size > max_bytes:
                yield RawEntry(name, _stem(info.filename), None, info.file_size)
                continue
            yield RawEntry(name, _stem(info.filename), archive.read(info), info.file_size)


def iter_entries(
    paths: Iterable[str | Path],
    max_bytes: int = 5_000_000,
    suffixes: tuple[str, ...] = STRUCTURE_SUFFIXES,
) -> Iterator[RawEntry]:
    """Yield every structure file under ``paths`` in a stable (sorted) order.

    A path given explicitly is always read, whatever its suffix; directories are walked
    recursively for files with ``suffixes`` and for archives; archives are read member by member.
    A missing path or unreadable archive is yielded as an entry with ``data=None, size=-1`` so the
    caller reports it and carries on.
    """
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for fname in sorted(files):
                    child = Path(root) / fname
                    if is_archive(fname):
                        yield from _iter_archive(child, max_bytes, suffixes)
                    elif is_structure_name(fname, suffixes):
                        yield _read_file(child, max_bytes)
        elif path.is_file():
            if is_archive(path.name):
                yield from _iter_archive(path, max_bytes, suffixes)
            else:
                yield _read_file(path, max_bytes)
        else:
            yield RawEntry(str(path), _stem(path.name), None, -1)


def _iter_archive(path: Path, max_bytes: int, suffixes: tuple[str, ...]) -> Iterator[RawEntry]:
    try:
        if path.name.lower().endswith(".zip"):
            yield from _iter_zip(path, max_bytes, suffixes)
        else:
            yield from _iter_tar(path, max_bytes, suffixes)
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
        logger.warning("%s: unreadable archive (%s)", path, exc)
        yield RawEntry(str(path), _stem(path.name), None, -1)
