"""The multipart form alternative of the HTTP API's JSON bodies: one model per form, one reader for all.

``curl -F file=@NaCl.cif -F top_k=5 …/v1/search`` is the same request as the JSON
``{"structure": {"content": "<the CIF>", "name": "NaCl.cif"}, "top_k": 5}``. Each form model names
the fields a route takes (the OpenAPI document shows it as the ``multipart/form-data`` body), is
validated like the JSON models (strict: a misspelt field is an error), and turns into the route's
JSON query model (:meth:`SearchForm.query`…), so everything after the reading is one code path.
Fields that hold structured values (``filters``, ``tags``) are JSON text, as a form can only carry
strings and files.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, WithJsonSchema
from starlette.datastructures import UploadFile

from matconcept.service.app.core import input_error, validation_message
from matconcept.service.app.phase_search import PatternSearchOptions
from matconcept.service.app.schemas import (
    SOURCE_ID_PATTERN,
    SOURCE_PATTERN,
    EmbedQuery,
    ErrorCode,
    MapQuery,
    PatternIn,
    PatternQuery,
    SearchQuery,
    ServiceError,
    StructureIn,
    UpsertItem,
    UpsertQuery,
    VectorName,
)
from matconcept.service.store.hybrid import HybridOptions
from matconcept.service.store.records import SearchFilters

PATTERN_SUFFIXES = (".xy", ".xye", ".csv", ".txt", ".dat", ".xrdml")
"""Upload names read as a measured powder pattern (two columns: 2θ, intensity) unless ``kind`` says otherwise."""
UploadKind = Literal["structure", "pattern"]
NO_FILE = "file: a multipart upload needs a 'file' field"
_TAGS = TypeAdapter(dict[str, str])
FiltersText = Annotated[str | None, WithJsonSchema(SearchFilters.model_json_schema())]
"""``filters``: JSON text, declared as the object it holds (OpenAPI sends an object part of a form as JSON)."""
OptionsText = Annotated[str | None, WithJsonSchema(PatternSearchOptions.model_json_schema())]
HybridText = Annotated[str | None, WithJsonSchema(HybridOptions.model_json_schema())]
TagsText = Annotated[str | None, WithJsonSchema({"type": "object", "additionalProperties": {"type": "string"}})]


def form_schema(schema: dict[str, Any]) -> None:
    """A form field is a string (or a JSON part) or absent, never null: drop the ``null`` branch and the
    ``null`` default that pydantic gives an optional field, so the document offers only what a form can send."""
    for prop in schema.get("properties", {}).values():
        branches = prop.get("anyOf")
        if branches and {"type": "null"} in branches:
            rest = [b for b in prop.pop("anyOf") if b != {"type": "null"}]
            if len(rest) == 1:
                prop.update({k: v for k, v in rest[0].items() if k not in prop})
            else:
                prop["anyOf"] = rest
        if "default" in prop and prop["default"] is None:
            del prop["default"]


class Upload(BaseModel):
    """The uploaded file as the routes see it: its bytes and its name."""

    content: bytes
    name: str

    @property
    def guessed_kind(self) -> UploadKind:
        return "pattern" if self.name.lower().endswith(PATTERN_SUFFIXES) else "structure"

    def structure(self) -> StructureIn:
        return StructureIn(content=self.content, name=self.name)

    def pattern(self) -> PatternIn:
        """The two-column text (or ``.xrdml``) as a pattern; a file that is not one is INVALID_ARGUMENT naming it."""
        return self.pattern_and_wavelength()[0]

    def pattern_and_wavelength(self) -> tuple[PatternIn, float | None]:
        """The pattern and the wavelength its file states (``.xrdml`` does; text exports do not)."""
        from matconcept.encoders.errors import StructureInputError
        from matconcept.encoders.xrd import read_pattern  # here, not at import: the gateway stays light

        try:
            read = read_pattern(self.content, name=self.name)
        except StructureInputError as exc:
            raise input_error(exc.to_dict()) from exc
        return PatternIn(two_theta=read.two_theta.tolist(), intensity=read.intensity.tolist()), read.wavelength


class _Form(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=form_schema)

    file: bytes = Field(description="the file (its name is used in messages and, for a structure, as the default id)")


class _QueryForm(_Form):
    file: bytes = Field(
        description="a structure (CIF, pymatgen JSON, POSCAR) or a measured pattern (two columns: 2θ, intensity)"
    )
    kind: UploadKind | None = Field(
        default=None,
        description="what the file is; default: a pattern for .xy .xye .csv .txt .dat names, else a structure",
    )

    def _query_fields(self, upload: Upload) -> dict:
        kind = self.kind or upload.guessed_kind
        return {"structure": upload.structure()} if kind == "structure" else {"pattern": upload.pattern()}


class SearchForm(_QueryForm):
    """``POST /v1/search`` as a form: the file is the query."""

    top_k: int = Field(default=10, ge=1, description="hits returned; at most the service's max_top_k (1000)")
    using: VectorName | None = Field(
        default=None,
        description="stored vectors compared with the query: crystal, structure, xrd or hybrid; absent: the measured "
        "best for the file (hybrid for a structure where the model has the structure-type encoder, else crystal)",
    )
    hybrid: HybridText = Field(
        default=None, description='using hybrid: HybridOptions as JSON, e.g. {"fusion": "zscore"}'
    )
    exact: bool = Field(default=False, description="exact (brute-force) search instead of the HNSW index")
    filters: FiltersText = Field(default=None, description='SearchFilters as JSON, e.g. {"elements_all": ["Li"]}')
    wavelength: str | None = Field(
        default=None, description="a pattern: Å or an anode (Cu, Mo, Co, Cr, Fe, Ag); default the file's, else Cu Kα"
    )
    pattern_options: OptionsText = Field(
        default=None, description='a pattern: PatternSearchOptions as JSON, e.g. {"max_strain": 0.05}'
    )

    def query(self, upload: Upload) -> SearchQuery:
        kind = self.kind or upload.guessed_kind
        if kind == "pattern":
            pattern, stated = upload.pattern_and_wavelength()
            options = (
                _json_field("pattern_options", PatternSearchOptions, self.pattern_options)
                if self.pattern_options is not None
                else PatternSearchOptions()
            )
            wavelength = self.wavelength or options.wavelength or stated
            fields: dict = {
                "pattern": pattern,
                "pattern_options": options.model_copy(
                    update={"wavelength": None if wavelength is None else str(wavelength)}
                ),
            }
        else:
            fields = self._query_fields(upload)
        if self.filters is not None:
            fields["filters"] = _json_field("filters", SearchFilters, self.filters)
        if self.hybrid is not None:
            fields["hybrid"] = _json_field("hybrid", HybridOptions, self.hybrid)
        return SearchQuery(top_k=self.top_k, using=self.using, exact=self.exact, **fields)


class EmbedForm(_QueryForm):
    """``POST /v1/embed`` as a form: the vectors of the file."""

    def query(self, upload: Upload) -> EmbedQuery:
        return EmbedQuery(**self._query_fields(upload))


class PatternForm(_Form):
    """``POST /v1/pattern`` as a form: the simulated powder pattern of the uploaded structure."""

    file: bytes = Field(description="a structure file: CIF, pymatgen JSON or POSCAR")

    def query(self, upload: Upload) -> PatternQuery:
        return PatternQuery(structure=upload.structure())


class MapPlaceForm(_QueryForm):
    """``POST /v1/map/place`` as a form: place the file on the map."""

    top_k: int = Field(default=10, ge=1, description="neighbours returned; at most the service's max_top_k (1000)")

    def query(self, upload: Upload) -> MapQuery:
        return MapQuery(top_k=self.top_k, **self._query_fields(upload))


class UpsertForm(_Form):
    """``POST /v1/materials`` as a form: store one structure file (send JSON ``items`` to store several)."""

    file: bytes = Field(description="a structure file: CIF, pymatgen JSON or POSCAR")
    source: str = Field(default="user", pattern=SOURCE_PATTERN, description="prefix of the material id")
    source_id: str | None = Field(
        default=None, pattern=SOURCE_ID_PATTERN, description="default: COD id for source cod, else the file stem"
    )
    tags: TagsText = Field(default=None, description='string tags as JSON, e.g. {"project": "anodes"}')

    def query(self, upload: Upload) -> UpsertQuery:
        tags = _json_field("tags", _TAGS, self.tags) if self.tags is not None else {}
        item = UpsertItem(structure=upload.structure(), source=self.source, source_id=self.source_id, tags=tags)
        return UpsertQuery(items=[item])


def _json_field(name: str, model, text: str):
    """A form field holding JSON text, validated by ``model`` (a pydantic model or TypeAdapter)."""
    try:
        return model.model_validate_json(text) if isinstance(model, type) else model.validate_json(text)
    except ValidationError as exc:
        raise ServiceError(ErrorCode.INVALID_ARGUMENT, validation_message(exc, prefix=name), "invalid_request") from exc


F = TypeVar("F", bound=_Form)


async def read_form(form, model: type[F]) -> tuple[F, Upload]:
    """A parsed multipart form → (its ``model``, the upload). One file per request; empty fields are absent."""
    files = [v for v in form.getlist("file") if isinstance(v, UploadFile)]
    if not files:
        raise ServiceError(ErrorCode.INVALID_ARGUMENT, NO_FILE)
    if len(form.getlist("file")) > 1:
        raise ServiceError(ErrorCode.INVALID_ARGUMENT, "file: one file per multipart request (JSON takes several)")
    upload = Upload(content=await files[0].read(), name=files[0].filename or "upload")
    fields: dict[str, object] = {"file": upload.content}
    for key, value in form.multi_items():
        if key == "file":
            continue
        if isinstance(value, UploadFile):
            raise ServiceError(ErrorCode.INVALID_ARGUMENT, f"{key}: a file where a text field was expected")
        if key in fields:
            raise ServiceError(ErrorCode.INVALID_ARGUMENT, f"{key}: given more than once")
        if value != "":
            fields[key] = value
    return model.model_validate(fields), upload
