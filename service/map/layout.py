"""2-D layouts of the stored vectors (the paper's materials map), and placing new points into them.

A layout is computed once over every stored vector (minutes at 100k on 2 cores) and then kept:
new materials and query structures are *placed* into it without moving the points already there,
so the map a scientist has learned to read stays put while the store grows.

Method (openTSNE, Poličar et al., J. Stat. Softw. 109, 2024; the paper used t-SNE too):

1. PCA to ``pca_dims`` (50) dimensions: the usual first step for t-SNE on wide vectors; it makes
   the kNN search cheap and keeps almost all of the variance of 1024-d embeddings.
2. Perplexity-based affinities on the approximate kNN graph (Annoy above ~1,000 points), PCA
   initialisation, FFT-accelerated gradients, 250 early-exaggeration iterations then ``n_iter``.
3. Placement of new vectors (openTSNE's ``transform`` recipe): project with the stored PCA basis,
   find their exact nearest fitted points in PCA space (a matrix product; the fitted points'
   PCA coordinates are kept with the layout), point-wise affinities to those neighbours, start at
   the median of the nearest neighbours' positions and optimise only the new points against the
   fixed reference embedding.

UMAP (``method="umap"``, needs ``umap-learn``) uses the same PCA step; its points are placed at the
distance-weighted mean of their nearest fitted neighbours' positions (UMAP's own transform starts
there too). ``benchmarks/bench_map.py`` compares the two on speed and neighbourhood preservation.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

logger = logging.getLogger(__name__)

MIN_POINTS = 5
"""Fewest points a layout is computed for (t-SNE needs a few neighbours per point)."""
EARLY_EXAGGERATION_ITER = 250
"""openTSNE's default early-exaggeration phase (exaggeration 12, momentum 0.5)."""
EARLY_EXAGGERATION = 12.0
MIN_LEARNING_RATE = 50.0
"""Floor of the t-SNE learning rate (scikit-learn's), for collections of a few dozen points."""
PLACE_K_INIT = 10
"""Nearest fitted points whose median position starts a placed point (openTSNE's transform uses 25,
but with a few hundred stored materials 10 keeps the start inside the right cluster)."""
SAME_POINT_DISTANCE = 1e-3
"""PCA-space distance under which a placed vector is the fitted material itself (embeddings span ~10-100)."""
PLACE_PERPLEXITY = 5.0
"""Perplexity of a placed point's affinities: openTSNE's transform default (local placement)."""
PLACE_ITER = 250
"""Optimisation steps for placed points (openTSNE's transform default)."""
PLACE_CHUNK = 4096
"""Placed points per exact-kNN matrix product (bounds memory at 100k fitted points)."""
CALLBACK_EVERY = 10
"""Iterations between progress reports during optimisation."""

Progress = Callable[[str, float], None]
"""``progress(stage, fraction)``: stage names the step, fraction is overall progress in [0, 1]."""


class LayoutError(ValueError):
    """A layout cannot be computed or used (too few points, wrong dimension, unknown layout)."""


class LayoutParams(BaseModel):
    """How a layout is computed; stored with it so a layout can be recomputed identically."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["tsne", "umap"] = Field(default="tsne", description="openTSNE (default) or umap-learn")
    using: Literal["crystal", "xrd"] = Field(default="crystal", description="which stored vectors are laid out")
    pca_dims: int = Field(default=50, ge=2, le=1024, description="PCA dimensions before the kNN graph")
    perplexity: float = Field(
        default=30.0, gt=0, le=1000, allow_inf_nan=False, description="t-SNE perplexity (lowered for tiny collections)"
    )
    n_neighbors: int = Field(default=15, ge=2, le=1000, description="UMAP neighbours")
    n_iter: int = Field(default=500, ge=0, le=100_000, description="t-SNE iterations after early exaggeration")
    seed: int = Field(default=0, ge=0, le=2**32 - 1, description="random seed (numpy's range)")
    n_jobs: int = Field(default=0, ge=-1, le=1024, description="threads; 0 (or -1) = all cores")


class LayoutInfo(BaseModel):
    """What a stored layout is: its id, the model and parameters it was computed with, and its size."""

    layout_id: str
    model_id: str
    params: LayoutParams
    n_points: int = Field(description="points the layout was fitted on")
    n_placed: int = Field(default=0, description="points placed into it afterwards")
    effective_perplexity: float | None = None
    pca_variance: float = Field(description="share of the variance the PCA step kept")
    created_at: str
    elapsed_s: float


@dataclass
class Layout:
    """A computed layout: every laid-out id with its 2-D position, and what placing new points needs.

    The first ``info.n_points`` rows are the fitted reference; rows after them were placed later.
    """

    info: LayoutInfo
    ids: list[str]
    coords: np.ndarray
    """(n, 2) float32 positions, fitted points first."""
    pca_mean: np.ndarray
    """(d,) float32 mean subtracted before projecting."""
    pca_components: np.ndarray
    """(pca_dims, d) float32 projection."""
    reference: np.ndarray
    """(n_fitted, pca_dims) float32 PCA coordinates of the fitted points (for exact kNN on placement)."""
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._index = {m: i for i, m in enumerate(self.ids)}

    @cached_property
    def _reference64(self) -> tuple[np.ndarray, np.ndarray]:
        """The fitted points' PCA coordinates in float64 and their squared norms (kNN on placement)."""
        ref = self.reference.astype(np.float64)
        return ref, np.einsum("ij,ij->i", ref, ref)

    @property
    def n_fitted(self) -> int:
        return self.info.n_points

    def position(self, material_id: str) -> tuple[float, float] | None:
        """The (x, y) of a laid-out material, or None."""
        i = self._index.get(material_id)
        return None if i is None else (float(self.coords[i, 0]), float(self.coords[i, 1]))

    def missing(self, material_ids: list[str]) -> list[str]:
        """The ids not in the layout yet (to be placed)."""
        return [m for m in material_ids if m not in self._index]

    def project(self, vectors: np.ndarray) -> np.ndarray:
        """Vectors in the layout's PCA space, (m, pca_dims) float32."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim == 1:
            vectors = vectors[None, :]
        if vectors.shape[1] != self.pca_mean.shape[0]:
            raise LayoutError(
                f"vectors have {vectors.shape[1]} dimensions, the layout was fitted on {self.pca_mean.shape[0]}"
            )
        return (vectors - self.pca_mean) @ self.pca_components.T

    def nearest_fitted(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact k nearest fitted points of each vector in PCA space: (indices, distances), nearest first."""
        # float64: the expanded |z|² - 2z·r + |r|² cancels badly in float32 for near-identical vectors.
        z = self.project(vectors).astype(np.float64)
        k = min(k, self.n_fitted)
        ref, ref_sq = self._reference64
        idx = np.empty((len(z), k), dtype=np.int64)
        dist = np.empty((len(z), k), dtype=np.float64)
        for start in range(0, len(z), PLACE_CHUNK):
            chunk = z[start : start + PLACE_CHUNK]
            d2 = ref_sq[None, :] - 2.0 * chunk @ ref.T + np.einsum("ij,ij->i", chunk, chunk)[:, None]
            part = np.argpartition(d2, k - 1, axis=1)[:, :k] if k < d2.shape[1] else np.tile(np.arange(k), (len(d2), 1))
            part_d = np.take_along_axis(d2, part, axis=1)
            order = np.argsort(part_d, axis=1, kind="stable")
            idx[start : start + len(chunk)] = np.take_along_axis(part, order, axis=1)
            dist[start : start + len(chunk)] = np.sqrt(np.maximum(np.take_along_axis(part_d, order, axis=1), 0.0))
        return idx, dist

    def place(self, vectors: np.ndarray) -> np.ndarray:
        """Positions for new vectors in this layout, (m, 2) float32; the layout itself does not move."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim == 1:
            vectors = vectors[None, :]
        if len(vectors) == 0:
            return np.zeros((0, 2), dtype=np.float32)
        if not np.all(np.isfinite(vectors)):
            raise LayoutError("vectors to place hold NaN or infinite values")
        if self.info.params.method == "umap":
            return self._place_weighted(vectors)
        return self._place_tsne(vectors)

    def _place_weighted(self, vectors: np.ndarray) -> np.ndarray:
        idx, dist = self.nearest_fitted(vectors, PLACE_K_INIT)
        weights = 1.0 / (dist + 1e-6)
        weights /= weights.sum(axis=1, keepdims=True)
        ref = self.coords[: self.n_fitted].astype(np.float64)
        return np.einsum("mk,mkd->md", weights, ref[idx]).astype(np.float32)

    def _place_tsne(self, vectors: np.ndarray) -> np.ndarray:
        from openTSNE import TSNEEmbedding, affinity
        from openTSNE.tsne import PartialTSNEEmbedding
        from scipy.sparse import csr_matrix

        n = self.n_fitted
        perplexity = min(PLACE_PERPLEXITY, max(1.0, (n - 1) / 3))
        k = max(PLACE_K_INIT, min(n, int(3 * perplexity)))
        idx, dist = self.nearest_fitted(vectors, k)
        P = affinity.joint_probabilities_nn(
            idx, dist, [perplexity], symmetrize=False, normalization="point-wise", n_reference_samples=n
        )
        start = np.median(self.coords[:n][idx[:, :PLACE_K_INIT]], axis=1)
        # The reference only needs its positions for the repulsive forces; its own affinities are
        # not used when optimising placed points, so an empty matrix of the right shape stands in.
        holder = affinity.Affinities()
        holder.P = csr_matrix((n, n))
        reference = TSNEEmbedding(
            self.coords[:n].astype(np.float64), holder, negative_gradient_method="fft" if n > 2000 else "bh"
        )
        partial = PartialTSNEEmbedding(start, reference, P=P, **reference.gradient_descent_params)
        partial.optimize(
            n_iter=PLACE_ITER,
            learning_rate=0.1,
            exaggeration=1.5,
            momentum=0.8,
            max_grad_norm=0.25,
            inplace=True,
        )
        placed = np.asarray(partial, dtype=np.float32)
        # A query identical to a fitted material (an uploaded CIF that is already stored) lands on
        # it, not merely near it: the optimisation only knows it is among the nearest.
        same = dist[:, 0] < SAME_POINT_DISTANCE
        placed[same] = self.coords[idx[same, 0]]
        return placed

    def extend(self, material_ids: list[str], coords: np.ndarray) -> None:
        """Add placed points (ids already in the layout are moved to their new position)."""
        coords = np.asarray(coords, dtype=np.float32).reshape(-1, 2)
        new_ids, new_rows = [], []
        for m, xy in zip(material_ids, coords, strict=True):
            i = self._index.get(m)
            if i is None:
                self._index[m] = len(self.ids) + len(new_ids)
                new_ids.append(m)
                new_rows.append(xy)
            else:
                self.coords[i] = xy
        if new_ids:
            self.ids.extend(new_ids)
            self.coords = np.concatenate([self.coords, np.asarray(new_rows, dtype=np.float32)])
            self.info.n_placed += len(new_ids)

    def drop(self, material_ids: set[str]) -> int:
        """Forget placed points that are no longer stored (fitted points stay: they anchor the map)."""
        keep = [i for i, m in enumerate(self.ids) if i < self.n_fitted or m not in material_ids]
        dropped = len(self.ids) - len(keep)
        if dropped:
            self.ids = [self.ids[i] for i in keep]
            self.coords = self.coords[keep]
            self.info.n_placed -= dropped
            self.__post_init__()
        return dropped


def _n_jobs(params: LayoutParams) -> int:
    """Threads for the layout: ``n_jobs``, never more than the machine's cores.

    ``n_jobs`` comes from API callers (up to 1024): unbounded, one request made the service's store
    replica run 1024 OpenMP threads on 2 cores (load ~200, 2000 t-SNE iterations of 10 points 122 s
    instead of 1.9 s) until the replica stopped.
    """
    cores = os.cpu_count() or 1
    return min(params.n_jobs, cores) if params.n_jobs > 0 else cores


def _pca(vectors: np.ndarray, dims: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(mean, components, projected, kept variance share): randomized PCA (sklearn), float32."""
    from sklearn.decomposition import PCA

    dims = min(dims, vectors.shape[0] - 1, vectors.shape[1])
    pca = PCA(n_components=dims, svd_solver="randomized" if vectors.shape[0] > 2000 else "full", random_state=seed)
    projected = pca.fit_transform(vectors).astype(np.float32)
    return (
        pca.mean_.astype(np.float32),
        pca.components_.astype(np.float32),
        projected,
        float(np.sum(pca.explained_variance_ratio_)),
    )


def _centre(coords: np.ndarray) -> np.ndarray:
    """Centre the box on the origin, as openTSNE's placement expects of its reference."""
    return coords - (coords.max(axis=0) + coords.min(axis=0)) / 2


def _fit_tsne(x: np.ndarray, params: LayoutParams, progress: Progress, share: tuple[float, float]):
    from openTSNE import TSNEEmbedding, affinity, initialization

    n = len(x)
    perplexity = min(params.perplexity, max(1.0, (n - 1) / 3))
    jobs = _n_jobs(params)
    progress("neighbours", share[0])
    affinities = affinity.PerplexityBasedNN(
        x, perplexity=perplexity, method="auto", n_jobs=jobs, random_state=params.seed, verbose=False
    )
    init = initialization.pca(x, random_state=params.seed)
    total = EARLY_EXAGGERATION_ITER + params.n_iter
    lo, hi = share[0] + 0.15 * (share[1] - share[0]), share[1]
    done = [0]

    def report(iteration: int, error: float, embedding: np.ndarray) -> bool:
        done[0] += CALLBACK_EVERY
        progress("optimising", lo + (hi - lo) * min(1.0, done[0] / max(total, 1)))
        return False

    embedding = TSNEEmbedding(
        init,
        affinities,
        negative_gradient_method="fft" if n > 2000 else "bh",
        n_jobs=jobs,
        random_state=params.seed,
        callbacks=report,
        callbacks_every_iters=CALLBACK_EVERY,
    )
    # openTSNE's "auto" learning rate is n / exaggeration (Belkina et al. 2019), which stalls a
    # collection of a few dozen points; the floor is scikit-learn's.
    embedding = embedding.optimize(
        n_iter=EARLY_EXAGGERATION_ITER,
        exaggeration=EARLY_EXAGGERATION,
        momentum=0.5,
        learning_rate=max(n / EARLY_EXAGGERATION, MIN_LEARNING_RATE),
        inplace=True,
    )
    embedding = embedding.optimize(
        n_iter=params.n_iter, momentum=0.8, learning_rate=max(float(n), MIN_LEARNING_RATE), inplace=True
    )
    return np.asarray(embedding, dtype=np.float32), perplexity


def _fit_umap(x: np.ndarray, params: LayoutParams, progress: Progress, share: tuple[float, float]):
    try:
        import umap
    except ImportError as exc:  # optional: the default method needs only openTSNE
        raise LayoutError("method 'umap' needs umap-learn: pip install umap-learn") from exc
    progress("umap", share[0])
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=min(params.n_neighbors, len(x) - 1),
        random_state=params.seed,
        n_jobs=1 if params.seed is not None else _n_jobs(params),
    )
    return reducer.fit_transform(x).astype(np.float32), None


def compute_layout(
    material_ids: list[str],
    vectors: np.ndarray,
    model_id: str,
    params: LayoutParams | None = None,
    progress: Progress | None = None,
) -> Layout:
    """Lay out ``vectors`` (one row per material id) in 2-D.

    Raises:
        LayoutError: fewer than :data:`MIN_POINTS` vectors, mismatched lengths, or non-finite values.
    """
    params = params or LayoutParams()
    progress = progress or (lambda stage, fraction: None)
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(material_ids):
        raise LayoutError(f"{len(material_ids)} ids but vectors of shape {vectors.shape}")
    if len(vectors) < MIN_POINTS:
        raise LayoutError(f"a map needs at least {MIN_POINTS} stored materials, the store holds {len(vectors)}")
    if not np.all(np.isfinite(vectors)):
        raise LayoutError("stored vectors hold NaN or infinite values")
    started = time.perf_counter()
    progress("pca", 0.0)
    mean, components, reduced, kept = _pca(vectors, params.pca_dims, params.seed)
    fit = _fit_umap if params.method == "umap" else _fit_tsne
    coords, perplexity = fit(reduced, params, progress, (0.05, 0.98))
    coords = _centre(coords.astype(np.float64)).astype(np.float32)
    info = LayoutInfo(
        layout_id=f"{params.method}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}",
        model_id=model_id,
        params=params,
        n_points=len(vectors),
        effective_perplexity=perplexity,
        pca_variance=kept,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        elapsed_s=round(time.perf_counter() - started, 3),
    )
    progress("done", 1.0)
    logger.info("layout %s: %d points in %.1f s", info.layout_id, info.n_points, info.elapsed_s)
    return Layout(info, list(material_ids), coords, mean, components, reduced)
