"""Service pieces that need no Ray: access rules, settings, and protobuf ↔ pydantic round trips."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from matconcept.service.app import convert
from matconcept.service.app.schemas import PatternIn, SearchQuery, StructureIn, UpsertItem, UpsertQuery
from matconcept.service.app.settings import AccessSettings, ServiceSettings
from matconcept.service.store.records import Hit, MaterialPayload, SearchFilters


@pytest.mark.parametrize(
    ("key", "header", "write", "allowed", "why"),
    [
        (None, "Bearer anything", True, False, "no API key configured"),
        ("k1", None, True, False, "need an API key"),
        ("k1", "Bearer k2", True, False, "wrong API key"),
        ("k1", "Basic k1", True, False, "must be 'Bearer <key>'"),
        ("k1", "Bearer k1", True, True, ""),
        ("k1", None, False, True, ""),
        (None, None, False, True, ""),
    ],
)
def test_access_rules(key, header, write, allowed, why):
    access = AccessSettings(api_key=SecretStr(key) if key else None)
    problem = access.check(header, write=write, reads_keyed=False)
    assert (problem is None) == allowed
    assert why in (problem or "")


def test_keyed_reads():
    access = AccessSettings(api_key=SecretStr("k1"))
    assert "need an API key" in access.check(None, write=False, reads_keyed=True)
    assert access.check("Bearer k1", write=False, reads_keyed=True) is None


def test_settings_are_strict_and_read_the_environment(monkeypatch):
    monkeypatch.setenv("MATCONCEPT_GRPC_PORT", "9100")
    settings = ServiceSettings()
    assert settings.grpc_port == 9100 and settings.parse_limits().max_sites == settings.max_sites
    with pytest.raises(ValidationError, match="grpc_prot"):
        ServiceSettings(grpc_prot=1)


def test_settings_leave_the_datasets_folder_variable_to_the_datasets(monkeypatch, tmp_path):
    """MATCONCEPT_DATASETS names the fetched-datasets folder (encoders.datasets); no setting may claim it
    (a `datasets` field did, and `matconcept serve` refused to start with the folder set)."""
    monkeypatch.setenv("MATCONCEPT_DATASETS", str(tmp_path))
    settings = ServiceSettings()
    assert settings.ingest_datasets and settings.dataset_names is None and settings.datasets_dir is None


def test_search_query_needs_exactly_one_query():
    with pytest.raises(ValidationError, match="exactly one of"):
        SearchQuery()
    with pytest.raises(ValidationError, match="exactly one of"):
        SearchQuery(material_id="cod:1", vector=[0.0])


def _payload() -> MaterialPayload:
    return MaterialPayload(
        material_id="cod:1000000",
        source="cod",
        source_id="1000000",
        formula="BaTiO3",
        elements=["Ba", "O", "Ti"],
        n_elements=3,
        n_sites=5,
        spacegroup_number=221,
        spacegroup_symbol="Pm-3m",
        density=6.02,
        volume=64.3,
        year=1999,
        tags={"mineral": "x"},
        content_hash="ab",
        ingested_at="2026-01-01T00:00:00+00:00",
    )


@pytest.mark.parametrize(
    "query",
    [
        SearchQuery(structure=StructureIn(content="data_x", name="x.cif"), top_k=7, using="xrd", exact=True),
        SearchQuery(structure=StructureIn(content=b"\x00data", name="y.cif", format="cif")),
        SearchQuery(pattern=PatternIn(two_theta=[10.0, 20.0], intensity=[1.0, 2.0])),
        SearchQuery(
            material_id="cod:1",
            filters=SearchFilters(elements_all=["Li"], chemical_system="O-Li", spacegroup_number=12, min_sites=1),
        ),
        SearchQuery(vector=[0.5, -1.0], filters=SearchFilters(max_sites=20, sources=["cod"], elements_none=["Pb"])),
        SearchQuery(material_id="cod:1", using="structure"),
        SearchQuery(material_id="cod:1", using="hybrid"),
        SearchQuery(material_id="cod:1", using="hybrid", hybrid={"fusion": "zscore", "structure_weight": 0.7}),
    ],
)
def test_search_query_round_trips_through_protobuf(query):
    assert convert.search_query_from_pb(convert.search_query_to_pb(query)) == query


def test_structure_notion_on_a_model_without_a_structure_encoder_is_a_clear_400():
    """``using: structure`` / ``hybrid`` where the model has no structure-type encoder: INVALID_ARGUMENT
    (HTTP 400) naming the model, before any embedder or store is asked."""
    import asyncio

    from matconcept.service.app.core import ServiceAPI
    from matconcept.service.app.schemas import ErrorCode, ServiceError

    service = ServiceAPI(None, None, ServiceSettings(), AccessSettings(), "mc-old", 8)
    for using in ("structure", "hybrid"):
        with pytest.raises(ServiceError) as info:
            asyncio.run(service.search(SearchQuery(material_id="cod:1", using=using)))
        assert (
            info.value.code == ErrorCode.INVALID_ARGUMENT
            and "mc-old has no structure-type encoder" in info.value.message
        )
    with pytest.raises(ValidationError, match="only with using hybrid"):
        SearchQuery(material_id="cod:1", hybrid={"fusion": "rrf"})


@pytest.mark.parametrize(
    ("kind", "has_structure_type", "expected"),
    [
        ("structure", True, "hybrid"),
        ("material_id", True, "hybrid"),
        ("pattern", True, "crystal"),
        ("vector", True, "crystal"),
        ("structure", False, "crystal"),
        ("material_id", False, "crystal"),
        ("pattern", False, "crystal"),
    ],
)
def test_the_default_notion_is_the_measured_best_where_it_applies(kind, has_structure_type, expected):
    """issue 13: no ``using`` means hybrid (the best on held-out real families) for a structure or a stored id
    where the model has the structure-type encoder, else crystal; a given ``using`` is kept."""
    from matconcept.service.app.notions import default_notion, resolve_using

    assert default_notion(kind, has_structure_type=has_structure_type) == expected
    assert resolve_using(None, kind, has_structure_type=has_structure_type) == expected
    assert resolve_using("xrd", kind, has_structure_type=has_structure_type) == "xrd"


class _Remote:
    """A Serve handle's method (``handle.name.remote(...)``) answered by a local coroutine."""

    def __init__(self, fn) -> None:
        self.remote = fn


def test_a_search_without_using_resolves_it_and_says_so():
    """The service's search (no Ray): a structure or a stored id without ``using`` goes to the hybrid search
    where the model has structure types, to the crystal search where it has not; the result and each hit
    name the notion searched. The default travels over gRPC as VECTOR_SPACE_UNSPECIFIED."""
    import asyncio
    from types import SimpleNamespace

    from matconcept.service.app.core import ServiceAPI
    from matconcept.service.app.rpc import matconcept_pb2 as pb
    from matconcept.service.app.schemas import EmbeddedStructure

    hit = Hit(material_id="cod:1000000", distance=0.0, payload=_payload())
    calls: list[str] = []

    asked: list[tuple[str, ...] | None] = []

    async def embed_structure(s, field, names=None):
        asked.append(names)
        return EmbeddedStructure(crystal=[0.0] * 8, xrd=[0.0] * 8, structure_type=[0.0] * 4)

    async def get(ids, with_vectors):
        return [SimpleNamespace(vectors={"crystal": [0.0] * 8, "structure": [0.0] * 4})]

    async def search(vector, *, using, **kw):
        calls.append(using)
        return [hit]

    async def hybrid_search(vectors, **kw):
        calls.append("hybrid")
        return [hit.model_copy(update={"notion": "structure", "fusion": "zscore", "score": 1.0})]

    embedder = SimpleNamespace(embed_structure=_Remote(embed_structure))
    store = SimpleNamespace(get=_Remote(get), search=_Remote(search), hybrid_search=_Remote(hybrid_search))
    structure = StructureIn(content="data_x", name="x.cif")
    queries = [SearchQuery(structure=structure), SearchQuery(material_id="cod:1000000")]
    for structure_dim, notion in ((4, "hybrid"), (None, "crystal")):
        service = ServiceAPI(embedder, store, ServiceSettings(), AccessSettings(), "mc-x", 8, structure_dim)
        for query in queries:
            calls.clear()
            result = asyncio.run(service.search(query))
            assert calls == [notion] and result.using == notion and result.hits[0].notion in ("crystal", "structure")
            assert (result.hits[0].fusion == "zscore") == (notion == "hybrid")
        # a structure query asks the embedder for the vectors it compares only (no XRD vector)
        assert asked[-1] == (("crystal", "structure") if notion == "hybrid" else ("crystal",))
        vector = asyncio.run(service.search(SearchQuery(vector=[0.0] * 8)))
        assert vector.using == "crystal" and vector.hits[0].notion == "crystal"
    assert convert.search_query_to_pb(queries[1]).using == pb.VECTOR_SPACE_UNSPECIFIED
    assert convert.search_query_from_pb(pb.SearchRequest(material_id="cod:1")).using is None


def test_payload_hit_and_upsert_round_trip():
    hit = Hit(material_id="cod:1000000", distance=0.25, payload=_payload())
    assert convert.hit_from_pb(convert.hit_to_pb(hit)) == hit
    fused = hit.model_copy(update={"notion": "structure", "fusion": "zscore", "score": 1.5})
    assert convert.hit_from_pb(convert.hit_to_pb(fused)) == fused
    assert hit.payload.crystal_system == convert.hit_to_pb(hit).payload.crystal_system == "cubic"  # Pm-3m (221)
    sparse = _payload().model_copy(update={"spacegroup_number": None, "spacegroup_symbol": None, "year": None})
    assert convert.payload_from_pb(convert.payload_to_pb(sparse)) == sparse
    upsert = UpsertQuery(
        items=[UpsertItem(structure=StructureIn(content="c", name="a.cif"), source="cod", tags={"k": "v"})]
    )
    assert convert.upsert_query_from_pb(convert.upsert_query_to_pb(upsert)) == upsert


def _serve_configs() -> dict[str, dict]:
    from pathlib import Path

    import yaml

    deploy = Path(__file__).resolve().parents[1] / "deploy"
    rayservice = yaml.safe_load((deploy / "kuberay-rayservice.yaml").read_text())
    return {
        "serve_config.yaml": yaml.safe_load((deploy / "serve_config.yaml").read_text()),
        "kuberay-rayservice.yaml": yaml.safe_load(rayservice["spec"]["serveConfigV2"]),
    }


@pytest.mark.parametrize("name", ["serve_config.yaml", "kuberay-rayservice.yaml"])
def test_deploy_configs_are_valid_serve_configs(name):
    import importlib

    from ray.serve.schema import ServeDeploySchema

    config = ServeDeploySchema.model_validate(_serve_configs()[name])
    (app,) = config.applications
    module, _, attr = app.import_path.partition(":")
    assert callable(getattr(importlib.import_module(module), attr))
    settings = ServiceSettings.model_validate(app.args)  # a misspelt arg fails here
    assert settings.max_request_bytes == 16 * 1024 * 1024
    for path in config.grpc_options.grpc_servicer_functions:
        module, _, attr = path.rpartition(".")
        assert callable(getattr(importlib.import_module(module), attr))
    store = next(d for d in app.deployments if d.name == "StoreDeployment")
    assert store.num_replicas == 1  # the embedded store has one owner process
    assert {d.name for d in app.deployments} == {"EmbedderDeployment", "StoreDeployment", "Gateway"}


def test_builder_makes_the_three_deployments(tmp_path):
    from ray.serve import Application

    from matconcept.service.app.deployments import build
    from matconcept.service.store import StoreSettings

    app = build({"store": StoreSettings(db=tmp_path), "max_batch_size": 8})
    assert isinstance(app, Application)
    with pytest.raises(ValidationError, match="max_batch_sise"):
        build({"max_batch_sise": 8})


def test_map_page_modules_and_meta_are_served_without_a_store():
    """The page's ES modules come from sub-folders as JavaScript; its configuration names real routes."""
    import asyncio
    import re

    import httpx

    from matconcept.encoders.symmetry import CRYSTAL_SYSTEMS
    from matconcept.service.app.core import ServiceAPI
    from matconcept.service.app.http_routes import make_http_app
    from matconcept.service.web import WEB_DIR

    service = ServiceAPI(None, None, ServiceSettings(), AccessSettings(), "mc-test", 8)
    app = make_http_app(service)

    class _Client:  # the ASGI app in-process, without a server (no store is needed for these routes)
        def get(self, path: str) -> httpx.Response:
            async def fetch() -> httpx.Response:
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
                    return await c.get(path)

            return asyncio.run(fetch())

    client = _Client()
    page = client.get("/map").text
    entry = re.search(r'<script type="module" src="/map/static/([^"]+)"', page).group(1)
    modules = sorted(p.relative_to(WEB_DIR).as_posix() for p in (WEB_DIR / "js").glob("*.js"))
    assert entry in modules
    for name in modules:
        r = client.get(f"/map/static/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript"), name
        for imported in re.findall(r'from "\./([\w.]+)"', r.text):
            assert f"js/{imported}" in modules, (name, imported)
    for bad in ("js/../__init__.py", "js/.hidden.js", "..%2F__init__.py", "js//main.js", "js%5Cmain.js", "nope.js"):
        assert client.get(f"/map/static/{bad}").status_code == 404, bad

    meta = client.get("/v1/map/meta").json()
    assert re.search(r'<meta name="matconcept-meta" content="/v1/map/meta">', page)
    routes = {(route.path, method) for route in app.routes for method in getattr(route, "methods", ())}
    api = meta["api"]
    for name, method in (("map", "GET"), ("points", "GET"), ("place", "POST"), ("search", "POST"), ("layout", "POST")):
        assert (api[name], method) in routes, name
    assert (api["material"] + "{material_id}", "GET") in routes
    fields = {f["key"]: f for f in meta["fields"]}
    assert meta["default_field"] == "source" and {"element", "spacegroup", "source", "n_elements"} <= set(fields)
    assert fields["crystal_system"]["order"] == meta["crystal_systems"] == list(CRYSTAL_SYSTEMS)
    spacegroup = fields["spacegroup"]
    assert spacegroup["column"] == "spacegroup_number" and spacegroup["range"] == [1, 230]
    assert [(t["value"], t["label"]) for t in spacegroup["ticks"]] == [
        (1, "1 tricl./mono."), (16, "16 orth."), (75, "75 tetr."), (143, "143 trig."), (168, "168 hex."),
        (195, "195 cubic"), (230, "230"),
    ]  # fmt: skip


def test_cluster_nodes_get_the_serve_fast_path_a_local_start_sets():
    """The KubeRay nodes' environment carries every Serve request-path setting ``launch`` sets for a local Ray,
    so a cluster runs the same request path the benchmarks measure."""
    from pathlib import Path

    import yaml

    from matconcept.service.app.launch import INTERNAL_MESSAGE_FACTOR, RAY_ENV, SERVE_FAST_PATH

    rayservice = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / "deploy" / "kuberay-rayservice.yaml").read_text()
    )
    specs = [rayservice["spec"]["rayClusterConfig"]["headGroupSpec"]] + rayservice["spec"]["rayClusterConfig"][
        "workerGroupSpecs"
    ]
    for spec in specs:
        env = {e["name"]: e.get("value") for e in spec["template"]["spec"]["containers"][0]["env"]}
        assert {k: env.get(k) for k in SERVE_FAST_PATH} == SERVE_FAST_PATH
        internal = int(env["RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH"])
        assert internal == INTERNAL_MESSAGE_FACTOR * ServiceSettings().max_request_bytes
    assert set(SERVE_FAST_PATH) <= set(RAY_ENV)  # a local stop restores them
