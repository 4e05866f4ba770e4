"""The HTTP API's OpenAPI document: what each route takes, what it answers on failure, and the API key.

The routes read their body themselves (JSON or a multipart form, one parsing path each, behind the
body-size middleware), so FastAPI cannot infer the request bodies; :func:`request_body` declares
them (``openapi_extra``): the JSON model and the multipart form model, with examples that work when
pressed in ``/docs`` on any store (they upload a rock-salt CIF; the id examples name the material
the upsert example stores). :func:`error_responses` declares the error answers
(:class:`~matconcept.service.app.schemas.ErrorBody`), and :func:`openapi_document` completes the
document with the models the bodies refer to and the bearer-key scheme, so a client generated from
``/openapi.json`` can call every route.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from matconcept.service.app.schemas import ErrorBody

REF = "#/components/schemas/{model}"
BEARER = "bearer"
"""The security scheme's name: ``Authorization: Bearer <key>`` (MATCONCEPT_API_KEY), as over gRPC."""
EXAMPLE_SOURCE, EXAMPLE_SOURCE_ID = "user", "nacl-example"
EXAMPLE_ID = f"{EXAMPLE_SOURCE}:{EXAMPLE_SOURCE_ID}"
"""The material the upsert example stores; the search-by-id, get and delete examples name it."""
NACL_CIF = """data_NaCl
_symmetry_space_group_name_H-M   'F m -3 m'
_symmetry_Int_Tables_number      225
_cell_length_a                   5.6402
_cell_length_b                   5.6402
_cell_length_c                   5.6402
_cell_angle_alpha                90
_cell_angle_beta                 90
_cell_angle_gamma                90
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
Na1 Na 0 0 0
Cl1 Cl 0.5 0.5 0.5
"""
"""Rock salt, the examples' structure: short enough to read in ``/docs``, valid on any store."""
NACL = {"content": NACL_CIF, "name": "NaCl.cif"}

ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Bad input: a field, a file or a value the service cannot use; the message names it.",
    401: "The API key is missing or wrong (`Authorization: Bearer <key>`).",
    404: "No such stored material, or no map computed yet.",
    413: "Over a cap: the request body, a structure file, a pattern's points, ids or items per request.",
    503: "A replica the request needs is restarting or overloaded; retry in a few seconds.",
}


def example(summary: str, value: Any) -> dict[str, Any]:
    return {"summary": summary, "value": value}


EXAMPLES: dict[str, dict[str, dict[str, Any]]] = {
    "search": {
        "structure": example(
            "Neighbours of a CIF (rock salt), by the default notion (hybrid on a model with structure types)",
            {"structure": NACL, "top_k": 5},
        ),
        "filtered": example(
            "…among chlorides of at most 10 sites",
            {"structure": NACL, "top_k": 5, "filters": {"elements_all": ["Cl"], "max_sites": 10}},
        ),
        "by_concept": example("…by the learned concept alone", {"structure": NACL, "top_k": 5, "using": "crystal"}),
        "by_xrd": example("…compared by simulated XRD patterns", {"structure": NACL, "top_k": 5, "using": "xrd"}),
        "by_structure_type": example(
            "…of the same structure type, any chemistry", {"structure": NACL, "top_k": 5, "using": "structure"}
        ),
        "hybrid": example(
            "…concept and structure type fused (z-scored distances)",
            {"structure": NACL, "top_k": 5, "using": "hybrid", "hybrid": {"fusion": "zscore"}},
        ),
        "material_id": example(
            f"Neighbours of a stored material ({EXAMPLE_ID}: press the upsert example first)",
            {"material_id": EXAMPLE_ID, "top_k": 5},
        ),
    },
    "embed": {"structure": example("Vectors of a CIF (rock salt)", {"structure": NACL})},
    "pattern": {"structure": example("The simulated pattern of a CIF (rock salt)", {"structure": NACL})},
    "upsert": {
        "one": example(
            f"Store rock salt as {EXAMPLE_ID} (API key)",
            {
                "items": [
                    {
                        "structure": NACL,
                        "source": EXAMPLE_SOURCE,
                        "source_id": EXAMPLE_SOURCE_ID,
                        "tags": {"example": "openapi"},
                    }
                ]
            },
        )
    },
    "delete": {"one": example(f"Delete {EXAMPLE_ID} (API key)", {"material_ids": [EXAMPLE_ID]})},
    "map_place": {"structure": example("Place a CIF on the map", {"structure": NACL, "top_k": 5})},
    "snapshot": {
        "now": example("Snapshot the store now (API key)", {}),
        "labelled": example("…with a label in the file name", {"label": "before-migration"}),
    },
    "map_layout": {
        "defaults": example("Recompute with the defaults (t-SNE of the crystal vectors)", {}),
        "tuned": example("…with a lower perplexity and another seed", {"perplexity": 10, "seed": 1}),
    },
}
"""Examples per route, by name (the ``examples`` of each JSON body in ``/docs``)."""


def request_body(
    json_model: type[BaseModel],
    form_model: type[BaseModel] | None,
    examples: dict[str, dict[str, Any]],
    *,
    required: bool = True,
) -> dict[str, Any]:
    """The ``requestBody`` of a route that reads JSON (``json_model``) or a multipart form (``form_model``)."""
    content: dict[str, Any] = {
        "application/json": {"schema": {"$ref": REF.format(model=json_model.__name__)}, "examples": examples}
    }
    if form_model is not None:
        content["multipart/form-data"] = {"schema": {"$ref": REF.format(model=form_model.__name__)}}
    return {"required": required, "content": content}


def operation(body: dict[str, Any] | None = None, *, keyed: bool, optional_key: bool = False) -> dict[str, Any]:
    """``openapi_extra`` of a route: its request body and whether it takes the API key."""
    extra: dict[str, Any] = {}
    if body is not None:
        extra["requestBody"] = body
    if keyed:
        extra["security"] = [{BEARER: []}]
    elif optional_key:
        extra["security"] = [{}, {BEARER: []}]
    return extra


def error_responses(*statuses: int, reads_keyed: bool | None = None) -> dict[int | str, dict[str, Any]]:
    """``responses`` of a route: each error status with :class:`ErrorBody`. ``reads_keyed`` words the
    401 of a read route (False: reads are open on this service, so it only follows a key change)."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description = ERROR_DESCRIPTIONS[status]
        if status == 401 and reads_keyed is False:
            description += " Reads need it only where the service sets MATCONCEPT_READS_REQUIRE_KEY."
        out[status] = {"model": ErrorBody, "description": description}
    return out


class LiveLimits(NamedTuple):
    """The running service's caps and vector size, stated in its document (the models cannot know them):
    a client, or a fuzzer, then knows that ``top_k`` 5000 or a 3-value vector will be refused."""

    max_top_k: int
    dim: int
    max_ids: int
    max_upsert_items: int
    max_pattern_points: int


def _array(schemas: dict[str, Any], model: str, field: str, **bounds: int) -> None:
    prop = schemas.get(model, {}).get("properties", {}).get(field)
    if prop is None:
        return
    for branch in [prop, *prop.get("anyOf", [])]:
        if branch.get("type") == "array":
            branch.update(bounds)


def apply_limits(schemas: dict[str, Any], limits: LiveLimits) -> None:
    """Write the service's caps into the component schemas: ``top_k`` maxima, the vector's length, list sizes."""
    for schema in schemas.values():
        top_k = schema.get("properties", {}).get("top_k")
        if top_k is not None:
            top_k["maximum"] = limits.max_top_k
    _array(schemas, "SearchQuery", "vector", minItems=limits.dim, maxItems=limits.dim)
    _array(schemas, "DeleteQuery", "material_ids", maxItems=limits.max_ids)
    _array(schemas, "UpsertQuery", "items", maxItems=limits.max_upsert_items)
    for field in ("two_theta", "intensity"):
        _array(schemas, "PatternIn", field, maxItems=limits.max_pattern_points)


def openapi_document(
    app: FastAPI, body_models: Sequence[type[BaseModel]], limits: LiveLimits | None = None
) -> dict[str, Any]:
    """FastAPI's document plus the request-body models, the bearer scheme, the service's ``limits``, and without
    the 422 answers FastAPI lists by default (a request that fails validation is a 400 here, as every other bad
    input)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes, tags=app.openapi_tags
    )
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for model in body_models:
        schema = model.model_json_schema(ref_template=REF)
        for name, sub in schema.pop("$defs", {}).items():
            schemas.setdefault(name, sub)
        schemas.setdefault(model.__name__, schema)
    if limits is not None:
        apply_limits(schemas, limits)
    components["securitySchemes"] = {
        BEARER: {"type": "http", "scheme": "bearer", "description": "the service's API key (MATCONCEPT_API_KEY)"}
    }
    for path in doc.get("paths", {}).values():
        for op in path.values():
            op.get("responses", {}).pop("422", None)
    text = str(doc["paths"])
    for name in ("HTTPValidationError", "ValidationError"):
        if REF.format(model=name) not in text:
            schemas.pop(name, None)
    app.openapi_schema = doc
    return doc
