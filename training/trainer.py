"""``matconcept train``: the paper's cross-modal triplet training, reproducible and resumable.

One run = one YAML config (:class:`TrainConfig`) and one run directory holding ``state.pt`` (model,
optimizer, epoch, position in the epoch, RNG states: what ``--resume`` restores), ``metrics.jsonl``
(one line per epoch), TensorBoard events when ``tensorboard`` is installed, and ``best/`` (a
normal checkpoint, see :mod:`matconcept.encoders.checkpoint`, kept by validation XRD→structure top-1).

Batch order and augmentations are drawn from generators seeded by (seed, epoch, batch), so a
resumed run sees exactly the batches the interrupted one would have seen. SIGINT/SIGTERM finish
the current step, save the state and exit; a SIGKILL loses at most ``checkpoint_every`` epochs.

Multi-GPU / multi-node: launch the same command under ``torchrun`` (``torchrun --nproc_per_node 8
-m matconcept.training.trainer --config ...``); each rank trains on its share of every epoch's batches with
DistributedDataParallel, rank 0 validates and writes. The loss is computed per rank's batch, as the
paper's single-GPU batch of 512.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import signal
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor
from torch_geometric.data import Data
from tqdm import tqdm

from matconcept.encoders.checkpoint import load_checkpoint, save_checkpoint
from matconcept.encoders.dual_encoder import DualEncoder, ModelConfig
from matconcept.training.augment import MEASURED_EVAL, XRDAugment, augment_patterns
from matconcept.training.batches import StructureAugment, collate
from matconcept.training.cache import GraphStore, build_cache
from matconcept.training.corpus import CorpusConfig, CorpusRecord, build_corpus, concept_key, load_records
from matconcept.training.loss import prototype_loss, triplet_loss

logger = logging.getLogger(__name__)

STATE_FILE = "state.pt"
METRICS_FILE = "metrics.jsonl"
BEST_DIR = "best"
EVAL_BATCH = 1024
TOP_K = (1, 5, 10)
PRECISION_AT = 10


class TrainConfig(BaseModel):
    """A training run. Relative paths are resolved against the working directory."""

    model_config = ConfigDict(extra="forbid")

    name: str = "run"
    corpus: Path = Path("artifacts/corpus")
    corpus_build: CorpusConfig = Field(default_factory=CorpusConfig, description="used when ``corpus`` is missing")
    cache: Path = Path("artifacts/cache")
    run_dir: Path = Path("runs/default")
    model: ModelConfig = Field(default_factory=ModelConfig)
    epochs: int = Field(default=1000, gt=0)
    batch_size: int = Field(default=512, gt=1)
    lr: float = Field(default=1e-3, gt=0)
    margin: float = Field(default=1.0, gt=0)
    seed: int = 123
    max_train: int | None = Field(default=None, description="use only this many training structures")
    max_eval: int | None = Field(default=None, description="use only this many validation structures")
    loader_workers: int = Field(default=0, ge=0, description="DataLoader worker processes")
    torch_threads: int | None = Field(
        default=None,
        ge=1,
        description="CPU threads for torch (None: the environment's). CPU kernels sum in a thread-count-dependent "
        "order, so a resumed run matches an uninterrupted one bit for bit only at the same thread count: fix it here. "
        "On cores shared with other jobs, 2 threads that spin-wait for each other can be 10× slower than 1: use 1 "
        "there, or start the process with OMP_WAIT_POLICY=PASSIVE (benchmarks/bench_train.py --compare).",
    )
    featurize_workers: int | None = None
    checkpoint_every: int = Field(default=1, gt=0, description="epochs between saved states")
    eval_every: int = Field(default=1, gt=0)
    max_minutes: float | None = Field(default=None, description="stop (resumably) after this much training time")
    device: str = "auto"
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    """bf16 autocast on CUDA when ``auto``; fp32 on CPU (bf16 on CPU is slower there)."""
    xrd_augment: XRDAugment = Field(default_factory=XRDAugment)
    structure_augment: StructureAugment = Field(default_factory=StructureAugment)
    prototype_weight: float = Field(default=0.0, ge=0, description="weight of the same-prototype triplet term")
    negatives: Literal["any", "other_group"] = Field(
        default="any",
        description="where the triplet loss draws its negatives: any other material (the paper), or only materials "
        "of other prototype groups (a material's substitution variants are then never pushed apart)",
    )
    concept_weight: float = Field(
        default=0.0,
        ge=0,
        description="weight of the concept-family triplet term: another material of the anchor's concept family "
        "(prototype group + element groups: training.corpus.concept_key) is its positive, another family's a negative",
    )
    concept_pairs: bool = Field(
        default=False,
        description="half of each batch is anchors, the other half one same-concept partner each (so the concept term "
        "has positives in every batch; each training item is an anchor once an epoch, so an epoch has twice the pairs)",
    )
    init_from: Path | None = Field(
        default=None,
        description="warm start: the concept and XRD weights of this checkpoint (same architecture; a structure-type "
        "encoder it holds is not trained here and is left out). A resumed run ignores it (its state has the weights).",
    )
    eval_measured: bool = Field(default=True, description="also score measured-like (augmented) XRD queries")

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        return cls.model_validate(yaml.safe_load(Path(path).read_text()) or {})


class TrainState(BaseModel):
    """Where a run stands (saved beside the tensors in ``state.pt``)."""

    epoch: int = 0
    """Epochs fully completed."""
    batches_done: int = 0
    """Batches of epoch ``epoch + 1`` already trained (non-zero after an interrupt)."""
    best_top1: float = -1.0
    best_epoch: int = 0
    train_seconds: float = 0.0
    pairs_seen: int = 0


# --------------------------------------------------------------------------------------------- data


class Prepared(BaseModel):
    """The corpus split into training and validation indices over one cached store."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    store: GraphStore
    records: list[CorpusRecord]
    groups: Tensor
    concepts: Tensor | None = None
    """Concept family of each record (only computed when the config uses it)."""
    train: Tensor
    val: Tensor
    test: Tensor


def prepare_data(config: TrainConfig) -> Prepared:
    """Build the corpus (if missing) and its feature cache (reusing shards), then split it."""
    if not (config.corpus / "structures.jsonl.gz").exists():
        logger.info("building corpus into %s", config.corpus)
        build_corpus(config.corpus_build, config.corpus)
    records = load_records(config.corpus)
    store = build_cache(records, config.cache, config.model.graph, config.model.xrd, config.featurize_workers)
    group_ids: dict[str, int] = {}
    groups = torch.tensor([group_ids.setdefault(r.group, len(group_ids)) for r in records], dtype=torch.int64)
    concepts = None
    if config.concept_weight > 0 or config.concept_pairs:
        concept_ids: dict[str, int] = {}
        concepts = torch.tensor(
            [concept_ids.setdefault(concept_key(r), len(concept_ids)) for r in records], dtype=torch.int64
        )
    ok = store.ok & (store.node_ptr[1:] > store.node_ptr[:-1])

    def split(name: str, limit: int | None) -> Tensor:
        idx = torch.tensor([i for i, r in enumerate(records) if r.split == name and bool(ok[i])], dtype=torch.int64)
        if limit is not None and idx.numel() > limit:
            gen = torch.Generator().manual_seed(config.seed)
            idx = idx[torch.randperm(idx.numel(), generator=gen)[:limit]].sort().values
        return idx

    return Prepared(
        store=store,
        records=records,
        groups=groups,
        concepts=concepts,
        train=split("train", config.max_train),
        val=split("val", config.max_eval),
        test=split("test", config.max_eval),
    )


class _BatchDataset(torch.utils.data.Dataset):
    """Item i = the i-th batch of an epoch; collation happens here, in the loader workers."""

    def __init__(self, store: GraphStore, batches: list[Tensor], n_bins: int, augment: StructureAugment, seed: int):
        self.store, self.batches, self.n_bins, self.augment, self.seed = store, batches, n_bins, augment, seed

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int):
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        return collate(self.store, self.batches[i], self.n_bins, self.augment, gen)


def epoch_batches(
    train: Tensor,
    batch_size: int,
    seed: int,
    epoch: int,
    rank: int = 0,
    world: int = 1,
    pair_labels: Tensor | None = None,
) -> list[Tensor]:
    """This rank's batches of ``epoch`` (shuffled by (seed, epoch), drop_last as published).

    With ``pair_labels`` (a label per corpus item), each batch is ``batch_size // 2`` anchors followed by
    one partner per anchor drawn among the other training items with its label (a random training item
    where it has none), so a same-label term sees positives in every batch.
    """
    gen = torch.Generator().manual_seed(seed * 10_007 + epoch)
    order = train[torch.randperm(train.numel(), generator=gen)]
    if pair_labels is None:
        n = order.numel() // batch_size
        batches = [order[i * batch_size : (i + 1) * batch_size] for i in range(n)]
        return batches[rank::world]
    half = batch_size // 2
    n = order.numel() // half
    anchors = order[: n * half]
    partners = _partners(train, anchors, pair_labels, gen)
    batches = [torch.cat([anchors[i * half : (i + 1) * half], partners[i * half : (i + 1) * half]]) for i in range(n)]
    return batches[rank::world]


def _partners(train: Tensor, anchors: Tensor, labels: Tensor, gen: torch.Generator) -> Tensor:
    """For each anchor, a uniformly drawn other training item with its label (any training item if none)."""
    sorted_labels, order = torch.sort(labels[train], stable=True)
    members = train[order]
    position = torch.full((labels.numel(),), -1, dtype=torch.int64)
    position[members] = torch.arange(members.numel())
    label = labels[anchors]
    start = torch.searchsorted(sorted_labels, label, side="left")
    size = torch.searchsorted(sorted_labels, label, side="right") - start
    # an offset among the size - 1 others: draw in [0, size - 2], then step over the anchor's own slot
    offset = (torch.rand(anchors.numel(), generator=gen) * (size - 1)).long()
    offset = offset + (offset >= position[anchors] - start).long()
    pick = members[(start + offset).clamp(max=members.numel() - 1)]
    alone = size < 2
    if bool(alone.any()):
        pick[alone] = train[torch.randint(train.numel(), (int(alone.sum()),), generator=gen)]
    return pick


# ------------------------------------------------------------------------------------------ metrics


@torch.no_grad()
def embed_split(
    model: DualEncoder, store: GraphStore, idx: Tensor, device: torch.device, n_bins: int, measured_seed: int | None
) -> dict[str, Tensor]:
    """Crystal, clean-XRD and (optionally) measured-like-XRD embeddings of ``idx`` in eval mode."""
    model.eval()
    out: dict[str, list[Tensor]] = {"crystal": [], "xrd": [], "measured": []}
    gen = None
    if measured_seed is not None:
        gen = torch.Generator(device=device).manual_seed(measured_seed)
    for start in range(0, idx.numel(), EVAL_BATCH):
        batch = collate(store, idx[start : start + EVAL_BATCH], n_bins).to(device)
        out["crystal"].append(model.crystal(batch).float().cpu())
        out["xrd"].append(model.xrd(batch.xrd).float().cpu())
        if gen is not None:
            out["measured"].append(model.xrd(augment_patterns(batch.xrd, MEASURED_EVAL, generator=gen)).float().cpu())
    return {k: torch.cat(v) for k, v in out.items() if v}


def _ranks(dist: Tensor) -> Tensor:
    """Rank of the true partner (the diagonal) in each row: 0 = retrieved first."""
    return (dist < dist.diagonal().unsqueeze(1)).sum(dim=1)


def retrieval_metrics(emb: dict[str, Tensor], groups: Tensor) -> dict[str, float]:
    """Global retrieval accuracies (exact L2) and same-prototype precision@10 of crystal neighbours.

    ``xrd_top{k}``: a clean simulated pattern finds its own structure among the k nearest crystal
    embeddings of the split; ``crystal_top{k}``: the other direction; ``measured_top{k}``: the same
    with diffractometer-like patterns; ``proto_p10``: share of a crystal's 10 nearest other
    crystals that belong to its prototype group; ``chance_top1`` = 1/n.
    """
    crystal, xrd = emb["crystal"], emb["xrd"]
    n = crystal.shape[0]
    dist = torch.cdist(xrd, crystal)
    ranks = _ranks(dist)
    back = _ranks(dist.T)
    m: dict[str, float] = {"n": float(n), "chance_top1": 1.0 / max(n, 1)}
    for k in TOP_K:
        m[f"xrd_top{k}"] = float((ranks < k).float().mean())
        m[f"crystal_top{k}"] = float((back < k).float().mean())
    if "measured" in emb:
        mranks = _ranks(torch.cdist(emb["measured"], crystal))
        for k in TOP_K:
            m[f"measured_top{k}"] = float((mranks < k).float().mean())
    cc = torch.cdist(crystal, crystal)
    cc.fill_diagonal_(float("inf"))
    k = min(PRECISION_AT, n - 1)
    if k > 0:
        nn_idx = cc.topk(k, largest=False).indices
        m["proto_p10"] = float((groups[nn_idx] == groups.unsqueeze(1)).float().mean())
        # A random ranking's expected precision: the share of the other items in the anchor's group.
        same = (groups.unsqueeze(0) == groups.unsqueeze(1)).sum(1) - 1
        m["proto_p10_chance"] = float((same.float() / (n - 1)).mean())
    return m


# ----------------------------------------------------------------------------------------- training


def _device(config: TrainConfig, local_rank: int) -> torch.device:
    if config.device != "auto":
        return torch.device(config.device)
    return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(path: Path, config: TrainConfig, model: DualEncoder, optimizer, state: TrainState) -> None:
    """Atomically write everything ``--resume`` needs."""
    payload = {
        "config": config.model_dump_json(),
        "state": state.model_dump(),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": _rng_state(),
    }
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_state(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=False)  # our own file (holds RNG states)


class _Stop:
    """SIGINT/SIGTERM → finish the step, save, exit."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _Stop:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread (e.g. inside Ray): no handler
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        logger.warning("signal %d: saving state after this step", signum)
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))


def train_step(
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: Data,
    config: TrainConfig,
    groups: Tensor,
    aug_gen: torch.Generator | None,
    bf16: bool,
    concepts: Tensor | None = None,
) -> Tensor:
    """One optimisation step on a collated batch already on the device: XRD augmentation, forward,
    triplet loss (plus the prototype term), backward, optimizer step.

    The trainer's loop and ``benchmarks/bench_train.py`` both run this, so the benchmark times the
    real step. ``aug_gen`` is seeded by the caller (per batch, for resumability); ``groups`` holds
    every corpus item's prototype group. Returns the detached loss.
    """
    batch.xrd = augment_patterns(batch.xrd, config.xrd_augment, generator=aug_gen)
    with torch.autocast(batch.xrd.device.type, dtype=torch.bfloat16, enabled=bf16):
        crystal, xrd = net(batch)
    batch_groups = groups[batch.index]
    loss = triplet_loss(xrd, crystal, config.margin, groups=batch_groups if config.negatives == "other_group" else None)
    if config.prototype_weight > 0:
        loss = loss + config.prototype_weight * prototype_loss(crystal, batch_groups, config.margin)
    if config.concept_weight > 0 and concepts is not None:
        loss = loss + config.concept_weight * prototype_loss(crystal, concepts[batch.index], config.margin)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def _warm_start(model: DualEncoder, checkpoint: Path) -> None:
    """Copy a checkpoint's concept and XRD weights into ``model`` (ValueError naming it if they do not fit)."""
    loaded = load_checkpoint(checkpoint)
    weights = {k: v for k, v in loaded.model.state_dict().items() if not k.startswith("structure_type.")}
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise ValueError(f"init_from {checkpoint}: its architecture is not this config's model ({exc})") from None
    logger.info("warm start from %s (%s)", checkpoint, loaded.model_id)


def train(config: TrainConfig, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) training; returns the last epoch's metrics plus the run summary."""
    previous = torch.get_num_threads()
    if config.torch_threads is not None:
        torch.set_num_threads(config.torch_threads)
    try:
        return _train(config, resume, progress)
    finally:
        torch.set_num_threads(previous)


def _train(config: TrainConfig, resume: bool, progress: bool) -> dict[str, Any]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = _device(config, local_rank)
    if world > 1:
        import torch.distributed as dist

        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            torch.cuda.set_device(device)
    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    state_path = run_dir / STATE_FILE
    saved = None
    if resume and state_path.exists():
        saved = load_state(state_path)
        stored = TrainConfig.model_validate_json(saved["config"])
        if stored.model_dump() != config.model_dump():
            raise ValueError(f"{state_path}: the run was started with a different config; resume with the same one")
    _seed_everything(config.seed + rank)
    data = prepare_data(config)
    model = DualEncoder(config.model).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    state = TrainState()
    if saved is None and config.init_from is not None:
        _warm_start(model, config.init_from)
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        state = TrainState.model_validate(saved["state"])
        _set_rng_state(saved["rng"])
        logger.info("resumed %s at epoch %d (+%d batches)", run_dir, state.epoch, state.batches_done)
    net: torch.nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    bf16 = config.precision == "bf16" or (config.precision == "auto" and device.type == "cuda")
    n_bins = config.model.xrd.n_bins
    groups = data.groups.to(device)
    concepts = data.concepts.to(device) if data.concepts is not None else None
    writer = _tensorboard(run_dir) if rank == 0 else None
    metrics_path = run_dir / METRICS_FILE
    last: dict[str, Any] = {}
    aug_gen = torch.Generator(device=device)
    budget = config.max_minutes * 60 if config.max_minutes else math.inf
    if data.train.numel() < config.batch_size:
        raise ValueError(f"{data.train.numel()} training structures is less than one batch of {config.batch_size}")
    with _Stop() as stop:
        while state.epoch < config.epochs and not stop.requested and state.train_seconds < budget:
            epoch = state.epoch + 1
            pair_labels = data.concepts if config.concept_pairs else None
            batches = epoch_batches(data.train, config.batch_size, config.seed, epoch, rank, world, pair_labels)
            dataset = _BatchDataset(data.store, batches, n_bins, config.structure_augment, config.seed * 7919 + epoch)
            skip = state.batches_done
            loader = torch.utils.data.DataLoader(
                torch.utils.data.Subset(dataset, range(skip, len(batches))),
                batch_size=None,
                shuffle=False,
                num_workers=config.loader_workers,
                pin_memory=device.type == "cuda",
                persistent_workers=False,
            )
            net.train()
            losses: list[float] = []
            t0 = time.perf_counter()
            pairs = 0
            bar = tqdm(loader, desc=f"epoch {epoch}", unit="batch", disable=not progress or rank != 0, leave=False)
            for i, batch in enumerate(bar, start=skip):
                batch = batch.to(device, non_blocking=True)
                aug_gen.manual_seed(config.seed * 1_000_033 + epoch * 65_537 + i)
                loss = train_step(net, optimizer, batch, config, groups, aug_gen, bf16, concepts)
                losses.append(float(loss))
                pairs += batch.xrd.shape[0] * world
                state.batches_done = i + 1
                if stop.requested or state.train_seconds + time.perf_counter() - t0 > budget:
                    break
            elapsed = time.perf_counter() - t0
            state.train_seconds += elapsed
            state.pairs_seen += pairs
            if state.batches_done < len(batches):  # interrupted mid-epoch: save the position and stop
                if rank == 0:
                    save_state(state_path, config, model, optimizer, state)
                break
            state.epoch, state.batches_done = epoch, 0
            row: dict[str, Any] = {
                "epoch": epoch,
                "train_loss": float(np.mean(losses)) if losses else float("nan"),
                "pairs_per_s": pairs / elapsed if elapsed > 0 else 0.0,
                "train_seconds": state.train_seconds,
            }
            if rank == 0 and (epoch % config.eval_every == 0 or epoch == config.epochs):
                emb = embed_split(
                    model, data.store, data.val, device, n_bins, config.seed if config.eval_measured else None
                )
                row.update({f"val_{k}": v for k, v in retrieval_metrics(emb, data.groups[data.val]).items()})
                if row["val_xrd_top1"] > state.best_top1:
                    state.best_top1, state.best_epoch = row["val_xrd_top1"], epoch
                    save_checkpoint(model, run_dir / BEST_DIR, training=_provenance(config, state, row))
            if rank == 0:
                with metrics_path.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                if writer is not None:
                    for k, v in row.items():
                        if k != "epoch" and isinstance(v, float):
                            writer.add_scalar(k, v, epoch)
                logger.info("epoch %d: %s", epoch, {k: round(v, 4) for k, v in row.items() if isinstance(v, float)})
                if epoch % config.checkpoint_every == 0 or epoch == config.epochs:
                    save_state(state_path, config, model, optimizer, state)
            last = row
    if rank == 0 and (stop.requested or state.epoch % config.checkpoint_every):
        save_state(state_path, config, model, optimizer, state)
    if writer is not None:
        writer.close()
    if world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
    return {**last, "state": state.model_dump(), "interrupted": stop.requested}


def _provenance(config: TrainConfig, state: TrainState, row: dict[str, Any]) -> dict[str, Any]:
    return {
        "run": config.name,
        "corpus": str(config.corpus),
        "epoch": row["epoch"],
        "train_seconds": round(state.train_seconds, 1),
        "pairs_seen": state.pairs_seen,
        "val": {k[4:]: v for k, v in row.items() if k.startswith("val_")},
        "config": json.loads(config.model_dump_json(exclude={"model"})),
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m matconcept.training.trainer --config ...`` (the entry point ``torchrun`` launches)."""
    import argparse

    parser = argparse.ArgumentParser(description="train the dual encoder")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = train(TrainConfig.from_yaml(args.config), resume=args.resume)
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
