"""``matconcept ingest --reembed``: recompute the vectors of stored points from their kept structures.

How an existing store gets a vector it lacks (the structure-type vector, after a checkpoint with that
encoder ships): every point of a source collection is read whole (payload and vectors), its kept
primitive cell (:class:`~matconcept.service.store.structures.StoredStructure`) is featurized and
embedded with the current model (:func:`~matconcept.service.ingest.local.embed_all`, as ingest does),
and the point is written to the target collection with the new model vectors, the fingerprint it
had and its payload exactly as read. Nothing else changes: no file is read again, no payload field
is rewritten. The source is the target itself (in place) or the collection of an earlier model id
(a new checkpoint has a new id, so its collection starts empty).

A point stored before structures were kept has nothing to embed: it is counted as ``skipped``
(re-ingest its files to complete it).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from pydantic import BaseModel

from matconcept.encoders.embedder import Embedder
from matconcept.service.ingest.local import DEFAULT_BATCH, embed_all
from matconcept.service.store.base import VectorStore
from matconcept.service.store.peaks import FINGERPRINT
from matconcept.service.store.records import STRUCTURE_VECTOR, VECTOR_NAMES
from matconcept.service.store.structures import StoredStructure

logger = logging.getLogger(__name__)


class ReembedSummary(BaseModel):
    """What a re-embedding did; ``read == reembedded + skipped + failed``."""

    read: int = 0
    reembedded: int = 0
    skipped: int = 0
    """points without a kept structure (stored before structures were kept)"""
    failed: int = 0
    """kept structures that could not be featurized or embedded (logged with their ids)"""
    seconds: float = 0.0


def reembed(
    source: VectorStore,
    target: VectorStore,
    embedder: Embedder,
    *,
    batch: int = DEFAULT_BATCH,
    progress: bool = True,
) -> ReembedSummary:
    """Recompute every point of ``source`` with ``embedder`` and write it to ``target`` (may be the same).

    Raises:
        ValueError: ``target`` is not the embedder's model's collection.
    """
    from tqdm import tqdm

    if embedder.model_id != target.model_id:
        raise ValueError(f"the embedder's model {embedder.model_id} does not match the store's {target.model_id}")
    started = time.perf_counter()
    summary = ReembedSummary()
    # In place, the scroll goes on by point id while the points read are rewritten: ids never change.
    with tqdm(total=source.count(), desc="reembed", unit="point", disable=not progress or None, file=sys.stderr) as bar:
        for page in source.scroll_raw(page=batch):
            summary.read += len(page)
            target.write_raw(_reembedded(page, embedder, target, summary))
            bar.update(len(page))
    summary.seconds = round(time.perf_counter() - started, 3)
    return summary


def _reembedded(
    page: list[tuple[dict[str, Any], dict[str, list[float]]]],
    embedder: Embedder,
    target: VectorStore,
    summary: ReembedSummary,
) -> list[tuple[str, dict[str, list[float]], dict[str, Any]]]:
    """The page's points with new model vectors (payload as read, fingerprint kept)."""
    graphs, kept = [], []
    for payload, vectors in page:
        mid = payload.get("material_id", "?")
        stored = StoredStructure.from_payload(payload)
        if stored is None:
            summary.skipped += 1
            continue
        try:
            graphs.append(embedder.featurizer.featurize(stored.pymatgen()))
        except Exception as exc:  # one bad structure never stops the run
            logger.warning("%s: featurizing the kept structure failed: %s", mid, exc)
            summary.failed += 1
            continue
        kept.append((mid, payload, vectors))
    if not kept:
        return []
    crystal, xrd, types = embed_all(embedder, graphs)
    out = []
    for (mid, payload, old), c, x, t in zip(kept, crystal, xrd, types, strict=True):
        vectors = {VECTOR_NAMES[0]: c.tolist(), VECTOR_NAMES[1]: x.tolist()}
        if t is not None and target.has_vector(STRUCTURE_VECTOR):
            vectors[STRUCTURE_VECTOR] = t.tolist()
        if FINGERPRINT in old and target.has_vector(FINGERPRINT):
            vectors[FINGERPRINT] = list(old[FINGERPRINT])
        out.append((mid, vectors, payload))
    summary.reembedded += len(out)
    return out
