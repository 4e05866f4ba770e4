"""Protobuf ↔ pydantic conversion for the gRPC API: one function per type, both directions.

Used by the gRPC ingress (requests in, results out) and by :mod:`matconcept.service.client` (requests out,
results in), so both sides agree on every field by construction. Unset proto3 scalars mean
"default" (``top_k`` 0 → 10, an empty ``source`` → ``user``); ``optional`` fields carry presence.
"""

from __future__ import annotations

from matconcept.service.app.phase_search import PatternSearchOptions, PatternSummary, Phase
from matconcept.service.app.rpc import matconcept_pb2 as pb
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
    StructureSummary,
    UpsertItem,
    UpsertItemResult,
    UpsertQuery,
    UpsertResult,
)
from matconcept.service.store.hybrid import HybridOptions
from matconcept.service.store.peaks import PatternMatch
from matconcept.service.store.records import Hit, MaterialPayload, MaterialRecord, SearchFilters
from matconcept.service.store.structures import StructureFile

DEFAULT_TOP_K = 10
_SPACES = {
    "crystal": pb.VECTOR_SPACE_CRYSTAL,
    "xrd": pb.VECTOR_SPACE_XRD,
    "structure": pb.VECTOR_SPACE_STRUCTURE,
    "hybrid": pb.VECTOR_SPACE_HYBRID,
}
_SPACE_NAMES = {pb.VECTOR_SPACE_UNSPECIFIED: "crystal", **{v: k for k, v in _SPACES.items()}}
_FUSIONS = {"rrf": pb.FUSION_RRF, "zscore": pb.FUSION_ZSCORE}
_FUSION_NAMES = {v: k for k, v in _FUSIONS.items()}
_HYBRID_OPTIONAL = ("structure_weight", "depth", "rrf_k")
"""HybridOptions fields that are ``optional`` in the proto: unset means the default."""
_UPSERT_STATUS = {
    "added": pb.UPSERT_STATUS_ADDED,
    "updated": pb.UPSERT_STATUS_UPDATED,
    "unchanged": pb.UPSERT_STATUS_UNCHANGED,
    "failed": pb.UPSERT_STATUS_FAILED,
}
_UPSERT_NAMES = {v: k for k, v in _UPSERT_STATUS.items()}


def _opt(message, name: str):
    return getattr(message, name) if message.HasField(name) else None


# -- structures and patterns ----------------------------------------------------------------------
def structure_from_pb(m: pb.StructureInput, default_name: str = "structure") -> StructureIn:
    kind = m.WhichOneof("content")
    content: str | bytes = m.text if kind == "text" else m.data if kind == "data" else ""
    return StructureIn(content=content, name=m.name or default_name, format=m.format or None)


def structure_to_pb(s: StructureIn) -> pb.StructureInput:
    m = pb.StructureInput(name=s.name, format=s.format or "")
    if isinstance(s.content, bytes):
        m.data = s.content
    else:
        m.text = s.content
    return m


def pattern_from_pb(m: pb.XrdPattern) -> PatternIn:
    return PatternIn(two_theta=list(m.two_theta), intensity=list(m.intensity))


def pattern_to_pb(p: PatternIn) -> pb.XrdPattern:
    return pb.XrdPattern(two_theta=p.two_theta, intensity=p.intensity)


def summary_from_pb(m: pb.StructureSummary) -> StructureSummary:
    return StructureSummary(
        formula=m.formula,
        n_sites=m.n_sites,
        spacegroup_number=m.spacegroup_number or None,
        spacegroup_symbol=m.spacegroup_symbol or None,
        disordered=m.disordered,
    )


def summary_to_pb(s: StructureSummary) -> pb.StructureSummary:
    return pb.StructureSummary(
        formula=s.formula,
        n_sites=s.n_sites,
        spacegroup_number=s.spacegroup_number or 0,
        spacegroup_symbol=s.spacegroup_symbol or "",
        disordered=s.disordered,
    )


# -- filters, payloads, hits ----------------------------------------------------------------------
def filters_from_pb(m: pb.Filters) -> SearchFilters | None:
    values = {
        "elements_all": list(m.elements_all),
        "elements_none": list(m.elements_none),
        "elements_only": list(m.elements_only),
        "chemical_system": m.chemical_system or None,
        "spacegroup_number": _opt(m, "spacegroup_number"),
        "min_sites": _opt(m, "min_sites"),
        "max_sites": _opt(m, "max_sites"),
        "sources": list(m.sources),
    }
    filters = SearchFilters(**values)
    return None if filters.is_empty() else filters


def filters_to_pb(f: SearchFilters | None) -> pb.Filters:
    if f is None:
        return pb.Filters()
    m = pb.Filters(
        elements_all=f.elements_all,
        elements_none=f.elements_none,
        elements_only=f.elements_only,
        chemical_system=f.chemical_system or "",
        sources=f.sources,
    )
    for name in ("spacegroup_number", "min_sites", "max_sites"):
        if getattr(f, name) is not None:
            setattr(m, name, getattr(f, name))
    return m


_OPTIONAL_PAYLOAD = (
    "spacegroup_number",
    "spacegroup_symbol",
    "crystal_system",
    "cod_id",
    "doi",
    "journal",
    "year",
    "title",
    "mineral",
)
_PLAIN_PAYLOAD = (
    "material_id",
    "source",
    "source_id",
    "formula",
    "n_elements",
    "n_sites",
    "density",
    "volume",
    "disordered",
    "content_hash",
    "ingested_at",
    "payload_version",
)


def payload_to_pb(p: MaterialPayload) -> pb.Material:
    m = pb.Material(elements=p.elements, tags=p.tags, **{k: getattr(p, k) for k in _PLAIN_PAYLOAD})
    for name in _OPTIONAL_PAYLOAD:
        if getattr(p, name) is not None:
            setattr(m, name, getattr(p, name))
    return m


def payload_from_pb(m: pb.Material) -> MaterialPayload:
    values = {k: getattr(m, k) for k in _PLAIN_PAYLOAD}
    values.update({k: _opt(m, k) for k in _OPTIONAL_PAYLOAD})
    return MaterialPayload(elements=list(m.elements), tags=dict(m.tags), **values)


def hit_to_pb(h: Hit) -> pb.Hit:
    m = pb.Hit(
        material_id=h.material_id,
        formula=h.payload.formula,
        spacegroup_number=h.payload.spacegroup_number or 0,
        spacegroup_symbol=h.payload.spacegroup_symbol or "",
        distance=h.distance,
        payload=payload_to_pb(h.payload),
    )
    if h.match is not None:
        m.match.CopyFrom(pb.PatternMatch(**h.match.model_dump()))
    if h.notion is not None:
        m.notion = _SPACES[h.notion]
    if h.fusion is not None:
        m.fusion = _FUSIONS[h.fusion]
    if h.score is not None:
        m.score = h.score
    return m


def hit_from_pb(m: pb.Hit) -> Hit:
    match = None
    if m.HasField("match"):
        match = PatternMatch(score=m.match.score, strain=m.match.strain, shift=m.match.shift)
    return Hit(
        material_id=m.material_id,
        distance=m.distance,
        payload=payload_from_pb(m.payload),
        match=match,
        notion=_SPACE_NAMES[m.notion] if m.notion != pb.VECTOR_SPACE_UNSPECIFIED else None,
        fusion=_FUSION_NAMES.get(m.fusion),
        score=m.score if m.HasField("score") else None,
    )


def hybrid_options_from_pb(m: pb.HybridOptions) -> HybridOptions:
    values: dict = {name: getattr(m, name) for name in _HYBRID_OPTIONAL if m.HasField(name)}
    if m.fusion != pb.FUSION_UNSPECIFIED:
        values["fusion"] = _FUSION_NAMES[m.fusion]
    return HybridOptions(**values)


def hybrid_options_to_pb(o: HybridOptions) -> pb.HybridOptions:
    m = pb.HybridOptions(fusion=_FUSIONS[o.fusion])
    for name in _HYBRID_OPTIONAL:
        if name in o.model_fields_set:
            setattr(m, name, getattr(o, name))
    return m


_PATTERN_OPTIONAL = ("rerank", "depth", "max_strain", "max_shift", "fwhm", "max_phases")
"""PatternOptions fields that are ``optional`` in the proto: unset means the service's default."""


def pattern_options_from_pb(m: pb.PatternOptions) -> PatternSearchOptions:
    values: dict = {name: getattr(m, name) for name in _PATTERN_OPTIONAL if m.HasField(name)}
    return PatternSearchOptions(wavelength=m.wavelength or None, **values)


def pattern_options_to_pb(o: PatternSearchOptions) -> pb.PatternOptions:
    m = pb.PatternOptions(wavelength=o.wavelength or "")
    for name in _PATTERN_OPTIONAL:
        if name in o.model_fields_set and getattr(o, name) is not None:
            setattr(m, name, getattr(o, name))
    return m


def structure_file_to_pb(f: StructureFile) -> pb.StructureFile:
    return pb.StructureFile(**f.model_dump())


def structure_file_from_pb(m: pb.StructureFile) -> StructureFile:
    return StructureFile(content=m.content, format=m.format, filename=m.filename, media_type=m.media_type)


def record_to_pb(r: MaterialRecord) -> pb.MaterialRecord:
    vectors = r.vectors or {}
    m = pb.MaterialRecord(
        material=payload_to_pb(r.payload),
        crystal=vectors.get("crystal", []),
        xrd=vectors.get("xrd", []),
        structure_vector=vectors.get("structure", []),
    )
    if r.structure is not None:
        m.structure.CopyFrom(structure_file_to_pb(r.structure))
    return m


def record_from_pb(m: pb.MaterialRecord) -> MaterialRecord:
    vectors = {"crystal": list(m.crystal), "xrd": list(m.xrd)} if len(m.crystal) or len(m.xrd) else None
    if vectors is not None and len(m.structure_vector):
        vectors["structure"] = list(m.structure_vector)
    structure = structure_file_from_pb(m.structure) if m.HasField("structure") else None
    return MaterialRecord(
        material_id=m.material.material_id, payload=payload_from_pb(m.material), vectors=vectors, structure=structure
    )


# -- requests -------------------------------------------------------------------------------------
def embed_query_from_pb(m: pb.EmbedRequest) -> EmbedQuery:
    kind = m.WhichOneof("input")
    return EmbedQuery(
        structure=structure_from_pb(m.structure) if kind == "structure" else None,
        pattern=pattern_from_pb(m.pattern) if kind == "pattern" else None,
    )


def embed_query_to_pb(q: EmbedQuery) -> pb.EmbedRequest:
    if q.structure is not None:
        return pb.EmbedRequest(structure=structure_to_pb(q.structure))
    return pb.EmbedRequest(pattern=pattern_to_pb(q.pattern))


def search_query_from_pb(m: pb.SearchRequest) -> SearchQuery:
    kind = m.WhichOneof("query")
    return SearchQuery(
        structure=structure_from_pb(m.structure) if kind == "structure" else None,
        pattern=pattern_from_pb(m.pattern) if kind == "pattern" else None,
        material_id=m.material_id if kind == "material_id" else None,
        vector=list(m.vector.values) if kind == "vector" else None,
        top_k=m.top_k or DEFAULT_TOP_K,
        filters=filters_from_pb(m.filters) if m.HasField("filters") else None,
        using=None if m.using == pb.VECTOR_SPACE_UNSPECIFIED else _SPACE_NAMES.get(m.using),  # unset: the default
        exact=m.exact,
        pattern_options=pattern_options_from_pb(m.pattern_options) if m.HasField("pattern_options") else None,
        hybrid=hybrid_options_from_pb(m.hybrid) if m.HasField("hybrid") else None,
    )


def search_query_to_pb(q: SearchQuery) -> pb.SearchRequest:
    using = pb.VECTOR_SPACE_UNSPECIFIED if q.using is None else _SPACES[q.using]
    m = pb.SearchRequest(top_k=q.top_k, using=using, exact=q.exact)
    if q.structure is not None:
        m.structure.CopyFrom(structure_to_pb(q.structure))
    elif q.pattern is not None:
        m.pattern.CopyFrom(pattern_to_pb(q.pattern))
    elif q.material_id is not None:
        m.material_id = q.material_id
    else:
        m.vector.values.extend(q.vector or [])
    if q.filters is not None:
        m.filters.CopyFrom(filters_to_pb(q.filters))
    if q.pattern_options is not None:
        m.pattern_options.CopyFrom(pattern_options_to_pb(q.pattern_options))
    if q.hybrid is not None:
        m.hybrid.CopyFrom(hybrid_options_to_pb(q.hybrid))
    return m


def upsert_query_from_pb(m: pb.UpsertRequest) -> UpsertQuery:
    return UpsertQuery(
        items=[
            UpsertItem(
                structure=structure_from_pb(item.structure, f"items[{i}]"),
                source=item.source or "user",
                source_id=item.source_id or None,
                tags=dict(item.tags),
            )
            for i, item in enumerate(m.items)
        ]
    )


def upsert_query_to_pb(q: UpsertQuery) -> pb.UpsertRequest:
    return pb.UpsertRequest(
        items=[
            pb.UpsertItem(
                structure=structure_to_pb(i.structure), source=i.source, source_id=i.source_id or "", tags=i.tags
            )
            for i in q.items
        ]
    )


def get_query_from_pb(m: pb.GetRequest) -> GetQuery:
    return GetQuery(
        material_ids=list(m.material_ids), with_vectors=m.with_vectors, structure_format=m.structure_format or None
    )


def get_query_to_pb(q: GetQuery) -> pb.GetRequest:
    return pb.GetRequest(
        material_ids=q.material_ids, with_vectors=q.with_vectors, structure_format=q.structure_format or ""
    )


def delete_query_from_pb(m: pb.DeleteRequest) -> DeleteQuery:
    return DeleteQuery(material_ids=list(m.material_ids))


def delete_query_to_pb(q: DeleteQuery) -> pb.DeleteRequest:
    return pb.DeleteRequest(material_ids=q.material_ids)


# -- results --------------------------------------------------------------------------------------
def embed_result_to_pb(r: EmbedResult) -> pb.EmbedResponse:
    m = pb.EmbedResponse(
        model_id=r.model_id, crystal=r.crystal or [], xrd=r.xrd, structure_vector=r.structure_vector or []
    )
    if r.structure is not None:
        m.structure.CopyFrom(summary_to_pb(r.structure))
    return m


def embed_result_from_pb(m: pb.EmbedResponse) -> EmbedResult:
    return EmbedResult(
        model_id=m.model_id,
        crystal=list(m.crystal) if len(m.crystal) else None,
        xrd=list(m.xrd),
        structure=summary_from_pb(m.structure) if m.HasField("structure") else None,
        structure_vector=list(m.structure_vector) if len(m.structure_vector) else None,
    )


def search_result_to_pb(r: SearchResult) -> pb.SearchResponse:
    m = pb.SearchResponse(model_id=r.model_id, using=_SPACES[r.using], hits=[hit_to_pb(h) for h in r.hits])
    if r.query_structure is not None:
        m.query_structure.CopyFrom(summary_to_pb(r.query_structure))
    m.phases.extend(pb.Phase(**p.model_dump()) for p in r.phases)
    if r.pattern is not None:
        m.pattern.CopyFrom(pb.PatternSummary(**r.pattern.model_dump(exclude_none=True)))
    return m


def search_result_from_pb(m: pb.SearchResponse) -> SearchResult:
    return SearchResult(
        model_id=m.model_id,
        using=_SPACE_NAMES.get(m.using, "crystal"),
        hits=[hit_from_pb(h) for h in m.hits],
        query_structure=summary_from_pb(m.query_structure) if m.HasField("query_structure") else None,
        phases=[
            Phase(material_id=p.material_id, score=p.score, strain=p.strain, shift=p.shift, weight=p.weight)
            for p in m.phases
        ],
        pattern=PatternSummary(
            fwhm=m.pattern.fwhm,
            fwhm_estimated=m.pattern.fwhm_estimated,
            residual=m.pattern.residual if m.pattern.HasField("residual") else None,
            candidates=m.pattern.candidates,
        )
        if m.HasField("pattern")
        else None,
    )


def upsert_result_to_pb(r: UpsertResult) -> pb.UpsertResponse:
    return pb.UpsertResponse(
        results=[
            pb.UpsertResult(
                index=i.index,
                material_id=i.material_id,
                status=_UPSERT_STATUS[i.status],
                reason=i.reason,
                message=i.message,
            )
            for i in r.results
        ],
        stored=r.stored,
        failed=r.failed,
    )


def upsert_result_from_pb(m: pb.UpsertResponse) -> UpsertResult:
    return UpsertResult(
        results=[
            UpsertItemResult(
                index=i.index,
                material_id=i.material_id,
                status=_UPSERT_NAMES.get(i.status, "failed"),
                reason=i.reason,
                message=i.message,
            )
            for i in m.results
        ],
        stored=m.stored,
        failed=m.failed,
    )


def get_result_to_pb(r: GetResult) -> pb.GetResponse:
    return pb.GetResponse(materials=[record_to_pb(x) for x in r.materials], missing=r.missing)


def get_result_from_pb(m: pb.GetResponse) -> GetResult:
    return GetResult(materials=[record_from_pb(x) for x in m.materials], missing=list(m.missing))


def delete_result_to_pb(r: DeleteResult) -> pb.DeleteResponse:
    return pb.DeleteResponse(deleted=r.deleted, missing=r.missing)


def delete_result_from_pb(m: pb.DeleteResponse) -> DeleteResult:
    return DeleteResult(deleted=m.deleted, missing=list(m.missing))


def stats_result_to_pb(r: StatsResult) -> pb.StatsResponse:
    return pb.StatsResponse(**r.model_dump())


def stats_result_from_pb(m: pb.StatsResponse) -> StatsResult:
    return StatsResult(count=m.count, model_id=m.model_id, dim=m.dim, engine=m.engine, version=m.version)
