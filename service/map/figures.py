"""Static figures of the materials map (PNG or SVG): the map coloured by a payload field, and the
periodic-table grid of element maps (the paper's figure 4).

Both figures have to stay quick and small at 100k+ points on a 2-core machine, so:

* the whole-map scatter uses small markers without edges and is ``rasterized`` — an SVG then holds
  one embedded image for the points (a few hundred kB) instead of 100k ``<path>`` elements
  (tens of MB), while axes, legend and text stay vector;
* the element grid draws no scatters at all: every small map is a 2-D histogram over the shared
  extent of the whole map, and all of them are composed into one RGB image shown with a single
  ``imshow``. Cost is one ``np.histogram2d`` per element, independent of the figure backend.

SVG text is written as ``<text>`` (``svg.fonttype = none``), not as glyph outlines: smaller files,
and the element symbols and counts can be searched and tested.

Matplotlib is imported inside the functions (Agg backend), so importing this module is cheap.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from functools import cache
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np

from matconcept.encoders.symmetry import CRYSTAL_SYSTEMS

logger = logging.getLogger(__name__)

COLOR_FIELDS = ("spacegroup_number", "crystal_system", "source", "n_elements", "element")
"""Payload fields a map can be coloured by (``element``: a boolean per material, with ``highlight``)."""
NUMERIC_FIELDS = frozenset({"spacegroup_number"})
"""Fields drawn with a continuous colour map and a colour bar; the others get a legend."""
FORMATS = (".png", ".svg")

MAX_CATEGORIES = 12
"""More distinct values than this and a legend stops being readable: the largest ``MAX_CATEGORIES - 1``
keep their colour and the rest are merged into ``OTHER``."""
OTHER = "other"
UNKNOWN = "unknown"
"""Legend label of materials without a value (e.g. no space group recorded)."""
PALETTE = (
    # tab10 without its grey (grey means "other"/"unknown" here), then three dark tab20b tones: 12
    # colours that stay distinct on white and for most colour-vision deficiencies.
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
    "#393b79",
    "#637939",
    "#843c39",
)
OTHER_COLOR = "#8c8c8c"
UNKNOWN_COLOR = "#d4d4d4"
BACKGROUND_COLOR = "#d9d9d9"
"""Points that are not highlighted: present for orientation, quiet."""
HIGHLIGHT_COLOR = "#d62728"
NUMERIC_CMAP = "viridis"
SHUFFLE_SEED = 0
"""Points are drawn in a fixed random order so that no category systematically hides another."""

FIGSIZE = (7.5, 6.0)
"""Inches of the whole-map figure (the legend or colour bar is added to the right)."""
DPI = 200
"""Resolution of PNGs and of the rasterized points inside SVGs."""
MARKER_AREA = 20_000.0
"""Marker area (pt²) times the point count: markers shrink as the map fills up ..."""
MARKER_AREA_RANGE = (0.4, 16.0)
"""... but never below a visible dot or above a small disc (pt²)."""

# Element grid geometry, in pixels of the composed image (one histogram bin = one pixel).
CELL_BINS = 64
"""Histogram bins per side of one element's small map."""
CELL_PAD = 5
"""Pixels between neighbouring cells."""
CELL_PITCH = CELL_BINS + 2 * CELL_PAD
F_BLOCK_GAP = 0.35
"""Extra space (in cells) between the main table and the lanthanide/actinide rows."""
GRID_COLUMNS = 18
GRID_ROWS = 9
"""Seven periods plus the lanthanide (8) and actinide (9) rows."""
GRID_PIXEL_SCALE = 2.0
"""Output pixels per image pixel: a 64-bin cell is drawn 128 px wide."""
LAST_Z = 98
"""Californium: the grid spans H..Cf, the elements that occur in crystal-structure databases."""
F_BLOCK_FIRST_COLUMN = 3
"""La and Ac sit in the third column of their row, the 14 elements after them follow."""
EXTENT_MARGIN = 0.02
"""Share of the map's extent added on each side so that the outermost points are not cut."""
GREY_RANGE = (0.92, 0.55)
"""Grey level of the all-materials background: sparsest occupied bin .. densest bin."""
ELEMENT_ALPHA = (0.55, 1.0)
"""Opacity of the element colour over the grey: one material in a bin .. the element's densest bin."""
EMPTY_RGB = (1.0, 1.0, 1.0)
FRAME_RGB = (0.85, 0.85, 0.85)


@cache
def periodic_table_positions() -> dict[str, tuple[int, int]]:
    """(row, column), both from 1, of every element H..Cf in the usual 18-column table.

    Rows and groups come from pymatgen. pymatgen puts every lanthanide and actinide in group 3 of
    periods 6/7; here they get their own rows 8 (La..Lu) and 9 (Ac..Cf), La and Ac in column 3, so
    group 3 of periods 6 and 7 stays empty as in most printed tables.
    """
    from pymatgen.core import Element

    positions = {}
    for z in range(1, LAST_Z + 1):
        element = Element.from_Z(z)
        if element.is_lanthanoid:
            positions[element.symbol] = (8, F_BLOCK_FIRST_COLUMN + z - Element("La").Z)
        elif element.is_actinoid:
            positions[element.symbol] = (9, F_BLOCK_FIRST_COLUMN + z - Element("Ac").Z)
        else:
            positions[element.symbol] = (int(element.row), int(element.group))
    return positions


def categories(values: Sequence[Any], *, field: str = "") -> tuple[list[str], np.ndarray, list[int]]:
    """Legend labels, a label index per value, and the count per label, for a categorical field.

    Labels are ordered naturally where there is an order (crystal systems by symmetry, numbers
    ascending) and by count otherwise. More than :data:`MAX_CATEGORIES` distinct values: the largest
    ``MAX_CATEGORIES - 1`` are kept and the rest become :data:`OTHER`; missing values (None) are
    :data:`UNKNOWN`. Booleans read ``yes``/``no``.
    """
    keys = [_category_key(v) for v in values]
    counts = Counter(k for k in keys if k is not None)
    distinct = list(counts)
    if len(distinct) > MAX_CATEGORIES:
        kept = {k for k, _ in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[: MAX_CATEGORIES - 1]}
    else:
        kept = set(distinct)
    ordered = sorted(kept, key=lambda k: _category_order(k, counts, field))
    labels = [str(k) for k in ordered]
    index = {k: i for i, k in enumerate(ordered)}
    other = len(labels)
    unknown = other + 1
    codes = np.fromiter((unknown if k is None else index.get(k, other) for k in keys), dtype=np.int32, count=len(keys))
    label_counts = [counts[k] for k in ordered]
    n_other = int(np.count_nonzero(codes == other))
    n_unknown = int(np.count_nonzero(codes == unknown))
    if n_other:
        labels.append(OTHER)
        label_counts.append(n_other)
    else:
        codes[codes == unknown] = other
    if n_unknown:
        labels.append(UNKNOWN)
        label_counts.append(n_unknown)
    return labels, codes, label_counts


def _category_key(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, np.generic):
        return value.item()
    return value


def _category_order(key: Any, counts: Counter, field: str) -> tuple:
    if key in CRYSTAL_SYSTEMS:
        return (0, CRYSTAL_SYSTEMS.index(key), "")
    if isinstance(key, Real):
        return (1, float(key), "")
    return (2, -counts[key], str(key))


def _is_numeric(values: Sequence[Any], field: str) -> bool:
    if field in NUMERIC_FIELDS:
        return True
    if field in COLOR_FIELDS:
        return False
    present = [v for v in values if v is not None]
    return (
        bool(present)
        and all(isinstance(v, Real) and not isinstance(v, bool | np.bool_) for v in present)
        and len(set(present)) > MAX_CATEGORIES
    )


def _check_coords(coords: np.ndarray, n_values: int | None, path: Path) -> np.ndarray:
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise ValueError(f"coords must have shape (n, 2), got {coords.shape}")
    if n_values is not None and n_values != len(coords):
        raise ValueError(f"{len(coords)} coordinates but {n_values} values")
    if path.suffix.lower() not in FORMATS:
        raise ValueError(f"figure format {path.suffix!r} of {path} is not one of {', '.join(FORMATS)}")
    return coords


def _marker_area(n: int) -> float:
    lo, hi = MARKER_AREA_RANGE
    return float(np.clip(MARKER_AREA / max(n, 1), lo, hi))


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path, dpi=DPI, bbox_inches="tight", facecolor="white", metadata=_metadata(path))
    finally:
        plt.close(fig)
    return path


def _metadata(path: Path) -> dict[str, str | None]:
    # A fixed (empty) date keeps repeated exports of the same map byte-identical.
    if path.suffix.lower() == ".svg":
        return {"Date": None, "Creator": "matconcept"}
    return {"Software": "matconcept"}


def _rc() -> dict[str, Any]:
    return {"svg.fonttype": "none", "font.size": 9, "axes.titlesize": 10}


def plot_map(
    coords: np.ndarray,
    values: Sequence,
    path: Path,
    *,
    field: str,
    title: str | None = None,
    highlight: Sequence[bool] | None = None,
    highlight_label: str | None = None,
) -> Path:
    """Whole map, coloured by one payload field; format from path suffix (.png or .svg).

    Args:
        coords: (n, 2) layout positions.
        values: n values of ``field`` (None where unknown). Numeric fields (:data:`NUMERIC_FIELDS`)
            get a colour bar, the others a legend with counts.
        path: output file; the suffix picks the format.
        field: the payload field, named in the legend or colour bar.
        title: figure title.
        highlight: n booleans; the other points are drawn first in light grey, the highlighted ones on
            top in their colour (boolean ``values``, as for ``field="element"``: one highlight colour).
        highlight_label: legend name of the highlighted set, e.g. ``"with O"`` (default "highlighted").

    Returns:
        ``path``.

    Raises:
        ValueError: coords not (n, 2), lengths that differ, or an unknown format.
    """
    path = Path(path)
    coords = _check_coords(coords, len(values), path)
    mask = np.ones(len(coords), dtype=bool) if highlight is None else np.asarray(highlight, dtype=bool)
    if mask.shape != (len(coords),):
        raise ValueError(f"{len(coords)} coordinates but {mask.size} highlight flags")
    started = time.perf_counter()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context(_rc()):
        fig, ax = plt.subplots(figsize=FIGSIZE)
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(False)
        if title:
            ax.set_title(title)
        area = _marker_area(len(coords))
        order = np.random.default_rng(SHUFFLE_SEED).permutation(len(coords))
        common = {"s": area, "linewidths": 0, "rasterized": True}
        handles = []
        if highlight is not None and (~mask).any():
            rest = order[~mask[order]]
            ax.scatter(coords[rest, 0], coords[rest, 1], c=BACKGROUND_COLOR, **common)
        shown = order[mask[order]]
        booleans = len(values) > 0 and all(isinstance(v, bool | np.bool_) for v in values)
        if highlight is not None and booleans:
            ax.scatter(coords[shown, 0], coords[shown, 1], c=HIGHLIGHT_COLOR, **common)
            handles.append((HIGHLIGHT_COLOR, f"{highlight_label or 'highlighted'} ({len(shown):,})"))
        elif _is_numeric([values[i] for i in shown], field):
            numbers = np.array([np.nan if values[i] is None else float(values[i]) for i in shown])
            missing = np.isnan(numbers)
            if missing.any():
                ax.scatter(coords[shown[missing], 0], coords[shown[missing], 1], c=UNKNOWN_COLOR, **common)
                handles.append((UNKNOWN_COLOR, f"no {field} ({int(missing.sum()):,})"))
            if (~missing).any():
                points = ax.scatter(
                    coords[shown[~missing], 0],
                    coords[shown[~missing], 1],
                    c=numbers[~missing],
                    cmap=NUMERIC_CMAP,
                    **common,
                )
                bar = fig.colorbar(points, ax=ax, shrink=0.7, pad=0.02)
                bar.set_label(field)
        else:
            labels, codes, counts = categories([values[i] for i in shown], field=field)
            colours = _category_colours(labels)
            # Merged and unknown values go underneath, so that they never cover a named category.
            under = np.isin(np.asarray(labels)[codes] if len(codes) else codes, [OTHER, UNKNOWN])
            for part in (under, ~under):
                idx = shown[part]
                if len(idx):
                    ax.scatter(coords[idx, 0], coords[idx, 1], c=np.asarray(colours)[codes[part]], **common)
            handles.extend((c, f"{label} ({n:,})") for c, label, n in zip(colours, labels, counts, strict=True))
        if highlight is not None:
            handles.append((BACKGROUND_COLOR, f"others ({int((~mask).sum()):,})"))
        if handles:
            _legend(ax, handles, field)
        written = _save(fig, path)
    logger.info("map figure %s: %d points in %.1f s", path, len(coords), time.perf_counter() - started)
    return written


def _category_colours(labels: list[str]) -> list[str]:
    colours, k = [], 0
    for label in labels:
        if label == OTHER:
            colours.append(OTHER_COLOR)
        elif label == UNKNOWN:
            colours.append(UNKNOWN_COLOR)
        else:
            colours.append(PALETTE[k % len(PALETTE)])
            k += 1
    return colours


def _legend(ax: Any, handles: list[tuple[str, str]], field: str) -> None:
    from matplotlib.lines import Line2D

    proxies = [
        Line2D([], [], linestyle="", marker="o", markersize=6, markerfacecolor=c, markeredgewidth=0, label=label)
        for c, label in handles
    ]
    legend = ax.legend(
        handles=proxies, title=field, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, borderaxespad=0
    )
    legend.set_gid("legend")


def _shared_extent(coords: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
    """A square box around every point: all small maps share it, so positions compare across cells."""
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    centre, half = (lo + hi) / 2, float(np.max(hi - lo)) / 2 or 1.0
    half *= 1 + 2 * EXTENT_MARGIN
    return (centre[0] - half, centre[0] + half), (centre[1] - half, centre[1] + half)


def _histogram(coords: np.ndarray, extent: tuple[tuple[float, float], tuple[float, float]]) -> np.ndarray:
    """(CELL_BINS, CELL_BINS) counts, image orientation: row 0 is the top of the map."""
    counts, _, _ = np.histogram2d(coords[:, 0], coords[:, 1], bins=CELL_BINS, range=extent)
    return counts.T[::-1]


def _log_scale(counts: np.ndarray) -> np.ndarray:
    """Counts → [0, 1] on a log scale (dense clusters would otherwise swamp everything else)."""
    top = float(counts.max())
    return np.log1p(counts) / np.log1p(top) if top > 0 else np.zeros_like(counts)


def element_index(elements: Sequence[Sequence[str]]) -> dict[str, np.ndarray]:
    """Row indices of the materials that contain each element."""
    rows: dict[str, list[int]] = {}
    for i, symbols in enumerate(elements):
        for symbol in set(symbols):
            rows.setdefault(symbol, []).append(i)
    return {symbol: np.asarray(idx, dtype=np.int64) for symbol, idx in rows.items()}


def plot_element_maps(
    coords: np.ndarray,
    elements: Sequence[Sequence[str]],
    path: Path,
    *,
    title: str | None = None,
    color: str = HIGHLIGHT_COLOR,
) -> Path:
    """Periodic-table grid: one small map per element (H..Cf, lanthanides/actinides in the two
    bottom rows), its materials coloured over the grey map; empty cells for absent elements.

    Every cell is the whole map as a log-density image in grey with the materials containing that
    element in ``color`` (opacity by their own log density, so a rare element still shows), the
    element symbol and the number of materials containing it. All cells share one extent.

    Args:
        coords: (n, 2) layout positions.
        elements: n lists of element symbols (a material's composition).
        path: output file; the suffix picks the format (.png or .svg).
        title: figure title.
        color: colour of an element's materials.

    Returns:
        ``path``.

    Raises:
        ValueError: coords not (n, 2), lengths that differ, or an unknown format.
    """
    path = Path(path)
    coords = _check_coords(coords, len(elements), path)
    started = time.perf_counter()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgb

    positions = periodic_table_positions()
    rows_of = element_index(elements)
    outside = sorted(set(rows_of) - set(positions))
    if outside:
        logger.info("element grid: %s are outside H..Cf and not shown", ", ".join(outside))
    extent = _shared_extent(coords) if len(coords) else ((-1.0, 1.0), (-1.0, 1.0))
    everything = _histogram(coords, extent)
    grey = np.where(
        everything > 0, GREY_RANGE[0] + (GREY_RANGE[1] - GREY_RANGE[0]) * _log_scale(everything), EMPTY_RGB[0]
    )
    base = np.repeat(grey[:, :, None], 3, axis=2)
    tint = np.asarray(to_rgb(color))

    def top_left(row: int, column: int) -> tuple[int, int]:
        gap = F_BLOCK_GAP if row > 7 else 0.0
        return round((row - 1 + gap) * CELL_PITCH), (column - 1) * CELL_PITCH

    height = top_left(GRID_ROWS, 1)[0] + CELL_PITCH
    image = np.ones((height, GRID_COLUMNS * CELL_PITCH, 3))
    cells: dict[str, tuple[int, int, int]] = {}
    for symbol, (row, column) in positions.items():
        y, x = top_left(row, column)
        y0, x0 = y + CELL_PAD, x + CELL_PAD
        image[y0 - 1 : y0 + CELL_BINS + 1, x0 - 1 : x0 + CELL_BINS + 1] = FRAME_RGB
        idx = rows_of.get(symbol)
        if idx is None or len(idx) == 0:
            image[y0 : y0 + CELL_BINS, x0 : x0 + CELL_BINS] = EMPTY_RGB
            cells[symbol] = (y0, x0, 0)
            continue
        own = _histogram(coords[idx], extent)
        alpha = np.where(own > 0, ELEMENT_ALPHA[0] + (ELEMENT_ALPHA[1] - ELEMENT_ALPHA[0]) * _log_scale(own), 0.0)
        image[y0 : y0 + CELL_BINS, x0 : x0 + CELL_BINS] = base * (1 - alpha[..., None]) + tint * alpha[..., None]
        cells[symbol] = (y0, x0, len(idx))

    with matplotlib.rc_context(_rc()):
        inches = (image.shape[1] * GRID_PIXEL_SCALE / DPI, image.shape[0] * GRID_PIXEL_SCALE / DPI)
        fig = plt.figure(figsize=inches)
        ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
        ax.set_axis_off()
        ax.imshow(image, interpolation="nearest", origin="upper")
        ax.set_xlim(-0.5, image.shape[1] - 0.5)
        ax.set_ylim(image.shape[0] - 0.5, -0.5)
        inset = 2.5
        for symbol, (y0, x0, count) in cells.items():
            present = count > 0
            label = ax.text(
                x0 + inset,
                y0 + inset,
                symbol,
                ha="left",
                va="top",
                fontsize=9,
                fontweight="bold",
                color="#111111" if present else "#b3b3b3",
            )
            label.set_gid(f"symbol-{symbol}")
            if present:
                number = ax.text(
                    x0 + CELL_BINS - inset,
                    y0 + inset,
                    f"{count:,}",
                    ha="right",
                    va="top",
                    fontsize=6,
                    color="#333333",
                )
                number.set_gid(f"count-{symbol}")
        # The empty block above the transition metals (period 1-3, groups 3-12) holds the caption.
        caption_y, caption_x = top_left(1, 3)
        lines = [title] if title else []
        shown = sum(1 for _, _, c in cells.values() if c)
        lines.append(
            f"{len(coords):,} materials; grey: all of them, colour: those containing the element "
            f"({shown} elements present)"
        )
        if outside:
            lines.append(f"not shown (beyond Cf or not elements): {', '.join(outside)}")
        ax.text(
            caption_x + CELL_PAD,
            caption_y + CELL_PAD,
            "\n".join(lines),
            ha="left",
            va="top",
            fontsize=9,
            color="#111111",
            linespacing=1.5,
            wrap=False,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fig.savefig(path, dpi=DPI, facecolor="white", metadata=_metadata(path))
        finally:
            plt.close(fig)
    logger.info(
        "element grid %s: %d points, %d elements in %.1f s", path, len(coords), shown, time.perf_counter() - started
    )
    return path
