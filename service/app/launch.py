"""Start the service: Ray, Serve and the application of :func:`matconcept.service.app.deployments.build`.

Locally (no ``RAY_ADDRESS``) :func:`start` starts a private Ray on 127.0.0.1 with its own session
directory (``/tmp/mc-ray-<uid>``; Unix socket paths must stay under 108 characters) and an explicit
``RAY_AUTH_MODE`` (Ray 2.60 would otherwise turn token auth on and write ``~/.ray/auth_token``),
stores the built-in structures if the store is empty (and draws its first map), and deploys the
application; :meth:`Running.stop` shuts Serve and Ray down again. With ``RAY_ADDRESS`` (and
``QDRANT_URL``) set it deploys onto that cluster and leaves the application running there.

Used by ``matconcept serve`` (:mod:`matconcept.service.cli.serve`), the end-to-end tests and the
service benchmark. Ray, Serve and the encoders are imported inside the functions that start them, so
importing this module stays cheap.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from matconcept.service.app.settings import APP_NAME, GRPC_SERVICER, ServiceSettings

logger = logging.getLogger(__name__)

AUTO_MAP_MAX = 20_000
"""Largest store whose first map a start draws by itself (about a minute on 2 cores)."""

SERVE_FAST_PATH = {
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
    "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0",
    "RAY_SERVE_USE_GRPC_BY_DEFAULT": "1",
    "RAY_SERVE_FREEZE_GC_ON_STARTUP": "1",
    "RAY_SERVE_LOG_TO_STDERR": "0",
}
"""Ray Serve's throughput-optimised request path (what ``RAY_SERVE_THROUGHPUT_OPTIMIZED=1`` sets, less its
direct ingress, which moves each replica onto its own port behind HAProxy): user code and the router on the
replica's own event loop instead of a thread each, and gRPC between deployments instead of actor calls.
Measured on the 2-core machine, CPU per CIF search at 10 gRPC clients: gateway 16 → 8 ms, proxy 7 → 4 ms.
A local start sets them where the environment does not; a cluster sets them on its nodes (``deploy/``)."""

INTERNAL_MESSAGE_FACTOR = 4
"""Largest message between deployments, as a multiple of the largest request: with gRPC between them (above)
an Upsert's prepared points carry their vectors beside the files, and gRPC's own 4 MB default refused a 6 MB
CIF on its way from the proxy to the gateway (an INTERNAL error where a clear RESOURCE_EXHAUSTED was due)."""

RAY_ENV = (
    "RAY_AUTH_MODE",
    "RAY_AUTH_TOKEN_PATH",
    "RAY_SERVE_GRPC_MAX_MESSAGE_SIZE",
    "RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH",
    *SERVE_FAST_PATH,
)
"""Environment variables a local start sets (restored by :meth:`Running.stop`)."""

StageProgress = Callable[[str, float], None]
"""``progress(stage, fraction done)``, as :meth:`matconcept.service.map.keeper.MapKeeper.build` reports."""
ProgressBar = Callable[[], AbstractContextManager[StageProgress]]
"""Opens a progress display for a map layout (the CLI's tqdm bar); closed when the layout is done."""


def _no_bar() -> AbstractContextManager[StageProgress | None]:
    return nullcontext(None)


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


def local_temp_dir(settings: ServiceSettings) -> Path:
    """The session directory of a local Ray (short: Ray's Unix socket paths must stay < 108 chars)."""
    return settings.ray_temp_dir or Path(f"/tmp/mc-ray-{os.getuid()}")


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
    os.environ.setdefault(
        "RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH", str(INTERNAL_MESSAGE_FACTOR * settings.max_request_bytes)
    )
    for name, value in SERVE_FAST_PATH.items():  # read by every Serve process Ray starts from here
        os.environ.setdefault(name, value)
    ray.init(
        _temp_dir=str(temp),
        _node_ip_address="127.0.0.1",
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    return True


def ensure_builtin(
    settings: ServiceSettings,
    *,
    notify: Callable[[str], None] = logger.info,
    map_progress: ProgressBar | None = None,
) -> int:
    """Store the built-in structures when the collection is empty (and, with ``settings.ingest_datasets``,
    fetch and store the real-structure datasets), and draw the first map if there is none (up to
    :data:`AUTO_MAP_MAX` materials); returns the collection size.

    ``notify`` receives a line before each slow step (the CLI prints it); ``map_progress`` opens a
    display for the layout's progress (none by default).
    """
    from matconcept.encoders.checkpoint import resolve_model
    from matconcept.encoders.embedder import Embedder, default_device
    from matconcept.service.ingest.datasets import store_all_datasets
    from matconcept.service.ingest.local import ingest_builtin
    from matconcept.service.map.keeper import MapKeeper
    from matconcept.service.map.layout import MIN_POINTS
    from matconcept.service.map.storage import LayoutStore
    from matconcept.service.store import open_store

    device = settings.device or str(default_device())
    embedder = Embedder(resolve_model(settings.model_path, device), device=device)
    with open_store(settings.store, embedder.model_id, embedder.dim, embedder.structure_dim) as store:
        if store.count() == 0:
            notify("storing the built-in structures (first start)...")
            summary = ingest_builtin(store, embedder, progress=True)
            notify(f"stored {summary.added} built-in structures ({summary.failed} failed)")
            if settings.ingest_datasets:
                notify("fetching and storing the real-structure datasets (first start; minutes)...")
                store_all_datasets(
                    store, embedder, settings.dataset_names, settings.datasets_dir, notify=notify, progress=True
                )
        count = store.count()
        keeper = MapKeeper(store, LayoutStore(settings.store.maps_dir(embedder.model_id)))
        if keeper.layout is None and MIN_POINTS <= count <= AUTO_MAP_MAX:
            notify(f"drawing the materials map of {count} materials (first start)...")
            with (map_progress or _no_bar)() as progress:
                keeper.build(progress=progress)
        elif keeper.layout is None and count > AUTO_MAP_MAX:
            notify(f"no materials map yet: `matconcept map` draws one ({count} materials: minutes)")
        return count


def start(
    settings: ServiceSettings,
    *,
    ingest_builtin: bool | None = None,
    notify: Callable[[str], None] = logger.info,
    map_progress: ProgressBar | None = None,
) -> Running:
    """Start (or deploy) the service and wait until it answers.

    ``ingest_builtin`` overrides ``settings.ingest_builtin``; ``notify`` and ``map_progress`` report
    the first-start work of :func:`ensure_builtin`. On any exception, Ctrl-C included, a local start
    stops what it started before re-raising.
    """
    from ray import serve

    from matconcept.service.app.deployments import build

    wanted = settings.ingest_builtin if ingest_builtin is None else ingest_builtin
    # From this process only where it reaches the same store as the service: a local embedded
    # directory, or a Qdrant server (an embedded store on a remote Ray node is that node's).
    if wanted and (not os.environ.get("RAY_ADDRESS") or settings.store.qdrant_url):
        ensure_builtin(settings, notify=notify, map_progress=map_progress)
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
