"""Soak with faults: a mixed workload from concurrent users while replicas die and the service restarts.

    python benchmarks/bench_soak.py --duration 300 --users 20 --json soak.json

Starts the real service (local Ray, embedded store in a temporary directory or ``--store``, the COD
CIFs shipped with ``crystals``/ase stored first), then ``--users`` threads each loop over a mixed
workload until ``--duration`` seconds have passed:

=================  ======  =============================================================
kind               weight  request
=================  ======  =============================================================
search_cif_http    25      POST /v1/search, a COD CIF as JSON, top 10
search_cif_grpc    15      Search RPC, the same
search_pattern     10      Search RPC with a measured-like pattern (re-ranked, phases)
embed              15      POST /v1/embed, a CIF
upsert             25      Upsert RPC, one CIF with a comment naming the user and the write
delete             10      DELETE /v1/materials/{id}, one of the user's acknowledged upserts
=================  ======  =============================================================

Faults, each once, spread over the run: the store replica, an embedder replica and the gateway
replica are killed with SIGKILL (their worker processes under the service, by the title Ray gives them;
Serve restarts them), then the whole service (``matconcept serve`` in a child process) is stopped with
SIGTERM and started again on the same store and ports.
After each fault a probe (a CIF search over HTTP: gateway, embedder and store) measures the recovery
time: fault → first success.

At the end every acknowledged write is checked through the restarted service: an acknowledged upsert
whose material was not deleted must be stored with its content hash (else a *lost write*), an
acknowledged delete must be absent (else a *resurrected delete*). Writes that failed (no answer, 503…)
may or may not have happened and are not judged. The JSON report has requests, error rate by kind
(and error classes), p50/p99 latency of the successful requests by kind, recovery time per fault,
lost writes, resurrected deletes and the machine's load average during the run.

Failed requests are attributed to the fault whose window (injection to recovery + 5 s) they overlap;
``errors_outside_faults`` should be empty. Inside the windows, what the service answers is 503 /
UNAVAILABLE (a replica the request needed is gone) or a refused connection (the whole restart). Two
answers come from Ray Serve's proxies, not from the service: requests in flight on the gateway replica
at the moment it dies get 500 / INTERNAL (the proxy's answer to a dead replica), and while a restarted
service is deploying its application the proxies, already listening, answer 404 / NOT_FOUND.

Why not locust: its gevent monkey-patching does not mix with grpcio and Ray in one process, and the
checks need every acknowledged write's exact content hash, which a per-request log in plain threads
(``requests`` + the project's gRPC client) gives directly; the load shape (N users in closed loops) is
locust's default one.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path

import numpy as np

API_KEY = "soak-key"
WEIGHTS = {
    "search_cif_http": 25,
    "search_cif_grpc": 15,
    "search_pattern": 10,
    "embed": 15,
    "upsert": 25,
    "delete": 10,
}
FAULTS = ("kill_store", "kill_embedder", "kill_gateway", "restart_service")
REPLICA = {"kill_store": "StoreDeployment", "kill_embedder": "EmbedderDeployment", "kill_gateway": "Gateway"}
REQUEST_TIMEOUT_S = 120.0
RECOVERY_LIMIT_S = 300.0
WINDOW_GRACE_S = 5.0
"""A fault's window ends this long after the probe's first success (clients reconnect, queues drain)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Write:
    """One write of the log: what was sent and whether the service acknowledged it."""

    kind: str  # upsert | delete
    material_id: str
    content_hash: str | None
    acked: bool


@dataclass
class Log:
    """Everything the users did, shared by the threads (appends are atomic under the GIL)."""

    requests: list[tuple[str, float, float, bool, str]] = field(default_factory=list)
    """(kind, start, seconds, ok, error class)."""
    writes: list[Write] = field(default_factory=list)


# -- the service -----------------------------------------------------------------------------------------
class Service:
    """The service under test, ``matconcept serve`` in a child process: started, killed in parts, stopped
    (SIGTERM: Serve and Ray shut down) and started again on the same store and ports. A child process,
    because a Ray driver that shuts Ray down and starts it again in one process can be ended by Ray's own
    background threads ("the core worker has already been shut down")."""

    def __init__(self, store_dir: Path, ray_dir: Path, log_path: Path) -> None:
        self.store_dir, self.log_path = store_dir, log_path
        self.http_port, self.grpc_port = _free_port(), _free_port()
        self.env = {
            **os.environ,
            "MATCONCEPT_API_KEY": API_KEY,
            "MATCONCEPT_RAY_TEMP_DIR": str(ray_dir),
            "MATCONCEPT_MAX_BATCH_SIZE": "16",
        }
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 600.0) -> None:
        import requests

        command = [sys.executable, "-c", "from matconcept.service.cli import main; raise SystemExit(main())"]
        command += ["serve", "--db", str(self.store_dir), "--no-builtin"]
        command += ["--http-port", str(self.http_port), "--grpc-port", str(self.grpc_port)]
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"matconcept serve exited ({self.process.returncode}); see {self.log_path}")
            try:
                if requests.get(f"{self.http_url}/v1/stats", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the service did not answer within {timeout} s; see {self.log_path}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=180)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def replica_pid(self, deployment: str) -> int:
        """A live replica of ``deployment``: a process under the service whose title Ray set to
        ``ray::ServeReplica:matconcept:<deployment>``."""
        assert self.process is not None
        children: dict[int, list[int]] = defaultdict(list)
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children[ppid].append(int(entry.name))
        todo, title = [self.process.pid], f"ServeReplica:matconcept:{deployment}"
        while todo:
            pid = todo.pop()
            try:
                if title in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                    return pid
            except OSError:
                pass
            todo.extend(children.get(pid, []))
        raise RuntimeError(f"no live replica of {deployment} under the service")

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


# -- the users -------------------------------------------------------------------------------------------
def _grpc_client(target: str):
    """The project's client on a channel that reconnects within a second (the default backs off to 2 min)."""
    import grpc

    from matconcept.service.app.rpc import matconcept_pb2_grpc as pb_grpc
    from matconcept.service.client import MatconceptClient

    client = MatconceptClient(target, api_key=API_KEY, timeout=REQUEST_TIMEOUT_S)
    client.channel.close()
    options = [
        ("grpc.max_send_message_length", 64 << 20),
        ("grpc.max_receive_message_length", 64 << 20),
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.min_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 1000),
    ]
    client.channel = grpc.insecure_channel(target, options=options)
    client.stub = pb_grpc.MatconceptStub(client.channel)
    return client


def _error_class(exc: BaseException | None, status: int | None = None) -> str:
    if status is not None:
        return f"http_{status}"
    code = getattr(exc, "code", None)
    if code is not None and hasattr(code, "name"):
        return f"grpc_{code.name}"
    return type(exc).__name__


class User(threading.Thread):
    """A closed loop of requests: each waits for the previous one's answer."""

    def __init__(self, index: int, service: Service, inputs: dict, log: Log, stop: threading.Event, seed: int):
        super().__init__(name=f"user-{index}", daemon=True)
        self.index, self.service, self.inputs, self.log, self.stop = index, service, inputs, log, stop
        self.rng = random.Random(seed)
        self.acked: list[str] = []  # this user's stored materials not yet deleted
        self.n = 0

    def run(self) -> None:
        import requests

        session = requests.Session()
        client = _grpc_client(self.service.grpc_target)
        kinds, weights = list(WEIGHTS), list(WEIGHTS.values())
        while not self.stop.is_set():
            kind = self.rng.choices(kinds, weights)[0]
            if kind == "delete" and not self.acked:
                kind = "upsert"
            start = time.monotonic()
            ok, error = False, ""
            try:
                ok, error = getattr(self, kind)(session, client)
            except Exception as exc:  # a connection refused, a timeout, an UNAVAILABLE...
                error = _error_class(exc)
            self.log.requests.append((kind, start, time.monotonic() - start, ok, error))
            if not ok:
                time.sleep(0.2)  # a failing service is not hammered in a tight loop
        client.close()

    def _headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {API_KEY}"}

    def search_cif_http(self, session, client) -> tuple[bool, str]:
        name, text = self.rng.choice(self.inputs["cifs"])
        body = {"structure": {"content": text, "name": name}, "top_k": 10}
        r = session.post(f"{self.service.http_url}/v1/search", json=body, timeout=REQUEST_TIMEOUT_S)
        return r.status_code == 200, "" if r.status_code == 200 else _error_class(None, r.status_code)

    def search_cif_grpc(self, session, client) -> tuple[bool, str]:
        from matconcept.service.app.schemas import StructureIn

        name, text = self.rng.choice(self.inputs["cifs"])
        client.search(StructureIn(content=text, name=name), top_k=10)
        return True, ""

    def search_pattern(self, session, client) -> tuple[bool, str]:
        two_theta, intensity = self.rng.choice(self.inputs["patterns"])
        client.search(pattern=(two_theta, intensity), top_k=10)
        return True, ""

    def embed(self, session, client) -> tuple[bool, str]:
        name, text = self.rng.choice(self.inputs["cifs"])
        body = {"structure": {"content": text, "name": name}}
        r = session.post(f"{self.service.http_url}/v1/embed", json=body, timeout=REQUEST_TIMEOUT_S)
        return r.status_code == 200, "" if r.status_code == 200 else _error_class(None, r.status_code)

    def upsert(self, session, client) -> tuple[bool, str]:
        from matconcept.service.app.schemas import StructureIn, UpsertItem

        name, text = self.rng.choice(self.inputs["cifs"])
        text = f"{text}\n# soak user {self.index} write {self.n}\n"  # a new content hash per write
        material_id = f"soak:u{self.index}-{self.n}"
        self.n += 1
        item = UpsertItem(structure=StructureIn(content=text, name=name), source="soak", source_id=material_id[5:])
        write = Write("upsert", material_id, sha256(text.encode()).hexdigest(), acked=False)
        self.log.writes.append(write)
        result = client.upsert([item])
        if result.stored == 1 and result.results[0].material_id == material_id:
            write.acked = True
            self.acked.append(material_id)
            return True, ""
        return False, f"upsert_{result.results[0].status}"

    def delete(self, session, client) -> tuple[bool, str]:
        material_id = self.acked.pop(self.rng.randrange(len(self.acked)))  # never touched again
        write = Write("delete", material_id, None, acked=False)
        self.log.writes.append(write)
        r = session.delete(
            f"{self.service.http_url}/v1/materials/{material_id}", headers=self._headers(), timeout=REQUEST_TIMEOUT_S
        )
        write.acked = r.status_code == 200
        return write.acked, "" if write.acked else _error_class(None, r.status_code)


# -- faults, probes, checks ------------------------------------------------------------------------------
def probe_until_up(service: Service, cif: tuple[str, str], since: float, limit: float = RECOVERY_LIMIT_S) -> float:
    """Seconds from ``since`` until a CIF search over HTTP succeeds (gateway, embedder and store answer)."""
    import requests

    name, text = cif
    body = {"structure": {"content": text, "name": name}, "top_k": 1}
    while time.monotonic() - since < limit:
        try:
            r = requests.post(f"{service.http_url}/v1/search", json=body, timeout=30)
            if r.status_code == 200:
                return time.monotonic() - since
        except requests.RequestException:
            pass
        time.sleep(0.25)
    return float("inf")


def inject(fault: str, service: Service) -> None:
    if fault == "restart_service":
        service.stop()
        service.start()
        return
    os.kill(service.replica_pid(REPLICA[fault]), signal.SIGKILL)


def check_writes(service: Service, writes: list[Write]) -> dict:
    """Lost acknowledged upserts and resurrected acknowledged deletes, read back through the service."""
    client = _grpc_client(service.grpc_target)
    deleted_acked = {w.material_id for w in writes if w.kind == "delete" and w.acked}
    delete_tried = {w.material_id for w in writes if w.kind == "delete"}
    upserted = {w.material_id: w.content_hash for w in writes if w.kind == "upsert" and w.acked}
    must_have = {m: h for m, h in upserted.items() if m not in delete_tried}
    ids = sorted(set(must_have) | deleted_acked)
    stored: dict[str, str] = {}
    for i in range(0, len(ids), 500):
        for record in client.get(ids[i : i + 500]).materials:
            stored[record.material_id] = record.payload.content_hash
    client.close()
    lost = sorted(m for m, h in must_have.items() if stored.get(m) != h)
    resurrected = sorted(m for m in deleted_acked if m in stored)
    return {
        "acknowledged_upserts": len(upserted),
        "acknowledged_deletes": len(deleted_acked),
        "checked_present": len(must_have),
        "unacknowledged_writes": sum(not w.acked for w in writes),
        "lost_writes": len(lost),
        "resurrected_deletes": len(resurrected),
        "lost_examples": lost[:10],
        "resurrected_examples": resurrected[:10],
    }


def errors_by_window(log: Log, windows: list[tuple[str, float, float]]) -> tuple[dict, dict]:
    """Failed requests by the fault whose window (injection → recovery + grace) their span overlaps,
    and those that overlap none (which a healthy service should not have)."""
    by_fault: dict[str, Counter] = {name: Counter() for name, _, _ in windows}
    outside: Counter = Counter()
    for kind, start, seconds, ok, error in log.requests:
        if ok:
            continue
        overlapping = [(a, name) for name, a, b in windows if start <= b and start + seconds >= a]
        hit = max(overlapping)[1] if overlapping else None  # the latest fault it saw
        (by_fault[hit] if hit else outside)[f"{kind}:{error}"] += 1
    return {k: dict(v.most_common()) for k, v in by_fault.items()}, dict(outside.most_common())


def summarize(log: Log, started: float) -> dict:
    by_kind: dict[str, list] = defaultdict(list)
    for kind, _start, seconds, ok, error in log.requests:
        by_kind[kind].append((seconds, ok, error))
    out = {}
    for kind in WEIGHTS:
        rows = by_kind.get(kind, [])
        good = np.array([s for s, ok, _ in rows if ok]) * 1000
        errors = Counter(e for _, ok, e in rows if not ok)
        out[kind] = {
            "requests": len(rows),
            "errors": sum(errors.values()),
            "error_rate": round(sum(errors.values()) / len(rows), 4) if rows else 0.0,
            "error_classes": dict(errors.most_common()),
            "p50_ms": round(float(np.percentile(good, 50)), 1) if good.size else None,
            "p99_ms": round(float(np.percentile(good, 99)), 1) if good.size else None,
        }
    return out


def inputs(n_cifs: int) -> dict:
    """COD CIFs as text, and measured-like patterns of a few of them."""
    from matconcept.encoders.builtin import cod_cif_files
    from matconcept.encoders.structure_io import read_structure
    from matconcept.encoders.xrd.synthetic import MeasuredConditions, simulate_measured

    files = sorted(cod_cif_files(), key=lambda p: p.stat().st_size)[:n_cifs]
    cifs = [(p.name, p.read_text(errors="replace")) for p in files]
    patterns = []
    conditions = MeasuredConditions(strain=0.003, zero_shift=0.02, fwhm=0.12, noise=0.02, background=0.05)
    for k, path in enumerate(files[:4]):
        two_theta, counts = simulate_measured(read_structure(path).structure, conditions, rng=k)
        patterns.append((two_theta[::5].tolist(), counts[::5].tolist()))
    return {"cifs": cifs, "patterns": patterns}


def soak(
    duration: float, users: int, store_dir: Path, ray_dir: Path, log_path: Path, faults: bool, seed: int = 0
) -> dict:
    data = inputs(40)
    service = Service(store_dir, ray_dir, log_path)
    t0 = time.monotonic()
    service.start()
    startup_s = time.monotonic() - t0
    seed_client = _grpc_client(service.grpc_target)
    from matconcept.service.app.schemas import StructureIn, UpsertItem

    seeded = seed_client.upsert(
        [UpsertItem(structure=StructureIn(content=t, name=n), source="cod") for n, t in data["cifs"]]
    )
    seed_client.close()

    log, stop = Log(), threading.Event()
    load: list[float] = []
    crew = [User(i, service, data, log, stop, seed + i) for i in range(users)]
    started = time.monotonic()
    for user in crew:
        user.start()
    schedule = [(duration * (k + 1) / (len(FAULTS) + 1), f) for k, f in enumerate(FAULTS)] if faults else []
    recoveries: dict[str, dict] = {}
    windows: list[tuple[str, float, float]] = []
    quiet_from = 0.0  # no fault before the previous one's window has closed (windows never overlap)
    while time.monotonic() - started < duration or schedule:
        load.append(os.getloadavg()[0])
        elapsed = time.monotonic() - started
        if schedule and elapsed >= max(schedule[0][0], quiet_from):
            _, fault = schedule.pop(0)
            at = time.monotonic()
            inject(fault, service)
            injected_s = time.monotonic() - at
            recovered = probe_until_up(service, data["cifs"][0], at)
            recoveries[fault] = {
                "at_s": round(at - started, 1),
                "inject_s": round(injected_s, 1),
                "recovery_s": round(recovered, 2),
            }
            windows.append((fault, at, at + min(recovered, RECOVERY_LIMIT_S) + WINDOW_GRACE_S))
            quiet_from = windows[-1][2] - started
            continue
        time.sleep(1.0)
    stop.set()
    for user in crew:
        user.join(timeout=REQUEST_TIMEOUT_S + 30)
    wall = time.monotonic() - started
    checks = check_writes(service, log.writes)
    by_fault, outside = errors_by_window(log, windows)
    restart = [(a, b) for name, a, b in windows if name == "restart_service"]
    steady = [r for r in log.requests if not any(r[1] <= b and r[1] + r[2] >= a for a, b in restart)]
    service.stop()
    requests_total = len(log.requests)
    return {
        "duration_s": round(wall, 1),
        "users": users,
        "faults": faults,
        "startup_s": round(startup_s, 1),
        "seeded_materials": seeded.stored,
        "requests": requests_total,
        "throughput_rps": round(requests_total / wall, 2),
        "error_rate": round(sum(not r[3] for r in log.requests) / max(requests_total, 1), 4),
        "error_rate_outside_restart": round(sum(not r[3] for r in steady) / max(len(steady), 1), 4),
        "by_kind": summarize(log, started),
        "recovery": recoveries,
        "errors_by_fault": by_fault,
        "errors_outside_faults": outside,
        **checks,
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_1m_mean": round(float(np.mean(load)), 2) if load else None,
            "load_avg_1m_max": round(float(np.max(load)), 2) if load else None,
            "load_avg_before": [round(x, 2) for x in os.getloadavg()],
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load (default 300)")
    parser.add_argument("--users", type=int, default=20, help="concurrent users (default 20)")
    parser.add_argument("--store", type=Path, help="store directory (default: a temporary one)")
    parser.add_argument("--no-faults", action="store_true", help="load only: no replica kills, no restart")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        store = args.store or Path(tmp) / "store"
        ray_dir = Path(f"/tmp/mcsk-{os.getpid()}")  # short: Ray's Unix sockets must stay < 108 chars
        try:
            report = soak(
                args.duration, args.users, store, ray_dir, Path(tmp) / "serve.log", not args.no_faults, args.seed
            )
        finally:
            shutil.rmtree(ray_dir, ignore_errors=True)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    ok = report["lost_writes"] == 0 and report["resurrected_deletes"] == 0
    ok = ok and all(r["recovery_s"] != float("inf") for r in report["recovery"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
