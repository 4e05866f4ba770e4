"""Pydantic models at the store boundary: settings, the payload schema, filters, hits and records.

Shared by both engines (embedded qdrant-edge and a Qdrant server), the ingest pipeline, the CLI and
the service, so a payload written by one is read back identically by all of them. Request models
are strict (``extra="forbid"``) so a misspelt filter is an error, not a silently ignored field;
response models are lenient, so payloads written by an older version still load.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from matconcept.encoders.symmetry import crystal_system
from matconcept.service.store.peaks import PatternMatch, PhaseFeatures
from matconcept.service.store.structures import StoredStructure, StructureFile

VECTOR_NAMES: tuple[str, ...] = ("crystal", "xrd")
"""Named vectors per point: the structure encoder's and the XRD encoder's (on the simulated pattern)."""
STRUCTURE_VECTOR = "structure"
"""The third named vector: the chemistry-blind structure-type encoder's, in collections of a model that
has one (a model without it, and collections made before it, keep the two of :data:`VECTOR_NAMES`)."""


def _default_home() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("matconcept"))


class StoreSettings(BaseSettings):
    """Where vectors live. Load explicitly (``StoreSettings()``); nothing is read at import time.

    ``QDRANT_URL`` switches every command from the embedded on-disk engine to a Qdrant server or
    cluster, with the same collections and payloads.
    """

    model_config = SettingsConfigDict(env_prefix="MATCONCEPT_", extra="ignore", populate_by_name=True)

    home: Path = Field(default_factory=_default_home, description="MATCONCEPT_HOME: data directory")
    db: Path | None = Field(default=None, description="embedded store directory (default: home/qdrant)")
    qdrant_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("QDRANT_URL", "qdrant_url"),
        description="Qdrant server URL; when set the remote engine is used",
    )
    qdrant_api_key: str | None = Field(
        default=None,
        validation_alias=AliasChoices("QDRANT_API_KEY", "qdrant_api_key"),
        description="API key for the Qdrant server",
    )
    collection_prefix: str = Field(default="matconcept", pattern=r"^[A-Za-z0-9_-]+$")

    @property
    def db_dir(self) -> Path:
        """The embedded store directory (``db`` or ``home/qdrant``)."""
        return self.db if self.db is not None else self.home / "qdrant"

    def collection_name(self, model_id: str) -> str:
        """One collection per model id, so vectors of two models never mix."""
        return f"{self.collection_prefix}-{model_id}"

    def maps_dir(self, model_id: str) -> Path:
        """Where the materials-map layouts of a collection live: beside the embedded store's
        directory, or under ``home/maps`` for a Qdrant server (layouts are files, not points)."""
        base = self.home / "maps" if self.qdrant_url else self.db_dir / "maps"
        return base / self.collection_name(model_id)


PAYLOAD_VERSION = 1
"""Version of what a point carries beside its metadata: 1 = the structure, the original file and the
peak list are kept. Ingest rewrites a point of an older version as changed, so a re-run of
``matconcept ingest`` (``--builtin`` for the shipped structures) completes a store written before,
without ``--force``."""


class MaterialPayload(BaseModel):
    """What each point carries besides its vectors; the fields filters use are indexed."""

    model_config = ConfigDict(extra="ignore")

    material_id: str = Field(description='"<source>:<source_id>", e.g. "cod:1000000"')
    source: str = Field(description="cod, mp, aflow, pymatgen, user, ...")
    source_id: str
    formula: str = Field(description="reduced formula")
    elements: list[str] = Field(description="element symbols, sorted")
    n_elements: int
    n_sites: int = Field(description="sites in the primitive cell")
    spacegroup_number: int | None = None
    spacegroup_symbol: str | None = None
    crystal_system: str | None = Field(
        default=None, description="triclinic ... cubic, of the space group; None where that is unknown"
    )
    density: float = Field(description="g/cm³")
    volume: float = Field(description="Å³, primitive cell")
    disordered: bool = False
    cod_id: str | None = None
    doi: str | None = None
    journal: str | None = None
    year: int | None = None
    title: str | None = None
    mineral: str | None = None
    tags: dict[str, str] = Field(default_factory=dict, description="aflow label, strukturbericht, mineral...")
    content_hash: str = Field(description="sha256 of the structure input as read")
    payload_version: int = Field(
        default=0, description="what the point carries; older versions are re-ingested (see PAYLOAD_VERSION)"
    )
    ingested_at: str = Field(description="ISO 8601 UTC")

    @model_validator(mode="before")
    @classmethod
    def _crystal_system(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("crystal_system") is None:
            return {**data, "crystal_system": stored_crystal_system(data)}
        return data


def stored_crystal_system(payload: Mapping[str, Any]) -> str | None:
    """A payload's crystal system: the stored one, or, in a payload written before ingest stored it,
    the one of its space group (None where the space group is unknown or not a valid number).

    Ingest computes it once (:func:`matconcept.service.store.payload.payload_from_parsed`); this is how
    readers of older stores (the payload model, the map's point columns) get the same value.
    """
    stored = payload.get("crystal_system")
    if stored is not None:
        return stored
    try:
        return crystal_system(payload.get("spacegroup_number"))
    except ValueError:
        return None


INT32_MAX = 2**31 - 1
"""Largest site count a filter takes (int32); a larger number is refused here, never passed to the engine."""


def _is_list_like(value: Any) -> bool:
    """A list, tuple, set or other iterable of items (not a mapping, bytes, a number or None)."""
    return isinstance(value, Iterable) and not isinstance(value, Mapping | bytes | str)


def _element_list(values: Any, field: str) -> list[str]:
    from pymatgen.core import Element

    if isinstance(values, str):
        values = [v for v in values.replace("-", ",").split(",") if v.strip()]
    if not _is_list_like(values):  # a null or a number: a ValueError is a 400, a TypeError a 500
        raise ValueError(f"{field}: a list of element symbols, not {type(values).__name__}")
    out = []
    for value in values:
        symbol = str(value).strip()
        symbol = symbol[:1].upper() + symbol[1:].lower()
        if not Element.is_valid_symbol(symbol):
            raise ValueError(f"{field}: {value!r} is not an element symbol")
        out.append(symbol)
    return sorted(set(out))


_SYMBOLS = (
    "H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se Br Kr Rb Sr Y Zr "
    "Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir "
    "Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm Bk Cf Es Fm Md No Lr Rf Db Sg Bh Hs Mt Ds Rg Cn Nh "
    "Fl Mc Lv Ts Og"
)
ELEMENT_SYMBOLS: tuple[str, ...] = tuple(_SYMBOLS.split())
"""The element symbols a filter names, for the API schema (pymatgen checks them; it also takes any case)."""
_ELEMENT = "|".join(ELEMENT_SYMBOLS)
ElementSymbol = Annotated[str, WithJsonSchema({"type": "string", "enum": list(ELEMENT_SYMBOLS)})]
ChemicalSystem = Annotated[str, WithJsonSchema({"type": "string", "pattern": f"^({_ELEMENT})(-({_ELEMENT}))*$"})]


class SearchFilters(BaseModel):
    """Payload filters for search and count; every condition must hold (AND)."""

    model_config = ConfigDict(extra="forbid")

    elements_all: list[ElementSymbol] = Field(default_factory=list, description="must contain all of these elements")
    elements_none: list[ElementSymbol] = Field(default_factory=list, description="must contain none of these elements")
    elements_only: list[ElementSymbol] = Field(
        default_factory=list,
        description="only these elements, not necessarily all (a subset of the set, e.g. from XRF or EDS)",
    )
    chemical_system: ChemicalSystem | None = Field(default=None, description='exactly these elements, e.g. "Co-Li-O"')
    spacegroup_number: int | None = Field(default=None, ge=1, le=230)
    min_sites: int | None = Field(default=None, ge=1, le=INT32_MAX)
    max_sites: int | None = Field(default=None, ge=1, le=INT32_MAX)
    sources: list[str] = Field(default_factory=list, description="any of these sources")

    @field_validator("elements_all", "elements_none", "elements_only", mode="before")
    @classmethod
    def _elements(cls, value: Any, info) -> list[str]:
        return _element_list(value, info.field_name)

    @field_validator("chemical_system")
    @classmethod
    def _chemsys(cls, value: str | None) -> str | None:
        if value is None:
            return None
        elements = _element_list(value, "chemical_system")
        if not elements:
            raise ValueError("chemical_system: no elements given")
        return "-".join(elements)

    @field_validator("sources", mode="before")
    @classmethod
    def _sources(cls, value: Any) -> list[str]:
        if isinstance(value, str):
            value = value.split(",")
        if not _is_list_like(value):
            raise ValueError(f"sources: a list of source names, not {type(value).__name__}")
        return [str(v).strip() for v in value if str(v).strip()]

    @model_validator(mode="after")
    def _consistent(self) -> SearchFilters:
        if self.min_sites is not None and self.max_sites is not None and self.min_sites > self.max_sites:
            raise ValueError(f"min_sites ({self.min_sites}) is larger than max_sites ({self.max_sites})")
        clash = set(self.elements_all) & set(self.elements_none)
        if clash:
            raise ValueError(f"elements {sorted(clash)} are both required and excluded")
        if self.elements_only:
            outside = (set(self.elements_all) | set(self.chemical_system_elements)) - set(self.elements_only)
            if outside:
                raise ValueError(f"elements {sorted(outside)} are required but not among elements_only")
        return self

    @property
    def chemical_system_elements(self) -> list[str]:
        return self.chemical_system.split("-") if self.chemical_system else []

    def is_empty(self) -> bool:
        return self == SearchFilters()


class Hit(BaseModel):
    """One search result: Euclidean distance (smaller is closer) and the stored payload.

    A pattern query's hits are re-ranked by search-match: ``match`` holds that score, the fitted
    strain and zero shift; ``distance`` stays the embedding distance of the first stage.
    """

    material_id: str
    distance: float
    payload: MaterialPayload
    match: PatternMatch | None = None
    notion: str | None = Field(
        default=None,
        description="which vectors found it: crystal (concept), structure, xrd; for a hybrid search the notion "
        "that ranked it higher (distance is in that notion)",
    )
    fusion: str | None = Field(default=None, description="a hybrid search: how the notions were fused (rrf, zscore)")
    score: float | None = Field(default=None, description="a hybrid search: the fused score, higher is better")


class MaterialRecord(BaseModel):
    """A stored point read back by id; ``vectors`` only when asked for."""

    material_id: str
    payload: MaterialPayload
    vectors: dict[str, list[float]] | None = None
    structure: StructureFile | None = Field(default=None, description="the stored structure, only when asked for")


class PointIn(BaseModel):
    """A point to write: payload plus both vectors, written in one operation (never half a point)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    payload: MaterialPayload
    crystal: np.ndarray
    xrd: np.ndarray
    structure_type: np.ndarray | None = Field(
        default=None, description="the structure-type vector (the named vector ``structure``), if the model has one"
    )
    structure: StoredStructure | None = Field(default=None, description="kept in the payload, never searched")
    phase: PhaseFeatures | None = Field(
        default=None, description="peak list (payload, never searched) and fingerprint (a named vector)"
    )

    def stored_payload(self) -> dict[str, Any]:
        """The engine payload: the metadata and, when given, the structure and peak-list fields."""
        payload = self.payload.model_dump(mode="json")
        if self.structure is not None:
            payload |= self.structure.to_payload()
        if self.phase is not None:
            payload |= self.phase.to_payload()
        return payload

    @field_validator("crystal", "xrd", "structure_type", mode="before")
    @classmethod
    def _vector(cls, value: Any, info) -> np.ndarray | None:
        if value is None and info.field_name == "structure_type":
            return None
        array = np.asarray(value, dtype=np.float32)
        if array.ndim != 1 or array.size == 0:
            raise ValueError(f"{info.field_name} must be a 1-D vector, got shape {array.shape}")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{info.field_name} vector holds NaN or infinite values")
        return array
