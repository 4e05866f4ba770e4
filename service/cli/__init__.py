"""The ``matconcept`` command: one entry point whose sub-commands live beside the code they drive."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

SUBCOMMAND_MODULES: tuple[str, ...] = (
    "matconcept.service.cli.embed",
    "matconcept.service.cli.store",
    "matconcept.service.cli.evaluate",
    "matconcept.service.cli.train",
    "matconcept.service.cli.serve",
    "matconcept.service.cli.map",
)
"""Modules that each expose ``add_parsers(subparsers)``; imported lazily so ``--help`` stays fast."""


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="matconcept",
        description="Embedding database for crystal structures (cross-modal crystal/XRD metric learning).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return int(args.func(args) or 0)
