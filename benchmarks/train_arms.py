"""Equal-budget training arms side by side: each config trains for the same training time, in parallel
processes on one machine (one GPU holds several of these small models), then each arm's best
checkpoint and its validation figures are printed as one JSON object.

Used for issue 17's objective comparison on a lent H200 (``training/configs/paper*.yaml``): the arms
share the device, so their pairs/s are each a share of it; ``bench_train.py`` gives the solo figure.
``max_minutes`` counts training time only: the per-epoch validation comes on top (on the H200, 5 min of
training took about 9 min of wall clock with three arms), so leave room for it in a device lease.

    python benchmarks/train_arms.py --minutes 5 --out runs/arms \\
        training/configs/paper.yaml training/configs/paper-othergroup.yaml
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def run_arm(config_path: Path, minutes: float, out: Path, workers: int) -> None:
    """Train one arm (in its own process) and save its best checkpoint in float16 beside its metrics."""
    import logging

    import torch
    import yaml

    from matconcept.encoders.checkpoint import load_checkpoint, save_checkpoint
    from matconcept.training.trainer import BEST_DIR, METRICS_FILE, TrainConfig, train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    raw = yaml.safe_load(config_path.read_text()) or {}
    name = raw.get("name", config_path.stem)
    raw.update(run_dir=str(out / name), max_minutes=minutes, loader_workers=workers)
    start = time.time()
    result = train(TrainConfig.model_validate(raw), progress=False)
    result["wall_s"] = round(time.time() - start, 1)
    result["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    metrics = out / name / METRICS_FILE
    rows = [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.exists() else []
    if (out / name / BEST_DIR).exists():  # at least one epoch finished and was validated
        best = load_checkpoint(out / name / BEST_DIR)
        result["best"] = next((r for r in rows if r["epoch"] == best.info.training.get("epoch")), None)
        result["model_id_float16"] = save_checkpoint(
            best.model, out / f"{name}-float16", dtype="float16", training=best.info.training
        )
    (out / f"{name}.result.json").write_text(json.dumps(result, default=str, indent=1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="+", type=Path)
    parser.add_argument("--minutes", type=float, required=True, help="training time of every arm")
    parser.add_argument("--out", type=Path, default=Path("runs/arms"))
    parser.add_argument("--workers", type=int, default=4, help="DataLoader workers per arm")
    parser.add_argument("--arm", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.arm:
        run_arm(args.configs[0], args.minutes, args.out, args.workers)
        return 0
    procs = []
    for config in args.configs:
        log = (args.out / f"{config.stem}.log").open("w")
        cmd = [sys.executable, __file__, "--arm", str(config), "--minutes", str(args.minutes)]
        cmd += ["--out", str(args.out), "--workers", str(args.workers)]
        procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
    codes = [p.wait() for p in procs]
    found = sorted(args.out.glob("*.result.json"))
    results = {f.name.removesuffix(".result.json"): json.loads(f.read_text()) for f in found}
    print(json.dumps({"exit_codes": codes, "minutes": args.minutes, "arms": results}, default=str))
    return max(codes)


if __name__ == "__main__":
    sys.exit(main())
