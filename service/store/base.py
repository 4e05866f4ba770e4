"""The store interface: one small API over two real Qdrant engines (embedded and server).

Both engines keep one collection per model id with two named Euclidean vectors per point
(``crystal``, ``xrd``) and the payload of :class:`~matconcept.service.store.records.MaterialPayload`.
Filters are translated by :func:`build_filter` from the same :class:`SearchFilters` for both, so
the engines answer the same questions the same way.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal, NamedTuple

import numpy as np

from matconcept.service.store.hybrid import HYBRID_NOTIONS, HybridOptions, rrf_fuse, zscore_fuse
from matconcept.service.store.payload import point_id_for
from matconcept.service.store.peaks import FINGERPRINT, FINGERPRINT_DIM, PEAK_FIELDS, peaks_for
from matconcept.service.store.records import (
    PAYLOAD_VERSION,
    STRUCTURE_VECTOR,
    VECTOR_NAMES,
    Hit,
    MaterialPayload,
    MaterialRecord,
    PointIn,
    SearchFilters,
)
from matconcept.service.store.structures import STRUCTURE_FIELDS, StoredStructure

VectorName = Literal["crystal", "xrd", "structure"]

KEYWORD_INDEXES: tuple[str, ...] = ("material_id", "source", "formula", "elements")
"""Payload fields matched by value (filters, get by id); indexed as keywords."""
SCROLL_PAGE = 1024
"""Points per scroll request."""
INTEGER_INDEXES: tuple[str, ...] = ("spacegroup_number", "n_sites", "n_elements")
"""Payload fields matched by value or range; indexed as integers."""


FILTERED_HNSW_EF = 512
"""Candidates per HNSW query with a broad filter: the graph walk skips points the filter rejects,
so a filtered top-50 needs a wider beam than an unfiltered one (at 100k, element filters: recall@50
0.95-0.98 with 128, 0.994-0.998 with 512; benchmarks/bench_search.py)."""
EXACT_FILTER_MAX = 10_000
"""A filter matching at most this many points is answered by an exact scan of those points (through
the payload index): exact recall, and at 1024-d about as fast as the filtered graph walk."""
ACORN_MAX_SELECTIVITY = 0.5
"""Filters passing at most this share of the points walk the graph with ACORN (neighbours of
rejected neighbours are explored too): a range filter such as ``max_sites`` gets no help from the
payload-aware links Qdrant builds for matched values: 0.98 or 0.998 with a plain beam of 512 in two
builds of the same 100k points, 0.999 with ACORN."""
QUANTIZATION_QUANTILE = 0.99
"""Share of each dimension's values the int8 range of scalar quantization spans (outliers clipped)."""
QUANTIZATION_OVERSAMPLING = 2.0
"""With int8 scalar quantization, candidates fetched per wanted hit before rescoring on the originals."""


class SearchPlan(NamedTuple):
    """How one query is answered: an exact scan, or the graph with this beam (``None``: the
    unfiltered default) and ACORN for selective filters."""

    exact: bool
    hnsw_ef: int | None = None
    acorn: bool = False


def filtered_plan(filters: SearchFilters | None, exact: bool | None, matches: Callable[[], int]) -> SearchPlan:
    """How to answer a query; one rule for both engines.

    ``exact`` as asked wins; otherwise a filter matching few points (``matches()``, the engine's
    count estimate, only asked for a filtered query) is scanned exactly, and a broad one walks the
    graph with :data:`FILTERED_HNSW_EF` and ACORN (which the engine applies only below
    :data:`ACORN_MAX_SELECTIVITY`).
    """
    if exact is not None:
        return SearchPlan(bool(exact))
    if filters is None or filters.is_empty():
        return SearchPlan(False)
    if matches() <= EXACT_FILTER_MAX:
        return SearchPlan(True)
    return SearchPlan(False, FILTERED_HNSW_EF, acorn=True)


class StoreError(RuntimeError):
    """The store cannot do what was asked (wrong model, bad snapshot, engine failure)."""


class StoreLockedError(StoreError):
    """The embedded store directory is owned by another process."""


@functools.cache
def all_elements() -> frozenset[str]:
    """Every element symbol pymatgen knows (what a stored ``elements`` list can hold)."""
    from pymatgen.core.periodic_table import Element

    return frozenset(e.symbol for e in Element)


def build_filter(filters: SearchFilters | None, models: SimpleNamespace) -> Any | None:
    """Translate :class:`SearchFilters` into an engine's ``Filter`` (``None`` when nothing is asked).

    ``models`` names the engine's classes (``Filter``, ``FieldCondition``, ``MatchValue``,
    ``MatchAny``, ``Range``): qdrant-edge and qdrant-client share the shape of these models.
    A chemical system is "contains each element" plus "exactly that many elements".
    """
    if filters is None or filters.is_empty():
        return None
    cond, match, any_of = models.FieldCondition, models.MatchValue, models.MatchAny
    must: list[Any] = []
    must_not: list[Any] = []
    for element in sorted(set(filters.elements_all) | set(filters.chemical_system_elements)):
        must.append(cond(key="elements", match=match(value=element)))
    if filters.chemical_system:
        must.append(cond(key="n_elements", match=match(value=len(filters.chemical_system_elements))))
    if filters.elements_none:
        must_not.append(cond(key="elements", match=any_of(any=list(filters.elements_none))))
    if filters.elements_only:  # no element outside the set: "none of all the others"
        outside = sorted(all_elements() - set(filters.elements_only))
        must_not.append(cond(key="elements", match=any_of(any=outside)))
    if filters.spacegroup_number is not None:
        must.append(cond(key="spacegroup_number", match=match(value=filters.spacegroup_number)))
    if filters.min_sites is not None or filters.max_sites is not None:
        must.append(cond(key="n_sites", range=models.Range(gte=filters.min_sites, lte=filters.max_sites)))
    if filters.sources:
        must.append(cond(key="source", match=any_of(any=list(filters.sources))))
    return models.Filter(must=must or None, must_not=must_not or None)


def check_vector(vector: np.ndarray, dim: int, what: str = "query vector") -> list[float]:
    """A finite 1-D vector of the collection's dimension, as a list for the engine."""
    array = np.asarray(vector, dtype=np.float32).reshape(-1)
    if array.size != dim:
        raise ValueError(f"{what} has {array.size} dimensions, the store holds {dim}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} holds NaN or infinite values")
    return array.tolist()


def check_using(using: str) -> str:
    if using not in (*VECTOR_NAMES, STRUCTURE_VECTOR, FINGERPRINT):
        raise ValueError(f"using must be one of {(*VECTOR_NAMES, STRUCTURE_VECTOR)}, got {using!r}")
    return using


def vector_sizes(dim: int, structure_dim: int | None = None) -> dict[str, int]:
    """The named vectors of a new collection and their sizes: the model's two, the structure-type vector
    when the model has that encoder (``structure_dim``), and the fingerprint."""
    structure = {STRUCTURE_VECTOR: int(structure_dim)} if structure_dim else {}
    return {**dict.fromkeys(VECTOR_NAMES, dim), **structure, FINGERPRINT: FINGERPRINT_DIM}


def point_vectors(point: PointIn, sizes: dict[str, int]) -> dict[str, list[float]]:
    """A point's vectors for the engine: both model vectors, the structure-type vector and the fingerprint
    where the collection has them (collections made before them do not) and the point carries them."""
    mid = point.payload.material_id
    vectors = {name: check_vector(getattr(point, name), sizes[name], f"{mid} {name} vector") for name in VECTOR_NAMES}
    if STRUCTURE_VECTOR in sizes and point.structure_type is not None:
        vectors[STRUCTURE_VECTOR] = check_vector(
            point.structure_type, sizes[STRUCTURE_VECTOR], f"{mid} structure vector"
        )
    if FINGERPRINT in sizes and point.phase is not None:
        vectors[FINGERPRINT] = check_vector(point.phase.fingerprint, sizes[FINGERPRINT], f"{mid} fingerprint")
    return vectors


class VectorStore(ABC):
    """Materials with two vectors each, in one collection per model id.

    Attributes:
        model_id: The model whose vectors this collection holds.
        dim: Vector dimension (the model's embedding size).
        engine: ``"qdrant-edge"`` (embedded, on disk) or ``"qdrant-server"``.
    """

    model_id: str
    dim: int
    engine: str
    sizes: dict[str, int]
    """The named vectors this collection holds and their sizes (``fingerprint`` only in collections
    made since pattern search keeps one)."""

    def has_vector(self, name: str) -> bool:
        return name in self.sizes

    def hybrid_search(
        self,
        vectors: dict[str, np.ndarray],
        *,
        k: int = 10,
        filters: SearchFilters | None = None,
        exact: bool | None = None,
        options: HybridOptions | None = None,
    ) -> list[Hit]:
        """Top-``k`` of the concept and structure neighbours fused (:mod:`~matconcept.service.store.hybrid`).

        ``vectors`` holds the query's ``crystal`` and ``structure`` vectors. Rank fusion is the engine's
        (prefetch + RRF, :meth:`_rrf_query`); both fusions also read each notion's candidate list, to
        name the notion of every hit (and, for ``zscore``, to score candidates of one list in the other).
        """
        options = options or HybridOptions()
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        for name in HYBRID_NOTIONS:
            if not self.has_vector(name):
                raise StoreError(f"this store keeps no {name} vectors; hybrid search needs both {HYBRID_NOTIONS}")
            if name not in vectors:
                raise ValueError(f"a hybrid search needs the query's {name} vector")
        depth = max(options.depth, k)
        # Candidates are keyed by the engine's point ids, not material ids: reading even one payload field
        # makes qdrant-edge decode the whole payload (kept structure and peak list included), ~22 µs a
        # point, which was most of a hybrid search; only the k fused hits' payloads are read.
        lists = {name: self._candidates(vectors[name], name, depth, filters, exact) for name in HYBRID_NOTIONS}
        if options.fusion == "rrf":
            fused = rrf_fuse(lists, options)
            engine = self._rrf_query(vectors, k, depth, filters, options)
            if engine is not None:  # the engine's order and scores; our labels (same rule, same lists)
                by_key = {f.key: f for f in fused}
                fused = [by_key[key].model_copy(update={"score": s}) for key, s in engine if key in by_key]
        else:
            fused = zscore_fuse(lists, self._distances(lists, vectors), options, limit=k)
        fused = fused[:k]
        records = self._payloads([f.key for f in fused])
        return [
            Hit(
                material_id=records[f.key].material_id,
                distance=f.distance,
                payload=records[f.key],
                notion=f.notion,
                fusion=options.fusion,
                score=f.score,
            )
            for f in fused
            if f.key in records
        ]

    def _candidates(
        self, vector: np.ndarray, name: str, depth: int, filters: SearchFilters | None, exact: bool | None
    ) -> list[tuple[Hashable, float]]:
        """(point id, distance) of one notion's ``depth`` nearest, for fusion (engines skip payloads)."""
        hits = self.search(vector, using=name, k=depth, filters=filters, exact=exact)  # type: ignore[arg-type]
        return [(point_id_for(h.material_id), h.distance) for h in hits]

    def _distances(
        self, lists: dict[str, list[tuple[Hashable, float]]], vectors: dict[str, np.ndarray]
    ) -> dict[str, dict[Hashable, float]]:
        """notion → point id → Euclidean distance of the stored vector to the query's, for every candidate
        of any list: a notion's own candidates keep the distance it returned; the others are computed."""
        out: dict[str, dict[Hashable, float]] = {name: dict(lists[name]) for name in HYBRID_NOTIONS}
        union = list(dict.fromkeys(key for items in lists.values() for key, _ in items))
        for name in HYBRID_NOTIONS:
            missing = [key for key in union if key not in out[name]]
            if missing:
                out[name].update(self._distances_to(missing, name, vectors[name]))
        return out

    def _distances_to(self, point_ids: list[Hashable], name: str, vector: np.ndarray) -> dict[Hashable, float]:
        """point id → Euclidean distance of its stored ``name`` vector to ``vector`` (engines compute it)."""
        out = {}
        query = np.asarray(vector, dtype=np.float64)
        for record in self._retrieve_points(point_ids, False, [name]):
            stored = (record.vector or {}).get(name)
            if stored is not None:
                out[record.id] = float(np.linalg.norm(np.asarray(stored, dtype=np.float64) - query))
        return out

    def _payloads(self, point_ids: list[Hashable]) -> dict[Hashable, MaterialPayload]:
        """point id → stored metadata payload, for the ids that exist."""
        return {
            r.id: MaterialPayload(**r.payload) for r in self._retrieve_points(point_ids, self._metadata_only(), False)
        }

    def _rrf_query(
        self,
        vectors: dict[str, np.ndarray],
        k: int,
        depth: int,
        filters: SearchFilters | None,
        options: HybridOptions,
    ) -> list[tuple[Hashable, float]] | None:
        """(point id, RRF score) of the engine's own fusion (one prefetch per notion), best first;
        None where the engine has no query API for it (then our :func:`rrf_fuse` orders the hits)."""
        return None

    @abstractmethod
    def upsert(self, points: list[PointIn]) -> None:
        """Insert or replace points (payload and both vectors in one operation)."""

    @abstractmethod
    def write_raw(self, points: list[tuple[str, dict[str, list[float]], dict[str, Any]]]) -> None:
        """Write (material id, vectors, engine payload) as given: how ``ingest --reembed`` replaces a point's
        vectors and keeps its payload exactly as read."""

    def scroll_raw(self, page: int = SCROLL_PAGE) -> Iterator[list[tuple[dict[str, Any], dict[str, list[float]]]]]:
        """Every stored point as (whole engine payload, every vector), a page at a time."""
        offset = None
        while True:
            records, offset = self._scroll_page(offset, page, True, True)  # type: ignore[arg-type]
            if records:
                yield [(dict(r.payload), dict(r.vector or {})) for r in records]
            if offset is None:
                return

    @abstractmethod
    def search(
        self,
        vector: np.ndarray,
        *,
        using: VectorName = "crystal",
        k: int = 10,
        filters: SearchFilters | None = None,
        exact: bool | None = None,
    ) -> list[Hit]:
        """Top-``k`` Euclidean neighbours of ``vector`` among the ``using`` vectors, nearest first.

        ``exact=None`` lets the store choose: HNSW where built, a full scan elsewhere, and for a
        filtered query the plan of :func:`filtered_plan` (exact for few matches, a wider beam else).
        """

    def _retrieve(self, material_ids: list[str], with_payload: Any, with_vectors: Any) -> list[Any]:
        """The engine's point records (``.id``, ``.payload``, ``.vector``) for these material ids.

        ``with_payload``: a bool, a list of fields, or the engine's selector (:meth:`_metadata_only`).
        """
        return self._retrieve_points([point_id_for(m) for m in material_ids], with_payload, with_vectors)

    @abstractmethod
    def _retrieve_points(self, point_ids: list[Hashable], with_payload: Any, with_vectors: Any) -> list[Any]:
        """:meth:`_retrieve` by the engine's point ids (UUID strings, or the UUID objects the embedded engine
        returns, which it takes back as they are); ``with_vectors``: a bool or the names to read."""

    @abstractmethod
    def _metadata_only(self) -> Any:
        """The engine's payload selector of everything but the structure fields (``STRUCTURE_FIELDS``):
        what searches, gets and scrolls read, so a kept structure costs them nothing."""

    def get(self, material_ids: list[str], with_vectors: bool = False) -> list[MaterialRecord]:
        """Stored materials by id, in the order asked; unknown ids are simply absent."""
        found = {}
        for r in self._retrieve(material_ids, self._metadata_only(), with_vectors):
            vectors = {k: list(map(float, v)) for k, v in r.vector.items()} if with_vectors and r.vector else None
            found[r.payload["material_id"]] = MaterialRecord(
                material_id=r.payload["material_id"], payload=MaterialPayload(**r.payload), vectors=vectors
            )
        return [found[m] for m in dict.fromkeys(material_ids) if m in found]

    def get_peaks(self, material_ids: list[str]) -> dict[str, Any]:
        """material id → its peak list (:class:`~matconcept.encoders.xrd.peaks.PeakList`) for the stored
        ids: kept in the payload, or, for a point stored before peak lists were kept, simulated from
        its stored structure; None where neither exists."""
        fields = ["material_id", *PEAK_FIELDS]
        records = self._retrieve(material_ids, fields, False)
        out = {r.payload["material_id"]: peaks_for(r.payload, None) for r in records}
        older = [m for m, peaks in out.items() if peaks is None]
        if older:
            for m, stored in self.get_structures(older).items():
                structure = stored.pymatgen() if stored is not None else None
                out[m] = peaks_for({}, structure) if structure is not None else None
        return out

    def get_structures(self, material_ids: list[str]) -> dict[str, StoredStructure | None]:
        """material id → its stored structure, for the stored ids (None for a point stored before
        structures were kept); the only read of the structure fields."""
        records = self._retrieve(material_ids, ["material_id", *STRUCTURE_FIELDS], False)
        return {r.payload["material_id"]: StoredStructure.from_payload(r.payload) for r in records}

    @abstractmethod
    def delete(self, material_ids: list[str]) -> int:
        """Delete materials by id; returns how many existed."""

    @abstractmethod
    def count(self, filters: SearchFilters | None = None) -> int:
        """Number of stored materials matching ``filters`` (all when None)."""

    def content_hashes(self, material_ids: list[str]) -> dict[str, str]:
        """material id → stored content hash, for the ids that are stored.

        A point of an older :data:`~matconcept.service.store.records.PAYLOAD_VERSION` answers ``""``,
        which equals no real hash, so ingest and upserts rewrite it (same id, same content, counted as
        updated) with everything a point now carries.
        """
        records = self._retrieve(material_ids, ["material_id", "content_hash", "payload_version"], False)
        return {
            r.payload["material_id"]: r.payload["content_hash"]
            if r.payload.get("payload_version", 0) >= PAYLOAD_VERSION
            else ""
            for r in records
        }

    @abstractmethod
    def snapshot(self, path: str | Path) -> Path:
        """Write the collection to one file at ``path`` and return it."""

    @abstractmethod
    def restore(self, path: str | Path) -> None:
        """Replace the collection's content with a snapshot written by :meth:`snapshot`."""

    @abstractmethod
    def optimize(self) -> None:
        """Build the HNSW index (blocking; minutes per 100k points)."""

    @abstractmethod
    def close(self) -> None:
        """Release the engine (and, for the embedded store, its directory lock)."""

    @abstractmethod
    def _scroll_page(self, offset: Any, limit: int, fields: list[str], using: list[str]) -> tuple[list[Any], Any]:
        """One page of point records (``.payload`` with ``fields``, ``.vector`` with ``using``) and the next offset."""

    def scroll(
        self, fields: list[str], using: VectorName | None = None, page: int = SCROLL_PAGE
    ) -> Iterator[tuple[list[dict[str, Any]], np.ndarray | None]]:
        """Every stored point, a page at a time: (payloads with ``fields``, (n, dim) float32 vectors or None).

        The materials map reads the whole collection this way; ``material_id`` is always included.
        """
        fields = list(dict.fromkeys(["material_id", *fields]))
        names = [check_using(using)] if using else []
        offset = None
        while True:
            records, offset = self._scroll_page(offset, page, fields, names)
            if records:
                payloads = [dict(r.payload) for r in records]
                vectors = np.asarray([r.vector[using] for r in records], dtype=np.float32) if using else None
                yield payloads, vectors
            if offset is None:
                return

    def iter_ids(self) -> list[str]:
        """Every stored material id (for tests, audits and small collections)."""
        return [p["material_id"] for payloads, _ in self.scroll([]) for p in payloads]

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
