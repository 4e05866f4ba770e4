"""The soak with faults, short: ``benchmarks/bench_soak.py`` for 30 s from 6 users, each fault once.

The store, an embedder and the gateway replica are killed (Serve restarts them) and the whole service
is stopped and started again on the same store, while users search (CIF over HTTP and gRPC, a pattern),
embed, upsert and delete. Then:

* no acknowledged write is lost and no acknowledged delete comes back;
* every fault is recovered from (a CIF search succeeds again), each within two minutes;
* no request fails outside a fault's window, and inside them the failures are the expected ones:
  503 / UNAVAILABLE, refused connections during the restart, Ray Serve's proxies' 404 / NOT_FOUND
  while the restarted application deploys and 500 / INTERNAL for requests in flight on the gateway
  replica when it is killed (the proxy's answer, not the service's) — never a 500 anywhere else.

The full run (``--duration 300 --users 20``) is the benchmark; its figures are in the issue's note.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = {"grpc_UNAVAILABLE", "http_503", "ConnectionError", "ReadTimeout", "ConnectTimeout"}
RESTART_ONLY = {"http_404", "grpc_NOT_FOUND"}
GATEWAY_ONLY = {"http_500", "grpc_INTERNAL"}


def test_short_soak_with_every_fault_loses_nothing(tmp_path):
    out = tmp_path / "soak.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "bench_soak.py"), "--duration", "30", "--users", "6"]
    run = subprocess.run([*command, "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(out.read_text())
    print(json.dumps({k: report[k] for k in ("requests", "error_rate", "recovery", "lost_writes")}))
    assert run.returncode == 0, run.stderr[-3000:]
    assert report["lost_writes"] == 0 and report["resurrected_deletes"] == 0, report
    assert report["acknowledged_upserts"] > 0 and report["acknowledged_deletes"] > 0
    assert set(report["recovery"]) == {"kill_store", "kill_embedder", "kill_gateway", "restart_service"}
    assert all(r["recovery_s"] < 120 for r in report["recovery"].values()), report["recovery"]
    assert report["errors_outside_faults"] == {}, report["errors_outside_faults"]
    for fault, errors in report["errors_by_fault"].items():
        allowed = EXPECTED | (RESTART_ONLY if fault == "restart_service" else set())
        allowed |= GATEWAY_ONLY if fault == "kill_gateway" else set()
        classes = {key.split(":", 1)[1] for key in errors}
        assert classes <= allowed, (fault, errors)
    done = sum(kind["requests"] - kind["errors"] for kind in report["by_kind"].values())
    assert done >= 100, report["by_kind"]
