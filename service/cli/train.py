"""``matconcept corpus build`` and ``matconcept train``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

MP_API_KEY_ENV = "MP_API_KEY"
"""Environment variable read for the Materials Project key (never stored in the corpus manifest)."""


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    corpus = subparsers.add_parser("corpus", help="build a training corpus")
    corpus_sub = corpus.add_subparsers(dest="corpus_command", required=True)
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
    build.add_argument("--no-substitutions", action="store_true")
    build.add_argument("--max-sites", type=int, default=None, help="largest primitive cell kept (default 64)")
    build.add_argument("--cache", type=Path, help="also featurize the corpus into this cache directory")
    build.add_argument("--workers", type=int, default=None, help="featurization processes (default: all cores)")
    build.set_defaults(func=run_corpus_build)

    train = subparsers.add_parser("train", help="train the dual encoder from a YAML config")
    train.add_argument("--config", type=Path, required=True, help="e.g. training/configs/tiny.yaml")
    train.add_argument("--resume", action="store_true", help="continue from the run directory's state.pt")
    train.add_argument("--run-dir", type=Path, help="override the config's run directory")
    train.set_defaults(func=run_train)


def run_corpus_build(args: argparse.Namespace) -> int:
    from matconcept.training.corpus import CorpusConfig, build_corpus

    fields: dict = {
        "builtin": not args.no_builtin,
        "substitutions": not args.no_substitutions,
        "cif_paths": args.cif,
        "mp_records": args.mp_records,
        "workers": args.workers,
    }
    for name in ("target", "seed", "max_sites"):
        if getattr(args, name) is not None:
            fields[name] = getattr(args, name)
    config = CorpusConfig(**fields)
    key = None
    if args.mp:
        key = os.environ.get(MP_API_KEY_ENV)
        if not key:
            print(f"error: --mp needs a Materials Project API key in ${MP_API_KEY_ENV}", file=sys.stderr)
            return 2
    manifest = build_corpus(config, args.out, mp_api_key=key)
    if args.cache:
        from matconcept.training.cache import build_cache
        from matconcept.training.corpus import load_records

        store = build_cache(load_records(args.out), args.cache, workers=args.workers)
        manifest["featurized"] = int(store.ok.sum())
    print(json.dumps({k: v for k, v in manifest.items() if k != "config"}, indent=2))
    return 0


def run_train(args: argparse.Namespace) -> int:
    import logging

    from matconcept.training.trainer import TrainConfig, train

    logging.getLogger("training").setLevel(logging.INFO)
    config = TrainConfig.from_yaml(args.config)
    if args.run_dir:
        config = config.model_copy(update={"run_dir": args.run_dir})
    try:
        result = train(config, resume=args.resume)
    except ValueError as exc:  # a bad config or a resume with another config: a message, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, default=str))
    return 130 if result.get("interrupted") else 0
