"""Map figures: the whole map coloured by a field, and the periodic-table grid of element maps.

Materials are pymatgen's 288 AFLOW prototypes (real compositions, real space groups from their
AFLOW labels, real Pearson symbols); their coordinates are an openTSNE layout of their composition
vectors (element fractions), so chemically similar prototypes sit together as on a real map.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter

import numpy as np
import pytest

from matconcept.encoders.builtin import aflow_prototypes
from matconcept.encoders.symmetry import crystal_system
from matconcept.service.map.figures import (
    MAX_CATEGORIES,
    OTHER,
    UNKNOWN,
    categories,
    periodic_table_positions,
    plot_element_maps,
    plot_map,
)
from matconcept.service.map.layout import LayoutParams, compute_layout

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SVG_NS = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def prototypes():
    """Per AFLOW prototype: sorted element symbols, space-group number (from the AFLOW label), Pearson symbol."""
    rows = []
    for p in aflow_prototypes():
        elements = sorted({e.symbol for e in p.structure.composition.elements})
        spacegroup = int(p.source_id.split("_")[2])  # AFLOW label: <stoichiometry>_<Pearson>_<space group>_<sites>
        rows.append((elements, spacegroup, p.tags["pearson"]))
    return rows


@pytest.fixture(scope="module")
def coords(prototypes):
    """(288, 2) openTSNE layout of the prototypes' composition vectors (element fractions, Z 1..98)."""
    vectors = np.zeros((len(prototypes), 98), dtype=np.float32)
    for i, p in enumerate(aflow_prototypes()):
        for element, fraction in p.structure.composition.fractional_composition.items():
            vectors[i, element.Z - 1] = fraction
    vectors += np.random.default_rng(0).normal(0, 0.01, vectors.shape).astype(np.float32)
    ids = [p.source_id for p in aflow_prototypes()]
    return compute_layout(ids, vectors, "test", LayoutParams(n_iter=150)).coords


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    width, height = struct.unpack(">II", data[16:24])  # IHDR follows the magic and the chunk header
    return width, height


def _svg_texts(path) -> dict[str, list[str]]:
    """The <text>s inside each SVG group, by group id (matplotlib writes an artist's gid as its group's id)."""
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG_NS}svg"
    out: dict[str, list[str]] = {}
    for group in root.iter(f"{SVG_NS}g"):
        texts = ["".join(t.itertext()) for t in group.iter(f"{SVG_NS}text")]
        if texts:
            out[group.get("id", "")] = texts
    return out


def _all_texts(path) -> list[str]:
    return [t for texts in _svg_texts(path).values() for t in texts]


@pytest.mark.parametrize(
    ("number", "system"),
    [
        (1, "triclinic"),
        (2, "triclinic"),
        (3, "monoclinic"),
        (15, "monoclinic"),
        (16, "orthorhombic"),
        (74, "orthorhombic"),
        (75, "tetragonal"),
        (142, "tetragonal"),
        (143, "trigonal"),
        (167, "trigonal"),
        (168, "hexagonal"),
        (194, "hexagonal"),
        (195, "cubic"),
        (230, "cubic"),
        (None, None),
    ],
)
def test_crystal_system_at_the_range_boundaries(number, system):
    assert crystal_system(number) == system


@pytest.mark.parametrize("number", [0, 231, -5])
def test_crystal_system_rejects_numbers_outside_1_230(number):
    with pytest.raises(ValueError, match=f"space-group number {number} is outside 1..230"):
        crystal_system(number)


def test_periodic_table_positions_put_the_f_block_on_rows_8_and_9():
    pos = periodic_table_positions()
    assert len(pos) == 98 and len(set(pos.values())) == 98  # H..Cf, one cell each
    expected = {"H": (1, 1), "He": (1, 18), "O": (2, 16), "Ba": (6, 2), "Hf": (6, 4), "Ra": (7, 2)}
    expected |= {"La": (8, 3), "Ce": (8, 4), "Lu": (8, 17), "Ac": (9, 3), "U": (9, 6), "Cf": (9, 12)}
    assert {s: pos[s] for s in expected} == expected
    assert (6, 3) not in pos.values() and (7, 3) not in pos.values()


def test_categories_keep_the_largest_eleven_and_merge_the_rest_into_other():
    # 15 categories of sizes 15, 14, ..., 1, plus two missing values.
    values = [f"c{size:02d}" for size in range(15, 0, -1) for _ in range(size)] + [None, None]
    labels, codes, counts = categories(values)
    assert len(labels) == MAX_CATEGORIES + 1  # 11 named + other + unknown
    assert labels[: MAX_CATEGORIES - 1] == [f"c{size:02d}" for size in range(15, 4, -1)]  # by count
    assert labels[-2:] == [OTHER, UNKNOWN]
    assert counts[-2:] == [4 + 3 + 2 + 1, 2]
    assert sum(counts) == len(values) == len(codes)
    assert [labels[c] for c in codes[-5:]] == [OTHER, OTHER, OTHER, UNKNOWN, UNKNOWN]  # c02, c02, c01, None, None
    assert labels[codes[0]] == "c15"

    # Twelve or fewer stay as they are; crystal systems in order of symmetry, numbers ascending.
    labels, _, counts = categories(["cubic", "triclinic", "cubic", "hexagonal"])
    assert labels == ["triclinic", "hexagonal", "cubic"] and counts == [1, 1, 2]
    labels, _, _ = categories([3, 1, 2, 2, 12, 1])
    assert labels == ["1", "2", "3", "12"]
    assert categories([True, False, True])[0] == ["yes", "no"]


def test_map_png_and_svg_coloured_by_crystal_system(tmp_path, coords, prototypes):
    systems = [crystal_system(sg) for _, sg, _ in prototypes]
    png = plot_map(coords, systems, tmp_path / "map.png", field="crystal_system", title="AFLOW prototypes")
    svg = plot_map(coords, systems, tmp_path / "map.svg", field="crystal_system", title="AFLOW prototypes")

    width, height = _png_size(png)
    assert 1000 < width < 2500 and 900 < height < 1600, (width, height)
    assert 20_000 < png.stat().st_size < 2_000_000
    assert 20_000 < svg.stat().st_size < 2_000_000
    legend = _svg_texts(svg)["legend"]
    expected = Counter(systems)
    assert legend[0] == "crystal_system"
    assert legend[1:] == [
        f"{s} ({expected[s]:,})"
        for s in ("triclinic", "monoclinic", "orthorhombic", "tetragonal", "trigonal", "hexagonal", "cubic")
        if expected[s]
    ]
    assert "AFLOW prototypes" in _all_texts(svg)


def test_more_than_twelve_pearson_symbols_collapse_to_other(tmp_path, coords, prototypes):
    pearson = [p for _, _, p in prototypes]
    ranked = Counter(pearson).most_common()
    assert len(ranked) > MAX_CATEGORIES
    svg = plot_map(coords, pearson, tmp_path / "pearson.svg", field="pearson")
    legend = _svg_texts(svg)["legend"][1:]
    assert len(legend) == MAX_CATEGORIES
    kept = sum(int(entry.rsplit("(", 1)[1].rstrip(")").replace(",", "")) for entry in legend[:-1])
    assert legend[-1] == f"{OTHER} ({len(pearson) - kept:,})"
    assert {entry.rsplit(" (", 1)[0] for entry in legend[:-1]} <= {symbol for symbol, _ in ranked[:11]} | {
        symbol for symbol, n in ranked if n == ranked[10][1]
    }  # ties at the cut may go either way


def test_numeric_field_gets_a_colour_bar_and_missing_values_grey(tmp_path, coords, prototypes):
    numbers = [None if i % 10 == 0 else sg for i, (_, sg, _) in enumerate(prototypes)]
    svg = plot_map(coords, numbers, tmp_path / "sg.svg", field="spacegroup_number")
    texts = _all_texts(svg)
    missing = sum(n is None for n in numbers)
    assert f"no spacegroup_number ({missing:,})" in texts
    assert "spacegroup_number" in texts  # the colour bar's label
    assert "200" in texts  # a colour bar tick over the 1..230 range


def test_highlighted_element_counts_in_the_legend(tmp_path, coords, prototypes):
    has_o = [("O" in elements) for elements, _, _ in prototypes]
    png = plot_map(coords, has_o, tmp_path / "O.png", field="element", highlight=has_o, highlight_label="with O")
    svg = plot_map(coords, has_o, tmp_path / "O.svg", field="element", highlight=has_o, highlight_label="with O")
    assert png.read_bytes()[:8] == PNG_MAGIC
    n = sum(has_o)
    assert 0 < n < len(has_o)
    assert _svg_texts(svg)["legend"] == ["element", f"with O ({n:,})", f"others ({len(has_o) - n:,})"]


def test_element_grid_shows_each_elements_count_and_empty_cells(tmp_path, coords, prototypes):
    elements = [e for e, _, _ in prototypes]
    svg = plot_element_maps(coords, elements, tmp_path / "elements.svg", title="AFLOW prototypes")
    png = plot_element_maps(coords, elements, tmp_path / "elements.png")
    counts = Counter(s for e in elements for s in e)
    groups = _svg_texts(svg)
    assert groups["symbol-O"] == ["O"]
    assert groups["count-O"] == [f"{counts['O']:,}"]
    assert groups["count-Cu"] == [f"{counts['Cu']:,}"]
    absent = sorted(set(periodic_table_positions()) - set(counts))
    assert absent, "some element should be missing from the prototypes"
    assert all(f"symbol-{s}" in groups and f"count-{s}" not in groups for s in absent)
    assert sum(k.startswith("symbol-") for k in groups) == 98
    assert any("AFLOW prototypes" in t for t in _all_texts(svg))
    width, height = _png_size(png)
    assert width > 1.7 * height > 1500, (width, height)  # 18 columns by 9 rows of square cells
    assert 30_000 < png.stat().st_size < 2_000_000 and svg.stat().st_size < 2_000_000


def test_figures_of_a_large_map_stay_small_and_quick(tmp_path, coords, prototypes):
    """60k points: the scatter is one raster image inside the SVG, and the grid is histograms."""
    import time

    rng = np.random.default_rng(1)
    pick = rng.integers(0, len(coords), 60_000)
    big = coords[pick] + rng.normal(0, 0.5, (len(pick), 2)).astype(np.float32)
    elements = [prototypes[i][0] for i in pick]
    started = time.perf_counter()
    svg = plot_map(big, [len(e) for e in elements], tmp_path / "big.svg", field="n_elements")
    grid = plot_element_maps(big, elements, tmp_path / "big-elements.svg")
    assert time.perf_counter() - started < 15
    for path in (svg, grid):
        text = path.read_text()
        assert path.stat().st_size < 3_000_000
        assert text.count("<image") == 1 and text.count("<use") < 100  # not one marker per point
        ET.parse(path)


def test_bad_inputs_are_refused_with_the_offending_value(tmp_path, coords):
    with pytest.raises(ValueError, match=r"288 coordinates but 3 values"):
        plot_map(coords, [1, 2, 3], tmp_path / "x.png", field="n_elements")
    with pytest.raises(ValueError, match=r"format '\.jpg'"):
        plot_map(coords, [1] * len(coords), tmp_path / "x.jpg", field="n_elements")
    with pytest.raises(ValueError, match=r"shape \(n, 2\), got \(288, 3\)"):
        plot_element_maps(np.zeros((288, 3)), [["O"]] * 288, tmp_path / "x.svg")


def test_importing_figures_does_not_import_matplotlib():
    code = "import sys, matconcept.service.map.figures; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
