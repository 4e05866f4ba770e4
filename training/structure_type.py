"""Training the structure-type encoder (:mod:`matconcept.encoders.structure_type`).

Positives share a prototype label (the AFLOW-style label: anonymous formula, Pearson symbol, space
group, Wyckoff letters; pymatgen's ``get_protostructure_label_from_spglib`` for structures without
one), and two strained, rattled views of each structure are drawn every step, so even a prototype
with one example has a positive. The loss is the supervised contrastive loss (Khosla et al. 2020)
over the batch's L2-normalised vectors: every other view with the same label is a positive, every
view with another label a negative — no hard-negative mining, so near-identical prototypes are not
pushed apart harder than the rest.

Augmentation works on cached edge vectors, not on structures: each structure's neighbour list is
computed once with a margin above the cutoff, and a step applies a random symmetric strain to the
edge vectors and a random displacement to the sites, renormalises by the strained (V/N)^(1/3), and
drops the edges that left the cutoff. That keeps a training step free of pymatgen calls.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from pymatgen.core import Structure
from torch import Tensor
from torch_geometric.data import Batch, Data
from tqdm.auto import tqdm

from matconcept.encoders.structure_type import StructureTypeConfig, StructureTypeEncoder, site_roles

logger = logging.getLogger(__name__)

NEIGHBOUR_MARGIN = 1.2
"""Cached neighbour lists reach this factor beyond the cutoff, so strained edges can enter it."""


class StructureTypeTrainConfig(BaseModel):
    """One training run of the structure-type encoder."""

    model_config = ConfigDict(extra="forbid")

    model: StructureTypeConfig = Field(default_factory=StructureTypeConfig)
    epochs: int = 30
    batch_size: int = 256
    lr: float = 2e-3
    temperature: float = 0.1
    strain: float = Field(default=0.06, description="max |ε| of the random symmetric strain, per component")
    rattle: float = Field(default=0.03, description="site displacement σ, in units of (V/N)^(1/3)")
    max_sites: int = Field(default=48, description="training structures above this size are skipped")
    seed: int = 0
    max_minutes: float | None = None


@dataclass(slots=True)
class TypeExample:
    """One structure's cached role graph: node roles, species codes, edges and edge vectors."""

    roles: Tensor  # (n, 4)
    codes: Tensor  # (n,)
    edge_index: Tensor  # (2, E) neighbour j → centre i
    edge_vec: Tensor  # (E, 3) in units of (V/N)^(1/3)
    label: int


def type_example(structure: Structure, cutoff: float, label: int) -> TypeExample:
    """Cache ``structure``'s neighbour vectors out to ``NEIGHBOUR_MARGIN`` × cutoff (normalised)."""
    n = len(structure)
    scale = (structure.volume / n) ** (1.0 / 3.0)
    roles, codes = site_roles(structure)
    centre, neighbour, images, _ = structure.get_neighbor_list(cutoff * NEIGHBOUR_MARGIN * scale, exclude_self=True)
    frac = structure.frac_coords
    vec = structure.lattice.get_cartesian_coords(frac[neighbour] + images - frac[centre]) / scale
    return TypeExample(
        roles=torch.from_numpy(roles),
        codes=torch.from_numpy(codes),
        edge_index=torch.from_numpy(np.stack([neighbour, centre]).astype(np.int64)),
        edge_vec=torch.from_numpy(vec.astype(np.float32)),
        label=label,
    )


def augmented_view(example: TypeExample, cutoff: float, strain: float, rattle: float, gen: torch.Generator) -> Data:
    """A strained, rattled copy of ``example`` as a role graph (``type_*`` attributes)."""
    n = example.roles.shape[0]
    eps = (torch.rand(3, 3, generator=gen) * 2 - 1) * strain
    deform = torch.eye(3) + (eps + eps.T) / 2
    shift = torch.randn(n, 3, generator=gen) * rattle
    j, i = example.edge_index
    vec = example.edge_vec @ deform.T + shift[j] - shift[i]
    dist = vec.norm(dim=1) / torch.linalg.det(deform).abs() ** (1.0 / 3.0)
    keep = dist < cutoff
    return Data(
        num_nodes=n,
        type_x=example.roles,
        type_edge_index=example.edge_index[:, keep],
        type_edge_dist=dist[keep],
        type_edge_same=(example.codes[j[keep]] == example.codes[i[keep]]).float(),
    )


def clean_view(example: TypeExample, cutoff: float) -> Data:
    """The unaugmented role graph of ``example`` (what inference sees)."""
    j, i = example.edge_index
    dist = example.edge_vec.norm(dim=1)
    keep = dist < cutoff
    return Data(
        num_nodes=example.roles.shape[0],
        type_x=example.roles,
        type_edge_index=example.edge_index[:, keep],
        type_edge_dist=dist[keep],
        type_edge_same=(example.codes[j[keep]] == example.codes[i[keep]]).float(),
    )


def supervised_contrastive_loss(z: Tensor, labels: Tensor, temperature: float) -> Tensor:
    """SupCon loss of L2-normalised ``z`` (B, d): mean over anchors of −log p(positives)."""
    logits = z @ z.T / temperature
    self_mask = torch.eye(len(z), dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, -math.inf)
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positive = (labels[:, None] == labels[None, :]) & ~self_mask
    counts = positive.sum(1)
    has = counts > 0
    mean_log = (log_prob.masked_fill(~positive, 0.0).sum(1)[has]) / counts[has]
    return -mean_log.mean()


@torch.inference_mode()
def embed_examples(encoder: StructureTypeEncoder, examples: Sequence[TypeExample], batch_size: int = 256) -> np.ndarray:
    """Structure-type vectors (n, dim) of cached examples, unaugmented."""
    encoder.eval()
    cutoff = encoder.config.graph.cutoff
    out = []
    for start in range(0, len(examples), batch_size):
        batch = Batch.from_data_list([clean_view(e, cutoff) for e in examples[start : start + batch_size]])
        out.append(encoder(batch).numpy())
    return np.concatenate(out) if out else np.zeros((0, encoder.config.dim), dtype=np.float32)


def label_ids(labels: Sequence[str]) -> list[int]:
    """Stable integer ids of string labels (first-seen order)."""
    ids: dict[str, int] = {}
    return [ids.setdefault(label, len(ids)) for label in labels]


def split_of(label: str, val_share: float, salt: str = "structure-type") -> str:
    """``val`` or ``train`` for a label, by hash: the same label always lands on the same side."""
    h = int(hashlib.sha256(f"{salt}:{label}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "val" if h < val_share else "train"


def train_structure_type(
    config: StructureTypeTrainConfig,
    train: Sequence[TypeExample],
    val: Sequence[TypeExample] | None = None,
    val_labels: Sequence[str] | None = None,
    out: Path | None = None,
    progress: bool = True,
    init: StructureTypeEncoder | None = None,
) -> tuple[StructureTypeEncoder, list[dict]]:
    """Train on ``train``; score same-label R-precision on ``val`` each epoch; keep the best weights."""
    from matconcept.training.evaluation.metrics import neighbour_quality

    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    encoder = init if init is not None else StructureTypeEncoder(config.model)
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=config.lr, weight_decay=1e-4)
    steps = max(1, config.epochs * math.ceil(len(train) / config.batch_size))
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=steps, pct_start=0.1)
    cutoff = config.model.graph.cutoff
    history: list[dict] = []
    best, best_state = -1.0, None
    budget = config.max_minutes * 60 if config.max_minutes else math.inf
    t_start = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        encoder.train()
        order = torch.randperm(len(train), generator=gen).tolist()
        losses = []
        t0 = time.perf_counter()
        bar = tqdm(range(0, len(order), config.batch_size), desc=f"type epoch {epoch}", disable=not progress)
        for start in bar:
            chunk = [train[k] for k in order[start : start + config.batch_size]]
            if len(chunk) < 4:
                continue
            views = [augmented_view(e, cutoff, config.strain, config.rattle, gen) for e in chunk for _ in (0, 1)]
            labels = torch.tensor([e.label for e in chunk for _ in (0, 1)])
            z = encoder(Batch.from_data_list(views))
            loss = supervised_contrastive_loss(z, labels, config.temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if schedule.last_epoch + 1 < steps:
                schedule.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        row = {"epoch": epoch, "loss": float(np.mean(losses)), "seconds": time.perf_counter() - t0}
        if val:
            quality = neighbour_quality(embed_examples(encoder, val), list(val_labels or []))
            row["val_r_precision"] = quality.r_precision
            if quality.r_precision > best:
                best = quality.r_precision
                best_state = {k: v.detach().clone() for k, v in encoder.state_dict().items()}
        history.append(row)
        logger.info("structure-type epoch %d: %s", epoch, {k: round(v, 4) for k, v in row.items()})
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            torch.save(
                {"config": config.model_dump(), "model": encoder.state_dict(), "history": history}, out / "last.pt"
            )
        if time.perf_counter() - t_start > budget:
            break
    if best_state is not None:
        encoder.load_state_dict(best_state)
    encoder.eval()
    return encoder, history


SPLIT_SHARES = {"val": 0.2, "test": 0.3}
"""Share of non-named families held out for model selection (val) and for the report (test)."""


def family_split(family: str | None, item_id: str, forced_test: frozenset[str]) -> str:
    """``train``, ``val`` or ``test`` for one labelled structure, decided by its family (by id if none).

    Whole families go to one side, so a test family's type was never seen in training; the named
    structure types (rock salt, wurtzite, …) are always test, so the report shows them.
    """
    if family in forced_test:
        return "test"
    key = family or item_id
    h = int(hashlib.sha256(f"structure-type:{key}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    if family is None:  # a distractor (one-member type): training material, never scored
        return "train"
    if h < SPLIT_SHARES["test"]:
        return "test"
    if h < SPLIT_SHARES["test"] + SPLIT_SHARES["val"]:
        return "val"
    return "train"


@dataclass
class TypeSplit:
    """The labelled real set split by family (see :func:`family_split`)."""

    train: list  # TypedStructure
    val: list
    test: list


def split_typed(items: Sequence, named_types: Sequence[str]) -> TypeSplit:
    """Split ``TypedStructure`` items (:mod:`matconcept.encoders.datasets.labelled`) by family."""
    forced = frozenset(named_types)
    parts: dict[str, list] = {"train": [], "val": [], "test": []}
    for item in items:
        parts[family_split(item.family, item.id, forced)].append(item)
    # Only family members are scored; one-member types stay as training material.
    return TypeSplit(
        train=parts["train"],
        val=[i for i in parts["val"] if i.family],
        test=[i for i in parts["test"] if i.family],
    )


def train_on_typed(
    config: StructureTypeTrainConfig, split: TypeSplit, progress: bool = True
) -> tuple[StructureTypeEncoder, list[dict]]:
    """Train the structure-type encoder on a :class:`TypeSplit` (validation picks the epoch)."""
    cutoff = config.model.graph.cutoff
    labels = label_ids([i.prototype for i in (*split.train, *split.val)])
    train = [
        type_example(i.structure, cutoff, labels[k])
        for k, i in enumerate(tqdm(split.train, desc="role graphs", disable=not progress))
        if len(i.structure) <= config.max_sites
    ]
    offset = len(split.train)
    val = [type_example(i.structure, cutoff, labels[offset + k]) for k, i in enumerate(split.val)]
    logger.info("structure-type training: %d train, %d val structures", len(train), len(val))
    return train_structure_type(config, train, val, [i.family for i in split.val], progress=progress)
