"""``matconcept ingest --ray`` on a real two-node Ray cluster started on this machine.

``ray start --head`` plus a second ``ray start --address`` node (one CPU each, the second with its
own resource): the embedding actor takes one node's CPU, so the parse/featurize tasks run on the
other and the run must report work on both. Counts and the failure report are derived from the
inputs, a re-run changes nothing, and every process of the cluster is gone afterwards (found by the
cluster's own temp dir and port, never by a broad name: other tests' Ray instances are left alone).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from matconcept.encoders.builtin import crystals_cifs
from matconcept.encoders.embedder import Embedder
from matconcept.service.ingest.ray_data import ingest_ray
from matconcept.service.store.edge import EdgeStore

pytestmark = pytest.mark.slow  # two Ray nodes start: about a minute on 2 cores
GOOD = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cluster_processes(temp: Path, port: int) -> list[psutil.Process]:
    """The processes of the cluster, named by its temp dir or GCS port, with their descendants."""
    at_port = re.compile(rf":{port}\b")
    found: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if proc.pid != os.getpid() and (str(temp) in cmdline or at_port.search(cmdline)):
            found[proc.pid] = proc
            with contextlib.suppress(psutil.NoSuchProcess):
                found.update({c.pid: c for c in proc.children(recursive=True)})
    return list(found.values())


def _stop(temp: Path, port: int) -> list[int]:
    """Terminate (then kill) the cluster's processes; the pids still there after 20 s."""
    deadline = time.monotonic() + 20
    while (procs := _cluster_processes(temp, port)) and time.monotonic() < deadline:
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.terminate()
        _, alive = psutil.wait_procs(procs, timeout=5)
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        time.sleep(0.5)
    return [p.pid for p in _cluster_processes(temp, port) if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.fixture
def two_node_ray(monkeypatch):
    """RAY_ADDRESS of a head node and a second node, each with one CPU; both stopped afterwards."""
    temp = Path(f"/tmp/mcr-{uuid.uuid4().hex[:8]}")  # short: Ray's socket paths must stay < 108 chars
    temp.mkdir()
    port = _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}  # Ray 2.60 would otherwise write ~/.ray/auth_token
    ray_cli = str(Path(sys.executable).with_name("ray"))
    common = ["--num-cpus=1", "--disable-usage-stats", f"--temp-dir={temp}"]
    try:
        subprocess.run(
            [
                ray_cli,
                "start",
                "--head",
                "--node-ip-address=127.0.0.1",
                f"--port={port}",
                "--include-dashboard=false",
                *common,
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(
            [ray_cli, "start", f"--address=127.0.0.1:{port}", '--resources={"second_node": 1}', *common],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
        monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
        yield f"127.0.0.1:{port}"
    finally:
        left = _stop(temp, port)
        shutil.rmtree(temp, ignore_errors=True)
        assert not left, f"Ray processes left behind: {left}"


def test_two_node_ray_ingest_exact_counts_idempotent_and_no_process_left(tmp_path, two_node_ray, hostile_dir):
    import ray

    inputs = tmp_path / "in"
    (inputs / "copies").mkdir(parents=True)
    cifs = crystals_cifs()[:GOOD]
    for path in cifs:
        shutil.copy(path, inputs / path.name)
    shutil.copy(cifs[0], inputs / "copies" / cifs[0].name)  # the same material again: unchanged
    bad_dir, reasons = hostile_dir
    bad_name, bad_reason = next(iter(sorted(reasons.items())))
    shutil.copy(bad_dir / bad_name, inputs / bad_name)

    embedder = Embedder(device="cpu")
    report = tmp_path / "report.jsonl"
    stats: dict = {}
    with EdgeStore(tmp_path / "db" / "c", embedder.model_id, embedder.dim) as store:
        first = ingest_ray([inputs], store, embedder, batch=2, report=report, progress=False, stats=stats)
        assert not ray.is_initialized()  # the cluster connection is closed again
        assert first.model_dump() == {
            "read": GOOD + 2,
            "added": GOOD,
            "updated": 0,
            "unchanged": 1,
            "failed": 1,
            "seconds": first.seconds,
        }
        lines = [json.loads(line) for line in report.read_text().splitlines()]
        assert [(Path(line["path"]).name, line["reason"]) for line in lines] == [(bad_name, bad_reason)]
        assert sorted(store.iter_ids()) == sorted(f"user:{p.stem}" for p in cifs)
        nodes = set(stats["nodes"]["featurize"]) | set(stats["nodes"]["embed"])
        assert len(nodes) == 2, stats  # both nodes worked

        # A re-run has nothing left to do: every entry is stored with the same content (decided
        # before parsing, so no pipeline starts once the one bad file is gone).
        (inputs / bad_name).unlink()
        again = ingest_ray([inputs], store, embedder, batch=2, progress=False)
        assert (again.read, again.added, again.updated, again.unchanged, again.failed) == (GOOD + 1, 0, 0, GOOD + 1, 0)
        assert store.count() == GOOD
        assert not ray.is_initialized()
