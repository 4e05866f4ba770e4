from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VectorSpace(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VECTOR_SPACE_UNSPECIFIED: _ClassVar[VectorSpace]
    VECTOR_SPACE_CRYSTAL: _ClassVar[VectorSpace]
    VECTOR_SPACE_XRD: _ClassVar[VectorSpace]
    VECTOR_SPACE_STRUCTURE: _ClassVar[VectorSpace]
    VECTOR_SPACE_HYBRID: _ClassVar[VectorSpace]

class Fusion(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FUSION_UNSPECIFIED: _ClassVar[Fusion]
    FUSION_RRF: _ClassVar[Fusion]
    FUSION_ZSCORE: _ClassVar[Fusion]

class UpsertStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UPSERT_STATUS_UNSPECIFIED: _ClassVar[UpsertStatus]
    UPSERT_STATUS_ADDED: _ClassVar[UpsertStatus]
    UPSERT_STATUS_UPDATED: _ClassVar[UpsertStatus]
    UPSERT_STATUS_UNCHANGED: _ClassVar[UpsertStatus]
    UPSERT_STATUS_FAILED: _ClassVar[UpsertStatus]
VECTOR_SPACE_UNSPECIFIED: VectorSpace
VECTOR_SPACE_CRYSTAL: VectorSpace
VECTOR_SPACE_XRD: VectorSpace
VECTOR_SPACE_STRUCTURE: VectorSpace
VECTOR_SPACE_HYBRID: VectorSpace
FUSION_UNSPECIFIED: Fusion
FUSION_RRF: Fusion
FUSION_ZSCORE: Fusion
UPSERT_STATUS_UNSPECIFIED: UpsertStatus
UPSERT_STATUS_ADDED: UpsertStatus
UPSERT_STATUS_UPDATED: UpsertStatus
UPSERT_STATUS_UNCHANGED: UpsertStatus
UPSERT_STATUS_FAILED: UpsertStatus

class StructureInput(_message.Message):
    __slots__ = ("text", "data", "name", "format")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    text: str
    data: bytes
    name: str
    format: str
    def __init__(self, text: _Optional[str] = ..., data: _Optional[bytes] = ..., name: _Optional[str] = ..., format: _Optional[str] = ...) -> None: ...

class XrdPattern(_message.Message):
    __slots__ = ("two_theta", "intensity")
    TWO_THETA_FIELD_NUMBER: _ClassVar[int]
    INTENSITY_FIELD_NUMBER: _ClassVar[int]
    two_theta: _containers.RepeatedScalarFieldContainer[float]
    intensity: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, two_theta: _Optional[_Iterable[float]] = ..., intensity: _Optional[_Iterable[float]] = ...) -> None: ...

class HybridOptions(_message.Message):
    __slots__ = ("fusion", "structure_weight", "depth", "rrf_k")
    FUSION_FIELD_NUMBER: _ClassVar[int]
    STRUCTURE_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    RRF_K_FIELD_NUMBER: _ClassVar[int]
    fusion: Fusion
    structure_weight: float
    depth: int
    rrf_k: int
    def __init__(self, fusion: _Optional[_Union[Fusion, str]] = ..., structure_weight: _Optional[float] = ..., depth: _Optional[int] = ..., rrf_k: _Optional[int] = ...) -> None: ...

class EmbedRequest(_message.Message):
    __slots__ = ("structure", "pattern")
    STRUCTURE_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    structure: StructureInput
    pattern: XrdPattern
    def __init__(self, structure: _Optional[_Union[StructureInput, _Mapping]] = ..., pattern: _Optional[_Union[XrdPattern, _Mapping]] = ...) -> None: ...

class StructureSummary(_message.Message):
    __slots__ = ("formula", "n_sites", "spacegroup_number", "spacegroup_symbol", "disordered")
    FORMULA_FIELD_NUMBER: _ClassVar[int]
    N_SITES_FIELD_NUMBER: _ClassVar[int]
    SPACEGROUP_NUMBER_FIELD_NUMBER: _ClassVar[int]
    SPACEGROUP_SYMBOL_FIELD_NUMBER: _ClassVar[int]
    DISORDERED_FIELD_NUMBER: _ClassVar[int]
    formula: str
    n_sites: int
    spacegroup_number: int
    spacegroup_symbol: str
    disordered: bool
    def __init__(self, formula: _Optional[str] = ..., n_sites: _Optional[int] = ..., spacegroup_number: _Optional[int] = ..., spacegroup_symbol: _Optional[str] = ..., disordered: _Optional[bool] = ...) -> None: ...

class EmbedResponse(_message.Message):
    __slots__ = ("model_id", "crystal", "xrd", "structure", "structure_vector")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    CRYSTAL_FIELD_NUMBER: _ClassVar[int]
    XRD_FIELD_NUMBER: _ClassVar[int]
    STRUCTURE_FIELD_NUMBER: _ClassVar[int]
    STRUCTURE_VECTOR_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    crystal: _containers.RepeatedScalarFieldContainer[float]
    xrd: _containers.RepeatedScalarFieldContainer[float]
    structure: StructureSummary
    structure_vector: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, model_id: _Optional[str] = ..., crystal: _Optional[_Iterable[float]] = ..., xrd: _Optional[_Iterable[float]] = ..., structure: _Optional[_Union[StructureSummary, _Mapping]] = ..., structure_vector: _Optional[_Iterable[float]] = ...) -> None: ...

class Filters(_message.Message):
    __slots__ = ("elements_all", "elements_none", "chemical_system", "spacegroup_number", "min_sites", "max_sites", "sources", "elements_only")
    ELEMENTS_ALL_FIELD_NUMBER: _ClassVar[int]
    ELEMENTS_NONE_FIELD_NUMBER: _ClassVar[int]
    CHEMICAL_SYSTEM_FIELD_NUMBER: _ClassVar[int]
    SPACEGROUP_NUMBER_FIELD_NUMBER: _ClassVar[int]
    MIN_SITES_FIELD_NUMBER: _ClassVar[int]
    MAX_SITES_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    ELEMENTS_ONLY_FIELD_NUMBER: _ClassVar[int]
    elements_all: _containers.RepeatedScalarFieldContainer[str]
    elements_none: _containers.RepeatedScalarFieldContainer[str]
    chemical_system: str
    spacegroup_number: int
    min_sites: int
    max_sites: int
    sources: _containers.RepeatedScalarFieldContainer[str]
    elements_only: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, elements_all: _Optional[_Iterable[str]] = ..., elements_none: _Optional[_Iterable[str]] = ..., chemical_system: _Optional[str] = ..., spacegroup_number: _Optional[int] = ..., min_sites: _Optional[int] = ..., max_sites: _Optional[int] = ..., sources: _Optional[_Iterable[str]] = ..., elements_only: _Optional[_Iterable[str]] = ...) -> None: ...

class Vector(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("structure", "pattern", "material_id", "vector", "top_k", "filters", "using", "exact", "pattern_options", "hybrid")
    STRUCTURE_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    MATERIAL_ID_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    USING_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    PATTERN_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    HYBRID_FIELD_NUMBER: _ClassVar[int]
    structure: StructureInput
    pattern: XrdPattern
    material_id: str
    vector: Vector
    top_k: int
    filters: Filters
    using: VectorSpace
    exact: bool
    pattern_options: PatternOptions
    hybrid: HybridOptions
    def __init__(self, structure: _Optional[_Union[StructureInput, _Mapping]] = ..., pattern: _Optional[_Union[XrdPattern, _Mapping]] = ..., material_id: _Optional[str] = ..., vector: _Optional[_Union[Vector, _Mapping]] = ..., top_k: _Optional[int] = ..., filters: _Optional[_Union[Filters, _Mapping]] = ..., using: _Optional[_Union[VectorSpace, str]] = ..., exact: _Optional[bool] = ..., pattern_options: _Optional[_Union[PatternOptions, _Mapping]] = ..., hybrid: _Optional[_Union[HybridOptions, _Mapping]] = ...) -> None: ...

class PatternOptions(_message.Message):
    __slots__ = ("rerank", "depth", "wavelength", "max_strain", "max_shift", "fwhm", "max_phases")
    RERANK_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    WAVELENGTH_FIELD_NUMBER: _ClassVar[int]
    MAX_STRAIN_FIELD_NUMBER: _ClassVar[int]
    MAX_SHIFT_FIELD_NUMBER: _ClassVar[int]
    FWHM_FIELD_NUMBER: _ClassVar[int]
    MAX_PHASES_FIELD_NUMBER: _ClassVar[int]
    rerank: bool
    depth: int
    wavelength: str
    max_strain: float
    max_shift: float
    fwhm: float
    max_phases: int
    def __init__(self, rerank: _Optional[bool] = ..., depth: _Optional[int] = ..., wavelength: _Optional[str] = ..., max_strain: _Optional[float] = ..., max_shift: _Optional[float] = ..., fwhm: _Optional[float] = ..., max_phases: _Optional[int] = ...) -> None: ...

class PatternMatch(_message.Message):
    __slots__ = ("score", "strain", "shift")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    STRAIN_FIELD_NUMBER: _ClassVar[int]
    SHIFT_FIELD_NUMBER: _ClassVar[int]
    score: float
    strain: float
    shift: float
    def __init__(self, score: _Optional[float] = ..., strain: _Optional[float] = ..., shift: _Optional[float] = ...) -> None: ...

class Phase(_message.Message):
    __slots__ = ("material_id", "score", "strain", "shift", "weight")
    MATERIAL_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    STRAIN_FIELD_NUMBER: _ClassVar[int]
    SHIFT_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    material_id: str
    score: float
    strain: float
    shift: float
    weight: float
    def __init__(self, material_id: _Optional[str] = ..., score: _Optional[float] = ..., strain: _Optional[float] = ..., shift: _Optional[float] = ..., weight: _Optional[float] = ...) -> None: ...

class PatternSummary(_message.Message):
    __slots__ = ("fwhm", "fwhm_estimated", "residual", "candidates")
    FWHM_FIELD_NUMBER: _ClassVar[int]
    FWHM_ESTIMATED_FIELD_NUMBER: _ClassVar[int]
    RESIDUAL_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    fwhm: float
    fwhm_estimated: bool
    residual: float
    candidates: int
    def __init__(self, fwhm: _Optional[float] = ..., fwhm_estimated: _Optional[bool] = ..., residual: _Optional[float] = ..., candidates: _Optional[int] = ...) -> None: ...

class Material(_message.Message):
    __slots__ = ("material_id", "source", "source_id", "formula", "elements", "n_elements", "n_sites", "spacegroup_number", "spacegroup_symbol", "density", "volume", "disordered", "cod_id", "doi", "journal", "year", "title", "mineral", "tags", "content_hash", "ingested_at", "crystal_system", "payload_version")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MATERIAL_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    FORMULA_FIELD_NUMBER: _ClassVar[int]
    ELEMENTS_FIELD_NUMBER: _ClassVar[int]
    N_ELEMENTS_FIELD_NUMBER: _ClassVar[int]
    N_SITES_FIELD_NUMBER: _ClassVar[int]
    SPACEGROUP_NUMBER_FIELD_NUMBER: _ClassVar[int]
    SPACEGROUP_SYMBOL_FIELD_NUMBER: _ClassVar[int]
    DENSITY_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    DISORDERED_FIELD_NUMBER: _ClassVar[int]
    COD_ID_FIELD_NUMBER: _ClassVar[int]
    DOI_FIELD_NUMBER: _ClassVar[int]
    JOURNAL_FIELD_NUMBER: _ClassVar[int]
    YEAR_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    MINERAL_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    CONTENT_HASH_FIELD_NUMBER: _ClassVar[int]
    INGESTED_AT_FIELD_NUMBER: _ClassVar[int]
    CRYSTAL_SYSTEM_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_VERSION_FIELD_NUMBER: _ClassVar[int]
    material_id: str
    source: str
    source_id: str
    formula: str
    elements: _containers.RepeatedScalarFieldContainer[str]
    n_elements: int
    n_sites: int
    spacegroup_number: int
    spacegroup_symbol: str
    density: float
    volume: float
    disordered: bool
    cod_id: str
    doi: str
    journal: str
    year: int
    title: str
    mineral: str
    tags: _containers.ScalarMap[str, str]
    content_hash: str
    ingested_at: str
    crystal_system: str
    payload_version: int
    def __init__(self, material_id: _Optional[str] = ..., source: _Optional[str] = ..., source_id: _Optional[str] = ..., formula: _Optional[str] = ..., elements: _Optional[_Iterable[str]] = ..., n_elements: _Optional[int] = ..., n_sites: _Optional[int] = ..., spacegroup_number: _Optional[int] = ..., spacegroup_symbol: _Optional[str] = ..., density: _Optional[float] = ..., volume: _Optional[float] = ..., disordered: _Optional[bool] = ..., cod_id: _Optional[str] = ..., doi: _Optional[str] = ..., journal: _Optional[str] = ..., year: _Optional[int] = ..., title: _Optional[str] = ..., mineral: _Optional[str] = ..., tags: _Optional[_Mapping[str, str]] = ..., content_hash: _Optional[str] = ..., ingested_at: _Optional[str] = ..., crystal_system: _Optional[str] = ..., payload_version: _Optional[int] = ...) -> None: ...

class Hit(_message.Message):
    __slots__ = ("material_id", "formula", "spacegroup_number", "spacegroup_symbol", "distance", "payload", "match", "notion", "fusion", "score")
    MATERIAL_ID_FIELD_NUMBER: _ClassVar[int]
    FORMULA_FIELD_NUMBER: _ClassVar[int]
    SPACEGROUP_NUMBER_FIELD_NUMBER: _ClassVar[int]
    SPACEGROUP_SYMBOL_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    NOTION_FIELD_NUMBER: _ClassVar[int]
    FUSION_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    material_id: str
    formula: str
    spacegroup_number: int
    spacegroup_symbol: str
    distance: float
    payload: Material
    match: PatternMatch
    notion: VectorSpace
    fusion: Fusion
    score: float
    def __init__(self, material_id: _Optional[str] = ..., formula: _Optional[str] = ..., spacegroup_number: _Optional[int] = ..., spacegroup_symbol: _Optional[str] = ..., distance: _Optional[float] = ..., payload: _Optional[_Union[Material, _Mapping]] = ..., match: _Optional[_Union[PatternMatch, _Mapping]] = ..., notion: _Optional[_Union[VectorSpace, str]] = ..., fusion: _Optional[_Union[Fusion, str]] = ..., score: _Optional[float] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("model_id", "using", "hits", "query_structure", "phases", "pattern")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    USING_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    QUERY_STRUCTURE_FIELD_NUMBER: _ClassVar[int]
    PHASES_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    using: VectorSpace
    hits: _containers.RepeatedCompositeFieldContainer[Hit]
    query_structure: StructureSummary
    phases: _containers.RepeatedCompositeFieldContainer[Phase]
    pattern: PatternSummary
    def __init__(self, model_id: _Optional[str] = ..., using: _Optional[_Union[VectorSpace, str]] = ..., hits: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ..., query_structure: _Optional[_Union[StructureSummary, _Mapping]] = ..., phases: _Optional[_Iterable[_Union[Phase, _Mapping]]] = ..., pattern: _Optional[_Union[PatternSummary, _Mapping]] = ...) -> None: ...

class UpsertItem(_message.Message):
    __slots__ = ("structure", "source", "source_id", "tags")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    STRUCTURE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    structure: StructureInput
    source: str
    source_id: str
    tags: _containers.ScalarMap[str, str]
    def __init__(self, structure: _Optional[_Union[StructureInput, _Mapping]] = ..., source: _Optional[str] = ..., source_id: _Optional[str] = ..., tags: _Optional[_Mapping[str, str]] = ...) -> None: ...

class UpsertRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[UpsertItem]
    def __init__(self, items: _Optional[_Iterable[_Union[UpsertItem, _Mapping]]] = ...) -> None: ...

class UpsertResult(_message.Message):
    __slots__ = ("index", "material_id", "status", "reason", "message")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    MATERIAL_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    index: int
    material_id: str
    status: UpsertStatus
    reason: str
    message: str
    def __init__(self, index: _Optional[int] = ..., material_id: _Optional[str] = ..., status: _Optional[_Union[UpsertStatus, str]] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class UpsertResponse(_message.Message):
    __slots__ = ("results", "stored", "failed")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[UpsertResult]
    stored: int
    failed: int
    def __init__(self, results: _Optional[_Iterable[_Union[UpsertResult, _Mapping]]] = ..., stored: _Optional[int] = ..., failed: _Optional[int] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("material_ids", "with_vectors", "structure_format")
    MATERIAL_IDS_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTORS_FIELD_NUMBER: _ClassVar[int]
    STRUCTURE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    material_ids: _containers.RepeatedScalarFieldContainer[str]
    with_vectors: bool
    structure_format: str
    def __init__(self, material_ids: _Optional[_Iterable[str]] = ..., with_vectors: _Optional[bool] = ..., structure_format: _Optional[str] = ...) -> None: ...

class StructureFile(_message.Message):
    __slots__ = ("content", "format", "filename", "media_type")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    content: str
    format: str
    filename: str
    media_type: str
    def __init__(self, content: _Optional[str] = ..., format: _Optional[str] = ..., filename: _Optional[str] = ..., media_type: _Optional[str] = ...) -> None: ...

class MaterialRecord(_message.Message):
    __slots__ = ("material", "crystal", "xrd", "structure", "structure_vector")
    MATERIAL_FIELD_NUMBER: _ClassVar[int]
    CRYSTAL_FIELD_NUMBER: _ClassVar[int]
    XRD_FIELD_NUMBER: _ClassVar[int]
    STRUCTURE_FIELD_NUMBER: _ClassVar[int]
    STRUCTURE_VECTOR_FIELD_NUMBER: _ClassVar[int]
    material: Material
    crystal: _containers.RepeatedScalarFieldContainer[float]
    xrd: _containers.RepeatedScalarFieldContainer[float]
    structure: StructureFile
    structure_vector: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, material: _Optional[_Union[Material, _Mapping]] = ..., crystal: _Optional[_Iterable[float]] = ..., xrd: _Optional[_Iterable[float]] = ..., structure: _Optional[_Union[StructureFile, _Mapping]] = ..., structure_vector: _Optional[_Iterable[float]] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("materials", "missing")
    MATERIALS_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    materials: _containers.RepeatedCompositeFieldContainer[MaterialRecord]
    missing: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, materials: _Optional[_Iterable[_Union[MaterialRecord, _Mapping]]] = ..., missing: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("material_ids",)
    MATERIAL_IDS_FIELD_NUMBER: _ClassVar[int]
    material_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, material_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("deleted", "missing")
    DELETED_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    missing: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, deleted: _Optional[int] = ..., missing: _Optional[_Iterable[str]] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatsResponse(_message.Message):
    __slots__ = ("count", "model_id", "dim", "engine", "version")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    count: int
    model_id: str
    dim: int
    engine: str
    version: str
    def __init__(self, count: _Optional[int] = ..., model_id: _Optional[str] = ..., dim: _Optional[int] = ..., engine: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...
