r"""Search-match: score candidate phases against a measured pattern, fitting strain, zero shift and width.

Classic phase identification compares a measured pattern with each candidate's simulated one. Done
naively (cosine of two histograms) it fails on real data: a 1 % strain moves a peak at 100° 2θ by
0.8°, ten times its width. This module does it properly and fast:

1. :func:`prepare_query` removes the background (SNIP clipping), estimates the instrument's peak
   width (median FWHM of the strongest peaks, unless given) and lightly denoises.
2. :func:`match_peaks` scores every candidate's peak list (:class:`~.peaks.PeakTable`) by the cosine
   between the query and the candidate's pattern broadened to the query's width, maximised over an
   isotropic cell scale (strain, default ±3 %) and a 2θ zero shift (default ±0.1°).
3. :func:`identify_phases` explains a mixture greedily: subtract the scaled best match, search the
   residual again, report each phase with its share.

How the cosine is cheap. With the candidate's pattern :math:`M(x) = \sum_i I_i\, g(x - x_i)` (Gaussian
peaks g of unit height), the dot product with the query Q is

.. math:: \langle Q, M\rangle = \sum_i I_i\, (Q \star g)(x_i),

so the query is filtered with g once, and each candidate × strain × shift costs one lookup per peak.
The filtered query is tabulated on a uniform grid in q = 1/d (where a strain is a scale,
q → q / (1 + ε)) once per zero shift, so a lookup is an index computation and a gather: numpy over
(shifts × candidates × strains × peaks) at once, no Python loop over peaks or candidates. ‖M‖
comes from the pairwise peak overlaps (a Gaussian of width σ√2), (C × P × P) at once.

Two passes keep it within budget: a coarse pass (all candidates, the filter widened to
:attr:`MatchConfig.coarse_fwhm`, strain steps of 0.1 %, no shift) finds each candidate's strain to
about a step; a fine pass (the best :attr:`MatchConfig.refine` candidates, the query's own width,
strain steps of a third of a peak width at the highest angle, and the zero shift) finds the optimum
on the grid. A third, :func:`polish_fit`, fits the best :attr:`MatchConfig.polish` candidates'
strain, shift and peak width continuously, with a smooth background, by least squares on the full
profile: isostructural compounds whose cells differ by less than the strain range score within a
grid step of each other, and only an exact fit leaves their relative intensities to decide.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy import sparse
from scipy.ndimage import gaussian_filter1d

from matconcept.encoders.xrd.peaks import PeakList, PeakTable
from matconcept.encoders.xrd.settings import DEFAULT_SETTINGS, XRDSettings
from matconcept.encoders.xrd.synthetic import FWHM_TO_SIGMA, render_peaks
from matconcept.encoders.xrd.texture import march_dollase_factors

if TYPE_CHECKING:
    from matconcept.encoders.xrd.texture import OrientedReflections

logger = logging.getLogger(__name__)

MIN_FWHM = 0.03
"""Degrees; narrowest peak width estimated or used (1.5 bins of the model's grid)."""
MAX_FWHM = 1.5
"""Degrees; widest peak width estimated or used."""
FWHM_PEAKS = 15
"""Strongest peaks whose half-maximum widths are measured to estimate the FWHM."""
FWHM_QUANTILE = 25.0
"""Percentile of those widths taken as the FWHM: overlapping peaks only ever look wider, so a low
quantile ignores them (the median read 0.23° for a SiC polytype's clustered peaks of 0.07°)."""
MIN_PEAK_SIGNAL = 1e-3
"""Peaks must rise this far (relative to the strongest measured point) above the background."""
PRE_SMOOTH_BINS = 1.0
"""σ, in bins, of the light smoothing before background and width estimation."""


class MatchConfig(BaseModel):
    """How a measured pattern is compared with candidate phases."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_strain: float = Field(default=0.03, ge=0, lt=0.2, description="isotropic strain range fitted, ±")
    max_shift: float = Field(default=0.1, ge=0, le=2.0, description="2θ zero-shift range fitted, ± degrees")
    fwhm: float | None = Field(
        default=None, ge=MIN_FWHM, le=MAX_FWHM, description="instrument peak width, degrees 2θ; estimated when None"
    )
    coarse_fwhm: float = Field(default=0.3, gt=0, le=MAX_FWHM, description="filter width of the coarse pass, degrees")
    coarse_strain_step: float = Field(default=0.001, gt=0, description="strain step of the coarse pass")
    shift_step: float = Field(default=0.02, gt=0, description="zero-shift step of the fine pass, degrees")
    refine: int = Field(default=32, ge=1, description="candidates refined by the fine pass (the coarse pass's best)")
    background_window: float = Field(
        default=1.5, gt=0, description="SNIP half-window, degrees: features narrower than about twice this are peaks"
    )
    intensity_power: float = Field(
        default=1.0, gt=0, le=1, description="candidate intensities are raised to this power (< 1 tempers texture)"
    )
    polish: int = Field(
        default=20,
        ge=0,
        description="best candidates whose strain, shift and peak width are then fitted by least squares (0: none)",
    )
    polish_margin: float = Field(
        default=0.1, ge=0, description="only candidates within this of the best grid score are polished"
    )
    polish_iterations: int = Field(default=4, ge=1, le=50, description="Levenberg-Marquardt steps of that fit")
    polish_background: float = Field(
        default=5.0, ge=0, description="knot spacing (degrees) of the smooth background fitted with it (0: none)"
    )
    texture: int = Field(
        default=8,
        ge=0,
        description="best polished candidates then fitted with a preferred orientation, where reflections are given"
        " (0: none)",
    )
    texture_margin: float = Field(
        default=0.03, ge=0, description="only polished candidates within this of the best polished score get it"
    )


DEFAULT_MATCH = MatchConfig()


@dataclass(frozen=True)
class PreparedQuery:
    """A measured pattern ready to be matched: background removed, width known.

    Attributes:
        signal: (n_bins,) background-removed, lightly denoised intensity on ``settings``' grid,
            strongest peak = 1 (negative noise excursions kept: clipping would bias every score).
        fwhm: Peak width used for matching, degrees 2θ (estimated or given).
        settings: The grid (the model's Cu Kα grid by default).
        covered: 2θ range (degrees) the measurement covers; candidate peaks outside are ignored.
        background: (n_bins,) the removed background, same scale as ``signal``.
        fwhm_estimated: Whether ``fwhm`` was estimated from the pattern.
        noise: σ of the white noise left in ``signal`` (after its denoising), same scale.
    """

    signal: np.ndarray
    fwhm: float
    settings: XRDSettings
    covered: tuple[float, float]
    background: np.ndarray = field(repr=False)
    fwhm_estimated: bool = True
    noise: float = 0.0


@dataclass(frozen=True)
class MatchResult:
    """Scores of every candidate (arrays (C,), in the candidates' order).

    Attributes:
        score: Cosine similarity (≤ 1) of the query with the candidate's best-fitting pattern (for the
            polished candidates, of the least-squares profile fit, see :func:`polish_fit`).
        strain: Fitted isotropic strain ε (query d = candidate d × (1 + ε)).
        shift: Fitted 2θ zero shift, degrees (query peak = candidate peak + shift).
        scale: Least-squares factor α with query ≈ α × candidate pattern (peak heights, strongest = 1).
        refined: Whether the candidate went through the fine pass (the others' scores are lower bounds).
        polished: Whether its strain, shift and peak width were then fitted by least squares (the
            :attr:`MatchConfig.polish` best; their scores are cosines of that full-profile fit).
        texture_axis: Index into the candidate's ``OrientedReflections.axes`` of the fitted preferred
            orientation, −1 where none was fitted (see :func:`texture_fit`).
        texture_r: Its March-Dollase r (1: a random powder fitted best, or none fitted).
    """

    score: np.ndarray
    strain: np.ndarray
    shift: np.ndarray
    scale: np.ndarray
    refined: np.ndarray
    polished: np.ndarray | None = None
    texture_axis: np.ndarray | None = None
    texture_r: np.ndarray | None = None

    def order(self) -> np.ndarray:
        """Candidate indices, best first: the polished candidates by their fitted score, then the rest
        by score (ties keep the input order). The polished ones were the best before the fit, and
        only they have a score free of the grid's steps, so a grid score never overtakes them."""
        if self.polished is None or not self.polished.any():
            return np.argsort(-self.score, kind="stable")
        return np.lexsort((-self.score, ~self.polished))


@dataclass(frozen=True)
class Phase:
    """One phase of an identified mixture.

    Attributes:
        index: Candidate row in the table searched.
        score: Match score against what was left to explain when it was found (the query for the
            first phase, the residual after subtracting the earlier phases for the next).
        strain: Fitted strain. shift: fitted zero shift, degrees.
        weight: Share of the query's diffracted intensity explained by this phase (non-negative
            least squares of all found phases together; sums to ≤ 1).
    """

    index: int
    score: float
    strain: float
    shift: float
    weight: float


@dataclass(frozen=True)
class PhaseSearch:
    """The greedy mixture search: phases found and what is left unexplained."""

    phases: list[Phase]
    residual: float
    """Height of the strongest unexplained peak, relative to the query's strongest (0 … 1)."""
    first: MatchResult
    """The single-phase match of every candidate (the ranking a plain search returns)."""


# -- query preparation ---------------------------------------------------------------------------
def noise_level(signal: np.ndarray) -> float:
    """σ of the white noise in a pattern: the median absolute second difference, scaled (peaks and
    background are smooth, so they barely move the median)."""
    y = np.asarray(signal, dtype=np.float64)
    if y.size < 3:
        return 0.0
    second = y[2:] - 2.0 * y[1:-1] + y[:-2]  # white noise of σ gives √6 σ
    return float(1.4826 * np.median(np.abs(second)) / math.sqrt(6.0))


def snip_background(y: np.ndarray, half_window: int) -> np.ndarray:
    """SNIP background (Ryan et al. 1988): iteratively clip every point to the mean of its neighbours
    at ±p, p = 1 … ``half_window``; peaks narrower than about 2 × ``half_window`` are removed.

    On the LLS-compressed intensity (log log √), as usual for diffraction data, so strong peaks do not
    pull the background up. O(n · half_window), vectorised over points.
    """
    y = np.asarray(y, dtype=np.float64)
    n = y.size
    if n < 3 or half_window < 1:
        return y.copy()
    scale = 1000.0 / max(float(y.max()), 1e-12)
    v = np.log(np.log(np.sqrt(np.clip(y, 0.0, None) * scale + 1.0) + 1.0) + 1.0)
    for p in range(1, min(half_window, (n - 1) // 2) + 1):
        mean = 0.5 * (v[: n - 2 * p] + v[2 * p :])
        np.minimum(v[p : n - p], mean, out=v[p : n - p])
    back = (np.exp(np.exp(v) - 1.0) - 1.0) ** 2 - 1.0
    return np.clip(back, 0.0, None) / scale


def estimate_fwhm(signal: np.ndarray, step: float, n_peaks: int = FWHM_PEAKS) -> float | None:
    """Full width at half maximum of the strongest peaks (their lower quartile), degrees.

    Half-maximum crossings are found on each side of a local maximum (linear interpolation) in a
    window of ±1.5°; peaks whose half maximum is not reached in the window are skipped.

    Returns:
        The FWHM, or None when no peak could be measured.
    """
    y = np.asarray(signal, dtype=np.float64)
    n = y.size
    if n < 5 or not y.max() > 0:
        return None
    interior = (y[1:-1] > y[:-2]) & (y[1:-1] >= y[2:]) & (y[1:-1] > 0.05 * y.max())
    maxima = np.flatnonzero(interior) + 1
    if maxima.size == 0:
        return None
    maxima = maxima[np.argsort(-y[maxima])][: n_peaks * 3]
    half_w = max(3, round(1.5 / step))
    offsets = np.arange(-half_w, half_w + 1)
    index = np.clip(maxima[:, None] + offsets[None, :], 0, n - 1)
    window = y[index]
    half = 0.5 * y[maxima][:, None]
    below = window < half
    centre = half_w
    right_hit = below[:, centre:]
    left_hit = below[:, : centre + 1][:, ::-1]
    ok = right_hit.any(axis=1) & left_hit.any(axis=1)
    if not ok.any():
        return None
    r = np.argmax(right_hit, axis=1)  # first index ≥ centre below half
    left_steps = np.argmax(left_hit, axis=1)
    rows = np.arange(len(maxima))
    # Linear interpolation between the last point above and the first below half, each side.
    r_hi = window[rows, centre + r - 1]
    r_lo = window[rows, centre + r]
    r_pos = (r - 1) + (r_hi - half[:, 0]) / np.maximum(r_hi - r_lo, 1e-12)
    l_hi = window[rows, centre - left_steps + 1]
    l_lo = window[rows, centre - left_steps]
    l_pos = (left_steps - 1) + (l_hi - half[:, 0]) / np.maximum(l_hi - l_lo, 1e-12)
    widths = (r_pos + l_pos)[ok & (r > 0) & (left_steps > 0)] * step
    if widths.size == 0:
        return None
    return float(np.percentile(widths[:n_peaks], FWHM_QUANTILE))


def prepare_query(
    pattern: np.ndarray,
    settings: XRDSettings | None = None,
    *,
    config: MatchConfig | None = None,
    covered: tuple[float, float] | None = None,
) -> PreparedQuery:
    """Background removal, width estimate and light denoising of a pattern on the model's grid.

    Args:
        pattern: (n_bins,) intensity on ``settings``' bin centres (e.g. from
            :func:`~.measured.resample_pattern`); bins the measurement does not cover are 0.
        settings: The grid; the model's when None.
        config: ``fwhm`` (given or None to estimate) and ``background_window``.
        covered: 2θ range the data cover; the extent of the non-zero bins when None.

    Raises:
        ValueError: The pattern has the wrong length or no positive intensity.
    """
    settings = settings or DEFAULT_SETTINGS
    config = config or DEFAULT_MATCH
    y = np.asarray(pattern, dtype=np.float64).ravel()
    if y.size != settings.n_bins:
        raise ValueError(f"pattern has {y.size} points, the grid has {settings.n_bins}")
    if not np.isfinite(y).all() or not y.max() > 0:
        raise ValueError("pattern has no positive finite intensity")
    centres = settings.bin_centres()
    step = settings.step
    if covered is None:
        nz = np.flatnonzero(y)
        covered = (float(centres[nz[0]]), float(centres[nz[-1]]))
    inside = (centres >= covered[0] - 1e-9) & (centres <= covered[1] + 1e-9)
    y = np.where(inside, y / y.max(), 0.0)
    lo, hi = np.flatnonzero(inside)[[0, -1]]
    smooth = gaussian_filter1d(y[lo : hi + 1], PRE_SMOOTH_BINS, mode="nearest")  # the data only: no edge drop
    background = np.zeros_like(y)
    background[lo : hi + 1] = snip_background(smooth, max(1, round(config.background_window / step)))
    peaks = np.where(inside, y - background, 0.0)
    # SNIP hugs the lower envelope of the noise: move the baseline to the median of the covered bins.
    baseline = float(np.median(peaks[inside]))
    peaks = np.where(inside, peaks - baseline, 0.0)
    background = np.where(inside, background + baseline, 0.0)
    fwhm, estimated = config.fwhm, config.fwhm is None
    if fwhm is None:
        measured = estimate_fwhm(gaussian_filter1d(peaks, PRE_SMOOTH_BINS, mode="nearest"), step)
        smoothing = PRE_SMOOTH_BINS * step / FWHM_TO_SIGMA
        fwhm = math.sqrt(max(measured**2 - smoothing**2, 0.0)) if measured is not None else config.coarse_fwhm
        fwhm = min(max(fwhm, MIN_FWHM), MAX_FWHM)
    # Light denoising: a Gaussian of half the peak σ widens peaks by 12 % and cuts white noise ~2×.
    sigma_bins = 0.5 * fwhm * FWHM_TO_SIGMA / step
    signal = gaussian_filter1d(peaks, sigma_bins, mode="constant") if sigma_bins >= 0.3 else peaks
    top = signal.max()
    if not top > MIN_PEAK_SIGNAL:
        raise ValueError("the pattern has no peaks above its background (a flat or featureless scan)")
    noise = noise_level(peaks[inside])
    if sigma_bins >= 0.3:  # white noise through the denoising Gaussian
        noise /= math.sqrt(2.0 * math.sqrt(math.pi) * sigma_bins)
    return PreparedQuery(signal / top, fwhm, settings, covered, background / top, estimated, noise / top)


# -- matching ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _QGrid:
    """The query's filtered signal tabulated on a uniform q = 1/d grid, one row per zero shift."""

    q0: float
    dq: float
    table: np.ndarray  # (Z, Nq) float32; first and last entries 0 (out-of-range lookups land there)
    shifts: np.ndarray  # (Z,) degrees


def _filtered(query: PreparedQuery, fwhm: float) -> np.ndarray:
    """Q ⋆ g for unit-height Gaussian peaks g of ``fwhm``: the dot product with a peak at each bin."""
    step = query.settings.step
    sigma_bins = fwhm * FWHM_TO_SIGMA / step
    return gaussian_filter1d(query.signal, sigma_bins, mode="constant") * (sigma_bins * math.sqrt(2.0 * math.pi))


def _q_grid(query: PreparedQuery, filtered: np.ndarray, shifts: np.ndarray, margin: float) -> _QGrid:
    wavelength = query.settings.wavelength
    lo, hi = query.covered
    theta_lo = math.radians(max(lo - margin, 0.5) / 2.0)
    theta_hi = math.radians(min(hi + margin, 179.0) / 2.0)
    q0 = 2.0 * math.sin(theta_lo) / wavelength
    q1 = 2.0 * math.sin(theta_hi) / wavelength
    # Grid fine enough that one q step moves a peak by ≤ half a 2θ bin at the highest angle.
    dq = math.radians(0.5 * query.settings.step) * math.cos(theta_hi) / wavelength
    n = math.ceil((q1 - q0) / dq) + 3
    q = q0 + dq * (np.arange(n) - 1)
    two_theta = np.degrees(2.0 * np.arcsin(np.clip(q * wavelength / 2.0, 0.0, 1.0)))
    centres = query.settings.bin_centres()
    table = np.empty((len(shifts), n), dtype=np.float32)
    for z, shift in enumerate(shifts):  # a handful of shifts; each row is one vectorised interpolation
        table[z] = np.interp(two_theta + shift, centres, filtered, left=0.0, right=0.0)
    table[:, 0] = 0.0
    table[:, -1] = 0.0
    return _QGrid(q0 - dq, dq, table, shifts)


@dataclass(frozen=True)
class _Peaks:
    """The candidates' peaks that can score, flattened (ragged: no padding is gathered).

    Peaks outside the covered range and padding are dropped; a candidate left with none keeps one
    zero-weight entry so that every candidate owns a slice ``starts[c] : starts[c + 1]``.
    """

    cand: np.ndarray  # (N,) candidate of each peak, non-decreasing
    q: np.ndarray  # (N,) 1/d, Å⁻¹
    two_theta: np.ndarray  # (N,) degrees, increasing within a candidate
    weight: np.ndarray  # (N,) float32
    starts: np.ndarray  # (C,) first entry of each candidate

    def take(self, rows: np.ndarray) -> _Peaks:
        """The peaks of the candidates ``rows`` (in that order)."""
        counts = np.diff(np.append(self.starts, len(self.cand)))[rows]
        index = np.repeat(self.starts[rows] - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
        starts = np.cumsum(counts) - counts
        cand = np.repeat(np.arange(len(rows)), counts)
        return _Peaks(cand, self.q[index], self.two_theta[index], self.weight[index], starts)


def _gather_scores(grid: _QGrid, peaks: _Peaks, strains: np.ndarray) -> np.ndarray:
    """Σ_p w_p · table[z, q_p / (1 + ε_cs)] per candidate: (Z, C, S) dot products.

    Shapes: strains (C, S) (a per-candidate range) or (S,) (one range for all).
    """
    inv = (1.0 / (1.0 + strains)) / grid.dq
    inv = inv[None, :] if inv.ndim == 1 else inv[peaks.cand]  # (1 or N, S)
    pos = np.multiply(peaks.q[:, None], inv, dtype=np.float32)
    pos -= np.float32(grid.q0 / grid.dq)
    np.rint(pos, out=pos)
    np.clip(pos, 0, grid.table.shape[1] - 1, out=pos)
    index = pos.astype(np.int32)
    w = peaks.weight[:, None]
    out = np.empty((grid.table.shape[0], len(peaks.starts), index.shape[1]), dtype=np.float32)
    for z in range(grid.table.shape[0]):  # a handful of shifts; inside, one gather and one segmented sum
        values = grid.table[z].take(index)
        values *= w
        out[z] = np.add.reduceat(values, peaks.starts, axis=0)
    return out


NORM_CUTOFF_SIGMA = 6.0
"""Peaks further apart than this many σ do not overlap (e^{-36/4} ≈ 1e-4) in ‖M‖."""


def _norms(peaks: _Peaks, fwhm: float, step: float) -> np.ndarray:
    """‖M‖ of each candidate's pattern of unit-height Gaussians: √(Σ_ik w_i w_k σ√π/step · e^{-Δ²/4σ²}).

    Peaks are sorted by 2θ within a candidate, so only the next few neighbours overlap: the sum
    runs over neighbour offsets k = 1, 2, … (vectorised over all peaks) until no pair within
    :data:`NORM_CUTOFF_SIGMA` σ is left.
    """
    sigma = fwhm * FWHM_TO_SIGMA
    w = peaks.weight.astype(np.float64)
    tt = peaks.two_theta
    pair = w * w
    k = 1
    while k < len(w):
        same = peaks.cand[k:] == peaks.cand[:-k]
        diff = tt[k:] - tt[:-k]
        near = same & (diff < NORM_CUTOFF_SIGMA * sigma)
        if not near.any():
            break
        term = np.zeros(len(w))
        term[:-k][near] = 2.0 * w[:-k][near] * w[k:][near] * np.exp(-(diff[near] ** 2) / (4.0 * sigma * sigma))
        pair += term
        k += 1
    energy = np.add.reduceat(pair, peaks.starts) * (sigma * math.sqrt(math.pi) / step)
    return np.sqrt(np.maximum(energy, 0.0))


def _peak_arrays(query: PreparedQuery, table: PeakTable, config: MatchConfig) -> _Peaks:
    """The scoring peaks of every candidate: inside the covered range, non-zero, sorted by 2θ."""
    wavelength = query.settings.wavelength
    live = table.intensity > 0
    d = np.where(live, table.d, 1.0)
    sin_theta = wavelength / (2.0 * d)
    two_theta = np.degrees(2.0 * np.arcsin(np.clip(sin_theta, 0.0, 1.0)))
    lo, hi = query.covered
    keep = live & (sin_theta < 1.0) & (two_theta >= lo) & (two_theta <= hi)
    keep[:, 0] |= ~keep.any(axis=1)  # every candidate keeps at least one (possibly zero-weight) entry
    weight = np.where(keep & live, np.power(np.clip(table.intensity, 0.0, None), config.intensity_power), 0.0)
    order = np.argsort(np.where(keep, two_theta, np.inf), axis=1, kind="stable")
    rows = np.arange(len(table))[:, None]
    keep, two_theta, d, weight = keep[rows, order], two_theta[rows, order], d[rows, order], weight[rows, order]
    counts = keep.sum(axis=1)
    cand = np.repeat(np.arange(len(table)), counts)
    starts = np.cumsum(counts) - counts
    return _Peaks(cand, 1.0 / d[keep], two_theta[keep], weight[keep].astype(np.float32), starts)


def match_peaks(
    query: PreparedQuery,
    table: PeakTable,
    config: MatchConfig | None = None,
    oriented: Callable[[Sequence[int]], Sequence[OrientedReflections | None]] | None = None,
) -> MatchResult:
    """Score every candidate against the query, fitting strain and zero shift (see the module docstring).

    Args:
        query: From :func:`prepare_query`.
        table: Candidates' peak lists.
        config: Strain and shift ranges, pass settings; the query's ``fwhm`` is used.
        oriented: The reflections of candidates (by row of ``table``; None where unknown), for the
            preferred-orientation fit of the best polished ones (:func:`texture_fit`); no such fit
            when None.

    Returns:
        Arrays (C,) in the table's order.
    """
    config = config or DEFAULT_MATCH
    n_cand = len(table)
    if n_cand == 0:
        empty = np.empty(0)
        return MatchResult(empty, empty, empty, empty, np.empty(0, dtype=bool), np.empty(0, dtype=bool))
    step = query.settings.step
    peaks = _peak_arrays(query, table, config)
    signal_norm = float(np.linalg.norm(query.signal))
    # Largest |d(2θ)/dε| over the covered range, degrees per unit strain: 2 tan θ_max.
    slope = math.degrees(2.0 * math.tan(math.radians(min(query.covered[1], 179.0) / 2.0)))

    # Coarse pass: all candidates, a wide filter, 0.1 % strain steps, no shift.
    coarse_fwhm = max(config.coarse_fwhm, query.fwhm, 1.5 * config.coarse_strain_step * slope)
    n_coarse = round(config.max_strain / config.coarse_strain_step)
    coarse_strains = config.coarse_strain_step * np.arange(-n_coarse, n_coarse + 1)
    grid_c = _q_grid(query, _filtered(query, coarse_fwhm), np.zeros(1), config.max_shift + coarse_fwhm)
    dots_c = _gather_scores(grid_c, peaks, coarse_strains)[0]  # (C, S)
    norms_c = _norms(peaks, coarse_fwhm, step)
    best_s = np.argmax(dots_c, axis=1)
    coarse_score = dots_c[np.arange(n_cand), best_s] / np.maximum(norms_c, 1e-12)
    coarse_strain = coarse_strains[best_s]

    # Fine pass: the best candidates, the query's width, strain around the coarse optimum, and shift.
    fwhm = query.fwhm
    n_refine = min(config.refine, n_cand)
    refine = np.argsort(-coarse_score, kind="stable")[:n_refine]
    fine_step = min(config.coarse_strain_step / 2.0, fwhm / (3.0 * slope))
    half_span = 2.0 * config.coarse_strain_step
    n_fine = math.ceil(half_span / fine_step)
    offsets = fine_step * np.arange(-n_fine, n_fine + 1)
    n_shift = round(config.max_shift / config.shift_step)
    shifts = config.shift_step * np.arange(-n_shift, n_shift + 1)
    grid_f = _q_grid(query, _filtered(query, fwhm), shifts, config.max_shift + fwhm)
    strains_f = np.clip(coarse_strain[refine][:, None] + offsets[None, :], -config.max_strain, config.max_strain)
    dots_f = _gather_scores(grid_f, peaks.take(refine), strains_f)  # (Z, R, S)
    flat = dots_f.transpose(1, 0, 2).reshape(n_refine, -1)
    best = np.argmax(flat, axis=1)
    best_z, best_sf = np.divmod(best, strains_f.shape[1])
    norms_f = _norms(peaks, fwhm, step)

    # Every candidate gets a fine-width score; unrefined ones at their coarse strain and zero shift.
    zero = int(np.argmin(np.abs(shifts)))
    dots_all = _gather_scores(
        _QGrid(grid_f.q0, grid_f.dq, grid_f.table[zero : zero + 1], shifts[zero : zero + 1]),
        peaks,
        coarse_strain[:, None],
    )[0, :, 0]
    dot = dots_all.astype(np.float64)
    strain = coarse_strain.astype(np.float64).copy()
    shift = np.zeros(n_cand)
    dot[refine] = flat[np.arange(n_refine), best]
    strain[refine] = strains_f[np.arange(n_refine), best_sf]
    shift[refine] = shifts[best_z]
    norm = np.maximum(norms_f, 1e-12)
    score = np.where(norms_f > 0, dot / (norm * max(signal_norm, 1e-12)), 0.0)
    scale = np.where(norms_f > 0, dot / (norm * norm), 0.0)
    refined = np.zeros(n_cand, dtype=bool)
    refined[refine] = True
    polished = np.zeros(n_cand, dtype=bool)
    # A profile fit needs resolved profiles: a pattern whose peaks are narrower than the width floor
    # (a simulated stick pattern, one or two bins a peak) has none, and fitting Gaussians to sticks
    # ranked an fcc metal's own pattern below another fcc metal's (Al found as Au); the grid is exact there.
    n_polish = min(config.polish, n_refine) if query.fwhm > MIN_FWHM else 0
    if n_polish:
        # Only candidates near the best grid score are worth fitting: on the real-materials benchmark
        # the right phase was never more than 0.02 behind on the grid. A fit can raise a score by
        # more than the margin (up to 0.18 when the width estimate was off), but then it raises the
        # best candidates' alike.
        rows = refine[np.argsort(-score[refine], kind="stable")[:n_polish]]
        rows = rows[score[rows] >= score[rows[0]] - config.polish_margin]
        fit = polish_fit(query, table.subset(rows), strain[rows], shift[rows], config)
        score[rows], strain[rows], shift[rows], scale[rows] = fit.score, fit.strain, fit.shift, fit.scale
        polished[rows] = True
        if oriented is not None and config.texture:
            # Texture changes intensities by up to 3×, as much as what tells isostructural compounds
            # apart; the best few are fitted with it, all alike.
            pick = np.argsort(-fit.score, kind="stable")[: config.texture]
            pick = pick[fit.score[pick] >= fit.score[pick[0]] - config.texture_margin]
            rows = rows[pick]
            phases = list(oriented([int(r) for r in rows]))
            if all(p is not None for p in phases):  # scored alike or not at all
                tex = texture_fit(query, phases, strain[rows], shift[rows], fit.fwhm[pick], config)
                score[rows] = tex.score
                texture_axis, texture_r = np.full(n_cand, -1), np.ones(n_cand)
                texture_axis[rows], texture_r[rows] = tex.axis, tex.r
                return MatchResult(score, strain, shift, scale, refined, polished, texture_axis, texture_r)
    return MatchResult(score, strain, shift, scale, refined, polished)


# -- polish: a least-squares profile fit of the best few ------------------------------------------


def _smooth_basis(centres: np.ndarray, covered: np.ndarray, knot: float) -> np.ndarray | None:
    """(n_bins, B) orthonormal columns spanning the cubic B-splines with knots every ``knot`` degrees
    over the covered bins (zero outside): the backgrounds the polish fits beside each profile.
    None when the covered range is too short to tell a background from peaks.

    Cached by grid, covered range and knot spacing (a QR of n_bins × B: milliseconds, and most
    queries share one grid and range)."""
    inside = np.flatnonzero(covered)
    if inside.size == 0 or centres[inside[-1]] - centres[inside[0]] < 2.0 * knot:
        return None
    first, last = inside[[0, -1]]
    key = (float(centres[0]), float(centres[-1]), centres.size, int(first), int(last), float(knot))
    basis = _SMOOTH_CACHE.get(key)
    if basis is None:
        if len(_SMOOTH_CACHE) >= 64:
            _SMOOTH_CACHE.clear()
        basis = _SMOOTH_CACHE[key] = _smooth_columns(centres, covered, knot)
        basis.flags.writeable = False
    return basis


_SMOOTH_CACHE: dict[tuple, np.ndarray] = {}


def _smooth_columns(centres: np.ndarray, covered: np.ndarray, knot: float) -> np.ndarray:
    from scipy.interpolate import BSpline

    x = centres[covered]
    lo, hi = float(x[0]), float(x[-1])
    n_int = max(1, math.ceil((hi - lo) / knot))
    inner = np.linspace(lo, hi, n_int + 1)
    t = np.concatenate([[lo] * 3, inner, [hi] * 3])
    basis = BSpline.design_matrix(np.clip(x, lo, hi), t, 3).toarray()
    q, _ = np.linalg.qr(basis)
    out = np.zeros((centres.size, q.shape[1]))
    out[covered] = q
    return out


POLISH_WINDOW_SIGMA = 4.0
"""Each peak of the fitted profile is drawn over ± this many of the widest allowed σ."""
POLISH_WIDTH_RANGE = (0.5, 2.0)
"""The fitted peak width stays within these factors of the estimated one."""


@dataclass(frozen=True)
class PolishedFit:
    """Least-squares profile fit of a few candidates (arrays (K,), see :func:`polish_fit`)."""

    score: np.ndarray
    """Cosine of the query with the fitted profile, both without their smooth-background component."""
    strain: np.ndarray
    shift: np.ndarray
    scale: np.ndarray
    fwhm: np.ndarray
    """Fitted instrument peak width, degrees 2θ (the prepared signal's peaks are wider by its denoising)."""


def _profile(
    query: PreparedQuery,
    sin0: np.ndarray,
    heights: np.ndarray,
    params: np.ndarray,
    covered: np.ndarray,
) -> np.ndarray:
    """Each candidate's Gaussian profile on the query's grid and its derivatives by strain, shift and σ.

    Vectorised over (candidates × peaks × window bins) with one bincount per array; bins outside
    ``covered`` are dropped. ``params`` is (K, 3): strain, shift, σ. Returns (K, 4, n_bins): the profile
    ``m`` and ``∂m/∂ε, ∂m/∂z, ∂m/∂σ``.
    """
    settings = query.settings
    n_bins, step, first = settings.n_bins, settings.step, float(settings.bin_centres()[0])
    n_cand = len(params)
    strain, shift, sigma = params[:, 0:1], params[:, 1:2], params[:, 2:3]
    sin_theta = sin0 / (1.0 + strain)
    ok = (sin_theta < 1.0) & (heights > 0)
    theta = np.arcsin(np.clip(sin_theta, 0.0, 1.0))
    two_theta = np.degrees(2.0 * theta) + shift
    dtt_de = -np.degrees(2.0 * np.tan(np.where(ok, theta, 0.0))) / (1.0 + strain)
    half = max(2, math.ceil(POLISH_WINDOW_SIGMA * float(sigma.max()) / step))
    offsets = np.arange(-half, half + 1)
    bins = np.rint((two_theta - first) / step).astype(np.int64)[:, :, None] + offsets  # (K, P, W)
    np.clip(bins, 0, n_bins - 1, out=bins)
    inside = ok[:, :, None] & covered[bins]  # a clipped bin is outside the covered range or its edge
    s = sigma[:, :, None]
    u = (first + bins * step - two_theta[:, :, None]) / s
    g = np.exp(-0.5 * u * u)
    g *= np.where(inside, heights[:, :, None], 0.0)
    flat = (np.arange(n_cand)[:, None, None] * n_bins + bins).ravel()
    gu = g * u
    gu /= s
    out = np.empty((n_cand, 4, n_bins))
    size = n_cand * n_bins
    out[:, 0] = np.bincount(flat, g.ravel(), size).reshape(n_cand, n_bins)
    out[:, 1] = np.bincount(flat, (gu * dtt_de[:, :, None]).ravel(), size).reshape(n_cand, n_bins)
    out[:, 2] = np.bincount(flat, gu.ravel(), size).reshape(n_cand, n_bins)
    out[:, 3] = np.bincount(flat, (gu * u).ravel(), size).reshape(n_cand, n_bins)
    return out


def _profile_frame(query: PreparedQuery, config: MatchConfig) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """What the profile fits (:func:`polish_fit`, :func:`texture_fit`) compare on: the covered bins
    (edges excluded: clipped window bins land there), the smooth-background basis (or None), and the
    query without its smooth part.

    The smooth background left after SNIP is fitted with each profile (variable projection: the
    query and each profile lose their component in the span of smooth B-splines). Left in, it
    credits any candidate with a peak where it is high, and it biases the scale.
    """
    centres = query.settings.bin_centres()
    lo, hi = query.covered
    covered = (centres >= lo - 1e-9) & (centres <= hi + 1e-9)
    covered[[0, -1]] = False
    smooth = _smooth_basis(centres, covered, config.polish_background) if config.polish_background > 0 else None
    y = query.signal if smooth is None else query.signal - smooth @ (smooth.T @ query.signal)
    return covered, smooth, y


def polish_fit(
    query: PreparedQuery, table: PeakTable, strain: np.ndarray, shift: np.ndarray, config: MatchConfig | None = None
) -> PolishedFit:
    """Fit each candidate's strain, zero shift, peak width and scale to the query by least squares.

    The grid passes find each candidate's strain to a fraction of a step, at the width estimated
    from the query; an isostructural compound whose cell differs by less than the strain range
    then scores within noise of the right one. Fitting all three continuously (Levenberg-Marquardt
    on the full profile, the scale solved with them) lets the right phase's peaks line up exactly,
    so what separates isostructural candidates is their relative intensities: the physics a
    diffractionist reads. A smooth background (cubic B-splines, ``polish_background`` degrees
    apart) is fitted with each profile: what SNIP leaves of a steep background would otherwise
    credit whichever candidate has peaks there. The score is the cosine of the query with the
    fitted profile, both without their smooth part (the least-squares residual is ‖y‖²(1 − score²)).

    Measured on the phase-identification benchmark (10k real materials): top-1 0.905 → 0.95 from
    the fit, 0.965 with the background; Poisson weights, or comparing extracted (Le Bail)
    intensities instead, gained nothing.

    Args:
        query: The prepared pattern.
        table: The candidates to fit (a few: the cost is K × peaks × window bins per step).
        strain, shift: (K,) starting values (from the grid passes).
        config: Strain and shift ranges, ``polish_iterations``, ``polish_background``, ``intensity_power``.
    """
    config = config or DEFAULT_MATCH
    live = table.intensity > 0
    heights = np.where(live, np.power(np.clip(table.intensity, 0.0, None), config.intensity_power), 0.0)
    sin0 = query.settings.wavelength / (2.0 * np.where(live, table.d, 1.0))
    n_cand = len(table)
    sigma0 = _seen_width(query) * FWHM_TO_SIGMA
    bounds = np.array(
        [
            [-config.max_strain, -config.max_shift, POLISH_WIDTH_RANGE[0] * sigma0],
            [config.max_strain, config.max_shift, POLISH_WIDTH_RANGE[1] * sigma0],
        ]
    )
    params = np.stack([np.asarray(strain, float), np.asarray(shift, float), np.full(n_cand, sigma0)], axis=1)
    params = np.clip(params, bounds[0], bounds[1])

    covered, smooth, y = _profile_frame(query, config)
    y_norm = max(float(np.linalg.norm(y)), 1e-12)

    def state(p: np.ndarray):
        arrays = _profile(query, sin0, heights, p, covered)
        m = arrays[:, 0]
        if smooth is not None:  # the derivatives keep their smooth part: only the Hessian is approximate
            m -= (m @ smooth) @ smooth.T
        mm = np.einsum("kn,kn->k", m, m)
        alpha = np.where(mm > 0, (m @ y) / np.maximum(mm, 1e-300), 0.0)
        resid = y[None, :] - alpha[:, None] * m
        return arrays, alpha, resid, np.einsum("kn,kn->k", resid, resid)

    arrays, alpha, resid, cost = state(params)
    damping = np.full(n_cand, 1e-3)
    eye = np.eye(4)
    for _ in range(config.polish_iterations):
        # Jacobian of α·m by (α, ε, z, σ): the rows of ``arrays`` scaled by (1, α, α, α).
        factor = np.ones((n_cand, 4))
        factor[:, 1:] = alpha[:, None]
        jtj = (arrays @ arrays.transpose(0, 2, 1)) * factor[:, :, None] * factor[:, None, :]
        jtr = (arrays @ resid[:, :, None])[:, :, 0] * factor
        diag = np.einsum("kii->ki", jtj)
        lhs = jtj + damping[:, None, None] * diag[:, :, None] * eye + 1e-12 * eye
        try:
            delta = np.linalg.solve(lhs, jtr[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            break
        trial = np.clip(params + delta[:, 1:], bounds[0], bounds[1])
        t_arrays, t_alpha, t_resid, t_cost = state(trial)
        better = t_cost < cost
        damping = np.where(better, damping / 3.0, damping * 4.0)
        if better.any():
            params[better], arrays[better], alpha[better] = trial[better], t_arrays[better], t_alpha[better]
            resid[better], cost[better] = t_resid[better], t_cost[better]
    m = arrays[:, 0]
    m_norm = np.linalg.norm(m, axis=1)
    score = np.where(m_norm > 0, (m @ y) / (np.maximum(m_norm, 1e-300) * y_norm), 0.0)
    seen = params[:, 2] / FWHM_TO_SIGMA
    denoise = math.sqrt(max(_seen_width(query) ** 2 - query.fwhm**2, 0.0))  # the denoising's own width
    fwhm = np.sqrt(np.maximum(seen**2 - denoise**2, (MIN_FWHM / 2.0) ** 2))
    return PolishedFit(score, params[:, 0], params[:, 1], alpha, fwhm)


TEXTURE_R = np.geomspace(0.5, 2.0, 13)
"""March-Dollase r tried along each axis: plates (< 1) to needles (> 1), 1 (a random powder) included."""
TEXTURE_MAX_REFLECTIONS = 384
"""Strongest reflections of a candidate drawn in the texture fit (the rest are below noise)."""


@dataclass(frozen=True)
class TextureFit:
    """Preferred-orientation fit of a few candidates (arrays (K,), see :func:`texture_fit`)."""

    score: np.ndarray
    """Cosine of the query with the best textured profile (as :class:`PolishedFit`'s, background-free)."""
    axis: np.ndarray
    """Index into the candidate's ``OrientedReflections.axes`` of the best axis."""
    r: np.ndarray
    """Its March-Dollase r."""


def texture_fit(
    query: PreparedQuery,
    phases: Sequence[OrientedReflections],
    strain: np.ndarray,
    shift: np.ndarray,
    fwhm: np.ndarray,
    config: MatchConfig | None = None,
) -> TextureFit:
    """Fit each candidate's preferred orientation: the best of March-Dollase along each of its axes
    (:func:`~matconcept.encoders.xrd.texture.low_index_axes`) at every r of :data:`TEXTURE_R`, at the
    strain, shift and width of :func:`polish_fit`, scored like it (cosine after removing a smooth
    background).

    Why: after the polish, the error left between a textured measurement and the right phase is in
    its intensities, and so is what tells isostructural compounds apart; without a texture model
    the wrong one of two wins whenever the texture happens to favour it. Every candidate fitted
    gets the same freedom (its 8 lowest-order axes × 13 r), so the comparison stays fair; on the phase-identification
    benchmark this is the step that decides between ZrC and HfC. The model is drawn from each
    candidate's reflections (not its merged peak list), since a texture acts per reflection
    direction. Vectorised over (axes × r × reflections) per candidate, through the reflections' overlaps.

    Args:
        query: The prepared pattern.
        phases: The candidates' reflections with their directions
            (:func:`~matconcept.encoders.xrd.texture.oriented_reflections` at the peak lists' settings).
        strain, shift, fwhm: (K,) the polished fit's values (fwhm: the instrument's, degrees).
        config: ``intensity_power`` and ``polish_background``.
    """
    config = config or DEFAULT_MATCH
    settings = query.settings
    n_bins, step = settings.n_bins, settings.step
    first = float(settings.bin_centres()[0])
    lo, hi = query.covered
    covered, smooth, y = _profile_frame(query, config)
    y_norm = max(float(np.linalg.norm(y)), 1e-12)
    denoise2 = max(_seen_width(query) ** 2 - query.fwhm**2, 0.0)
    n_cand = len(phases)
    score, axis, r_best = np.zeros(n_cand), np.full(n_cand, -1), np.ones(n_cand)
    for k, phase in enumerate(phases):
        refl = phase.reflections
        sigma = math.sqrt(float(fwhm[k]) ** 2 + denoise2) * FWHM_TO_SIGMA
        sin_theta = settings.wavelength / (2.0 * refl.d * (1.0 + float(strain[k])))
        ok = (sin_theta < 1.0) & (refl.intensity > 0)
        two_theta = np.full(refl.d.shape, np.nan)
        two_theta[ok] = np.degrees(2.0 * np.arcsin(sin_theta[ok])) + float(shift[k])
        reach = POLISH_WINDOW_SIGMA * sigma
        keep = np.flatnonzero(ok & (two_theta > lo - reach) & (two_theta < hi + reach))
        if keep.size > TEXTURE_MAX_REFLECTIONS:
            keep = keep[np.argpartition(-refl.intensity[keep], TEXTURE_MAX_REFLECTIONS - 1)[:TEXTURE_MAX_REFLECTIONS]]
        if keep.size == 0:
            continue
        heights = np.power(refl.intensity[keep], config.intensity_power)
        # Every variant's profile is m_v = (f_v ∘ heights) · G, G the reflections' Gaussians (P × bins,
        # sparse), so its dot product with the query and its norm (both without the smooth part) come
        # from G·y and the reflections' overlap matrix: no variant is ever drawn.
        half = max(2, math.ceil(reach / step))
        bins = np.rint((two_theta[keep] - first) / step).astype(np.int64)[:, None] + np.arange(-half, half + 1)
        np.clip(bins, 0, n_bins - 1, out=bins)
        u = (first + bins * step - two_theta[keep][:, None]) / sigma
        g = np.exp(-0.5 * u * u) * covered[bins]  # (P, W)
        rows = np.repeat(np.arange(keep.size), bins.shape[1])
        gauss = sparse.csr_matrix((g.ravel(), (rows, bins.ravel())), shape=(keep.size, n_bins))
        overlap = (gauss @ gauss.T).toarray()
        if smooth is not None:
            smooth_part = gauss @ smooth
            overlap -= smooth_part @ smooth_part.T
        weights = (march_dollase_factors(phase.normals[keep], phase.axes, TEXTURE_R) * heights).reshape(-1, keep.size)
        dots = weights @ (gauss @ y)
        norms = np.sqrt(np.maximum(np.einsum("vp,vp->v", weights @ overlap, weights), 0.0))
        cosines = np.where(norms > 0, dots / (np.maximum(norms, 1e-300) * y_norm), 0.0)
        best = int(np.argmax(cosines))
        score[k] = cosines[best]
        axis[k], r_index = divmod(best, len(TEXTURE_R))
        r_best[k] = TEXTURE_R[r_index]
    return TextureFit(score, axis, r_best)


# -- mixtures ------------------------------------------------------------------------------------
def _model_peaks(query: PreparedQuery, peaks: PeakList, strain: float, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """A candidate's peak positions as the query sees them (strained, shifted; degrees) and heights."""
    sin_theta = query.settings.wavelength / (2.0 * peaks.d * (1.0 + strain))
    ok = sin_theta < 1.0
    return np.degrees(2.0 * np.arcsin(sin_theta[ok])) + shift, peaks.intensity[ok]


def _seen_width(query: PreparedQuery) -> float:
    """Width of a peak in ``query.signal``: the instrument's, widened by the light denoising (σ/2)."""
    return query.fwhm * math.sqrt(1.25)


def model_pattern(query: PreparedQuery, peaks: PeakList, strain: float, shift: float) -> np.ndarray:
    """A candidate's pattern as the query sees it: its peaks strained, shifted and broadened to the
    query's width, on the query's grid (strongest peak height 1 before overlaps), zero outside
    the covered range."""
    two_theta, heights = _model_peaks(query, peaks, strain, shift)
    centres = query.settings.bin_centres()
    out = render_peaks(two_theta, heights, centres, _seen_width(query))
    lo, hi = query.covered
    out[(centres < lo) | (centres > hi)] = 0.0
    return out


def explained_by_peaks(query: PreparedQuery, peaks: PeakList, strain: float, shift: float) -> np.ndarray:
    """The part of the query a phase's peak positions can explain, each peak's height fitted freely.

    Non-negative least squares of the query on one Gaussian per peak (at the fitted strain and
    shift): preferred orientation or a wrong form factor changes relative heights, not positions,
    so this removes a phase's peaks whatever their heights (a Le Bail-like fit), and what is left
    belongs to other phases.

    Returns:
        (n_bins,) the fitted sum of peaks.
    """
    two_theta, _ = _model_peaks(query, peaks, strain, shift)
    centres = query.settings.bin_centres()
    lo, hi = query.covered
    two_theta = two_theta[(two_theta >= lo) & (two_theta <= hi)]
    out = np.zeros(centres.size)
    if two_theta.size == 0:
        return out
    sigma = _seen_width(query) * FWHM_TO_SIGMA
    # Each peak is a window of ±4σ bins; only bins inside some window take part in the fit.
    step = query.settings.step
    half = math.ceil(4.0 * sigma / step)
    rows = np.searchsorted(centres, two_theta)[:, None] + np.arange(-half, half + 1)[None, :]  # (P, W)
    valid = (rows >= 0) & (rows < centres.size)
    rows = np.clip(rows, 0, centres.size - 1)
    near = np.zeros(centres.size, dtype=bool)
    near[rows[valid]] = True
    compact = np.cumsum(near) - 1  # bin → row of the fit
    u = (centres[rows] - two_theta[:, None]) / sigma
    gauss = np.where(valid, np.exp(-0.5 * u * u), 0.0)
    y = query.signal[near]
    n_peaks = len(two_theta)
    cols = np.broadcast_to(np.arange(n_peaks)[:, None], rows.shape)
    dense = np.zeros((int(near.sum()), n_peaks))
    dense[compact[rows[valid]], cols[valid]] = gauss[valid]
    # Which peaks are there at all: non-negative heights.
    active = _nnls(dense, y) > 0
    if not active.any():
        return out
    # Then let each present peak move and widen a little (first and second derivative of its
    # Gaussian, linearised): fitted strain, shift and width are only as good as their grid steps,
    # and a peak off by a fifth of its width leaves a residual that looks like a small phase.
    # Sparse (each column lives in its window) and solved by normal equations: milliseconds.
    from scipy.sparse import csc_matrix

    g, ua, r = gauss[active], u[active], compact[rows[active]]
    ok = valid[active]
    n_act = int(active.sum())
    col = np.broadcast_to(np.arange(n_act)[:, None], g.shape)
    values = np.concatenate([g[ok], (g * ua)[ok], (g * (ua * ua - 1.0))[ok]])
    row_index = np.concatenate([r[ok]] * 3)
    col_index = np.concatenate([col[ok], col[ok] + n_act, col[ok] + 2 * n_act])
    basis = csc_matrix((values, (row_index, col_index)), shape=(len(y), 3 * n_act))
    gram = (basis.T @ basis).toarray()
    gram[np.diag_indices_from(gram)] *= 1.0 + 1e-9  # a tiny ridge keeps coincident peaks solvable
    gram[np.diag_indices_from(gram)] += 1e-12
    coeff = np.linalg.solve(gram, basis.T @ y)
    a = np.clip(coeff[:n_act], 0.0, None)
    # Keep the corrections small (a shift of ≤ σ/2, a width change of ≤ 25 %): larger ones are not
    # corrections but other peaks, which must stay in the residual.
    b = np.clip(coeff[n_act : 2 * n_act], -0.5 * a, 0.5 * a)
    c = np.clip(coeff[2 * n_act :], -0.25 * a, 0.25 * a)
    out[near] = basis @ np.concatenate([a, b, c])
    return out


def residual_query(
    query: PreparedQuery, models: list[np.ndarray], explained: list[np.ndarray]
) -> tuple[PreparedQuery, np.ndarray, float]:
    """What the found phases leave unexplained, and each phase's share of the query.

    Shares come from a non-negative least-squares fit of the query by the phases' patterns
    (``models``, their simulated relative heights). The residual is the query minus the peak-wise
    fits (``explained``, from :func:`explained_by_peaks`), positive part only: a peak weakened by
    texture is not a missing phase, and over-subtraction is not a phase either.

    Returns:
        ``(residual query (same width and grid), shares (K,) — each phase's fraction of the query's
        L2 intensity, the strongest unexplained peak relative to the query's strongest)``.
    """
    y = query.signal
    basis = np.stack(models, axis=1)  # (n, K)
    coeff = _nnls(basis, y)
    norm = float(np.linalg.norm(y)) or 1.0
    shares = np.array([float(np.linalg.norm(basis[:, k] * coeff[k])) / norm for k in range(len(models))])
    total = np.sum(shares)
    if total > 1.0:
        shares = shares / total
    positive = np.clip(y - np.maximum.reduce(explained) if len(explained) > 1 else y - explained[0], 0.0, None)
    # What is left of the background after subtraction is broad: clip it off again, so that only
    # peak-like leftovers count, then measure them through the peak-shaped filter (noise averages out).
    step = query.settings.step
    lo, hi = (int(i) for i in np.flatnonzero(query.signal != 0)[[0, -1]])
    window = max(1, round(2.0 * _seen_width(query) / step))
    positive[lo : hi + 1] -= snip_background(positive[lo : hi + 1], window)
    positive = np.clip(positive, 0.0, None)
    sigma_bins = _seen_width(query) * FWHM_TO_SIGMA / step
    filtered_y = gaussian_filter1d(y, sigma_bins, mode="constant").max()
    fraction = float(gaussian_filter1d(positive, sigma_bins, mode="constant").max() / (filtered_y or 1.0))
    top = positive.max()
    residual = replace(query, signal=positive / top if top > 0 else positive)
    return residual, shares, fraction


def _nnls(basis: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative least squares (scipy's active-set solver; a few to ~64 columns)."""
    from scipy.optimize import nnls

    coeff, _ = nnls(basis, y)
    return coeff


def identify_phases(
    query: PreparedQuery,
    table: PeakTable,
    config: MatchConfig | None = None,
    *,
    max_phases: int = 2,
    min_residual: float = 0.1,
    min_score: float = 0.5,
    oriented: Callable[[Sequence[int]], Sequence[OrientedReflections | None]] | None = None,
) -> PhaseSearch:
    """Greedy multi-phase identification: best match, subtract it, search the residual, repeat.

    A further phase is reported only while an unexplained peak of at least ``min_residual`` of the
    query's strongest is left and the best candidate explains the residual with a score of at
    least ``min_score``.

    Args:
        query: The prepared measured pattern.
        table: Candidates' peak lists (all phases are sought among them).
        config: Matching settings.
        max_phases: Most phases reported.
        min_residual: Relative height of the strongest unexplained peak below which the search stops.
        min_score: Match score a residual's best candidate needs to count as a phase.
        oriented: Candidates' reflections for the texture fit of the first match (see :func:`match_peaks`).
    """
    config = config or DEFAULT_MATCH
    first = match_peaks(query, table, config, oriented)
    if len(table) == 0:
        return PhaseSearch([], 1.0, first)
    order = first.order()
    found = [(int(order[0]), float(first.score[order[0]]), float(first.strain[order[0]]), float(first.shift[order[0]]))]
    models = [model_pattern(query, table.row(found[0][0]), found[0][2], found[0][3])]
    explained = [explained_by_peaks(query, table.row(found[0][0]), found[0][2], found[0][3])]
    residual, shares, fraction = residual_query(query, models, explained)
    while len(found) < max_phases and fraction >= min_residual:
        result = match_peaks(residual, table, config)
        score = result.score.copy()
        score[[f[0] for f in found]] = -np.inf
        best = int(np.argmax(score))
        if not score[best] >= min_score:
            break
        found.append((best, float(score[best]), float(result.strain[best]), float(result.shift[best])))
        models.append(model_pattern(query, table.row(best), found[-1][2], found[-1][3]))
        explained.append(explained_by_peaks(query, table.row(best), found[-1][2], found[-1][3]))
        residual, shares, fraction = residual_query(query, models, explained)
        logger.debug("phase %d: candidate %d, score %.3f, residual %.3f", len(found), best, score[best], fraction)
    phases = [
        Phase(index=i, score=s, strain=e, shift=z, weight=float(w))
        for (i, s, e, z), w in zip(found, shares, strict=True)
    ]
    return PhaseSearch(phases, fraction, first)
