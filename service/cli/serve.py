"""``matconcept serve``: Ray + Serve + the store in one command; and the remote branch of ``matconcept search``.

Locally (no ``RAY_ADDRESS``) it starts a private Ray on 127.0.0.1 with its own session directory
(``/tmp/mc-ray-<uid>``; Unix socket paths must stay under 108 characters) and an explicit
``RAY_AUTH_MODE`` (Ray 2.60 would otherwise turn token auth on and write ``~/.ray/auth_token``),
stores the built-in structures if the store is empty, deploys
:func:`matconcept.service.app.deployments.build` and prints the HTTP and gRPC addresses; Ctrl-C (or SIGTERM)
shuts Serve and Ray down. With ``RAY_ADDRESS``
(and ``QDRANT_URL``) set it deploys onto that cluster and returns, leaving the application running.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from matconcept.service.app.settings import APP_NAME, GRPC_SERVICER, ServiceSettings

logger = logging.getLogger(__name__)

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
"""Exit status after SIGINT (128 + 2, as shells report it)."""


@dataclass
class Running:
    """A started service: where to reach it and whether this process owns the Ray it runs on."""

    settings: ServiceSettings
    http_url: str
    grpc_target: str
    local_ray: bool
    saved_env: dict[str, str | None] = field(default_factory=dict)

    def stop(self) -> None:
        """Remove the application; for a local Ray also shut Serve and Ray down (no process left)."""
        import ray
        from ray import serve

        try:
            if self.local_ray:
                serve.shutdown()
            else:
                serve.delete(APP_NAME)
        finally:
            if self.local_ray:
                ray.shutdown()
            for name, value in self.saved_env.items():  # the Ray variables init_ray set for this run
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


AUTO_MAP_MAX = 20_000
"""Largest store whose first map ``matconcept serve`` draws by itself (about a minute on 2 cores)."""


def local_temp_dir(settings: ServiceSettings) -> Path:
    return settings.ray_temp_dir or Path(f"/tmp/mc-ray-{os.getuid()}")


RAY_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_SERVE_GRPC_MAX_MESSAGE_SIZE")
"""Environment variables a local start sets (restored by :meth:`Running.stop`)."""


def init_ray(settings: ServiceSettings) -> bool:
    """Connect to ``RAY_ADDRESS`` or start a private local Ray; returns True when local."""
    import ray

    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], logging_level=logging.WARNING)
        return False
    temp = local_temp_dir(settings)
    temp.mkdir(parents=True, exist_ok=True)
    os.environ["RAY_AUTH_MODE"] = settings.ray_auth_mode
    if settings.ray_auth_mode == "token":
        os.environ.setdefault("RAY_AUTH_TOKEN_PATH", str(temp / "auth_token"))
    # The gRPC proxy refuses bigger messages itself (RESOURCE_EXHAUSTED) before deserialising them.
    os.environ.setdefault("RAY_SERVE_GRPC_MAX_MESSAGE_SIZE", str(settings.max_request_bytes))
    ray.init(
        _temp_dir=str(temp),
        _node_ip_address="127.0.0.1",
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    return True


def ensure_builtin(settings: ServiceSettings) -> int:
    """Store the built-in structures when the collection is empty, and draw the first map if there is
    none (up to :data:`AUTO_MAP_MAX` materials); returns the collection size."""
    from matconcept.encoders.checkpoint import resolve_model
    from matconcept.encoders.embedder import Embedder, default_device
    from matconcept.service.cli.map import _Bar
    from matconcept.service.ingest.local import ingest_builtin
    from matconcept.service.map.keeper import MapKeeper
    from matconcept.service.map.layout import MIN_POINTS
    from matconcept.service.map.storage import LayoutStore
    from matconcept.service.store import open_store

    device = settings.device or str(default_device())
    embedder = Embedder(resolve_model(settings.model_path, device), device=device)
    with open_store(settings.store, embedder.model_id, embedder.dim) as store:
        if store.count() == 0:
            print("storing the built-in structures (first start)...", file=sys.stderr)
            summary = ingest_builtin(store, embedder, progress=True)
            print(f"stored {summary.added} built-in structures ({summary.failed} failed)", file=sys.stderr)
        count = store.count()
        keeper = MapKeeper(store, LayoutStore(settings.store.maps_dir(embedder.model_id)))
        if keeper.layout is None and MIN_POINTS <= count <= AUTO_MAP_MAX:
            print(f"drawing the materials map of {count} materials (first start)...", file=sys.stderr)
            bar = _Bar()
            try:
                keeper.build(progress=bar)
            finally:
                bar.close()
        elif keeper.layout is None and count > AUTO_MAP_MAX:
            print(f"no materials map yet: `matconcept map` draws one ({count} materials: minutes)", file=sys.stderr)
        return count


def start(settings: ServiceSettings, *, ingest_builtin: bool | None = None) -> Running:
    """Start (or deploy) the service and wait until it answers."""
    from ray import serve

    from matconcept.service.app.deployments import build

    wanted = settings.ingest_builtin if ingest_builtin is None else ingest_builtin
    # From this process only where it reaches the same store as the service: a local embedded
    # directory, or a Qdrant server (an embedded store on a remote Ray node is that node's).
    if wanted and (not os.environ.get("RAY_ADDRESS") or settings.store.qdrant_url):
        ensure_builtin(settings)
    saved_env = {name: os.environ.get(name) for name in RAY_ENV}
    local = not os.environ.get("RAY_ADDRESS")
    host = "127.0.0.1" if settings.http_host in ("0.0.0.0", "::") else settings.http_host
    running = Running(
        settings,
        f"http://{host}:{settings.http_port}",
        f"{host}:{settings.grpc_port}",
        local,
        saved_env if local else {},
    )
    try:
        init_ray(settings)
        serve.start(
            http_options={"host": settings.http_host, "port": settings.http_port},
            grpc_options={"port": settings.grpc_port, "grpc_servicer_functions": [GRPC_SERVICER]},
        )
        serve.run(build(settings), name=APP_NAME, route_prefix="/", blocking=False)
    except BaseException:  # Ctrl-C included: leave no local Ray behind
        if local:
            running.stop()
        raise
    return running


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve",
        help="start the service (Ray Serve: gRPC + HTTP) on the embedded store, or deploy to RAY_ADDRESS",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--db", type=Path, help="embedded store directory (default: $MATCONCEPT_HOME/qdrant)")
    p.add_argument("--model", type=Path, help="checkpoint directory (default: the shipped model)")
    p.add_argument("--host", help="HTTP bind address (default 127.0.0.1)")
    p.add_argument("--http-port", type=int, help="HTTP port (default 8000)")
    p.add_argument("--grpc-port", type=int, help="gRPC port (default 9000)")
    p.add_argument("--embedder-replicas", type=int, help="embedder replicas (default 1)")
    p.add_argument("--no-builtin", action="store_true", help="do not store the built-in structures on first start")
    p.set_defaults(func=run_serve)


def _settings_from(args: argparse.Namespace) -> ServiceSettings:
    from matconcept.service.store import StoreSettings

    overrides = {
        "model_path": args.model,
        "http_host": args.host,
        "http_port": args.http_port,
        "grpc_port": args.grpc_port,
        "embedder_replicas": args.embedder_replicas,
    }
    values = {k: v for k, v in overrides.items() if v is not None}
    if args.db is not None:
        values["store"] = StoreSettings(db=args.db)
    if args.no_builtin:
        values["ingest_builtin"] = False
    return ServiceSettings(**values)


def run_serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from matconcept.service.store import StoreError

    try:
        settings = _settings_from(args)
    except ValidationError as exc:
        print(f"matconcept: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # Handlers first, so Ctrl-C (or SIGTERM) during the start-up also stops what was started. A
    # process started in the background by a non-interactive shell inherits SIGINT ignored;
    # restoring Python's handler makes `kill -INT` (and Ctrl-C) always work.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        running = start(settings)
    except StoreError as exc:
        print(f"matconcept: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("stopped during start-up", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not running.local_ray:
        print(f"HTTP  {running.http_url}  (OpenAPI: {running.http_url}/docs)")
        print(f"gRPC  {running.grpc_target}  (service matconcept.v1.Matconcept, metadata application={APP_NAME})")
        print(f"deployed to {os.environ['RAY_ADDRESS']}; remove with `serve shutdown`", file=sys.stderr)
        return 0
    try:
        print(f"HTTP  {running.http_url}  (OpenAPI: {running.http_url}/docs)")
        print(f"gRPC  {running.grpc_target}  (service matconcept.v1.Matconcept, metadata application={APP_NAME})")
        print("Ctrl-C to stop", file=sys.stderr)
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("stopping...", file=sys.stderr)
    finally:
        running.stop()
    return 0


def run_remote_search(args: argparse.Namespace) -> int:
    """``matconcept search --remote HOST:PORT``: the same query, answered by a running service over gRPC."""
    from matconcept.service.cli.store import _fail, _parse_filters
    from matconcept.service.client import MatconceptClient, MatconceptError

    try:
        filters = _parse_filters(args.filter)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        return _fail(f"bad --filter ({exc})")
    query: dict = {"top_k": args.top_k, "filters": filters, "using": args.using, "exact": args.exact}
    with MatconceptClient(args.remote, api_key=os.environ.get("MATCONCEPT_API_KEY")) as client:
        try:
            if args.xrd is not None:
                result = client.search(pattern=args.xrd, **query)
            elif Path(args.query).is_file():
                result = client.search(structure=Path(args.query), **query)
            else:
                result = client.search(material_id=args.query, **query)
        except MatconceptError as exc:
            return _fail(f"{args.remote}: {exc}")
    if args.json:
        out = {"query": args.query or str(args.xrd), "model": result.model_id, "using": result.using}
        out["hits"] = [{"rank": i, **h.model_dump()} for i, h in enumerate(result.hits, 1)]
        print(json.dumps(out))
        return 0
    print(f"# {args.query or args.xrd}: {len(result.hits)} nearest by {result.using} vectors (model {result.model_id})")
    print(f"{'rank':>4}  {'id':<28} {'formula':<16} {'space group':<16} {'distance':>10}")
    for i, h in enumerate(result.hits, 1):
        p = h.payload
        group = f"{p.spacegroup_symbol} ({p.spacegroup_number})" if p.spacegroup_number else "-"
        print(f"{i:>4}  {h.material_id:<28} {p.formula:<16} {group:<16} {h.distance:>10.4f}")
    return 0
