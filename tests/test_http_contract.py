"""The HTTP contract end to end, on the real service: every route × body kind × key, the OpenAPI document.

* Every HTTP route with each body kind it takes (JSON, multipart form) and each key (none, wrong,
  right), asserting what was stored or deleted (read back), not only the status code. Reads are open
  by default (``reads_require_key`` off), so a read answers with any key, a wrong one included.
* Non-finite and out-of-range numbers (NaN, ±inf, JSON's ``1e309``, a float32-overflowing vector,
  2θ outside 0-180°, a site filter past int32) are a 400 over HTTP and INVALID_ARGUMENT over gRPC,
  with a message naming the field; nothing is stored and the service keeps answering.
* The OpenAPI document declares each request body (the JSON model and the multipart form), examples
  that succeed when sent as they are, the error answers and the key; a client generated from the
  live ``/openapi.json`` with openapi-python-client searches, embeds, stores, reads and deletes.
"""

from __future__ import annotations

import importlib
import io
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import requests

from tests.live_service import API_KEY

KEYS: dict[str, str | None] = {"none": None, "wrong": "Bearer wrong-key-0000", "right": f"Bearer {API_KEY}"}
N_STORED = 6
DIM = 1024


def _headers(key: str) -> dict[str, str]:
    header = KEYS[key]
    return {} if header is None else {"authorization": header}


@pytest.fixture(scope="module")
def service(serve_cluster, tmp_path_factory):
    return serve_cluster.deploy("http_contract", tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def url(service) -> str:
    return service.http_url


@pytest.fixture(scope="module")
def client(service):
    from matconcept.service.client import MatconceptClient

    with MatconceptClient(service.grpc_target, api_key=API_KEY) as c:
        yield c


@pytest.fixture(scope="module")
def cifs() -> list[Path]:
    from matconcept.encoders.builtin import crystals_cifs

    return crystals_cifs()


@pytest.fixture(scope="module")
def stored(client, cifs) -> dict[str, Path]:
    """N_STORED real COD CIFs stored over gRPC: material id → path."""
    result = client.upsert(cifs[:N_STORED], source="cod")
    assert result.failed == 0 and result.stored == N_STORED, result
    return {r.material_id: p for r, p in zip(result.results, cifs, strict=False)}


@pytest.fixture(scope="module")
def layout(url, stored) -> dict:
    """A map layout of the stored materials (POST /v1/map/layout with the key), once it is done."""
    r = requests.post(f"{url}/v1/map/layout", json={"perplexity": 5}, headers=_headers("right"))
    assert r.status_code == 200, r.text
    deadline = time.time() + 120
    while (status := requests.get(f"{url}/v1/map").json())["job"]["state"] == "running" and time.time() < deadline:
        time.sleep(0.5)
    assert status["job"]["state"] == "done" and status["layout"]["n_points"] == N_STORED, status
    return status


def _structure_body(kind: str, path: Path, **fields) -> dict:
    """``requests`` keyword arguments sending ``path`` as a JSON StructureIn or as a multipart ``file``."""
    if kind == "json":
        return {"json": {"structure": {"content": path.read_text(), "name": path.name}, **fields}}
    data = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
    return {"files": {"file": (path.name, path.read_bytes())}, "data": data}


def _error(r: requests.Response, status: int) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "reason", "message"}, body
    assert "Traceback" not in r.text
    return body["error"]


# -- the write path: the multipart upload that answered 500 ---------------------------------------
def test_multipart_upsert_stores_the_file_and_it_finds_itself(url, client, stored, cifs):
    """issue 15: ``curl -F file=@x.cif …/v1/materials`` with the key stores x, which then finds itself
    at distance ~0 over HTTP (multipart and JSON) and gRPC."""
    path = cifs[N_STORED]
    with path.open("rb") as f:
        r = requests.post(
            f"{url}/v1/materials",
            files={"file": (path.name, f)},
            data={"source_id": "upload-1", "tags": json.dumps({"project": "contract"})},
            headers=_headers("right"),
        )
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["stored"] == 1 and result["failed"] == 0
    assert result["results"] == [
        {"index": 0, "material_id": "user:upload-1", "status": "added", "reason": "", "message": ""}
    ]
    record = requests.get(f"{url}/v1/materials/user:upload-1").json()
    assert record["payload"]["source"] == "user" and record["payload"]["tags"]["project"] == "contract"
    try:
        r = requests.post(f"{url}/v1/search", **_structure_body("multipart", path, top_k=2))
        assert r.status_code == 200, r.text
        assert r.json()["hits"][0]["material_id"] == "user:upload-1" and r.json()["hits"][0]["distance"] < 1e-3
        assert r.json()["query_structure"]["formula"] == record["payload"]["formula"]
        r = requests.post(f"{url}/v1/search", **_structure_body("json", path, top_k=2))
        assert r.json()["hits"][0]["material_id"] == "user:upload-1" and r.json()["hits"][0]["distance"] < 1e-3
        over_grpc = client.search(structure=path, top_k=2)
        assert over_grpc.hits[0].material_id == "user:upload-1" and over_grpc.hits[0].distance < 1e-3
        # The same file again is unchanged; a second file or tags that are not a JSON object are a clear 400.
        r = requests.post(
            f"{url}/v1/materials", **_structure_body("multipart", path, source_id="upload-1"), headers=_headers("right")
        )
        assert r.json()["results"][0]["status"] == "unchanged" and r.json()["stored"] == 0
        r = requests.post(
            f"{url}/v1/materials",
            files=[("file", (path.name, path.read_bytes())), ("file", ("b.cif", path.read_bytes()))],
            headers=_headers("right"),
        )
        assert "one file" in _error(r, 400)["message"]
        r = requests.post(
            f"{url}/v1/materials", **_structure_body("multipart", path, tags="[1]"), headers=_headers("right")
        )
        assert _error(r, 400)["message"].startswith("tags")
    finally:
        client.delete(["user:upload-1"])
    assert client.stats().count == N_STORED


# -- writes: upsert and delete × body kind × key ---------------------------------------------------
@pytest.mark.parametrize("kind", ["json", "multipart"])
def test_upsert_by_body_kind_and_key(url, client, stored, cifs, kind):
    """Only the right key stores; none and a wrong one are 401 and store nothing (read back to check)."""
    path = cifs[N_STORED + 1] if kind == "json" else cifs[N_STORED + 2]
    expected_formula = client.embed(path).structure.formula
    try:
        for key in KEYS:
            source_id = f"{kind}-{key}"
            fields = {"source": "contract", "source_id": source_id, "tags": {"key": key}}
            if kind == "json":
                body = {"json": {"items": [{"structure": {"content": path.read_text(), "name": path.name}, **fields}]}}
            else:
                body = _structure_body(kind, path, **fields)
            r = requests.post(f"{url}/v1/materials", **body, headers=_headers(key))
            back = requests.get(f"{url}/v1/materials/contract:{source_id}")
            if key != "right":
                assert _error(r, 401)["code"] == "unauthenticated"
                assert _error(back, 404)["code"] == "not_found"
                continue
            assert r.status_code == 200 and r.json()["stored"] == 1, r.text
            assert r.json()["results"][0]["material_id"] == f"contract:{source_id}"
            assert back.status_code == 200
            payload = back.json()["payload"]
            assert (payload["source"], payload["source_id"], payload["tags"]["key"]) == ("contract", source_id, key)
            assert payload["formula"] == expected_formula
        assert client.stats().count == N_STORED + 1
    finally:
        client.delete([f"contract:{kind}-{key}" for key in KEYS])
    assert client.stats().count == N_STORED


@pytest.mark.parametrize("route", ["one", "many"])
def test_delete_by_key(url, client, stored, cifs, route):
    """DELETE /v1/materials/{id} (no body) and DELETE /v1/materials (JSON ids): only the right key deletes."""
    from matconcept.service.app.schemas import StructureIn, UpsertItem

    path = cifs[N_STORED + 3]
    item = UpsertItem(structure=StructureIn(content=path.read_bytes(), name=path.name), source_id=f"del-{route}")
    assert client.upsert([item]).stored == 1
    target = f"user:del-{route}"

    def send(key: str) -> requests.Response:
        if route == "one":
            return requests.delete(f"{url}/v1/materials/{target}", headers=_headers(key))
        return requests.delete(
            f"{url}/v1/materials", json={"material_ids": [target, "user:never"]}, headers=_headers(key)
        )

    try:
        for key in ("none", "wrong"):
            assert _error(send(key), 401)["code"] == "unauthenticated"
            assert requests.get(f"{url}/v1/materials/{target}").status_code == 200
        r = send("right")
        assert r.status_code == 200, r.text
        assert r.json() == {"deleted": 1, "missing": [] if route == "one" else ["user:never"]}
        assert _error(requests.get(f"{url}/v1/materials/{target}"), 404)["code"] == "not_found"
        again = send("right")
        if route == "one":
            assert _error(again, 404)["message"] == f"material_id: no stored material {target!r}"
        else:
            assert again.json() == {"deleted": 0, "missing": [target, "user:never"]}
            form = requests.delete(f"{url}/v1/materials", files={"file": ("x.cif", b"x")}, headers=_headers("right"))
            assert "JSON body" in _error(form, 400)["message"]
    finally:
        client.delete([target])
    assert client.stats().count == N_STORED


def test_map_layout_by_key(url, layout):
    """POST /v1/map/layout (JSON only): none and a wrong key are 401 and start nothing."""
    before = requests.get(f"{url}/v1/map").json()
    for key in ("none", "wrong"):
        assert _error(requests.post(f"{url}/v1/map/layout", json={"perplexity": 5}, headers=_headers(key)), 401)
    assert requests.get(f"{url}/v1/map").json() == before
    form = requests.post(f"{url}/v1/map/layout", files={"file": ("x", b"{}")}, headers=_headers("right"))
    assert _error(form, 400)["reason"] == "invalid_request"


# -- reads × body kind × key -----------------------------------------------------------------------
@pytest.mark.parametrize("key", list(KEYS))
@pytest.mark.parametrize("kind", ["json", "multipart"])
@pytest.mark.parametrize("route", ["/v1/search", "/v1/embed", "/v1/map/place"])
def test_query_routes_by_body_kind_and_key(url, client, stored, layout, route, kind, key):
    """Reads are open: each answers with no key, a wrong key and the right one, with the right result."""
    material_id, path = list(stored.items())[1]
    r = requests.post(
        f"{url}{route}",
        **_structure_body(kind, path, **({} if route == "/v1/embed" else {"top_k": 3})),
        headers=_headers(key),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    if route == "/v1/embed":
        vectors = client.get_one(material_id, with_vectors=True).vectors
        assert np.allclose(body["crystal"], vectors["crystal"], atol=1e-5)
        assert np.allclose(body["xrd"], vectors["xrd"], atol=1e-5)
        return
    assert len(body["hits"]) == 3 and body["hits"][0]["material_id"] == material_id
    assert body["hits"][0]["distance"] < 1e-3
    if route == "/v1/map/place":
        assert body["layout_id"] == layout["layout"]["layout_id"] and body["query"]["kind"] == "structure"


@pytest.mark.parametrize("key", list(KEYS))
def test_get_routes_by_key(url, client, stored, layout, key):
    material_id = next(iter(stored))
    headers = _headers(key)
    record = requests.get(f"{url}/v1/materials/{material_id}", params={"vectors": "true"}, headers=headers)
    assert record.status_code == 200
    assert record.json()["payload"] == json.loads(client.get_one(material_id).payload.model_dump_json())
    assert len(record.json()["vectors"]["crystal"]) == DIM
    assert requests.get(f"{url}/v1/stats", headers=headers).json()["count"] == client.stats().count
    assert requests.get(f"{url}/v1/map", headers=headers).json()["layout"]["layout_id"] == layout["layout"]["layout_id"]
    assert material_id in requests.get(f"{url}/v1/map/points", headers=headers).json()["material_id"]
    assert requests.get(f"{url}/v1/map/meta", headers=headers).json()["api"]["search"] == "/v1/search"
    assert requests.get(f"{url}/healthz", headers=headers).json()["status"] == "ok"


def test_search_form_fields_and_pattern_uploads(url, stored, cifs):
    """Form fields as the JSON fields (filters as JSON text); a .xy upload is a measured pattern."""
    from matconcept.encoders.structure_io import read_structure
    from matconcept.encoders.xrd import XRDSettings, XRDSimulator

    material_id, path = list(stored.items())[2]
    elements = requests.get(f"{url}/v1/materials/{material_id}").json()["payload"]["elements"]
    r = requests.post(
        f"{url}/v1/search",
        **_structure_body("multipart", path, top_k=N_STORED, filters={"elements_none": elements[:1]}),
    )
    assert r.status_code == 200 and material_id not in {h["material_id"] for h in r.json()["hits"]}
    settings = XRDSettings()
    pattern = XRDSimulator(settings).pattern(read_structure(path).structure)
    xy = "\n".join(f"{t:.3f} {i:.6f}" for t, i in zip(settings.bin_centres(), pattern, strict=True)).encode()
    r = requests.post(f"{url}/v1/search", files={"file": ("scan.xy", xy)}, data={"using": "xrd", "top_k": "2"})
    assert r.status_code == 200 and r.json()["hits"][0]["material_id"] == material_id, r.text
    # No using: a pattern and a raw vector are searched by the concept (crystal), the answer says so.
    r = requests.post(f"{url}/v1/search", files={"file": ("scan.xy", xy)}, data={"top_k": "2"})
    assert r.status_code == 200 and r.json()["using"] == "crystal", r.text
    r = requests.post(f"{url}/v1/search", json={"vector": [0.0] * DIM, "top_k": 1})
    assert r.status_code == 200 and r.json()["using"] == "crystal" and r.json()["hits"][0]["notion"] == "crystal"
    r = requests.post(f"{url}/v1/embed", files={"file": ("scan.dat", xy)})
    assert r.status_code == 200 and r.json()["crystal"] is None and len(r.json()["xrd"]) == DIM
    r = requests.post(f"{url}/v1/search", files={"file": ("scan.xy", xy)}, data={"kind": "structure"})
    assert _error(r, 400)["reason"] == "not_cif"
    for data, field in (({"topk": "2"}, "topk"), ({"top_k": "two"}, "top_k"), ({"filters": "{"}, "filters")):
        r = requests.post(f"{url}/v1/search", files={"file": (path.name, path.read_bytes())}, data=data)
        assert _error(r, 400)["message"].startswith(field), (data, r.text)


# -- non-finite and out-of-range numbers -------------------------------------------------------------
def _vector(bad: str) -> str:
    return "[" + ", ".join([bad] + ["0.01"] * (DIM - 1)) + "]"


BAD_JSON = [
    ("/v1/search", f'{{"vector": {_vector("NaN")}}}', "vector.0: Input should be a finite number"),
    ("/v1/search", f'{{"vector": {_vector("1e309")}}}', "vector.0: Input should be a finite number"),
    ("/v1/search", f'{{"vector": {_vector("-Infinity")}}}', "vector.0: Input should be a finite number"),
    ("/v1/search", f'{{"vector": {_vector("1e39")}}}', "vector.0: Input should be less than or equal to"),
    ("/v1/search", f'{{"vector": [{", ".join(["NaN"] * DIM)}]}}', f"and {DIM - 5} more"),
    ("/v1/search", '{"material_id": "cod:1", "top_k": 1e309}', "top_k: Input should be a finite number"),
    ("/v1/search", '{"material_id": "cod:1", "top_k": NaN}', "top_k: Input should be a finite number"),
    ("/v1/search", '{"material_id": "cod:1", "filters": {"max_sites": 1e400}}', "filters.max_sites"),
    ("/v1/search", '{"material_id": "cod:1", "filters": {"min_sites": 99999999999}}', "filters.min_sites: Input"),
    ("/v1/search", '{"material_id": "cod:1", "filters": {"spacegroup_number": 231}}', "filters.spacegroup_number"),
    (
        "/v1/search",
        '{"pattern": {"two_theta": [10, 20, 30], "intensity": [1, NaN, 2]}}',
        "pattern.intensity.1: Input should be a finite number",
    ),
    (
        "/v1/embed",
        '{"pattern": {"two_theta": [10, 20, 1e309], "intensity": [1, 2, 3]}}',
        "pattern.two_theta.2: Input should be a finite number",
    ),
    (
        "/v1/map/place",
        '{"pattern": {"two_theta": [10, 200], "intensity": [1, 2]}}',
        "pattern.two_theta.1: Input should be less than or equal to 180",
    ),
    ("/v1/map/place", '{"structure": {"content": "x"}, "top_k": Infinity}', "top_k: Input should be a finite number"),
    ("/v1/map/layout", '{"perplexity": NaN}', "perplexity: Input should be a finite number"),
    ("/v1/map/layout", '{"perplexity": 1e309}', "perplexity: Input should be a finite number"),
    ("/v1/map/layout", '{"seed": 100000000000000000000}', "seed: Input should be less than or equal to"),
]


@pytest.mark.parametrize(("route", "body", "message"), BAD_JSON, ids=[f"{r}:{m[:30]}" for r, _, m in BAD_JSON])
def test_non_finite_and_out_of_range_numbers_are_400(url, client, stored, route, body, message):
    headers = {"content-type": "application/json", **_headers("right")}
    error = _error(requests.post(f"{url}{route}", data=body.encode(), headers=headers), 400)
    assert error["code"] == "invalid_argument" and message in error["message"], error
    assert len(error["message"]) < 600  # a thousand bad values are named in one short line
    assert client.stats().count == N_STORED


def test_non_finite_form_fields_are_400(url, stored):
    path = next(iter(stored.values()))
    for data in ({"top_k": "inf"}, {"top_k": "1e309"}, {"filters": '{"max_sites": 1e400}'}):
        r = requests.post(f"{url}/v1/search", files={"file": (path.name, path.read_bytes())}, data=data)
        assert _error(r, 400)["message"].startswith(next(iter(data))), r.text


def test_non_finite_numbers_over_grpc_are_invalid_argument(client, stored):
    """Raw protobuf messages (the Python client would refuse these itself): INVALID_ARGUMENT, never INTERNAL."""
    from matconcept.service.app.rpc import matconcept_pb2 as pb
    from matconcept.service.client import MatconceptError

    rest = [0.01] * (DIM - 1)
    cases = [
        ("Search", pb.SearchRequest(vector=pb.Vector(values=[math.nan, *rest])), "vector.0: Input should be a finite"),
        ("Search", pb.SearchRequest(vector=pb.Vector(values=[math.inf, *rest])), "vector.0: Input should be a finite"),
        ("Search", pb.SearchRequest(vector=pb.Vector(values=[3e38, *rest])), "vector.0: Input should be less than"),
        (
            "Search",
            pb.SearchRequest(pattern=pb.XrdPattern(two_theta=[10, 20], intensity=[1, math.nan])),
            "intensity.1: Input should be a finite number",
        ),
        (
            "Embed",
            pb.EmbedRequest(pattern=pb.XrdPattern(two_theta=[-math.inf, 20], intensity=[1, 2])),
            "two_theta.0: Input should be a finite number",
        ),
        (
            "Search",
            pb.SearchRequest(material_id="cod:1", filters=pb.Filters(max_sites=4_000_000_000)),
            "max_sites: Input should be less than or equal to 2147483647",
        ),
    ]
    for method, request, message in cases:
        with pytest.raises(MatconceptError) as info:
            client._call(method, request)
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT, (method, info.value.message)
        assert message in info.value.message, info.value.message
    assert client.stats().count == N_STORED


# -- the OpenAPI document ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def openapi(url) -> dict:
    return requests.get(f"{url}/openapi.json").json()


def _resolve(doc: dict, schema: dict) -> dict:
    ref = schema.get("$ref")
    return doc["components"]["schemas"][ref.rsplit("/", 1)[1]] if ref else schema


def test_openapi_declares_bodies_errors_and_the_key(openapi, url):
    """Every POST and body-taking DELETE declares its JSON body (with examples), and its multipart form where it
    reads a file; every error answer is ErrorBody; FastAPI's 422 (never sent: a bad request is a 400) is gone."""
    paths = openapi["paths"]
    with_forms = {("/v1/search", "post"), ("/v1/embed", "post"), ("/v1/materials", "post"), ("/v1/map/place", "post")}
    with_bodies = with_forms | {("/v1/materials", "delete"), ("/v1/map/layout", "post")}
    for path, ops in paths.items():
        for method, op in ops.items():
            responses, body = op["responses"], op.get("requestBody")
            assert "422" not in responses, (path, method)
            for status, answer in responses.items():
                if status != "200":
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (path, method, status)
            if method == "get":
                assert body is None, path
                continue
            assert {"400", "401", "503"} <= set(responses), (path, method)
            if method == "delete" and body is None:  # DELETE /v1/materials/{id}: the id is the path
                assert [p["name"] for p in op["parameters"] if p["in"] == "path"] == ["material_id"], path
                continue
            assert body is not None and "413" in responses, (path, method)
            content = body["content"]
            assert _resolve(openapi, content["application/json"]["schema"])["type"] == "object"
            assert content["application/json"]["examples"], (path, method)
            if "multipart/form-data" in content:
                form = _resolve(openapi, content["multipart/form-data"]["schema"])
                file = form["properties"]["file"]
                assert (file["type"], file["format"]) == ("string", "binary")
                assert "file" in form["required"]
            assert ((path, method) in with_forms) <= ("multipart/form-data" in content), (path, method)
    declared = {(p, m) for p, ops in paths.items() for m, op in ops.items() if op.get("requestBody")}
    assert with_bodies <= declared
    assert openapi["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert paths["/v1/materials"]["post"]["security"] == [{"bearer": []}]
    assert {} in paths["/v1/search"]["post"]["security"]  # reads are open on this service
    text = json.dumps(openapi)
    for name in {ref.rsplit("/", 1)[1] for ref in _refs(openapi)}:
        assert name in openapi["components"]["schemas"], name
    assert "HTTPValidationError" not in text
    vector = _resolve(openapi, {"$ref": "#/components/schemas/SearchQuery"})["properties"]["vector"]
    assert vector["anyOf"][0]["items"]["maximum"] == 1e6
    docs = requests.get(f"{url}/docs")
    assert docs.status_code == 200 and "/openapi.json" in docs.text


def _refs(node) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_openapi_examples_work_when_sent(openapi, url, client, stored, layout):
    """Each JSON example of each route, sent as /docs' "Try it out" sends it (with the key), answers 200;
    the upsert example stores the material the id examples name, and the delete example removes it."""
    from matconcept.service.app.openapi import EXAMPLE_ID

    ops = {op["operationId"]: (path, method, op) for path, m in openapi["paths"].items() for method, op in m.items()}
    first, last = ["upsert", "search", "embed", "map_place", "map_layout"], ["delete_materials"]
    others = sorted(k for k, (_, _, op) in ops.items() if "requestBody" in op and k not in first + last)
    order = first + others + last
    sent = 0
    for operation_id in order:
        path, method, op = ops[operation_id]
        for name, example in op["requestBody"]["content"]["application/json"]["examples"].items():
            r = requests.request(method, f"{url}{path}", json=example["value"], headers=_headers("right"))
            assert r.status_code == 200, (operation_id, name, r.text)
            sent += 1
            if operation_id == "upsert":
                assert requests.get(f"{url}/v1/materials/{EXAMPLE_ID}").json()["payload"]["formula"] == "NaCl"
            if operation_id == "search" and name == "material_id":
                assert r.json()["hits"][0]["material_id"] == EXAMPLE_ID
            deadline = time.time() + 120  # one layout job at a time: let each finish
            while requests.get(f"{url}/v1/map").json()["job"]["state"] == "running" and time.time() < deadline:
                time.sleep(0.5)
    assert sent >= 9
    path_example = ops["get_material"][2]["parameters"][0]["examples"]["stored"]["value"]
    assert path_example == EXAMPLE_ID
    assert _error(requests.get(f"{url}/v1/materials/{EXAMPLE_ID}"), 404)  # the delete example removed it
    assert client.stats().count == N_STORED


# -- a client generated from the schema --------------------------------------------------------------
def test_generated_client_calls_search_embed_upsert_get_and_delete(url, tmp_path, stored, cifs, client):
    """openapi-python-client builds a client from the live /openapi.json; it uses both body kinds."""
    config = tmp_path / "config.yaml"
    config.write_text("package_name_override: mc_generated_client\npost_hooks: []\n")
    subprocess.run(
        [
            *(sys.executable, "-m", "openapi_python_client", "generate", "--url", f"{url}/openapi.json"),
            *("--config", str(config), "--meta", "none", "--output-path", str(tmp_path / "mc_generated_client")),
        ],
        check=True,
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
    )
    # openapi-python-client issue 1451 (open): an endpoint with a JSON and a multipart body annotates
    # ``body`` with ``| Unset`` but does not import ``Unset``; import it where it is used.
    for module in (tmp_path / "mc_generated_client" / "api").rglob("*.py"):
        text = module.read_text()
        if "| Unset" in text and "import Response, UNSET\n" in text:
            module.write_text(text.replace("import Response, UNSET\n", "import Response, UNSET, Unset\n"))
    sys.path.insert(0, str(tmp_path))
    try:
        gen = importlib.import_module("mc_generated_client")
        api = importlib.import_module("mc_generated_client.api.default")
        models = importlib.import_module("mc_generated_client.models")
        types = importlib.import_module("mc_generated_client.types")
        for name in ("search", "embed", "upsert", "get_material", "delete_material"):
            importlib.import_module(f"mc_generated_client.api.default.{name}")
        mc = gen.AuthenticatedClient(base_url=url, token=API_KEY, raise_on_unexpected_status=True, timeout=60)
        material_id, path = next(iter(stored.items()))

        found = api.search.sync(
            client=mc, body=models.SearchQuery(structure=models.StructureIn(content=path.read_text(), name=path.name))
        )
        assert isinstance(found, models.SearchResult), found
        assert found.hits[0].material_id == material_id and found.hits[0].distance < 1e-3
        by_form = api.search.sync(
            client=mc,
            body=models.SearchForm(
                file=types.File(payload=io.BytesIO(path.read_bytes()), file_name=path.name),
                top_k=2,
                using=models.SearchFormUsing.XRD,
            ),
        )
        assert by_form.using == "xrd" and by_form.hits[0].material_id == material_id and len(by_form.hits) == 2

        vectors = api.embed.sync(
            client=mc,
            body=models.EmbedForm(file=types.File(payload=io.BytesIO(path.read_bytes()), file_name=path.name)),
        )
        assert isinstance(vectors, models.EmbedResult) and len(vectors.crystal) == DIM

        new = cifs[N_STORED + 4]
        form = models.UpsertForm(
            file=types.File(payload=io.BytesIO(new.read_bytes()), file_name=new.name),
            source_id="generated",
            tags=models.UpsertFormTags.from_dict({"by": "client"}),  # an object part (sent as JSON), per the schema
        )
        result = api.upsert.sync(client=mc, body=form)
        assert isinstance(result, models.UpsertResult), result
        assert result.stored == 1 and result.results[0].material_id == "user:generated"
        record = api.get_material.sync("user:generated", client=mc)
        assert isinstance(record, models.MaterialRecord) and record.payload.tags.to_dict()["by"] == "client"
        assert client.search(structure=new, top_k=1).hits[0].material_id == "user:generated"

        deleted = api.delete_material.sync("user:generated", client=mc)
        assert isinstance(deleted, models.DeleteResult) and deleted.deleted == 1
        missing = api.get_material.sync("user:generated", client=mc)
        assert isinstance(missing, models.ErrorBody) and missing.error.code == models.ErrorCode.NOT_FOUND
        anonymous = gen.Client(base_url=url)
        refused = api.upsert.sync_detailed(client=anonymous, body=form)
        assert refused.status_code == 401 and refused.parsed.error.code == models.ErrorCode.UNAUTHENTICATED
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.startswith("mc_generated_client")]:
            del sys.modules[name]
        client.delete(["user:generated"])
    assert client.stats().count == N_STORED


# -- search by notion: the structure type beside the concept (issue 13) ----------------------------
WURTZITES = {"ZnO": ("Zn", "O", 3.25, 5.21, 0.382), "GaN": ("Ga", "N", 3.19, 5.19, 0.377)}
WURTZITES |= {"AlN": ("Al", "N", 3.11, 4.98, 0.382), "CdS": ("Cd", "S", 4.14, 6.72, 0.377)}
WURTZITES |= {"BeO": ("Be", "O", 2.70, 4.38, 0.378)}
OTHERS = {
    "ZnS-zb": ("F-43m", 5.41, ["Zn", "S"], [[0, 0, 0], [0.25, 0.25, 0.25]]),  # zinc blende: wurtzite's cousin
    "GaAs-zb": ("F-43m", 5.65, ["Ga", "As"], [[0, 0, 0], [0.25, 0.25, 0.25]]),
    "MgO-rs": ("Fm-3m", 4.21, ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
}


KINDS = ("json", "multipart")


def test_search_by_notion_structure_finds_the_other_wurtzites_first(url, client, stored, tmp_path):
    """A stored wurtzite searched with ``using: structure`` over HTTP (JSON and multipart) and gRPC finds the
    other wurtzites of different chemistry before anything else (zinc blendes, rock salt, the COD CIFs);
    ``crystal`` and ``hybrid`` still answer, every hit naming its notion (and fusion)."""
    from pymatgen.core import Lattice, Structure

    paths = []
    for name, (a_site, b_site, a, c, u) in WURTZITES.items():
        s = Structure.from_spacegroup(
            "P6_3mc", Lattice.hexagonal(a, c), [a_site, b_site], [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, u]]
        )
        paths.append(tmp_path / f"{name}.cif")
        s.to(filename=str(paths[-1]))
    for name, (group, a, species, coords) in OTHERS.items():
        paths.append(tmp_path / f"{name}.cif")
        Structure.from_spacegroup(group, Lattice.cubic(a), species, coords).to(filename=str(paths[-1]))
    result = client.upsert(paths, source="wz")
    assert result.failed == 0, result
    wurtzites = {f"wz:{name}" for name in WURTZITES}
    try:
        query, others = tmp_path / "ZnO.cif", wurtzites - {"wz:ZnO"}
        for kind in ("json", "multipart"):
            r = requests.post(f"{url}/v1/search", **_structure_body(kind, query, using="structure", top_k=8))
            assert r.status_code == 200, r.text
            hits = r.json()["hits"]
            assert hits[0]["material_id"] == "wz:ZnO" and {h["notion"] for h in hits} == {"structure"}, hits
            assert {h["material_id"] for h in hits[1:5]} == others, [h["material_id"] for h in hits]
        by_id = client.search(material_id="wz:ZnO", using="structure", top_k=5)
        assert by_id.using == "structure" and {h.material_id for h in by_id.hits} == wurtzites
        assert all(h.notion == "structure" for h in by_id.hits)
        concept = client.search(structure=query, using="crystal", top_k=3)
        assert concept.hits[0].material_id == "wz:ZnO" and concept.hits[0].notion == "crystal"
        # No using (absent, null, gRPC VECTOR_SPACE_UNSPECIFIED): the measured best for a structure or a stored
        # id, hybrid with the default zscore fusion, named in the answer and on every hit.
        defaults = [requests.post(f"{url}/v1/search", **_structure_body(kind, query, top_k=5)).json() for kind in KINDS]
        defaults.append(requests.post(f"{url}/v1/search", json={"material_id": "wz:ZnO", "using": None}).json())
        defaults += [client.search(structure=query, top_k=5), client.search(material_id="wz:ZnO", top_k=5)]
        for default in [d if isinstance(d, dict) else d.model_dump() for d in defaults]:
            assert default["using"] == "hybrid" and default["hits"][0]["material_id"] == "wz:ZnO", default
            assert {h["fusion"] for h in default["hits"]} == {"zscore"}
            assert {h["notion"] for h in default["hits"]} <= {"crystal", "structure"}
        for fusion in ("rrf", "zscore"):
            fused = client.search(material_id="wz:ZnO", using="hybrid", hybrid={"fusion": fusion}, top_k=5)
            assert fused.hits[0].material_id == "wz:ZnO", fusion
            assert {h.fusion for h in fused.hits} == {fusion} and {h.notion for h in fused.hits} <= {
                "crystal",
                "structure",
            }
            assert all(a.score >= b.score for a, b in zip(fused.hits, fused.hits[1:], strict=False))
        r = requests.post(
            f"{url}/v1/search", json={"material_id": "wz:ZnO", "using": "hybrid", "hybrid": {"fusion": "zscore"}}
        )
        assert r.status_code == 200 and r.json()["hits"][0]["fusion"] == "zscore", r.text
        record = client.get_one("wz:ZnO", with_vectors=True)
        assert len(record.vectors["structure"]) == len(client.embed(query).structure_vector) == 128
    finally:
        client.delete([f"wz:{p.stem}" for p in paths])
