"""Concept probes: how much does a representation know about a property, from few examples?

The paper's figure 9 trains a random forest on embeddings to recognise a materials concept with
10–100 training examples, with leave-p-groups-out cross-validation, against a baseline
representation. We do the same for three targets every structure has or can be given:

* ``crystal_system`` (7 classes, from the space group): lattice symmetry;
* ``density`` (g/cm³, regression): lattice and composition together;
* ``family``: a user's labels, else the Strukturbericht class letter of the AFLOW seed
  (A elements, B AB, C AB₂, D AₘBₙ, E–K more complex, L alloys…), which spans many prototypes.

Each repeat splits the prototype *groups* in half (:class:`sklearn.model_selection.GroupShuffleSplit`):
training examples are drawn from one half, scores come from the other, so a substitution of a test
prototype is never seen in training. For a training size n, n examples of each class are drawn (for
density, n per crystal system: the very examples the crystal-system probe uses), and every
representation is trained and scored on the same draws.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, Field

logger = logging.getLogger(__name__)

N_TREES = 100
"""Random-forest size: scikit-learn's default, enough for a stable probe at these sizes."""
TEST_GROUP_FRACTION = 0.5
MIN_CLASSES = 2


class ProbeResult(BaseModel):
    """Scores of one probe target for every representation, per training size.

    ``scores[method][i]`` is the mean over repeats at ``sizes[i]`` (None where too few examples of
    at least two classes exist for that size; classes with fewer than ``sizes[i]`` training examples
    are left out at that size, so the chance level can differ between sizes); ``metric`` is balanced
    accuracy for classes and R² for density; ``mae`` (density only) is the mean absolute error in g/cm³.
    """

    target: str
    metric: str
    sizes: list[int]
    repeats: int
    scores: dict[str, list[float | None]]
    std: dict[str, list[float | None]]
    mae: dict[str, list[float | None]] = Field(default_factory=dict)
    chance: list[float | None] = Field(
        description="per size: 1 / classes scored (balanced accuracy of guessing), 0 for R² (predicting the mean)"
    )
    n_items: int
    n_classes: int | None = None


def _draw(y: np.ndarray, pool: np.ndarray, size: int, rng: np.random.Generator) -> tuple[np.ndarray, list[str]] | None:
    """``size`` indices per class from ``pool`` (classes with fewer are dropped); None if < 2 classes."""
    classes = [c for c in np.unique(y[pool]) if (y[pool] == c).sum() >= size]
    if len(classes) < MIN_CLASSES:
        return None
    picks = [rng.choice(pool[y[pool] == c], size=size, replace=False) for c in classes]
    return np.concatenate(picks), [str(c) for c in classes]


def few_shot_probe(
    features: dict[str, np.ndarray],
    target: np.ndarray,
    strata: np.ndarray,
    groups: np.ndarray,
    sizes: Sequence[int] = (10, 20, 50, 100),
    repeats: int = 3,
    seed: int = 0,
    regression: bool = False,
    name: str = "target",
) -> ProbeResult:
    """Random-forest probe of ``target`` on each representation in ``features``.

    Args:
        features: Representation name → (n, d) vectors of the same n items.
        target: (n,) class labels, or floats for ``regression``. Items labelled "" (classes) are skipped.
        strata: (n,) classes the training draw is balanced over (``target`` itself for classification).
        groups: (n,) prototype group of each item (the leave-groups-out unit).
        sizes: Training examples per stratum.
        repeats: Group splits (and draws) per size.
    """
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.metrics import balanced_accuracy_score, mean_absolute_error, r2_score
    from sklearn.model_selection import GroupShuffleSplit

    usable = np.flatnonzero(np.asarray([s != "" for s in strata]))
    strata, groups = np.asarray(strata), np.asarray(groups)
    scores: dict[str, list[list[float]]] = {m: [[] for _ in sizes] for m in features}
    maes: dict[str, list[list[float]]] = {m: [[] for _ in sizes] for m in features}
    chances: list[list[float]] = [[] for _ in sizes]
    n_groups = len(set(groups[usable].tolist()))
    if n_groups >= 2:
        splitter = GroupShuffleSplit(n_splits=repeats, test_size=TEST_GROUP_FRACTION, random_state=seed)
        for rep, (train_pos, test_pos) in enumerate(splitter.split(usable, groups=groups[usable])):
            train_pool, test_pool = usable[train_pos], usable[test_pos]
            rng = np.random.default_rng([seed, rep])
            for si, size in enumerate(sizes):
                drawn = _draw(strata, train_pool, size, rng)
                if drawn is None:
                    continue
                train_idx, classes = drawn
                test_idx = test_pool if regression else test_pool[np.isin(strata[test_pool], classes)]
                if len(test_idx) == 0 or (not regression and len(np.unique(strata[test_idx])) < MIN_CLASSES):
                    continue
                chances[si].append(0.0 if regression else 1.0 / len(np.unique(strata[test_idx])))
                for method, x in features.items():
                    if regression:
                        model = RandomForestRegressor(n_estimators=N_TREES, random_state=seed + rep, n_jobs=1)
                        model.fit(x[train_idx], target[train_idx].astype(float))
                        pred = model.predict(x[test_idx])
                        scores[method][si].append(float(r2_score(target[test_idx].astype(float), pred)))
                        maes[method][si].append(float(mean_absolute_error(target[test_idx].astype(float), pred)))
                    else:
                        model = RandomForestClassifier(n_estimators=N_TREES, random_state=seed + rep, n_jobs=1)
                        model.fit(x[train_idx], target[train_idx])
                        pred = model.predict(x[test_idx])
                        scores[method][si].append(float(balanced_accuracy_score(target[test_idx], pred)))

    def mean(vals: list[list[float]]) -> list[float | None]:
        return [float(np.mean(v)) if v else None for v in vals]

    def std(vals: list[list[float]]) -> list[float | None]:
        return [float(np.std(v)) if v else None for v in vals]

    return ProbeResult(
        target=name,
        metric="r2" if regression else "balanced_accuracy",
        sizes=list(sizes),
        repeats=repeats,
        scores={m: mean(v) for m, v in scores.items()},
        std={m: std(v) for m, v in scores.items()},
        mae={m: mean(v) for m, v in maes.items()} if regression else {},
        chance=mean(chances),
        n_items=len(usable),
        n_classes=None if regression else len(set(strata[usable].tolist())),
    )


KNN_NEIGHBOURS = 5
KNN_FOLDS = 5
MIN_PROPERTY_ITEMS = 30
"""Structures a property needs before it is probed (five folds of a few each)."""


class PropertyProbeResult(BaseModel):
    """k-NN regression of one numeric property from each representation's neighbours (grouped K-fold).

    ``r2`` and ``mae`` per method; ``mean_mae`` is what predicting the training folds' mean scores, the
    floor any representation should beat.
    """

    target: str
    n_items: int
    folds: int
    neighbours: int
    r2: dict[str, float]
    mae: dict[str, float]
    mean_mae: float


def knn_property_probe(
    features: dict[str, np.ndarray], y: np.ndarray, groups: np.ndarray, name: str
) -> PropertyProbeResult:
    """Distance-weighted k-NN regression of ``y`` in each representation's own Euclidean space.

    Folds split the prototype groups (:class:`sklearn.model_selection.GroupKFold`), so a test structure's
    family is never among its training neighbours: the probe asks whether *other* families' nearest
    neighbours carry the property, the way a search user reads a neighbour list.
    """
    from sklearn.metrics import mean_absolute_error, r2_score
    from sklearn.model_selection import GroupKFold
    from sklearn.neighbors import KNeighborsRegressor

    folds = min(KNN_FOLDS, len(set(groups.tolist())))
    split = list(GroupKFold(n_splits=folds).split(y, y, groups))
    preds = {m: np.empty_like(y, dtype=np.float64) for m in features}
    baseline = np.empty_like(y, dtype=np.float64)
    for train, test in split:
        baseline[test] = y[train].mean()
        for method, x in features.items():
            model = KNeighborsRegressor(n_neighbors=min(KNN_NEIGHBOURS, len(train)), weights="distance")
            preds[method][test] = model.fit(x[train], y[train]).predict(x[test])
    return PropertyProbeResult(
        target=name,
        n_items=len(y),
        folds=folds,
        neighbours=KNN_NEIGHBOURS,
        r2={m: float(r2_score(y, p)) for m, p in preds.items()},
        mae={m: float(mean_absolute_error(y, p)) for m, p in preds.items()},
        mean_mae=float(mean_absolute_error(y, baseline)),
    )
