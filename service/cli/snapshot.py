"""``matconcept store snapshot`` and ``matconcept store restore``: the store to one file and back.

``snapshot`` writes the active model's collection to one file and prints its receipt (path, count,
digest of every material id and content hash; :mod:`matconcept.service.store.snapshots`). While
``matconcept serve`` owns the embedded store, ``--service URL`` asks the service instead
(``POST /v1/snapshots`` with ``MATCONCEPT_API_KEY``): it snapshots under its write lock, so a snapshot
taken during writes holds exactly the writes applied before it. ``restore`` replaces the collection
with a snapshot (the service stopped) and prints the restored count and digest; ``--digest`` makes a
mismatch an error.
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from pathlib import Path

from matconcept.service.cli.common import (
    CliError,
    SubParsers,
    add_db_option,
    add_model_option,
    open_model,
    store_settings,
)

API_KEY_ENV = "MATCONCEPT_API_KEY"


def add_parsers(subparsers: SubParsers) -> None:
    store = subparsers.add_parser("store", help="snapshot the store to one file, or restore it from one")
    commands = store.add_subparsers(dest="store_command", required=True)

    s = commands.add_parser("snapshot", help="write the collection to one file; print its count and digest")
    add_db_option(s)
    add_model_option(s)
    s.add_argument("out", nargs="?", type=Path, help="the file (default: <store>/snapshots/<model>-<time>.tar.gz)")
    s.add_argument("--label", help="added to the default file name")
    s.add_argument(
        "--service",
        metavar="URL",
        help="ask a running `matconcept serve` (its HTTP URL); the file is written on the store's host",
    )
    s.set_defaults(func=run_snapshot)

    r = commands.add_parser("restore", help="replace the collection with a snapshot (stop the service first)")
    add_db_option(r)
    add_model_option(r)
    r.add_argument("snapshot", type=Path, help="a file written by `matconcept store snapshot`")
    r.add_argument("--digest", help="the snapshot's digest: a restore that does not match it is an error")
    r.set_defaults(func=run_restore)


def run_snapshot(args: argparse.Namespace) -> int:
    info = _snapshot_remote(args) if args.service else _snapshot_local(args)
    print(json.dumps(info, indent=2))
    return 0


def _snapshot_remote(args: argparse.Namespace) -> dict:
    if args.out is not None:
        raise CliError("--service writes the snapshot on the service's host: give no OUT path")
    body = json.dumps({"label": args.label} if args.label else {}).encode()
    request = urllib.request.Request(f"{args.service.rstrip('/')}/v1/snapshots", data=body, method="POST")
    request.add_header("content-type", "application/json")
    key = os.environ.get(API_KEY_ENV)
    if key:
        request.add_header("authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=3600) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")
        raise CliError(f"{args.service}: {exc.code} {detail}", reason="service_error") from None
    except (urllib.error.URLError, OSError) as exc:
        raise CliError(f"{args.service}: {exc}", reason="unreachable") from None


def _open(args: argparse.Namespace):
    from matconcept.service.store import StoreError, StoreLockedError, open_store

    settings = store_settings(args.db)
    loaded = open_model(args.model)
    try:
        return settings, open_store(
            settings,
            loaded.model_id,
            loaded.info.model.embedding_dim,
            getattr(loaded.info.model.structure_type, "dim", None),
        )
    except StoreLockedError as exc:
        raise CliError(f"{exc}; snapshot a running service with --service URL, or stop it to restore") from None
    except StoreError as exc:
        raise CliError(str(exc)) from None


def _snapshot_local(args: argparse.Namespace) -> dict:
    from matconcept.service.store import StoreError
    from matconcept.service.store.snapshots import SNAPSHOTS_DIR, snapshot_name, take_snapshot

    settings, store = _open(args)
    with store:
        out = args.out or settings.db_dir / SNAPSHOTS_DIR / snapshot_name(store.model_id, args.label)
        try:
            return take_snapshot(store, out).model_dump()
        except (StoreError, OSError) as exc:
            raise CliError(f"{out}: {exc}") from None


def run_restore(args: argparse.Namespace) -> int:
    from matconcept.service.store import StoreError
    from matconcept.service.store.snapshots import content_digest

    if not args.snapshot.is_file():
        raise CliError(f"{args.snapshot}: no such snapshot file")
    _, store = _open(args)
    with store:
        try:
            store.restore(args.snapshot)
        except StoreError as exc:
            raise CliError(str(exc), reason="bad_snapshot") from None
        count, digest = content_digest(store)
    print(json.dumps({"restored": str(args.snapshot), "count": count, "digest": digest}, indent=2))
    if args.digest and args.digest != digest:
        raise CliError(f"restored digest {digest} differs from the snapshot's {args.digest}", reason="digest_mismatch")
    return 0
