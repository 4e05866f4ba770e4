"""The HTTP API (FastAPI), served by Ray Serve's HTTP proxy through the gateway deployment.

Routes (OpenAPI page at ``/docs``, schema at ``/openapi.json``)::

    POST   /v1/search               JSON SearchQuery, or multipart: file=<CIF> [top_k, using, exact, filters=<JSON>]
    POST   /v1/embed                JSON EmbedQuery, or multipart: file=<CIF>
    GET    /v1/materials/{id}       one stored material (?vectors=true for its vectors); 404 when unknown
    POST   /v1/materials            JSON UpsertQuery (needs the API key)
    DELETE /v1/materials/{id}       (needs the API key)
    GET    /v1/stats
    GET    /healthz

    GET    /map                     the materials map (web page; assets under /map/static/)
    GET    /v1/map                  the current layout and the layout job's progress
    GET    /v1/map/meta             what the page needs: these paths, the colour fields and their ticks
    GET    /v1/map/points           every stored material with its map position (columns)
    POST   /v1/map/place            multipart file=<CIF or XRD pattern> [top_k, kind], or JSON MapQuery
    POST   /v1/map/layout           JSON LayoutParams (optional): recompute the layout (needs the API key)

Errors are ``{"error": {"code", "reason", "message"}}`` with 400 (bad input), 401 (key), 404
(unknown id), 413 (over a cap) or 503; never a traceback. The API key travels in the same header
as over gRPC: ``Authorization: Bearer <key>``.
"""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import FileResponse, JSONResponse
from pydantic import ValidationError

from matconcept.service.app.core import ServiceAPI, input_error
from matconcept.service.app.schemas import (
    HTTP_STATUS,
    DeleteQuery,
    DeleteResult,
    EmbedQuery,
    EmbedResult,
    ErrorCode,
    GetQuery,
    MapPlaceResult,
    MapQuery,
    PatternIn,
    SearchQuery,
    SearchResult,
    ServiceError,
    StatsResult,
    StructureIn,
    UpsertQuery,
    UpsertResult,
)
from matconcept.service.map.keeper import MapPoints, MapStatus
from matconcept.service.map.layout import LayoutParams
from matconcept.service.map.meta import MapApi, MapMeta, map_meta
from matconcept.service.store.records import MaterialRecord, SearchFilters
from matconcept.service.web import asset_media_type, asset_path

logger = logging.getLogger(__name__)

MULTIPART = "multipart/form-data"
PATTERN_SUFFIXES = (".xy", ".xye", ".csv", ".txt", ".dat")
"""Upload names read as a measured powder pattern (two columns: 2θ, intensity) unless ``kind`` says otherwise."""
TOO_LARGE = "too_large"
MAP_API = MapApi(
    map="/v1/map",
    points="/v1/map/points",
    place="/v1/map/place",
    search="/v1/search",
    material="/v1/materials/",
    layout="/v1/map/layout",
)
"""The routes the map page calls, served to it by ``GET /v1/map/meta`` (the routes below use them)."""


def validation_message(exc: ValidationError | RequestValidationError) -> str:
    """One line naming each bad field: ``top_k: Input should be greater than or equal to 1``."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",)) or "request"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def _error(exc: ServiceError) -> JSONResponse:
    return JSONResponse(status_code=HTTP_STATUS[exc.code], content={"error": exc.to_dict()})


class BodyLimit:
    """ASGI middleware refusing bodies over ``limit`` bytes (413) before the route reads them."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        too_large = ServiceError(
            ErrorCode.RESOURCE_EXHAUSTED,
            f"request body: over {limit} bytes (MATCONCEPT_MAX_REQUEST_BYTES)",
            TOO_LARGE,
        )
        if declared is not None and declared.isdigit() and int(declared) > limit:
            too_large.message = f"request body: {int(declared)} bytes, limit is {limit} (MATCONCEPT_MAX_REQUEST_BYTES)"
            return await _error(too_large)(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise too_large
            return message

        return await self.app(scope, counted, send)


def make_http_app(service: ServiceAPI) -> FastAPI:
    """The FastAPI app over ``service`` (built in the gateway replica, after its constructor)."""
    app = FastAPI(
        title="matconcept",
        version="1",
        description="Embedding database for crystal structures: upload a CIF, get similar materials.",
    )

    def api() -> ServiceAPI:
        return service

    app.add_middleware(BodyLimit, limit=service.settings.max_request_bytes)
    app.add_middleware(GZipMiddleware, minimum_size=4096)  # map points: ~10 MB of JSON at 100k, ~2 MB gzipped

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return _error(exc)

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(ServiceError(ErrorCode.INVALID_ARGUMENT, validation_message(exc), "invalid_request"))

    @app.exception_handler(ValidationError)
    async def _model_invalid(request: Request, exc: ValidationError) -> JSONResponse:
        return _error(ServiceError(ErrorCode.INVALID_ARGUMENT, validation_message(exc), "invalid_request"))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("%s %s failed", request.method, request.url.path)
        return _error(ServiceError(ErrorCode.INTERNAL, "internal error; the service log has the details"))

    async def _read(request: Request, model: type, *, write: bool = False):
        """The query of a JSON body, or of a multipart form with a ``file`` (structure) field."""
        service = api()
        service.authorize(request.headers.get("authorization"), write=write)
        if request.headers.get("content-type", "").startswith(MULTIPART):
            return await _from_form(request, model)
        body = await request.body()
        if not body.strip():
            raise ServiceError(ErrorCode.INVALID_ARGUMENT, "request: empty body (send JSON or a multipart file)")
        try:
            return model.model_validate_json(body)
        except ValidationError as exc:
            raise ServiceError(ErrorCode.INVALID_ARGUMENT, validation_message(exc), "invalid_request") from exc

    async def _from_form(request: Request, model: type):
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ServiceError(ErrorCode.INVALID_ARGUMENT, "file: a multipart upload needs a 'file' field")
        structure = StructureIn(content=await upload.read(), name=upload.filename or "upload")
        if model is EmbedQuery:
            return EmbedQuery(structure=structure)
        fields: dict = {"structure": structure}
        for name in ("top_k", "using", "exact"):
            if form.get(name) not in (None, ""):
                fields[name] = form.get(name)
        if form.get("filters"):
            try:
                fields["filters"] = SearchFilters.model_validate(json.loads(str(form.get("filters"))))
            except (ValueError, ValidationError) as exc:
                raise ServiceError(ErrorCode.INVALID_ARGUMENT, f"filters: {exc}", "invalid_request") from exc
        return SearchQuery.model_validate(fields)

    @app.post(MAP_API.search, response_model=SearchResult, summary="Nearest stored materials to a query")
    async def search(request: Request) -> SearchResult:
        return await api().search(await _read(request, SearchQuery))

    @app.post("/v1/embed", response_model=EmbedResult, summary="Vectors of a structure or a pattern")
    async def embed(request: Request) -> EmbedResult:
        return await api().embed(await _read(request, EmbedQuery))

    @app.get(MAP_API.material + "{material_id}", response_model=MaterialRecord, summary="A stored material")
    async def get_material(material_id: str, request: Request, vectors: bool = False) -> MaterialRecord:
        api().authorize(request.headers.get("authorization"), write=False)
        result = await api().get(GetQuery(material_ids=[material_id], with_vectors=vectors))
        return result.materials[0]

    @app.post("/v1/materials", response_model=UpsertResult, summary="Store structures (API key)")
    async def upsert(request: Request) -> UpsertResult:
        return await api().upsert(await _read(request, UpsertQuery, write=True))

    @app.delete("/v1/materials/{material_id}", response_model=DeleteResult, summary="Delete a material (API key)")
    async def delete(material_id: str, request: Request) -> DeleteResult:
        api().authorize(request.headers.get("authorization"), write=True)
        result = await api().delete(DeleteQuery(material_ids=[material_id]))
        if not result.deleted:
            raise ServiceError(ErrorCode.NOT_FOUND, f"material_id: no stored material {material_id!r}")
        return result

    @app.get("/v1/stats", response_model=StatsResult, summary="Collection size, model and engine")
    async def stats(request: Request) -> StatsResult:
        api().authorize(request.headers.get("authorization"), write=False)
        return await api().stats()

    # -- the materials map ------------------------------------------------------------------------
    @app.get("/map", include_in_schema=False)
    async def map_page() -> FileResponse:
        return FileResponse(asset_path("map.html"), media_type="text/html")

    @app.get("/map/static/{name:path}", include_in_schema=False)
    async def map_asset(name: str) -> FileResponse:
        path = asset_path(name)
        if path is None:
            raise ServiceError(ErrorCode.NOT_FOUND, f"no asset {name!r}")
        # Explicit types: browsers run <script type="module"> only when served as JavaScript.
        return FileResponse(path, media_type=asset_media_type(path), headers={"cache-control": "public, max-age=3600"})

    @app.get("/v1/map/meta", response_model=MapMeta, summary="The map page's API paths and colour fields")
    async def map_meta_route(request: Request) -> MapMeta:
        api().authorize(request.headers.get("authorization"), write=False)
        return map_meta(MAP_API)

    @app.get(MAP_API.map, response_model=MapStatus, summary="The current map layout and the layout job")
    async def map_status(request: Request) -> MapStatus:
        api().authorize(request.headers.get("authorization"), write=False)
        return await api().map_status()

    @app.get(MAP_API.points, response_model=MapPoints, summary="Every stored material's map position")
    async def map_points(request: Request) -> MapPoints:
        api().authorize(request.headers.get("authorization"), write=False)
        return await api().map_points()

    @app.post(MAP_API.place, response_model=MapPlaceResult, summary="Place a CIF or XRD pattern on the map")
    async def map_place(request: Request) -> MapPlaceResult:
        service = api()
        service.authorize(request.headers.get("authorization"), write=False)
        if request.headers.get("content-type", "").startswith(MULTIPART):
            query, label = await _map_query_from_form(request)
        else:
            query = await _read(request, MapQuery)
            label = query.structure.name if query.structure is not None else "pattern"
        return await service.map_place(query, label)

    @app.post(MAP_API.layout, response_model=MapStatus, summary="Recompute the map layout (API key)")
    async def map_layout(request: Request) -> MapStatus:
        service = api()
        service.authorize(request.headers.get("authorization"), write=True)
        body = await request.body()
        try:
            params = LayoutParams.model_validate_json(body) if body.strip() else LayoutParams()
        except ValidationError as exc:
            raise ServiceError(ErrorCode.INVALID_ARGUMENT, validation_message(exc), "invalid_request") from exc
        return await service.map_build(params)

    async def _map_query_from_form(request: Request) -> tuple[MapQuery, str]:
        """A multipart upload → (MapQuery, label): a structure file, or a two-column XRD pattern."""
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ServiceError(ErrorCode.INVALID_ARGUMENT, "file: a multipart upload needs a 'file' field")
        name = upload.filename or "upload"
        content = await upload.read()
        kind = str(form.get("kind") or "")
        if kind not in ("", "structure", "pattern"):
            raise ServiceError(ErrorCode.INVALID_ARGUMENT, f"kind: {kind!r} is not 'structure' or 'pattern'")
        if not kind:
            kind = "pattern" if name.lower().endswith(PATTERN_SUFFIXES) else "structure"
        fields: dict = {}
        if form.get("top_k") not in (None, ""):
            fields["top_k"] = form.get("top_k")
        if kind == "structure":
            return MapQuery.model_validate({"structure": StructureIn(content=content, name=name), **fields}), name
        from matconcept.encoders.errors import StructureInputError
        from matconcept.encoders.xrd import read_xy

        try:
            two_theta, intensity = read_xy(content, name=name)
        except StructureInputError as exc:
            raise input_error(exc.to_dict()) from exc
        pattern = PatternIn(two_theta=two_theta.tolist(), intensity=intensity.tolist())
        return MapQuery.model_validate({"pattern": pattern, **fields}), name

    @app.get("/healthz", summary="Liveness: 200 once the gateway is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "model_id": api().model_id}

    return app
