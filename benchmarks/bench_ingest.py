"""Benchmark: ``matconcept ingest`` end to end — a directory of real CIFs into a fresh embedded store.

The real COD CIFs that ship with the dependencies (``crystals`` + ase's minerals) are copied under
distinct names to ``--n`` files in a temporary directory (a small COD-like mirror) and ingested with
:func:`matconcept.service.ingest.local.ingest` exactly as the CLI does (the streaming pipeline: pool
workers parse, featurize and build points, this process embeds, a writer thread upserts into
qdrant-edge on disk), twice in the same run: with the fast CIF reader (gemmi + moyopy, the default)
and with the pymatgen reader (the reference path), each into its own fresh store. Reports, side by
side: ``cifs_per_s`` (fast, wall clock), ``baseline_cifs_per_s`` (pymatgen) and ``speedup``; the
per-stage split (per CIF in one process: parse, featurize, point building; inside each ingest: waiting
for the pool, embedding, upserting); the CPU seconds of each run (this process + its reaped pool
workers) and the rate they imply on ``--workers`` uncontended cores; peak RSS; and the machine's load
average before and after (the 2-core development machine is shared, so wall-clock rates understate
the code when the load is above the core count).

    python benchmarks/bench_ingest.py --json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import resource
import shutil
import tempfile
import threading
import time
from itertools import cycle, islice
from pathlib import Path


def _cpu_seconds() -> float:
    """User + system CPU of this process and its waited-for children (the forkserver's workers are its
    children, not ours: their CPU is counted per entry, ``worker_cpu_ms_per_cif``)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _peak_rss_mb() -> dict[str, float]:
    """Peak resident memory of this process and of the largest reaped pool worker, MB."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"main": round(own.ru_maxrss / 1024, 1), "largest_worker": round(children.ru_maxrss / 1024, 1)}


class _TreeRss:
    """Peak resident memory of this process and all its descendants together (the forkserver and its
    pool workers included), sampled every ``interval`` seconds while a run lasts; None without psutil."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval, self.peak_mb, self._stop = interval, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += proc.memory_info().rss
            self.peak_mb = max(self.peak_mb, total / 2**20)
            self._stop.wait(self.interval)

    def __enter__(self) -> _TreeRss:
        try:
            import psutil  # noqa: F401
        except ImportError:
            self.peak_mb = None
            return self
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def _stage_split(reader: str) -> dict[str, float]:
    """CPU ms per CIF of each stage a pool worker runs, in this process, over the shipped COD CIFs, and
    what the structure-type notion adds to it (its role graph, part of ``featurize``, and its encoder,
    part of the ingest thread's ``embed``; issue 13 allows 5 ms)."""
    from matconcept.encoders.builtin import cod_cif_files
    from matconcept.encoders.embedder import Embedder
    from matconcept.encoders.featurize import Featurizer
    from matconcept.encoders.sources import iter_entries
    from matconcept.encoders.structure_io import read_entry
    from matconcept.encoders.structure_type import structure_type_graph
    from matconcept.service.store.peaks import PhaseFeatures
    from matconcept.service.store.structures import StoredStructure

    featurizer = Featurizer()
    entries = list(iter_entries(cod_cif_files()))
    totals = {"parse": 0.0, "featurize": 0.0, "point_parts": 0.0, "structure_type_role_graph": 0.0}
    graphs = []
    for entry in entries:
        start = time.process_time()
        parsed = read_entry(entry, reader=reader)
        mid = time.process_time()
        graphs.append(featurizer.featurize(parsed.structure))
        end = time.process_time()
        StoredStructure.of(parsed.structure, entry.data, entry.name)
        PhaseFeatures.of(parsed.structure)
        parts_end = time.process_time()
        structure_type_graph(parsed.structure)  # already inside featurize: timed apart to show its share
        totals["parse"] += mid - start
        totals["featurize"] += end - mid
        totals["point_parts"] += parts_end - end
        totals["structure_type_role_graph"] += time.process_time() - parts_end
    embedder = Embedder(device="cpu")
    if embedder.has_structure_type:
        start = time.process_time()
        embedder.embed_structure_types(graphs)
        totals["structure_type_encoder"] = time.process_time() - start
        start = time.process_time()
        embedder.embed_graphs(graphs)
        totals["concept_and_xrd_encoders"] = time.process_time() - start
    split = {k: round(1000 * v / len(entries), 2) for k, v in totals.items()}
    added = split["structure_type_role_graph"] + split.get("structure_type_encoder", 0.0)
    split["structure_type_added"] = round(added, 2)
    return split


def _run(mirror: Path, db: Path, embedder, reader: str, args: argparse.Namespace) -> dict:
    from matconcept.service.ingest.local import ingest
    from matconcept.service.store.edge import EdgeStore

    cpu_before = _cpu_seconds()
    with _TreeRss() as rss, EdgeStore(db, embedder.model_id, embedder.dim) as store:
        summary = ingest(
            [mirror],
            store,
            embedder,
            workers=args.workers,
            batch=args.batch,
            optimize=False,
            progress=not args.json,
            reader=reader,
        )
        stored = store.count()
    cpu_s = _cpu_seconds() - cpu_before
    added = max(1, summary.added)
    return {
        "summary": summary.model_dump(),
        "stored": stored,
        "cifs_per_s": round(summary.read / summary.seconds, 1),
        "peak_rss_mb_all_processes": round(rss.peak_mb, 1) if rss.peak_mb is not None else None,
        "cpu_s": round(cpu_s, 1),
        "cpu_ms_per_cif": round(1000 * cpu_s / max(1, summary.read), 2),
        "cifs_per_s_if_uncontended": round(summary.read / max(cpu_s / args.workers, summary.seconds / 100), 1),
        "stage_seconds": summary.stage_seconds,
        "in_ingest_ms_per_cif": {
            "embed": round(1000 * summary.stage_seconds.get("embed", 0.0) / added, 2),
            "upsert (writer thread, overlapped)": round(1000 * summary.stage_seconds.get("upsert", 0.0) / added, 2),
            "waiting for the pool": round(1000 * summary.stage_seconds.get("featurize_wait", 0.0) / added, 2),
        },
        "worker_cpu_ms_per_cif": round(1000 * summary.stage_seconds.get("worker_cpu", 0.0) / max(1, summary.read), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="CIF files to ingest (the shipped COD set, repeated)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--skip-baseline", action="store_true", help="only the fast path (long runs, RSS)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch

    from matconcept.encoders.builtin import cod_cif_files
    from matconcept.encoders.embedder import Embedder

    torch.set_num_threads(1)  # the pool's workers use the other cores; more threads here only contend
    load_before = os.getloadavg()
    split = {"fast": _stage_split("fast")}
    if not args.skip_baseline:
        split["pymatgen"] = _stage_split("pymatgen")
    embedder = Embedder(device="cpu")
    files = cod_cif_files()
    runs = {}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        mirror = Path(tmp) / "cif"
        for i, path in enumerate(islice(cycle(files), args.n)):
            target = mirror / f"{i % 100:02d}" / f"{path.stem}__{i}.cif"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        runs["fast"] = _run(mirror, Path(tmp) / "db-fast", embedder, "fast", args)
        rss_after_fast = _peak_rss_mb()
        if not args.skip_baseline:
            runs["pymatgen"] = _run(mirror, Path(tmp) / "db-pymatgen", embedder, "pymatgen", args)
    fast, base = runs["fast"], runs.get("pymatgen")
    result = {
        "n": args.n,
        "workers": args.workers,
        "batch": args.batch,
        "cpus": os.cpu_count(),
        "cifs_per_s": fast["cifs_per_s"],
        "baseline_cifs_per_s": base["cifs_per_s"] if base else None,
        "speedup": round(fast["cifs_per_s"] / base["cifs_per_s"], 2) if base else None,
        "cpu_ms_per_cif_main_process": {k: v["cpu_ms_per_cif"] for k, v in runs.items()},
        "cpu_ms_per_cif_workers": {k: v["worker_cpu_ms_per_cif"] for k, v in runs.items()},
        "peak_rss_mb_all_processes": {k: v["peak_rss_mb_all_processes"] for k, v in runs.items()},
        "cifs_per_s_if_uncontended": {k: v["cifs_per_s_if_uncontended"] for k, v in runs.items()},
        "per_cif_cpu_ms_one_process": split,
        "runs": runs,
        "peak_rss_mb_after_fast_run": rss_after_fast,
        "peak_rss_mb": _peak_rss_mb(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "model_id": embedder.model_id,
    }
    print(json.dumps(result, indent=None if args.json else 1))


if __name__ == "__main__":
    main()
