"""Training throughput: pairs per second for the paper's architecture and batch size, data loading included.

Runs the trainer's real step (batch built from the feature cache by the DataLoader, XRD augmentation
on the device, forward, bidirectional triplet loss, backward, Adam) for a few steps after a warm-up,
on the CPU and, where one is available, on a GPU with bf16 autocast. The paper's V100 figure is about
1,400 pairs/s; the target on one H100 is ≥ 15,000.

    python benchmarks/bench_train.py --json [--corpus artifacts/corpus --cache artifacts/cache]

Without a corpus it builds a small one (2,000 structures) in a temporary folder first.

``--compare`` times the shipped architecture's CPU step (``training/configs/default.yaml``: model,
batch 128, XRD augmentation) twice in one process: the current code, and the reference path, the
formulas as they were before issue 17's speed-up (Gaussian expansion with float32-subnormal
entries, the CGCNN edge Linear on the concatenated [v_i | v_j | u_ij], the broadening as a grouped
Conv1d). Rounds alternate the two (A B, B A, ...), so a change in the machine's load hits both
alike; the load average is printed before and after.

    nice python benchmarks/bench_train.py --compare --threads 2 1 --json

On a machine shared with other jobs, torch's OpenMP threads spin-wait for each other at every
parallel region and a 2-thread step can become 10-20× slower than a 1-thread one; libgomp reads
``OMP_WAIT_POLICY=PASSIVE`` (set it in the environment before Python starts) to sleep instead.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch_geometric.utils import scatter

from matconcept.encoders import cgcnn
from matconcept.encoders.dual_encoder import DualEncoder, ModelConfig
from matconcept.training import augment
from matconcept.training.augment import XRDAugment, augment_patterns
from matconcept.training.cache import build_cache
from matconcept.training.corpus import CorpusConfig, build_corpus, load_records
from matconcept.training.loss import triplet_loss
from matconcept.training.trainer import TrainConfig, _BatchDataset, epoch_batches, train_step

SHIPPED_CONFIG = Path(__file__).resolve().parents[1] / "training" / "configs" / "default.yaml"

PAPER_BATCH = 512
PAPER_V100_PAIRS_PER_S = 1400


def measure(store, train_idx, device: torch.device, steps: int, warmup: int, workers: int, augment: bool) -> dict:
    """Time ``steps`` training steps (after ``warmup``) on ``device``; returns the figures."""
    torch.manual_seed(0)
    model = DualEncoder(ModelConfig()).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = epoch_batches(train_idx, PAPER_BATCH, 0, 1)
    while len(batches) < steps + warmup:
        batches += batches
    dataset = _BatchDataset(store, batches[: steps + warmup], 5000, _no_struct_aug(), 0)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=None,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if workers else None,
    )
    bf16 = device.type == "cuda"
    xrd_aug = XRDAugment(enabled=augment)
    start = None
    for i, batch in enumerate(loader):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        batch = batch.to(device, non_blocking=True)
        batch.xrd = augment_patterns(batch.xrd, xrd_aug)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            crystal, xrd = model(batch)
        loss = triplet_loss(xrd, crystal)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    pairs = steps * PAPER_BATCH
    return {
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "threads": torch.get_num_threads(),
        "loader_workers": workers,
        "precision": "bf16-autocast" if bf16 else "fp32",
        "xrd_augment": augment,
        "batch": PAPER_BATCH,
        "steps": steps,
        "seconds": round(elapsed, 3),
        "pairs_per_s": round(pairs / elapsed, 1),
        "vs_paper_v100": round(pairs / elapsed / PAPER_V100_PAIRS_PER_S, 2),
    }


def _no_struct_aug():
    from matconcept.training.batches import StructureAugment

    return StructureAugment()


# ------------------------------------------------------------------------------- --compare


def _reference_gaussian(self: cgcnn.GaussianDistance, dist: torch.Tensor) -> torch.Tensor:
    return torch.exp(-(((dist.unsqueeze(-1) - self.centers) / self.width) ** 2))


def _reference_cgcnn_conv(
    self: cgcnn.CGCNNConv, x: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor
) -> torch.Tensor:
    # What PyG's propagate did with the old message(x_i, x_j, edge_attr): gather, concatenate, sum-scatter.
    src, dst = edge_index
    z = self.bn_edge(self.lin(torch.cat([x.index_select(0, dst), x.index_select(0, src), edge_attr], dim=-1)))
    gate, core = z.chunk(2, dim=-1)
    summed = scatter(torch.sigmoid(gate) * F.softplus(core), dst, 0, dim_size=x.shape[0], reduce="sum")
    return F.softplus(x + self.bn_node(summed))


def _reference_broaden(patterns: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    b = patterns.shape[0]
    return F.conv1d(patterns.unsqueeze(0), kernels.unsqueeze(1), padding=kernels.shape[1] // 2, groups=b).squeeze(0)


@contextlib.contextmanager
def reference_path() -> Iterator[None]:
    """Run the trainer's step with the pre-speed-up formulas (same parameters, same numbers to ~1e-6)."""
    saved = (cgcnn.GaussianDistance.forward, cgcnn.CGCNNConv.forward, augment.broaden)
    cgcnn.GaussianDistance.forward = _reference_gaussian
    cgcnn.CGCNNConv.forward = _reference_cgcnn_conv
    augment.broaden = _reference_broaden
    try:
        yield
    finally:
        cgcnn.GaussianDistance.forward, cgcnn.CGCNNConv.forward, augment.broaden = saved


def compare(store, records, train_idx, config: TrainConfig, threads: int, rounds: int, steps: int) -> dict:
    """Interleaved A/B timing of the trainer's CPU step, reference path vs current code, at ``threads``."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        group_ids: dict[str, int] = {}
        groups = torch.tensor([group_ids.setdefault(r.group, len(group_ids)) for r in records])
        batches = epoch_batches(train_idx, config.batch_size, config.seed, 1)
        needed = 2 + rounds * steps
        while len(batches) < needed:
            batches += batches
        dataset = _BatchDataset(store, batches[:needed], config.model.xrd.n_bins, config.structure_augment, 0)
        arms = {}
        for name in ("baseline", "fast"):
            torch.manual_seed(config.seed)
            model = DualEncoder(config.model).train()
            arms[name] = (model, torch.optim.Adam(model.parameters(), lr=config.lr), torch.Generator())

        def run(name: str, items: range) -> tuple[float, float, list[float]]:
            model, optimizer, gen = arms[name]
            path = reference_path() if name == "baseline" else contextlib.nullcontext()
            wall, cpu, losses = time.perf_counter(), time.process_time(), []
            with path:
                for i in items:
                    gen.manual_seed(config.seed * 1_000_033 + 65_537 + i)
                    torch.manual_seed(i)  # the loss's negative draw: both arms see the same one
                    losses.append(float(train_step(model, optimizer, dataset[i], config, groups, gen, bf16=False)))
            return time.perf_counter() - wall, time.process_time() - cpu, losses

        load_before = os.getloadavg()
        for name in arms:  # warm-up: oneDNN primitives, allocator
            run(name, range(2))
        wall: dict[str, list[float]] = {name: [] for name in arms}
        cpu: dict[str, list[float]] = {name: [] for name in arms}
        losses: dict[str, list[float]] = {name: [] for name in arms}
        for r in range(rounds):
            order = ("baseline", "fast") if r % 2 == 0 else ("fast", "baseline")
            items = range(2 + r * steps, 2 + (r + 1) * steps)
            for name in order:
                w, c, arm_losses = run(name, items)
                losses[name] += arm_losses
                wall[name].append(w / steps)
                cpu[name].append(c / steps)
        load_after = os.getloadavg()
    finally:
        torch.set_num_threads(previous)
    b = config.batch_size
    fast, base = statistics.median(wall["fast"]), statistics.median(wall["baseline"])
    return {
        "threads": threads,
        "interop_threads": torch.get_num_interop_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
        "batch": b,
        "rounds": rounds,
        "steps_per_round": steps,
        "pairs_per_s": round(b / fast, 1),
        "baseline_pairs_per_s": round(b / base, 1),
        "speedup": round(statistics.median(tb / tf for tb, tf in zip(wall["baseline"], wall["fast"], strict=True)), 2),
        "speedup_total_time": round(sum(wall["baseline"]) / sum(wall["fast"]), 2),
        "ms_per_step": {name: [round(1000 * t, 1) for t in v] for name, v in wall.items()},
        "cpu_ms_per_step_median": {name: round(1000 * statistics.median(v), 1) for name, v in cpu.items()},
        # Same start, batches and draws: the arms' training losses stay alike (they drift apart slowly,
        # as any two float summation orders do over many Adam steps).
        "mean_loss": {name: round(statistics.mean(v), 4) for name, v in losses.items()},
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--corpus", type=Path, default=Path("artifacts/corpus"))
    parser.add_argument("--cache", type=Path, default=Path("artifacts/cache"))
    parser.add_argument("--cpu-steps", type=int, default=4)
    parser.add_argument("--gpu-steps", type=int, default=50)
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default 0 on CPU, 6 on GPU)")
    parser.add_argument("--augment", action="store_true", help="include XRD augmentation in the step")
    parser.add_argument("--no-cpu", action="store_true")
    parser.add_argument("--compare", action="store_true", help="shipped architecture: reference vs current CPU step")
    parser.add_argument("--config", type=Path, default=SHIPPED_CONFIG, help="--compare: the training config")
    parser.add_argument("--threads", type=int, nargs="+", default=None, help="--compare: torch thread counts to run")
    parser.add_argument("--rounds", type=int, default=6, help="--compare: A/B rounds")
    parser.add_argument("--steps", type=int, default=4, help="--compare: steps per arm per round")
    args = parser.parse_args()
    tmp = None
    corpus, cache = args.corpus, args.cache
    if not (corpus / "structures.jsonl.gz").exists():
        tmp = tempfile.TemporaryDirectory()
        corpus, cache = Path(tmp.name) / "corpus", Path(tmp.name) / "cache"
        build_corpus(CorpusConfig(target=2000), corpus)
    records = load_records(corpus)
    store = build_cache(records, cache)
    train_idx = torch.tensor([i for i, r in enumerate(records) if r.split == "train"])
    results = {"corpus": str(corpus), "train_structures": int(train_idx.numel()), "runs": []}
    if args.compare:
        config = TrainConfig.from_yaml(args.config)
        results["config"] = str(args.config)
        for threads in args.threads or [torch.get_num_threads()]:
            results["runs"].append(compare(store, records, train_idx, config, threads, args.rounds, args.steps))

        def line(run: dict) -> str:
            return (
                f"{run['threads']} threads: {run['pairs_per_s']} pairs/s vs {run['baseline_pairs_per_s']} "
                f"(×{run['speedup']}), load {run['loadavg_before'][0]} → {run['loadavg_after'][0]}"
            )
    else:
        if not args.no_cpu:
            results["runs"].append(
                measure(store, train_idx, torch.device("cpu"), args.cpu_steps, 1, args.workers or 0, args.augment)
            )
        if torch.cuda.is_available():
            workers = 6 if args.workers is None else args.workers
            results["runs"].append(
                measure(store, train_idx, torch.device("cuda"), args.gpu_steps, 5, workers, args.augment)
            )
        else:
            results["gpu"] = "no CUDA device on this machine"

        def line(run: dict) -> str:
            return f"{run['device']}: {run['pairs_per_s']} pairs/s ({run['vs_paper_v100']}× the paper's V100)"

    if tmp is not None:
        tmp.cleanup()
    if args.json:
        print(json.dumps(results))
    else:
        for run in results["runs"]:
            print(line(run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
