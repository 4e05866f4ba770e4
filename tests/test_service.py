"""End to end: the real Ray Serve service on loopback, real gRPC and HTTP, real CIFs, real qdrant-edge.

One service per module (Ray + Serve take ~30 s and ~1.5 GB to start on 2 cores); it runs on a
fresh embedded store in a temporary directory, with its own Ray session directory, and the
teardown checks that no Ray process of that session is left.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
import requests

from tests.live_service import live_service

API_KEY = "test-key-5f2c"
N_STORED = 8
MIB = 1 << 20


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with live_service(tmp_path_factory.mktemp("store"), API_KEY, "mct") as running:
        yield running


@pytest.fixture(scope="module")
def client(service):
    from matconcept.service.client import MatconceptClient

    with MatconceptClient(service.grpc_target, api_key=API_KEY) as c:
        yield c


@pytest.fixture(scope="module")
def stored(client):
    """N_STORED real COD CIFs stored through the Upsert RPC: material id → path."""
    from matconcept.encoders.builtin import crystals_cifs

    paths = crystals_cifs()[:N_STORED]
    result = client.upsert(paths, source="cod")
    assert result.failed == 0, result
    assert [r.status for r in result.results] == ["added"] * N_STORED
    return {r.material_id: p for r, p in zip(result.results, paths, strict=True)}


def _code(call) -> tuple[grpc.StatusCode, str]:
    from matconcept.service.client import MatconceptError

    with pytest.raises(MatconceptError) as info:
        call()
    return info.value.code, info.value.message


def test_upsert_then_each_structure_is_its_own_nearest_neighbour(client, stored):
    assert client.stats().count == N_STORED
    for material_id, path in stored.items():
        result = client.search(structure=path, top_k=3)
        assert result.hits[0].material_id == material_id
        assert result.hits[0].distance < 1e-3
        assert result.hits[1].distance > result.hits[0].distance
        assert result.query_structure is not None and result.query_structure.formula == result.hits[0].payload.formula
    again = client.upsert(list(stored.values()), source="cod")
    assert {r.status for r in again.results} == {"unchanged"} and again.stored == 0


def test_embed_structure_and_pattern(client, stored):
    path = next(iter(stored.values()))
    out = client.embed(path)
    assert len(out.crystal) == len(out.xrd) == 1024 and out.model_id == client.stats().model_id
    record = client.get_one(next(iter(stored)), with_vectors=True)
    assert np.allclose(out.crystal, record.vectors["crystal"], atol=1e-5)


def test_search_by_xrd_pattern_finds_the_structure(client, stored):
    from matconcept.encoders.structure_io import read_structure
    from matconcept.encoders.xrd import XRDSettings, XRDSimulator

    settings = XRDSettings()
    material_id, path = list(stored.items())[2]
    pattern = XRDSimulator(settings).pattern(read_structure(path).structure)
    result = client.search(pattern=(settings.bin_centres().tolist(), pattern.tolist()), using="xrd", top_k=3)
    assert result.hits[0].material_id == material_id
    cross = client.search(pattern=(settings.bin_centres().tolist(), pattern.tolist()), top_k=3)
    assert cross.using == "crystal" and len(cross.hits) == 3


def test_filters_apply(client, stored):
    material_id = next(iter(stored))
    record = client.get_one(material_id)
    element = record.payload.elements[0]
    hits = client.search(material_id=material_id, top_k=N_STORED, filters={"elements_none": [element]}).hits
    assert material_id not in {h.material_id for h in hits}
    assert all(element not in h.payload.elements for h in hits)
    only = client.search(
        material_id=material_id, top_k=N_STORED, filters={"chemical_system": "-".join(record.payload.elements)}
    )
    assert only.hits and all(h.payload.elements == record.payload.elements for h in only.hits)
    assert client.search(material_id=material_id, filters={"sources": ["aflow"]}).hits == []


def test_http_search_get_and_openapi(service, stored):
    material_id, path = next(iter(stored.items()))
    with path.open("rb") as f:
        r = requests.post(f"{service.http_url}/v1/search", files={"file": (path.name, f)}, data={"top_k": "2"})
    assert r.status_code == 200, r.text
    assert r.json()["hits"][0]["material_id"] == material_id and len(r.json()["hits"]) == 2
    r = requests.post(f"{service.http_url}/v1/search", json={"material_id": material_id, "top_k": 1})
    assert r.status_code == 200 and r.json()["hits"][0]["distance"] < 1e-3
    r = requests.get(f"{service.http_url}/v1/materials/{material_id}")
    assert r.status_code == 200 and r.json()["material_id"] == material_id
    assert requests.get(f"{service.http_url}/healthz").json()["status"] == "ok"
    assert "/v1/search" in requests.get(f"{service.http_url}/openapi.json").json()["paths"]


def test_hostile_inputs_get_clear_status_codes(service, client, stored):
    from tests.hostile import hostile_files

    files = hostile_files()
    cases = {
        "garbage": (b"\x00\xff" * 500, grpc.StatusCode.INVALID_ARGUMENT, "not_cif"),
        "big_cell": (files["big_cell.cif"][0], grpc.StatusCode.INVALID_ARGUMENT, "too_many_sites"),
        "unknown": (files["unknown_element.cif"][0], grpc.StatusCode.INVALID_ARGUMENT, "unknown_element"),
        "huge": (files["huge.cif"][0], grpc.StatusCode.RESOURCE_EXHAUSTED, "too_large"),
    }
    for name, (data, code, reason) in cases.items():
        got, message = _code(lambda data=data, name=name: client.search(structure=data))
        assert (got, message.split(":")[0]) == (code, reason), (name, message)
    got, message = _code(lambda: client.search(structure=b"x" * (20 * MIB)))
    assert got == grpc.StatusCode.RESOURCE_EXHAUSTED and message
    got, message = _code(
        lambda: client._call(
            "Search", __import__("matconcept.service.app.rpc.matconcept_pb2", fromlist=["pb"]).SearchRequest()
        )
    )
    assert got == grpc.StatusCode.INVALID_ARGUMENT and "exactly one of" in message
    got, message = _code(lambda: client.get(["cod:0000000"]))
    assert got == grpc.StatusCode.NOT_FOUND and "cod:0000000" in message
    # The HTTP twins.
    url = f"{service.http_url}/v1/search"
    r = requests.post(url, files={"file": ("garbage.cif", b"\x00\xff" * 500)})
    assert (
        r.status_code == 400
        and r.json()["error"]["reason"] == "not_cif"
        and "garbage.cif" in r.json()["error"]["message"]
    )
    r = requests.post(url, data=b"x" * (20 * MIB), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "limit" in r.json()["error"]["message"]
    r = requests.post(url, data=b"", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "empty" in r.json()["error"]["message"]
    assert requests.get(f"{service.http_url}/v1/materials/cod:0000000").status_code == 404
    assert "Traceback" not in r.text
    # Nothing stored was lost, and the service still answers 200 concurrent requests.
    assert client.stats().count == N_STORED
    ids = list(stored)
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda i: client.search(material_id=ids[i % len(ids)], top_k=5), range(200)))
    assert all(len(r.hits) == 5 and r.hits[0].material_id == ids[i % len(ids)] for i, r in enumerate(results))


def test_writes_need_the_key(service, client, stored):
    from matconcept.encoders.builtin import crystals_cifs
    from matconcept.service.client import MatconceptClient

    new = crystals_cifs()[N_STORED + 1]
    for key in (None, "wrong-key"):
        with MatconceptClient(service.grpc_target, api_key=key) as anonymous:
            got, message = _code(lambda anonymous=anonymous: anonymous.upsert([new]))
            assert got == grpc.StatusCode.UNAUTHENTICATED and ("key" in message or "Bearer" in message)
            got, _ = _code(lambda anonymous=anonymous: anonymous.delete([next(iter(stored))]))
            assert got == grpc.StatusCode.UNAUTHENTICATED
            assert anonymous.stats().count == N_STORED  # reads stay open
    body = {"items": [{"structure": {"content": new.read_text(), "name": new.name}}]}
    r = requests.post(f"{service.http_url}/v1/materials", json=body, headers={"authorization": "Bearer nope"})
    assert r.status_code == 401
    assert requests.delete(f"{service.http_url}/v1/materials/{next(iter(stored))}").status_code == 401
    assert client.stats().count == N_STORED
    # With the key: HTTP upsert, then delete it again over gRPC.
    r = requests.post(f"{service.http_url}/v1/materials", json=body, headers={"authorization": f"Bearer {API_KEY}"})
    assert r.status_code == 200 and r.json()["stored"] == 1, r.text
    new_id = r.json()["results"][0]["material_id"]
    assert client.delete([new_id]).deleted == 1
    assert _code(lambda: client.get([new_id]))[0] == grpc.StatusCode.NOT_FOUND
    assert client.stats().count == N_STORED


def test_the_service_owns_the_embedded_store(service, client):
    from matconcept.service.store import StoreLockedError, open_store

    with pytest.raises(StoreLockedError, match="service API"):
        open_store(service.settings.store, client.stats().model_id)


def test_cli_search_remote(service, stored, capsys):
    from matconcept.service.cli import main

    material_id, path = next(iter(stored.items()))
    assert main(["search", str(path), "--remote", service.grpc_target, "--top-k", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["hits"][0]["material_id"] == material_id and len(out["hits"]) == 2
    assert main(["search", "cod:0000000", "--remote", service.grpc_target]) == 2
    assert "NOT_FOUND" in capsys.readouterr().err


def test_map_layout_points_and_placing_an_upload(service, stored):
    """The map through HTTP: no map → 404; a layout job with progress; every material on the map;
    a stored CIF uploaded lands at its own position; a pattern file too; bad uploads get reasons."""
    from matconcept.encoders.structure_io import read_structure
    from matconcept.encoders.xrd import XRDSettings, XRDSimulator

    url, key = service.http_url, {"authorization": f"Bearer {API_KEY}"}
    status = requests.get(f"{url}/v1/map").json()
    if status["layout"] is None:
        r = requests.get(f"{url}/v1/map/points")
        assert r.status_code == 404 and "matconcept map" in r.json()["error"]["message"]
    assert requests.post(f"{url}/v1/map/layout", json={}).status_code == 401
    r = requests.post(f"{url}/v1/map/layout", json={"perplexity": 100}, headers=key)
    assert r.status_code == 200 and r.json()["job"]["state"] in ("running", "done")
    deadline = time.time() + 120
    while (status := requests.get(f"{url}/v1/map").json())["job"]["state"] == "running" and time.time() < deadline:
        time.sleep(0.5)
    assert status["job"]["state"] == "done", status
    assert status["layout"]["n_points"] == len(stored)
    points = requests.get(f"{url}/v1/map/points").json()
    assert sorted(points["material_id"]) == sorted(stored) and len(points["x"]) == len(stored)
    assert all(isinstance(e, list) and e for e in points["elements"])
    material_id, path = next(iter(stored.items()))
    row = points["material_id"].index(material_id)
    extent = np.ptp(np.array([points["x"], points["y"]]), axis=1).max()
    with path.open("rb") as f:
        r = requests.post(f"{url}/v1/map/place", files={"file": (path.name, f)}, data={"top_k": "3"})
    assert r.status_code == 200, r.text
    placed = r.json()
    assert placed["layout_id"] == points["layout_id"] and placed["query"]["kind"] == "structure"
    assert placed["hits"][0]["material_id"] == material_id and placed["hits"][0]["distance"] < 1e-3
    assert (placed["hits"][0]["x"], placed["hits"][0]["y"]) == (points["x"][row], points["y"][row])
    assert np.hypot(placed["query"]["x"] - points["x"][row], placed["query"]["y"] - points["y"][row]) < 0.1 * extent
    settings = XRDSettings()
    pattern = XRDSimulator(settings).pattern(read_structure(path).structure)
    xy = "\n".join(f"{t:.3f} {i:.6f}" for t, i in zip(settings.bin_centres(), pattern, strict=True))
    r = requests.post(f"{url}/v1/map/place", files={"file": ("scan.xy", xy.encode())})
    assert r.status_code == 200, r.text
    assert r.json()["query"]["kind"] == "pattern" and r.json()["query"]["label"] == "scan.xy"
    r = requests.post(f"{url}/v1/map/place", files={"file": ("junk.cif", b"this is not a crystal")})
    assert r.status_code == 400 and "junk.cif" in r.json()["error"]["message"]
    r = requests.post(f"{url}/v1/map/place", files={"file": ("scan.xy", b"2theta intensity\nten five\n")})
    assert r.status_code == 400 and "scan.xy" in r.json()["error"]["message"]
    page = requests.get(f"{url}/map")
    assert page.status_code == 200 and "/map/static/plotly.min.js" in page.text
    assert requests.get(f"{url}/map/static/plotly.min.js").status_code == 200
    assert requests.get(f"{url}/map/static/..%2Fapi.py").status_code == 404
