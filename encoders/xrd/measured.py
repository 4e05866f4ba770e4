"""Measured powder patterns as queries: a diffractometer's two-column export on the model's grid.

:func:`read_xy` reads the export (any separator, headers, either 2θ direction) with errors that name
the file and line; :func:`resample_pattern` interpolates it (any step, any range) onto the 5000-bin
grid the XRD encoder reads, max-normalised like a simulated pattern.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np

from matconcept.encoders.errors import InputErrorReason, StructureInputError
from matconcept.encoders.xrd.histogram import max_normalise
from matconcept.encoders.xrd.settings import DEFAULT_SETTINGS, XRDSettings

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
