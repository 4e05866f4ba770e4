"""The Ray Serve application: an embedder, a store and a gateway (native gRPC + FastAPI HTTP).

::

    clients ──gRPC :9000──┐
                          ├─► Gateway ──► EmbedderDeployment  (parse, featurize, batched forward; GPU if any)
    clients ──HTTP :8000──┘        └────► StoreDeployment     (the one owner of the embedded store)

The gateway answers the proto's RPCs by name (Serve's gRPC proxy routes ``/matconcept.v1.Matconcept/Search``
to ``Gateway.Search``) and serves the FastAPI app of :mod:`matconcept.service.app.http_routes`. The embedded
qdrant-edge store belongs to one process, so the store deployment has exactly one replica and every
write goes through it; the embedder scales out.

Build with :func:`build` (``serve run deploy/serve_config.yaml`` uses it as the application builder)
or start everything with ``matconcept serve`` (:mod:`matconcept.service.cli.serve`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from ray import serve
from ray.serve.grpc_util import RayServegRPCContext

from matconcept.encoders.sources import RawEntry
from matconcept.service.app import convert
from matconcept.service.app.core import ServiceAPI, unexpected_error
from matconcept.service.app.grpc_servicer import UndecodableRequest
from matconcept.service.app.http_routes import make_http_app, validation_message
from matconcept.service.app.phase_search import PatternSearchOptions
from matconcept.service.app.rpc import matconcept_pb2 as pb
from matconcept.service.app.schemas import (
    EmbeddedStructure,
    ErrorCode,
    PatternIn,
    ServiceError,
    StructureIn,
    StructureSummary,
    UpsertItem,
    upload_source_id,
)
from matconcept.service.app.settings import AccessSettings, ServiceSettings

if TYPE_CHECKING:
    from matconcept.encoders.pipeline import Featurized
    from matconcept.service.ingest.prepare import Prepared

logger = logging.getLogger(__name__)

STORE_MAX_ONGOING = 256
"""Concurrent calls into the store replica (they queue on its lock; each takes milliseconds)."""
EMBEDDER_MAX_ONGOING = 256
"""Requests an embedder replica accepts at once: enough to fill batches under load."""
FORMAT_SUFFIX = {"cif": ".cif", "json": ".json", "poscar": ".vasp"}
INTERNAL_LOGGING = {"enable_access_log": False}
"""The embedder's and the store's logging: no access line per call (the gateway logs each request once;
a line per internal hop cost ~5 % of each replica's CPU under load)."""
QUERY_VECTORS = ("crystal", "structure")
"""The vectors a structure search compares unless it searches by ``xrd`` (the structure-type one where the
model has that encoder)."""


def _grpc_status(code: ErrorCode):
    import grpc

    return {
        ErrorCode.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
        ErrorCode.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
        ErrorCode.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
        ErrorCode.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
        ErrorCode.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
        ErrorCode.INTERNAL: grpc.StatusCode.INTERNAL,
    }[code]


def _error(result: Featurized | Prepared) -> dict[str, str]:
    """A failed featurization (or point preparation) as the error dict the API turns into a status."""
    if result.error is not None:
        return result.error.to_dict()
    return {"reason": "featurize_failed", "message": f"{result.entry_name}: featurization failed"}


def _summary(parsed) -> StructureSummary:
    return StructureSummary(
        formula=parsed.formula,
        n_sites=len(parsed.structure),
        spacegroup_number=parsed.spacegroup_number,
        spacegroup_symbol=parsed.spacegroup_symbol,
        disordered=parsed.disordered,
    )


@dataclass(frozen=True)
class GraphSlots:
    """``batch_size_fn`` of the graph batch: its count, with large cells counting as several requests.

    A batch holds ``max_batch_size`` slots; a slot is ``atoms_per_slot`` primitive-cell sites, so a
    batch also stays under ``max_batch_atoms`` (the graph convolution's cost grows with atoms).
    """

    atoms_per_slot: float

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> GraphSlots:
        return cls(max(1.0, settings.max_batch_atoms / settings.max_batch_size))

    def __call__(self, graphs: list) -> int:
        atoms = sum(int(g.num_nodes) for g in graphs)
        return max(len(graphs), math.ceil(atoms / self.atoms_per_slot))


def structure_entry(s: StructureIn, field: str, stem: str) -> RawEntry:
    """A request's structure as the raw entry ``matconcept ingest`` would read from the same file.

    The entry is named ``<field>/<file name>`` so errors name both, and so the format is chosen as
    for a file: the ``format`` given (as the file's suffix), else the file name's suffix, else the
    content. ``stem`` stands in for a name without one (it becomes the id of a non-COD upsert).
    """
    data = s.content if isinstance(s.content, bytes) else s.content.encode("utf-8", "replace")
    name = s.name
    if s.format and not name.lower().endswith(FORMAT_SUFFIX[s.format]):
        name += FORMAT_SUFFIX[s.format]
    return RawEntry(f"{field}/{name}", PurePath(s.name).stem or stem, data, len(data))


@serve.deployment(max_ongoing_requests=EMBEDDER_MAX_ONGOING)
class EmbedderDeployment:
    """Structures and patterns → vectors: parsing in a worker thread, the model in batches.

    Requests arriving together share one forward pass (``@serve.batch``); a batch is capped by
    request count (``max_batch_size``) and by total primitive-cell sites (``max_batch_atoms``), since
    the graph convolution's cost grows with atoms, not with requests.
    """

    def __init__(self, settings: ServiceSettings) -> None:
        from matconcept.encoders.checkpoint import resolve_model
        from matconcept.encoders.embedder import Embedder, default_device

        device = settings.device or str(default_device())
        if device == "cpu":
            import torch

            # One intra-op thread per CPU the replica holds: an OpenMP team larger than its share of
            # a busy machine spins on descheduled threads (a single-graph forward measured 85 ms with
            # 2 threads against 4 ms with 1 on the 2-core machine under load). Ray sets
            # OMP_NUM_THREADS only when the environment does not, so it is set here.
            torch.set_num_threads(max(1, int(settings.embedder_num_cpus)))
        self.settings = settings
        self.limits = settings.parse_limits()
        self.embedder = Embedder(resolve_model(settings.model_path, device), device=device)
        self.xrd_settings = self.embedder.loaded.info.model.xrd
        # The batchers are made here, per replica, so their settings come from this replica's settings.
        batching = {"max_batch_size": settings.max_batch_size, "batch_wait_timeout_s": settings.batch_wait_timeout_s}
        self._forward_graphs = serve.batch(**batching, batch_size_fn=GraphSlots.from_settings(settings))(
            self._embed_graphs
        )
        self._forward_query_graphs = serve.batch(**batching, batch_size_fn=GraphSlots.from_settings(settings))(
            self._embed_query_graphs
        )
        self._forward_patterns = serve.batch(**batching)(self._embed_patterns)
        logger.info("embedder ready: model %s on %s", self.embedder.model_id, device)

    def model_id(self) -> str:
        return self.embedder.model_id

    async def _embed_graphs(self, graphs: list) -> list[tuple[list[float], list[float], list[float] | None]]:
        """One forward pass over a batch of graphs (``_forward_graphs`` batches the callers): every
        vector of each (the structure-type one None where the model has no such encoder)."""
        from matconcept.service.ingest.local import embed_all

        crystal, xrd, types = await asyncio.to_thread(embed_all, self.embedder, graphs)
        return [
            (c.tolist(), x.tolist(), None if t is None else t.tolist())
            for c, x, t in zip(crystal, xrd, types, strict=True)
        ]

    async def _embed_query_graphs(self, graphs: list) -> list[dict[str, list[float]]]:
        """One forward pass over a batch of search queries' graphs (no patterns): the concept and
        structure-type vectors only, which is all a structure search by ``crystal``, ``structure`` or
        ``hybrid`` compares (``_forward_query_graphs`` batches the callers)."""
        names = [n for n in QUERY_VECTORS if n in self.embedder.vector_names]
        vectors = await asyncio.to_thread(self.embedder.embed, graphs, names)
        return [{n: vectors[n][i].tolist() for n in names} for i in range(len(graphs))]

    async def _embed_patterns(self, patterns: list) -> list[list[float]]:
        """One forward pass over a batch of patterns (``_forward_patterns`` batches the callers)."""
        import numpy as np

        vectors = await asyncio.to_thread(self.embedder.embed_patterns, np.stack(patterns))
        return [v.tolist() for v in vectors]

    def _featurize(self, entry: RawEntry, pattern: bool = True) -> Featurized:
        """The app's featurization of a structure it embeds or searches with: ingest's, entry by entry (an
        upsert goes through ingest's ``prepare_entry``, :meth:`_prepare_points`)."""
        from matconcept.encoders.pipeline import featurize_entry

        return featurize_entry(entry, self.embedder.featurizer, self.limits, pattern=pattern)

    async def embed_structure(
        self, s: StructureIn, field: str = "structure", names: tuple[str, ...] | None = None
    ) -> EmbeddedStructure:
        """The vectors of one structure (errors come back as ``error``, never raised).

        ``names``: the vectors the caller compares; every vector when None or when it holds ``xrd``. A
        search by ``crystal``, ``structure`` or ``hybrid`` asks for those only, and then neither the
        pattern is simulated nor the XRD encoder run (``xrd`` is None in the answer).
        """
        query = names is not None and "xrd" not in names
        result = await asyncio.to_thread(self._featurize, structure_entry(s, field, field), not query)
        if result.error is not None or result.graph is None:
            return EmbeddedStructure(error=_error(result))
        if query:
            vectors = await self._forward_query_graphs(result.graph)
            return EmbeddedStructure(
                summary=_summary(result.parsed), crystal=vectors["crystal"], structure_type=vectors.get("structure")
            )
        crystal, xrd, structure_type = await self._forward_graphs(result.graph)
        return EmbeddedStructure(
            summary=_summary(result.parsed), crystal=crystal, xrd=xrd, structure_type=structure_type
        )

    async def embed_pattern(self, p: PatternIn, field: str = "pattern") -> EmbeddedStructure:
        """The XRD-encoder vector of a measured pattern, resampled onto the model's 2θ grid."""
        import numpy as np

        from matconcept.encoders.errors import StructureInputError
        from matconcept.encoders.xrd import resample_pattern

        try:
            pattern = resample_pattern(
                np.asarray(p.two_theta, dtype=float), np.asarray(p.intensity, dtype=float), self.xrd_settings
            )
        except StructureInputError as exc:
            return EmbeddedStructure(error=exc.to_dict())
        except ValueError as exc:
            return EmbeddedStructure(error={"reason": "bad_pattern", "message": f"{field}: {exc}"})
        return EmbeddedStructure(xrd=await self._forward_patterns(np.asarray(pattern, dtype=np.float32)))

    async def pattern_query(
        self, p: PatternIn, field: str, options: PatternSearchOptions
    ) -> tuple[list[float] | None, list[float] | None, dict | None]:
        """A measured pattern's first-stage vectors: (XRD-encoder vector, fingerprint, error).

        The checked path (wavelength converted by d-spacing, bad input named): what a re-ranked
        pattern search and a pattern search with options use.
        """
        import numpy as np

        from matconcept.encoders.errors import StructureInputError
        from matconcept.encoders.xrd.fingerprint import query_fingerprint
        from matconcept.service.app.phase_search import measured_query

        try:
            on_grid, query = measured_query(p.two_theta, p.intensity, options, field)
        except StructureInputError as exc:
            return None, None, exc.to_dict()
        # The encoder reads the measurement as resampled (background and all), as it was trained to.
        xrd = await self._forward_patterns(np.asarray(on_grid.pattern, dtype=np.float32))
        return xrd, query_fingerprint(query).tolist(), None

    async def prepare_points(self, items: list[UpsertItem], indices: list[int]) -> list[tuple[str, Any, dict | None]]:
        """(material id, PointIn or None, error or None) per item, through ingest's own code path.

        Items are labelled with :func:`matconcept.service.ingest.prepare.label_entry` (COD id or file stem,
        content hash), prepared with :func:`~matconcept.service.ingest.prepare.prepare_entry` (parse, graph, and
        the payload, kept structure and peak list from one XRD simulation) and embedded in one pass with
        :func:`matconcept.service.ingest.local.points_from_prepared`, exactly as ``matconcept ingest`` does.
        """
        return await asyncio.to_thread(self._prepare_points, items, indices)

    def _prepare_points(self, items: list[UpsertItem], indices: list[int]) -> list[tuple[str, Any, dict | None]]:
        from matconcept.service.ingest.local import points_from_prepared
        from matconcept.service.ingest.prepare import label_entry, prepare_entry

        out: list[tuple[str, Any, dict | None]] = []
        ok, ok_slots = [], []
        for i, item in zip(indices, items, strict=True):
            entry = structure_entry(item.structure, f"items[{i}].structure", f"item{i}")
            label = label_entry(entry, item.source, item.tags)
            label.source_id = item.source_id or upload_source_id(label.source_id, f"item{i}")
            prepared = prepare_entry((entry, label), self.embedder.featurizer, self.limits)
            if prepared.error is not None or prepared.graph is None:
                out.append((label.material_id, None, _error(prepared)))
                continue
            out.append((label.material_id, None, None))
            ok.append(prepared)
            ok_slots.append(len(out) - 1)
        for slot, point in zip(ok_slots, points_from_prepared(ok, self.embedder), strict=True):
            out[slot] = (out[slot][0], point, None)
        return out

    # -- stored structures as files and patterns (pymatgen lives here, not in the gateway) -------------
    async def render_structures(self, items: list[tuple[str, Any]], fmt: str) -> list[tuple[Any, dict | None]]:
        """(StructureFile or None, error or None) per (material id, StoredStructure or None)."""
        return await asyncio.to_thread(self._render_structures, items, fmt)

    def _render_structures(self, items: list[tuple[str, Any]], fmt: str) -> list[tuple[Any, dict | None]]:
        from matconcept.service.store.structures import StructureUnavailable, render

        out: list[tuple[Any, dict | None]] = []
        for material_id, stored in items:
            try:
                out.append((render(material_id, stored, fmt), None))
            except StructureUnavailable as exc:
                out.append((None, {"reason": exc.reason, "message": exc.message}))
        return out

    async def stored_pattern(self, material_id: str, stored: Any) -> tuple[Any, dict | None]:
        """(PatternOut or None, error or None): the simulated pattern of a stored structure."""
        from matconcept.service.app.patterns import simulated_pattern
        from matconcept.service.store.structures import no_structure

        if stored is None:
            error = no_structure(material_id)
            return None, {"reason": error.reason, "message": error.message}
        structure = await asyncio.to_thread(stored.pymatgen)
        return await asyncio.to_thread(simulated_pattern, structure, self.embedder.featurizer.xrd, material_id), None

    async def structure_pattern(self, s: StructureIn, field: str = "structure") -> tuple[Any, dict | None]:
        """(PatternOut or None, error or None): the simulated pattern of an uploaded structure."""
        return await asyncio.to_thread(self._structure_pattern, s, field)

    def _structure_pattern(self, s: StructureIn, field: str) -> tuple[Any, dict | None]:
        from matconcept.encoders.errors import StructureInputError
        from matconcept.encoders.structure_io import read_entry
        from matconcept.service.app.patterns import simulated_pattern

        try:
            parsed = read_entry(structure_entry(s, field, field), self.limits)
            return simulated_pattern(parsed.structure, self.embedder.featurizer.xrd), None
        except StructureInputError as exc:
            return None, exc.to_dict()
        except ValueError as exc:  # a species without scattering factors
            return None, {"reason": "featurize_failed", "message": f"{field}: no pattern ({exc})"}


@serve.deployment(num_replicas=1, max_ongoing_requests=STORE_MAX_ONGOING)
class StoreDeployment:
    """The store: the single owner of the embedded qdrant-edge directory (or a Qdrant server client).

    One replica by design (the embedded store takes an exclusive lock on its directory); calls are
    serialised by a lock because Serve runs these synchronous methods in a thread pool.
    """

    def __init__(self, settings: ServiceSettings, model_id: str, dim: int, structure_dim: int | None = None) -> None:
        from matconcept.service.map.keeper import MapKeeper
        from matconcept.service.map.storage import LayoutStore
        from matconcept.service.store import open_store

        self.store = open_store(settings.store, model_id, dim, structure_dim)
        self.lock = threading.Lock()
        self.map = MapKeeper(self.store, LayoutStore(settings.store.maps_dir(model_id)), store_lock=self.lock)
        self.snapshot_dir = settings.store.db_dir / "snapshots"
        logger.info("store ready: %s, %d materials", self.store.engine, self.store.count())

    def snapshot(self, label: str | None = None):
        """Snapshot the store under the write lock: every write applied before it is in, none after
        (:func:`matconcept.service.store.snapshots.take_snapshot`); its receipt (count, digest) is returned."""
        from matconcept.service.store.snapshots import snapshot_name, take_snapshot

        with self.lock:
            info = take_snapshot(self.store, self.snapshot_dir / snapshot_name(self.store.model_id, label))
        logger.info("snapshot %s: %d materials, digest %s", info.path, info.count, info.digest[:12])
        return info

    def search(self, vector: list[float], *, using: str, k: int, filters, exact: bool | None):
        import numpy as np

        with self.lock:
            return self.store.search(
                np.asarray(vector, dtype=np.float32), using=using, k=k, filters=filters, exact=exact
            )

    def hybrid_search(self, vectors: dict[str, list[float]], *, k: int, filters, exact: bool | None, options=None):
        """Concept and structure neighbours fused (:meth:`matconcept.service.store.base.VectorStore.hybrid_search`)."""
        import numpy as np

        query = {n: np.asarray(v, dtype=np.float32) for n, v in vectors.items()}
        with self.lock:
            return self.store.hybrid_search(query, k=k, filters=filters, exact=exact, options=options)

    def pattern_search(
        self,
        xrd: list[float],
        fingerprint: list[float],
        p: PatternIn,
        options: PatternSearchOptions,
        *,
        filters,
        top_k: int,
        using: str,
        field: str,
    ):
        """The two stages of a pattern search (see :mod:`matconcept.service.app.phase_search`).

        Candidates (:func:`~matconcept.service.app.phase_search.first_stage`, under the store lock)
        re-ranked by search-match on their stored peak lists, the best few also on their stored
        structures for a texture fit (``second_stage``). Each hit keeps its
        embedding distance in the ``using`` space (computed for candidates that space did not return).

        Returns:
            ``(hits (best match first, at most top_k), PatternRanking)``.
        """
        from matconcept.service.app.phase_search import first_stage, prepare, second_stage

        with self.lock:
            first = first_stage(self.store, xrd, fingerprint, options, filters=filters, using=using)
        query = prepare(p.two_theta, p.intensity, options, field)
        hits, ranking = second_stage(query, first, options, top_k, structures=self.get_structures)
        return hits, ranking

    def get(self, material_ids: list[str], with_vectors: bool = False):
        with self.lock:
            return self.store.get(material_ids, with_vectors=with_vectors)

    def get_structures(self, material_ids: list[str]):
        with self.lock:
            return self.store.get_structures(material_ids)

    def content_hashes(self, material_ids: list[str]) -> dict[str, str]:
        with self.lock:
            return self.store.content_hashes(material_ids)

    def upsert(self, points: list) -> int:
        with self.lock:
            self.store.upsert(points)
        self.map.changed([p.payload.material_id for p in points])
        return len(points)

    def delete(self, material_ids: list[str]) -> tuple[int, list[str]]:
        with self.lock:
            stored = {r.material_id for r in self.store.get(material_ids)}
            deleted = self.store.delete(material_ids) if stored else 0
        self.map.changed(list(stored))
        return deleted, [m for m in dict.fromkeys(material_ids) if m not in stored]

    # -- the materials map (layout files live beside the store this replica owns) ---------------
    def map_status(self):
        return self.map.status()

    def map_build(self, params):
        """Start computing a new layout in the background; the status says how far it got."""
        return self.map.start_build(params)

    def map_points(self):
        return self.map.points()

    def map_place(self, vectors: list[list[float]], material_ids: list[str]):
        """(layout id, query position, positions of ``material_ids``) or None before the first layout."""
        import numpy as np

        from matconcept.service.map.layout import LayoutError

        try:
            self.map.sync()
            layout_id, xy = self.map.place(np.asarray(vectors, dtype=np.float32))
        except LayoutError:
            return None
        positions = [self.map.position(m) for m in material_ids]
        return layout_id, (float(xy[0, 0]), float(xy[0, 1])), positions

    def count(self) -> int:
        with self.lock:
            return self.store.count()

    def engine(self) -> str:
        return self.store.engine

    def __del__(self) -> None:
        # Ray Serve's shutdown hook for a replica is ``__del__``: flush the store and free its lock.
        store = getattr(self, "store", None)
        if store is not None:
            store.close()


@serve.deployment(max_ongoing_requests=512)
@serve.ingress()
class Gateway:
    """The ingress: the proto's RPCs by name (gRPC) and the FastAPI routes (HTTP), over one ServiceAPI."""

    def __init__(
        self, embedder, store, settings: ServiceSettings, model_id: str, dim: int, structure_dim: int | None = None
    ) -> None:
        self.api = ServiceAPI(embedder, store, settings, AccessSettings(), model_id, dim, structure_dim)

    def __serve_build_asgi_app__(self):
        """Serve's hook (called after ``__init__``) for the HTTP app: the FastAPI routes over this API."""
        return make_http_app(self.api)

    async def _call(self, context: RayServegRPCContext, request, empty, run, *, write: bool = False):
        """Run one RPC: size cap, key, conversion, the operation; every failure becomes a status code."""
        try:
            if isinstance(request, UndecodableRequest):  # bytes the proxy could not parse (grpc_servicer)
                raise ServiceError(ErrorCode.INVALID_ARGUMENT, request.message(), "undecodable")
            self.api.check_request_size(request.ByteSize())
            metadata = dict(context.invocation_metadata())
            self.api.authorize(metadata.get("authorization"), write=write)
            return await run()
        except ServiceError as exc:
            error = exc
        except ValidationError as exc:
            error = ServiceError(ErrorCode.INVALID_ARGUMENT, validation_message(exc), "invalid_request")
        except Exception as exc:
            error = unexpected_error(exc)  # a lost replica is UNAVAILABLE (retry), anything else INTERNAL
            if error.code is ErrorCode.INTERNAL:
                logger.exception("gRPC %s failed", type(request).__name__)
            else:
                logger.warning("gRPC %s: %s (%s)", type(request).__name__, error.message, type(exc).__name__)
        context.set_code(_grpc_status(error.code))
        context.set_details(error.message)
        return empty

    async def Embed(self, request: pb.EmbedRequest, grpc_context: RayServegRPCContext) -> pb.EmbedResponse:
        async def run():
            return convert.embed_result_to_pb(await self.api.embed(convert.embed_query_from_pb(request)))

        return await self._call(grpc_context, request, pb.EmbedResponse(), run)

    async def Search(self, request: pb.SearchRequest, grpc_context: RayServegRPCContext) -> pb.SearchResponse:
        async def run():
            return convert.search_result_to_pb(await self.api.search(convert.search_query_from_pb(request)))

        return await self._call(grpc_context, request, pb.SearchResponse(), run)

    async def Upsert(self, request: pb.UpsertRequest, grpc_context: RayServegRPCContext) -> pb.UpsertResponse:
        async def run():
            return convert.upsert_result_to_pb(await self.api.upsert(convert.upsert_query_from_pb(request)))

        return await self._call(grpc_context, request, pb.UpsertResponse(), run, write=True)

    async def Get(self, request: pb.GetRequest, grpc_context: RayServegRPCContext) -> pb.GetResponse:
        async def run():
            return convert.get_result_to_pb(await self.api.get(convert.get_query_from_pb(request)))

        return await self._call(grpc_context, request, pb.GetResponse(), run)

    async def Delete(self, request: pb.DeleteRequest, grpc_context: RayServegRPCContext) -> pb.DeleteResponse:
        async def run():
            return convert.delete_result_to_pb(await self.api.delete(convert.delete_query_from_pb(request)))

        return await self._call(grpc_context, request, pb.DeleteResponse(), run, write=True)

    async def Stats(self, request: pb.StatsRequest, grpc_context: RayServegRPCContext) -> pb.StatsResponse:
        async def run():
            return convert.stats_result_to_pb(await self.api.stats())

        return await self._call(grpc_context, request, pb.StatsResponse(), run)


def model_identity(settings: ServiceSettings) -> tuple[str, int]:
    """(model id, dim) of the configured model: the store's collection is chosen by it."""
    from matconcept.encoders.checkpoint import resolve_model

    loaded = resolve_model(settings.model_path, "cpu")
    return loaded.model_id, loaded.info.model.embedding_dim


def model_structure_dim(settings: ServiceSettings) -> int | None:
    """The configured model's structure-type vector size (None: it has no structure-type encoder)."""
    from matconcept.encoders.checkpoint import resolve_model

    config = resolve_model(settings.model_path, "cpu").info.model.structure_type
    return config.dim if config is not None else None


def build(args: ServiceSettings) -> serve.Application:
    """The application of ``matconcept serve`` and of ``serve run``/``serve deploy``.

    Import path: ``matconcept.service.app.deployments:build``.

    ``args`` are :class:`ServiceSettings` fields (YAML ``args:``), completed from ``MATCONCEPT_*``
    environment variables.
    """
    settings = args if isinstance(args, ServiceSettings) else ServiceSettings.model_validate(args)
    model_id, dim = model_identity(settings)
    structure_dim = model_structure_dim(settings)
    gpus = settings.embedder_num_gpus
    if gpus < 0:
        import torch

        gpus = 1.0 if torch.cuda.is_available() else 0.0
    embedder = EmbedderDeployment.options(
        num_replicas=settings.embedder_replicas,
        ray_actor_options={"num_cpus": settings.embedder_num_cpus, "num_gpus": gpus},
        logging_config=INTERNAL_LOGGING,
    ).bind(settings)
    store = StoreDeployment.options(ray_actor_options={"num_cpus": 0}, logging_config=INTERNAL_LOGGING).bind(
        settings, model_id, dim, structure_dim
    )
    return Gateway.options(num_replicas=settings.gateway_replicas, ray_actor_options={"num_cpus": 0}).bind(
        embedder, store, settings, model_id, dim, structure_dim
    )
