"""Benchmark: top-k query latency and recall of the embedded store (qdrant-edge), exact vs HNSW.

Vectors look like real embeddings because they are the model's own: the built-in structures
(AFLOW prototypes, COD CIFs, pymatgen samples) and ``--perturb`` strained/jittered copies of each
are featurized and embedded; a store of N vectors is then filled with real embeddings plus real
perturbation deltas (``e_i + a·(e'_j - e_j)``: a real material, moved the way a real structural
perturbation moves embeddings), not Gaussian noise. Queries are drawn the same way and are not in
the store. For each N: build time, HNSW build time, p50/p99 latency of exact and HNSW top-k, and
recall@k of HNSW against exact search, unfiltered and with an element filter.

Filtered search: for filters from broad to selective (no oxygen, oxygen, a ``max_sites`` range,
elements matching about 5 %, 1 % and 0.2 % of the points) recall@k and latency of each way the engine
can answer (exact, HNSW with several ``hnsw_ef``, ACORN) and of what the store plans by default
(``filtered_recall@50``: the worst filter against the 0.99 target). Then the same points in a store
with int8 scalar quantization: recall with and without rescoring, and bytes on disk by part for both.

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
from types import SimpleNamespace

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


FILTER_FRACTIONS = (0.05, 0.01, 0.002)
"""Target shares of the stored points matched by the element filters tested besides the broad ones."""
HNSW_EFS = (128, 256, 512, 1024)


def _payloads(corpus: dict, material: np.ndarray, n: int) -> list:
    from matconcept.service.store.records import MaterialPayload

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
    return payloads


def _filters(payloads: list) -> list:
    """Filters from broad to selective: no atom of the commonest element, the commonest element, the
    smaller cells (a range), and one element per share in ``FILTER_FRACTIONS``."""
    from collections import Counter

    from matconcept.service.store import SearchFilters

    counts = Counter(e for p in payloads for e in p.elements)
    common = counts.most_common(1)[0][0]
    sites = np.percentile([p.n_sites for p in payloads], 30)
    out = [
        SearchFilters(elements_none=[common]),
        SearchFilters(elements_all=[common]),
        SearchFilters(max_sites=int(sites)),
    ]
    for fraction in FILTER_FRACTIONS:
        element = min(counts, key=lambda e: abs(counts[e] / len(payloads) - fraction))
        if element != common:
            out.append(SearchFilters(elements_all=[element]))
    return out


def _describe(f) -> str:
    return json.dumps(f.model_dump(exclude_defaults=True))


def _recall(a: list[list[str]], b: list[list[str]]) -> float:
    return round(float(np.mean([len(set(x) & set(y)) / max(1, len(y)) for x, y in zip(a, b, strict=True)])), 4)


def _fill(store, payloads: list, crystal: np.ndarray, xrd: np.ndarray) -> float:
    from matconcept.service.store import PointIn

    start = time.perf_counter()
    for lo in range(0, len(payloads), 1000):
        hi = min(len(payloads), lo + 1000)
        store.upsert([PointIn(payload=payloads[i], crystal=crystal[i], xrd=xrd[i]) for i in range(lo, hi)])
    return time.perf_counter() - start


def _du(path: Path) -> int:
    """Bytes on disk (allocated blocks: the engine's files are sparse and preallocated)."""
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file())


def _du_parts(path: Path) -> dict[str, int]:
    """Bytes on disk by part: the write-ahead log, and per kind of segment file (vectors of each
    name, their int8 copies, HNSW graphs, payload, payload indexes), summed over segments."""
    parts: dict[str, int] = {}
    for f in path.rglob("*"):
        if not f.is_file():
            continue
        rel = f.relative_to(path).parts
        if "segments" in rel and len(rel) > rel.index("segments") + 2:
            key = rel[rel.index("segments") + 2]
            key = "quantized" if "quantized" in str(f.relative_to(path)) else key
        else:
            key = rel[1] if rel[0] == "shard" and len(rel) > 2 else rel[-1]
        parts[key] = parts.get(key, 0) + f.stat().st_blocks * 512
    return dict(sorted(parts.items(), key=lambda kv: -kv[1]))


def _engine_run(store, queries: np.ndarray, filters, params) -> tuple[list[list[str]], list[float]]:
    """Top-K through the engine with explicit search params (the strategies the store chooses among)."""
    import qdrant_edge as q

    from matconcept.service.store.base import build_filter
    from matconcept.service.store.peaks import PEAK_FIELDS
    from matconcept.service.store.structures import STRUCTURE_FIELDS

    models = SimpleNamespace(
        Filter=q.Filter,
        FieldCondition=q.FieldCondition,
        MatchValue=q.MatchValue,
        MatchAny=q.MatchAny,
        Range=q.RangeFloat,
    )
    flt = build_filter(filters, models)
    ids, times = [], []
    for v in queries:
        t = time.perf_counter()
        request = q.QueryRequest(
            limit=K,
            query=q.Query.Nearest(v.tolist(), using="crystal"),
            filter=flt,
            params=params,
            with_payload=q.PayloadSelector.Exclude([*STRUCTURE_FIELDS, *PEAK_FIELDS]),  # as the store reads
        )
        points = store.shard.query(request)
        times.append(time.perf_counter() - t)
        ids.append([p.payload["material_id"] for p in points])
    return ids, times


def bench_size(corpus: dict, n: int, queries: int, seed: int, workdir: Path, quantization: bool) -> dict:
    from matconcept.service.store import SearchFilters
    from matconcept.service.store.edge import EdgeStore

    rng = np.random.default_rng(seed + n)
    crystal, xrd, material = synth(corpus, n + queries, rng)
    payloads = _payloads(corpus, material, n)
    q = crystal[n:]
    load = {"before": [round(x, 2) for x in os.getloadavg()]}
    store = EdgeStore(workdir / f"n{n}", corpus["model_id"], crystal.shape[1])
    try:
        upsert_s = _fill(store, payloads, crystal, xrd)
        element = max({e for p in payloads for e in p.elements}, key=lambda e: sum(e in p.elements for p in payloads))
        filters = SearchFilters(elements_all=[element])
        tested = _filters(payloads)

        def run(exact: bool | None, f=None) -> tuple[list[list[str]], list[float]]:
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
        truth = [(f, *run(True, f)) for f in tested]
        start = time.perf_counter()
        store.optimize()
        hnsw_build_s = time.perf_counter() - start
        hnsw_ids, hnsw_t = run(False)
        hnsw_f_ids, hnsw_f_t = run(False, filters)
        result = {
            "n": n,
            "queries": queries,
            "k": K,
            "upsert_s": round(upsert_s, 1),
            "hnsw_build_s": round(hnsw_build_s, 1),
            "exact": _percentiles(exact_t),
            "hnsw": {**_percentiles(hnsw_t), f"recall@{K}": _recall(hnsw_ids, exact_ids)},
            "filter": f"elements_all=[{element}] ({store.count(filters)} of {n})",
            "exact_filtered": _percentiles(exact_f_t),
            "hnsw_filtered": {**_percentiles(hnsw_f_t), f"recall@{K}": _recall(hnsw_f_ids, exact_f_ids)},
            "filtered": [],
        }
        import qdrant_edge as e

        for f, ids_true, exact_times in truth:
            t = time.perf_counter()
            for _ in range(20):
                matched = store.count(f)
            row = {
                "filter": _describe(f),
                "matches": matched,
                "share": round(matched / n, 4),
                "count_ms": round((time.perf_counter() - t) / 20 * 1000, 2),
                "exact": _percentiles(exact_times),
            }
            strategies = {"exact_engine": e.SearchParams(exact=True)}
            strategies.update({f"hnsw_ef{ef}": e.SearchParams(hnsw_ef=ef) for ef in HNSW_EFS})
            for ef in (128, 512):
                acorn = e.AcornSearchParams(enable=True, max_selectivity=1.0)
                strategies[f"acorn_ef{ef}"] = e.SearchParams(hnsw_ef=ef, acorn=acorn)
            for name, params in strategies.items():
                ids, times = _engine_run(store, q, f, params)
                row[name] = {**_percentiles(times), f"recall@{K}": _recall(ids, ids_true)}
            ids, times = run(None, f)  # what the store does by default (the service's path)
            row["store_default"] = {**_percentiles(times), f"recall@{K}": _recall(ids, ids_true)}
            result["filtered"].append(row)
        worst = min(r["store_default"][f"recall@{K}"] for r in result["filtered"])
        result[f"filtered_recall@{K}"] = {"store_default_min": worst, "target": 0.99, "met": worst >= 0.99}
    finally:
        store.close()
    result["store_bytes"] = _du(store.directory)
    result["store_bytes_parts"] = _du_parts(store.directory)
    if quantization:
        result["scalar_quantization"] = bench_quantized(corpus, payloads, crystal, xrd, n, workdir, exact_ids, truth)
        result["scalar_quantization"]["store_bytes_without"] = result["store_bytes"]
    load["after"] = [round(x, 2) for x in os.getloadavg()]
    result["load_avg"] = load
    return result


def bench_quantized(corpus, payloads, crystal, xrd, n, workdir, exact_ids, truth) -> dict:
    """The same points in a store with int8 scalar quantization: recall with rescoring, and size."""
    from matconcept.service.store.edge import EdgeStore

    q = crystal[n:]
    directory = workdir / f"n{n}-sq"
    with EdgeStore(directory, corpus["model_id"], crystal.shape[1], scalar_quantization=True) as store:
        upsert_s = _fill(store, payloads, crystal, xrd)
        start = time.perf_counter()
        store.optimize()
        build_s = time.perf_counter() - start
        out = {"upsert_s": round(upsert_s, 1), "hnsw_build_s": round(build_s, 1)}
        ids, times = [], []
        for v in q:
            t = time.perf_counter()
            ids.append([h.material_id for h in store.search(v, k=K)])
            times.append(time.perf_counter() - t)
        out["unfiltered_rescored"] = {**_percentiles(times), f"recall@{K}": _recall(ids, exact_ids)}
        import qdrant_edge as e

        no_rescore = e.SearchParams(hnsw_ef=128, quantization=e.QuantizationSearchParams(rescore=False))
        ids, times = _engine_run(store, q, None, no_rescore)
        out["unfiltered_no_rescore"] = {**_percentiles(times), f"recall@{K}": _recall(ids, exact_ids)}
        out["filtered_rescored"] = []
        for f, ids_true, _ in truth:
            ids, times = [], []
            for v in q:
                t = time.perf_counter()
                ids.append([h.material_id for h in store.search(v, k=K, filters=f)])
                times.append(time.perf_counter() - t)
            out["filtered_rescored"].append(
                {
                    "filter": _describe(f),
                    **_percentiles(times),
                    f"recall@{K}": _recall(ids, ids_true),
                }
            )
    out["store_bytes"] = _du(directory)
    out["store_bytes_parts"] = _du_parts(directory)
    return out


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
    parser.add_argument("--no-quantization", action="store_true", help="skip the int8 scalar-quantized store")
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
            result["sizes"].append(bench_size(corpus, n, args.queries, args.seed, Path(tmp), not args.no_quantization))
            if not args.json:
                print(json.dumps(result["sizes"][-1], indent=1))
    print(json.dumps(result, indent=None if args.json else 1))


if __name__ == "__main__":
    main()
