"""Embedding store: materials with crystal and XRD vectors in Qdrant (embedded or server).

:func:`open_store` is the one facade: it picks the remote engine when ``QDRANT_URL`` is set and the
embedded on-disk engine otherwise, and always opens the collection of the given model id.
"""

from __future__ import annotations

from matconcept.service.store.base import StoreError, StoreLockedError, VectorStore
from matconcept.service.store.payload import content_hash, payload_from_parsed, point_id
from matconcept.service.store.records import (
    VECTOR_NAMES,
    Hit,
    MaterialPayload,
    MaterialRecord,
    PointIn,
    SearchFilters,
    StoreSettings,
)

__all__ = [
    "VECTOR_NAMES",
    "Hit",
    "MaterialPayload",
    "MaterialRecord",
    "PointIn",
    "SearchFilters",
    "StoreError",
    "StoreLockedError",
    "StoreSettings",
    "VectorStore",
    "content_hash",
    "open_store",
    "payload_from_parsed",
    "point_id",
]


def open_store(
    settings: StoreSettings, model_id: str, dim: int = 1024, structure_dim: int | None = None
) -> VectorStore:
    """The collection of ``model_id``: on the Qdrant server when ``settings.qdrant_url``, else on disk.

    ``structure_dim``: the model's structure-type vector size, if it has that encoder (a new collection
    then keeps the ``structure`` vector too)."""
    name = settings.collection_name(model_id)
    if settings.qdrant_url:
        from matconcept.service.store.remote import RemoteStore

        return RemoteStore(
            settings.qdrant_url, name, model_id, dim, api_key=settings.qdrant_api_key, structure_dim=structure_dim
        )
    from matconcept.service.store.edge import EdgeStore

    return EdgeStore(settings.db_dir / name, model_id, dim, structure_dim=structure_dim)
