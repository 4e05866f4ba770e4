"""pymatgen's reference pattern and the validation set: what the fast simulator is checked against.

Neither is part of the product, so they live here, next to the tests: ``tests/test_xrd.py`` compares
:class:`~matconcept.encoders.xrd.XRDSimulator` with :func:`pymatgen_pattern` on
:func:`reference_structures`, and ``benchmarks/bench_xrd.py`` times both on the same set (it puts
the repository root on ``sys.path`` to import this module as ``tests.xrd_reference``).
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from typing import NamedTuple

import numpy as np
from pymatgen.core import Structure

from matconcept.encoders.builtin import aflow_prototypes, crystals_cifs
from matconcept.encoders.xrd import DEFAULT_SETTINGS, XRDSettings, pattern_from_peaks

logger = logging.getLogger(__name__)


def pymatgen_pattern(structure: Structure, settings: XRDSettings | None = None) -> np.ndarray:
    """The published pipeline, literally: pymatgen ``XRDCalculator`` then the histogram.

    Kept as the reference for tests and the benchmark; :class:`~matconcept.encoders.xrd.XRDSimulator`
    is the fast path.
    ``U11_cif`` … site properties (anisotropic displacement), which recent pymatgen would turn into
    Debye–Waller factors, are removed first: the published patterns have none.

    Args:
        structure: The crystal.
        settings: Wavelength and grid; the paper's when None.

    Returns:
        float32 array (n_bins,), max-normalised; all zeros when no reflection lies in range.
    """
    # Imported here: pymatgen's diffraction package imports matplotlib.
    from pymatgen.analysis.diffraction.xrd import XRDCalculator

    settings = settings or DEFAULT_SETTINGS
    thermal = [key for key in structure.site_properties if re.fullmatch(r"U\d\d_cif", key)]
    if thermal:
        structure = structure.copy()
        for key in thermal:
            structure.remove_site_property(key)
    calculator = XRDCalculator(wavelength=settings.wavelength)
    try:
        pattern = calculator.get_pattern(
            structure, scaled=False, two_theta_range=(settings.two_theta_min, settings.two_theta_max)
        )
    except ValueError:
        # pymatgen fails (unpacking or max() of an empty list) when no reflection is in range;
        # that case is an all-zero pattern, anything else is a real error.
        if _pymatgen_reflection_count(structure, settings) == 0:
            return np.zeros(settings.n_bins, dtype=np.float32)
        raise
    return pattern_from_peaks(np.asarray(pattern.x), np.asarray(pattern.y), settings)


def _pymatgen_reflection_count(structure: Structure, settings: XRDSettings) -> int:
    """Reciprocal-lattice points with 2θ in range, found the way ``XRDCalculator`` finds them."""
    min_r, max_r = (
        2 * math.sin(math.radians(t / 2)) / settings.wavelength
        for t in (settings.two_theta_min, settings.two_theta_max)
    )
    recip = structure.lattice.reciprocal_lattice_crystallographic
    points = recip.get_points_in_sphere([[0, 0, 0]], [0, 0, 0], max_r)
    return sum(1 for point in points if point[1] >= min_r and point[1] > 0)


class ReferenceSet(NamedTuple):
    """Real structures the simulator is validated and benchmarked on."""

    structures: list[tuple[str, Structure]]
    """(name, structure): the AFLOW label (e.g. ``AB_cF8_225_a_b``) or the CIF file name."""
    skipped: list[str]
    """``"file: reason"`` for each CIF pymatgen could not parse."""


def reference_structures(aflow: bool = True, cod: bool = True) -> ReferenceSet:
    """The validation set: pymatgen's AFLOW prototypes and the COD CIFs shipped with ``crystals``.

    Used by ``tests/test_xrd.py`` and ``benchmarks/bench_xrd.py``; both packages are dependencies of
    the project (see :mod:`matconcept.encoders.builtin`), so the set is available offline.

    Args:
        aflow: Include the 288 AFLOW prototypes.
        cod: Include the ``crystals`` COD CIFs (parsed with pymatgen, conventional cells).

    Returns:
        The structures in a fixed order, and the CIFs that failed to parse.
    """
    structures: list[tuple[str, Structure]] = []
    skipped: list[str] = []
    if aflow:
        structures += [(proto.source_id, proto.structure) for proto in aflow_prototypes()]
    if cod:
        for path in crystals_cifs():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # CifParser warns about every rounded occupancy
                    structures.append((path.name, Structure.from_file(path)))
            except Exception as exc:  # pymatgen raises many types on bad CIFs; report, don't stop
                skipped.append(f"{path.name}: {type(exc).__name__}: {exc}")
                logger.warning("skipped %s: %s", path.name, exc)
    return ReferenceSet(structures, skipped)
