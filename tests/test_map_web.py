"""The materials map page (``GET /map``) in a real headless Chromium against the real service.

The module runs on the Ray Serve service on loopback over a fresh embedded store holding real COD
CIFs and their map (``POST /v1/map/layout``), shared with ``test_results_web``
(:mod:`tests.pages_service`), and drives the page with Playwright: the points
load, an uploaded CIF (stored or not) and an XRD pattern are placed as a red star with their
neighbours listed, a click on a point lists its neighbours, and a bad upload shows the service's
error message. A screenshot is saved to ``$MATCONCEPT_TEST_ARTIFACTS`` (default
``tests/artifacts/``) as ``map.png``.

Chromium is Debian's (``/usr/bin/chromium``, never a Playwright download); WebGL runs on
SwiftShader. Without it the module is skipped, except in CI, where it fails.
"""

from __future__ import annotations

import io
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.live_service import API_KEY
from tests.pages_service import N_STORED, NOT_STORED

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-angle=swiftshader",  # WebGL (plotly's scattergl) in headless Chromium without a GPU
    "--enable-unsafe-swiftshader",
]
VIEWPORT = {"width": 1400, "height": 860}
TOP_K = 10
QUERY_RGB = (225, 29, 72)
"""The query star's fill, ``QUERY_COLOR`` (#e11d48) in ``service/web/js/plot.js``."""
COLOUR_TOLERANCE = 40
"""Per channel, 0-255: anti-aliasing and the marker's outline stay far below this."""
WAIT_MS = 30_000
SLOW_LAYOUT_ITER = 70_000
"""t-SNE iterations of the recomputed layout, so its progress is on the page for several seconds."""

# Skipped on a developer machine without Chromium; in CI (CI=true) a missing browser is a failure,
# since `deploy/install.sh --test` installs it there.
pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file() and not os.environ.get("CI"), reason=f"needs Debian's Chromium at {CHROMIUM}"
)


def _artifacts() -> Path:
    folder = Path(os.environ.get("MATCONCEPT_TEST_ARTIFACTS") or Path(__file__).parent / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def service(pages_service):
    return pages_service[0]


@pytest.fixture(scope="module")
def stored(pages_service) -> dict[str, Path]:
    """N_STORED real COD CIFs stored through the API, and their map computed: material id → path."""
    return pages_service[1]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(service, stored, browser):
    """The map page, loaded (``window.matconceptMap.ready``); fails the test on a page error."""
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{service.http_url}/map")
    page.wait_for_function("window.matconceptMap && window.matconceptMap.ready", timeout=WAIT_MS)
    yield page
    context.close()
    assert errors == [], errors


def _act(page, action) -> None:
    """Run ``action`` and wait until the page has answered it (new neighbours or an error shown)."""
    seq = page.evaluate("window.matconceptMap.seq")
    action()
    page.wait_for_function(
        "seq => window.matconceptMap.seq > seq && !window.matconceptMap.busy", arg=seq, timeout=WAIT_MS
    )


def _neighbours(page) -> list[tuple[str, float]]:
    return page.eval_on_selector_all(
        "#neighbours li", "lis => lis.map(li => [li.dataset.materialId, Number(li.dataset.distance)])"
    )


def _trace(page, name: str) -> dict:
    return page.evaluate(
        """name => {
            const t = document.getElementById('map').data.find(t => t.name === name);
            return t ? {x: Array.from(t.x), y: Array.from(t.y), n: t.x.length} : null;
        }""",
        name,
    )


def _upload(page, path: Path) -> dict:
    """Upload ``path`` through ``#upload-input``; the /v1/map/place answer the page received."""
    with page.expect_response(lambda r: r.url.endswith("/v1/map/place")) as answer:
        _act(page, lambda: page.set_input_files("#upload-input", str(path)))
    response = answer.value
    assert response.status == 200, response.text()
    return response.json()


def _assert_neighbour_list(page, placed: dict, http_url: str) -> list[tuple[str, float]]:
    listed = _neighbours(page)
    assert len(listed) == TOP_K
    assert [m for m, _ in listed] == [h["material_id"] for h in placed["hits"]]
    if any(h.get("match") for h in placed["hits"]):  # a pattern: ranked by search-match, best first
        scores = [h["match"]["score"] for h in placed["hits"]]
        assert scores == sorted(scores, reverse=True), scores
        shown = page.eval_on_selector_all("#neighbours li .distance.match", "s => s.map(e => Number(e.textContent))")
        assert shown == pytest.approx(scores, abs=6e-4)
        fits = page.eval_on_selector_all("#neighbours li .fit", "s => s.map(e => e.textContent)")
        assert len(fits) == TOP_K and all("strain" in f and "shift" in f for f in fits), fits
    else:
        distances = [d for _, d in listed]
        assert distances == sorted(distances), distances
    href = page.eval_on_selector("#neighbours li a", "a => a.getAttribute('href')")
    assert href == f"/v1/materials/{listed[0][0]}"
    assert requests.get(http_url + href).json()["material_id"] == listed[0][0]
    return listed


def _query_marker(page) -> dict:
    """The query star's SVG element (centre, in CSS pixels), the plot area and where x/y map to."""
    return page.evaluate(
        """() => {
            const gd = document.getElementById('map');
            const group = Array.from(gd.querySelectorAll('.scatterlayer .trace'))
                .find(g => g.__data__ && g.__data__[0] && g.__data__[0].trace.name === 'query');
            const point = group ? group.querySelector('path.point') : null;
            if (!point) return null;
            const box = point.getBoundingClientRect();
            const area = gd.querySelector('.draglayer .nsewdrag').getBoundingClientRect();
            const fl = gd._fullLayout;
            const page = gd.getBoundingClientRect();
            const q = window.matconceptMap.query;
            return {
                cx: box.left + box.width / 2, cy: box.top + box.height / 2, w: box.width, h: box.height,
                area: {left: area.left, top: area.top, right: area.right, bottom: area.bottom},
                px: page.left + fl.xaxis._offset + fl.xaxis.l2p(q.x),
                py: page.top + fl.yaxis._offset + fl.yaxis.l2p(q.y),
            };
        }"""
    )


def _pixel(page, x: float, y: float) -> tuple[int, int, int]:
    from PIL import Image

    image = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    return image.getpixel((round(x), round(y)))


def test_map_shows_every_stored_material_and_colours_and_searches(page, stored, service):
    hooks = page.evaluate("window.matconceptMap")
    assert hooks["nPoints"] == N_STORED and hooks["query"] is None
    points = requests.get(f"{service.http_url}/v1/map/points").json()
    assert sorted(points["material_id"]) == sorted(stored)
    # The stored points are WebGL traces; together they hold every point once.
    gl = page.evaluate(
        "() => document.getElementById('map').data.filter(t => t.type === 'scattergl').map(t => t.x.length)"
    )
    assert sum(gl) == N_STORED
    assert page.locator("#map canvas").count() > 0

    page.fill("#element-input", "O")
    page.select_option("#color-by", "element")
    with_o = sum("O" in e for e in points["elements"])
    page.wait_for_function(
        "n => document.getElementById('map').data.some(t => t.name === 'with O' && t.x.length === n)",
        arg=with_o,
        timeout=WAIT_MS,
    )
    page.select_option("#color-by", "spacegroup")
    page.wait_for_function(
        "() => document.getElementById('map').data.some(t => t.marker && t.marker.showscale)", timeout=WAIT_MS
    )
    page.wait_for_selector("#map .colorbar", timeout=WAIT_MS)
    # Field metadata comes from the API: the colour bar's ticks, and a crystal-system colouring of the stored field.
    meta = requests.get(f"{service.http_url}/v1/map/meta").json()
    ticks = page.evaluate(
        "() => document.getElementById('map').data.find(t => t.marker && t.marker.showscale).marker.colorbar.ticktext"
    )
    assert ticks == [t["label"] for t in next(f for f in meta["fields"] if f["key"] == "spacegroup")["ticks"]]
    page.select_option("#color-by", "crystal_system")
    systems = Counter(points["crystal_system"])
    assert None not in systems and set(systems) <= set(meta["crystal_systems"])
    page.wait_for_function(
        "names => names.every(n => document.getElementById('map').data.some(t => t.name === n))",
        arg=[f"{system} ({n})" for system, n in systems.items()],
        timeout=WAIT_MS,
    )

    formula = points["formula"][0]
    expected = points["formula"].count(formula)
    page.fill("#search-input", formula)
    page.press("#search-input", "Enter")
    page.wait_for_function(
        "n => document.getElementById('map').data.some(t => t.name === 'search matches' && t.x.length === n)",
        arg=expected,
        timeout=WAIT_MS,
    )
    _act(page, lambda: (page.fill("#search-input", "Xx99"), page.press("#search-input", "Enter")))
    assert "Nothing matches" in page.inner_text("#status")


def test_uploaded_cif_is_placed_with_its_neighbours(page, stored, service):
    from tests.data import cod_cif

    material_id, path = list(stored.items())[3]
    placed = _upload(page, path)
    listed = _assert_neighbour_list(page, placed, service.http_url)
    assert listed[0][0] == material_id and listed[0][1] < 1e-3

    # The query is drawn: its own trace at the position the API returned ...
    hooks = page.evaluate("window.matconceptMap")
    assert hooks["query"] == {"x": placed["query"]["x"], "y": placed["query"]["y"]}
    trace = _trace(page, "query")
    assert trace == {"x": [placed["query"]["x"]], "y": [placed["query"]["y"]], "n": 1}
    # ... as an SVG star inside the plot area, where the axes put that position ...
    marker = _query_marker(page)
    assert marker is not None, "no SVG element for the query trace"
    area = marker["area"]
    assert area["left"] <= marker["cx"] <= area["right"] and area["top"] <= marker["cy"] <= area["bottom"], marker
    assert abs(marker["cx"] - marker["px"]) < 2 and abs(marker["cy"] - marker["py"]) < 2, marker
    assert marker["w"] > 12 and marker["h"] > 12
    # ... and visible: the screenshot is the star's red at its centre.
    rgb = _pixel(page, marker["cx"], marker["cy"])
    assert np.abs(np.subtract(rgb, QUERY_RGB)).max() < COLOUR_TOLERANCE, rgb
    # Its neighbours are highlighted on the map too.
    assert _trace(page, "neighbours")["n"] == TOP_K

    page.screenshot(path=str(_artifacts() / "map.png"))
    assert (_artifacts() / "map.png").stat().st_size > 10_000

    # A CIF that is not stored: placed too, with TOP_K stored neighbours, none at distance 0.
    placed = _upload(page, cod_cif(NOT_STORED))
    listed = _assert_neighbour_list(page, placed, service.http_url)
    assert {m for m, _ in listed} <= set(stored) and listed[0][1] > 1e-3
    assert page.evaluate("window.matconceptMap.query") == {"x": placed["query"]["x"], "y": placed["query"]["y"]}
    assert _trace(page, "query")["n"] == 1


def test_uploaded_xrd_pattern_is_placed(page, stored, service, tmp_path):
    from matconcept.encoders.structure_io import read_structure
    from matconcept.encoders.xrd import XRDSettings, XRDSimulator

    settings = XRDSettings()
    path = list(stored.values())[5]
    intensity = XRDSimulator(settings).pattern(read_structure(path).structure)
    pattern = tmp_path / "measured.xy"
    np.savetxt(pattern, np.column_stack([settings.bin_centres(), intensity]), fmt="%.4f")
    placed = _upload(page, pattern)
    assert placed["query"]["kind"] == "pattern"
    _assert_neighbour_list(page, placed, service.http_url)  # the same two-stage search as /v1/search
    assert placed["hits"][0]["match"]["score"] > 0.9
    assert _trace(page, "query")["n"] == 1 and _query_marker(page) is not None


def test_clicking_a_point_lists_its_neighbours(page, stored, service):
    points = requests.get(f"{service.http_url}/v1/map/points").json()
    xy = np.column_stack([points["x"], points["y"]])
    gaps = np.linalg.norm(xy[:, None] - xy[None], axis=-1) + np.eye(len(xy)) * 1e9
    index = int(gaps.min(axis=1).argmax())  # the loneliest point: nothing else under the cursor
    material_id = points["material_id"][index]
    at = page.evaluate(
        """([x, y]) => {
            const gd = document.getElementById('map');
            const fl = gd._fullLayout;
            const box = gd.getBoundingClientRect();
            return [box.left + fl.xaxis._offset + fl.xaxis.l2p(x), box.top + fl.yaxis._offset + fl.yaxis.l2p(y)];
        }""",
        [points["x"][index], points["y"][index]],
    )
    # Hover: the tooltip names the material.
    page.mouse.move(at[0], at[1])
    page.wait_for_selector("#map .hoverlayer .hovertext", timeout=WAIT_MS)
    tooltip = page.text_content("#map .hoverlayer .hovertext")  # SVG: no innerText
    assert material_id in tooltip and points["source"][index] in tooltip
    # Click: its neighbours (POST /v1/search), itself first, listed and drawn. No notion picked: the request
    # names none and the service searches by its default for a stored id, hybrid, ranked by fused score.
    with page.expect_response(lambda r: r.url.endswith("/v1/search")) as answer:
        _act(page, lambda: page.mouse.click(at[0], at[1]))
    assert "using" not in answer.value.request.post_data_json and answer.value.json()["using"] == "hybrid"
    scores = [h["score"] for h in answer.value.json()["hits"]]
    listed = _neighbours(page)
    assert len(listed) == TOP_K and listed[0][0] == material_id and listed[0][1] < 1e-3
    assert scores == sorted(scores, reverse=True)
    assert _trace(page, "neighbours")["n"] == TOP_K
    assert _trace(page, "selected") == {"x": [points["x"][index]], "y": [points["y"][index]], "n": 1}
    # The notion selector: the same point's neighbours by structure type, then fused (issue 13), itself first.
    for using in ("structure", "hybrid"):
        with page.expect_response(lambda r: r.url.endswith("/v1/search")) as answer:
            _act(page, lambda using=using: page.select_option("#neighbour-using", using))
        assert answer.value.request.post_data_json["using"] == using
        listed = _neighbours(page)
        assert len(listed) == TOP_K and listed[0][0] == material_id
        assert {h["notion"] for h in answer.value.json()["hits"]} <= {"crystal", "structure"}
    # By concept alone: one notion, so the distances are sorted.
    with page.expect_response(lambda r: r.url.endswith("/v1/search")) as answer:
        _act(page, lambda: page.select_option("#neighbour-using", "crystal"))
    assert answer.value.request.post_data_json["using"] == "crystal"
    listed = _neighbours(page)
    assert listed[0][0] == material_id and [d for _, d in listed] == sorted(d for _, d in listed)


def test_a_bad_upload_shows_the_services_message(page, tmp_path):
    garbage = tmp_path / "garbage.cif"
    garbage.write_bytes(b"\x00\xff" * 500)
    bad_pattern = tmp_path / "scan.xy"
    bad_pattern.write_text("two theta, counts\nnot numbers at all\n")
    for path, reason in ((garbage, "not_cif"), (bad_pattern, None)):
        with page.expect_response(lambda r: r.url.endswith("/v1/map/place")) as answer:
            _act(page, lambda path=path: page.set_input_files("#upload-input", str(path)))
        assert answer.value.status == 400
        error = answer.value.json()["error"]
        assert reason is None or error["reason"] == reason
        status = page.locator("#status")
        assert "error" in status.get_attribute("class")
        text = status.inner_text()
        assert error["message"] in text and path.name in text and "Traceback" not in text
        assert _neighbours(page) == [] and page.evaluate("window.matconceptMap.query") is None
        assert page.locator("#progress").is_hidden()


def test_a_cif_dropped_on_the_map_is_placed(page, stored):
    material_id, path = list(stored.items())[7]
    drop = page.evaluate_handle(
        """([name, text]) => {
            const data = new DataTransfer();
            data.items.add(new File([text], name, {type: 'chemical/x-cif'}));
            return data;
        }""",
        [path.name, path.read_text()],
    )
    for event in ("dragenter", "dragover"):
        page.dispatch_event("#map-wrap", event, {"dataTransfer": drop})
    assert page.locator("#drop-overlay").is_visible()
    with page.expect_response(lambda r: r.url.endswith("/v1/map/place")):
        _act(page, lambda: page.dispatch_event("#map-wrap", "drop", {"dataTransfer": drop}))
    assert page.locator("#drop-overlay").is_hidden()
    listed = _neighbours(page)
    assert len(listed) == TOP_K and listed[0][0] == material_id and listed[0][1] < 1e-3
    assert _trace(page, "query")["n"] == 1


def test_a_recomputed_layout_is_loaded_by_an_open_page(page, service):
    before = page.evaluate("window.matconceptMap.layoutId")
    # Enough iterations (~10 s for 20 points) that the page's poll sees the job running.
    r = requests.post(
        f"{service.http_url}/v1/map/layout",
        headers={"authorization": f"Bearer {API_KEY}"},
        json={"n_iter": SLOW_LAYOUT_ITER},
    )
    assert r.status_code == 200, r.text
    page.wait_for_function(
        "() => document.getElementById('status').textContent.includes('Computing the map')", timeout=WAIT_MS
    )
    assert page.locator("#progress").is_visible()
    page.wait_for_function("id => window.matconceptMap.layoutId !== id", arg=before, timeout=2 * WAIT_MS)
    state = requests.get(f"{service.http_url}/v1/map").json()
    hooks = page.evaluate("window.matconceptMap")
    assert hooks["layoutId"] == state["layout"]["layout_id"] != before
    assert hooks["ready"] and hooks["nPoints"] == N_STORED and hooks["query"] is None
    assert page.locator("#progress").is_hidden()
