"""Peak lists: a crystal's strongest reflections as (d-spacing, intensity), the unit phase matching works on.

A stored material is compared with a measured pattern through its peaks, not its 5000-bin histogram:
d-spacings do not depend on the wavelength, an isotropic strain scales them all by one factor, and
64 numbers per material are cheap to keep beside its vectors (``peaks_d`` / ``peaks_i`` in a store
payload) so a search re-ranks candidates without simulating them again.

:func:`peak_list` simulates a structure over a wider 2θ range than the model's grid (5-130° Cu Kα,
d ≈ 0.85-17.7 Å) so that a peak strained in from outside 10-110° is not lost, merges reflections of
equal d (symmetry equivalents), and keeps the strongest :data:`MAX_PEAKS`. :class:`PeakTable` packs
many lists into (C, P) arrays for the vectorised matcher (:mod:`.match`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from matconcept.encoders.xrd.settings import CU_KA, XRDSettings
from matconcept.encoders.xrd.simulate import Reflections, XRDSimulator

if TYPE_CHECKING:
    from pymatgen.core import Structure

MAX_PEAKS = 64
"""Strongest merged reflections kept per material: enough to carry > 99 % of the pattern's intensity
for all but large low-symmetry cells, and small enough that 200 candidates re-rank in milliseconds."""

PEAK_SETTINGS = XRDSettings(wavelength=CU_KA, two_theta_min=5.0, two_theta_max=130.0, step=0.02)
"""Where peak lists are simulated: Cu Kα like the model, 5-130° so ±3 % strain keeps the 10-110° grid full."""

MERGE_TOLERANCE = 1e-5
"""Relative d difference below which reflections are one peak (symmetry equivalents, float noise)."""

D_DECIMALS = 5
"""d-spacings are kept to 1e-5 Å (a relative 1e-5, far below a 1e-4 strain step)."""
INTENSITY_DECIMALS = 5
"""Relative intensities (strongest = 1) are kept to 1e-5."""


class PeakList(NamedTuple):
    """A material's strongest peaks, sorted by decreasing d (increasing 2θ)."""

    d: np.ndarray
    """(P,) float64 d-spacings, Å."""
    intensity: np.ndarray
    """(P,) float64 relative intensities, the strongest = 1."""

    def to_lists(self) -> tuple[list[float], list[float]]:
        """Rounded plain lists, as stored in a payload (``peaks_d``, ``peaks_i``)."""
        return (
            np.round(self.d, D_DECIMALS).tolist(),
            np.round(self.intensity, INTENSITY_DECIMALS).tolist(),
        )

    def two_theta(self, wavelength: float = CU_KA) -> np.ndarray:
        """Peak positions, degrees 2θ, at ``wavelength`` (NaN where λ/2d > 1: no reflection there)."""
        with np.errstate(invalid="ignore"):
            return np.degrees(2.0 * np.arcsin(wavelength / (2.0 * self.d)))


def merge_reflections(
    d: np.ndarray, intensity: np.ndarray, max_peaks: int = MAX_PEAKS, tolerance: float = MERGE_TOLERANCE
) -> PeakList:
    """Sum reflections of equal d (within ``tolerance``, relative), keep the strongest ``max_peaks``.

    Args:
        d: (R,) d-spacings, Å, any order.
        intensity: (R,) intensities, any units, ≥ 0.
        max_peaks: Peaks kept (the strongest).
        tolerance: Relative d difference that still counts as the same peak.

    Returns:
        The merged peaks sorted by decreasing d, intensities divided by the strongest (empty when
        there are none).
    """
    d = np.asarray(d, dtype=np.float64).ravel()
    intensity = np.asarray(intensity, dtype=np.float64).ravel()
    if d.size == 0:
        return PeakList(np.empty(0), np.empty(0))
    order = np.argsort(-d, kind="stable")
    d, intensity = d[order], intensity[order]
    new_group = np.empty(d.size, dtype=bool)
    new_group[0] = True
    new_group[1:] = (d[:-1] - d[1:]) > tolerance * d[:-1]
    starts = np.flatnonzero(new_group)
    merged_i = np.add.reduceat(intensity, starts)
    merged_d = np.add.reduceat(d * intensity, starts) / np.where(merged_i > 0, merged_i, 1.0)
    merged_d = np.where(merged_i > 0, merged_d, d[starts])
    if merged_d.size > max_peaks:
        keep = np.sort(np.argpartition(-merged_i, max_peaks - 1)[:max_peaks])
        merged_d, merged_i = merged_d[keep], merged_i[keep]
    top = merged_i.max()
    return PeakList(merged_d, merged_i / top if top > 0 else merged_i)


def peak_list(
    structure: Structure | Reflections, max_peaks: int = MAX_PEAKS, simulator: XRDSimulator | None = None
) -> PeakList:
    """A structure's strongest peaks (d, relative intensity) for phase matching.

    Args:
        structure: The crystal, or its reflections from :meth:`XRDSimulator.reflections`.
        max_peaks: Peaks kept.
        simulator: Simulator to use; one over :data:`PEAK_SETTINGS` when None.

    Raises:
        ValueError: A species has no scattering coefficients.
    """
    if not isinstance(structure, Reflections):
        structure = (simulator or peak_simulator()).reflections(structure)
    return merge_reflections(structure.d, structure.intensity, max_peaks)


_SIMULATOR: XRDSimulator | None = None


def peak_simulator() -> XRDSimulator:
    """The simulator of stored peak lists (:data:`PEAK_SETTINGS`), made once per process."""
    global _SIMULATOR
    if _SIMULATOR is None:
        _SIMULATOR = XRDSimulator(PEAK_SETTINGS)
    return _SIMULATOR


@dataclass(frozen=True)
class PeakTable:
    """Many peak lists as padded arrays: the candidates of one match.

    Padding entries have intensity 0 and d = 1 Å (anything finite): they add nothing to a score.

    Attributes:
        d: (C, P) float64 d-spacings, Å.
        intensity: (C, P) float64 relative intensities (strongest of each row = 1, padding 0).
    """

    d: np.ndarray
    intensity: np.ndarray

    def __len__(self) -> int:
        return self.d.shape[0]

    @classmethod
    def from_lists(cls, peaks: Sequence[PeakList | tuple[Sequence[float], Sequence[float]]]) -> PeakTable:
        """Pack peak lists (or ``(d, intensity)`` pairs, e.g. read back from payloads) into a table."""
        width = max((len(p[0]) for p in peaks), default=0)
        d = np.ones((len(peaks), max(width, 1)))
        intensity = np.zeros_like(d)
        for row, (pd, pi) in enumerate(peaks):
            n = len(pd)
            if n:
                d[row, :n] = pd
                intensity[row, :n] = pi
        return cls(d, intensity)

    def row(self, index: int) -> PeakList:
        """One candidate's peaks, padding dropped."""
        keep = self.intensity[index] > 0
        return PeakList(self.d[index][keep], self.intensity[index][keep])

    def subset(self, rows: np.ndarray | Sequence[int]) -> PeakTable:
        rows = np.asarray(rows, dtype=np.intp)
        return PeakTable(self.d[rows], self.intensity[rows])
