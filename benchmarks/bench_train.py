"""Training throughput: pairs per second for the paper's architecture and batch size, data loading included.

Runs the trainer's real step (batch built from the feature cache by the DataLoader, XRD augmentation
on the device, forward, bidirectional triplet loss, backward, Adam) for a few steps after a warm-up,
on the CPU and, where one is available, on a GPU with bf16 autocast. The paper's V100 figure is about
1,400 pairs/s; the target on one H100 is ≥ 15,000.

    python benchmarks/bench_train.py --json [--corpus artifacts/corpus --cache artifacts/cache]

Without a corpus it builds a small one (2,000 structures) in a temporary folder first.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from matconcept.encoders.dual_encoder import DualEncoder, ModelConfig
from matconcept.training.augment import XRDAugment, augment_patterns
from matconcept.training.cache import build_cache
from matconcept.training.corpus import CorpusConfig, build_corpus, load_records
from matconcept.training.loss import triplet_loss
from matconcept.training.trainer import _BatchDataset, epoch_batches

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
    if tmp is not None:
        tmp.cleanup()
    if args.json:
        print(json.dumps(results))
    else:
        for run in results["runs"]:
            print(f"{run['device']}: {run['pairs_per_s']} pairs/s ({run['vs_paper_v100']}× the paper's V100)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
