"""Measured-pattern input (matconcept.encoders.xrd.measured): formats, wavelengths, bad input.

Patterns are measured-looking scans of real structures (NaCl rock salt, cubic BaTiO3 from its COD
CIF) made by :func:`~matconcept.encoders.xrd.synthetic.simulate_measured`, written the way
diffractometer software exports them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from matconcept.encoders.errors import StructureInputError
from matconcept.encoders.xrd import (
    CU_KA,
    WAVELENGTHS,
    XRDSettings,
    measured_on_grid,
    parse_wavelength,
    read_pattern,
)
from matconcept.encoders.xrd.match import match_peaks, prepare_query
from matconcept.encoders.xrd.measured import MIN_PATTERN_POINTS, check_measured, convert_wavelength
from matconcept.encoders.xrd.peaks import PeakTable, peak_list
from matconcept.encoders.xrd.synthetic import MeasuredConditions, simulate_measured

CONDITIONS = MeasuredConditions(strain=0.004, zero_shift=0.02, fwhm=0.12, noise=0.02, background=0.05)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, CU_KA),
        ("", CU_KA),
        ("Cu", CU_KA),
        ("CuKa", CU_KA),
        ("Mo", WAVELENGTHS["MoKa"]),
        ("Mo Kα1", WAVELENGTHS["MoKa1"]),
        ("co-ka2", WAVELENGTHS["CoKa2"]),
        ("Cr", 2.291),
        ("fe", 1.93735),
        (0.7293, 0.7293),
        ("0.4133", 0.4133),
    ],
)
def test_wavelength_by_name_or_number(value, expected):
    assert parse_wavelength(value) == pytest.approx(expected)


@pytest.mark.parametrize(("value", "message"), [("Zn", "unknown wavelength 'Zn'"), (-1.0, "-1.0 Å"), ("12", "12")])
def test_bad_wavelength_is_named(value, message):
    with pytest.raises(StructureInputError, match=message) as info:
        parse_wavelength(value)
    assert info.value.reason == "bad_pattern" and info.value.source == "wavelength"


def test_convert_wavelength_keeps_d_spacings():
    mo_two_theta = np.array([10.0, 20.0, 60.0])
    cu, reachable = convert_wavelength(mo_two_theta, WAVELENGTHS["MoKa"], CU_KA)
    d_mo = WAVELENGTHS["MoKa"] / (2 * np.sin(np.radians(mo_two_theta) / 2))
    assert reachable.tolist() == [True, True, False]  # d = 0.71 Å is beyond Cu's reach (λ/2 = 0.77 Å)
    assert CU_KA / (2 * np.sin(np.radians(cu[:2]) / 2)) == pytest.approx(d_mo[:2])
    assert math.isnan(cu[2])


@pytest.mark.parametrize(
    ("wavelength", "grid"),
    [
        ("Mo", XRDSettings(wavelength=WAVELENGTHS["MoKa"], two_theta_min=4.0, two_theta_max=50.0, step=0.01)),
        ("Co", XRDSettings(wavelength=WAVELENGTHS["CoKa"], two_theta_min=10.0, two_theta_max=120.0, step=0.02)),
        (0.4133, XRDSettings(wavelength=0.4133, two_theta_min=2.0, two_theta_max=30.0, step=0.005)),
    ],
)
def test_other_wavelengths_match_on_the_model_grid(batio3, nacl, wavelength, grid):
    """A scan at Mo, Co or a synchrotron wavelength is converted by d-spacing and identified."""
    two_theta, counts = simulate_measured(batio3, CONDITIONS, settings=grid, rng=4)
    on_grid = measured_on_grid(two_theta, counts, wavelength=wavelength, name="scan.xy")
    lo, hi = on_grid.covered
    assert 10.0 <= lo < 15.0 and hi > 50.0
    query = prepare_query(on_grid.pattern, covered=on_grid.covered)
    result = match_peaks(query, PeakTable.from_lists([peak_list(nacl), peak_list(batio3)]))
    assert result.order()[0] == 1 and result.score[1] > 0.9
    assert result.strain[1] == pytest.approx(CONDITIONS.strain, abs=1e-3)


def _xy(two_theta, counts) -> str:
    return "\n".join(f"{t:.4f} {c:.1f}" for t, c in zip(two_theta, counts, strict=True))


@pytest.mark.parametrize("suffix", [".xy", ".xye", ".csv", ".txt", ".dat"])
def test_text_exports_are_read(tmp_path, batio3, suffix):
    two_theta, counts = simulate_measured(batio3, CONDITIONS, rng=1)
    sep = "," if suffix == ".csv" else " "
    esd = [f"{sep}{math.sqrt(max(c, 1)):.2f}" if suffix == ".xye" else "" for c in counts]
    path = tmp_path / f"scan{suffix}"
    lines = [f"{t:.4f}{sep}{c:.1f}{e}" for t, c, e in zip(two_theta, counts, esd, strict=True)]
    path.write_text("2theta" + sep + "counts\n" + "\n".join(lines))
    read = read_pattern(path)
    assert read.wavelength is None and len(read.two_theta) == len(two_theta)
    assert read.intensity == pytest.approx(np.round(counts, 1))
    assert read_pattern(path.read_bytes()).two_theta == pytest.approx(read.two_theta)


def _xrdml(two_theta, counts, listed: bool = False, wavelength_block: str | None = None) -> str:
    positions = (
        f"<listPositions>{' '.join(f'{t:.4f}' for t in two_theta)}</listPositions>"
        if listed
        else f"<startPosition>{two_theta[0]:.4f}</startPosition><endPosition>{two_theta[-1]:.4f}</endPosition>"
    )
    wavelength_block = wavelength_block or (
        '<usedWavelength intended="K-Alpha"><kAlpha1 unit="Angstrom">0.70930</kAlpha1>'
        '<kAlpha2 unit="Angstrom">0.71359</kAlpha2><ratioKAlpha2KAlpha1>0.5</ratioKAlpha2KAlpha1></usedWavelength>'
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<xrdMeasurements xmlns="http://www.xrdml.com/XRDMeasurement/1.5"><xrdMeasurement measurementType="Scan">'
        f"{wavelength_block}<scan><dataPoints>"
        f'<positions axis="2Theta" unit="deg">{positions}</positions>'
        '<positions axis="Omega" unit="deg"><startPosition>5</startPosition><endPosition>25</endPosition></positions>'
        f'<commonCountingTime unit="seconds">1.0</commonCountingTime>'
        f'<intensities unit="counts">{" ".join(f"{c:.0f}" for c in counts)}</intensities>'
        "</dataPoints></scan></xrdMeasurement></xrdMeasurements>"
    )


@pytest.mark.parametrize("listed", [False, True])
def test_xrdml_is_read_with_its_wavelength(tmp_path, batio3, nacl, listed):
    grid = XRDSettings(wavelength=WAVELENGTHS["MoKa"], two_theta_min=4.0, two_theta_max=50.0, step=0.01)
    two_theta, counts = simulate_measured(batio3, CONDITIONS, settings=grid, rng=2)
    path = tmp_path / "scan.xrdml"
    path.write_text(_xrdml(two_theta, counts, listed))
    read = read_pattern(path)
    assert read.wavelength == pytest.approx((0.70930 + 0.5 * 0.71359) / 1.5)
    assert read.two_theta == pytest.approx(two_theta, abs=1e-4)
    on_grid = measured_on_grid(read.two_theta, read.intensity, wavelength=read.wavelength)
    result = match_peaks(
        prepare_query(on_grid.pattern, covered=on_grid.covered),
        PeakTable.from_lists([peak_list(nacl), peak_list(batio3)]),
    )
    assert result.order()[0] == 1
    monochromated = '<usedWavelength intended="K-Alpha 1"><kAlpha1 unit="Angstrom">1.5406</kAlpha1></usedWavelength>'
    assert read_pattern(_xrdml(two_theta, counts, wavelength_block=monochromated).encode()).wavelength == 1.5406


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("<xrdMeasurements><broken", "not readable XML"),
        ("<xrdMeasurements><xrdMeasurement/></xrdMeasurements>", "no <dataPoints>"),
        ("<xrdMeasurements><dataPoints><intensities>1 2</intensities></dataPoints></xrdMeasurements>", "no 2Theta"),
        (
            '<xrdMeasurements><dataPoints><positions axis="2Theta"><listPositions>1 2 3</listPositions></positions>'
            "<intensities>1 2</intensities></dataPoints></xrdMeasurements>",
            "3 2θ positions but 2 intensities",
        ),
    ],
)
def test_bad_xrdml_is_named(tmp_path, content, message):
    path = tmp_path / "bad.xrdml"
    path.write_text(content)
    with pytest.raises(StructureInputError, match=message) as info:
        read_pattern(path)
    assert "bad.xrdml" in str(info.value) and info.value.reason == "bad_pattern"


GOOD_X = np.linspace(10.0, 80.0, 3501)
GOOD_Y = 100.0 + 1000.0 * np.exp(-0.5 * ((GOOD_X - 30.0) / 0.05) ** 2)


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (GOOD_X[:10], GOOD_Y[:10], f"only 10 points: a powder pattern needs at least {MIN_PATTERN_POINTS}"),
        (GOOD_X, np.where(GOOD_X > 40, np.nan, GOOD_Y), "intensity holds a NaN"),
        (np.where(GOOD_X > 40, np.inf, GOOD_X), GOOD_Y, "2θ holds a NaN or infinite value"),
        (GOOD_X - 20.0, GOOD_Y, "2θ must lie between 0° and 180°: point 0 is at -10°"),
        (np.concatenate([GOOD_X[:100], GOOD_X[99:]]), np.concatenate([GOOD_Y[:100], GOOD_Y[99:]]), "duplicate 2θ"),
        (np.concatenate([GOOD_X[50:60], GOOD_X[:50], GOOD_X[60:]]), GOOD_Y, "not monotonic"),
        (GOOD_X, np.zeros_like(GOOD_X), "all intensities are zero"),
        (GOOD_X, -GOOD_Y, "no positive intensity"),
        (GOOD_X, GOOD_Y[:-1], "3501 2θ values but 3500 intensities"),
    ],
)
def test_bad_measurements_are_named(x, y, message):
    with pytest.raises(StructureInputError, match=message) as info:
        measured_on_grid(x, y, name="scan.xy")
    assert str(info.value).startswith("scan.xy: ") and info.value.reason == "bad_pattern"


def test_one_column_file_and_out_of_range_scan(tmp_path):
    path = tmp_path / "one.xy"
    path.write_text("\n".join(f"{t:.2f}" for t in GOOD_X))
    with pytest.raises(StructureInputError, match=r"one\.xy: line 1 has fewer than 2 columns"):
        read_pattern(path)
    mo = XRDSettings(wavelength=0.2, two_theta_min=40.0, two_theta_max=60.0, step=0.02)  # d < 0.3 Å only
    x = mo.bin_centres()
    with pytest.raises(StructureInputError, match="does not overlap the model's 10-110°"):
        measured_on_grid(x, np.ones_like(x), wavelength=0.2, name="far.xy")
    check_measured(GOOD_X, GOOD_Y)  # a good one passes
    assert measured_on_grid(GOOD_X[::-1], GOOD_Y[::-1]).covered == pytest.approx((10.0, 80.0))
