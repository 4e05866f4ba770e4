"""Fusing two notions of "similar" (concept and structure type) into one ranking.

Two rules, both per query, both blind to the absolute scale of either vector space:

* **rank fusion** (reciprocal rank fusion, Cormack et al. 2009): score = Σ 1 / (k + rank). Only ranks
  count, so a notion whose distances are all alike cannot dominate; what Qdrant's query API does
  with ``prefetch`` + ``fusion: rrf``.
* **z-scored distance sum**: each notion's distances from the query are standardised over the
  candidates (mean 0, standard deviation 1) and summed with weights. Unlike ranks, this keeps how
  much closer one candidate is than the next.

Which rule wins is measured on labelled families (``matconcept evaluate``), not assumed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RRF_K = 60
"""The constant of reciprocal rank fusion (the value of the original paper and of Qdrant)."""


def ranks(dist: np.ndarray) -> np.ndarray:
    """0-based rank of each candidate along the last axis (ties broken by position). Shapes: (..., n) → (..., n)."""
    return np.argsort(np.argsort(dist, axis=-1, kind="stable"), axis=-1, kind="stable")


def rrf_distance(dists: Sequence[np.ndarray], k: int = RRF_K) -> np.ndarray:
    """Reciprocal rank fusion as a dissimilarity (smaller = more alike): −Σ 1/(k + 1 + rank).

    Shapes: each (q, n) or (n,) distances over the same candidates → the same shape.
    """
    return -sum(1.0 / (k + 1.0 + ranks(d)) for d in dists)


def zscore_distance(dists: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """Weighted sum of per-query z-scored distances (smaller = more alike).

    Infinite entries (the query itself, excluded candidates) stay infinite and do not enter the mean
    or the standard deviation. Shapes: each (q, n) or (n,) → the same shape.
    """
    weights = list(weights) if weights is not None else [1.0] * len(dists)
    if len(weights) != len(dists):
        raise ValueError(f"{len(weights)} weights for {len(dists)} notions")
    total = None
    for d, w in zip(dists, weights, strict=True):
        d = np.asarray(d, dtype=np.float64)
        finite = np.isfinite(d)
        masked = np.where(finite, d, np.nan)
        mean = np.nanmean(masked, axis=-1, keepdims=True)
        std = np.nanstd(masked, axis=-1, keepdims=True)
        z = np.where(finite, (d - mean) / np.where(std > 0, std, 1.0), np.inf)
        total = w * z if total is None else total + w * z
    assert total is not None
    return total
