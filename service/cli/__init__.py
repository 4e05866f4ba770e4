"""The ``matconcept`` command: one entry point, one module per command group.

==============  ===============================================
module          commands
==============  ===============================================
``embed``       ``embed``
``store``       ``ingest``, ``search``, ``get`` (local store or ``--remote``)
``snapshot``    ``store snapshot``, ``store restore`` (one file and back; ``--service`` while serving)
``train``       ``corpus build``, ``train``, ``evaluate``
``serve``       ``serve``
``map``         ``map``
``common``      shared options, model, filters, hit table, progress bar, :class:`CliError`
==============  ===============================================
"""

from __future__ import annotations

import argparse
import importlib
import logging
from collections.abc import Sequence

from matconcept.service.cli.common import EXIT_USAGE, CliError, report_error

COMMAND_MODULES: tuple[str, ...] = (
    "matconcept.service.cli.embed",
    "matconcept.service.cli.store",
    "matconcept.service.cli.snapshot",
    "matconcept.service.cli.train",
    "matconcept.service.cli.structure_types",
    "matconcept.service.cli.serve",
    "matconcept.service.cli.map",
)
"""Modules that each expose ``add_parsers(subparsers)``, in the order ``--help`` lists their commands.

Named rather than imported here, so that importing the package (for :mod:`.common`, say) does not
load every command module; :func:`build_parser` imports them.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="matconcept",
        description="Embedding database for crystal structures (cross-modal crystal/XRD metric learning).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a :class:`CliError` becomes a message on standard error and exit status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        report_error(exc, as_json=getattr(args, "json_errors", False))
        return EXIT_USAGE
