"""End to end: the real Ray Serve service on loopback, real gRPC and HTTP, real CIFs, real qdrant-edge.

The module deploys its own application on the session's Ray Serve (:mod:`tests.live_service`: Ray
and Serve start once per session) over a fresh embedded store in a temporary directory; the session's
teardown checks that no Ray process is left.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
import requests

from tests.live_service import API_KEY

N_STORED = 8
MIB = 1 << 20


@pytest.fixture(scope="module")
def service(serve_cluster, tmp_path_factory):
    return serve_cluster.deploy("service", tmp_path_factory.mktemp("store"))


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
        result = client.search(structure=path, top_k=3)  # the default for a structure: hybrid (issue 13)
        assert result.hits[0].material_id == material_id and result.using == "hybrid"
        assert result.hits[0].distance < 1e-3
        # Ranked by fused score: fcc Ac, Ag, Al, Au share a structure type (distance ~0 there), not a concept.
        assert result.hits[1].score < result.hits[0].score
        crystal = client.search(structure=path, top_k=3, using="crystal")
        assert crystal.hits[0].material_id == material_id and crystal.hits[1].distance > crystal.hits[0].distance
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


def test_any_stored_structure_downloads_over_http_grpc_and_the_cli(service, client, stored, tmp_path, capsys):
    """A COD CIF, a user's upload (multipart POSCAR) and an AFLOW prototype (its pymatgen JSON), once
    stored, come back as CIF, JSON and POSCAR that parse to the stored structure (StructureMatcher) and
    as the original file, over HTTP, gRPC and ``matconcept get --remote``; search answers never carry them."""
    from pymatgen.io.vasp import Poscar

    from matconcept.encoders.builtin import builtin_structures
    from matconcept.encoders.structure_io import read_structure
    from matconcept.service.cli import main
    from matconcept.service.client import MatconceptError
    from matconcept.service.store.structures import STRUCTURE_FIELDS, decode_text
    from tests.structure_match import matches

    url, key = service.http_url, {"authorization": f"Bearer {API_KEY}"}
    cod_id, cod_path = next(iter(stored.items()))
    aflow = next(item for item in builtin_structures() if item.material_id == "aflow:AB_cF8_225_a_b")
    aflow_json = json.dumps(aflow.structure.as_dict())
    cell = read_structure(cod_path).structure.copy()
    cell.scale_lattice(1.1 * cell.volume)  # a user's own cell: another structure than the stored CIF
    poscar = Poscar(cell).get_str()
    r = requests.post(
        f"{url}/v1/materials", files={"file": ("my-cell.vasp", poscar.encode())}, data={"source": "user"}, headers=key
    )
    assert r.status_code == 200 and r.json()["stored"] == 1, r.text
    item = {"structure": {"content": aflow_json, "name": "AB_cF8_225_a_b.json"}, "source": "aflow"}
    r = requests.post(f"{url}/v1/materials", json={"items": [item]}, headers=key)
    assert r.status_code == 200 and r.json()["stored"] == 1, r.text
    expected = {
        cod_id: (read_structure(cod_path).structure, cod_path.read_bytes()),
        "user:my-cell": (read_structure(poscar, fmt="poscar").structure, poscar.encode()),
        "aflow:AB_cF8_225_a_b": (aflow.parse().structure, aflow_json.encode()),
    }
    media = {"cif": "chemical/x-cif", "json": "application/json", "poscar": "text/plain"}
    try:
        for material_id, (structure, original) in expected.items():
            stem = material_id.replace(":", "_")
            for fmt in ("cif", "json", "poscar"):
                r = requests.get(f"{url}/v1/materials/{material_id}", params={"format": fmt})
                assert r.status_code == 200, r.text
                assert r.headers["content-type"].startswith(media[fmt])
                assert f'filename="{stem}.' in r.headers["content-disposition"]
                assert matches(r.text, fmt, structure), (material_id, fmt)
                file = client.get_structure(material_id, format=fmt)
                assert file.format == fmt and matches(file.content, fmt, structure), (material_id, fmt)
            r = requests.get(f"{url}/v1/materials/{material_id}", params={"format": "original"})
            assert r.status_code == 200 and r.content.decode() == decode_text(original)
            assert client.get_structure(material_id, format="original").content == decode_text(original)
            out = tmp_path / f"{stem}.cif"
            assert main(["get", material_id, "--remote", service.grpc_target, "--out", str(out)]) == 0
            assert matches(out.read_text(), "cif", structure)
        record = requests.get(f"{url}/v1/materials/{cod_id}").json()  # without format: the record, as before
        assert record["material_id"] == cod_id and not set(STRUCTURE_FIELDS) & set(record["payload"])
        assert record.get("structure") is None and client.get_one(cod_id).structure is None
        r = requests.post(f"{url}/v1/search", json={"material_id": cod_id, "top_k": 20})
        hits = r.json()["hits"]
        assert len(hits) == len(expected) + len(stored) - 1
        assert not [h for h in hits if set(STRUCTURE_FIELDS) & set(h["payload"]) or "structure" in h]
        r = requests.get(f"{url}/v1/materials/{cod_id}", params={"format": "xyz"})
        assert r.status_code == 400 and "format" in r.json()["error"]["message"]
        r = requests.get(f"{url}/v1/materials/cod:0000000", params={"format": "cif"})
        assert r.status_code == 404 and "cod:0000000" in r.json()["error"]["message"]
        with pytest.raises(MatconceptError) as info:
            client.get_structure("cod:0000000")
        assert info.value.code == grpc.StatusCode.NOT_FOUND
        assert main(["get", "cod:0000000", "--remote", service.grpc_target]) == 2
        assert "NOT_FOUND" in capsys.readouterr().err
    finally:
        client.delete(["user:my-cell", "aflow:AB_cF8_225_a_b"])


def test_simulated_patterns_of_a_stored_material_and_of_an_upload(service, stored):
    """The page's patterns: the model's simulator on the model's grid, non-zero bins only, max 1; a stored
    material's (its kept structure) and an upload's (JSON or multipart) agree with the simulator here."""
    from matconcept.encoders.checkpoint import resolve_model
    from matconcept.encoders.structure_io import read_structure
    from matconcept.encoders.xrd import XRDSimulator

    url = service.http_url
    settings = resolve_model(None, "cpu").info.model.xrd
    material_id, path = next(iter(stored.items()))
    expected = XRDSimulator(settings).pattern(read_structure(path).structure)
    lines = np.flatnonzero(expected > 0)
    r = requests.get(f"{url}/v1/materials/{material_id}/pattern")
    assert r.status_code == 200, r.text
    stored_pattern = r.json()
    assert stored_pattern["material_id"] == material_id and max(stored_pattern["intensity"]) == 1.0
    assert (stored_pattern["wavelength"], stored_pattern["n_bins"]) == (settings.wavelength, settings.n_bins)
    assert (stored_pattern["two_theta_min"], stored_pattern["step"]) == (settings.two_theta_min, settings.step)
    np.testing.assert_allclose(stored_pattern["two_theta"], settings.bin_centres()[lines], atol=1e-4)
    np.testing.assert_allclose(stored_pattern["intensity"], expected[lines], rtol=1e-5)
    as_json = requests.post(f"{url}/v1/pattern", json={"structure": {"content": path.read_text(), "name": path.name}})
    as_form = requests.post(f"{url}/v1/pattern", files={"file": (path.name, path.read_bytes())})
    for r in (as_json, as_form):
        assert r.status_code == 200, r.text
        upload = r.json()
        assert upload["material_id"] is None and upload["formula"] == stored_pattern["formula"]
        assert upload["two_theta"] == stored_pattern["two_theta"]
        np.testing.assert_allclose(upload["intensity"], stored_pattern["intensity"], rtol=1e-5)
    r = requests.post(f"{url}/v1/pattern", files={"file": ("junk.cif", b"this is not a crystal")})
    assert r.status_code == 400 and "junk.cif" in r.json()["error"]["message"]
    r = requests.get(f"{url}/v1/materials/cod:0000000/pattern")
    assert r.status_code == 404 and "cod:0000000" in r.json()["error"]["message"]
