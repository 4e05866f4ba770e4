"""Benchmark: what each ingest stage costs per structure at 1k, 10k (, 100k) entries, for sizing runs.

The stages are run one after another in one process, so each one's cost is its own (the pipelined
ingest overlaps them; see benchmarks/bench_ingest.py for its wall clock): parse + featurize
(:func:`~matconcept.encoders.pipeline.featurize_entry`, one core), embedding and point building
(:func:`~matconcept.service.ingest.local.points_from_featurized`: the model on CPU, then peak list,
fingerprint and the kept structure), upserts into the embedded store, the HNSW build, and the
store's bytes on disk per point. CPU seconds (``process_time``) are reported beside wall seconds,
because the machine is shared; ``load_avg`` says how shared.

Inputs are the COD CIFs shipped with ``crystals`` and ase, repeated under distinct names (each copy
is a distinct material to the store, so every stage does its full work).

    python benchmarks/bench_ingest_scale.py --sizes 1000,10000 --json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path


def entries(n: int) -> list:
    from matconcept.encoders.builtin import ase_cifs, crystals_cifs
    from matconcept.encoders.sources import RawEntry

    files = [(p.stem, p.read_bytes()) for p in (*crystals_cifs(), *ase_cifs())]
    out = []
    for i in range(n):
        stem, data = files[i % len(files)]
        name = f"{stem}-{i}"
        out.append(RawEntry(f"{name}.cif", name, data, len(data)))
    return out


def _du(path: Path) -> int:
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file())


class _Clock:
    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def split(self, n: int) -> dict:
        wall, cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
        return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "cpu_ms_per_entry": round(cpu / max(n, 1) * 1000, 3)}


def _add(total: dict, clock: _Clock) -> None:
    total["wall"] += time.perf_counter() - clock.wall
    total["cpu"] += time.process_time() - clock.cpu


def _split(total: dict, n: int) -> dict:
    cpu_ms = total["cpu"] / max(n, 1) * 1000
    return {"wall_s": round(total["wall"], 2), "cpu_s": round(total["cpu"], 2), "cpu_ms_per_entry": round(cpu_ms, 3)}


def bench(n: int, workdir: Path, batch: int) -> dict:
    import torch

    from matconcept.encoders.embedder import Embedder
    from matconcept.encoders.featurize import Featurizer
    from matconcept.encoders.pipeline import featurize_entry
    from matconcept.encoders.structure_io import ParseLimits
    from matconcept.service.ingest.local import label_entry, points_from_featurized
    from matconcept.service.store.edge import EdgeStore

    torch.set_num_threads(1)  # one core per stage: the per-entry cost a worker pays
    embedder = Embedder(device="cpu")
    settings = embedder.loaded.info.model
    featurizer = Featurizer(settings.graph, settings.xrd)
    limits = ParseLimits()
    raw = entries(n)
    out: dict = {"n": n, "load_avg_before": [round(x, 2) for x in os.getloadavg()]}

    clock = _Clock()
    labels = [label_entry(e, "user") for e in raw]
    out["label_hash"] = clock.split(n)

    clock = _Clock()
    results = [featurize_entry(e, featurizer, limits) for e in raw]
    out["parse_featurize"] = clock.split(n)
    good = [(r, lab) for r, lab in zip(results, labels, strict=True) if r.error is None]
    out["featurized"] = len(good)

    clock = _Clock()
    for lo in range(0, len(good), batch):
        embedder.embed_graphs([r.graph for r, _ in good[lo : lo + batch]])
    out["embed_model_only"] = clock.split(len(good))

    directory = workdir / f"n{n}"
    with EdgeStore(directory, embedder.model_id, embedder.dim) as store:
        build = {"wall": 0.0, "cpu": 0.0}
        upsert = {"wall": 0.0, "cpu": 0.0}
        for lo in range(0, len(good), batch):  # streamed: the points of 100k entries would not fit in memory
            chunk = good[lo : lo + batch]
            clock = _Clock()
            points = points_from_featurized([r for r, _ in chunk], [lab for _, lab in chunk], embedder)
            _add(build, clock)
            clock = _Clock()
            store.upsert(points)
            _add(upsert, clock)
        out["embed_and_build_points"] = _split(build, len(good))
        out["upsert"] = _split(upsert, len(good))
        clock = _Clock()
        store.optimize()
        out["hnsw_build"] = clock.split(len(good))
        out["store_bytes"] = _du(directory)
        out["store_bytes_per_point"] = round(out["store_bytes"] / max(len(good), 1))
    out["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="entries, comma-separated")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = {"cpus": os.cpu_count(), "sizes": []}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-scale-") as tmp:
        for n in (int(s) for s in args.sizes.split(",") if s):
            result["sizes"].append(bench(n, Path(tmp), args.batch))
            if not args.json:
                print(json.dumps(result["sizes"][-1], indent=1))
    print(json.dumps(result, indent=None if args.json else 1))


if __name__ == "__main__":
    main()
