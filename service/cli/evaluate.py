"""``matconcept evaluate``: score a model on held-out structures beside hand-crafted baselines.

By default the data are the held-out ``test`` prototype groups of the corpus the model was trained
on (its directory as recorded in the checkpoint, or rebuilt from its recorded corpus config into the
user cache on first use, ~10 s; the corpus defaults for an untrained model); ``--corpus`` points at a
built corpus, ``--builtin`` uses the labelled AFLOW prototype library, and CIF paths evaluate on a user's
set, labelled by ``--labels`` (CSV ``id,label``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matconcept.training.corpus import CorpusConfig

logger = logging.getLogger(__name__)

SPLITS = ("test", "val", "train", "all")


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="retrieval, neighbour quality, robustness and few-shot probes vs. hand-crafted baselines",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="*", type=Path, help="CIF files, directories or archives to evaluate on")
    p.add_argument("--model", type=Path, help="checkpoint directory (default: the shipped model)")
    p.add_argument("--json", action="store_true", help="print the full report as JSON on standard output")
    p.add_argument("--out", type=Path, help="write report.json, report.md and plots into this directory")
    p.add_argument("--labels", type=Path, help="CSV of id,label: family labels for neighbour quality and probes")
    p.add_argument("--limit", type=int, help="evaluate on at most N structures (spread evenly over groups)")
    p.add_argument("--corpus", type=Path, help="built corpus directory (default: the corpus the model was trained on)")
    p.add_argument("--split", choices=SPLITS, default="test", help="corpus split (default: held-out test groups)")
    p.add_argument("--builtin", action="store_true", help="use the labelled AFLOW prototype library")
    p.add_argument("--baselines", nargs="*", help="baselines to compare (default: all)")
    p.add_argument("--baseline-limit", type=int, help="structures compared with the baselines (default 1000)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots in --out")
    p.add_argument("--device", default=None, help="cpu, cuda… (default: cuda if available)")
    p.add_argument("--workers", type=int, default=None, help="processes for the CrystalNN baseline")
    p.set_defaults(func=run_evaluate)


def model_corpus(training: dict) -> tuple[Path | None, CorpusConfig]:
    """The corpus a checkpoint was trained on: its directory if still present, and its build config.

    The trainer records ``training["config"]["corpus"]`` (a directory) and ``["corpus_build"]`` (the
    :class:`matconcept.training.corpus.CorpusConfig` it builds from when the directory is missing). Models without
    that record (the random model) get the corpus defaults.
    """
    from matconcept.training.corpus import RECORDS_FILE, CorpusConfig

    config = training.get("config") or {}
    folder = Path(config["corpus"]) if config.get("corpus") else None
    build = CorpusConfig.model_validate(config["corpus_build"]) if config.get("corpus_build") else CorpusConfig()
    return (folder if folder is not None and (folder / RECORDS_FILE).exists() else None), build


def cached_corpus(build: CorpusConfig) -> Path:
    """A corpus built from ``build`` in the user cache (one folder per config hash), built on first use."""
    import hashlib

    from platformdirs import user_cache_dir

    from matconcept.training.corpus import MANIFEST_FILE, build_corpus

    key = hashlib.sha256(build.model_dump_json().encode()).hexdigest()[:12]
    folder = Path(user_cache_dir("matconcept")) / f"corpus-{key}"
    if not (folder / MANIFEST_FILE).exists():
        logger.warning("building the corpus into %s (once, ~10 s)", folder)
        build_corpus(build, folder)
    return folder


def _fail(reason: str, message: str) -> int:
    print(json.dumps({"error": {"reason": reason, "message": message}}), file=sys.stderr)
    return 2


def _load_items(args: argparse.Namespace, labels: dict[str, str], training: dict):
    from matconcept.training.evaluation.evaluate import DatasetInfo
    from matconcept.training.evaluation.items import builtin_items, cif_items, corpus_items

    if args.paths:
        missing = [str(p) for p in args.paths if not p.exists()]
        if missing:
            raise FileNotFoundError(f"no such file or directory: {', '.join(missing)}")
        items, skipped = cif_items(args.paths, labels)
        return items, DatasetInfo(source="CIF files", n_items=0, n_groups=0, n_compared=0, skipped=skipped)
    if args.builtin:
        items = builtin_items(args.split)
        return items, DatasetInfo(source="AFLOW prototypes", split=args.split, n_items=0, n_groups=0, n_compared=0)
    corpus = args.corpus
    if corpus is None:
        trained_on, build = model_corpus(training)
        corpus = trained_on or cached_corpus(build)
    if not (corpus / "structures.jsonl.gz").exists():
        raise FileNotFoundError(f"{corpus}: not a built corpus (no structures.jsonl.gz)")
    items = corpus_items(corpus, args.split)
    return items, DatasetInfo(source=f"corpus {corpus}", split=args.split, n_items=0, n_groups=0, n_compared=0)


def run_evaluate(args: argparse.Namespace) -> int:
    from matconcept.encoders.checkpoint import resolve_model
    from matconcept.encoders.embedder import Embedder, default_device
    from matconcept.training.evaluation.evaluate import EvaluationConfig, evaluate
    from matconcept.training.evaluation.items import LabelsError, read_labels_csv, subsample
    from matconcept.training.evaluation.report import markdown, write_report

    if args.limit is not None and args.limit < 2:
        return _fail("bad_argument", f"--limit {args.limit}: an evaluation needs at least 2 structures")
    try:
        labels = read_labels_csv(args.labels) if args.labels else {}
    except LabelsError as exc:
        return _fail("bad_labels", str(exc))
    device = args.device or default_device()
    try:
        embedder = Embedder(resolve_model(args.model, device), device=device)
    except (OSError, ValueError) as exc:
        return _fail("bad_model", f"{args.model}: {exc}")
    try:
        items, dataset = _load_items(args, labels, embedder.loaded.info.training)
    except FileNotFoundError as exc:
        return _fail("unreadable", str(exc))
    if labels and not args.paths:
        items = [
            it.model_copy(update={"labels": {**it.labels, "user": labels[it.id]}}) if it.id in labels else it
            for it in items
        ]
    items = subsample(items, args.limit)
    if len(items) < 2:
        return _fail("too_few_structures", f"only {len(items)} usable structure(s) in the chosen data; need 2")
    overrides = {"workers": args.workers}
    if args.baselines is not None:
        overrides["baselines"] = args.baselines
    if args.baseline_limit is not None:
        overrides["baseline_limit"] = args.baseline_limit
    try:
        config = EvaluationConfig(**overrides)
        from matconcept.training.evaluation.baselines import make_baselines

        make_baselines(config.baselines)  # unknown names fail here, before minutes of work
    except ValueError as exc:
        return _fail("bad_argument", str(exc))
    report = evaluate(items, embedder, config, dataset)
    if args.out:
        write_report(report, args.out, plots=not args.no_plots)
    print(report.model_dump_json(indent=2) if args.json else markdown(report))
    return 0
