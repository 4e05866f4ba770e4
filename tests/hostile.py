"""A hostile input set built from a real COD CIF (BaTiO3, COD 2100862) by deterministic edits.

Used by the foundation tests (each bad-input reason) and by ingest/service tests (exact counts).
Each file is written to disk, so the code under test reads real files.
"""

from __future__ import annotations

from pathlib import Path

from tests.data import cod_cif

HUGE_BYTES = 6_000_000
"""Larger than ParseLimits' default 5 MB."""

BIG_CELL_REPEATS = (11, 11, 9)
"""BaTiO3 × 11×11×9 = 5,445 sites in P1: beyond 4 × the 1,000-site limit before reduction."""


def _batio3() -> str:
    return cod_cif("BaTiO3_cubic").read_text()


def _big_cell_cif() -> str:
    from pymatgen.core import Structure
    from pymatgen.io.cif import CifWriter

    s = Structure.from_str(_batio3(), fmt="cif") * BIG_CELL_REPEATS
    return str(CifWriter(s))


def hostile_files() -> dict[str, tuple[bytes, str]]:
    """file name → (content, expected reason). Partial occupancy is valid: reason ``""``."""
    text = _batio3()
    ti = "Ti 0.0 0.0 0.0 ?"
    ba = "Ba 0.5 0.5 0.5 ?"
    assert ti in text and ba in text
    no_atoms = text[: text.index("loop_\n_atom_site_label")]
    partial = (
        text.replace("_atom_site_U_iso_or_equiv\n", "_atom_site_U_iso_or_equiv\n_atom_site_occupancy\n")
        .replace(ba, "Ba 0.5 0.5 0.5 ? 0.5\nSr 0.5 0.5 0.5 ? 0.5")
        .replace(ti, ti + " 1.0")
    )
    partial = partial.replace("O 0.5 0.0 0.0 ?", "O 0.5 0.0 0.0 ? 1.0")
    return {
        "empty.cif": (b"", "empty"),
        "binary.cif": (bytes(range(256)) * 8, "not_cif"),
        "not_a_cif.cif": (b"This is a lab notebook entry, not a crystal structure.\n", "not_cif"),
        "truncated.cif": (text[: len(text) // 3].encode(), "no_atoms"),
        "no_atoms.cif": (no_atoms.encode(), "no_atoms"),
        "nan_coordinates.cif": (text.replace(ti, "Ti nan 0.0 0.0 ?").encode(), "non_finite"),
        "overlapping.cif": (text.replace(ti, ti + "\nTi2 0.02 0.0 0.0 ?").encode(), "overlapping_atoms"),
        "unknown_element.cif": (text.replace(ti, "Qq 0.0 0.0 0.0 ?").encode(), "unknown_element"),
        "huge.cif": ((text + ("#" + "x" * 99 + "\n") * (HUGE_BYTES // 100)).encode(), "too_large"),
        "big_cell.cif": (_big_cell_cif().encode(), "too_many_sites"),
        "partial_occupancy.cif": (partial.encode(), ""),
    }


def write_hostile_set(directory: Path) -> dict[str, str]:
    """Write the set under ``directory``; return file name → expected reason (``""`` = valid)."""
    directory.mkdir(parents=True, exist_ok=True)
    expected = {}
    for name, (content, reason) in hostile_files().items():
        (directory / name).write_bytes(content)
        expected[name] = reason
    return expected
