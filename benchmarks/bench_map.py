"""Benchmark: the materials map (openTSNE layout) at 10k and 100k vectors: time, memory, placement, quality.

Vectors are the shipped model's real embeddings made plentiful the way ``bench_search.py`` makes
them (its ``embed_corpus`` and ``synth``, imported, not copied): a real base embedding plus a real
perturbation delta. For each size N:

* ``compute_layout`` wall time split by stage (PCA / neighbours / optimising, from the progress
  callback's stage changes) and peak RSS during the layout (``ru_maxrss`` after resetting the
  process's peak through ``/proc/self/clear_refs``, so each size is measured on its own), with its
  growth over the resident memory just before the layout;
* placement: time to place 1 and 100 new vectors (``Layout.place``), and how far stored vectors
  placed again land from their fitted positions (relative to the layout's extent);
* quality: kNN preservation (k=10) on a sample of 1,000 points: the share of each point's 10 nearest
  neighbours in the 1024-d space that are among its 10 nearest on the map (exact kNN both sides);
  the first two PCA components are given for scale;
* the reference, side by side: scikit-learn's Barnes-Hut ``TSNE`` on the same 50-d PCA input, at
  sizes up to ``--sklearn-max`` (10k); ratio = sklearn time / openTSNE time on that input;
* with ``--umap`` (needs ``umap-learn``): ``compute_layout(method="umap")`` as the service runs it
  (seeded, hence one thread) and umap-learn unseeded on all cores, same PCA input;
* the figures of :mod:`matconcept.service.map.figures` at that size (time and file size).

    python benchmarks/bench_map.py --json                     # 10k and 100k
    python benchmarks/bench_map.py --sizes 10000 --umap --json
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import logging
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

# The benchmarks folder is not a package: bench_search is imported from beside this file.
from bench_search import embed_corpus, synth

logger = logging.getLogger("bench_map")

K = 10
"""Neighbours compared for kNN preservation."""
SAMPLE = 1000
"""Points whose neighbourhoods are compared (exact kNN over all N in 1024-d for each)."""
NEW = 100
"""Vectors not in the layout, to time placement."""
PLACE_BACK = 200
"""Stored vectors placed again to see how close to their fitted position they land."""
KNN_CHUNK = 16384
"""Reference rows per distance block in the exact kNN (a 1,000 × 16k block is 64 MB)."""
SKLEARN_MAX = 10_000
"""Largest size scikit-learn's Barnes-Hut t-SNE is run at by default; above it, an n log n estimate from the
largest measured run is printed instead (at 100k on 2 cores: about 15 min, scaled from 71 s at 10k)."""
UMAP_WARMUP = 500
"""Points of a throw-away UMAP fit that compiles its numba kernels before anything is timed."""
EE_ITER = 250
"""Early-exaggeration iterations: openTSNE's and scikit-learn's default alike."""


def rss_mb() -> float:
    """Resident memory now (MB), from /proc/self/statm."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """Peak resident memory (MB) since the process started or since :func:`reset_peak`."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def reset_peak() -> bool:
    """Restart ru_maxrss from the current RSS (Linux ≥ 4.0), so a stage's peak is its own."""
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def mem_total_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 2**20, 1)
    return float("nan")


class StageTimer:
    """A ``compute_layout`` progress callback that notes when each stage starts and logs progress."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.starts: dict[str, float] = {}
        self.logged = -1

    def __call__(self, stage: str, fraction: float) -> None:
        now = time.perf_counter()
        if stage not in self.starts:
            self.starts[stage] = now
            logger.info("%s: %s", self.label, stage)
        decile = int(fraction * 10)
        if stage == "optimising" and decile > self.logged:
            self.logged = decile
            logger.info("%s: optimising, %d %% of the layout", self.label, 10 * decile)

    def durations(self) -> dict[str, float]:
        stages = list(self.starts)
        return {f"{a}_s": round(self.starts[b] - self.starts[a], 2) for a, b in itertools.pairwise(stages)}


def exact_knn(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """(len(queries), k) indices of each query row's k nearest other rows of ``vectors`` (Euclidean)."""
    q = vectors[queries].astype(np.float32)
    q_sq = np.einsum("ij,ij->i", q, q)
    best_d = np.full((len(q), k), np.inf, dtype=np.float32)
    best_i = np.zeros((len(q), k), dtype=np.int64)
    rows = np.arange(len(q))
    for start in range(0, len(vectors), KNN_CHUNK):
        block = vectors[start : start + KNN_CHUNK].astype(np.float32)
        d2 = q_sq[:, None] - 2.0 * q @ block.T + np.einsum("ij,ij->i", block, block)[None, :]
        own = (queries >= start) & (queries < start + len(block))
        d2[rows[own], queries[own] - start] = np.inf  # a point is not its own neighbour
        cand_d = np.concatenate([best_d, d2], axis=1)
        cand_i = np.concatenate([best_i, np.broadcast_to(np.arange(start, start + len(block)), d2.shape)], axis=1)
        part = np.argpartition(cand_d, k - 1, axis=1)[:, :k]
        best_d = np.take_along_axis(cand_d, part, axis=1)
        best_i = np.take_along_axis(cand_i, part, axis=1)
    return best_i


def knn_preservation(high: np.ndarray, coords: np.ndarray, sample: np.ndarray) -> float:
    """Mean share of each sampled point's high-dimensional k nearest that are among its k nearest on the map."""
    low = exact_knn(np.asarray(coords, dtype=np.float32), sample, high.shape[1])
    return round(float(np.mean([len(set(a) & set(b)) / high.shape[1] for a, b in zip(high, low, strict=True)])), 4)


def extent(coords: np.ndarray) -> float:
    """Diagonal of the map's bounding box."""
    return float(np.linalg.norm(coords.max(axis=0) - coords.min(axis=0)))


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def bench_layout(ids, vectors, model_id, params, label):
    """(layout, figures dict): one ``compute_layout`` with stage times and its own peak RSS."""
    from matconcept.service.map.layout import compute_layout

    reset_ok = reset_peak()
    before = rss_mb()
    timer = StageTimer(label)
    layout, wall = timed(compute_layout, ids, vectors, model_id, params, progress=timer)
    peak = peak_rss_mb()
    return layout, {
        "wall_s": round(wall, 1),
        "stages": timer.durations(),
        "rss_before_mb": round(before),
        "peak_rss_mb": round(peak),
        "peak_growth_mb": round(peak - before),
        "peak_is_own": reset_ok,
    }


def bench_placement(layout, vectors: np.ndarray, new: np.ndarray, sample: np.ndarray) -> dict:
    layout.place(new[:1])  # warm: imports and first allocations
    one = [timed(layout.place, new[i : i + 1])[1] for i in range(1, 4)]
    _, hundred = timed(layout.place, new[:NEW])
    back = sample[:PLACE_BACK]
    placed = layout.place(vectors[back])
    moved = np.linalg.norm(placed - layout.coords[back], axis=1) / extent(layout.coords[: layout.n_fitted])
    return {
        "place_1_s": round(float(np.median(one)), 3),
        f"place_{NEW}_s": round(hundred, 2),
        "stored_placed_back": {
            "n": len(back),
            "median_distance_rel_extent": round(float(np.median(moved)), 4),
            "p90_distance_rel_extent": round(float(np.percentile(moved, 90)), 4),
        },
    }


def bench_sklearn(reference: np.ndarray, n_iter: int, seed: int, high, sample) -> dict:
    from sklearn.manifold import TSNE

    logger.info("sklearn TSNE (Barnes-Hut) on %d points, %d iterations ...", len(reference), EE_ITER + n_iter)
    reset_peak()
    before = rss_mb()
    tsne = TSNE(
        n_components=2,
        perplexity=30.0,
        init="pca",
        method="barnes_hut",
        max_iter=EE_ITER + n_iter,
        random_state=seed,
        n_jobs=-1,
    )
    coords, wall = timed(tsne.fit_transform, reference)
    return {
        "wall_s": round(wall, 1),
        "peak_growth_mb": round(peak_rss_mb() - before),
        f"knn_preservation@{K}": knn_preservation(high, coords, sample),
        "input": f"the layout's {reference.shape[1]}-d PCA coordinates",
    }


def bench_umap(ids, vectors, new, model_id, layout, seed, high, sample) -> dict:
    try:
        import umap
    except ImportError:
        return {"skipped": "umap-learn is not installed (pip install umap-learn)"}
    from matconcept.service.map.layout import LayoutParams

    _, warm = timed(
        umap.UMAP(n_components=2, random_state=seed, n_jobs=1).fit_transform, layout.reference[:UMAP_WARMUP]
    )
    umap_layout, service = bench_layout(ids, vectors, model_id, LayoutParams(method="umap", seed=seed), "umap")
    service[f"knn_preservation@{K}"] = knn_preservation(high, umap_layout.coords, sample)
    service["threads"] = "1 (compute_layout seeds UMAP, and umap-learn is single-threaded when seeded)"
    _, place_100 = timed(umap_layout.place, new[:NEW])
    service[f"place_{NEW}_s"] = round(place_100, 3)
    logger.info("umap-learn unseeded on %d cores ...", os.cpu_count() or 1)
    coords, wall = timed(umap.UMAP(n_components=2, n_jobs=os.cpu_count() or 1).fit_transform, layout.reference)
    return {
        "jit_warmup_s": round(warm, 1),
        "service_seeded": service,
        "unseeded_all_cores": {
            "wall_s_without_pca": round(wall, 1),
            f"knn_preservation@{K}": knn_preservation(high, coords, sample),
        },
    }


def bench_figures(coords: np.ndarray, elements: list[list[str]], workdir: Path) -> dict:
    from matconcept.service.map.figures import plot_element_maps, plot_map

    out = {}
    for fmt in ("png", "svg"):
        n_el = [len(e) for e in elements]
        path, wall = timed(plot_map, coords, n_el, workdir / f"map.{fmt}", field="n_elements")
        out[f"map_{fmt}"] = {"s": round(wall, 2), "mb": round(path.stat().st_size / 2**20, 2)}
        path, wall = timed(plot_element_maps, coords, elements, workdir / f"elements.{fmt}")
        out[f"elements_{fmt}"] = {"s": round(wall, 2), "mb": round(path.stat().st_size / 2**20, 2)}
    return out


def bench_size(
    corpus: dict, n: int, args: argparse.Namespace, workdir: Path, sklearn_ref: tuple[int, float] | None = None
) -> dict:
    """Every measurement at one size; ``sklearn_ref`` (n, seconds) of a smaller sklearn run scales the estimate
    given where sklearn is skipped."""
    from matconcept.service.map.layout import LayoutParams

    logger.info("n = %d: synthesising vectors", n)
    rng = np.random.default_rng(args.seed + n)
    crystal, xrd, material = synth(corpus, n + NEW, rng)
    del xrd
    vectors, new = crystal[:n], crystal[n:]
    ids = [f"bench:{i}" for i in range(n)]
    sample = np.sort(rng.choice(n, min(SAMPLE, n), replace=False))
    logger.info("n = %d: exact %d-NN of %d sampled points in %d-d", n, K, len(sample), vectors.shape[1])
    high, knn_s = timed(exact_knn, vectors, sample, K)

    params = LayoutParams(n_iter=args.n_iter, seed=args.seed)
    layout, tsne = bench_layout(ids, vectors, corpus["model_id"], params, f"openTSNE n={n}")
    tsne["iterations"] = EE_ITER + args.n_iter
    tsne["stages_note"] = "neighbours_s runs to openTSNE's first callback: kNN graph, PCA init, first 10 iterations"
    tsne["pca_variance_kept"] = round(layout.info.pca_variance, 3)
    tsne[f"knn_preservation@{K}"] = knn_preservation(high, layout.coords, sample)
    tsne_only = tsne["wall_s"] - tsne["stages"].get("pca_s", 0.0)
    logger.info("n = %d: openTSNE %.1f s; placing", n, tsne["wall_s"])
    result = {
        "n": n,
        "dim": int(vectors.shape[1]),
        "exact_knn_1024d_s": round(knn_s, 1),
        "opentsne": tsne,
        "placement": bench_placement(layout, vectors, new, sample),
        "pca2_for_scale": {f"knn_preservation@{K}": knn_preservation(high, layout.reference[:, :2], sample)},
        "chance_knn_preservation": round(K / (n - 1), 6),
    }
    if n <= args.sklearn_max:
        sk = bench_sklearn(layout.reference, args.n_iter, args.seed, high, sample)
        sk["ratio_sklearn_over_opentsne"] = round(sk["wall_s"] / tsne_only, 2)
        sk["ratio_note"] = f"against openTSNE without its PCA step ({tsne_only:.1f} s): both start from the 50-d PCA"
        result["sklearn_tsne"] = sk
    else:
        skipped = f"Barnes-Hut t-SNE at {n:,} points takes far too long on {os.cpu_count()} cores"
        if sklearn_ref is not None:
            ref_n, ref_s = sklearn_ref
            estimate = ref_s * n * np.log(n) / (ref_n * np.log(ref_n))
            skipped += f" (n log n from its {ref_n:,}-point run: about {estimate / 60:.0f} min, not measured)"
        result["sklearn_tsne"] = {"skipped": f"{skipped}; run with --sklearn-max {n} to measure it"}
    if args.umap:
        result["umap"] = bench_umap(ids, vectors, new, corpus["model_id"], layout, args.seed, high, sample)
    if not args.no_figures:
        elements = [corpus["elements"][int(m)] for m in material[:n]]
        result["figures"] = bench_figures(layout.coords, elements, workdir)
    result["loadavg_after"] = os.getloadavg()[0]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="vectors laid out")
    parser.add_argument("--perturb", type=int, default=1, help="perturbed copies per built-in structure")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--n-iter", type=int, default=500, help="t-SNE iterations after early exaggeration")
    parser.add_argument("--sklearn-max", type=int, default=SKLEARN_MAX, help="largest size to run sklearn TSNE at")
    parser.add_argument("--umap", action="store_true", help="also measure UMAP (needs umap-learn)")
    parser.add_argument("--no-figures", action="store_true", help="skip timing the PNG/SVG figures")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("matplotlib", "numba", "openTSNE"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    logger.info("embedding the built-in structures and %d perturbed copies of each ...", args.perturb)
    corpus, embed_s = timed(embed_corpus, args.perturb, args.workers, args.seed)
    corpus["elements"] = [sorted({e.symbol for e in s.composition.elements}) for _, s in corpus["structures"]]
    result = {
        "model_id": corpus["model_id"],
        "real_embeddings": len(corpus["crystal"]),
        "base_materials": len(corpus["structures"]),
        "embed_corpus_s": round(embed_s, 1),
        "cpus": os.cpu_count(),
        "memory_total_gb": mem_total_gb(),
        "loadavg_before": os.getloadavg()[0],
        "sizes": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-map-") as tmp:
        sklearn_ref = None
        for n in sorted(args.sizes):
            result["sizes"].append(bench_size(corpus, n, args, Path(tmp), sklearn_ref))
            if "wall_s" in result["sizes"][-1]["sklearn_tsne"]:
                sklearn_ref = (n, result["sizes"][-1]["sklearn_tsne"]["wall_s"])
            if not args.json:
                print(json.dumps(result["sizes"][-1], indent=1), flush=True)
    print(json.dumps(result, indent=None if args.json else 1))


if __name__ == "__main__":
    main()
