"""Tests of matconcept.encoders.xrd: the fast simulator against pymatgen, invariances, measured-pattern input.

The pymatgen reference pattern and the validation set come from ``tests/xrd_reference.py``.

Fixtures (module scope, real data shipped with the dependencies):
    reference: the AFLOW prototypes (288) and the ``crystals`` COD CIFs, as (name, Structure).
    reference_patterns: pymatgen's patterns of ``reference`` (the published pipeline), computed once.
    srtio3: cubic perovskite SrTiO3 (5 sites), a = 3.905 Å.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from pymatgen.core import DummySpecies, Lattice, Species, Structure

from matconcept.encoders.errors import StructureInputError
from matconcept.encoders.xrd import (
    CU_KA,
    N_BINS,
    TWO_THETA_MAX,
    TWO_THETA_MIN,
    TWO_THETA_STEP,
    XRDSettings,
    XRDSimulator,
    pattern_from_peaks,
    read_xy,
    resample_pattern,
)
from tests.xrd_reference import pymatgen_pattern, reference_structures

MIN_COSINE = 0.9999
"""Agreement required with pymatgen's pattern (cosine similarity of the 5000-bin vectors)."""

FCC = [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def simulator() -> XRDSimulator:
    return XRDSimulator()


@pytest.fixture(scope="module")
def reference() -> list[tuple[str, Structure]]:
    ref = reference_structures()
    assert not ref.skipped, ref.skipped  # all 87 crystals CIFs parse with this pymatgen
    return ref.structures


@pytest.fixture(scope="module")
def reference_patterns(reference: list[tuple[str, Structure]]) -> list[np.ndarray]:
    return [pymatgen_pattern(structure) for _, structure in reference]


@pytest.fixture(scope="module")
def srtio3() -> Structure:
    return Structure(
        Lattice.cubic(3.905),
        ["Sr", "Ti", "O", "O", "O"],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
    )


# --- agreement with pymatgen ---------------------------------------------------------------------


def test_reference_set_is_complete(reference: list[tuple[str, Structure]]) -> None:
    names = [name for name, _ in reference]
    assert len(names) == 288 + 87
    assert sum(name.endswith(".cif") for name in names) == 87


def test_matches_pymatgen_on_every_reference_structure(
    simulator: XRDSimulator, reference: list[tuple[str, Structure]], reference_patterns: list[np.ndarray]
) -> None:
    cosines = {
        name: cosine(simulator.pattern(structure), expected)
        for (name, structure), expected in zip(reference, reference_patterns, strict=True)
    }
    worst = min(cosines, key=cosines.get)
    assert cosines[worst] >= MIN_COSINE, f"{worst}: cosine {cosines[worst]:.6f}"


def test_patterns_are_float32_max_normalised(simulator: XRDSimulator, reference: list[tuple[str, Structure]]) -> None:
    for name, structure in reference:
        pattern = simulator.pattern(structure)
        assert pattern.shape == (N_BINS,), name
        assert pattern.dtype == np.float32, name
        assert pattern.max() == 1.0, name
        assert pattern.min() >= 0.0, name


def test_absolute_intensities_match_pymatgen(simulator: XRDSimulator, reference: list[tuple[str, Structure]]) -> None:
    """Same units as pymatgen's unscaled pattern: the total scattered intensity agrees."""
    from pymatgen.analysis.diffraction.xrd import XRDCalculator

    calculator = XRDCalculator()
    for name, structure in reference[::25]:
        expected = calculator.get_pattern(structure, scaled=False, two_theta_range=(10, 110))
        two_theta, intensity = simulator.peaks(structure)
        assert intensity.sum() == pytest.approx(np.sum(expected.y), rel=1e-4), name
        assert two_theta.min() >= TWO_THETA_MIN and two_theta.max() <= TWO_THETA_MAX, name


def test_disordered_sites_match_pymatgen(simulator: XRDSimulator) -> None:
    """Partial occupancy weights the scattering factor: Cu0.5Au0.5 (fcc, random alloy)."""
    from pymatgen.analysis.diffraction.xrd import XRDCalculator

    alloy = Structure(Lattice.cubic(3.85), [{"Cu": 0.5, "Au": 0.5}] * 4, FCC)
    assert cosine(simulator.pattern(alloy), pymatgen_pattern(alloy)) >= MIN_COSINE
    # Equal occupancies everywhere only scale F, so check the absolute intensities too ...
    expected = XRDCalculator().get_pattern(alloy, scaled=False, two_theta_range=(10, 110))
    assert simulator.peaks(alloy)[1].sum() == pytest.approx(np.sum(expected.y), rel=1e-4)
    # ... and a cell where disordered and ordered sites compete (superstructure peaks).
    layered = Structure(Lattice.cubic(3.85), [{"Cu": 0.5, "Au": 0.5}] * 2 + ["Cu"] * 2, FCC)
    assert cosine(simulator.pattern(layered), pymatgen_pattern(layered)) >= MIN_COSINE


def test_mixed_site_with_vacancies_and_oxidation_states_matches_pymatgen(simulator: XRDSimulator) -> None:
    """Fe²⁺ and Fe³⁺ on one site both scatter as Fe (their occupancies add), with Mn and vacancies."""
    rocksalt = Structure(
        Lattice.cubic(4.3),
        [{"Fe2+": 0.3, "Fe3+": 0.2, "Mn2+": 0.3}] * 4 + [Species("O", -2)] * 4,
        FCC + [[x + 0.5 if x == 0 else x - 0.5 for x in site] for site in FCC],
    )
    assert cosine(simulator.pattern(rocksalt), pymatgen_pattern(rocksalt)) >= MIN_COSINE


def test_other_wavelength_and_grid_match_pymatgen(srtio3: Structure) -> None:
    settings = XRDSettings(wavelength=0.71073, two_theta_min=5.0, two_theta_max=60.0, step=0.05)
    pattern = XRDSimulator(settings).pattern(srtio3)
    assert pattern.shape == (1100,)
    assert cosine(pattern, pymatgen_pattern(srtio3, settings)) >= MIN_COSINE


def test_big_supercell_agrees_with_bounded_memory(simulator: XRDSimulator, srtio3: Structure) -> None:
    big = srtio3.make_supercell([4, 4, 4], in_place=False)
    assert len(big) == 320
    tracemalloc.start()
    try:
        pattern = simulator.pattern(big)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_bytes < 16 * 2**20, f"peak {peak_bytes / 2**20:.1f} MiB"
    assert cosine(pattern, pymatgen_pattern(big)) >= MIN_COSINE
    assert cosine(pattern, simulator.pattern(srtio3)) >= 0.99999


def test_no_reflection_in_range_gives_zeros(simulator: XRDSimulator) -> None:
    """A 0.7 Å cell has no d-spacing large enough for Cu Kα: all zeros (pymatgen fails; we agree)."""
    tiny = Structure(Lattice.cubic(0.7), ["H"], [[0, 0, 0]])
    assert not simulator.pattern(tiny).any()
    assert not pymatgen_pattern(tiny).any()
    assert simulator.pattern(tiny).shape == (N_BINS,)


def test_species_without_scattering_factor_is_rejected(simulator: XRDSimulator) -> None:
    dummy = Structure(Lattice.cubic(4.0), [DummySpecies("X")], [[0, 0, 0]])
    with pytest.raises(ValueError, match="scattering"):
        simulator.pattern(dummy)


def test_reflections_and_pattern_from_one_simulation(
    simulator: XRDSimulator, reference: list[tuple[str, Structure]]
) -> None:
    """Ingest's one simulation gives the wide simulator's reflections exactly and the model grid's
    pattern to float rounding; a grid outside the wide range (or at another wavelength) is simulated apart."""
    wide = XRDSimulator(XRDSettings(two_theta_min=5.0, two_theta_max=130.0))
    for name, structure in [*reference[::10], ("tiny", Structure(Lattice.cubic(0.7), ["H"], [[0, 0, 0]]))]:
        reflections, pattern = wide.reflections_and_pattern(structure, simulator)
        for got, expected in zip(reflections, wide.reflections(structure), strict=True):
            np.testing.assert_array_equal(got, expected, err_msg=name)
        np.testing.assert_allclose(pattern, simulator.pattern(structure), rtol=0, atol=1e-6, err_msg=name)
    structure = reference[0][1]
    outside = XRDSettings(two_theta_min=4.0, two_theta_max=110.0), XRDSettings(wavelength=0.7)
    for other in map(XRDSimulator, outside):
        _, pattern = wide.reflections_and_pattern(structure, other)
        np.testing.assert_array_equal(pattern, other.pattern(structure))
    dummy = Structure(Lattice.cubic(4.0), [DummySpecies("X")], [[0, 0, 0]])
    with pytest.raises(ValueError, match="scattering"):
        wide.reflections_and_pattern(dummy, simulator)


# --- invariances ---------------------------------------------------------------------------------


def test_site_permutation_invariance(simulator: XRDSimulator, reference: list[tuple[str, Structure]]) -> None:
    rng = np.random.default_rng(0)
    for name, structure in reference[::20]:
        order = rng.permutation(len(structure))
        permuted = Structure.from_sites([structure[i] for i in order])
        np.testing.assert_allclose(simulator.pattern(permuted), simulator.pattern(structure), atol=1e-5, err_msg=name)


def test_supercell_invariance(simulator: XRDSimulator, reference: list[tuple[str, Structure]]) -> None:
    """A 2×2×2 supercell is the same crystal: its extra reflections are extinct."""
    for name, structure in reference[::40]:
        supercell = structure.make_supercell([2, 2, 2], in_place=False)
        np.testing.assert_allclose(simulator.pattern(supercell), simulator.pattern(structure), atol=1e-4, err_msg=name)


# --- histogram -----------------------------------------------------------------------------------


def test_pattern_from_peaks_is_the_published_histogram() -> None:
    rng = np.random.default_rng(1)
    two_theta = np.concatenate([rng.uniform(0, 120, 500), [10.0, 110.0, 10.02, 109.98, 9.99, 110.01]])
    intensity = rng.uniform(0, 5, len(two_theta))
    expected, _ = np.histogram(two_theta, bins=np.linspace(10, 110, 5001), weights=intensity)
    np.testing.assert_allclose(pattern_from_peaks(two_theta, intensity), expected / expected.max(), rtol=1e-6)


def test_settings_defaults_and_validation() -> None:
    settings = XRDSettings()
    assert (settings.wavelength, settings.two_theta_min, settings.two_theta_max, settings.step) == (
        CU_KA,
        TWO_THETA_MIN,
        TWO_THETA_MAX,
        TWO_THETA_STEP,
    )
    assert settings.n_bins == N_BINS == 5000
    assert settings.bin_centres()[0] == pytest.approx(10.01)
    with pytest.raises(ValueError, match="whole number"):
        XRDSettings(step=0.03)
    with pytest.raises(ValueError, match="must exceed"):
        XRDSettings(two_theta_min=50, two_theta_max=20)
    with pytest.raises(ValueError):
        XRDSettings(wavelenght=1.5)  # extra="forbid" catches typos
    with pytest.raises(ValueError):
        settings.step = 0.01  # frozen


# --- measured patterns ---------------------------------------------------------------------------


def test_read_xy_space_separated_with_header(tmp_path) -> None:
    path = tmp_path / "scan.xy"
    path.write_text(
        "\ufeff# Bruker export\nSample: quartz\n2Theta Intensity\n"  # BOM, comment, metadata, header
        "10.00 12.5\n10.02  13.0\n\n10.04\t-1.5 0.3\n"  # spaces, tab, blank line, extra column
    )
    two_theta, intensity = read_xy(path)
    np.testing.assert_array_equal(two_theta, [10.0, 10.02, 10.04])
    np.testing.assert_array_equal(intensity, [12.5, 13.0, -1.5])


def test_read_xy_comma_separated_text_bytes_and_descending(tmp_path) -> None:
    path = tmp_path / "scan.csv"
    path.write_text("two_theta,intensity\r\n20.5,3\r\n20.0,1\r\n19.5,2\r\n")
    two_theta, intensity = read_xy(str(path))
    np.testing.assert_array_equal(two_theta, [19.5, 20.0, 20.5])  # reversed to increasing
    np.testing.assert_array_equal(intensity, [2.0, 1.0, 3.0])
    for data in (path.read_text(), path.read_bytes()):
        np.testing.assert_array_equal(read_xy(data)[0], two_theta)
    np.testing.assert_array_equal(read_xy("20.5;3")[1], [3.0])  # one row, no line break: text


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("", "no numeric rows"),
        ("# only a header\n2theta intensity\n", "no numeric rows"),
        ("10.0\n10.02\n", "fewer than 2 columns"),
        ("10.0 1\n10.02 nan\n", "NaN"),
        ("10.0 1\n10.02 inf\n", "NaN or infinite"),
        ("10.0 1\n10.04 2\n10.02 3\n", "not monotonic"),
        ("10.0 1\n10.02 2\n10.02 3\n", "duplicate"),
        ("10.0 1\n10.02 2\ngarbage here\n10.04 3\n", "not numeric"),
    ],
)
def test_read_xy_rejects_bad_files_naming_them(tmp_path, content: str, reason: str) -> None:
    path = tmp_path / "bad_scan.xy"
    path.write_text(content)
    with pytest.raises(ValueError, match=reason) as info:
        read_xy(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, StructureInputError)
    assert info.value.reason == "bad_pattern"


def test_read_xy_missing_file_and_custom_name(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"missing\.xy"):
        read_xy(tmp_path / "missing.xy")
    with pytest.raises(ValueError, match=r"upload\.zip!a\.xy"):
        read_xy(b"10 1\n10 2\n", name="upload.zip!a.xy")


def _profile(centres: np.ndarray, two_theta: np.ndarray, peaks: np.ndarray, heights: np.ndarray) -> np.ndarray:
    """A measured-looking pattern: Gaussian peaks (σ = 0.04°) on the given 2θ points."""
    sigma = 0.04
    out = np.zeros_like(two_theta)
    for centre, height in zip(peaks, heights, strict=True):
        near = np.abs(two_theta - centre) < 8 * sigma
        out[near] += height * np.exp(-0.5 * ((two_theta[near] - centre) / sigma) ** 2)
    return out


@pytest.mark.parametrize(("step", "min_cosine"), [(0.01, 0.999), (0.05, 0.99)])
def test_resample_recovers_simulated_peaks(
    simulator: XRDSimulator, srtio3: Structure, step: float, min_cosine: float
) -> None:
    """A 0.05° scan samples a σ = 0.04° peak coarsely; linear interpolation still finds it."""
    peaks, heights = simulator.peaks(srtio3)
    settings = XRDSettings()
    centres = settings.bin_centres()
    measured_x = np.arange(15.0, 100.0 + step / 2, step)  # narrower than the grid: zeros outside
    measured_y = _profile(centres, measured_x, peaks, heights) - 0.01 * heights.max()  # below 0: clipped
    pattern = resample_pattern(measured_x, measured_y, settings, name="scan.xy")

    assert pattern.dtype == np.float32 and pattern.shape == (N_BINS,) and pattern.max() == 1.0
    assert pattern.min() == 0.0
    assert not pattern[centres < 15.0].any() and not pattern[centres > 100.0].any()
    inside = (peaks > 15.5) & (peaks < 99.5)
    expected = np.clip(_profile(centres, centres, peaks[inside], heights[inside]) - 0.01 * heights.max(), 0, None)
    expected[(centres < 15.0) | (centres > 100.0)] = 0
    assert cosine(pattern, expected.astype(np.float32)) > min_cosine
    # Each strong simulated peak is found within one bin (centroid of the resampled peak).
    strong = inside & (heights > 0.05 * heights.max())
    for centre in peaks[strong]:
        window = np.abs(centres - centre) < 0.15
        centroid = float(np.sum(centres[window] * pattern[window]) / np.sum(pattern[window]))
        assert abs(centroid - centre) < TWO_THETA_STEP, f"peak at {centre:.3f}° found at {centroid:.3f}°"


def test_resample_rejects_unusable_patterns() -> None:
    x = np.linspace(20, 30, 11)
    with pytest.raises(ValueError, match=r"scan\.xy: no positive intensity"):
        resample_pattern(x, -np.ones(11), name="scan.xy")
    with pytest.raises(ValueError, match="no positive intensity"):
        resample_pattern(np.linspace(120, 130, 11), np.ones(11))  # outside the 10-110° grid
    with pytest.raises(ValueError, match="at least 2"):
        resample_pattern([20.0], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        resample_pattern(x, np.where(x > 25, np.nan, 1.0))
    with pytest.raises(ValueError, match="not monotonic"):
        resample_pattern([20.0, 22.0, 21.0], [1.0, 2.0, 3.0])
