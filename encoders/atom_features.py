"""CGCNN-style 92-d atom features built from pymatgen's element data (Z = 1..100).

Xie & Grossman (PRL 120, 145301, 2018), table S2, describe each element by one-hot bins of nine
properties. The published ``atom_init.json`` is a frozen copy of that table; we rebuild the same
kind of table from pymatgen so that it covers every element pymatgen knows up to Fm and so that the
binning is visible and testable. Segment sizes (sum 92):

========================  =====  =================================================
property                  bins   binning
========================  =====  =================================================
group                     19     1..18, and 19 for the f block (lanthanides/actinides)
period                    7      1..7
electronegativity         10     linear, 0.5–4.0 (Pauling)
covalent radius           10     linear, 0.25–2.5 Å
valence electrons         12     1..12
first ionisation energy   10     log-spaced over the table's range (eV)
electron affinity         10     linear, −3.0–3.7 eV
block                     4      s, p, d, f
atomic (molar) volume     10     log-spaced over the table's range (cm³/mol)
========================  =====  =================================================

A property pymatgen lacks for an element (e.g. the electronegativity of He) leaves that segment
all zero, the CGCNN convention for "unknown".
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
from pymatgen.core import Composition, Element, Structure

N_ATOM_FEATURES = 92
MAX_Z = 100

GROUP_BINS = 19
PERIOD_BINS = 7
EN_RANGE = (0.5, 4.0)
COVALENT_RADIUS_RANGE = (0.25, 2.5)  # Å
VALENCE_BINS = 12
EA_RANGE = (-3.0, 3.7)  # eV
CONTINUOUS_BINS = 10
BLOCKS = ("s", "p", "d", "f")


def _bin_linear(value: float | None, lo: float, hi: float, n: int) -> int | None:
    if value is None or not np.isfinite(value):
        return None
    return int(np.clip((value - lo) / (hi - lo) * n, 0, n - 1))


def _valence_electrons(element: Element) -> int:
    """Outer-shell electrons as CGCNN counts them: s+p for main groups, s+d for transition metals."""
    group = element.group
    if element.block == "f":
        return 3
    if element.block in ("s", "d"):
        return group
    return group - 10  # p block: groups 13..18 → 3..8


def _raw_properties() -> list[dict[str, float | int | str | None]]:
    from pymatgen.analysis.molecule_structure_comparator import CovalentRadius

    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen warns about missing data, which we handle
        for z in range(1, MAX_Z + 1):
            el = Element.from_Z(z)
            ie = el.ionization_energies[0] if el.ionization_energies else None
            ea = getattr(el, "electron_affinity", None)
            volume = el.molar_volume
            rows.append(
                {
                    "group": 19 if el.block == "f" else el.group,
                    "period": el.row,
                    "en": el.X,
                    "radius": CovalentRadius.radius.get(el.symbol),
                    "valence": _valence_electrons(el),
                    "ie": float(ie) if ie else None,
                    "ea": float(ea) if ea is not None else None,
                    "block": el.block,
                    "volume": float(volume) if volume else None,
                }
            )
    return rows


@functools.cache
def atom_feature_table() -> np.ndarray:
    """The (101, 92) float32 table; row Z holds element Z's features, row 0 is all zero."""
    rows = _raw_properties()
    ie_log = np.log([r["ie"] for r in rows if r["ie"]])
    vol_log = np.log([r["volume"] for r in rows if r["volume"]])
    table = np.zeros((MAX_Z + 1, N_ATOM_FEATURES), dtype=np.float32)
    for z, r in enumerate(rows, start=1):
        offset = 0
        hits: list[int | None] = [
            int(r["group"]) - 1,
            int(r["period"]) - 1,
        ]
        sizes = [GROUP_BINS, PERIOD_BINS]
        hits.append(_bin_linear(r["en"], *EN_RANGE, CONTINUOUS_BINS))
        hits.append(_bin_linear(r["radius"], *COVALENT_RADIUS_RANGE, CONTINUOUS_BINS))
        hits.append(int(np.clip(int(r["valence"]), 1, VALENCE_BINS)) - 1)
        hits.append(_bin_linear(np.log(r["ie"]) if r["ie"] else None, ie_log.min(), ie_log.max(), CONTINUOUS_BINS))
        hits.append(_bin_linear(r["ea"], *EA_RANGE, CONTINUOUS_BINS))
        hits.append(BLOCKS.index(str(r["block"])))
        hits.append(
            _bin_linear(np.log(r["volume"]) if r["volume"] else None, vol_log.min(), vol_log.max(), CONTINUOUS_BINS)
        )
        sizes += [CONTINUOUS_BINS, CONTINUOUS_BINS, VALENCE_BINS, CONTINUOUS_BINS, CONTINUOUS_BINS]
        sizes += [len(BLOCKS), CONTINUOUS_BINS]
        for hit, size in zip(hits, sizes, strict=True):
            if hit is not None:
                table[z, offset + hit] = 1.0
            offset += size
        assert offset == N_ATOM_FEATURES
    table.setflags(write=False)
    return table


def site_composition_matrix(structure: Structure) -> np.ndarray:
    """(n_sites, 101) occupancies: entry [i, Z] is the occupancy of element Z on site i.

    Ordered sites have a single 1.0; a disordered site such as Fe0.5Ni0.5 has two halves, and
    vacancies simply leave the row summing to less than 1.
    """
    comp = np.zeros((len(structure), MAX_Z + 1), dtype=np.float32)
    for i, site in enumerate(structure):
        species: Composition = site.species
        for sp, occ in species.items():
            comp[i, sp.Z] += occ
    return comp


def atom_features(structure: Structure) -> np.ndarray:
    """(n_sites, 92) float32 features, occupancy-weighted for disordered sites."""
    return site_composition_matrix(structure) @ atom_feature_table()
