"""A strain-tolerant physics vector of a powder pattern, for finding candidates by nearest neighbours.

Search-match needs candidates before it can score them. The learned XRD embedding is one way to
find them; this is the other, from physics alone. An isotropic strain multiplies every d-spacing by
one factor, so it *adds* one constant to every ln d: the differences ln d_i − ln d_k between peaks
do not change. The vector is

* the histogram of pairwise ln-d differences of the strongest peaks (weighted by √ of both heights,
  each difference blurred by its own position uncertainty: a zero shift moves a low-angle peak's
  ln d by far more than a high-angle one's), strain-invariant; and
* a coarse histogram of the peaks' ln d themselves, blurred by the strain tolerance, which keeps
  NaCl apart from KCl (same differences, 12 % apart in d),

each L2-normalised, weighted and concatenated, then L2-normalised: cosine (or L2) nearest neighbours
in a vector store find structures whose peaks line up under some strain.

The same peak picker runs on a measured pattern (background removed) and on a stored structure's
pattern (simulated, broadened to :data:`REFERENCE_FWHM`), so both sides see the same peaks:
close reflections that merge into one measured peak merge on the stored side too.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

import numpy as np
from scipy.ndimage import gaussian_filter1d

from matconcept.encoders.xrd.peaks import PeakList
from matconcept.encoders.xrd.settings import DEFAULT_SETTINGS, XRDSettings
from matconcept.encoders.xrd.synthetic import FWHM_TO_SIGMA, render_peaks

if TYPE_CHECKING:
    from matconcept.encoders.xrd.match import PreparedQuery

FINGERPRINT_PEAKS = 24
"""Strongest picked peaks the vector is built from (276 pairs)."""
DIFF_BINS = 448
"""Bins of the ln-d difference histogram."""
DIFF_MAX = 2.24
"""Largest ln-d difference binned: ln(8.85 Å / 0.94 Å), the model's 10-110° Cu Kα window."""
ABS_BINS = 160
"""Bins of the absolute ln-d histogram."""
ABS_RANGE = (math.log(0.9), math.log(9.0))
"""ln d (Å) range of the absolute histogram (the 10-110° Cu Kα window, with margin)."""
ABS_BLUR = 0.02
"""Blur (σ, in ln d) of the absolute histogram: a ±2 % strain moves a peak by about one σ."""
ABS_WEIGHT = 1.0
"""Weight of the absolute part against the (strain-invariant) difference part."""
POSITION_SIGMA = 0.002
"""Base uncertainty (σ, ln d) of a picked peak position (a fraction of a bin at high angle)."""
SHIFT_SIGMA_DEG = 0.05
"""Zero-shift uncertainty (σ, degrees 2θ) that widens low-angle peaks' ln d uncertainty (cot θ · δθ)."""
REFERENCE_FWHM = 0.15
"""Degrees; a stored structure's pattern is broadened to this width before its peaks are picked."""
MIN_PEAK_HEIGHT = 0.02
"""Picked peaks are at least this fraction of the strongest."""
PROMINENCE_NOISE = 4.0
"""A picked peak stands this many noise σ above its surroundings."""
FINGERPRINT_DIM = DIFF_BINS + ABS_BINS
"""Length of the vector (608)."""


def pick_peaks(
    signal: np.ndarray,
    settings: XRDSettings | None = None,
    n_peaks: int = FINGERPRINT_PEAKS,
    *,
    fwhm: float = REFERENCE_FWHM,
    noise: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The strongest peaks of a background-free pattern: (2θ degrees, height), strongest first.

    A peak is a local maximum of the pattern smoothed to its peak width, at least
    :data:`MIN_PEAK_HEIGHT` of the strongest and standing at least ``PROMINENCE_NOISE`` × ``noise``
    above the lowest point within one FWHM on each side (noise wiggles are not peaks). Positions are
    refined to sub-bin precision by a parabola through the maximum and its neighbours.

    Args:
        signal: (n_bins,) pattern on ``settings``' grid, background removed.
        settings: The grid; the model's when None.
        n_peaks: Most peaks returned.
        fwhm: Peak width, degrees (smoothing and the prominence window).
        noise: σ of the noise in ``signal`` (0 for a simulated pattern); the pattern is smoothed
            to its peak width first when it is noisy.
    """
    settings = settings or DEFAULT_SETTINGS
    y = np.asarray(signal, dtype=np.float64)
    if y.size < 3 or not y.max() > 0:
        return np.empty(0), np.empty(0)
    sigma_bins = 0.5 * fwhm * FWHM_TO_SIGMA / settings.step
    if noise > 0 and sigma_bins >= 0.3:
        y = gaussian_filter1d(y, sigma_bins, mode="constant")
        noise = noise / math.sqrt(2.0 * math.sqrt(math.pi) * sigma_bins)  # white noise through that filter
    top = y.max()
    mid = y[1:-1]
    is_max = (mid > y[:-2]) & (mid >= y[2:]) & (mid >= MIN_PEAK_HEIGHT * top)
    index = np.flatnonzero(is_max) + 1
    if noise > 0 and index.size:
        reach = max(1, round(fwhm / settings.step))
        windows = np.lib.stride_tricks.sliding_window_view(np.pad(y, reach, mode="edge"), reach).min(axis=1)
        # windows[j] = min of y[j - reach : j]: the left side of bin j; the right side is j + reach + 1.
        lowest = np.maximum(windows[index], windows[index + reach + 1])
        index = index[y[index] - lowest >= PROMINENCE_NOISE * noise]
    index = index[np.argsort(-y[index], kind="stable")][:n_peaks]
    left, centre, right = y[index - 1], y[index], y[index + 1]
    curvature = left - 2.0 * centre + right
    offset = np.where(curvature < 0, 0.5 * (left - right) / np.where(curvature < 0, curvature, -1.0), 0.0)
    two_theta = settings.two_theta_min + settings.step * (index + 0.5 + np.clip(offset, -0.5, 0.5))
    return two_theta, centre


def _ln_d(two_theta: np.ndarray, wavelength: float) -> np.ndarray:
    return np.log(wavelength / (2.0 * np.sin(np.radians(two_theta) / 2.0)))


def _position_sigma(two_theta: np.ndarray) -> np.ndarray:
    """σ of ln d for a peak at 2θ: a base term and the zero-shift term cot θ · δθ (radians)."""
    theta = np.radians(two_theta) / 2.0
    shift = np.radians(SHIFT_SIGMA_DEG) / 2.0 / np.tan(theta)
    return np.sqrt(POSITION_SIGMA**2 + shift**2)


def _soft_histogram(values: np.ndarray, sigma: np.ndarray, weights: np.ndarray, lo: float, hi: float, bins: int):
    """Σ w · Gaussian(σ) centred at each value, sampled at the bin centres (vectorised, ±4σ windows)."""
    out = np.zeros(bins)
    if values.size == 0:
        return out
    width = (hi - lo) / bins
    half = math.ceil(4.0 * float(sigma.max()) / width)
    centre = np.floor((values - lo) / width).astype(np.int64)
    index = centre[:, None] + np.arange(-half, half + 1)[None, :]
    x = lo + (index + 0.5) * width
    profile = np.exp(-0.5 * ((x - values[:, None]) / sigma[:, None]) ** 2) * weights[:, None]
    inside = (index >= 0) & (index < bins)
    return np.bincount(index[inside], profile[inside], bins)


def fingerprint_from_peaks(two_theta: np.ndarray, height: np.ndarray, wavelength: float) -> np.ndarray:
    """The vector of a picked peak list (2θ at ``wavelength``, heights): float32 (FINGERPRINT_DIM,), unit L2.

    All zeros when fewer than two peaks are given.
    """
    out = np.zeros(FINGERPRINT_DIM, dtype=np.float32)
    if len(two_theta) < 2:
        return out
    ln_d = _ln_d(np.asarray(two_theta, dtype=np.float64), wavelength)
    sigma = _position_sigma(np.asarray(two_theta, dtype=np.float64))
    w = np.sqrt(np.clip(np.asarray(height, dtype=np.float64), 0.0, None))
    i, k = _pairs(len(ln_d))
    diff = np.abs(ln_d[i] - ln_d[k])
    keep = diff <= DIFF_MAX
    pair_sigma = np.hypot(sigma[i], sigma[k])[keep]
    diffs = _soft_histogram(diff[keep], pair_sigma, (w[i] * w[k])[keep], 0.0, DIFF_MAX, DIFF_BINS)
    absolute = _soft_histogram(ln_d, np.hypot(sigma, ABS_BLUR), w, *ABS_RANGE, ABS_BINS)
    parts = []
    for part, weight in ((diffs, 1.0), (absolute, ABS_WEIGHT)):
        norm = np.linalg.norm(part)
        parts.append(part * (weight / norm) if norm > 0 else part)
    vector = np.concatenate(parts)
    norm = np.linalg.norm(vector)
    if norm > 0:
        out[:] = vector / norm
    return out


@functools.lru_cache(maxsize=4 * FINGERPRINT_PEAKS)
def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.triu_indices(n, 1)``, read-only, made once per peak count (a stored structure's vector is
    made at ingest, once per material: rebuilding the indices was ~5 % of it)."""
    pairs = np.triu_indices(n, 1)
    for index in pairs:
        index.flags.writeable = False
    return pairs


@functools.lru_cache(maxsize=8)
def _bin_centres(settings: XRDSettings) -> np.ndarray:
    """``settings.bin_centres()``, read-only, made once per grid."""
    centres = settings.bin_centres()
    centres.flags.writeable = False
    return centres


def query_fingerprint(query: PreparedQuery) -> np.ndarray:
    """The vector of a measured pattern (after :func:`~.match.prepare_query`)."""
    two_theta, height = pick_peaks(query.signal, query.settings, fwhm=query.fwhm, noise=query.noise)
    return fingerprint_from_peaks(two_theta, height, query.settings.wavelength)


def peaks_fingerprint(peaks: PeakList, settings: XRDSettings | None = None) -> np.ndarray:
    """The vector of a stored structure's peak list: broadened to :data:`REFERENCE_FWHM` on the
    model's grid, then picked like a measured pattern."""
    settings = settings or DEFAULT_SETTINGS
    centres = _bin_centres(settings)
    two_theta = peaks.two_theta(settings.wavelength)
    ok = np.isfinite(two_theta)
    profile = render_peaks(two_theta[ok], peaks.intensity[ok], centres, REFERENCE_FWHM)
    two_theta, height = pick_peaks(profile, settings)
    return fingerprint_from_peaks(two_theta, height, settings.wavelength)
