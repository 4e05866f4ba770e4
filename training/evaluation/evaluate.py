"""One evaluation run: embed a labelled set, score it beside the baselines, return every figure.

Steps (each timed, each with a progress bar where it takes seconds):

1. embed every item with both encoders (crystal graph and simulated XRD);
2. cross-modal retrieval over the whole set, both directions (the paper's validation metric);
3. on a subsample of at most ``baseline_limit`` items (CrystalNN costs ~0.25 s a structure):
   featurize with each baseline, then neighbour quality per label kind for every method;
4. robustness of every method to supercells, permutation, strain and displacement;
5. few-shot random-forest probes (crystal system, density, family) for every method.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from tqdm import tqdm

from matconcept.training.evaluation.baselines import DEFAULT_BASELINES, make_baselines
from matconcept.training.evaluation.items import EvalItem, subsample
from matconcept.training.evaluation.metrics import NeighbourQuality, cross_modal_retrieval, neighbour_quality
from matconcept.training.evaluation.probes import (
    MIN_PROPERTY_ITEMS,
    ProbeResult,
    PropertyProbeResult,
    few_shot_probe,
    knn_property_probe,
)
from matconcept.training.evaluation.robustness import (
    RobustnessResult,
    nearest_other_by_formula,
    perturbations,
    robustness,
)

if TYPE_CHECKING:
    from matconcept.encoders.embedder import Embedder

logger = logging.getLogger(__name__)

EMBEDDING = "embedding"
"""Name of our model's crystal embedding among the compared representations."""
STRUCTURE_NOTION = "structure notion"
"""Name of our model's structure-type vectors (where the checkpoint has that encoder)."""
LABEL_KINDS = (
    "structure_type",
    "concept",
    "prototype",
    "aflow",
    "strukturbericht",
    "strukturbericht_class",
    "pearson",
    "mineral",
    "user",
)
"""Family labels scored for neighbour quality, when at least :data:`MIN_QUERIES` items share one."""
MIN_QUERIES = 10
ZERO_DISTANCE = 1e-6
"""A median nearest-other distance below this means a representation merges different materials."""
NEAR_PERFECT = 0.9


class EvaluationConfig(BaseModel):
    """What to compute; defaults keep the default test split under 10 minutes on 2 cores."""

    model_config = ConfigDict(extra="forbid")

    max_k: int = Field(default=10, ge=1, description="retrieval curve length (top-1..top-max_k)")
    ks: list[int] = Field(default=[1, 5, 10, 20, 50], description="k of precision@k")
    baselines: list[str] = Field(default_factory=lambda: list(DEFAULT_BASELINES))
    baseline_limit: int | None = Field(default=1000, ge=2, description="items compared with the baselines")
    robustness_sample: int = Field(default=30, ge=0, description="structures perturbed")
    robustness_max_sites: int = Field(default=16, ge=1, description="largest primitive cell perturbed")
    probe_sizes: list[int] = Field(default=[10, 20, 50, 100])
    probe_repeats: int = Field(default=5, ge=1, description="group splits per probe size (few groups: average more)")
    seed: int = 0
    workers: int | None = Field(default=None, description="processes for the CrystalNN baseline")


class RetrievalResult(BaseModel):
    """Top-k accuracy (k = 1..max_k) of finding an item's other modality among all n items."""

    n: int
    xrd_to_structure: list[float]
    structure_to_xrd: list[float]
    chance: list[float] = Field(description="k / n: a random ranking")


class DatasetInfo(BaseModel):
    source: str
    split: str | None = None
    n_items: int
    n_groups: int
    n_compared: int = Field(description="items in the embedding-vs-baselines comparison")
    skipped: list[dict] = Field(default_factory=list, description="inputs that could not be used, with why")


class EvaluationReport(BaseModel):
    """Every figure of one evaluation (what ``matconcept evaluate --json`` prints)."""

    model_id: str
    model_note: str = ""
    dataset: DatasetInfo
    config: EvaluationConfig
    retrieval: RetrievalResult
    neighbour_quality: dict[str, dict[str, NeighbourQuality]] = Field(description="label kind → method → scores")
    robustness: dict[str, RobustnessResult] = Field(description="method → scores")
    probes: list[ProbeResult]
    property_probes: list[PropertyProbeResult] = Field(
        default_factory=list, description="k-NN regression of each numeric property the items carry"
    )
    notes: list[str] = Field(default_factory=list, description="caveats found in the figures themselves")
    seconds: dict[str, float]


def _family_target(items: Sequence[EvalItem]) -> tuple[str, np.ndarray]:
    if any("user" in it.labels for it in items):
        return "family (user labels)", np.array([it.labels.get("user", "") for it in items], dtype=object)
    values = [it.labels.get("strukturbericht_class", "") for it in items]
    return "family (Strukturbericht class)", np.array(values, dtype=object)


def _model_note(training: dict) -> str:
    """One line of provenance from the checkpoint (run name and epoch), or its note (random model)."""
    if "note" in training:
        return str(training["note"])
    parts = [f"{k} {training[k]}" for k in ("run", "epoch", "corpus") if k in training]
    return ", ".join(parts)


def _notes(quality: dict[str, dict[str, NeighbourQuality]], robust: dict[str, RobustnessResult]) -> list[str]:
    """Caveats that follow from the figures (so a reader does not take a degenerate win at face value)."""
    notes = []
    for method, rob in robust.items():
        if rob.median_nearest_other < ZERO_DISTANCE:
            notes.append(
                f"{method} puts most structures at distance ~0 from another material (median nearest other "
                f"{rob.median_nearest_other:.2g}): it cannot tell those materials apart, so its robustness ratios "
                "are meaningless and its family neighbours are found by ties."
            )
    proto = quality.get("prototype", {})
    if "crystalnn" in proto and proto["crystalnn"].r_precision > NEAR_PERFECT:
        notes.append(
            "The CrystalNN fingerprint ignores chemistry (x_diff_weight=0, as the Materials Project uses it) and "
            "lattice scale, and the corpus families are element substitutions of one seed geometry: same-prototype "
            "neighbours are near-identical to it by construction. Families that differ in geometry (mineral, "
            "Strukturbericht class, user labels) are the fairer comparison."
        )
    return notes


def evaluate(
    items: Sequence[EvalItem],
    embedder: Embedder,
    config: EvaluationConfig | None = None,
    dataset: DatasetInfo | None = None,
) -> EvaluationReport:
    """Score ``embedder`` (an :class:`matconcept.encoders.embedder.Embedder`) on ``items`` beside the baselines."""
    config = config or EvaluationConfig()
    if len(items) < 2:
        raise ValueError(f"an evaluation needs at least 2 structures, got {len(items)}")
    seconds: dict[str, float] = {}
    tick = time.perf_counter()

    # 1. embeddings of the whole set
    graphs = [embedder.featurizer.featurize(it.structure) for it in tqdm(items, desc="featurize", disable=None)]
    crystal, xrd = embedder.embed_graphs(graphs)
    structure = embedder.embed_structure_types(graphs) if embedder.has_structure_type else None
    seconds["embed"] = time.perf_counter() - tick

    # 2. cross-modal retrieval over everything
    tick = time.perf_counter()
    n = len(items)
    xrd_to_structure, structure_to_xrd = cross_modal_retrieval(xrd, crystal, config.max_k)
    retrieval = RetrievalResult(
        n=n,
        xrd_to_structure=xrd_to_structure.tolist(),
        structure_to_xrd=structure_to_xrd.tolist(),
        chance=[min(1.0, k / n) for k in range(1, config.max_k + 1)],
    )
    seconds["retrieval"] = time.perf_counter() - tick

    # 3. the compared subsample, its baseline vectors and neighbour quality
    tick = time.perf_counter()
    sub = subsample(list(items), config.baseline_limit, config.seed)
    index = {it.id: i for i, it in enumerate(items)}
    sub_idx = np.array([index[it.id] for it in sub])
    structures = [it.structure for it in sub]
    descriptors = make_baselines(config.baselines, config.workers)
    features: dict[str, np.ndarray] = {EMBEDDING: crystal[sub_idx].astype(np.float64)}
    if structure is not None:
        features[STRUCTURE_NOTION] = structure[sub_idx].astype(np.float64)
    for d in descriptors:
        features[d.name] = d.featurize(structures)
    seconds["baselines"] = time.perf_counter() - tick

    tick = time.perf_counter()
    quality: dict[str, dict[str, NeighbourQuality]] = {}
    for kind in LABEL_KINDS:
        labels = [it.labels.get(kind, "") for it in sub]
        keep = np.array([bool(lab) for lab in labels])
        if keep.sum() < 2:
            continue
        kept_labels = [lab for lab in labels if lab]
        first = neighbour_quality(features[EMBEDDING][keep], kept_labels, config.ks)
        if first.n_queries < MIN_QUERIES:
            continue
        quality[kind] = {EMBEDDING: first}
        for name, x in features.items():
            if name != EMBEDDING:
                quality[kind][name] = neighbour_quality(x[keep], kept_labels, config.ks)
    seconds["neighbour_quality"] = time.perf_counter() - tick

    # 4. robustness
    tick = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    small = [i for i, it in enumerate(sub) if len(it.structure) <= config.robustness_max_sites]
    picked = sorted(rng.choice(small, size=min(config.robustness_sample, len(small)), replace=False).tolist())
    robust: dict[str, RobustnessResult] = {}
    if picked:
        variants: dict[str, list] = {}
        for i in picked:
            for name, s in perturbations(sub[i].structure, rng).items():
                variants.setdefault(name, []).append(s)
        formulas = [it.formula for it in sub]

        def embed(structures):
            return embedder.embed_structures(structures)[0].astype(np.float64)

        featurizers = {EMBEDDING: embed, **{d.name: d.featurize for d in descriptors}}
        for name, fn in featurizers.items():
            robust[name] = robustness(
                fn, features[name], picked, variants, nearest_other_by_formula(features[name], formulas)
            )
    seconds["robustness"] = time.perf_counter() - tick

    # 5. probes
    tick = time.perf_counter()
    groups = np.array([it.group for it in sub], dtype=object)
    system = np.array([it.labels["crystal_system"] for it in sub], dtype=object)
    density = np.array([it.density for it in sub])
    family_name, family = _family_target(sub)
    common = {"sizes": config.probe_sizes, "repeats": config.probe_repeats, "seed": config.seed}
    probes = [
        few_shot_probe(features, system, system, groups, name="crystal_system", **common),
        few_shot_probe(features, density, system, groups, regression=True, name="density", **common),
    ]
    if (family != "").sum() >= 2:
        probes.append(few_shot_probe(features, family, family, groups, name=family_name, **common))
    properties = sorted({k for it in sub for k in it.properties})
    property_probes = []
    for name in properties:
        has = np.array([name in it.properties for it in sub])
        if has.sum() >= MIN_PROPERTY_ITEMS:
            y = np.array([it.properties[name] for it in sub if name in it.properties], dtype=np.float64)
            picked_features = {m: x[has] for m, x in features.items()}
            property_probes.append(knn_property_probe(picked_features, y, groups[has], name))
    seconds["probes"] = time.perf_counter() - tick

    notes = _notes(quality, robust)
    dataset = dataset or DatasetInfo(source="items", n_items=n, n_groups=0, n_compared=0)
    dataset = dataset.model_copy(
        update={"n_items": n, "n_groups": len({it.group for it in items}), "n_compared": len(sub)}
    )
    return EvaluationReport(
        model_id=embedder.model_id,
        model_note=_model_note(embedder.loaded.info.training),
        dataset=dataset,
        config=config,
        retrieval=retrieval,
        neighbour_quality=quality,
        robustness=robust,
        probes=probes,
        property_probes=property_probes,
        notes=notes,
        seconds={k: round(v, 2) for k, v in seconds.items()},
    )
