"""Benchmark: ``matconcept ingest`` end to end — a directory of real CIFs into a fresh embedded store.

The real COD CIFs that ship with the dependencies (``crystals`` + ase's minerals) are copied under
distinct names to ``--n`` files in a temporary directory (a small COD-like mirror) and ingested with
:func:`matconcept.service.ingest.local.ingest` exactly as the CLI does (process pool, batched embedding and upserts,
qdrant-edge on disk). Reports CIFs/s end to end (target ≥50/s on 2 cores) and the split: parse and
featurize per CIF measured in one process, embed and upsert as measured inside the ingest, and how
long the ingest loop waited for the pool. On a shared machine the wall-clock rate understates the
code: ``cpu_s`` (this process + its reaped pool workers, during the ingest) and the rate it implies
on ``--workers`` uncontended cores are reported beside it.

    python benchmarks/bench_ingest.py --json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import tempfile
import time
from itertools import cycle, islice
from pathlib import Path


def _cpu_seconds() -> float:
    """User + system CPU of this process and its waited-for children (the pool's workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="CIF files to ingest (the shipped COD set, repeated)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from matconcept.encoders.builtin import cod_cif_files
    from matconcept.encoders.embedder import Embedder
    from matconcept.encoders.featurize import Featurizer
    from matconcept.encoders.sources import iter_entries
    from matconcept.encoders.structure_io import read_entry
    from matconcept.service.ingest.local import ingest
    from matconcept.service.store.edge import EdgeStore

    files = cod_cif_files()
    featurizer = Featurizer()
    parse_s = featurize_s = 0.0
    base = list(iter_entries(files))
    for entry in base:  # per-stage split, one process
        start = time.perf_counter()
        parsed = read_entry(entry)
        mid = time.perf_counter()
        featurizer.featurize(parsed.structure)
        parse_s += mid - start
        featurize_s += time.perf_counter() - mid

    embedder = Embedder(device="cpu")
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        mirror = Path(tmp) / "cif"
        for i, path in enumerate(islice(cycle(files), args.n)):
            target = mirror / f"{i % 100:02d}" / f"{path.stem}__{i}.cif"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        cpu_before = _cpu_seconds()
        with EdgeStore(Path(tmp) / "db", embedder.model_id, embedder.dim) as store:
            summary = ingest(
                [mirror],
                store,
                embedder,
                workers=args.workers,
                batch=args.batch,
                optimize=False,
                progress=not args.json,
            )
            stored = store.count()
        cpu_s = _cpu_seconds() - cpu_before
    per_cif_ms = {
        "parse": round(1000 * parse_s / len(base), 2),
        "featurize": round(1000 * featurize_s / len(base), 2),
        "embed": round(1000 * summary.stage_seconds["embed"] / max(1, summary.added), 2),
        "upsert": round(1000 * summary.stage_seconds["upsert"] / max(1, summary.added), 2),
    }
    result = {
        "n": args.n,
        "workers": args.workers,
        "batch": args.batch,
        "cpus": os.cpu_count(),
        "summary": summary.model_dump(),
        "stored": stored,
        "cifs_per_s": round(summary.read / summary.seconds, 1),
        "cpu_s": round(cpu_s, 1),
        "cifs_per_s_if_uncontended": round(summary.read / max(cpu_s / args.workers, summary.seconds / 100), 1),
        "load_average_1min": os.getloadavg()[0],
        "per_cif_ms_one_process": per_cif_ms,
        "stage_seconds": summary.stage_seconds,
        "model_id": embedder.model_id,
    }
    print(json.dumps(result, indent=None if args.json else 1))


if __name__ == "__main__":
    main()
