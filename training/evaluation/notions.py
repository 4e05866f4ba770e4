"""Which notion of "similar" finds a material's family: concept, structure type, their fusion, baselines.

Scored on real labelled structures whose families the structure-type encoder never saw (the ``test``
side of :func:`matconcept.training.structure_type.family_split`), with two kinds of family:

* **structure type**: the canonical AFLOW prototype (rock salt, wurtzite, …), any chemistry;
* **concept**: the prototype *and* the set of periodic-table groups of the elements (rock-salt alkali
  halides, rock-salt transition-metal nitrides, …): what a scientist asking for "materials like this
  one" usually means. Families need at least three members.

``overall`` is the mean of the two R-precisions. Each notion's time per structure is reported beside
it (featurization shared by the learned notions is reported once).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, Field
from pymatgen.core import Structure

from matconcept.encoders.embedder import Embedder
from matconcept.encoders.fusion import rrf_distance, zscore_distance
from matconcept.training.corpus import element_groups
from matconcept.training.evaluation.metrics import neighbour_quality_from_distances, pairwise_l2

logger = logging.getLogger(__name__)

HYBRID_STRUCTURE_WEIGHT = 0.6
"""Weight of the structure notion in the z-scored hybrid (chosen on held-out families; see the model card)."""
MIN_FAMILY = 3


class NotionScore(BaseModel):
    structure_type: float = Field(description="same-prototype R-precision")
    concept: float = Field(description="same prototype + element groups R-precision")
    overall: float
    per_family: dict[str, float] = Field(default_factory=dict, description="structure-type R-precision per named type")


class NotionReport(BaseModel):
    n_structures: int
    n_type_families: int
    n_concept_families: int
    notions: dict[str, NotionScore]
    ms_per_structure: dict[str, float]


def concept_labels(structures: Sequence[Structure], prototypes: Sequence[str]) -> list[str]:
    """Prototype + element groups, or a unique placeholder where fewer than MIN_FAMILY share it."""
    labels = [f"{p}|{element_groups(s.composition.elements)}" for s, p in zip(structures, prototypes, strict=True)]
    counts = Counter(labels)
    return [label if counts[label] >= MIN_FAMILY else f"#{k}" for k, label in enumerate(labels)]


def _per_family(dist: np.ndarray, labels: Sequence[str], names: dict[str, str]) -> dict[str, float]:
    codes = np.asarray(labels, dtype=object)
    out = {}
    for label, name in names.items():
        idx = np.flatnonzero(codes == label)
        if len(idx) >= 2:
            nearest = np.argsort(dist[idx], axis=1, kind="stable")[:, : len(idx) - 1]
            out[name] = round(float((codes[nearest] == label).mean()), 4)
    return out


def notion_report(
    embedder: Embedder,
    structures: Sequence[Structure],
    prototypes: Sequence[str],
    named_types: dict[str, str],
    baselines: Sequence = (),
) -> NotionReport:
    """Score every notion (and each baseline descriptor) on ``structures`` labelled with ``prototypes``."""
    concept = concept_labels(structures, prototypes)
    n = len(structures)
    t0 = time.perf_counter()
    graphs = [embedder.featurizer.featurize(s) for s in structures]
    timing = {"featurize (graph + pattern + role graph)": (time.perf_counter() - t0) * 1e3 / n}
    t0 = time.perf_counter()
    crystal, _ = embedder.embed_graphs(graphs)
    timing["concept encoder"] = (time.perf_counter() - t0) * 1e3 / n
    dists = {"concept": pairwise_l2(crystal)}
    if embedder.has_structure_type:
        t0 = time.perf_counter()
        vectors = embedder.embed_structure_types(graphs)
        timing["structure encoder"] = (time.perf_counter() - t0) * 1e3 / n
        dists["structure"] = pairwise_l2(vectors)
    for baseline in baselines:
        t0 = time.perf_counter()
        dists[baseline.name] = pairwise_l2(baseline.featurize(list(structures)))
        timing[baseline.name] = (time.perf_counter() - t0) * 1e3 / n
    for d in dists.values():
        np.fill_diagonal(d, np.inf)
    if "structure" in dists:
        pair = [dists["structure"], dists["concept"]]
        w = HYBRID_STRUCTURE_WEIGHT
        dists["hybrid (z-scored sum)"] = zscore_distance(pair, [w, 1 - w])
        dists["hybrid (rank fusion)"] = rrf_distance(pair)
    notions = {}
    for name, d in dists.items():
        a = neighbour_quality_from_distances(d, prototypes).r_precision
        b = neighbour_quality_from_distances(d, concept).r_precision
        notions[name] = NotionScore(
            structure_type=a, concept=b, overall=(a + b) / 2, per_family=_per_family(d, prototypes, named_types)
        )
        logger.info("%s: structure type %.3f, concept %.3f", name, a, b)
    type_counts, concept_counts = Counter(prototypes), Counter(concept)
    return NotionReport(
        n_structures=n,
        n_type_families=sum(1 for c in type_counts.values() if c >= 2),
        n_concept_families=sum(1 for c in concept_counts.values() if c >= MIN_FAMILY),
        notions=notions,
        ms_per_structure={k: round(v, 3) for k, v in timing.items()},
    )
