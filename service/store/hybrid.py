"""Hybrid search: the concept (``crystal``) and structure-type (``structure``) neighbours fused into one list.

Two fusions, selectable so they can be measured against each other on labelled families:

- ``rrf``: reciprocal rank fusion, ``Σ w / (k + rank)`` over the two candidate lists. The engines do
  it themselves (Qdrant's query API: one prefetch per notion, then ``Fusion.Rrf``);
  :func:`rrf_fuse` is the same rule in our code, for labelling hits and for engines without it.
- ``zscore``: a weighted sum of per-query z-scored distances
  (:func:`matconcept.encoders.fusion.zscore_distance`, the rule ``evaluate-notions`` measures). Every
  candidate of either list gets both distances, each notion's are standardised over those candidates
  (so a 1024-d concept distance and a 128-d structure distance become comparable), and the fused
  score is ``-(w_c z_c + w_s z_s)`` (higher is better).

Each fused hit names the notion that ranked it higher (its ``distance`` is in that notion) and the
fusion that produced it.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

Fusion = Literal["rrf", "zscore"]
HYBRID_NOTIONS: tuple[str, str] = ("crystal", "structure")
"""What a hybrid search fuses: the concept vectors and the structure-type vectors."""


class HybridOptions(BaseModel):
    """How a hybrid search fuses its two notions."""

    model_config = ConfigDict(extra="forbid")

    # The defaults are the best of what was measured on the validation families of the labelled real set
    # for model mc-ffda0817a29bdc7c (mean R-precision over structure-type and concept families, z-scored:
    # 0.778 at structure weight 0.6; 0.771 / 0.755 / 0.772 at 0.7 / 0.8 / 0.5); on the held-out test
    # families 0.739 at 0.6 (0.741 / 0.740 at 0.7 / 0.8). The previous model's best was 0.8 (0.598).
    fusion: Fusion = Field(default="zscore", description="rrf (rank fusion) or zscore (weighted z-scored distances)")
    structure_weight: float = Field(
        default=0.6, ge=0.0, le=1.0, description="weight of the structure notion; the concept notion gets 1 - it"
    )
    depth: int = Field(default=100, ge=1, le=10_000, description="candidates taken from each notion before fusing")
    rrf_k: int = Field(default=60, ge=1, le=10_000, description="the k of reciprocal rank fusion (1 / (k + rank))")

    def weights(self) -> dict[str, float]:
        """Per-notion weights summing to 2, so equal weights (structure_weight 0.5) are 1 each: plain RRF."""
        return {"crystal": 2.0 * (1.0 - self.structure_weight), "structure": 2.0 * self.structure_weight}


class Fused(BaseModel):
    """One fused candidate: its key, fused score (higher is better), the notion that ranked it higher and
    its distance in that notion. The key is whatever the lists use: the store's point ids (a UUID object from
    the embedded engine, kept as is: formatting hundreds per query as strings cost ~1 ms), material ids in
    the evaluation."""

    key: Hashable
    score: float
    notion: str
    distance: float


def rrf_fuse(lists: Mapping[str, Sequence[tuple[str, float]]], options: HybridOptions) -> list[Fused]:
    """Reciprocal rank fusion of (key, distance) lists per notion, nearest first in each; best first.

    A candidate's notion is the list whose term ``w / (k + rank)`` is larger (ranks from 0, as in Qdrant's fusion).
    """
    weights = options.weights()
    score: dict[str, float] = {}
    best: dict[str, tuple[float, str, float]] = {}
    for notion, items in lists.items():
        for rank, (key, distance) in enumerate(items):
            term = weights.get(notion, 1.0) / (options.rrf_k + rank)
            score[key] = score.get(key, 0.0) + term
            if key not in best or term > best[key][0]:
                best[key] = (term, notion, distance)
    out = [Fused(key=k, score=s, notion=best[k][1], distance=best[k][2]) for k, s in score.items()]
    return sorted(out, key=lambda f: -f.score)


def zscore_fuse(
    lists: Mapping[str, Sequence[tuple[str, float]]],
    distances: Mapping[str, Mapping[str, float]],
    options: HybridOptions,
    limit: int | None = None,
) -> list[Fused]:
    """Weighted sum of per-query z-scored distances over the candidates; best first.

    The rule of :func:`matconcept.encoders.fusion.zscore_distance` (what ``evaluate-notions`` measures),
    applied to the union of the notions' candidate lists: every candidate's distance in each notion is
    standardised over the union, so the only difference from the evaluation is the candidate set.

    Args:
        lists: (key, distance) candidates per notion, nearest first.
        distances: notion → key → distance for every candidate of either list (the union), so a
            candidate found by one notion is still scored by the other.
        limit: keep the best ``limit`` only (all by default).
    """
    from matconcept.encoders.fusion import zscore_distance

    weights = options.weights()
    notions = list(lists)
    keys = list(dict.fromkeys(k for items in lists.values() for k, _ in items))
    if not keys:
        return []
    arrays = [np.asarray([distances[n].get(k, np.inf) for k in keys], dtype=np.float64) for n in notions]
    terms = np.stack([zscore_distance([d], [weights.get(n, 1.0)]) for n, d in zip(notions, arrays, strict=True)])
    total = terms.sum(axis=0)
    best = terms.argmin(axis=0)
    ranked = [i for i in np.argsort(total, kind="stable") if np.isfinite(total[i])][:limit]
    return [
        Fused(key=keys[i], score=float(-total[i]), notion=notions[best[i]], distance=float(arrays[best[i]][i]))
        for i in ranked
    ]
