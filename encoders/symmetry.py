"""Crystal systems from space-group numbers: the one place the International Tables' ranges live.

Ingest stores a material's crystal system in its payload (``MaterialPayload.crystal_system``),
evaluation labels its items with it, and the map's figures and web page colour by it; all of them
call :func:`crystal_system`, so the ranges below are written once. Pure Python, no pymatgen: the
service's gateway imports it to describe the map's colour fields.
"""

from __future__ import annotations

from numbers import Integral

from pydantic import BaseModel

SPACEGROUP_RANGE = (1, 230)
"""International space-group numbers, first and last."""


class CrystalSystem(BaseModel):
    """One crystal system and the range of space-group numbers that belong to it."""

    name: str
    first: int
    last: int


CRYSTAL_SYSTEM_RANGES: tuple[CrystalSystem, ...] = (
    CrystalSystem(name="triclinic", first=1, last=2),
    CrystalSystem(name="monoclinic", first=3, last=15),
    CrystalSystem(name="orthorhombic", first=16, last=74),
    CrystalSystem(name="tetragonal", first=75, last=142),
    CrystalSystem(name="trigonal", first=143, last=167),
    CrystalSystem(name="hexagonal", first=168, last=194),
    CrystalSystem(name="cubic", first=195, last=230),
)
"""The seven crystal systems in order of increasing symmetry, with their space-group ranges."""
CRYSTAL_SYSTEMS: tuple[str, ...] = tuple(s.name for s in CRYSTAL_SYSTEM_RANGES)
"""Crystal-system names in order of increasing symmetry (the order legends list them in)."""


def crystal_system(spacegroup_number: int | None) -> str | None:
    """The crystal system of a space group (1-230), or None where the number is unknown.

    Accepts numpy integers too (map columns). Raises:
        ValueError: a number outside 1..230, or one that is not an integer.
    """
    if spacegroup_number is None:
        return None
    if isinstance(spacegroup_number, bool) or not isinstance(spacegroup_number, Integral):
        raise ValueError(f"space-group number {spacegroup_number!r} is not an integer")
    number = int(spacegroup_number)
    first, last = SPACEGROUP_RANGE
    if not first <= number <= last:
        raise ValueError(f"space-group number {spacegroup_number!r} is outside {first}..{last}")
    return next(s.name for s in CRYSTAL_SYSTEM_RANGES if number <= s.last)
