"""A small typed Python client of the gRPC API, for other tools and ``matconcept search --remote``.

::

    from matconcept.service.client import MatconceptClient

    with MatconceptClient("localhost:9000") as client:
        result = client.search(structure=Path("BaTiO3.cif"), top_k=5, filters={"elements_none": ["Pb"]})
        for hit in result.hits:
            print(hit.material_id, hit.payload.formula, hit.distance)

Results are the service's pydantic models (:mod:`matconcept.service.app.schemas`,
:mod:`matconcept.service.store.records`).
A refused request raises :class:`MatconceptError` with the gRPC status code and the server's message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc

from matconcept.service.app import convert
from matconcept.service.app.phase_search import PatternSearchOptions
from matconcept.service.app.rpc import matconcept_pb2 as pb
from matconcept.service.app.rpc import matconcept_pb2_grpc as pb_grpc
from matconcept.service.app.schemas import (
    DeleteQuery,
    DeleteResult,
    EmbedQuery,
    EmbedResult,
    GetQuery,
    GetResult,
    PatternIn,
    SearchQuery,
    SearchResult,
    StatsResult,
    StructureIn,
    UpsertItem,
    UpsertQuery,
    UpsertResult,
)
from matconcept.service.app.settings import APP_NAME
from matconcept.service.store.hybrid import HybridOptions
from matconcept.service.store.records import MaterialRecord
from matconcept.service.store.structures import StructureFile, StructureFormatOut

MAX_MESSAGE_BYTES = 64 << 20
"""Client-side message cap; the server enforces its own (16 MiB by default)."""

StructureLike = str | bytes | Path | StructureIn
PatternLike = tuple[list[float], list[float]] | Path | PatternIn


class MatconceptError(RuntimeError):
    """The service refused a request: ``code`` (a ``grpc.StatusCode``) and the server's message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


def to_structure(value: StructureLike, name: str | None = None) -> StructureIn:
    """A path, CIF text or bytes → :class:`StructureIn` (a path's file name names it)."""
    if isinstance(value, StructureIn):
        return value
    if isinstance(value, Path):
        return StructureIn(content=value.read_bytes(), name=name or value.name)
    return StructureIn(content=value, name=name or "structure")


def to_pattern(value: PatternLike) -> PatternIn:
    """``(two_theta, intensity)`` or a file (.xy/.xye/.csv/.txt/.dat columns, or .xrdml) → :class:`PatternIn`."""
    if isinstance(value, PatternIn):
        return value
    if isinstance(value, Path):
        from matconcept.encoders.xrd import read_pattern

        read = read_pattern(value)
        return PatternIn(two_theta=list(map(float, read.two_theta)), intensity=list(map(float, read.intensity)))
    two_theta, intensity = value
    return PatternIn(two_theta=list(map(float, two_theta)), intensity=list(map(float, intensity)))


def _stated_wavelength(value: PatternLike) -> float | None:
    """The wavelength a pattern file states (.xrdml does), else None."""
    if isinstance(value, Path):
        from matconcept.encoders.xrd import read_pattern

        return read_pattern(value).wavelength
    return None


class MatconceptClient:
    """Blocking client of ``matconcept.v1.Matconcept`` (thread-safe: one channel, many threads).

    Args:
        target: ``host:port`` of the service's gRPC ingress.
        api_key: Sent as ``authorization: Bearer <key>`` (needed for Upsert/Delete).
        application: Serve application name, sent as metadata (needed when several apps run).
        timeout: Seconds per call.
    """

    def __init__(
        self, target: str, *, api_key: str | None = None, application: str = APP_NAME, timeout: float = 60.0
    ) -> None:
        options = [
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ]
        self.channel = grpc.insecure_channel(target, options=options)
        self.stub = pb_grpc.MatconceptStub(self.channel)
        self.metadata = [("application", application)]
        if api_key:
            self.metadata.append(("authorization", f"Bearer {api_key}"))
        self.timeout = timeout

    def _call(self, method: str, request: Any):
        try:
            return getattr(self.stub, method)(request, metadata=self.metadata, timeout=self.timeout)
        except grpc.RpcError as exc:
            raise MatconceptError(exc.code(), exc.details() or "") from None

    def embed(self, structure: StructureLike | None = None, *, pattern: PatternLike | None = None) -> EmbedResult:
        query = EmbedQuery(
            structure=to_structure(structure) if structure is not None else None,
            pattern=to_pattern(pattern) if pattern is not None else None,
        )
        return convert.embed_result_from_pb(self._call("Embed", convert.embed_query_to_pb(query)))

    def search(
        self,
        structure: StructureLike | None = None,
        *,
        pattern: PatternLike | None = None,
        material_id: str | None = None,
        vector: list[float] | None = None,
        top_k: int = 10,
        filters: Any = None,
        using: str | None = None,
        exact: bool = False,
        wavelength: str | float | None = None,
        pattern_options: PatternSearchOptions | dict | None = None,
        hybrid: HybridOptions | dict | None = None,
    ) -> SearchResult:
        """Nearest stored materials to exactly one of a structure, a pattern, a stored id or a vector.

        A pattern is identified in two stages (candidates re-ranked by search-match): hits carry
        ``match`` (score, fitted strain and shift) and the result ``phases``. ``wavelength`` (Å or an
        anode: "Mo", "Co Ka1"…; Cu Kα by default, or the one an .xrdml file states) and
        ``pattern_options`` (:class:`~matconcept.service.app.phase_search.PatternSearchOptions`, e.g.
        ``{"rerank": False}`` for the embedding alone) apply to a pattern only.

        ``using``: ``crystal`` (the concept), ``structure`` (the structure type, any chemistry), ``xrd``,
        or ``hybrid`` (concept and structure neighbours fused; ``hybrid``:
        :class:`~matconcept.service.store.hybrid.HybridOptions`, e.g. ``{"fusion": "zscore"}``). None: the
        measured best for the query, ``hybrid`` for a structure or a stored id where the model has the
        structure-type encoder, else ``crystal``; the result's ``using`` names it. Each hit says which
        notion (``notion``) and which fusion (``fusion``, ``score``) produced it.
        """
        options = None
        if pattern is not None:
            options = PatternSearchOptions.model_validate(pattern_options or {})
            stated = wavelength if wavelength is not None else _stated_wavelength(pattern)
            if stated is not None and options.wavelength is None:
                options = options.model_copy(update={"wavelength": str(stated)})
        query = SearchQuery(
            structure=to_structure(structure) if structure is not None else None,
            pattern=to_pattern(pattern) if pattern is not None else None,
            material_id=material_id,
            vector=[float(v) for v in vector] if vector is not None else None,
            top_k=top_k,
            filters=filters,
            using=using,
            exact=exact,
            pattern_options=options,
            hybrid=HybridOptions.model_validate(hybrid) if hybrid is not None else None,
        )
        return convert.search_result_from_pb(self._call("Search", convert.search_query_to_pb(query)))

    def upsert(self, items: list[UpsertItem | StructureLike], *, source: str = "user") -> UpsertResult:
        """Store structures (paths, texts or :class:`UpsertItem`); one status per item."""
        items = [
            i if isinstance(i, UpsertItem) else UpsertItem(structure=to_structure(i), source=source) for i in items
        ]
        query = UpsertQuery(items=items)
        return convert.upsert_result_from_pb(self._call("Upsert", convert.upsert_query_to_pb(query)))

    def get(self, material_ids: list[str], *, with_vectors: bool = False) -> GetResult:
        query = GetQuery(material_ids=material_ids, with_vectors=with_vectors)
        return convert.get_result_from_pb(self._call("Get", convert.get_query_to_pb(query)))

    def get_one(self, material_id: str, *, with_vectors: bool = False) -> MaterialRecord:
        return self.get([material_id], with_vectors=with_vectors).materials[0]

    def get_structure(self, material_id: str, format: StructureFormatOut = "cif") -> StructureFile:
        """A stored material's structure as a file (``.content``, ``.filename``, ``.media_type``):
        ``cif``, ``json`` (pymatgen), ``poscar``, or ``original`` (the file it was stored from)."""
        query = GetQuery(material_ids=[material_id], structure_format=format)
        record = convert.get_result_from_pb(self._call("Get", convert.get_query_to_pb(query))).materials[0]
        if record.structure is None:  # a server from before structures were kept ignores the field
            raise MatconceptError(grpc.StatusCode.UNIMPLEMENTED, "the service does not return structures")
        return record.structure

    def delete(self, material_ids: list[str]) -> DeleteResult:
        query = DeleteQuery(material_ids=material_ids)
        return convert.delete_result_from_pb(self._call("Delete", convert.delete_query_to_pb(query)))

    def stats(self) -> StatsResult:
        return convert.stats_result_from_pb(self._call("Stats", pb.StatsRequest()))

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> MatconceptClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
