"""Benchmark: our XRD simulator against pymatgen's XRDCalculator (the published pipeline).

Set: pymatgen's 288 AFLOW prototypes + the COD CIFs shipped with ``crystals`` (87; CIFs pymatgen
cannot parse are skipped and counted). Both implementations are warmed up on the whole set, then
timed over it in the same process, best of ``--repeat`` passes each (our small caches are emptied
before each pass, so a pass pays for its own hkl boxes and form-factor tables); agreement is the
cosine similarity of the two 5000-bin patterns per structure.

Threads: numpy's BLAS (OpenBLAS/MKL) and OpenMP (which torch would also use) are limited to
``--threads`` (default 1) through the ``*_NUM_THREADS`` variables, set before numpy is imported;
torch, if something has imported it, gets ``torch.set_num_threads`` too. The same limit applies to
both implementations. One thread is the default because production featurisation runs one worker
process per core, and it makes the figure independent of machine load on the other cores.

Usage::

    python benchmarks/bench_xrd.py            # readable summary
    python benchmarks/bench_xrd.py --json     # one JSON object on stdout
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
"""Environment variables read by numpy's BLAS builds, OpenMP and torch at import time."""


def _parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes per implementation (best is kept)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP/torch threads for both")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.threads < 1:
        parser.error("--repeat and --threads must be ≥ 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the process exit status."""
    args = _parse_args(argv)
    for variable in THREAD_VARIABLES:  # before numpy (and its BLAS) is imported
        os.environ[variable] = str(args.threads)

    import json
    import logging
    import time

    import numpy as np
    import pymatgen.core

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.xrd_reference
    from matconcept.encoders.xrd import XRDSimulator, clear_caches
    from tests.xrd_reference import pymatgen_pattern, reference_structures

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    reference = reference_structures()
    names = [name for name, _ in reference.structures]
    structures = [structure for _, structure in reference.structures]
    simulator = XRDSimulator()

    def run_pymatgen() -> list[np.ndarray]:
        return [pymatgen_pattern(structure) for structure in structures]

    def run_ours() -> list[np.ndarray]:
        clear_caches()  # no credit for hkl boxes / form factors cached by an earlier pass
        return [simulator.pattern(structure) for structure in structures]

    def best_time(run: object) -> float:
        best = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            run()  # type: ignore[operator]
            best = min(best, time.perf_counter() - start)
        return best

    reference_patterns = run_pymatgen()  # warm-up (imports, caches) and the reference
    our_patterns = run_ours()
    pymatgen_s = best_time(run_pymatgen)
    ours_s = best_time(run_ours)

    cosines = np.array(
        [
            float(a @ b) / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-30)
            if a.any() or b.any()
            else 1.0  # both empty: identical
            for a, b in zip(reference_patterns, our_patterns, strict=True)
        ]
    )
    worst = int(np.argmin(cosines))
    result = {
        "structures": len(structures),
        "skipped_cifs": len(reference.skipped),
        "pymatgen_version": pymatgen.core.__version__,
        "threads": args.threads,
        "repeat": args.repeat,
        "pymatgen_s": round(pymatgen_s, 4),
        "ours_s": round(ours_s, 4),
        "speedup": round(pymatgen_s / ours_s, 1),
        "min_cosine": float(cosines.min()),
        "median_cosine": float(np.median(cosines)),
        "worst": names[worst],
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"pymatgen {result['pymatgen_version']}, {args.threads} thread(s), best of {args.repeat}")
        print(
            f"{result['structures']} structures "
            f"({len(structures) - sum(n.endswith('.cif') for n in names)} AFLOW prototypes, "
            f"{sum(n.endswith('.cif') for n in names)} COD CIFs; {result['skipped_cifs']} CIFs skipped)"
        )
        print(f"pymatgen XRDCalculator: {pymatgen_s:8.3f} s  ({pymatgen_s / len(structures) * 1e3:.2f} ms each)")
        print(f"XRDSimulator:           {ours_s:8.3f} s  ({ours_s / len(structures) * 1e3:.3f} ms each)")
        print(f"speedup:                {result['speedup']:8.1f}×")
        print(
            f"cosine vs pymatgen:     min {result['min_cosine']:.7f} ({result['worst']}), "
            f"median {result['median_cosine']:.7f}"
        )
        for line in reference.skipped:
            print(f"skipped {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
