"""Materials Project structures with property labels, from the CSV tables inside the ``matminer==0.2.9`` sdist.

matminer 0.2.9 (2018) still shipped its datasets as CSV files in the package (later versions download
them): four tables of Materials Project calculations (CC-BY 4.0), 7,116 rows over 6,317 MP ids.

==========================  =====  ===================================================================
table                       rows   what it labels (paper)
==========================  =====  ===================================================================
``elastic_tensor``          1,181  bulk and shear moduli (VRH), Poisson ratio, anisotropy (de Jong 2015)
``piezoelectric_tensor``      941  largest piezoelectric modulus (de Jong 2015)
``dielectric_constant``     1,056  band gap, refractive index, dielectric constants (Petousis 2017)
``flla_2015``               3,938  formation energy, energy above hull (Faber 2015)
==========================  =====  ===================================================================

The first three give the structure as a POSCAR string, ``flla_2015`` as a pymatgen dict written with
Python's ``repr`` (read with :func:`ast.literal_eval`, never ``eval``). ``piezoelectric_tensor`` and
``dielectric_constant`` carry pandas' unnamed index as an extra first column; rows are matched to the
header from the right. One item per MP id: the structure of the first table that has the id (in the
order above) and the properties of all of them.
"""

from __future__ import annotations

import ast
import csv
import json
import math
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from matconcept.encoders.datasets.core import BadEntry, BadEntryHandler, DatasetItem, DatasetSource
from matconcept.encoders.datasets.fetch import copy_members
from matconcept.encoders.sources import RawEntry

SOURCE_PREFIX = "mp"
"""Material ids are ``mp:mp-1234``, as the corpus builder names Materials Project records."""
VERSION = "0.2.9"
TABLES = ("elastic_tensor", "piezoelectric_tensor", "dielectric_constant", "flla_2015")
DATASET_DIR = ("matminer", "datasets")
CSV_FIELD_LIMIT = 1 << 28
"""Bytes; tensor and metadata cells run to ~100 kB, beyond the csv module's default 128 kB guard."""

PROPERTIES: dict[str, dict[str, str]] = {
    "elastic_tensor": {
        "K_VRH": "bulk_modulus_vrh_gpa",
        "G_VRH": "shear_modulus_vrh_gpa",
        "poisson_ratio": "poisson_ratio",
        "elastic_anisotropy": "elastic_anisotropy",
    },
    "piezoelectric_tensor": {"eij_max": "piezo_eij_max_c_m2"},
    "dielectric_constant": {
        "band_gap": "band_gap_ev",
        "n": "refractive_index",
        "poly_electronic": "dielectric_electronic",
        "poly_total": "dielectric_total",
    },
    "flla_2015": {
        "formation_energy_per_atom": "formation_energy_per_atom_ev",
        "e_above_hull": "e_above_hull_ev",
    },
}
"""Column → property name (unit in the name) kept from each table; the tensors themselves are not."""


def extract(archive: Path, folder: Path) -> int:
    """Keep the four CSV tables (flat in ``folder``) and the package's licence."""
    wanted = {f"{name}.csv" for name in TABLES} | {"LICENSE"}

    def keep(path: PurePosixPath) -> PurePosixPath | None:
        inner = path.parts[1:]  # below matminer-0.2.9/
        if len(inner) == 3 and inner[:2] == DATASET_DIR and inner[2] in wanted:
            return PurePosixPath(inner[2])
        if inner == ("LICENSE",):
            return PurePosixPath("LICENSE")
        return None

    return copy_members(archive, folder, keep)


def read_table(path: Path) -> Iterator[dict[str, str]]:
    """Rows of one table as ``column → text``; the ``# ref:`` line and pandas' extra index column skipped."""
    csv.field_size_limit(CSV_FIELD_LIMIT)
    with path.open(newline="", encoding="utf-8") as handle:
        lines = (line for line in handle if not line.startswith("#"))
        reader = csv.reader(lines)
        header = next(reader)
        for row in reader:
            extra = len(row) - len(header)
            yield dict(zip(header, row[extra:] if extra > 0 else row, strict=False))


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _structure_bytes(table: str, row: dict[str, str]) -> tuple[bytes, str]:
    """The row's structure as bytes and the file suffix saying its format."""
    if table == "flla_2015":
        return json.dumps(ast.literal_eval(row["structure"]), sort_keys=True).encode(), ".json"
    poscar = row.get("poscar", "")
    if not poscar.strip():
        raise ValueError("empty poscar column")
    return poscar.encode(), ".vasp"


def read(folder: Path, on_bad: BadEntryHandler) -> Iterator[DatasetItem]:
    """One item per MP id over the four tables (see the module docstring); bad rows go to ``on_bad``."""
    entries: dict[str, RawEntry] = {}
    labels: dict[str, dict[str, str]] = {}
    properties: dict[str, dict[str, float]] = {}
    for table in TABLES:
        path = folder / f"{table}.csv"
        if not path.is_file():
            on_bad(BadEntry(SOURCE_PREFIX, str(path), "table missing from the fetched source"))
            continue
        for index, row in enumerate(read_table(path)):
            mid = (row.get("material_id") or "").strip()
            name = f"{path}#{index}"
            if not mid.startswith("mp-"):
                on_bad(BadEntry(SOURCE_PREFIX, name, f"no Materials Project id (material_id={mid!r})"))
                continue
            if mid not in entries:
                try:
                    data, suffix = _structure_bytes(table, row)
                except (ValueError, SyntaxError, KeyError) as exc:
                    on_bad(BadEntry(SOURCE_PREFIX, f"{name} ({mid})", f"unreadable structure cell: {exc}"))
                    continue
                entries[mid] = RawEntry(f"{path}!{mid}{suffix}", mid, data, len(data))
                labels[mid] = {}
                properties[mid] = {}
            tables = labels[mid].get("matminer_tables")
            labels[mid]["matminer_tables"] = f"{tables},{table}" if tables else table
            if table != "flla_2015" and row.get("formula"):
                labels[mid].setdefault("mp_formula", row["formula"])
            sg = _number(row.get("space_group"))
            if sg is not None:
                labels[mid].setdefault("mp_spacegroup", str(int(sg)))
            for column, prop in PROPERTIES[table].items():
                value = _number(row.get(column))
                if value is not None:
                    properties[mid].setdefault(prop, value)
    for mid in sorted(entries, key=_mp_order):
        yield DatasetItem(SOURCE_PREFIX, mid, entries[mid], labels[mid], properties[mid])


def _mp_order(mid: str) -> tuple[int, str]:
    number = mid.removeprefix("mp-")
    return (int(number), mid) if number.isdigit() else (1 << 62, mid)


SOURCE = DatasetSource(
    name="matminer",
    package="matminer",
    version=VERSION,
    registry="pypi",
    archive=f"matminer-{VERSION}.tar.gz",
    licence="structures and labels: Materials Project, CC-BY-4.0; package: modified BSD (LBNL)",
    extract=extract,
    read=read,
)
