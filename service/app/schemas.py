"""Pydantic models of the service API, shared by the gRPC and HTTP ingresses and the Python client.

The proto messages (``proto/matconcept/v1/matconcept.proto``) and the JSON bodies of the HTTP API
are two wire forms of these models; :mod:`matconcept.service.app.convert` translates protobuf ↔ pydantic, one
function per type. Requests are strict (``extra="forbid"``: a misspelt field is an error, not
silently ignored); results are lenient. Store types (:class:`SearchFilters`, :class:`Hit`,
:class:`MaterialRecord`) are reused as they are, so a hit reads the same from the store, the
service and the client.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from matconcept.service.app.phase_search import PatternSearchOptions, PatternSummary, Phase
from matconcept.service.store.hybrid import HybridOptions
from matconcept.service.store.peaks import PatternMatch
from matconcept.service.store.records import Hit, MaterialRecord, SearchFilters
from matconcept.service.store.structures import StructureFormatOut

VectorName = Literal["crystal", "xrd", "structure", "hybrid"]
"""What a search compares: the concept vectors (``crystal``), the XRD vectors, the structure-type vectors,
or the concept and structure neighbours fused (``hybrid``, :mod:`matconcept.service.store.hybrid`)."""
SOURCE_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
"""A source label: lower-case, short, no ':' (it prefixes the material id)."""
SOURCE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.+=-]{0,127}$"


def upload_source_id(stem: str, fallback: str) -> str:
    """The source id an upload gets from its file name when none is given: the stem, made to fit
    SOURCE_ID_PATTERN (other characters become ``_``), so every stored upload can be read and deleted
    by its id (a name like ``x:.cif`` made ``user:x:``, an id the service then refused)."""
    if re.fullmatch(SOURCE_ID_PATTERN, stem):
        return stem
    cleaned = re.sub(r"[^A-Za-z0-9_.+=-]", "_", stem).lstrip("_.+=-")[:128]
    return cleaned or fallback


MATERIAL_ID_PATTERN = r"^[^:][\s\S]*:[\s\S]*[^:]$"
"""What the service takes as a material id (``<source>:<source_id>``): a ':' with something on each side.
Declared in the OpenAPI document only; the service checks ids itself (one message for HTTP and gRPC)."""
MaterialId = Annotated[str, WithJsonSchema({"type": "string", "pattern": MATERIAL_ID_PATTERN})]

VECTOR_BOUND = 1e6
"""Largest magnitude of a query vector's value. The model's vectors are unit length, so no real query
comes near it; far larger values would overflow the store's float32 distances to infinity."""
VectorValue = Annotated[float, Field(allow_inf_nan=False, ge=-VECTOR_BOUND, le=VECTOR_BOUND)]
"""One value of a query vector: finite (NaN, ±inf and JSON's 1e309 are refused) and within ±VECTOR_BOUND."""
TwoTheta = Annotated[float, Field(allow_inf_nan=False, ge=0, le=180)]
"""A diffraction angle 2θ in degrees: finite, and between 0° and 180° as any measured angle is."""
Intensity = Annotated[float, Field(allow_inf_nan=False)]
"""A measured intensity, any units (negative values are clipped to 0 when the pattern is resampled)."""


class ErrorCode(StrEnum):
    """Why a request failed; each maps to one gRPC status and one HTTP status (see ``STATUS``)."""

    INVALID_ARGUMENT = "invalid_argument"
    NOT_FOUND = "not_found"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    UNAUTHENTICATED = "unauthenticated"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_ARGUMENT: 400,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.RESOURCE_EXHAUSTED: 413,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.INTERNAL: 500,
}


class ServiceError(Exception):
    """A request the service refuses: a code, the input's reason (e.g. ``not_cif``) and a message naming it."""

    def __init__(self, code: ErrorCode, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)
        self.message = message
        self.reason = reason or self.code.value

    def to_dict(self) -> dict[str, str]:
        """The JSON error body of the HTTP API: ``{"code", "reason", "message"}``."""
        return {"code": self.code.value, "reason": self.reason, "message": self.message}


class ErrorDetail(BaseModel):
    """What went wrong: :class:`ServiceError` as JSON."""

    code: ErrorCode = Field(description="the error class; one HTTP status and one gRPC status each")
    reason: str = Field(description="the input's reason, e.g. not_cif, too_large, bad_vector, unauthenticated")
    message: str = Field(description="one line naming the field or file at fault")


class ErrorBody(BaseModel):
    """Every HTTP error answer: ``{"error": {"code", "reason", "message"}}``, never a traceback."""

    error: ErrorDetail


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StructureIn(_Request):
    """A structure file (CIF, pymatgen JSON or POSCAR) as text or bytes."""

    content: Annotated[str | bytes, WithJsonSchema({"type": "string"})] = Field(
        description="the file's text (JSON), or its bytes (gRPC, Python)"
    )
    name: str = Field(default="structure", max_length=256, description="file name, used in messages and as id")
    format: Literal["cif", "json", "poscar"] | None = Field(default=None, description="guessed when None")

    @property
    def size(self) -> int:
        return len(self.content) if isinstance(self.content, bytes) else len(self.content.encode("utf-8", "replace"))


class PatternIn(_Request):
    """A measured powder pattern: 2θ in degrees and intensities (any units), same length; finite values."""

    two_theta: list[TwoTheta] = Field(description="degrees, 0-180, strictly increasing or decreasing")
    intensity: list[Intensity] = Field(description="any units, one per 2θ value")


class StructureSummary(BaseModel):
    """The parsed structure as the embedder saw it (primitive cell)."""

    formula: str
    n_sites: int
    spacegroup_number: int | None = None
    spacegroup_symbol: str | None = None
    disordered: bool = False


def _one_of(model: BaseModel, names: tuple[str, ...], what: str) -> None:
    given = [n for n in names if getattr(model, n) is not None]
    if len(given) != 1:
        listed = ", ".join(names)
        raise ValueError(f"{what}: give exactly one of {listed} (got {', '.join(given) or 'none'})")


class EmbedQuery(_Request):
    structure: StructureIn | None = None
    pattern: PatternIn | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> EmbedQuery:
        _one_of(self, ("structure", "pattern"), "embed")
        return self


class EmbedResult(BaseModel):
    model_id: str
    crystal: list[float] | None = Field(default=None, description="structure-encoder vector (structures only)")
    xrd: list[float] = Field(description="XRD-encoder vector (of the simulated or the given pattern)")
    structure: StructureSummary | None = None
    structure_vector: list[float] | None = Field(
        default=None, description="structure-type vector (structures only, a model with that encoder)"
    )


class SearchQuery(_Request):
    """Nearest stored materials to one query: a structure, a pattern, a stored id or a vector."""

    structure: StructureIn | None = None
    pattern: PatternIn | None = None
    material_id: (
        Annotated[str, WithJsonSchema({"type": "string", "pattern": MATERIAL_ID_PATTERN, "maxLength": 200})] | None
    ) = Field(default=None, max_length=200)
    vector: list[VectorValue] | None = Field(default=None, description="a vector of the model's dimension")
    top_k: int = Field(default=10, ge=1, description="hits returned; at most the service's max_top_k (1000)")
    filters: SearchFilters | None = None
    using: VectorName | None = Field(
        default=None,
        description="stored vectors compared with the query: crystal (concept), structure (structure type), xrd, "
        "or hybrid (concept and structure fused). Absent or null: the measured best for the query, hybrid for a "
        "structure or a stored id where the model has the structure-type encoder, else crystal (a pattern, a "
        "vector); the result's using names the one chosen",
    )
    hybrid: HybridOptions | None = Field(default=None, description="using hybrid: the fusion (rrf or zscore)")
    exact: bool = False
    pattern_options: PatternSearchOptions | None = Field(
        default=None,
        description="a pattern query only: wavelength, two-stage re-ranking (on by default), strain/shift ranges",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> SearchQuery:
        _one_of(self, ("structure", "pattern", "material_id", "vector"), "search query")
        if self.pattern_options is not None and self.pattern is None:
            raise ValueError("pattern_options: only for a pattern query")
        if self.hybrid is not None and self.using != "hybrid":
            raise ValueError("hybrid: only with using hybrid")
        return self


class SearchResult(BaseModel):
    model_id: str
    using: VectorName = Field(description="the notion searched: the query's, or the default it resolved to")
    hits: list[Hit] = Field(description="nearest first; best match first for a re-ranked pattern search")
    query_structure: StructureSummary | None = None
    phases: list[Phase] = Field(default_factory=list, description="a re-ranked pattern search: the phases found")
    pattern: PatternSummary | None = Field(default=None, description="a re-ranked pattern search: what was fitted")


class UpsertItem(_Request):
    structure: StructureIn
    source: str = Field(default="user", pattern=SOURCE_PATTERN)
    source_id: str | None = Field(
        default=None, pattern=SOURCE_ID_PATTERN, description="default: COD id for source cod, else the file stem"
    )
    tags: dict[str, str] = Field(default_factory=dict)


class UpsertQuery(_Request):
    items: list[UpsertItem] = Field(min_length=1)


UpsertStatus = Literal["added", "updated", "unchanged", "failed"]


class UpsertItemResult(BaseModel):
    index: int
    material_id: str = ""
    status: UpsertStatus
    reason: str = ""
    message: str = ""


class UpsertResult(BaseModel):
    results: list[UpsertItemResult]
    stored: int
    failed: int


class GetQuery(_Request):
    material_ids: list[MaterialId] = Field(min_length=1)
    with_vectors: bool = False
    structure_format: StructureFormatOut | None = Field(
        default=None, description="also return each stored structure as this file: cif, json, poscar or original"
    )


class GetResult(BaseModel):
    materials: list[MaterialRecord]
    missing: list[str] = Field(default_factory=list)


class DeleteQuery(_Request):
    material_ids: list[MaterialId] = Field(min_length=1)


class DeleteResult(BaseModel):
    deleted: int
    missing: list[str] = Field(default_factory=list)


class SnapshotQuery(_Request):
    """``POST /v1/snapshots``: an optional label for the file name (the body may be empty)."""

    label: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="added to the file name, e.g. before-migration"
    )


class StatsResult(BaseModel):
    count: int
    model_id: str
    dim: int
    engine: str
    version: str


class EmbeddedStructure(BaseModel):
    """What the embedder deployment returns for one structure: vectors, summary and (for Upsert) payload."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    summary: StructureSummary | None = None
    crystal: list[float] | None = None
    xrd: list[float] | None = None
    structure_type: list[float] | None = None
    point: object | None = Field(default=None, description="matconcept.service.store.PointIn when a label was given")
    error: dict[str, str] | None = Field(default=None, description="StructureInputError.to_dict() on failure")


class MapQuery(_Request):
    """Place a query (a structure or a pattern) on the materials map and find its neighbours."""

    structure: StructureIn | None = None
    pattern: PatternIn | None = None
    top_k: int = Field(default=10, ge=1, description="neighbours returned; at most the service's max_top_k (1000)")

    @model_validator(mode="after")
    def _exactly_one(self) -> MapQuery:
        _one_of(self, ("structure", "pattern"), "map query")
        return self


class MapQueryPoint(BaseModel):
    """Where the query lands on the map."""

    x: float
    y: float
    label: str = Field(description="formula of the structure, or the pattern file's name")
    kind: Literal["structure", "pattern"]
    structure: StructureSummary | None = None


class MapHit(BaseModel):
    """A neighbour of the query, with its place on the map (None if not laid out yet)."""

    material_id: str
    distance: float
    x: float | None = None
    y: float | None = None
    formula: str
    spacegroup_symbol: str | None = None
    source: str
    match: PatternMatch | None = Field(default=None, description="a pattern query: search-match score and fit")


class MapPlaceResult(BaseModel):
    layout_id: str
    query: MapQueryPoint
    hits: list[MapHit] = Field(description="nearest first, in the embedding space (not on the map)")


class PatternQuery(_Request):
    """The simulated powder pattern of an uploaded structure (``POST /v1/pattern``)."""

    structure: StructureIn


class PatternOut(BaseModel):
    """A simulated powder pattern on the model's grid, sparse: its non-zero bins only.

    The pattern the XRD encoder reads is a histogram of ``n_bins`` bins of width ``step`` from
    ``two_theta_min`` to ``two_theta_max`` (the model's settings: Cu Kα, 10-110°, 0.02°, 5000 bins),
    max-normalised. Only bins with intensity are listed (a few hundred of 5000); every other bin is 0.
    Plot ``two_theta``/``intensity`` as sticks, or fill a zero array of ``n_bins`` at
    ``round((two_theta - two_theta_min) / step - 0.5)`` for the full vector.
    """

    material_id: str | None = Field(default=None, description="the stored material (None for an upload)")
    formula: str = Field(description="reduced formula")
    wavelength: float = Field(description="X-ray wavelength, Å")
    two_theta_min: float = Field(description="grid start, degrees")
    two_theta_max: float = Field(description="grid end, degrees")
    step: float = Field(description="bin width, degrees")
    n_bins: int = Field(description="bins of the full pattern")
    two_theta: list[float] = Field(description="centres of the non-zero bins, degrees, ascending")
    intensity: list[float] = Field(description="their intensities; the strongest bin is 1")
