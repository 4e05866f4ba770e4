"""The real service for end-to-end test modules: Ray Serve on loopback over a fresh embedded store.

On 2 cores Ray and Serve take ~10 s to start and ~6 s to stop (more under load), removing the
application ~3 s and deploying it ~9 s. So the session starts Ray and Serve once
(:class:`ServeCluster`, the ``serve_cluster`` fixture of ``tests/conftest.py``, with its own short Ray
session directory; on the way out it checks that no Ray process of that session is left) and each
module deploys its own application on it over a fresh store (:meth:`ServeCluster.deploy`). Modules
that store the same materials and write nothing else (the two browser pages) share one application
and its stored materials (:meth:`ServeCluster.shared`).

One application at a time: the service's name and route prefix are fixed (gRPC clients send no
``application`` metadata). A deployment replaces the current application in place (Serve starts the
new replicas, over the new store, and stops the old ones: ~3 s less than removing it first), so a
module's application runs until the next module deploys its own or the session ends.
``tests/conftest.py`` runs the modules on the cluster last and next to each other, so Ray starts once
and no other test (``test_ingest_ray``'s own cluster, the soak's service) shares the machine with it.

The gateway replicas read the API key from the environment Ray's workers inherit when Ray starts, so
the whole session has one key, :data:`API_KEY`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

API_KEY = "test-key-5f2c"
"""The key of every application on the session's cluster (``MATCONCEPT_API_KEY`` of Ray's workers)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_processes(session_root: Path) -> list[str]:
    out = subprocess.run(["pgrep", "-af", str(session_root)], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "pgrep" not in line]


@dataclass
class _Deployed:
    name: str
    running: Any  # matconcept.service.app.launch.Running
    prepared: Any = None


class ServeCluster:
    """A local Ray with Serve's HTTP and gRPC proxies (the service's ports), one application at a time."""

    def __init__(self, root: Path, http_port: int, grpc_port: int) -> None:
        self.root, self.http_port, self.grpc_port = root, http_port, grpc_port
        self.current: _Deployed | None = None

    def settings(self, store_dir: Path, **overrides: Any):
        """The service's settings on this cluster: its ports and Ray directory, a store at ``store_dir``."""
        from matconcept.service.app.settings import ServiceSettings
        from matconcept.service.store import StoreSettings

        fields = {"max_batch_size": 16, **overrides}
        return ServiceSettings(
            store=StoreSettings(db=store_dir),
            http_port=self.http_port,
            grpc_port=self.grpc_port,
            ray_temp_dir=self.root,
            **fields,
        )

    def deploy(self, name: str, store_dir: Path, prepare: Callable[[Any], Any] | None = None, **overrides: Any):
        """Deploy the application (settings ``overrides``) over a fresh store at ``store_dir`` in place of
        the current one and run ``prepare(running)`` on it; returns the ``Running``."""
        from ray import serve

        from matconcept.service.app.deployments import build
        from matconcept.service.app.launch import Running
        from matconcept.service.app.settings import APP_NAME

        settings = self.settings(store_dir, **overrides)
        # local_ray=False: stop() removes the application only; Ray and Serve stay for the next module.
        running = Running(settings, f"http://127.0.0.1:{self.http_port}", f"127.0.0.1:{self.grpc_port}", False)
        self.current = _Deployed(name, running)
        try:
            # Returns once every deployment runs its new replicas; the old ones no longer get requests.
            serve.run(build(settings), name=APP_NAME, route_prefix="/", blocking=False)
            self.current.prepared = prepare(running) if prepare else None
        except BaseException:
            self.remove()
            raise
        return running

    def shared(self, name: str, store_dir: Callable[[], Path], prepare: Callable[[Any], Any]) -> tuple[Any, Any]:
        """``(running, prepare(running))`` of the application ``name``, deployed (over a fresh store from
        ``store_dir()``) and prepared only if it is not the current one: modules that ask for the same
        name in a row share it, and one that comes back after another application gets a fresh one."""
        if self.current is None or self.current.name != name:
            self.deploy(name, store_dir(), prepare)
        assert self.current is not None
        return self.current.running, self.current.prepared

    def remove(self) -> None:
        """Remove the current application (its replicas stop; the store replica closes its store)."""
        if self.current is not None:
            deployed, self.current = self.current, None
            deployed.running.stop()


@contextmanager
def serve_cluster(tag: str) -> Iterator[ServeCluster]:
    """Start Ray (session directory ``/tmp/<tag>-<pid>``, key :data:`API_KEY`) and Serve as
    :func:`matconcept.service.app.launch.start` does; stop both and check no process is left."""
    from ray import serve

    from matconcept.service.app.launch import RAY_ENV, Running, init_ray
    from matconcept.service.app.settings import GRPC_SERVICER

    root = Path(f"/tmp/{tag}-{os.getpid()}")  # short: Ray's Unix sockets must stay < 108 chars
    saved = {name: os.environ.get(name) for name in (*RAY_ENV, "MATCONCEPT_API_KEY")}
    os.environ["MATCONCEPT_API_KEY"] = API_KEY  # inherited by the local Ray's workers
    cluster = ServeCluster(root, free_port(), free_port())
    settings = cluster.settings(root / "unused-store")
    # Running.stop() of a local Ray shuts Serve and Ray down and restores the environment it saved.
    owner = Running(settings, "", "", True, saved)
    try:
        init_ray(settings)
        serve.start(
            http_options={"host": settings.http_host, "port": settings.http_port},
            grpc_options={"port": settings.grpc_port, "grpc_servicer_functions": [GRPC_SERVICER]},
        )
        yield cluster
    finally:
        cluster.current = None  # serve.shutdown removes it (its replicas stop gracefully)
        owner.stop()
        deadline = time.time() + 20
        while ray_processes(root) and time.time() < deadline:
            time.sleep(0.5)
        assert ray_processes(root) == [], "Ray processes left behind"
        shutil.rmtree(root, ignore_errors=True)
