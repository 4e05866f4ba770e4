"""Benchmark: top-k query latency and recall of the embedded store (qdrant-edge), exact vs HNSW.

Vectors look like real embeddings because they are the model's own: the built-in structures
(AFLOW prototypes, COD CIFs, pymatgen samples) and ``--perturb`` strained/jittered copies of each
are featurized and embedded; a store of N vectors is then filled with real embeddings plus real
perturbation deltas (``e_i + a·(e'_j - e_j)``: a real material, moved the way a real structural
perturbation moves embeddings), not Gaussian noise. Queries are drawn the same way and are not in
the store. For each N: build time, HNSW build time, p50/p99 latency of exact and HNSW top-k, and
recall@k of HNSW against exact search, unfiltered and with an element filter.

It also answers the cross-modal question on the real embeddings: given the XRD embedding of a
perturbed copy's simulated pattern (a stand-in for a measured pattern), which stored vectors find
the original material more often, ``crystal`` (cross-modal) or ``xrd`` (same modality)? With an
untrained model the figures only show that the measurement runs.

    python benchmarks/bench_search.py --json                  # 10k and 100k
    python benchmarks/bench_search.py --sizes 10000 --json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

K = 50
STRAIN = 0.03
"""Largest random strain of a perturbed copy (3 %: thermal expansion, a different measurement)."""
JITTER = 0.05
"""Å; random displacement of every site in a perturbed copy."""


def embed_corpus(perturb: int, workers: int, seed: int) -> dict:
    """Real embeddings: base structures and ``perturb`` perturbed copies of each (both encoders)."""
    from matconcept.encoders.embedder import Embedder
    from matconcept.encoders.pipeline import featurize_entries
    from matconcept.encoders.sources import RawEntry
    from matconcept.encoders.structure_io import read_entry
    from matconcept.service.ingest.local import builtin_items

    rng = np.random.default_rng(seed)
    embedder = Embedder(device="cpu")
    base = []
    for entry, label in builtin_items():
        try:
            base.append((label, read_entry(entry).structure))
        except ValueError:
            continue
    entries, owner = [], []
    for i, (_label, structure) in enumerate(base):
        entries.append(_entry(RawEntry, f"{i}-0", structure))
        owner.append(i)
        for p in range(perturb):
            s = structure.copy()
            s.apply_strain(rng.uniform(-STRAIN, STRAIN, 3))
            s.perturb(JITTER)
            entries.append(_entry(RawEntry, f"{i}-{p + 1}", s))
            owner.append(-i - 1)  # perturbed copy of base i
    graphs, owners = [], []
    for result, who in zip(featurize_entries(entries, workers=workers), owner, strict=True):
        if result.error is None:
            graphs.append(result.graph)
            owners.append(who)
    crystal, xrd = embedder.embed_graphs(graphs)
    owners = np.array(owners)
    return {
        "model_id": embedder.model_id,
        "crystal": crystal,
        "xrd": xrd,
        "is_base": owners >= 0,
        "material": np.where(owners >= 0, owners, -owners - 1),
        "structures": base,
    }


def _entry(raw_entry, name: str, structure):
    data = json.dumps(structure.as_dict()).encode()
    return raw_entry(f"{name}.json", name, data, len(data))


def synth(corpus: dict, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` (crystal, xrd) vector pairs: a real base embedding plus a real perturbation delta."""
    base_idx = np.flatnonzero(corpus["is_base"])
    pert_idx = np.flatnonzero(~corpus["is_base"])
    index_of_base = {int(corpus["material"][i]): i for i in base_idx}
    pert_base = np.array([index_of_base.get(int(corpus["material"][j]), -1) for j in pert_idx])
    keep = pert_base >= 0
    pert_idx, pert_base = pert_idx[keep], pert_base[keep]
    centre = rng.choice(base_idx, n)
    which = rng.integers(0, len(pert_idx), n)
    scale = rng.uniform(0.5, 2.0, (n, 1)).astype(np.float32)
    out = []
    for name in ("crystal", "xrd"):
        e = corpus[name]
        out.append(e[centre] + scale * (e[pert_idx[which]] - e[pert_base[which]]))
    return out[0], out[1], corpus["material"][centre]


def _percentiles(samples: list[float]) -> dict:
    ms = np.array(samples) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2)}


def bench_size(corpus: dict, n: int, queries: int, seed: int, workdir: Path) -> dict:
    from matconcept.service.store import PointIn, SearchFilters
    from matconcept.service.store.edge import EdgeStore
    from matconcept.service.store.records import MaterialPayload

    rng = np.random.default_rng(seed + n)
    crystal, xrd, material = synth(corpus, n + queries, rng)
    structures = corpus["structures"]
    payloads = []
    for i in range(n):
        label, structure = structures[int(material[i])]
        elements = sorted({el.symbol for el in structure.composition.elements})
        payloads.append(
            MaterialPayload(
                material_id=f"bench:{i}",
                source="bench",
                source_id=str(i),
                formula=structure.composition.reduced_formula,
                elements=elements,
                n_elements=len(elements),
                n_sites=len(structure),
                density=0.0,
                volume=0.0,
                content_hash=label.content_hash,
                ingested_at="1970-01-01T00:00:00+00:00",
            )
        )
    store = EdgeStore(workdir / f"n{n}", corpus["model_id"], crystal.shape[1])
    try:
        start = time.perf_counter()
        for lo in range(0, n, 1000):
            store.upsert(
                [PointIn(payload=payloads[i], crystal=crystal[i], xrd=xrd[i]) for i in range(lo, min(n, lo + 1000))]
            )
        upsert_s = time.perf_counter() - start
        q = crystal[n:]
        element = max({e for p in payloads for e in p.elements}, key=lambda e: sum(e in p.elements for p in payloads))
        filters = SearchFilters(elements_all=[element])

        def run(exact: bool, f=None) -> tuple[list[list[str]], list[float]]:
            ids, times = [], []
            for v in q:
                t = time.perf_counter()
                hits = store.search(v, k=K, exact=exact, filters=f)
                times.append(time.perf_counter() - t)
                ids.append([h.material_id for h in hits])
            return ids, times

        run(True)  # warm caches
        exact_ids, exact_t = run(True)
        exact_f_ids, exact_f_t = run(True, filters)
        start = time.perf_counter()
        store.optimize()
        hnsw_build_s = time.perf_counter() - start
        hnsw_ids, hnsw_t = run(False)
        hnsw_f_ids, hnsw_f_t = run(False, filters)

        def recall(a, b):
            return round(float(np.mean([len(set(x) & set(y)) / max(1, len(y)) for x, y in zip(a, b, strict=True)])), 4)

        return {
            "n": n,
            "queries": queries,
            "k": K,
            "upsert_s": round(upsert_s, 1),
            "hnsw_build_s": round(hnsw_build_s, 1),
            "exact": _percentiles(exact_t),
            "hnsw": {**_percentiles(hnsw_t), f"recall@{K}": recall(hnsw_ids, exact_ids)},
            "filter": f"elements_all=[{element}] ({store.count(filters)} of {n})",
            "exact_filtered": _percentiles(exact_f_t),
            "hnsw_filtered": {**_percentiles(hnsw_f_t), f"recall@{K}": recall(hnsw_f_ids, exact_f_ids)},
        }
    finally:
        store.close()


def cross_modal(corpus: dict, workdir: Path) -> dict:
    """Find a material from its perturbed copy's XRD embedding: crystal vs xrd vectors (top-1, top-5)."""
    from matconcept.service.store import PointIn
    from matconcept.service.store.edge import EdgeStore
    from matconcept.service.store.records import MaterialPayload

    base = np.flatnonzero(corpus["is_base"])
    with EdgeStore(workdir / "cross", corpus["model_id"], corpus["crystal"].shape[1]) as store:
        points = []
        for i in base:
            m = int(corpus["material"][i])
            payload = MaterialPayload(
                material_id=f"m:{m}",
                source="m",
                source_id=str(m),
                formula="-",
                elements=[],
                n_elements=0,
                n_sites=1,
                density=0,
                volume=0,
                content_hash="-",
                ingested_at="-",
            )
            points.append(PointIn(payload=payload, crystal=corpus["crystal"][i], xrd=corpus["xrd"][i]))
        store.upsert(points)
        out = {}
        queries = np.flatnonzero(~corpus["is_base"])
        for using in ("crystal", "xrd"):
            top1 = top5 = 0
            for j in queries:
                ids = [h.material_id for h in store.search(corpus["xrd"][j], using=using, k=5, exact=True)]
                want = f"m:{int(corpus['material'][j])}"
                top1 += ids[:1] == [want]
                top5 += want in ids
            out[using] = {"top1": round(top1 / len(queries), 3), "top5": round(top5 / len(queries), 3)}
        out["queries"] = len(queries)
        out["stored"] = len(base)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="stored vectors, comma-separated")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--perturb", type=int, default=2, help="perturbed copies per built-in structure")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    start = time.perf_counter()
    corpus = embed_corpus(args.perturb, args.workers, args.seed)
    result = {
        "engine": "qdrant-edge",
        "model_id": corpus["model_id"],
        "real_embeddings": len(corpus["crystal"]),
        "embed_corpus_s": round(time.perf_counter() - start, 1),
        "cpus": os.cpu_count(),
        "sizes": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        result["xrd_query_finds_material"] = cross_modal(corpus, Path(tmp))
        for n in (int(s) for s in args.sizes.split(",") if s):
            result["sizes"].append(bench_size(corpus, n, args.queries, args.seed, Path(tmp)))
            if not args.json:
                print(json.dumps(result["sizes"][-1], indent=1))
    print(json.dumps(result, indent=None if args.json else 1))


if __name__ == "__main__":
    main()
