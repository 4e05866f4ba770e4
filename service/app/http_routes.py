"""The HTTP API (FastAPI), served by Ray Serve's HTTP proxy through the gateway deployment.

Routes (OpenAPI page at ``/docs``, schema at ``/openapi.json``)::

    POST   /v1/search               JSON SearchQuery, or multipart SearchForm: file [kind, top_k, using, exact, filters]
    POST   /v1/embed                JSON EmbedQuery, or multipart EmbedForm: file [kind]
    GET    /v1/materials/{id}       one stored material (?vectors=true for its vectors); 404 when unknown;
                                    ?format=cif|json|poscar|original: its structure as a file (a download)
    GET    /v1/materials/{id}/pattern  the simulated powder pattern of a stored material (PatternOut)
    POST   /v1/pattern              JSON PatternQuery, or multipart PatternForm: file: a structure's simulated pattern
    POST   /v1/materials            JSON UpsertQuery, or multipart UpsertForm: file [source, source_id, tags] (API key)
    DELETE /v1/materials/{id}       delete one material; 404 when unknown (API key)
    DELETE /v1/materials            JSON DeleteQuery: delete several, the unknown ones listed (API key)
    GET    /v1/stats
    POST   /v1/snapshots            write a snapshot of the store on its host; its count and digest (API key)
    GET    /healthz

    GET    /                        the results page: a query's nearest materials, compared in 3D (web page)
    GET    /map                     the materials map (web page; both pages' assets under /map/static/)
    GET    /v1/map                  the current layout and the layout job's progress
    GET    /v1/map/meta             what the page needs: these paths, the colour fields and their ticks
    GET    /v1/map/points           every stored material with its map position (columns)
    POST   /v1/map/place            JSON MapQuery, or multipart MapPlaceForm: file=<CIF or XRD pattern> [kind, top_k]
    POST   /v1/map/layout           JSON LayoutParams (optional): recompute the layout (API key)

A route reads its body itself, by content type (one parsing path per route, behind the body-size
middleware): JSON into the query model of :mod:`~matconcept.service.app.schemas`, or a multipart form
into the form model of :mod:`~matconcept.service.app.forms`, which becomes the same query model.
:mod:`~matconcept.service.app.openapi` declares both bodies, the error answers and the key.

Errors are ``{"error": {"code", "reason", "message"}}`` (``ErrorBody``) with 400 (bad input), 401 (key),
404 (unknown id), 413 (over a cap) or 503 (a replica restarting); never a traceback. The API key travels
in the same header as over gRPC: ``Authorization: Bearer <key>``.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException

from matconcept.service.app.core import ServiceAPI, unexpected_error, validation_message
from matconcept.service.app.forms import EmbedForm, MapPlaceForm, PatternForm, SearchForm, UpsertForm, read_form
from matconcept.service.app.openapi import (
    EXAMPLE_ID,
    EXAMPLES,
    REF,
    LiveLimits,
    error_responses,
    openapi_document,
    operation,
    request_body,
)
from matconcept.service.app.schemas import (
    HTTP_STATUS,
    MATERIAL_ID_PATTERN,
    DeleteQuery,
    DeleteResult,
    EmbedQuery,
    EmbedResult,
    ErrorCode,
    GetQuery,
    MapPlaceResult,
    MapQuery,
    PatternOut,
    PatternQuery,
    SearchQuery,
    SearchResult,
    ServiceError,
    SnapshotQuery,
    StatsResult,
    UpsertQuery,
    UpsertResult,
)
from matconcept.service.map.keeper import MapPoints, MapStatus
from matconcept.service.map.layout import LayoutParams
from matconcept.service.map.meta import MapApi, MapMeta, map_meta
from matconcept.service.store.records import MaterialRecord
from matconcept.service.store.snapshots import SnapshotInfo
from matconcept.service.store.structures import MEDIA_TYPES, StructureFile, StructureFormatOut
from matconcept.service.web import asset_media_type, asset_path

__all__ = ["MAP_API", "BodyLimit", "make_http_app", "validation_message"]  # validation_message: the gRPC path's too

logger = logging.getLogger(__name__)

MULTIPART = "multipart/form-data"
TOO_LARGE = "too_large"
MAP_API = MapApi(
    map="/v1/map",
    points="/v1/map/points",
    place="/v1/map/place",
    search="/v1/search",
    material="/v1/materials/",
    layout="/v1/map/layout",
    pattern="/v1/pattern",
)
"""The routes the web pages call, served to them by ``GET /v1/map/meta`` (the routes below use them)."""
BODY_MODELS: tuple[type[BaseModel], ...] = (
    SearchQuery,
    SearchForm,
    EmbedQuery,
    EmbedForm,
    UpsertQuery,
    UpsertForm,
    DeleteQuery,
    MapQuery,
    MapPlaceForm,
    LayoutParams,
    PatternQuery,
    PatternForm,
    SnapshotQuery,
)
"""The request bodies the routes read themselves; the OpenAPI document carries their schemas."""
HTTP_ERROR_CODES: dict[int, ErrorCode] = {status: code for code, status in HTTP_STATUS.items()}


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


STRUCTURE_FILE_RESPONSE = {
    "description": "The record (JSON), or with `format` the structure file (a download, `Content-Disposition`).",
    "content": {
        **{media: {"schema": {"type": "string"}} for media in sorted(set(MEDIA_TYPES.values()))},
        # format=json is pymatgen's Structure.as_dict(): JSON too, so either shape may come back as JSON.
        "application/json": {
            "schema": {
                "anyOf": [
                    {"$ref": REF.format(model="MaterialRecord")},
                    {"type": "object", "description": "format=json: pymatgen `Structure.as_dict()`"},
                ]
            }
        },
    },
}


def structure_response(file: StructureFile) -> Response:
    """A structure file as a download: its content type (UTF-8) and file name."""
    return Response(
        content=file.content.encode("utf-8"),
        media_type=f"{file.media_type}; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{file.filename}"'},
    )


def _allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """Every method some route serves at the request's path (what a 405 lists in ``Allow``)."""
    from starlette.routing import Match

    scope = {**request.scope, "method": "GET"}
    methods: set[str] = set()
    for route in app.router.routes:
        if getattr(route, "methods", None) and route.matches(scope)[0] is not Match.NONE:
            methods |= set(route.methods)
    return sorted(methods)


def make_http_app(service: ServiceAPI) -> FastAPI:
    """The FastAPI app over ``service`` (built in the gateway replica, after its constructor)."""
    app = FastAPI(
        title="matconcept",
        version="1",
        description="Embedding database for crystal structures: upload a CIF, get similar materials.",
    )
    settings = service.settings
    limits = LiveLimits(
        settings.max_top_k, service.dim, settings.max_ids, settings.max_upsert_items, settings.max_pattern_points
    )
    app.openapi = lambda: openapi_document(app, (*BODY_MODELS, MaterialRecord), limits)  # type: ignore[method-assign]
    reads_keyed = service.settings.reads_require_key

    def api() -> ServiceAPI:
        return service

    def read_op(body: dict | None = None) -> dict:
        """``openapi_extra`` of a read: the key is optional unless the service requires it for reads."""
        return operation(body, keyed=reads_keyed, optional_key=not reads_keyed)

    def write_op(body: dict | None = None) -> dict:
        return operation(body, keyed=True)

    def read_errors(*statuses: int) -> dict:
        return error_responses(*statuses, reads_keyed=reads_keyed)

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

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        """Starlette's own refusals (unknown route, wrong method, a malformed multipart body) in the error shape."""
        code = HTTP_ERROR_CODES.get(exc.status_code, ErrorCode.INVALID_ARGUMENT)
        message = f"no route {request.method} {request.url.path}" if exc.status_code == 404 else str(exc.detail)
        reason = code.value if exc.status_code in HTTP_ERROR_CODES else str(exc.detail).lower().replace(" ", "_")
        content = {"error": ServiceError(code, message, reason).to_dict()}
        headers = exc.headers
        if exc.status_code == 405:  # Starlette names the first matching route's methods only: name them all
            kept = {k: v for k, v in (headers or {}).items() if k.lower() != "allow"}
            headers = {**kept, "Allow": ", ".join(_allowed_methods(app, request))}
        return JSONResponse(status_code=exc.status_code, content=content, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        error = unexpected_error(exc)
        if error.code is ErrorCode.INTERNAL:
            logger.exception("%s %s failed", request.method, request.url.path)
        else:
            logger.warning("%s %s: %s (%s)", request.method, request.url.path, error.message, type(exc).__name__)
        return _error(error)

    async def _read(request: Request, model: type[BaseModel], form_model: type | None, *, write: bool = False):
        """(query, upload name or None): the body as JSON ``model``, or a multipart ``form_model`` made into one.

        The key is checked first, so a refused write never reads (let alone stores) its body.
        """
        api().authorize(request.headers.get("authorization"), write=write)
        if request.headers.get("content-type", "").startswith(MULTIPART):
            if form_model is None:
                raise ServiceError(ErrorCode.INVALID_ARGUMENT, "request: this route takes a JSON body, not a form")
            form, upload = await read_form(await request.form(), form_model)
            return form.query(upload), upload.name
        body = await request.body()
        if not body.strip():
            raise ServiceError(ErrorCode.INVALID_ARGUMENT, "request: empty body (send JSON or a multipart file)")
        try:
            return model.model_validate_json(body), None
        except ValidationError as exc:
            raise ServiceError(ErrorCode.INVALID_ARGUMENT, validation_message(exc), "invalid_request") from exc

    @app.post(
        MAP_API.search,
        operation_id="search",
        response_model=SearchResult,
        summary="Nearest stored materials to a query",
        description="The query is a structure, a measured pattern, a stored material's id or a vector (JSON), "
        "or an uploaded file (multipart: a structure, or a two-column pattern by its name or `kind`).",
        responses=read_errors(400, 401, 404, 413, 503),
        openapi_extra=read_op(request_body(SearchQuery, SearchForm, EXAMPLES["search"])),
    )
    async def search(request: Request) -> SearchResult:
        query, _ = await _read(request, SearchQuery, SearchForm)
        return await api().search(query)

    @app.post(
        "/v1/embed",
        operation_id="embed",
        response_model=EmbedResult,
        summary="Vectors of a structure or a pattern",
        responses=read_errors(400, 401, 413, 503),
        openapi_extra=read_op(request_body(EmbedQuery, EmbedForm, EXAMPLES["embed"])),
    )
    async def embed(request: Request) -> EmbedResult:
        query, _ = await _read(request, EmbedQuery, EmbedForm)
        return await api().embed(query)

    material_id_path = Path(
        description="`<source>:<source_id>`, e.g. cod:1000000",
        json_schema_extra={"pattern": MATERIAL_ID_PATTERN},  # documented; checked by the service (one message)
        openapi_examples={"stored": {"summary": "the material the upsert example stores", "value": EXAMPLE_ID}},
    )

    structure_format_query = Query(
        default=None, alias="format", description="return the structure as this file instead of the record"
    )

    @app.get(
        MAP_API.material + "{material_id}",
        operation_id="get_material",
        response_model=None,  # a MaterialRecord or a file; STRUCTURE_FILE_RESPONSE declares both
        summary="A stored material, or its structure as a file",
        description="Without `format`: the stored record (JSON). With `format`: the structure as a file to "
        "download: `cif` (the primitive cell as embedded, P1), `json` (pymatgen `Structure.as_dict()`), `poscar`, "
        "or `original` (the file it was stored from; built-in structures have none: 404).",
        responses={**read_errors(400, 401, 404, 503), 200: STRUCTURE_FILE_RESPONSE},
        openapi_extra=read_op(),
    )
    async def get_material(
        request: Request,
        material_id: str = material_id_path,
        vectors: bool = False,
        structure_format: StructureFormatOut | None = structure_format_query,
    ) -> MaterialRecord | Response:
        api().authorize(request.headers.get("authorization"), write=False)
        if structure_format is not None:
            return structure_response(await api().structure_file(material_id, structure_format))
        result = await api().get(GetQuery(material_ids=[material_id], with_vectors=vectors))
        return result.materials[0]

    @app.get(
        MAP_API.material + "{material_id}/pattern",
        operation_id="material_pattern",
        response_model=PatternOut,
        summary="The simulated powder pattern of a stored material",
        description="The model's simulator and grid (Cu Kα, 10-110°, 0.02° bins), max-normalised; only the "
        "non-zero bins are listed.",
        responses=read_errors(400, 401, 404, 503),
        openapi_extra=read_op(),
    )
    async def material_pattern(request: Request, material_id: str = material_id_path) -> PatternOut:
        api().authorize(request.headers.get("authorization"), write=False)
        return await api().material_pattern(material_id)

    @app.post(
        MAP_API.pattern,
        operation_id="pattern",
        response_model=PatternOut,
        summary="The simulated powder pattern of a structure",
        description="JSON: a structure; multipart: a structure file. Nothing is stored.",
        responses=read_errors(400, 401, 413, 503),
        openapi_extra=read_op(request_body(PatternQuery, PatternForm, EXAMPLES["pattern"])),
    )
    async def pattern(request: Request) -> PatternOut:
        query, _ = await _read(request, PatternQuery, PatternForm)
        return await api().pattern(query)

    @app.post(
        "/v1/materials",
        operation_id="upsert",
        response_model=UpsertResult,
        summary="Store structures (API key)",
        description="JSON: several structures, each with its source, id and tags. Multipart: one file, "
        "with `source`, `source_id` and `tags` (JSON text) as form fields. A file that cannot be read is "
        "`failed` in the result (200), with its reason; the others are stored.",
        responses=error_responses(400, 401, 413, 503),
        openapi_extra=write_op(request_body(UpsertQuery, UpsertForm, EXAMPLES["upsert"])),
    )
    async def upsert(request: Request) -> UpsertResult:
        query, _ = await _read(request, UpsertQuery, UpsertForm, write=True)
        return await api().upsert(query)

    @app.delete(
        "/v1/materials/{material_id}",
        operation_id="delete_material",
        response_model=DeleteResult,
        summary="Delete a material (API key)",
        responses=error_responses(400, 401, 404, 503),
        openapi_extra=write_op(),
    )
    async def delete(request: Request, material_id: str = material_id_path) -> DeleteResult:
        api().authorize(request.headers.get("authorization"), write=True)
        result = await api().delete(DeleteQuery(material_ids=[material_id]))
        if not result.deleted:
            raise ServiceError(ErrorCode.NOT_FOUND, f"material_id: no stored material {material_id!r}")
        return result

    @app.delete(
        "/v1/materials",
        operation_id="delete_materials",
        response_model=DeleteResult,
        summary="Delete several materials (API key)",
        description="Ids not stored are listed in `missing` (200), as the gRPC Delete does.",
        responses=error_responses(400, 401, 413, 503),
        openapi_extra=write_op(request_body(DeleteQuery, None, EXAMPLES["delete"])),
    )
    async def delete_many(request: Request) -> DeleteResult:
        query, _ = await _read(request, DeleteQuery, None, write=True)
        return await api().delete(query)

    @app.get(
        "/v1/stats",
        operation_id="stats",
        response_model=StatsResult,
        summary="Collection size, model and engine",
        responses=read_errors(401, 503),
        openapi_extra=read_op(),
    )
    async def stats(request: Request) -> StatsResult:
        api().authorize(request.headers.get("authorization"), write=False)
        return await api().stats()

    @app.post(
        "/v1/snapshots",
        operation_id="snapshot",
        response_model=SnapshotInfo,
        summary="Snapshot the store (API key)",
        description="Writes the store to one file on the store's host (`<store>/snapshots/`), under the store's "
        "write lock: every write applied before it is in the snapshot, none after. The answer names the file and "
        "what it holds (count, and a digest of every material id and content hash) to check a restore against "
        "(`matconcept store restore`).",
        responses=error_responses(400, 401, 413, 503),
        openapi_extra=write_op(request_body(SnapshotQuery, None, EXAMPLES["snapshot"], required=False)),
    )
    async def snapshot(request: Request) -> SnapshotInfo:
        api().authorize(request.headers.get("authorization"), write=True)
        body = await request.body()
        try:
            query = SnapshotQuery.model_validate_json(body) if body.strip() else SnapshotQuery()
        except ValidationError as exc:
            raise ServiceError(ErrorCode.INVALID_ARGUMENT, validation_message(exc), "invalid_request") from exc
        return await api().snapshot(query)

    # -- the materials map ------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def results_page() -> FileResponse:
        return FileResponse(asset_path("index.html"), media_type="text/html")

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

    @app.get(
        "/v1/map/meta",
        operation_id="map_meta",
        response_model=MapMeta,
        summary="The map page's API paths and colour fields",
        responses=read_errors(401),
        openapi_extra=read_op(),
    )
    async def map_meta_route(request: Request) -> MapMeta:
        api().authorize(request.headers.get("authorization"), write=False)
        return map_meta(MAP_API)

    @app.get(
        MAP_API.map,
        operation_id="map_status",
        response_model=MapStatus,
        summary="The current map layout and the layout job",
        responses=read_errors(401, 503),
        openapi_extra=read_op(),
    )
    async def map_status(request: Request) -> MapStatus:
        api().authorize(request.headers.get("authorization"), write=False)
        return await api().map_status()

    @app.get(
        MAP_API.points,
        operation_id="map_points",
        response_model=MapPoints,
        summary="Every stored material's map position",
        responses=read_errors(401, 404, 503),
        openapi_extra=read_op(),
    )
    async def map_points(request: Request) -> MapPoints:
        api().authorize(request.headers.get("authorization"), write=False)
        return await api().map_points()

    @app.post(
        MAP_API.place,
        operation_id="map_place",
        response_model=MapPlaceResult,
        summary="Place a CIF or XRD pattern on the map",
        description="Nothing is stored. 404 until a layout was computed (`matconcept map` or POST /v1/map/layout).",
        responses=read_errors(400, 401, 404, 413, 503),
        openapi_extra=read_op(request_body(MapQuery, MapPlaceForm, EXAMPLES["map_place"])),
    )
    async def map_place(request: Request) -> MapPlaceResult:
        query, upload_name = await _read(request, MapQuery, MapPlaceForm)
        label = upload_name or (query.structure.name if query.structure is not None else "pattern")
        return await api().map_place(query, label)

    @app.post(
        MAP_API.layout,
        operation_id="map_layout",
        response_model=MapStatus,
        summary="Recompute the map layout (API key)",
        description="Starts a layout job and answers at once; GET /v1/map follows its progress. An empty body "
        "means the defaults.",
        responses=error_responses(400, 401, 413, 503),
        openapi_extra=write_op(request_body(LayoutParams, None, EXAMPLES["map_layout"], required=False)),
    )
    async def map_layout(request: Request) -> MapStatus:
        service = api()
        service.authorize(request.headers.get("authorization"), write=True)
        body = await request.body()
        try:
            params = LayoutParams.model_validate_json(body) if body.strip() else LayoutParams()
        except ValidationError as exc:
            raise ServiceError(ErrorCode.INVALID_ARGUMENT, validation_message(exc), "invalid_request") from exc
        return await service.map_build(params)

    @app.get("/healthz", operation_id="healthz", summary="Liveness: 200 once the gateway is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "model_id": api().model_id}

    return app
