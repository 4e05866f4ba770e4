"""Preferred orientation: March-Dollase factors along the conventional cell's low-index axes.

A flat-plate powder mount of plate- or needle-like crystallites diffracts more from the lattice
planes the crystallites lie along: intensities change by factors of up to three within one
pattern. That is the error that stays between a measured pattern and the right phase once strain,
zero shift, width and background are fitted, and it is as large as the intensity differences that
tell isostructural compounds apart (ZrC from HfC, one half-Heusler from another). Modelling it
is what a Rietveld or search-match program does; here it is March-Dollase,

.. math:: P(\\alpha) = \\big(r^2\\cos^2\\alpha + \\sin^2\\alpha / r\\big)^{-3/2},

with α the angle between a reflection's normal and the preferred axis, r < 1 for plates and r > 1
for needles.

Which axes. A measured-like pattern (:mod:`~matconcept.encoders.xrd.synthetic`) is textured along a
low-index reciprocal direction of the *conventional standard cell* (spglib's), the setting
crystallographers name textures in ("c-axis plates"), whatever cell the structure is given in. The
search-match fit (:func:`matconcept.encoders.xrd.match.texture_fit`) cannot know the axis and does not
look for symmetry: spglib spends ~40 ms on an fcc primitive cell, longer than the whole query. It
tries the normals of the candidate's lowest-order reflections instead (:func:`low_index_axes`): one
per distinct d-spacing, largest d first, parallel ones once. Plates and needles form along
low-index lattice planes, which are the large-d ones; symmetry-equivalent normals share a d, so one
of each family is tried, and the conventional (001), (100), (110) and (111) are among the first
families of every lattice (fcc: 111, 200, 220; hexagonal: 100, 002, 101, 110).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from matconcept.encoders.xrd.simulate import Reflections, XRDSimulator

if TYPE_CHECKING:
    from pymatgen.core import Structure

TEXTURE_AXES: tuple[tuple[int, int, int], ...] = ((0, 0, 1), (1, 0, 0), (0, 1, 0), (1, 1, 0), (1, 1, 1))
"""The usual plate and needle normals, as Miller indices of the conventional standard cell (what
measured-like patterns are textured along)."""
FIT_AXES = 8
"""Axes the search-match texture fit tries: the normals of this many lowest-order reflection families."""
SYMPREC = 0.1
"""Å; spglib's tolerance for finding the conventional cell (the ingest's own)."""


class OrientedReflections(NamedTuple):
    """A crystal's reflections with the Cartesian directions of their normals and of the texture axes."""

    reflections: Reflections
    normals: np.ndarray
    """(P, 3) unit vectors along each reflection's reciprocal-lattice vector (Cartesian)."""
    axes: np.ndarray
    """(A, 3) unit vectors of the axes to try (Cartesian, :func:`low_index_axes`)."""


def conventional_axes(structure: Structure, axes: Sequence[Sequence[int]] = TEXTURE_AXES) -> np.ndarray:
    """Cartesian unit vectors (A, 3) along the reciprocal directions ``axes`` of the conventional
    standard cell, in the structure's own orientation (the structure's cell when spglib finds no
    symmetry dataset)."""
    import spglib

    lattice = np.asarray(structure.lattice.matrix, dtype=np.float64)  # rows a, b, c
    codes: dict[str, int] = {}
    numbers = [codes.setdefault(site.species_string, len(codes) + 1) for site in structure]
    dataset = spglib.get_symmetry_dataset((lattice, structure.frac_coords, numbers), symprec=SYMPREC)
    columns = lattice.T
    if dataset is not None:
        # spglib: (a_s b_s c_s) = (a b c) P⁻¹, the conventional basis in the input's orientation.
        columns = columns @ np.linalg.inv(np.asarray(dataset.transformation_matrix, dtype=np.float64))
    reciprocal_rows = np.linalg.inv(columns)  # row j: b*_j, with a_i · b*_j = δ_ij
    directions = np.asarray(axes, dtype=np.float64) @ reciprocal_rows
    return directions / np.linalg.norm(directions, axis=1, keepdims=True)


def reflection_normals(hkl: np.ndarray, lattice_matrix: np.ndarray) -> np.ndarray:
    """Unit vectors (P, 3) along the reciprocal-lattice vectors of Miller indices ``hkl`` of the cell
    whose rows are ``lattice_matrix``."""
    g = np.asarray(hkl, dtype=np.float64) @ np.linalg.inv(np.asarray(lattice_matrix, dtype=np.float64)).T
    return g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-300)


def low_index_axes(d: np.ndarray, normals: np.ndarray, n_axes: int = FIT_AXES, tolerance: float = 1e-4) -> np.ndarray:
    """Unit axes (≤ n_axes, 3): one reflection normal per distinct d-spacing, largest d first,
    skipping directions already taken (a higher order of the same planes).

    Args:
        d: (P,) d-spacings of the reflections.
        normals: (P, 3) their unit normals.
        n_axes: Most axes returned.
        tolerance: Relative d difference within which reflections count as one family.
    """
    order = np.argsort(-np.asarray(d), kind="stable")
    axes: list[np.ndarray] = []
    last = math.inf
    for index in order:
        if len(axes) >= n_axes:
            break
        if d[index] > last * (1.0 - tolerance):  # the same family as the one just taken or skipped
            continue
        last = float(d[index])
        normal = normals[index]
        if all(abs(float(normal @ axis)) < PARALLEL_COSINE for axis in axes):
            axes.append(normal)
    return np.asarray(axes, dtype=np.float64).reshape(-1, 3)


PARALLEL_COSINE = 0.9999
"""Normals closer than this to an axis already taken are that axis (its higher orders)."""


def oriented_reflections(structure: Structure, simulator: XRDSimulator) -> OrientedReflections:
    """``simulator``'s reflections of ``structure`` with what a texture fit needs (no symmetry search).

    Raises:
        ValueError: A species has no scattering coefficients.
    """
    reflections = simulator.reflections(structure)
    normals = reflection_normals(reflections.hkl, structure.lattice.matrix)
    return OrientedReflections(reflections, normals, low_index_axes(reflections.d, normals))


def march_dollase_factors(normals: np.ndarray, axes: np.ndarray, r: np.ndarray | Sequence[float]) -> np.ndarray:
    """March-Dollase factors (A, R, P) of reflections with unit ``normals`` (P, 3), for each unit axis
    (A, 3) and March-Dollase parameter ``r`` (R,) (1: no texture)."""
    cos2 = np.clip((np.asarray(axes) @ np.asarray(normals).T) ** 2, 0.0, 1.0)[:, None, :]  # (A, 1, P)
    r = np.asarray(r, dtype=np.float64)[None, :, None]
    return (r * r * cos2 + (1.0 - cos2) / r) ** -1.5
