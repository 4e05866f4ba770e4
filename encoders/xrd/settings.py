"""The 2θ grid and wavelength of a pattern: the paper's settings and their validation.

The XRD encoder of Suzuki et al. (MLST 2022) reads a 5000-point vector: the powder pattern of a
crystal for Cu Kα radiation (1.54184 Å) from 2θ = 10° to 110° in steps of 0.02°, divided by its own
maximum. Simulated and measured patterns are both put on this grid, so one settings model, stored
in a model's checkpoint, describes both.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

CU_KA = 1.54184
"""Å; Cu Kα wavelength used by the paper (pymatgen's ``WAVELENGTHS["CuKa"]``)."""

TWO_THETA_MIN = 10.0
"""Degrees; lower end of the paper's 2θ range."""

TWO_THETA_MAX = 110.0
"""Degrees; upper end of the paper's 2θ range."""

TWO_THETA_STEP = 0.02
"""Degrees; width of one histogram bin in the paper."""

N_BINS = 5000
"""Length of the pattern vector the XRD encoder reads: (110 − 10) / 0.02."""

SETTINGS_GRID_TOL = 1e-6
"""Relative tolerance for (2θ_max − 2θ_min) / step to be an integer number of bins."""


class XRDSettings(BaseModel):
    """Wavelength and 2θ grid of a pattern (defaults: the paper's Cu Kα, 10-110°, 0.02°)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    wavelength: float = Field(default=CU_KA, gt=0, description="X-ray wavelength, Å")
    two_theta_min: float = Field(default=TWO_THETA_MIN, ge=0, lt=180, description="grid start, degrees")
    two_theta_max: float = Field(default=TWO_THETA_MAX, gt=0, lt=180, description="grid end, degrees")
    step: float = Field(default=TWO_THETA_STEP, gt=0, description="bin width, degrees")

    @model_validator(mode="after")
    def _check_grid(self) -> XRDSettings:
        if self.two_theta_max <= self.two_theta_min:
            raise ValueError(f"two_theta_max={self.two_theta_max} must exceed two_theta_min={self.two_theta_min}")
        n = (self.two_theta_max - self.two_theta_min) / self.step
        if abs(n - round(n)) > SETTINGS_GRID_TOL * max(n, 1.0):
            raise ValueError(
                f"the range {self.two_theta_min}-{self.two_theta_max}° is not a whole number of {self.step}° steps"
            )
        return self

    @property
    def n_bins(self) -> int:
        """Number of bins, (2θ_max − 2θ_min) / step (5000 for the defaults)."""
        return round((self.two_theta_max - self.two_theta_min) / self.step)

    def bin_edges(self) -> np.ndarray:
        """Bin edges in degrees, ``np.linspace(min, max, n_bins + 1)`` exactly as published."""
        return np.linspace(self.two_theta_min, self.two_theta_max, self.n_bins + 1)

    def bin_centres(self) -> np.ndarray:
        """Bin centres in degrees, shape (n_bins,)."""
        edges = self.bin_edges()
        return 0.5 * (edges[:-1] + edges[1:])


DEFAULT_SETTINGS = XRDSettings()
"""The paper's settings."""
