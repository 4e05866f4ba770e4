"""Is a downloaded structure file the structure that was stored? (pymatgen's StructureMatcher)."""

from __future__ import annotations

import json
import warnings

from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure

MATCHER = StructureMatcher(scale=False, attempt_supercell=False)
"""pymatgen's default tolerances, no volume scaling: a wrongly sized cell must not match."""


def parse_file(text: str, fmt: str) -> Structure:
    """A structure file's text (cif, json, poscar) as pymatgen reads it."""
    if fmt == "json":
        return Structure.from_dict(json.loads(text))
    if fmt == "poscar":
        return Structure.from_str(text, fmt="poscar")
    from pymatgen.io.cif import CifParser

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CifParser.from_str(text).parse_structures(primitive=False)[0]


def matches(text: str, fmt: str, stored: Structure) -> bool:
    """The file parses to a structure StructureMatcher finds equal to ``stored`` (species, occupancies, sites)."""
    return MATCHER.fit(parse_file(text, fmt), stored)
