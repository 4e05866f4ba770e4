"""Which notion of "similar" a search uses when the query does not say (``using`` unset).

The default is the notion that scored best on the labelled evaluation (``matconcept evaluate-notions``,
README "Structure types"): on held-out real families, ``hybrid`` (z-scored distances, structure weight
0.6) has the best mean of structure-type and concept R-precision, 0.739, against 0.583 for
``structure`` and 0.486 for ``crystal`` (model mc-ffda0817a29bdc7c). So a structure, or a stored
material ("more like this"), is searched by ``hybrid`` where the model has the structure-type
encoder. A pattern has no structure-type vector (its query is the XRD encoder's vector, in the
concept's space) and a raw vector is one notion's, so both are searched by ``crystal``, as is
everything on a model without that encoder.

One rule for every front: the service (HTTP JSON and multipart, gRPC ``VECTOR_SPACE_UNSPECIFIED``, the
pages) and the CLI's local search call :func:`resolve_using`; the answer names the notion it chose.
"""

from __future__ import annotations

from typing import Literal, Protocol

from matconcept.service.app.schemas import VectorName as Notion

QueryKind = Literal["structure", "material_id", "pattern", "vector"]
QUERY_KINDS: tuple[QueryKind, ...] = ("structure", "pattern", "material_id", "vector")

BEST_NOTION: Notion = "hybrid"
"""The measured best where it applies: a structure or a stored id on a model with the structure-type encoder."""
FALLBACK_NOTION: Notion = "crystal"
"""Everything else: a pattern, a raw vector, or a model without the structure-type encoder."""


class HasQuery(Protocol):
    """A search query (:class:`~matconcept.service.app.schemas.SearchQuery`): exactly one of these is set."""

    structure: object | None
    pattern: object | None
    material_id: str | None
    vector: list[float] | None


def query_kind(q: HasQuery) -> QueryKind:
    """What the query is: the first of structure, pattern, material_id, vector that is set."""
    for kind in QUERY_KINDS:
        if getattr(q, kind) is not None:
            return kind
    raise ValueError("a search query needs one of structure, pattern, material_id, vector")


def default_notion(kind: QueryKind, *, has_structure_type: bool) -> Notion:
    """The notion a query of this kind is searched by when it names none."""
    if kind in ("structure", "material_id") and has_structure_type:
        return BEST_NOTION
    return FALLBACK_NOTION


def resolve_using(using: Notion | None, kind: QueryKind, *, has_structure_type: bool) -> Notion:
    """``using`` as given, or the default for this kind of query (:func:`default_notion`)."""
    if using is not None:
        return using
    return default_notion(kind, has_structure_type=has_structure_type)
