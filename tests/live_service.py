"""The real service for end-to-end test modules: Ray Serve on loopback over a fresh embedded store.

Ray and Serve take ~30 s and ~1.5 GB to start on 2 cores, so each module that needs the service
starts one (a module-scoped fixture around :func:`live_service`) with its own short Ray session
directory; on the way out it checks that no Ray process of that session is left.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_processes(session_root: Path) -> list[str]:
    out = subprocess.run(["pgrep", "-af", str(session_root)], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "pgrep" not in line]


@contextmanager
def live_service(store_dir: Path, api_key: str, tag: str) -> Iterator:
    """Start the service (API key ``api_key``, Ray session ``/tmp/<tag>-<pid>``), yield its ``Running``."""
    from matconcept.service.app.launch import start
    from matconcept.service.app.settings import ServiceSettings
    from matconcept.service.store import StoreSettings

    root = Path(f"/tmp/{tag}-{os.getpid()}")  # short: Ray's Unix sockets must stay < 108 chars
    old_key = os.environ.get("MATCONCEPT_API_KEY")
    os.environ["MATCONCEPT_API_KEY"] = api_key  # inherited by the local Ray's workers
    settings = ServiceSettings(
        store=StoreSettings(db=store_dir),
        http_port=free_port(),
        grpc_port=free_port(),
        ray_temp_dir=root,
        max_batch_size=16,
    )
    running = start(settings, ingest_builtin=False)
    try:
        yield running
    finally:
        running.stop()
        if old_key is None:
            os.environ.pop("MATCONCEPT_API_KEY", None)
        else:
            os.environ["MATCONCEPT_API_KEY"] = old_key
        deadline = time.time() + 20
        while ray_processes(root) and time.time() < deadline:
            time.sleep(0.5)
        assert ray_processes(root) == [], "Ray processes left behind"
        shutil.rmtree(root, ignore_errors=True)
