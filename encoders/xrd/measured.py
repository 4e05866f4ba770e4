"""Measured powder patterns as queries: a diffractometer's export on the model's grid.

:func:`read_xy` reads a two-column text export (``.xy``, ``.xye``, ``.csv``, ``.txt``, ``.dat``: any
separator, headers, either 2θ direction) with errors that name the file and line; :func:`read_xrdml`
reads PANalytical's XML ``.xrdml`` (its wavelength too); :func:`read_pattern` picks the reader by
content. :func:`resample_pattern` interpolates a pattern (any step, any range) onto the 5000-bin
grid the XRD encoder reads, max-normalised like a simulated pattern, and :func:`measured_on_grid`
is the whole checked path a query takes: sanity checks (:func:`check_measured`), conversion from
the measurement's wavelength to the model's by d-spacing (:func:`convert_wavelength`), resampling.

Vendor binaries (Bruker ``.raw`` v1-v4, ``.brml``): no maintained reader is on PyPI (``xylib-py``
and ``xylib-py-wheels`` were last released in 2020 and 2022 and ship only a C++ source build for
current Pythons), so they are not read; every vendor program exports ``.xy``.
"""

from __future__ import annotations

import math
import os
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import NamedTuple

import numpy as np

from matconcept.encoders.errors import InputErrorReason, StructureInputError
from matconcept.encoders.xrd.histogram import max_normalise
from matconcept.encoders.xrd.settings import CU_KA, DEFAULT_SETTINGS, XRDSettings

_FIELD_SEPARATORS = re.compile(r"[\s,;]+")
"""Columns of a text export are separated by whitespace, commas or semicolons."""

_LEADING_NUMBER = re.compile(r"\s*[-+]?(\d|\.\d)")
"""A data row starts with a number (2θ); a path rarely does."""


def _bad_pattern(source: str, detail: str) -> StructureInputError:
    return StructureInputError(InputErrorReason.BAD_PATTERN, source, detail)


def read_xy(path_or_text: str | os.PathLike[str] | bytes, name: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read a measured powder pattern: a two-column text export (2θ in degrees, intensity).

    Columns are separated by whitespace, commas or semicolons; extra columns (e.g. an esd) are
    ignored. Lines starting with ``#``, blank lines and non-numeric lines before the data (column
    headers, instrument metadata) are skipped. A strictly decreasing 2θ column is reversed.

    Args:
        path_or_text: A path (``Path`` or a string naming a file), the file's text (a string with a
            line break, or a single row such as ``"10.0 5"``) or its bytes.
        name: Name used in error messages (e.g. an archive member); defaults to the path, or
            ``"<xy text>"`` / ``"<xy bytes>"``.

    Returns:
        ``(two_theta, intensity)``: float64 arrays (P,), 2θ strictly increasing.

    Raises:
        ValueError: (a :class:`~matconcept.encoders.errors.StructureInputError`, reason ``bad_pattern`` or
            ``unreadable``) naming the file and the reason: unreadable file, no numeric rows, a row
            with fewer than 2 columns, a non-numeric row inside the data, NaN/inf values,
            non-monotonic or duplicate 2θ.
    """
    if isinstance(path_or_text, bytes):
        name = name or "<xy bytes>"
        text = path_or_text.decode("utf-8", errors="replace")
    elif isinstance(path_or_text, str) and _is_xy_text(path_or_text):
        name = name or "<xy text>"
        text = path_or_text
    else:
        path = Path(path_or_text)
        name = name or str(path)
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise StructureInputError(InputErrorReason.UNREADABLE, name, f"cannot read file: {exc}") from exc

    values: list[tuple[float, float]] = []
    text = text.removeprefix("\ufeff")  # a UTF-8 byte-order mark would hide the first row
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = [field for field in _FIELD_SEPARATORS.split(line) if field]
        try:
            numbers = [float(field) for field in fields[:2]]
        except ValueError:
            if values:
                raise _bad_pattern(name, f"line {line_no} is not numeric: {line[:60]!r}") from None
            continue  # header before the data
        if len(numbers) < 2:
            raise _bad_pattern(name, f"line {line_no} has fewer than 2 columns: {line[:60]!r}")
        if not all(math.isfinite(x) for x in numbers):
            raise _bad_pattern(name, f"line {line_no} holds a NaN or infinite value: {line[:60]!r}")
        values.append((numbers[0], numbers[1]))
    if not values:
        raise _bad_pattern(name, "no numeric rows (expected two columns: 2θ in degrees, intensity)")
    data = np.asarray(values, dtype=np.float64)
    two_theta, intensity = data[:, 0].copy(), data[:, 1].copy()
    _check_two_theta(two_theta, name)
    if len(two_theta) > 1 and two_theta[1] < two_theta[0]:
        two_theta, intensity = two_theta[::-1].copy(), intensity[::-1].copy()
    return two_theta, intensity


def _is_xy_text(value: str) -> bool:
    """A string is data, not a path, if it has a line break, or starts with a number and names no file."""
    if "\n" in value or "\r" in value:
        return True
    return bool(_LEADING_NUMBER.match(value)) and not Path(value).exists()


def _check_two_theta(two_theta: np.ndarray, name: str) -> None:
    """Raise unless 2θ is strictly increasing or strictly decreasing (no duplicates)."""
    diff = np.diff(two_theta)
    duplicate = np.flatnonzero(diff == 0)
    if duplicate.size:
        raise _bad_pattern(
            name,
            f"duplicate 2θ value {two_theta[duplicate[0]]:g}° (data rows {duplicate[0] + 1} and {duplicate[0] + 2})",
        )
    if diff.size and not (np.all(diff > 0) or np.all(diff < 0)):
        sign = np.sign(diff[0])
        bad = int(np.flatnonzero(np.sign(diff) != sign)[0])
        raise _bad_pattern(name, f"2θ is not monotonic: {two_theta[bad]:g}° is followed by {two_theta[bad + 1]:g}°")


def resample_pattern(
    two_theta: np.ndarray,
    intensity: np.ndarray,
    settings: XRDSettings | None = None,
    name: str = "<pattern>",
) -> np.ndarray:
    """Put a measured pattern (any step, any range) on the simulator's grid, max-normalised.

    Linear interpolation onto the bin centres that the data cover; bins outside the measured range
    are 0; negative intensities (over-subtracted background, noise) are clipped to 0 first.

    Args:
        two_theta: Measured 2θ, degrees, strictly monotonic, shape (P,), P ≥ 2.
        intensity: Measured intensity, any units, shape (P,).
        settings: Target grid; the paper's when None.
        name: Name used in error messages (e.g. the file name).

    Returns:
        float32 array (n_bins,), maximum 1.

    Raises:
        ValueError: (a :class:`~matconcept.encoders.errors.StructureInputError`) for mismatched or too short
            arrays, NaN/inf, non-monotonic 2θ, or no positive intensity on the grid.
    """
    settings = settings or DEFAULT_SETTINGS
    x = np.asarray(two_theta, dtype=np.float64).ravel()
    y = np.asarray(intensity, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise _bad_pattern(name, f"{x.size} 2θ values but {y.size} intensities")
    if x.size < 2:
        raise _bad_pattern(name, f"need at least 2 points to resample, got {x.size}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise _bad_pattern(name, "NaN or infinite values")
    _check_two_theta(x, name)
    if x[1] < x[0]:
        x, y = x[::-1], y[::-1]
    centres = settings.bin_centres()
    out = np.zeros(settings.n_bins, dtype=np.float64)
    covered = (centres >= x[0]) & (centres <= x[-1])
    out[covered] = np.interp(centres[covered], x, np.clip(y, 0.0, None))
    if not out.max() > 0:
        raise _bad_pattern(
            name,
            f"no positive intensity on the {settings.two_theta_min:g}-{settings.two_theta_max:g}° grid "
            f"(data cover {x[0]:g}-{x[-1]:g}°)",
        )
    return max_normalise(out)


# -- wavelengths ---------------------------------------------------------------------------------
WAVELENGTHS: dict[str, float] = {
    "CuKa": 1.54184,
    "CuKa1": 1.54056,
    "CuKa2": 1.54439,
    "MoKa": 0.71073,
    "MoKa1": 0.70930,
    "MoKa2": 0.71359,
    "CoKa": 1.79026,
    "CoKa1": 1.78896,
    "CoKa2": 1.79285,
    "CrKa": 2.29100,
    "CrKa1": 2.28970,
    "CrKa2": 2.29361,
    "FeKa": 1.93735,
    "FeKa1": 1.93604,
    "FeKa2": 1.93998,
    "AgKa": 0.560885,
    "AgKa1": 0.559421,
    "AgKa2": 0.563813,
}
"""Å; laboratory anode lines (pymatgen's table, which the model's Cu Kα value comes from). Kα is the
2:1 weighted mean of Kα1 and Kα2, what an unmonochromated tube gives."""

MIN_WAVELENGTH = 0.05
"""Å; shorter is not X-ray powder diffraction (high-energy synchrotron work reaches ~0.1 Å)."""
MAX_WAVELENGTH = 5.0
"""Å; longer reaches no useful d-spacing."""
MIN_PATTERN_POINTS = 50
"""Fewest points of a measured pattern used as a query: fewer cannot hold a few resolved peaks."""


def _wavelength_error(detail: str) -> StructureInputError:
    return StructureInputError(InputErrorReason.BAD_PATTERN, "wavelength", detail)


def parse_wavelength(value: str | float | None) -> float:
    """A wavelength in Å from a number (a synchrotron's) or an anode name (``Cu``, ``CuKa``, ``Mo Kα1``…).

    ``None`` or an empty string is Cu Kα, the model's.

    Raises:
        ValueError: (a :class:`StructureInputError`, reason ``bad_pattern``, source ``wavelength``)
            for an unknown name or a number outside 0.05-5 Å.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return CU_KA
    if isinstance(value, str):
        text = value.strip().replace("α", "a").replace("-", "").replace(" ", "").replace("_", "")
        try:
            number = float(text)
        except ValueError:
            key = {name.lower(): name for name in WAVELENGTHS}.get(text.lower()) or {
                name[:2].lower(): name for name in WAVELENGTHS if name.endswith("Ka")
            }.get(text.lower())
            if key is None:
                known = ", ".join(sorted({name[:2] for name in WAVELENGTHS}))
                raise _wavelength_error(
                    f"unknown wavelength {value!r}: give Å (e.g. 0.7293) or an anode ({known}, optionally Ka1/Ka2)"
                ) from None
            return WAVELENGTHS[key]
        value = number
    wavelength = float(value)
    if not (math.isfinite(wavelength) and MIN_WAVELENGTH <= wavelength <= MAX_WAVELENGTH):
        raise _wavelength_error(
            f"{value} Å is not an X-ray diffraction wavelength ({MIN_WAVELENGTH}-{MAX_WAVELENGTH} Å)"
        )
    return wavelength


def convert_wavelength(
    two_theta: np.ndarray, from_wavelength: float, to_wavelength: float
) -> tuple[np.ndarray, np.ndarray]:
    """2θ measured at one wavelength → the same d-spacings' 2θ at another (Bragg: λ = 2 d sin θ).

    Returns:
        ``(two_theta at to_wavelength, reachable)``: a d shorter than ``to_wavelength / 2`` has no
        reflection there (``reachable`` False, 2θ NaN).
    """
    x = np.asarray(two_theta, dtype=np.float64)
    if from_wavelength == to_wavelength:
        return x.copy(), np.ones(x.shape, dtype=bool)
    sin_theta = np.sin(np.radians(x) / 2.0) * (to_wavelength / from_wavelength)
    reachable = sin_theta < 1.0
    out = np.full(x.shape, np.nan)
    out[reachable] = np.degrees(2.0 * np.arcsin(sin_theta[reachable]))
    return out, reachable


# -- checks and the query path -------------------------------------------------------------------
def check_measured(two_theta: np.ndarray, intensity: np.ndarray, name: str = "<pattern>") -> None:
    """Reject a measured pattern that cannot be a powder scan, naming what is wrong.

    Raises:
        ValueError: (a :class:`StructureInputError`, reason ``bad_pattern``) for mismatched lengths,
            fewer than :data:`MIN_PATTERN_POINTS` points, NaN or infinite values, 2θ outside
            (0°, 180°), 2θ not strictly monotonic, or no positive intensity (all zeros).
    """
    x = np.asarray(two_theta, dtype=np.float64).ravel()
    y = np.asarray(intensity, dtype=np.float64).ravel()
    if x.size != y.size:
        raise _bad_pattern(name, f"{x.size} 2θ values but {y.size} intensities")
    if x.size < MIN_PATTERN_POINTS:
        raise _bad_pattern(
            name, f"only {x.size} points: a powder pattern needs at least {MIN_PATTERN_POINTS} to show its peaks"
        )
    if not np.isfinite(x).all():
        raise _bad_pattern(name, f"2θ holds a NaN or infinite value (point {int(np.flatnonzero(~np.isfinite(x))[0])})")
    if not np.isfinite(y).all():
        raise _bad_pattern(
            name, f"intensity holds a NaN or infinite value (point {int(np.flatnonzero(~np.isfinite(y))[0])})"
        )
    bad = np.flatnonzero((x <= 0) | (x >= 180))
    if bad.size:
        raise _bad_pattern(name, f"2θ must lie between 0° and 180°: point {int(bad[0])} is at {x[bad[0]]:g}°")
    _check_two_theta(x, name)
    if not (y > 0).any():
        raise _bad_pattern(name, "all intensities are zero" if not y.any() else "no positive intensity")


class MeasuredOnGrid(NamedTuple):
    """A measured pattern as a query: on the model's grid, and where the measurement has data."""

    pattern: np.ndarray
    """(n_bins,) float32, max-normalised; bins outside ``covered`` are 0."""
    covered: tuple[float, float]
    """2θ range (degrees, model's wavelength) the measurement covers."""


def measured_on_grid(
    two_theta: np.ndarray,
    intensity: np.ndarray,
    wavelength: str | float | None = None,
    settings: XRDSettings | None = None,
    name: str = "<pattern>",
) -> MeasuredOnGrid:
    """The checked path from a measurement to a query: checks, wavelength conversion, resampling.

    Args:
        two_theta: Measured 2θ, degrees, at ``wavelength``.
        intensity: Measured intensity (counts, any units).
        wavelength: Å or an anode name (:func:`parse_wavelength`); Cu Kα when None.
        settings: The model's grid; the paper's when None.
        name: Name used in error messages.

    Raises:
        ValueError: (a :class:`StructureInputError`, reason ``bad_pattern``) naming the problem.
    """
    settings = settings or DEFAULT_SETTINGS
    check_measured(two_theta, intensity, name)
    x = np.asarray(two_theta, dtype=np.float64).ravel()
    y = np.asarray(intensity, dtype=np.float64).ravel()
    if x[1] < x[0]:
        x, y = x[::-1], y[::-1]
    source = parse_wavelength(wavelength)
    x, reachable = convert_wavelength(x, source, settings.wavelength)
    x, y = x[reachable], y[reachable]
    lo, hi = (
        max(float(x[0]) if x.size else math.inf, settings.two_theta_min),
        min(float(x[-1]) if x.size else -math.inf, settings.two_theta_max),
    )
    if x.size < 2 or hi - lo < 10 * settings.step:
        raise _bad_pattern(
            name,
            f"the measured range does not overlap the model's {settings.two_theta_min:g}-{settings.two_theta_max:g}° "
            f"(at {settings.wavelength:g} Å; the data cover d = {_d_range(two_theta, source)})",
        )
    pattern = resample_pattern(x, y, settings, name)
    return MeasuredOnGrid(pattern, (lo, hi))


def _d_range(two_theta: np.ndarray, wavelength: float) -> str:
    x = np.asarray(two_theta, dtype=np.float64)
    d = wavelength / (2.0 * np.sin(np.radians([x.max(), x.min()]) / 2.0))
    return f"{d[0]:.3g}-{d[1]:.3g} Å"


# -- file formats --------------------------------------------------------------------------------
class MeasuredPattern(NamedTuple):
    """A measured pattern as read from a file."""

    two_theta: np.ndarray
    intensity: np.ndarray
    wavelength: float | None
    """Å, when the file says (``.xrdml``); None for plain text exports."""


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def read_xrdml(data: bytes | str, name: str = "<xrdml>") -> MeasuredPattern:
    """Read a PANalytical ``.xrdml`` scan (XML): the first scan's 2θ axis, intensities and wavelength.

    2θ is the ``positions`` axis ``2Theta`` (start and end, or a list); intensity is ``intensities``
    or ``counts`` (divided by the counting time when it varies per point). The wavelength is the
    Kα1/Kα2 mean weighted by the file's ratio.

    Raises:
        ValueError: (a :class:`StructureInputError`, reason ``bad_pattern``) naming what is missing.
    """
    try:
        root = ElementTree.fromstring(data)
    except (ElementTree.ParseError, LookupError, ValueError) as exc:  # LookupError: an unknown declared encoding
        raise _bad_pattern(name, f"not readable XML: {exc}") from None
    scan = next((el for el in root.iter() if _local(el.tag) == "dataPoints"), None)
    if scan is None:
        raise _bad_pattern(name, "no <dataPoints> in this .xrdml file")
    values = None
    axis = None
    times = None
    for el in scan:
        tag = _local(el.tag)
        if tag == "positions" and el.get("axis", "").lower() == "2theta":
            axis = el
        elif tag in ("intensities", "counts") and values is None:
            values = _numbers(el.text, name, tag)
        elif tag == "countingTimes":
            times = _numbers(el.text, name, tag)
    if axis is None or values is None:
        raise _bad_pattern(name, "no 2Theta positions or no intensities in this .xrdml file")
    listed = next((c for c in axis if _local(c.tag) == "listPositions"), None)
    if listed is not None:
        two_theta = _numbers(listed.text, name, "listPositions")
    else:
        bounds = {_local(c.tag): c.text for c in axis}
        if "startPosition" not in bounds or "endPosition" not in bounds:
            raise _bad_pattern(name, "the 2Theta axis has neither listPositions nor start/end positions")
        start, end = (_numbers(bounds[k], name, k)[0] for k in ("startPosition", "endPosition"))
        two_theta = np.linspace(start, end, values.size)
    if two_theta.size != values.size:
        raise _bad_pattern(name, f"{two_theta.size} 2θ positions but {values.size} intensities")
    if times is not None and times.size == values.size and np.all(times > 0):
        values = values / times
    return MeasuredPattern(two_theta, values, _xrdml_wavelength(root))


def _numbers(text: str | None, name: str, field: str) -> np.ndarray:
    try:
        return np.array([float(v) for v in (text or "").split()], dtype=np.float64)
    except ValueError:
        raise _bad_pattern(name, f"<{field}> holds a value that is not a number") from None


def _xrdml_wavelength(root: ElementTree.Element) -> float | None:
    used = next((el for el in root.iter() if _local(el.tag) == "usedWavelength"), None)
    if used is None:
        return None
    lines = {_local(c.tag): c.text for c in used}
    try:
        k1 = float(lines["kAlpha1"])
        k2 = float(lines.get("kAlpha2") or k1)
        ratio = float(lines.get("ratioKAlpha2KAlpha1") or 0.0)
    except (KeyError, ValueError):
        return None
    if "1" in (used.get("intended") or "") and "2" not in (used.get("intended") or ""):
        return k1  # a monochromated Kα1 measurement
    return (k1 + ratio * k2) / (1.0 + ratio)


def read_pattern(path_or_data: str | os.PathLike[str] | bytes, name: str | None = None) -> MeasuredPattern:
    """Read a measured pattern in any supported format: ``.xrdml`` (by content) or a text export.

    Args:
        path_or_data: A path, or the file's bytes or text.
        name: Name used in error messages.

    Raises:
        ValueError: (a :class:`StructureInputError`) naming the file and the problem.
    """
    if isinstance(path_or_data, bytes | str) and not (isinstance(path_or_data, str) and _looks_like_path(path_or_data)):
        data = path_or_data
        name = name or ("<pattern bytes>" if isinstance(data, bytes) else "<pattern text>")
    else:
        path = Path(path_or_data)
        name = name or str(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise StructureInputError(InputErrorReason.UNREADABLE, name, f"cannot read file: {exc}") from exc
    head = data[:4096].decode("utf-8", errors="replace") if isinstance(data, bytes) else data[:4096]
    head = head.lstrip("\ufeff").lstrip()
    if head.startswith("<") and "xrdMeasurement" in head:
        return read_xrdml(data, name)
    two_theta, intensity = read_xy(data, name=name)
    return MeasuredPattern(two_theta, intensity, None)


def _looks_like_path(value: str) -> bool:
    return not _is_xy_text(value) and not value.lstrip().startswith("<")
