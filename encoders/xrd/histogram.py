"""Peaks → pattern: the intensity-weighted histogram on the grid, divided by its maximum.

This is the last step of the published pipeline (``np.histogram(x, bins=np.linspace(10, 110, 5001),
weights=y)`` over pymatgen's peak list, then max-normalisation), kept for any peak list: pymatgen's
(the reference in ``tests/xrd_reference.py``) or another program's. :class:`~.simulate.XRDSimulator`
bins its reflections arithmetically instead, to the same bins.
"""

from __future__ import annotations

import numpy as np

from matconcept.encoders.xrd.settings import DEFAULT_SETTINGS, XRDSettings


def max_normalise(hist: np.ndarray) -> np.ndarray:
    """float32 copy divided by its maximum; all zeros stays all zeros."""
    peak = float(hist.max()) if hist.size else 0.0
    out = hist.astype(np.float32)
    if peak > 0:
        out /= np.float32(peak)
    return out


def _histogram(two_theta: np.ndarray, intensity: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``np.histogram(two_theta, bins=edges, weights=intensity)[0]`` via searchsorted + bincount.

    Same bin assignment as numpy for explicit edges (left-closed bins, last bin closed on the
    right, values outside dropped), without numpy's sort of the data.
    """
    n_bins = len(edges) - 1
    idx = np.searchsorted(edges, two_theta, side="right") - 1
    idx[two_theta == edges[-1]] = n_bins - 1
    inside = (idx >= 0) & (idx < n_bins)
    return np.bincount(idx[inside], weights=intensity[inside], minlength=n_bins)


def pattern_from_peaks(two_theta: np.ndarray, intensity: np.ndarray, settings: XRDSettings | None = None) -> np.ndarray:
    """Histogram of peak positions weighted by intensity, divided by its maximum (the paper's step).

    Args:
        two_theta: Peak positions, degrees, shape (P,).
        intensity: Peak intensities (any units, ≥ 0), shape (P,).
        settings: Grid; the paper's when None.

    Returns:
        float32 array (n_bins,), maximum 1, or all zeros when no peak falls in the range.
    """
    settings = settings or DEFAULT_SETTINGS
    two_theta = np.asarray(two_theta, dtype=np.float64).ravel()
    intensity = np.asarray(intensity, dtype=np.float64).ravel()
    if two_theta.shape != intensity.shape:
        raise ValueError(f"two_theta has {two_theta.size} values but intensity has {intensity.size}")
    return max_normalise(_histogram(two_theta, intensity, settings.bin_edges()))
