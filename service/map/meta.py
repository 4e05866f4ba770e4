"""What the map page needs to know besides the points: where to ask, and how to colour.

``GET /v1/map/meta`` answers with a :class:`MapMeta`: the API paths the page calls and the colour
fields it offers (their point column, kind, natural order and colour-bar ticks). The page
(``service/web/js``) hard-codes none of it, so a new colour field or a moved route is a change
here and in the routes, not in JavaScript; the crystal systems and their space-group ranges come
from :mod:`matconcept.encoders.symmetry`, the one place they are written.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from matconcept.encoders.symmetry import CRYSTAL_SYSTEM_RANGES, CRYSTAL_SYSTEMS, SPACEGROUP_RANGE

SYSTEM_ABBREVIATIONS = {
    "triclinic": "tricl.",
    "monoclinic": "mono.",
    "orthorhombic": "orth.",
    "tetragonal": "tetr.",
    "trigonal": "trig.",
    "hexagonal": "hex.",
    "cubic": "cubic",
}
"""Short names for colour-bar ticks (the bar is a few hundred pixels tall)."""
MIN_TICK_GAP = 5
"""Space-group numbers closer than this share one tick (triclinic 1 and monoclinic 3 would overlap)."""


class MapApi(BaseModel):
    """The HTTP paths the page calls (see :mod:`matconcept.service.app.http_routes`)."""

    map: str = Field(description="GET: the current layout and the layout job")
    points: str = Field(description="GET: every stored material's position, column by column")
    place: str = Field(description="POST multipart: place an uploaded CIF or XRD pattern")
    search: str = Field(description="POST JSON: neighbours of a stored material")
    material: str = Field(description="GET <material><material id>: one stored material (a prefix)")
    layout: str = Field(description="POST: recompute the layout (needs the API key); named in the page's hints")
    pattern: str = Field(description="POST JSON: the simulated powder pattern of an uploaded structure (results page)")


class Tick(BaseModel):
    """One labelled tick of a numeric field's colour bar."""

    value: float
    label: str


class ColorField(BaseModel):
    """One choice of the page's "Colour by" menu."""

    key: str = Field(description="the menu value")
    label: str = Field(description="the menu text")
    column: str = Field(description="the /v1/map/points column it reads")
    kind: Literal["element", "numeric", "categorical"] = Field(
        description="element: with/without the chosen element; numeric: a colour scale and bar; "
        "categorical: one legend entry per value"
    )
    order: list[str] | None = Field(
        default=None, description="categorical values in their natural order (others after them, by count)"
    )
    sort: Literal["count", "value"] = Field(
        default="count", description="categorical values without an order: most frequent first, or ascending"
    )
    unit: str | None = Field(default=None, description='legend entries read "<value> <unit>(s)"')
    range: tuple[float, float] | None = Field(default=None, description="numeric: the colour scale's ends")
    ticks: list[Tick] = Field(default_factory=list, description="numeric: labelled colour-bar ticks")
    missing: str = Field(default="unknown", description="legend name of materials without a value")


class MapMeta(BaseModel):
    """``GET /v1/map/meta``: the page's configuration."""

    api: MapApi
    fields: list[ColorField]
    default_field: str = Field(description="the key of the field the page starts with")
    crystal_systems: list[str] = Field(description="in order of increasing symmetry")


def spacegroup_ticks(min_gap: int = MIN_TICK_GAP) -> list[Tick]:
    """The first space group of each crystal system (systems closer than ``min_gap`` share a tick),
    and the last space group: ``1 tricl./mono.``, ``16 orth.``, ..., ``195 cubic``, ``230``."""
    merged: list[tuple[int, list[str]]] = []
    for system in CRYSTAL_SYSTEM_RANGES:
        name = SYSTEM_ABBREVIATIONS[system.name]
        if merged and system.first - merged[-1][0] < min_gap:
            merged[-1][1].append(name)
        else:
            merged.append((system.first, [name]))
    ticks = [Tick(value=first, label=f"{first} {'/'.join(names)}") for first, names in merged]
    last = SPACEGROUP_RANGE[1]
    return [*ticks, Tick(value=last, label=str(last))]


def color_fields() -> list[ColorField]:
    """The colour fields, in menu order."""
    return [
        ColorField(key="element", label="Element presence", column="elements", kind="element"),
        ColorField(
            key="spacegroup",
            label="Space group",
            column="spacegroup_number",
            kind="numeric",
            range=SPACEGROUP_RANGE,
            ticks=spacegroup_ticks(),
            missing="no space group",
        ),
        ColorField(
            key="crystal_system",
            label="Crystal system",
            column="crystal_system",
            kind="categorical",
            order=list(CRYSTAL_SYSTEMS),
        ),
        ColorField(key="source", label="Source", column="source", kind="categorical"),
        ColorField(
            key="n_elements",
            label="Number of elements",
            column="n_elements",
            kind="categorical",
            sort="value",
            unit="element",
        ),
    ]


def map_meta(api: MapApi, default_field: str = "source") -> MapMeta:
    """The page's configuration for routes at ``api``."""
    fields = color_fields()
    if default_field not in {f.key for f in fields}:
        raise ValueError(f"default colour field {default_field!r} is not one of the fields")
    return MapMeta(api=api, fields=fields, default_field=default_field, crystal_systems=list(CRYSTAL_SYSTEMS))
