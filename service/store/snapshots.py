"""Snapshots with a receipt: what a snapshot holds (count and a content digest), so a restore can be checked.

:meth:`VectorStore.snapshot` writes the collection to one file (the embedded store: ``store.json`` and
the shard as ``.tar.gz``; a Qdrant server: its collection snapshot). :func:`take_snapshot` also
records how many materials the file holds and :func:`content_digest` — a sha256 over every
``(material id, content hash)`` pair, sorted — computed in the same critical section as the snapshot,
so the receipt describes exactly the file. After :meth:`VectorStore.restore`, :func:`content_digest`
of the restored store equals the receipt's, or the restore is not what was snapshotted.

The service takes a snapshot under its store lock (``POST /v1/snapshots``): a write is in it if the
store applied it before the snapshot began, and absent otherwise, never half applied.
``matconcept store snapshot`` / ``restore`` do the same from the command line.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field

from matconcept.service.store.base import VectorStore

SNAPSHOTS_DIR = "snapshots"
"""Where the service writes snapshots: ``<store directory>/snapshots/``."""


class SnapshotInfo(BaseModel):
    """A written snapshot and what it holds."""

    path: str = Field(description="the snapshot file, on the store's host")
    count: int = Field(description="materials in the snapshot")
    digest: str = Field(description="sha256 of the sorted (material id, content hash) pairs; see content_digest")
    bytes: int = Field(description="file size")
    model_id: str
    engine: str
    created_at: str = Field(description="ISO 8601 UTC")


def content_digest(store: VectorStore) -> tuple[int, str]:
    """(count, sha256 hex) over every stored ``material_id content_hash`` line, sorted by id."""
    pairs = sorted(
        (p["material_id"], str(p.get("content_hash", "")))
        for payloads, _ in store.scroll(["content_hash"])
        for p in payloads
    )
    digest = hashlib.sha256()
    for material_id, content_hash in pairs:
        digest.update(f"{material_id} {content_hash}\n".encode())
    return len(pairs), digest.hexdigest()


def snapshot_name(model_id: str, label: str | None = None, now: datetime | None = None) -> str:
    """``<model id>-<UTC time>[-<label>].tar.gz``: sortable, one per call (microseconds)."""
    now = now or datetime.now(UTC)
    return f"{model_id}-{now.strftime('%Y%m%dT%H%M%S%fZ')}{f'-{label}' if label else ''}.tar.gz"


def take_snapshot(store: VectorStore, path: str | Path) -> SnapshotInfo:
    """Write ``store`` to ``path`` and describe it. The caller holds whatever lock keeps writes out."""
    count, digest = content_digest(store)
    written = Path(store.snapshot(path))
    return SnapshotInfo(
        path=str(written),
        count=count,
        digest=digest,
        bytes=written.stat().st_size,
        model_id=store.model_id,
        engine=store.engine,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
