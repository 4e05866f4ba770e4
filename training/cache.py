"""Featurized corpus on disk: crystal graphs and XRD patterns in shards, built in parallel, reused.

Featurizing 24k structures (neighbour lists + XRD simulation) takes minutes on two cores, training
then reads them hundreds of times, so they are computed once per (corpus shard, featurizer settings)
and saved as flat tensors. A shard's file name carries a hash of its records and of the settings:
re-running reuses every shard whose inputs are unchanged and recomputes only the rest.

Layout of a :class:`GraphStore` (G graphs, N nodes, E edges, P non-zero XRD bins in total):
``x`` (N, 92) float32, ``node_ptr`` (G+1,), ``edge_index`` (2, E) int32 *local to each graph*,
``edge_dist`` (E,) float32, ``edge_ptr`` (G+1,), ``xrd_idx`` (P,) int16, ``xrd_val`` (P,) float32,
``xrd_ptr`` (G+1,). XRD patterns are stored sparsely: a simulated pattern is a histogram of a few
hundred reflections on 5000 bins, so this is ~20× smaller than dense.
"""

from __future__ import annotations

import hashlib
import logging
import os
from contextlib import closing
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from matconcept.encoders.featurize import Featurizer
from matconcept.encoders.graph import GraphSettings
from matconcept.encoders.pipeline import parallel_featurize
from matconcept.encoders.xrd import XRDSettings
from matconcept.training.corpus import CorpusRecord

logger = logging.getLogger(__name__)

SHARD_SIZE = 2048
"""Records per shard: small enough that an interrupted build loses little, large enough to keep
the number of files low."""
POOL_CHUNKSIZE = 16
"""Records per task sent to a featurizing worker (records are cheaper to send than raw files)."""
STORE_KEYS = ("x", "node_ptr", "edge_index", "edge_dist", "edge_ptr", "xrd_idx", "xrd_val", "xrd_ptr", "ok")


@dataclass
class GraphStore:
    """Flat tensors of many featurized structures (see the module docstring for the layout)."""

    x: torch.Tensor
    node_ptr: torch.Tensor
    edge_index: torch.Tensor
    edge_dist: torch.Tensor
    edge_ptr: torch.Tensor
    xrd_idx: torch.Tensor
    xrd_val: torch.Tensor
    xrd_ptr: torch.Tensor
    ok: torch.Tensor
    """(G,) bool: False where featurization failed (the graph is empty and must not be sampled)."""

    def __len__(self) -> int:
        return int(self.ok.numel())

    def to_dict(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k) for k in STORE_KEYS}

    @classmethod
    def concat(cls, stores: list[GraphStore]) -> GraphStore:
        """One store holding ``stores`` in order (pointers shifted)."""

        def ptr(name: str) -> torch.Tensor:
            parts, offset = [torch.zeros(1, dtype=torch.int64)], 0
            for s in stores:
                p = getattr(s, name)
                parts.append(p[1:] + offset)
                offset += int(p[-1])
            return torch.cat(parts)

        return cls(
            x=torch.cat([s.x for s in stores]),
            node_ptr=ptr("node_ptr"),
            edge_index=torch.cat([s.edge_index for s in stores], dim=1),
            edge_dist=torch.cat([s.edge_dist for s in stores]),
            edge_ptr=ptr("edge_ptr"),
            xrd_idx=torch.cat([s.xrd_idx for s in stores]),
            xrd_val=torch.cat([s.xrd_val for s in stores]),
            xrd_ptr=ptr("xrd_ptr"),
            ok=torch.cat([s.ok for s in stores]),
        )

    @classmethod
    def from_arrays(cls, items: list[dict[str, np.ndarray] | None], n_features: int = 92) -> GraphStore:
        """Pack per-structure arrays (None for a failure) into one store."""
        empty = {
            "x": np.zeros((0, n_features), np.float32),
            "edge_index": np.zeros((2, 0), np.int32),
            "edge_dist": np.zeros(0, np.float32),
            "xrd_idx": np.zeros(0, np.int16),
            "xrd_val": np.zeros(0, np.float32),
        }
        rows = [it if it is not None else empty for it in items]

        def ptr(key: str, axis: int = 0) -> torch.Tensor:
            counts = [r[key].shape[axis] for r in rows]
            return torch.from_numpy(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))

        return cls(
            x=torch.from_numpy(np.concatenate([r["x"] for r in rows])),
            node_ptr=ptr("x"),
            edge_index=torch.from_numpy(np.concatenate([r["edge_index"] for r in rows], axis=1)),
            edge_dist=torch.from_numpy(np.concatenate([r["edge_dist"] for r in rows])),
            edge_ptr=ptr("edge_dist"),
            xrd_idx=torch.from_numpy(np.concatenate([r["xrd_idx"] for r in rows])),
            xrd_val=torch.from_numpy(np.concatenate([r["xrd_val"] for r in rows])),
            xrd_ptr=ptr("xrd_val"),
            ok=torch.tensor([it is not None for it in items], dtype=torch.bool),
        )


def featurize_record(record_json: str, featurizer: Featurizer) -> dict[str, np.ndarray] | None:
    """Compact arrays of one record's graph and sparse pattern; None (and a log line) if it fails."""
    record = CorpusRecord.model_validate_json(record_json)
    try:
        structure = record.structure()
        data = featurizer.graph.featurize(structure)
        pattern = featurizer.pattern(structure)
    except Exception as exc:  # a bad record must not stop a 24k-structure build
        logger.warning("record %s: featurization failed: %s", record.id, exc)
        return None
    nz = np.flatnonzero(pattern)
    return {
        "x": data.x.numpy(),
        "edge_index": data.edge_index.numpy().astype(np.int32),
        "edge_dist": data.edge_dist.numpy(),
        "xrd_idx": nz.astype(np.int16),
        "xrd_val": pattern[nz].astype(np.float32),
    }


def settings_key(graph: GraphSettings, xrd: XRDSettings) -> str:
    """Hash of the featurizer settings: a cache made with other settings is never reused."""
    text = graph.model_dump_json() + xrd.model_dump_json()
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def build_cache(
    records: list[CorpusRecord],
    cache_dir: Path,
    graph: GraphSettings | None = None,
    xrd: XRDSettings | None = None,
    workers: int | None = None,
) -> GraphStore:
    """Featurize ``records`` into ``cache_dir`` (reusing shards already there) and return them, in order."""
    graph = graph or GraphSettings()
    xrd = xrd or XRDSettings()
    folder = Path(cache_dir) / settings_key(graph, xrd)
    folder.mkdir(parents=True, exist_ok=True)
    shards: list[GraphStore] = []
    missing: list[tuple[int, Path, list[str]]] = []
    texts = [r.model_dump_json() for r in records]
    for i, start in enumerate(range(0, len(texts), SHARD_SIZE)):
        chunk = texts[start : start + SHARD_SIZE]
        digest = hashlib.sha256("\n".join(chunk).encode()).hexdigest()[:16]
        path = folder / f"shard-{i:05d}-{digest}.pt"
        shards.append(None)  # type: ignore[arg-type]
        if path.exists():
            shards[i] = GraphStore(**torch.load(path, weights_only=True))
        else:
            missing.append((i, path, chunk))
    if missing:
        workers = workers or os.cpu_count() or 1
        total = sum(len(c) for _, _, c in missing)
        logger.info("featurizing %d structures in %d shards with %d workers", total, len(missing), workers)
        texts_to_do = (text for _, _, chunk in missing for text in chunk)
        results = parallel_featurize(texts_to_do, featurize_record, graph, xrd, workers, chunksize=POOL_CHUNKSIZE)
        # One pool for all missing shards, results in input order: each shard is cut from the stream
        # and saved as soon as its last record is done.
        with closing(results), tqdm(total=total, desc="featurize", unit="structure", disable=None) as bar:
            for i, path, chunk in missing:
                items = []
                for item in islice(results, len(chunk)):
                    items.append(item)
                    bar.update()
                store = GraphStore.from_arrays(items)
                tmp = path.with_suffix(".tmp")
                torch.save(store.to_dict(), tmp)
                tmp.replace(path)  # atomic: an interrupted build never leaves a half shard behind
                shards[i] = store
    return GraphStore.concat(shards) if shards else GraphStore.from_arrays([])
