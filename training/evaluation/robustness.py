"""Robustness: does a representation move when the crystal does not change (or barely changes)?

A user's CIF of a material may be a supercell, list its sites in another order, or come from a
slightly different experiment (lattice a little strained, atoms a little displaced). A good search
key keeps such variants closer to the original than to any *different* material. For each sampled
structure we measure the distance to four variants and compare it with the distance from the
structure to its nearest other material in the evaluation set.

Variants are embedded as given (no primitive-cell reduction, which would hide supercells): this
measures the representation, not the parser.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from pydantic import BaseModel
from pymatgen.core import Structure

from matconcept.training.evaluation.metrics import pairwise_l2

SUPERCELL_SCALING = (2, 2, 1)
"""Supercell of each structure (4× the sites); any supercell describes the same crystal."""
MAX_STRAIN = 0.02
"""Largest strain per lattice direction (±2 %), drawn uniformly: thermal expansion or a different
refinement changes lattice parameters by this much."""
DISPLACEMENT = 0.05
"""Å; every site moves this far in a random direction (a typical atomic-position uncertainty)."""
PERTURBATIONS = ("supercell", "permuted", "strained", "displaced")


def perturbations(structure: Structure, rng: np.random.Generator) -> dict[str, Structure]:
    """The four variants of ``structure`` (see the module constants for their sizes)."""
    supercell = structure.copy()
    supercell.make_supercell(SUPERCELL_SCALING)
    order = rng.permutation(len(structure))
    permuted = Structure(structure.lattice, [structure[i].species for i in order], structure.frac_coords[order])
    strained = structure.copy()
    strained.apply_strain(rng.uniform(-MAX_STRAIN, MAX_STRAIN, size=3).tolist())
    direction = rng.normal(size=(len(structure), 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    displaced = Structure(
        structure.lattice,
        structure.species,
        structure.cart_coords + DISPLACEMENT * direction,
        coords_are_cartesian=True,
    )
    return {"supercell": supercell, "permuted": permuted, "strained": strained, "displaced": displaced}


class PerturbationStats(BaseModel):
    """Distances from originals to one kind of variant, in the representation's own units.

    ``ratio_median``: median over structures of d(structure, variant) / d(structure, nearest other
    material); ``closer_than_nearest``: fraction of structures whose variant is closer to them than
    any other material is (1 = the variant would be found first in a search).
    """

    median_distance: float
    ratio_median: float
    closer_than_nearest: float


class RobustnessResult(BaseModel):
    """Per-perturbation statistics for one representation, plus the reference distance."""

    n_structures: int
    median_nearest_other: float
    perturbations: dict[str, PerturbationStats]


def _pad_to(a: np.ndarray, width: int) -> np.ndarray:
    if a.shape[1] >= width:
        return a
    return np.pad(a, ((0, 0), (0, width - a.shape[1])))


def robustness(
    featurize: Callable[[Sequence[Structure]], np.ndarray],
    originals: np.ndarray,
    sample: Sequence[int],
    variants: dict[str, list[Structure]],
    nearest_other: np.ndarray,
) -> RobustnessResult:
    """Compare each sampled structure with its variants under one representation.

    Args:
        featurize: Structures → vectors (n, d) of this representation.
        originals: Vectors of the whole evaluation set (N, d).
        sample: Indices into ``originals`` of the structures that were perturbed.
        variants: Perturbation name → the variant of each sampled structure (same order as ``sample``).
        nearest_other: (N,) distance from each evaluation item to its nearest other item.

    Vectors of different widths (eigenvalue spectra of cells of different sizes) are zero-padded to
    the wider one, the descriptors' own convention.
    """
    sample = np.asarray(sample, dtype=int)
    ref = nearest_other[sample]
    stats = {}
    for name, structures in variants.items():
        vecs = featurize(structures)
        width = max(vecs.shape[1], originals.shape[1])
        own = _pad_to(originals[sample], width)
        d = np.sqrt(((_pad_to(vecs, width) - own) ** 2).sum(axis=1))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(ref > 0, d / ref, np.where(d > 0, np.inf, 0.0))
        stats[name] = PerturbationStats(
            median_distance=float(np.median(d)),
            ratio_median=float(np.median(ratio)),
            closer_than_nearest=float((d < ref).mean()),
        )
    return RobustnessResult(n_structures=len(sample), median_nearest_other=float(np.median(ref)), perturbations=stats)


def nearest_other_by_formula(vectors: np.ndarray, formulas: Sequence[str]) -> np.ndarray:
    """Distance from each item to its nearest item of a *different* reduced formula (a different material)."""
    dist = pairwise_l2(vectors)
    f = np.asarray(formulas, dtype=object)
    dist[f[:, None] == f[None, :]] = np.inf
    return dist.min(axis=1)
