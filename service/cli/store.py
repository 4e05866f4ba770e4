"""``matconcept ingest`` and ``matconcept search``: the local CLI over the embedded (or QDRANT_URL) store.

Both open the collection of the active model (``--model``, default: the shipped model). The embedded
store belongs to one process at a time: while ``matconcept serve`` owns it, these commands say so
and point to the service API.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_USAGE = 2
"""Exit status for bad input (as argparse uses)."""

FILTER_HELP = (
    "KEY=VALUE, repeatable: elements_all=Li,O  elements_none=Pb  chemical_system=Co-Li-O  "
    "spacegroup_number=225  min_sites=1  max_sites=20  sources=cod,aflow"
)


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", type=Path, help="embedded store directory (default: $MATCONCEPT_HOME/qdrant)")
    common.add_argument("--model", type=Path, help="checkpoint directory (default: the shipped model)")
    common.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")

    p = subparsers.add_parser(
        "ingest", parents=[common], help="embed and store CIF files, directories, archives (or --builtin)"
    )
    p.add_argument("paths", nargs="*", type=Path, help="CIF / pymatgen JSON files, directories, .tar(.gz)/.zip")
    p.add_argument("--builtin", action="store_true", help="store the structures shipped with the dependencies")
    p.add_argument("--source", default="user", help="source label of the inputs: cod, mp, user, ... (default: user)")
    p.add_argument("--workers", type=int, default=None, help="featurization processes (default: all cores)")
    p.add_argument("--batch", type=int, default=256, help="materials per embedding call and upsert")
    p.add_argument("--force", action="store_true", help="re-embed entries already stored with the same content")
    p.add_argument("--report", type=Path, help="failure report, JSONL (default: $MATCONCEPT_HOME/reports/...)")
    p.add_argument("--optimize", choices=["auto", "yes", "no"], default="auto", help="build HNSW at the end")
    p.set_defaults(func=run_ingest)

    s = subparsers.add_parser("search", parents=[common], help="nearest stored materials to a CIF, an id or a pattern")
    s.add_argument("query", nargs="?", help="a CIF (or other structure) file, or a stored material id (cod:1000000)")
    s.add_argument("--xrd", type=Path, help="search with a powder pattern (2θ, intensity columns) instead")
    s.add_argument("--top-k", type=int, default=10)
    s.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE", help=FILTER_HELP)
    s.add_argument(
        "--using",
        choices=["crystal", "xrd"],
        default="crystal",
        help="stored vectors to search: crystal (default; cross-modal for --xrd) or xrd",
    )
    s.add_argument("--exact", action="store_true", help="exact search even where HNSW is built")
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")
    # Hook for the service engineer: `--remote HOST:PORT` sends the same query to a running
    # `matconcept serve` over gRPC; add the flag here and branch at the top of run_search().
    s.add_argument("--remote", metavar="HOST:PORT", help="ask a running `matconcept serve` over gRPC")
    s.set_defaults(func=run_search)


def _fail(message: str) -> int:
    print(f"matconcept: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _settings(args: argparse.Namespace):
    from matconcept.service.store import StoreSettings

    return StoreSettings(db=args.db) if args.db is not None else StoreSettings()


def _embedder(args: argparse.Namespace):
    from matconcept.encoders.checkpoint import resolve_model
    from matconcept.encoders.embedder import Embedder, default_device

    device = args.device or default_device()
    return Embedder(resolve_model(args.model, device), device=device)


def run_ingest(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from matconcept.service.ingest.local import ingest, ingest_builtin
    from matconcept.service.store import StoreError, open_store

    if not args.paths and not args.builtin:
        return _fail("ingest needs PATH... or --builtin")
    if args.batch < 1:
        return _fail(f"--batch must be at least 1, got {args.batch}")
    settings = _settings(args)
    embedder = _embedder(args)
    report = args.report or settings.home / "reports" / f"ingest-{datetime.now(UTC):%Y%m%dT%H%M%S}.jsonl"
    optimize = {"auto": None, "yes": True, "no": False}[args.optimize]
    options = {"workers": args.workers, "batch": args.batch, "force": args.force, "optimize": optimize}
    try:
        with open_store(settings, embedder.model_id, embedder.dim) as store:
            summary = None
            if args.builtin:
                summary = ingest_builtin(store, embedder, report=report, **options)
            if args.paths:
                part = ingest(
                    args.paths, store, embedder, source=args.source, report=_second(report, summary), **options
                )
                summary = part if summary is None else _merge(summary, part)
    except StoreError as exc:
        return _fail(str(exc))
    print(json.dumps(summary.model_dump()))
    print(f"failure report: {report}" if summary.failed else "no failures", file=sys.stderr)
    return 0


def _second(report: Path, first) -> Path:
    """With --builtin and paths in one run, the paths' failures go to a second report file."""
    return report if first is None else report.with_name(report.stem + "-paths" + report.suffix)


def _merge(a, b):
    fields = ("read", "added", "updated", "unchanged", "failed", "seconds")
    return type(a)(**{k: getattr(a, k) + getattr(b, k) for k in fields})


def _query_vector(args: argparse.Namespace, embedder, store):
    """(vector, description) of the query: a pattern (--xrd), a structure file or a stored id."""
    import numpy as np

    from matconcept.encoders.errors import StructureInputError
    from matconcept.encoders.structure_io import read_structure
    from matconcept.encoders.xrd import read_xy, resample_pattern

    if args.xrd is not None:
        two_theta, intensity = read_xy(args.xrd)
        pattern = resample_pattern(two_theta, intensity, embedder.loaded.info.model.xrd)
        return embedder.embed_patterns(np.asarray(pattern)[None, :])[0], f"pattern {args.xrd}"
    path = Path(args.query)
    if path.is_file():
        parsed = read_structure(path)
        crystal, xrd = embedder.embed_structures([parsed.structure])
        return (crystal if args.using == "crystal" else xrd)[0], f"{path} ({parsed.formula})"
    if ":" in args.query:
        records = store.get([args.query], with_vectors=True)
        if records:
            return np.asarray(records[0].vectors[args.using], dtype=np.float32), args.query
        raise StructureInputError("unreadable", args.query, "no such file, and no stored material with this id")
    raise StructureInputError("unreadable", args.query, "no such file (a material id looks like cod:1000000)")


def _parse_filters(items: list[str]):
    from matconcept.service.store import SearchFilters

    values: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--filter {item!r} is not KEY=VALUE")
        values[key.strip()] = value.strip()
    return SearchFilters(**values) if values else None


def run_search(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from matconcept.encoders.errors import StructureInputError
    from matconcept.service.store import StoreError, open_store

    if (args.query is None) == (args.xrd is None):
        return _fail("search needs exactly one of QUERY or --xrd FILE")
    if args.top_k < 1:
        return _fail(f"--top-k must be at least 1, got {args.top_k}")
    if getattr(args, "remote", None):  # the service engineer's branch: same query, over gRPC
        from matconcept.service.cli.serve import run_remote_search

        return run_remote_search(args)
    try:
        filters = _parse_filters(args.filter)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'filter'}: {e['msg']}" for e in exc.errors())
        return _fail(f"bad --filter ({problems})")
    except ValueError as exc:
        return _fail(str(exc))
    settings = _settings(args)
    embedder = _embedder(args)
    collection = settings.db_dir / settings.collection_name(embedder.model_id)
    if not settings.qdrant_url and not collection.exists():
        return _fail(f"nothing stored for model {embedder.model_id} under {settings.db_dir}; run `matconcept ingest`")
    try:
        with open_store(settings, embedder.model_id, embedder.dim) as store:
            vector, described = _query_vector(args, embedder, store)
            hits = store.search(vector, using=args.using, k=args.top_k, filters=filters, exact=args.exact or None)
    except StructureInputError as exc:
        return _fail(exc.message)
    except StoreError as exc:
        return _fail(str(exc))
    if args.json:
        out = {
            "query": described,
            "model": embedder.model_id,
            "using": args.using,
            "hits": [{"rank": i, **h.model_dump()} for i, h in enumerate(hits, 1)],
        }
        print(json.dumps(out))
        return 0
    print(f"# {described}: {len(hits)} nearest by {args.using} vectors (model {embedder.model_id})")
    print(f"{'rank':>4}  {'id':<28} {'formula':<16} {'space group':<16} {'distance':>10}")
    for i, h in enumerate(hits, 1):
        p = h.payload
        group = f"{p.spacegroup_symbol} ({p.spacegroup_number})" if p.spacegroup_number else "-"
        print(f"{i:>4}  {h.material_id:<28} {p.formula:<16} {group:<16} {h.distance:>10.4f}")
    return 0
