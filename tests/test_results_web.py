"""The results page (``GET /``) in a real headless Chromium against the real service.

The module runs on the Ray Serve service on loopback over a fresh embedded store holding real COD
CIFs and their map (whose index the page uses to look up formulas), shared with ``test_map_web``
(:mod:`tests.pages_service`), and drives the page with
Playwright: an uploaded CIF lists its hits and is compared with one, the 3D viewers draw (the atom
count of 3Dmol.js's model, and coloured pixels in the canvas), the powder patterns of both are
overlaid, "Download CIF" gives a CIF that parses to the stored structure, a shared address
reproduces the result, filters narrow the hits, a measured pattern is searched with, errors show the
service's message, and a missing viewer library is said so. Screenshots are saved to
``$MATCONCEPT_TEST_ARTIFACTS`` (default ``tests/artifacts/``) as ``results*.png``.

Chromium is Debian's (``/usr/bin/chromium``, never a Playwright download), WebGL on SwiftShader; the
viewer library is 3Dmol.js as ``deploy/install.sh`` vendors it. Without Chromium the browser tests
are skipped, except in CI, where they fail. One test needs neither browser nor Ray: the page, its
modules and the routes it calls are served by the app in-process.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
import requests

from tests.pages_service import NOT_STORED
from tests.test_map_web import CHROMIUM, CHROMIUM_ARGS

VIEWPORT = {"width": 1440, "height": 1000}
TOP_K = 10
UPLOADED = "Cu"
"""The stored COD CIF uploaded as a query: fcc, 4 atoms in its cell as published, 1 in the primitive cell."""
WAIT_MS = 60_000
VIEWER_FILE = "vendor/3Dmol-min.js"
VIEWER_ASSET = f"/map/static/{VIEWER_FILE}"
MIN_INK = 0.01
"""Share of a viewer's pixels that must differ from its white background (atoms, bonds, the cell)."""


def _viewer_vendored() -> bool:
    from matconcept.service.web import WEB_DIR

    return (WEB_DIR / VIEWER_FILE).is_file()


def _artifacts() -> Path:
    folder = Path(os.environ.get("MATCONCEPT_TEST_ARTIFACTS") or Path(__file__).parent / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def service(pages_service):
    return pages_service[0]


@pytest.fixture(scope="module")
def stored(pages_service) -> dict[str, Path]:
    """N_STORED real COD CIFs stored through the API and the map computed: material id → CIF path."""
    by_id = pages_service[1]
    assert UPLOADED in {p.stem for p in by_id.values()}
    return by_id


@pytest.fixture(scope="module")
def browser():
    # Skipped on a developer machine without Chromium or the vendored viewer; in CI (CI=true) either
    # missing is a failure, since `deploy/install.sh --test` installs both there.
    if not CHROMIUM.is_file() and not os.environ.get("CI"):
        pytest.skip(f"needs Debian's Chromium at {CHROMIUM}")
    if not _viewer_vendored() and not os.environ.get("CI"):
        pytest.skip(f"needs 3Dmol.js in service/web/{VIEWER_FILE}: run deploy/install.sh (npm)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def open_page(browser, service, stored):
    """Open the results page at an address (``/?id=…``); fails the test on a page error."""
    contexts = []
    errors: list[str] = []

    def open_at(address: str = "/", route=None):
        context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1, accept_downloads=True)
        contexts.append(context)
        if route is not None:
            context.route(*route)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(service.http_url + address)
        page.wait_for_function("window.matconceptResults && window.matconceptResults.ready", timeout=WAIT_MS)
        return page

    yield open_at
    for context in contexts:
        context.close()
    assert errors == [], errors


def _hooks(page) -> dict:
    return page.evaluate("window.matconceptResults")


def _settled(page, seq: int = 0) -> dict:
    """Wait until a search and its comparison are done (or an error is shown); the test hooks."""
    page.wait_for_function(
        "seq => { const h = window.matconceptResults; return h.seq > seq && !h.busy; }", arg=seq, timeout=WAIT_MS
    )
    page.wait_for_function(
        "() => { const h = window.matconceptResults; return !h.busy && (h.selected === null || "
        "document.querySelector('#hits li.selected') !== null); }",
        timeout=WAIT_MS,
    )
    return _hooks(page)


def _compared(page) -> dict:
    """Wait until the selected hit is compared: both panes and the patterns drawn, or an error shown."""
    page.wait_for_function(
        "() => { const h = window.matconceptResults; return h.selected && !h.busy && "
        "(h.patterns.length > 0 || document.getElementById('status').classList.contains('error')); }",
        timeout=WAIT_MS,
    )
    return _hooks(page)


def _upload(page, path: Path) -> dict:
    with page.expect_response(lambda r: r.url.endswith("/v1/search")) as answer:
        page.set_input_files("#upload-input", str(path))
    assert answer.value.status == 200, answer.value.text()
    _compared(page)
    return answer.value.json()


def _listed(page) -> list[tuple[str, float]]:
    return page.eval_on_selector_all(
        "#hits li", "lis => lis.map(li => [li.dataset.materialId, Number(li.dataset.distance)])"
    )


def _ink(page, selector: str) -> tuple[float, int]:
    """Share of the element's pixels that are not its white background, and how many colours they hold."""
    from PIL import Image

    image = np.asarray(Image.open(io.BytesIO(page.locator(selector).screenshot())).convert("RGB")).astype(int)
    ink = np.abs(image - 255).max(axis=-1) > 24
    colours = {tuple(c) for c in (image[ink] // 32 * 32).tolist()}
    return float(ink.mean()), len(colours)


def _conventional_sites(path: Path) -> int:
    from pymatgen.io.cif import CifParser

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CifParser(str(path)).parse_structures(primitive=False)[0].num_sites


def _asgi_get(app, path: str):
    """GET from the ASGI app in-process, without a server."""
    import asyncio

    import httpx

    async def fetch() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            return await client.get(path)

    return asyncio.run(fetch())


def test_landing_page_and_its_modules_are_served_without_a_store():
    """``/`` is the results page; every module it imports (its own and the shared ones) is served as
    JavaScript; the routes it calls exist; the vendored viewer is there (``deploy/install.sh``)."""
    import posixpath
    import re

    from matconcept.service.app.core import ServiceAPI
    from matconcept.service.app.http_routes import make_http_app
    from matconcept.service.app.settings import AccessSettings, ServiceSettings

    app = make_http_app(ServiceAPI(None, None, ServiceSettings(), AccessSettings(), "mc-test", 8))
    page = _asgi_get(app, "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'href="/map"' in page.text and 'href="/docs"' in page.text
    scripts = re.findall(r'<script[^>]* src="/map/static/([^"]+)"', page.text)
    assert VIEWER_ASSET.removeprefix("/map/static/") in scripts and "plotly.min.js" in scripts
    entry = re.search(r'<script type="module" src="/map/static/([^"]+)"', page.text).group(1)
    todo, seen = [entry], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        r = _asgi_get(app, f"/map/static/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript"), name
        for imported in re.findall(r'from "(\.{1,2}/[\w./]+)"', r.text):
            todo.append(posixpath.normpath(posixpath.join(posixpath.dirname(name), imported)))
    assert {"js/api.js", "js/format.js", "js/feedback.js", "js/results/viewer.js"} <= seen
    for href in re.findall(r'<link rel="stylesheet" href="/map/static/([^"]+)"', page.text):
        assert _asgi_get(app, f"/map/static/{href}").headers["content-type"].startswith("text/css"), href
    assert _asgi_get(app, "/map/static/js/results/../../__init__.py").status_code == 404

    routes = {(route.path, method) for route in app.routes for method in getattr(route, "methods", ())}
    api = _asgi_get(app, "/v1/map/meta").json()["api"]
    for name, method in (("search", "POST"), ("points", "GET"), ("pattern", "POST")):
        assert (api[name], method) in routes, name
    assert (api["material"] + "{material_id}", "GET") in routes
    assert (api["material"] + "{material_id}/pattern", "GET") in routes

    if not _viewer_vendored() and not os.environ.get("CI"):
        pytest.skip(f"3Dmol.js is not in service/web/{VIEWER_FILE}: run deploy/install.sh (npm)")
    library = _asgi_get(app, VIEWER_ASSET)
    assert library.status_code == 200, f"{VIEWER_ASSET} missing: run deploy/install.sh (it vendors 3Dmol.js from npm)"
    assert library.headers["content-type"].startswith("text/javascript") and len(library.content) > 100_000


def test_uploaded_cif_is_compared_with_its_hits(open_page, stored, service, tmp_path):
    from tests.structure_match import matches

    material_id, path = next((m, p) for m, p in stored.items() if p.stem == UPLOADED)
    page = open_page("/")
    answer = _upload(page, path)

    # Hits: ranked best first, the file itself first (it is stored), with the notion used. The page sends no
    # `using`: the service's default for a structure, concept and structure type fused (issue 13), ranks by
    # fused score, each hit's distance in the notion that ranked it higher.
    listed = _listed(page)
    assert [m for m, _ in listed] == [h["material_id"] for h in answer["hits"]] and len(listed) == TOP_K
    assert listed[0][0] == material_id and listed[0][1] < 1e-3
    assert answer["using"] == "hybrid" and {h["fusion"] for h in answer["hits"]} == {"zscore"}
    scores = [h["score"] for h in answer["hits"]]
    assert scores == sorted(scores, reverse=True)
    assert "concept and structure type, fused (the default" in page.inner_text("#hits-title")

    # The nearest hit is compared: both structures drawn by 3Dmol.js with every atom of their cells ...
    hooks = _hooks(page)
    assert hooks["viewerLibrary"] and hooks["selected"] == material_id
    assert hooks["viewers"]["query"]["atoms"] == _conventional_sites(path)
    assert hooks["viewers"]["hit"]["atoms"] >= 1 and hooks["viewers"]["hit"]["hasCell"]
    for pane in ("query", "hit"):
        ink, colours = _ink(page, f"#viewer-{pane}")
        assert ink > MIN_INK and colours >= 3, (pane, ink, colours)
    # ... and both powder patterns overlaid.
    peaks = requests.get(f"{service.http_url}/v1/materials/{material_id}/pattern").json()["two_theta"]
    assert hooks["patterns"] == [
        {"uid": "query", "name": f"{path.name} Cu (simulated)", "n": len(peaks), "sticks": True},
        {"uid": "hit", "name": f"{material_id} Cu (simulated)", "n": len(peaks), "sticks": True},
    ]
    # In the SVG: one group per trace, one drawn stick per peak.
    sticks = page.evaluate(
        "() => Array.from(document.querySelectorAll('#pattern .scatterlayer .trace')).map(g => "
        "Array.from(g.querySelectorAll('path.js-line')).filter(p => (p.getAttribute('d') || '').length > 4).length)"
    )
    assert sticks == [len(peaks), len(peaks)], sticks
    assert page.locator("#details").inner_text().count(material_id) == 1

    # Another hit: its structure and pattern replace the first; the address names it.
    other = listed[3][0]
    page.click(f'#hits li[data-material-id="{other}"] .formula')
    hooks = _compared(page)
    record = requests.get(f"{service.http_url}/v1/materials/{other}").json()
    assert hooks["selected"] == other
    assert page.inner_text("#hit-caption").endswith(other)
    ink, colours = _ink(page, "#viewer-hit")
    assert ink > MIN_INK, ink
    assert record["payload"]["formula"] in page.inner_text("#details")

    # Download CIF: the stored structure of the selected hit.
    with page.expect_download() as download:
        page.click("#download-cif")
    text = Path(download.value.path()).read_text()
    assert download.value.suggested_filename.endswith(".cif") and text.lstrip().startswith(("#", "data_"))
    from matconcept.encoders.structure_io import read_structure

    assert matches(text, "cif", read_structure(stored[other]).structure)
    page.screenshot(path=str(_artifacts() / "results.png"), full_page=True)


def test_a_shared_address_reproduces_the_result(open_page, stored, service):
    material_id = next(m for m, p in stored.items() if p.stem == "BaTiO3_cubic")
    page = open_page(f"/?id={material_id}")
    first = _compared(page)
    assert first["query"] == material_id and first["hits"][0] == material_id
    assert first["selected"] == first["hits"][1], "an id query compares the nearest other material"
    # Options: compare by the XRD encoder's vectors; the address follows.
    with page.expect_response(lambda r: r.url.endswith("/v1/search")):
        page.select_option("#opt-using", "xrd")
    second = _compared(page)
    address = urlparse(page.url)
    assert address.path == "/" and parse_qs(address.query) == {
        "id": [material_id],
        "using": ["xrd"],
        "hit": [second["selected"]],
    }
    assert "diffraction embedding" in page.inner_text("#hits-title")
    # The structure-type notion (issue 13): its own title, every hit naming it, kept in the address.
    with page.expect_response(lambda r: r.url.endswith("/v1/search")):
        page.select_option("#opt-using", "structure")
    _compared(page)
    assert "structure type" in page.inner_text("#hits-title") and "using=structure" in page.url
    assert page.eval_on_selector_all("#hits li .notion", "s => s.map(s => s.textContent)") == ["structure"] * len(
        page.query_selector_all("#hits li")
    )
    with page.expect_response(lambda r: r.url.endswith("/v1/search")):
        page.select_option("#opt-using", "xrd")
    second = _compared(page)
    # Another browser opening that address sees the same hits, the same selection and the same record.
    again = open_page(address.path + "?" + address.query)
    shared = _compared(again)
    assert shared["hits"] == second["hits"] and shared["selected"] == second["selected"]
    assert again.input_value("#opt-using") == "xrd" and again.input_value("#query-input") == material_id
    assert again.inner_text("#details") == page.inner_text("#details")

    # A formula is looked up (any order of elements) and searched by its material's stored vector.
    by_formula = open_page("/?formula=TiBaO3")
    found = _compared(by_formula)
    assert found["hits"] == first["hits"] and found["selected"] == first["selected"]
    page.screenshot(path=str(_artifacts() / "results-shared.png"), full_page=True)


def test_filters_narrow_the_hits(open_page, stored, service):
    material_id = next(m for m, p in stored.items() if p.stem == "BaTiO3_cubic")
    page = open_page(f"/?id={material_id}&elements_none=O&source=cod&top_k=5")
    hooks = _compared(page)
    assert len(hooks["hits"]) == 5 and material_id not in hooks["hits"]
    for hit in hooks["hits"]:
        payload = requests.get(f"{service.http_url}/v1/materials/{hit}").json()["payload"]
        assert "O" not in payload["elements"] and payload["source"] == "cod"
    assert page.input_value("#opt-elements-none") == "O" and page.input_value("#opt-top-k") == "5"
    # A space-group filter typed in the page: only cubic Fm-3m materials (225) are left.
    with page.expect_response(lambda r: r.url.endswith("/v1/search")):
        page.fill("#opt-spacegroup", "225")
        page.press("#opt-spacegroup", "Tab")
    hooks = _settled(page)
    payloads = [requests.get(f"{service.http_url}/v1/materials/{h}").json()["payload"] for h in hooks["hits"]]
    groups = {p["spacegroup_number"] for p in payloads}
    assert hooks["hits"] and groups == {225}
    assert parse_qs(urlparse(page.url).query)["spacegroup"] == ["225"]
    # Only these elements (e.g. from XRF): every hit is made of some of them.
    allowed = {"Ba", "Ti", "O", "Cu", "Ag"}
    page = open_page(f"/?id={material_id}&elements_only={','.join(sorted(allowed))}")
    hooks = _compared(page)
    payloads = [requests.get(f"{service.http_url}/v1/materials/{h}").json()["payload"] for h in hooks["hits"]]
    assert hooks["hits"][0] == material_id and all(set(p["elements"]) <= allowed for p in payloads)
    assert {"Cu", "Ag"} <= {e for p in payloads for e in p["elements"]}


def test_a_measured_pattern_is_searched_and_overlaid(open_page, stored, tmp_path):
    from matconcept.encoders.structure_io import read_structure
    from matconcept.encoders.xrd import XRDSettings, XRDSimulator

    path = next(p for p in stored.values() if p.stem == "BaTiO3_cubic")
    settings = XRDSettings()
    intensity = XRDSimulator(settings).pattern(read_structure(path).structure)
    measured = tmp_path / "measured.xy"
    np.savetxt(measured, np.column_stack([settings.bin_centres(), 1000 * intensity + 5]), fmt="%.4f")
    page = open_page("/")
    answer = _upload(page, measured)
    assert answer["query_structure"] is None and len(_listed(page)) == TOP_K
    hooks = _hooks(page)
    assert hooks["viewers"]["query"] is None and "no structure" in page.inner_text("#viewer-query-note")
    assert hooks["viewers"]["hit"]["atoms"] >= 1
    assert [p["uid"] for p in hooks["patterns"]] == ["query", "hit"]
    assert "measured" in hooks["patterns"][0]["name"]
    page.screenshot(path=str(_artifacts() / "results-pattern.png"), full_page=True)


def test_a_dropped_cif_is_searched(open_page, stored):
    from tests.data import cod_cif

    path = cod_cif(NOT_STORED)
    page = open_page("/")
    drop = page.evaluate_handle(
        """([name, text]) => {
            const data = new DataTransfer();
            data.items.add(new File([text], name, {type: 'chemical/x-cif'}));
            return data;
        }""",
        [path.name, path.read_text()],
    )
    for event in ("dragenter", "dragover"):
        page.dispatch_event("body", event, {"dataTransfer": drop})
    assert page.locator("#drop-overlay").is_visible()
    with page.expect_response(lambda r: r.url.endswith("/v1/search")):
        page.dispatch_event("body", "drop", {"dataTransfer": drop})
    hooks = _compared(page)
    assert page.locator("#drop-overlay").is_hidden()
    listed = _listed(page)
    assert len(listed) == TOP_K and set(hooks["hits"]) <= set(stored) and listed[0][1] > 1e-3
    assert hooks["viewers"]["query"]["atoms"] == _conventional_sites(path)


def test_errors_show_the_services_message(open_page, tmp_path):
    garbage = tmp_path / "garbage.cif"
    garbage.write_bytes(b"\x00\xff" * 500)
    page = open_page("/")
    with page.expect_response(lambda r: r.url.endswith("/v1/search")) as answer:
        page.set_input_files("#upload-input", str(garbage))
    assert answer.value.status == 400
    error = answer.value.json()["error"]
    page.wait_for_function("() => document.getElementById('status').classList.contains('error')", timeout=WAIT_MS)
    text = page.inner_text("#status")
    assert error["message"] in text and garbage.name in text and "Traceback" not in text
    assert _listed(page) == [] and page.locator("#progress").is_hidden()

    unknown = open_page("/?id=cod:0000001")
    unknown.wait_for_function("() => document.getElementById('status').classList.contains('error')", timeout=WAIT_MS)
    assert "cod:0000001" in unknown.inner_text("#status") and _listed(unknown) == []

    nothing = open_page("/?formula=Xe2Kr")
    nothing.wait_for_function("() => document.getElementById('status').classList.contains('warn')", timeout=WAIT_MS)
    assert "No stored material has the formula" in nothing.inner_text("#status")


def test_a_missing_viewer_library_is_said_so(open_page, stored):
    material_id = next(iter(stored))
    page = open_page(f"/?id={material_id}", route=("**" + VIEWER_ASSET, lambda route: route.fulfill(status=404)))
    hooks = _compared(page)
    assert not hooks["viewerLibrary"] and hooks["viewers"] == {"query": None, "hit": None}
    for pane in ("query", "hit"):
        note = page.inner_text(f"#viewer-{pane}-note")
        assert "3Dmol.js" in note and "deploy/install.sh" in note
    assert [p["uid"] for p in hooks["patterns"]] == ["query", "hit"]
