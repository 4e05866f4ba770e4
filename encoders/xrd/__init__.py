"""Powder X-ray diffraction patterns on the paper's 5000-bin grid: simulated and measured.

The package, by job:

* :mod:`.settings` — :class:`XRDSettings`, the wavelength and 2θ grid (defaults: the paper's Cu Kα,
  10-110°, 0.02°, 5000 bins) and their constants;
* :mod:`.histogram` — :func:`pattern_from_peaks`, a peak list → the max-normalised histogram (the
  published pipeline's last step);
* :mod:`.simulate` — :class:`XRDSimulator`, the fast vectorised simulator of a structure's pattern;
* :mod:`.measured` — :func:`read_pattern` (two-column text exports, ``.xrdml``), wavelengths
  (:func:`parse_wavelength`) and :func:`measured_on_grid`: a measured diffractometer export (any
  step, range and wavelength) checked and turned into the same vector, so it can be used as a query.

Phase identification (which stored material is this measured pattern?) builds on those:

* :mod:`.peaks` — a structure's strongest peaks as (d, intensity), what a store keeps per material;
* :mod:`.match` — search-match: background removal, width estimate, the score of every candidate
  with strain and zero shift fitted (vectorised), and the greedy mixture search;
* :mod:`.fingerprint` — a strain-tolerant vector (ln-d differences) for finding candidates;
* :mod:`.synthetic` — measured-looking patterns of known structures (strain, shift, broadening,
  texture, background, counting noise), for tests, benchmarks and demos.

pymatgen's reference pattern and the validation set it is compared on live with the tests
(``tests/xrd_reference.py``): nothing in the product needs them.
"""

from matconcept.encoders.xrd.histogram import pattern_from_peaks
from matconcept.encoders.xrd.measured import (
    WAVELENGTHS,
    MeasuredOnGrid,
    MeasuredPattern,
    measured_on_grid,
    parse_wavelength,
    read_pattern,
    read_xy,
    resample_pattern,
)
from matconcept.encoders.xrd.settings import (
    CU_KA,
    DEFAULT_SETTINGS,
    N_BINS,
    TWO_THETA_MAX,
    TWO_THETA_MIN,
    TWO_THETA_STEP,
    XRDSettings,
)
from matconcept.encoders.xrd.simulate import XRDSimulator, clear_caches

__all__ = [
    "CU_KA",
    "DEFAULT_SETTINGS",
    "N_BINS",
    "TWO_THETA_MAX",
    "TWO_THETA_MIN",
    "TWO_THETA_STEP",
    "WAVELENGTHS",
    "MeasuredOnGrid",
    "MeasuredPattern",
    "XRDSettings",
    "XRDSimulator",
    "clear_caches",
    "measured_on_grid",
    "parse_wavelength",
    "pattern_from_peaks",
    "read_pattern",
    "read_xy",
    "resample_pattern",
]
