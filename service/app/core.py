"""What the service does, independent of the wire: pydantic query in, pydantic result out.

The gRPC methods and the HTTP routes of the gateway are thin adapters around :class:`ServiceAPI`,
so both ingresses check the same caps, keys and inputs and answer with the same errors
(:class:`~matconcept.service.app.schemas.ServiceError`, mapped to a gRPC status or an HTTP status). The API calls
the embedder and store deployments through Serve handles; it never parses or embeds itself, which
keeps the gateway replicas light (no torch, no pymatgen).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from matconcept.service.app.notions import query_kind, resolve_using
from matconcept.service.app.phase_search import PatternSearchOptions, PatternSummary
from matconcept.service.app.schemas import (
    DeleteQuery,
    DeleteResult,
    EmbeddedStructure,
    EmbedQuery,
    EmbedResult,
    ErrorCode,
    GetQuery,
    GetResult,
    MapHit,
    MapPlaceResult,
    MapQuery,
    MapQueryPoint,
    PatternIn,
    PatternOut,
    PatternQuery,
    SearchQuery,
    SearchResult,
    ServiceError,
    SnapshotQuery,
    StatsResult,
    StructureIn,
    UpsertItemResult,
    UpsertQuery,
    UpsertResult,
)
from matconcept.service.app.settings import AccessSettings, ServiceSettings
from matconcept.service.map.keeper import MapPoints, MapStatus
from matconcept.service.map.layout import LayoutParams
from matconcept.service.store.snapshots import SnapshotInfo
from matconcept.service.store.structures import StructureFile

logger = logging.getLogger(__name__)

NO_MAP = "no map yet: run `matconcept map`, or POST /v1/map/layout with the API key"
TOO_LARGE = "too_large"
"""The parse reason (InputErrorReason.TOO_LARGE) that becomes RESOURCE_EXHAUSTED rather than INVALID_ARGUMENT."""


MAX_LISTED_ERRORS = 5
"""Validation problems named in one message; a 10,000-value vector of NaN gets one line, not 10,000."""


class ValidationProblems(Protocol):
    """A pydantic ``ValidationError`` or FastAPI's ``RequestValidationError``: anything with ``errors()``."""

    def errors(self) -> Sequence[Mapping[str, Any]]: ...


def validation_message(exc: ValidationProblems, prefix: str = "") -> str:
    """One line naming each bad field: ``top_k: Input should be greater than or equal to 1``.

    The same line answers HTTP (400) and gRPC (INVALID_ARGUMENT); ``prefix`` names the field a nested
    document came from (a form's ``filters`` JSON).
    """
    errors = exc.errors()
    parts = []
    for err in errors[:MAX_LISTED_ERRORS]:
        loc = ".".join(str(p) for p in (prefix, *err.get("loc", ())) if p not in ("", "body")) or "request"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    if len(errors) > MAX_LISTED_ERRORS:
        parts.append(f"and {len(errors) - MAX_LISTED_ERRORS} more")
    return "; ".join(parts)


UNAVAILABLE = "a replica the request needs is unavailable (restarting or overloaded); retry in a few seconds"


def unexpected_error(exc: Exception) -> ServiceError:
    """The answer to an exception no check anticipated: UNAVAILABLE when a Serve replica the request
    needed is gone or overloaded (a retry will do), else INTERNAL (a bug: the log has the traceback)."""
    from ray.exceptions import RayActorError
    from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError, ReplicaUnavailableError

    if isinstance(exc, RayActorError | BackPressureError | DeploymentUnavailableError | ReplicaUnavailableError):
        return ServiceError(ErrorCode.UNAVAILABLE, UNAVAILABLE, "unavailable")
    return ServiceError(ErrorCode.INTERNAL, "internal error; the service log has the details")


def input_error(error: dict[str, str]) -> ServiceError:
    """A StructureInputError (as its dict) → INVALID_ARGUMENT, or RESOURCE_EXHAUSTED when too large."""
    reason = error.get("reason", "invalid")
    code = ErrorCode.RESOURCE_EXHAUSTED if reason == TOO_LARGE else ErrorCode.INVALID_ARGUMENT
    return ServiceError(code, f"{reason}: {error.get('message', '')}", reason)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("matconcept")
    except PackageNotFoundError:
        return "unknown"


class ServiceAPI:
    """The service's operations over an embedder and a store deployment.

    Args:
        embedder: Handle of :class:`matconcept.service.app.deployments.EmbedderDeployment`.
        store: Handle of :class:`matconcept.service.app.deployments.StoreDeployment`.
        settings: Caps and options.
        access: The API key (read from the gateway replica's environment).
        model_id: Model whose vectors the store holds; ``dim`` their dimension.
        structure_dim: The size of its structure-type vectors; None when the model has no such encoder
            (then ``using: structure`` and ``hybrid`` are refused, naming the model).
    """

    def __init__(
        self,
        embedder: Any,
        store: Any,
        settings: ServiceSettings,
        access: AccessSettings,
        model_id: str,
        dim: int,
        structure_dim: int | None = None,
    ) -> None:
        self.embedder, self.store = embedder, store
        self.settings, self.access = settings, access
        self.model_id, self.dim = model_id, dim
        self.structure_dim = structure_dim

    # -- checks -------------------------------------------------------------------------------
    def authorize(self, header: str | None, *, write: bool) -> None:
        """Raise UNAUTHENTICATED unless ``header`` carries the key this operation needs."""
        problem = self.access.check(header, write=write, reads_keyed=self.settings.reads_require_key)
        if problem is not None:
            raise ServiceError(ErrorCode.UNAUTHENTICATED, problem, "unauthenticated")

    def check_request_size(self, n_bytes: int) -> None:
        limit = self.settings.max_request_bytes
        if n_bytes > limit:
            raise ServiceError(
                ErrorCode.RESOURCE_EXHAUSTED,
                f"request: {n_bytes} bytes, limit is {limit} (MATCONCEPT_MAX_REQUEST_BYTES)",
                TOO_LARGE,
            )

    def _check_structure(self, s: StructureIn, field: str) -> None:
        limit = self.settings.max_structure_bytes
        if s.size > limit:
            raise ServiceError(
                ErrorCode.RESOURCE_EXHAUSTED,
                f"too_large: {field} ({s.name}): {s.size} bytes, limit is {limit} (MATCONCEPT_MAX_STRUCTURE_BYTES)",
                TOO_LARGE,
            )

    def _check_pattern(self, p: PatternIn, field: str) -> None:
        n, limit = len(p.two_theta), self.settings.max_pattern_points
        if n > limit:
            raise ServiceError(
                ErrorCode.RESOURCE_EXHAUSTED, f"too_large: {field}: {n} points, limit is {limit}", TOO_LARGE
            )
        if n != len(p.intensity):
            raise ServiceError(
                ErrorCode.INVALID_ARGUMENT,
                f"bad_pattern: {field}: {n} 2θ values but {len(p.intensity)} intensities",
                "bad_pattern",
            )

    def _check_ids(self, ids: list[str], field: str) -> None:
        if len(ids) > self.settings.max_ids:
            raise ServiceError(
                ErrorCode.RESOURCE_EXHAUSTED, f"{field}: {len(ids)} ids, limit is {self.settings.max_ids}", TOO_LARGE
            )
        bad = [i for i in ids if ":" not in i or i.startswith(":") or i.endswith(":")]
        if bad:
            raise ServiceError(
                ErrorCode.INVALID_ARGUMENT,
                f"{field}: {bad[0]!r} is not a material id of the form <source>:<source_id> (e.g. cod:1000000)",
                "bad_id",
            )

    # -- embedding ----------------------------------------------------------------------------
    async def _embed_structure(
        self, s: StructureIn, field: str, names: tuple[str, ...] | None = None
    ) -> EmbeddedStructure:
        """The structure's vectors (``names`` only, where given: see the embedder's ``embed_structure``)."""
        self._check_structure(s, field)
        out: EmbeddedStructure = await self.embedder.embed_structure.remote(s, field, names)
        if out.error is not None:
            raise input_error(out.error)
        return out

    async def _embed_pattern(self, p: PatternIn, field: str) -> list[float]:
        self._check_pattern(p, field)
        out: EmbeddedStructure = await self.embedder.embed_pattern.remote(p, field)
        if out.error is not None:
            raise input_error(out.error)
        return out.xrd or []

    async def embed(self, q: EmbedQuery) -> EmbedResult:
        if q.structure is not None:
            out = await self._embed_structure(q.structure, "structure")
            return EmbedResult(
                model_id=self.model_id,
                crystal=out.crystal,
                xrd=out.xrd or [],
                structure=out.summary,
                structure_vector=out.structure_type,
            )
        xrd = await self._embed_pattern(q.pattern, "pattern")
        return EmbedResult(model_id=self.model_id, xrd=xrd)

    # -- search -------------------------------------------------------------------------------
    def _check_top_k(self, top_k: int) -> None:
        if top_k > self.settings.max_top_k:
            raise ServiceError(
                ErrorCode.INVALID_ARGUMENT, f"top_k: {top_k} is above the limit {self.settings.max_top_k}", "top_k"
            )

    def _check_notion(self, using: str) -> None:
        """``structure`` and ``hybrid`` need a model with a structure-type encoder: a clear 400 otherwise."""
        if using in ("structure", "hybrid") and self.structure_dim is None:
            raise ServiceError(
                ErrorCode.INVALID_ARGUMENT,
                f"using: {using}: model {self.model_id} has no structure-type encoder, so the store keeps no "
                "structure vectors; use crystal or xrd, or serve a checkpoint that has one",
                "no_structure_vectors",
            )

    async def _query_vectors(
        self, q: SearchQuery | MapQuery, names: tuple[str, ...]
    ) -> tuple[dict[str, list[float]], Any]:
        """The query's vectors of the stored notions ``names`` (each encoder's for a structure) and its summary."""
        if q.structure is not None:
            out = await self._embed_structure(q.structure, "query.structure", names)
            vectors = {"crystal": out.crystal, "xrd": out.xrd, "structure": out.structure_type}
            return {n: vectors[n] or [] for n in names}, out.summary
        if q.pattern is not None:
            if set(names) - {"crystal", "xrd"}:
                raise ServiceError(
                    ErrorCode.INVALID_ARGUMENT,
                    f"using: a pattern query searches crystal or xrd vectors, not {', '.join(names)}",
                    "bad_using",
                )
            vector = await self._embed_pattern(q.pattern, "query.pattern")
            return dict.fromkeys(names, vector), None
        if q.material_id is not None:
            self._check_ids([q.material_id], "query.material_id")
            records = await self.store.get.remote([q.material_id], True)
            if not records:
                raise ServiceError(ErrorCode.NOT_FOUND, f"query.material_id: no stored material {q.material_id!r}")
            stored = records[0].vectors or {}
            missing = [n for n in names if n not in stored]
            if missing:
                raise ServiceError(
                    ErrorCode.INVALID_ARGUMENT,
                    f"query.material_id: {q.material_id} has no stored {', '.join(missing)} vector "
                    "(stored before it existed: run `matconcept ingest --reembed`)",
                    "no_structure_vectors",
                )
            return {n: stored[n] for n in names}, None
        if len(names) > 1:
            raise ServiceError(
                ErrorCode.INVALID_ARGUMENT,
                "query.vector: a hybrid search needs a structure or a stored id",
                "bad_vector",
            )
        vector = q.vector or []
        dim = self.structure_dim if names[0] == "structure" else self.dim
        if len(vector) != dim:
            raise ServiceError(
                ErrorCode.INVALID_ARGUMENT,
                f"query.vector: {len(vector)} values, the model's {names[0]} vectors have {dim}",
                "bad_vector",
            )
        return {names[0]: vector}, None

    async def _query_vector(self, q: SearchQuery | MapQuery, using: str) -> tuple[list[float], Any]:
        """The vector a query is compared with (``using``'s encoder for a structure) and its summary."""
        vectors, summary = await self._query_vectors(q, (using,))
        return vectors[using], summary

    def resolved_using(self, q: SearchQuery) -> str:
        """The notion ``q`` is searched by: its ``using``, or the default for its kind of query
        (:func:`~matconcept.service.app.notions.resolve_using`: hybrid for a structure or a stored id where
        the model has the structure-type encoder, else crystal)."""
        return resolve_using(q.using, query_kind(q), has_structure_type=self.structure_dim is not None)

    async def search(self, q: SearchQuery) -> SearchResult:
        self._check_top_k(q.top_k)
        q = q.model_copy(update={"using": self.resolved_using(q)})
        self._check_notion(q.using)
        if q.pattern is not None and q.using in ("structure", "hybrid"):
            raise ServiceError(
                ErrorCode.INVALID_ARGUMENT,
                f"using: a pattern query searches crystal or xrd, not {q.using}",
                "bad_using",
            )
        if q.pattern is not None:
            return await self._search_pattern(q, q.pattern_options or PatternSearchOptions())
        exact = True if q.exact else None
        if q.using == "hybrid":
            vectors, summary = await self._query_vectors(q, ("crystal", "structure"))
            hits = await self.store.hybrid_search.remote(
                vectors, k=q.top_k, filters=q.filters, exact=exact, options=q.hybrid
            )
        else:
            vector, summary = await self._query_vector(q, q.using)
            hits = await self.store.search.remote(vector, using=q.using, k=q.top_k, filters=q.filters, exact=exact)
            hits = [h.model_copy(update={"notion": q.using}) for h in hits]
        return SearchResult(model_id=self.model_id, using=q.using, hits=hits, query_structure=summary)

    async def _pattern_vectors(
        self, p: PatternIn, field: str, options: PatternSearchOptions
    ) -> tuple[list[float], list[float]]:
        """The XRD-encoder vector and the fingerprint of a measured pattern (input errors raised)."""
        self._check_pattern(p, field)
        xrd, fingerprint, error = await self.embedder.pattern_query.remote(p, field, options)
        if error is not None:
            raise input_error(error)
        return xrd, fingerprint

    async def _search_pattern(self, q: SearchQuery, options: PatternSearchOptions) -> SearchResult:
        """A measured pattern: two stages (learned and fingerprint candidates re-ranked by search-match,
        :mod:`~matconcept.service.app.phase_search`), or, with ``rerank`` off, the embedding alone."""
        field = "query.pattern"
        xrd, fingerprint = await self._pattern_vectors(q.pattern, field, options)
        if not options.rerank:
            hits = await self.store.search.remote(
                xrd, using=q.using, k=q.top_k, filters=q.filters, exact=True if q.exact else None
            )
            hits = [h.model_copy(update={"notion": q.using}) for h in hits]
            return SearchResult(model_id=self.model_id, using=q.using, hits=hits)
        hits, ranking = await self.store.pattern_search.remote(
            xrd, fingerprint, q.pattern, options, filters=q.filters, top_k=q.top_k, using=q.using, field=field
        )
        summary = PatternSummary(
            fwhm=ranking.fwhm,
            fwhm_estimated=ranking.fwhm_estimated,
            residual=ranking.residual,
            candidates=len(ranking.order),
        )
        return SearchResult(model_id=self.model_id, using=q.using, hits=hits, phases=ranking.phases, pattern=summary)

    # -- the materials map --------------------------------------------------------------------
    async def map_status(self) -> MapStatus:
        return await self.store.map_status.remote()

    async def map_points(self) -> MapPoints:
        points = await self.store.map_points.remote()
        if points is None:
            raise ServiceError(ErrorCode.NOT_FOUND, NO_MAP, "no_map")
        return points

    async def map_build(self, params: LayoutParams) -> MapStatus:
        return await self.store.map_build.remote(params)

    async def map_place(self, q: MapQuery, label: str) -> MapPlaceResult:
        """Embed the query, find its neighbours, and place it on the current layout (nothing stored).

        The layout is of the ``crystal`` vectors; a pattern's XRD vector lands among them because
        the two encoders share one space (the paper's cross-modal training).
        """
        self._check_top_k(q.top_k)
        status = await self.store.map_status.remote()
        if status.layout is None:
            raise ServiceError(ErrorCode.NOT_FOUND, NO_MAP, "no_map")
        using = status.layout.using
        if q.pattern is not None:  # the same two-stage search as POST /v1/search; placed by its vector
            options = PatternSearchOptions()
            vector, fingerprint = await self._pattern_vectors(q.pattern, "query.pattern", options)
            summary = None
            hits, _ = await self.store.pattern_search.remote(
                vector, fingerprint, q.pattern, options, filters=None, top_k=q.top_k, using=using, field="query.pattern"
            )
        else:
            vector, summary = await self._query_vector(q, using)
            hits = await self.store.search.remote(vector, using=using, k=q.top_k, filters=None, exact=None)
        placed = await self.store.map_place.remote([vector], [h.material_id for h in hits])
        if placed is None:
            raise ServiceError(ErrorCode.NOT_FOUND, NO_MAP, "no_map")
        layout_id, (x, y), positions = placed
        point = MapQueryPoint(
            x=x,
            y=y,
            label=summary.formula if summary is not None else label,
            kind="structure" if q.structure is not None else "pattern",
            structure=summary,
        )
        out = []
        for h, xy in zip(hits, positions, strict=True):
            out.append(
                MapHit(
                    material_id=h.material_id,
                    distance=h.distance,
                    x=None if xy is None else xy[0],
                    y=None if xy is None else xy[1],
                    formula=h.payload.formula,
                    spacegroup_symbol=h.payload.spacegroup_symbol,
                    source=h.payload.source,
                    match=h.match,
                )
            )
        return MapPlaceResult(layout_id=layout_id, query=point, hits=out)

    # -- reads and writes by id ---------------------------------------------------------------
    async def get(self, q: GetQuery) -> GetResult:
        self._check_ids(q.material_ids, "material_ids")
        records = await self.store.get.remote(q.material_ids, q.with_vectors)
        found = {r.material_id for r in records}
        missing = [m for m in dict.fromkeys(q.material_ids) if m not in found]
        if not records:
            raise ServiceError(ErrorCode.NOT_FOUND, f"material_ids: no stored material {', '.join(map(repr, missing))}")
        if q.structure_format is not None:
            files = await self._structure_files([r.material_id for r in records], q.structure_format)
            records = [r.model_copy(update={"structure": files[r.material_id]}) for r in records]
        return GetResult(materials=records, missing=missing)

    # -- stored structures: files and simulated patterns ---------------------------------------------
    async def structure_file(self, material_id: str, fmt: str) -> StructureFile:
        """A stored material's structure as a CIF, pymatgen JSON, POSCAR or its original file."""
        self._check_ids([material_id], "material_id")
        return (await self._structure_files([material_id], fmt))[material_id]

    async def _structure_files(self, material_ids: list[str], fmt: str) -> dict[str, StructureFile]:
        """Rendered by the embedder (pymatgen is there); NOT_FOUND for an unknown id, a structure not kept
        or no original file, INVALID_ARGUMENT for a format the structure cannot take (a disordered POSCAR)."""
        stored = await self.store.get_structures.remote(material_ids)
        for material_id in material_ids:
            if material_id not in stored:
                raise ServiceError(ErrorCode.NOT_FOUND, f"material_id: no stored material {material_id!r}")
        rendered = await self.embedder.render_structures.remote([(m, stored[m]) for m in material_ids], fmt)
        out = {}
        for material_id, (file, error) in zip(material_ids, rendered, strict=True):
            if error is not None:
                code = ErrorCode.INVALID_ARGUMENT if error["reason"] == "unsupported_format" else ErrorCode.NOT_FOUND
                raise ServiceError(code, error["message"], error["reason"])
            out[material_id] = file
        return out

    async def material_pattern(self, material_id: str) -> PatternOut:
        """The simulated powder pattern of a stored material (its kept structure, the model's settings)."""
        self._check_ids([material_id], "material_id")
        stored = await self.store.get_structures.remote([material_id])
        if material_id not in stored:
            raise ServiceError(ErrorCode.NOT_FOUND, f"material_id: no stored material {material_id!r}")
        pattern, error = await self.embedder.stored_pattern.remote(material_id, stored[material_id])
        if error is not None:
            raise ServiceError(ErrorCode.NOT_FOUND, error["message"], error["reason"])
        return pattern

    async def pattern(self, q: PatternQuery) -> PatternOut:
        """The simulated powder pattern of an uploaded structure (nothing stored)."""
        self._check_structure(q.structure, "structure")
        pattern, error = await self.embedder.structure_pattern.remote(q.structure, "structure")
        if error is not None:
            raise input_error(error)
        return pattern

    async def delete(self, q: DeleteQuery) -> DeleteResult:
        self._check_ids(q.material_ids, "material_ids")
        deleted, missing = await self.store.delete.remote(q.material_ids)
        return DeleteResult(deleted=deleted, missing=missing)

    async def upsert(self, q: UpsertQuery) -> UpsertResult:
        """Embed every item (one batch), then write the new and changed ones; one status per item."""
        if len(q.items) > self.settings.max_upsert_items:
            raise ServiceError(
                ErrorCode.RESOURCE_EXHAUSTED,
                f"items: {len(q.items)} structures, limit is {self.settings.max_upsert_items} per request",
                TOO_LARGE,
            )
        results: list[UpsertItemResult | None] = [None] * len(q.items)
        todo = []
        for i, item in enumerate(q.items):
            try:
                self._check_structure(item.structure, f"items[{i}].structure")
            except ServiceError as exc:
                results[i] = UpsertItemResult(index=i, status="failed", reason=exc.reason, message=exc.message)
                continue
            todo.append(i)
        prepared = await self.embedder.prepare_points.remote([q.items[i] for i in todo], todo)
        points = {}
        for i, (material_id, point, error) in zip(todo, prepared, strict=True):
            if error is not None:
                results[i] = UpsertItemResult(
                    index=i, material_id=material_id, status="failed", reason=error["reason"], message=error["message"]
                )
            else:
                points[i] = point
        stored_hashes = await self.store.content_hashes.remote([p.payload.material_id for p in points.values()])
        to_write = {}
        for i, point in points.items():
            mid = point.payload.material_id
            old = stored_hashes.get(mid)
            status = "added" if old is None else "unchanged" if old == point.payload.content_hash else "updated"
            results[i] = UpsertItemResult(index=i, material_id=mid, status=status)
            if status != "unchanged":
                to_write[mid] = point  # the last of repeated ids wins, as in ingest
        if to_write:
            await self.store.upsert.remote(list(to_write.values()))
        done = [r for r in results if r is not None]
        stored = sum(r.status in ("added", "updated") for r in done)
        return UpsertResult(results=done, stored=stored, failed=sum(r.status == "failed" for r in done))

    async def snapshot(self, q: SnapshotQuery) -> SnapshotInfo:
        """Write a snapshot of the store on its host (``<store>/snapshots/``); its SnapshotInfo."""
        return await self.store.snapshot.remote(q.label)

    async def stats(self) -> StatsResult:
        count, engine = await asyncio.gather(self.store.count.remote(), self.store.engine.remote())
        return StatsResult(count=count, model_id=self.model_id, dim=self.dim, engine=engine, version=version())
