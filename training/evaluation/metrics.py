"""Retrieval and neighbour-quality metrics on embedding vectors, with exact Euclidean distances.

Every metric here takes plain arrays (rows are items) so the same code scores our embedding and
every hand-crafted baseline. Distances are exact L2 (no approximate index): an evaluation must not
mix the quality of the embedding with the recall of a search structure.

Conventions:
* ``leave-one-out``: an item is never its own neighbour (its self-distance is set to +inf).
* Ties in distance are broken by item order (a stable sort); metrics that rank a single correct
  answer count only *strictly* closer competitors, so a perfect embedding scores exactly 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from pydantic import BaseModel, Field

DISTANCE_CHUNK = 2048
"""Query rows per distance block: bounds memory at DISTANCE_CHUNK × n × 8 bytes."""


def pairwise_l2(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Exact Euclidean distances, float64 (len(a), len(b)); ``b`` defaults to ``a``.

    Uses ``torch.cdist`` without the matrix-multiplication shortcut, which loses digits for nearby
    points (identical rows must give exactly 0).

    Shapes: a (n, d), b (m, d) → (n, m).
    """
    ta = torch.as_tensor(np.asarray(a, dtype=np.float64))
    tb = ta if b is None else torch.as_tensor(np.asarray(b, dtype=np.float64))
    if ta.ndim != 2 or tb.ndim != 2 or ta.shape[1] != tb.shape[1]:
        raise ValueError(f"need two (n, d) arrays with the same d, got {tuple(ta.shape)} and {tuple(tb.shape)}")
    blocks = [
        torch.cdist(ta[i : i + DISTANCE_CHUNK], tb, compute_mode="donot_use_mm_for_euclid_dist")
        for i in range(0, len(ta), DISTANCE_CHUNK)
    ]
    return torch.cat(blocks).numpy() if blocks else np.zeros((0, len(tb)))


def _curve_from_distances(dist: np.ndarray, max_k: int) -> np.ndarray:
    own = np.diag(dist)[:, None]
    rank = (dist < own).sum(axis=1)  # 0 = found first
    return np.array([(rank < k).mean() for k in range(1, max_k + 1)])


def retrieval_curve(queries: np.ndarray, keys: np.ndarray, max_k: int = 10) -> np.ndarray:
    """Top-k accuracy for k = 1..max_k when query i's one correct answer is key i.

    This is the paper's validation metric (XRD embeddings as queries against crystal embeddings,
    global over the whole set). A query counts as found within k when fewer than k keys are
    strictly closer to it than its own key.

    Shapes: queries (n, d), keys (n, d) → (max_k,) fractions in [0, 1].
    """
    return cross_modal_retrieval(queries, keys, max_k)[0]


def cross_modal_retrieval(a: np.ndarray, b: np.ndarray, max_k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Top-k curves of both directions, a → b and b → a, from one distance matrix.

    Shapes: a (n, d), b (n, d) → two (max_k,) arrays.
    """
    if len(a) != len(b):
        raise ValueError(f"{len(a)} queries but {len(b)} keys; query i must match key i")
    if len(a) == 0:
        return np.full(max_k, np.nan), np.full(max_k, np.nan)
    dist = pairwise_l2(a, b)
    return _curve_from_distances(dist, max_k), _curve_from_distances(dist.T, max_k)


class NeighbourQuality(BaseModel):
    """Leave-one-out family consistency of nearest neighbours.

    ``r_precision``: for a query with R other members of its family, the fraction of its R nearest
    neighbours that are in the family (1 = the family forms a tight cluster). ``precision_at_k``:
    the fraction of its k nearest neighbours in the family. Both are averaged over queries that
    have at least one other family member; ``chance_*`` is what randomly ordered neighbours score.
    """

    n_queries: int
    n_families: int
    r_precision: float
    precision_at_k: dict[int, float] = Field(description="k → mean precision")
    chance_r_precision: float
    chance_precision: float


def neighbour_quality(
    vectors: np.ndarray, labels: Sequence[str], ks: Sequence[int] = (1, 5, 10, 20, 50)
) -> NeighbourQuality:
    """R-precision and precision@k of same-label neighbours (leave-one-out, exact L2).

    Shapes: vectors (n, d); labels length n.
    """
    if len(labels) != len(vectors):
        raise ValueError(f"{len(vectors)} vectors but {len(labels)} labels")
    return neighbour_quality_from_distances(pairwise_l2(vectors), labels, ks)


def neighbour_quality_from_distances(
    dist: np.ndarray, labels: Sequence[str], ks: Sequence[int] = (1, 5, 10, 20, 50)
) -> NeighbourQuality:
    """:func:`neighbour_quality` of any dissimilarity matrix (a fused ranking, a baseline's own metric).

    Shapes: dist (n, n), smaller = more alike (the diagonal is ignored); labels length n.
    """
    labels_arr = np.asarray(labels, dtype=object)
    if dist.shape != (len(labels_arr), len(labels_arr)):
        raise ValueError(f"a {dist.shape} distance matrix for {len(labels_arr)} labels")
    n = len(labels_arr)
    _, codes = np.unique(labels_arr.astype(str), return_inverse=True)
    same = codes[:, None] == codes[None, :]
    np.fill_diagonal(same, False)
    r = same.sum(axis=1)
    queries = np.flatnonzero(r > 0)
    if len(queries) == 0:
        nan = float("nan")
        return NeighbourQuality(
            n_queries=0,
            n_families=len(set(codes.tolist())),
            r_precision=nan,
            precision_at_k=dict.fromkeys(ks, nan),
            chance_r_precision=nan,
            chance_precision=nan,
        )
    dist = np.array(dist, dtype=np.float64, copy=True)
    np.fill_diagonal(dist, np.inf)
    order = np.argsort(dist[queries], axis=1, kind="stable")[:, : n - 1]
    hits = np.take_along_axis(same[queries], order, axis=1)  # (q, n-1): neighbour j is in the family
    cum = np.cumsum(hits, axis=1)
    rq = r[queries]
    r_prec = cum[np.arange(len(queries)), rq - 1] / rq
    at_k = {int(k): float((cum[:, min(k, n - 1) - 1] / min(k, n - 1)).mean()) for k in ks}
    chance = float((rq / (n - 1)).mean())
    return NeighbourQuality(
        n_queries=len(queries),
        n_families=len(set(codes[queries].tolist())),
        r_precision=float(r_prec.mean()),
        precision_at_k=at_k,
        chance_r_precision=chance,
        chance_precision=chance,
    )


def nearest_other_distance(vectors: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
    """Distance from each row to its nearest *other* row (the nearest different material).

    ``exclude`` (n, n) bool marks pairs that do not count as different (e.g. duplicates).

    Shapes: vectors (n, d) → (n,).
    """
    dist = pairwise_l2(vectors)
    np.fill_diagonal(dist, np.inf)
    if exclude is not None:
        dist[exclude] = np.inf
    return dist.min(axis=1)
