"""Simulated powder patterns for people to look at: a structure's pattern, sparse, on the model's grid.

The results page overlays the pattern of a query and of a hit; the pattern shown is the one the XRD
encoder read (the model's :class:`~matconcept.encoders.xrd.XRDSettings`, the fast simulator), so what
a person compares is what the model compared. Only the non-zero bins travel: a pattern has a few
hundred lines among 5000 bins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from matconcept.service.app.schemas import PatternOut

if TYPE_CHECKING:
    from pymatgen.core import Structure

    from matconcept.encoders.xrd import XRDSettings, XRDSimulator

TWO_THETA_DECIMALS = 4
"""Bin centres to 0.0001°, far below a 0.02° bin."""
INTENSITY_DIGITS = 6
"""Significant digits of an intensity (float32 holds ~7)."""


def sparse_pattern(
    pattern: np.ndarray, settings: XRDSettings, formula: str, material_id: str | None = None
) -> PatternOut:
    """A max-normalised pattern of ``settings.n_bins`` bins → its non-zero bins as :class:`PatternOut`."""
    values = np.asarray(pattern, dtype=np.float64).reshape(-1)
    if values.size != settings.n_bins:
        raise ValueError(f"pattern has {values.size} bins, the grid {settings.n_bins}")
    nonzero = np.flatnonzero(values > 0)
    centres = settings.bin_centres()[nonzero]
    return PatternOut(
        material_id=material_id,
        formula=formula,
        wavelength=settings.wavelength,
        two_theta_min=settings.two_theta_min,
        two_theta_max=settings.two_theta_max,
        step=settings.step,
        n_bins=settings.n_bins,
        two_theta=[round(float(t), TWO_THETA_DECIMALS) for t in centres],
        intensity=[float(f"{v:.{INTENSITY_DIGITS}g}") for v in values[nonzero]],
    )


def simulated_pattern(structure: Structure, simulator: XRDSimulator, material_id: str | None = None) -> PatternOut:
    """The simulated pattern of ``structure`` with ``simulator`` (the model's settings), sparse."""
    pattern = simulator.pattern(structure)
    return sparse_pattern(pattern, simulator.settings, structure.composition.reduced_formula, material_id)
