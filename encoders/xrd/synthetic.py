"""Measured-looking powder patterns of known structures: what tests, benchmarks and demos query with.

A lab diffractometer does not return a stick pattern. :func:`simulate_measured` turns one structure
(or a mixture of several) into the two-column data a user would export, with everything phase
identification must survive:

* isotropic lattice strain (d → d(1 + ε)): thermal expansion, solid solution, a different refinement;
* a 2θ zero shift (sample displacement, misaligned goniometer);
* preferred orientation (March-Dollase: plate- or needle-like crystallites along a low-index axis of
  the conventional standard cell, :mod:`~matconcept.encoders.xrd.texture`);
* instrument broadening: pseudo-Voigt peaks of one FWHM in 2θ (Gaussian by default);
* a background: a slope, a low-angle decay (air scatter) and an amorphous hump;
* counting noise: Poisson counts with the strongest peak at ``1 / noise²`` counts.

It works from the simulator's reflections (hkl, d, intensity), so peak positions are exact at any
strain and wavelength, unlike shifting the bins of a histogram. :func:`random_conditions` draws the
conditions the phase-identification benchmark and tests use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from matconcept.encoders.xrd.settings import DEFAULT_SETTINGS, XRDSettings
from matconcept.encoders.xrd.simulate import Reflections, XRDSimulator
from matconcept.encoders.xrd.texture import TEXTURE_AXES, conventional_axes, march_dollase_factors, reflection_normals

if TYPE_CHECKING:
    from pymatgen.core import Structure

FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
"""σ of a Gaussian of unit FWHM."""
GAUSS_HALF_WIDTH = 4.0
"""A Gaussian peak is drawn over ± this many σ."""
LORENTZ_HALF_WIDTH = 25.0
"""A pseudo-Voigt peak with a Lorentzian part is drawn over ± this many FWHM (its tails are long)."""
STRAIN_MARGIN = 0.1
"""Reflections are simulated over a 2θ range this fraction wider than the grid, so strain and shift
bring peaks in from outside it."""


class MeasuredConditions(BaseModel):
    """How a measurement differs from the ideal simulated pattern (one draw of sample and instrument)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    strain: float = Field(default=0.0, gt=-0.2, lt=0.2, description="isotropic strain ε: d → d(1 + ε)")
    zero_shift: float = Field(default=0.0, ge=-2.0, le=2.0, description="2θ zero error, degrees (added to every peak)")
    fwhm: float = Field(default=0.15, gt=0, le=5.0, description="peak full width at half maximum, degrees 2θ")
    lorentz_fraction: float = Field(default=0.0, ge=0, le=1, description="pseudo-Voigt η (0 = Gaussian)")
    texture: float = Field(
        default=1.0, gt=0, le=10, description="March-Dollase r: 1 = random powder, < 1 plates, > 1 needles"
    )
    texture_axis: tuple[int, int, int] = Field(
        default=(0, 0, 1), description="preferred-orientation axis (hkl of the conventional standard cell)"
    )
    background: float = Field(default=0.0, ge=0, le=10, description="background level, relative to the strongest peak")
    noise: float = Field(
        default=0.0, ge=0, lt=1, description="relative counting noise at the strongest peak (1/√counts); 0 = none"
    )


def random_conditions(
    rng: np.random.Generator,
    *,
    strain: float = 0.02,
    fwhm: tuple[float, float] = (0.05, 0.3),
    zero_shift: float = 0.1,
    noise: tuple[float, float] = (0.01, 0.04),
    background: tuple[float, float] = (0.02, 0.2),
    texture: tuple[float, float] = (0.7, 1.0),
) -> MeasuredConditions:
    """Draw measurement conditions uniformly from the given ranges (noise log-uniformly).

    Defaults are the phase-identification benchmark's: strain ±2 %, FWHM 0.05-0.3°, zero shift
    ±0.1°, 1-4 % noise, a background of 2-20 % of the strongest peak, March-Dollase r 0.7-1 along
    a random low-index axis.
    """
    lo, hi = noise
    return MeasuredConditions(
        strain=float(rng.uniform(-strain, strain)),
        zero_shift=float(rng.uniform(-zero_shift, zero_shift)),
        fwhm=float(rng.uniform(*fwhm)),
        texture=float(rng.uniform(*texture)),
        texture_axis=TEXTURE_AXES[int(rng.integers(len(TEXTURE_AXES)))],
        background=float(rng.uniform(*background)),
        noise=float(math.exp(rng.uniform(math.log(lo), math.log(hi)))) if hi > 0 else 0.0,
    )


def march_dollase(hkl: np.ndarray, reciprocal_metric: np.ndarray, axis: Sequence[int], r: float) -> np.ndarray:
    """March-Dollase preferred-orientation factor of each reflection (1 everywhere when r = 1).

    P(α) = (r² cos² α + sin² α / r)^(-3/2), α the angle between the reflection's normal g and the
    preferred axis (both reciprocal-lattice vectors: angles from the reciprocal metric G*).

    Args:
        hkl: (P, 3) Miller indices.
        reciprocal_metric: (3, 3) G*, Å⁻².
        axis: The preferred-orientation axis as Miller indices.
        r: March-Dollase parameter.
    """
    if r == 1.0 or len(hkl) == 0:
        return np.ones(len(hkl))
    h = np.asarray(hkl, dtype=np.float64)
    a = np.asarray(axis, dtype=np.float64)
    g_axis = h @ reciprocal_metric @ a
    g_norm = np.sqrt(np.einsum("pi,ij,pj->p", h, reciprocal_metric, h))
    a_norm = math.sqrt(float(a @ reciprocal_metric @ a))
    cos2 = np.clip((g_axis / (g_norm * a_norm)) ** 2, 0.0, 1.0)
    return (r * r * cos2 + (1.0 - cos2) / r) ** -1.5


def render_peaks(
    two_theta: np.ndarray, heights: np.ndarray, grid: np.ndarray, fwhm: float, lorentz_fraction: float = 0.0
) -> np.ndarray:
    """Sum of pseudo-Voigt peaks of unit height × ``heights`` at ``two_theta``, sampled on ``grid``.

    Vectorised over peaks (a (P, window) block and one bincount). ``grid`` must be uniform.
    """
    out = np.zeros(grid.size)
    if two_theta.size == 0 or grid.size == 0:
        return out
    step = float(grid[1] - grid[0]) if grid.size > 1 else 1.0
    sigma = fwhm * FWHM_TO_SIGMA
    half = GAUSS_HALF_WIDTH * sigma if lorentz_fraction == 0 else LORENTZ_HALF_WIDTH * fwhm
    n_half = max(1, math.ceil(half / step))
    start = np.floor((two_theta - grid[0]) / step).astype(np.int64) - n_half + 1
    index = start[:, None] + np.arange(2 * n_half)[None, :]
    offset = grid[0] + index * step - two_theta[:, None]
    profile = (1.0 - lorentz_fraction) * np.exp(-0.5 * (offset / sigma) ** 2)
    if lorentz_fraction:
        profile += lorentz_fraction / (1.0 + (2.0 * offset / fwhm) ** 2)
    inside = (index >= 0) & (index < grid.size)
    return np.bincount(index[inside], (profile * heights[:, None])[inside], grid.size)


def _background(grid: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """A slope, a low-angle decay and an amorphous hump, scaled so that its mean is ``level``."""
    if level == 0:
        return np.zeros(grid.size)
    t = (grid - grid[0]) / max(float(grid[-1] - grid[0]), 1e-9)
    slope = 1.0 - rng.uniform(0.3, 0.8) * t
    decay = rng.uniform(0.5, 2.0) * np.exp(-t / rng.uniform(0.05, 0.3))
    hump = rng.uniform(0.0, 1.0) * np.exp(-(((t - rng.uniform(0.1, 0.3)) / rng.uniform(0.05, 0.1)) ** 2))
    shape = slope + decay + hump
    return level * shape / shape.mean()


def phase_profile(
    structure: Structure | Reflections,
    conditions: MeasuredConditions,
    grid: np.ndarray,
    wavelength: float,
    reciprocal_metric: np.ndarray | None = None,
) -> np.ndarray:
    """One phase's noiseless peak profile on ``grid`` (degrees 2θ at ``wavelength``), max-normalised.

    Strain, zero shift, texture and broadening from ``conditions``; no background, no noise.
    ``reciprocal_metric`` is needed with texture when ``structure`` is given as reflections.
    """
    if isinstance(structure, Reflections):
        reflections = structure
    else:
        lo, hi = float(grid[0]), float(grid[-1])
        span = hi - lo
        settings = XRDSettings(
            wavelength=wavelength,
            two_theta_min=max(0.0, lo - STRAIN_MARGIN * span),
            two_theta_max=min(179.0, hi + STRAIN_MARGIN * span),
            step=(min(179.0, hi + STRAIN_MARGIN * span) - max(0.0, lo - STRAIN_MARGIN * span)) / 1000,
        )
        reflections = XRDSimulator(settings).reflections(structure)
    intensity = reflections.intensity
    if conditions.texture != 1.0:
        if isinstance(structure, Reflections):  # the axis in the cell of the given hkl
            if reciprocal_metric is None:
                raise ValueError("texture needs the reciprocal metric when reflections are given")
            factor = march_dollase(reflections.hkl, reciprocal_metric, conditions.texture_axis, conditions.texture)
        else:  # the axis in the conventional standard cell, whatever cell the structure is given in
            normals = reflection_normals(reflections.hkl, structure.lattice.matrix)
            axis = conventional_axes(structure, [conditions.texture_axis])
            factor = march_dollase_factors(normals, axis, [conditions.texture])[0, 0]
        intensity = intensity * factor
    sin_theta = wavelength / (2.0 * reflections.d * (1.0 + conditions.strain))
    ok = sin_theta < 1.0
    two_theta = np.degrees(2.0 * np.arcsin(sin_theta[ok])) + conditions.zero_shift
    profile = render_peaks(two_theta, intensity[ok], grid, conditions.fwhm, conditions.lorentz_fraction)
    top = profile.max()
    return profile / top if top > 0 else profile


def simulate_measured(
    phases: Structure | Sequence[Structure],
    conditions: MeasuredConditions | None = None,
    *,
    fractions: Sequence[float] | None = None,
    settings: XRDSettings | None = None,
    two_theta: np.ndarray | None = None,
    rng: np.random.Generator | int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A measured-looking powder pattern of one structure or a mixture: what a diffractometer exports.

    Args:
        phases: The structure, or several for a mixture.
        conditions: Strain, shift, broadening, texture, background, noise (shared by all phases);
            a clean, Gaussian-broadened pattern when None.
        fractions: Height of each phase's strongest peak relative to the others (default: equal).
        settings: Wavelength and 2θ grid of the "measurement" (the model's Cu Kα grid when None);
            the output 2θ are its bin centres unless ``two_theta`` is given.
        two_theta: Measurement points, degrees, uniform and increasing (overrides the grid).
        rng: Random generator or seed (background shape and counting noise).

    Returns:
        ``(two_theta, intensity)``, float64 (N,); intensity in counts (strongest peak about
        ``1/noise²`` counts, or 1 without noise).
    """
    settings = settings or DEFAULT_SETTINGS
    conditions = conditions or MeasuredConditions()
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    # A pymatgen Structure is itself a Sequence (of sites): tell one phase from several by its lattice.
    structures = [phases] if hasattr(phases, "lattice") else list(phases)
    weights = [1.0] * len(structures) if fractions is None else [float(f) for f in fractions]
    if len(weights) != len(structures):
        raise ValueError(f"{len(structures)} phases but {len(weights)} fractions")
    grid = settings.bin_centres() if two_theta is None else np.asarray(two_theta, dtype=np.float64)
    signal = np.zeros(grid.size)
    for structure, weight in zip(structures, weights, strict=True):
        signal += weight * phase_profile(structure, conditions, grid, settings.wavelength)
    top = signal.max()
    if top > 0:
        signal /= top
    signal += _background(grid, conditions.background, rng)
    if conditions.noise > 0:
        counts_at_peak = 1.0 / conditions.noise**2
        signal = rng.poisson(signal * counts_at_peak).astype(np.float64)
    return grid, signal
