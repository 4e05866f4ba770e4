"""Snapshots taken during writes restore to a consistent store.

Writers upsert and delete materials over HTTP (each writer its own ids, one request at a time, every
request logged with when it was sent and when it was answered) while ``POST /v1/snapshots`` snapshots
the store. The snapshot is restored with ``matconcept store restore`` into a fresh directory and
checked against the log:

* the restored count and digest equal the receipt's (the receipt describes the file exactly);
* every write answered before the snapshot was asked for is in it (an upsert with its content hash,
  a delete as an absence), and no write sent after the snapshot answered is;
* each writer's requests are in it as a prefix: the snapshot is one cut through the writes, never a
  half-applied request.

``matconcept store snapshot`` of the restored store (no service) gives the same digest again.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path

import pytest
import requests

from tests.live_service import API_KEY

WRITERS = 3
WRITES_BEFORE = 5
"""Requests each writer has answered before the snapshot is asked for (so there is something to keep)."""
WRITES_AFTER = 3
"""Requests each writer sends after the snapshot has answered (so there is something to leave out)."""


@dataclass
class Op:
    kind: str  # "upsert" or "delete"
    material_id: str
    content_hash: str | None
    sent: float
    answered: float = float("inf")
    ok: bool = False


@dataclass
class Writer:
    index: int
    ops: list[Op] = field(default_factory=list)


def _cif(writer: int, n: int) -> str:
    from matconcept.service.app.openapi import NACL_CIF

    return NACL_CIF + f"# writer {writer} version {n}\n"  # a distinct file: a distinct content hash


@pytest.fixture(scope="module")
def service(serve_cluster, tmp_path_factory):
    return serve_cluster.deploy("snapshot", tmp_path_factory.mktemp("store"))


def _write(url: str, writer: Writer, stop: threading.Event, marks: dict[str, float]) -> None:
    """One request at a time until WRITES_AFTER requests were sent after the snapshot answered."""
    headers = {"authorization": f"Bearer {API_KEY}"}
    n, after = 0, 0
    while not stop.is_set() and after < WRITES_AFTER:
        cycle = n // 3
        material_id = f"snap:w{writer.index}-{cycle}"
        if n % 3 == 2 and cycle > 0:  # every third request deletes the previous cycle's material
            gone = f"snap:w{writer.index}-{cycle - 1}"
            op = Op("delete", gone, None, time.monotonic())
            r = requests.delete(f"{url}/v1/materials/{gone}", headers=headers, timeout=300)
        else:
            text = _cif(writer.index, n)
            op = Op("upsert", material_id, sha256(text.encode()).hexdigest(), time.monotonic())
            item = {"structure": {"content": text, "name": "NaCl.cif"}, "source": "snap"}
            item["source_id"] = material_id.split(":", 1)[1]
            r = requests.post(f"{url}/v1/materials", json={"items": [item]}, headers=headers, timeout=300)
        op.answered, op.ok = time.monotonic(), r.status_code == 200
        assert op.ok, r.text
        writer.ops.append(op)
        if "answered" in marks and op.sent > marks["answered"]:
            after += 1
        n += 1


def _state(ops: list[Op]) -> dict[str, str]:
    """material id → content hash after ``ops`` in order."""
    state: dict[str, str] = {}
    for op in ops:
        if op.kind == "upsert":
            state[op.material_id] = op.content_hash or ""
        else:
            state.pop(op.material_id, None)
    return state


def test_a_snapshot_during_writes_restores_exactly_the_writes_before_it(service, tmp_path, capsys):
    from matconcept.encoders.checkpoint import resolve_model
    from matconcept.service.cli import main
    from matconcept.service.store import StoreSettings, open_store

    url = service.http_url
    writers = [Writer(i) for i in range(WRITERS)]
    stop, marks = threading.Event(), {}
    threads = [threading.Thread(target=_write, args=(url, w, stop, marks)) for w in writers]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 300
        while min(len(w.ops) for w in writers) < WRITES_BEFORE and time.monotonic() < deadline:
            time.sleep(0.2)
        asked = time.monotonic()
        r = requests.post(
            f"{url}/v1/snapshots", json={"label": "under-load"}, headers={"authorization": f"Bearer {API_KEY}"}
        )
        marks["answered"] = time.monotonic()
        assert r.status_code == 200, r.text
        receipt = r.json()
        refused = requests.post(f"{url}/v1/snapshots")
        assert refused.status_code == 401
    finally:
        if "answered" not in marks:
            stop.set()
        for t in threads:
            t.join(timeout=600)
    assert all(not t.is_alive() for t in threads)
    snapshot = Path(receipt["path"])
    assert snapshot.name.endswith("-under-load.tar.gz") and snapshot.stat().st_size == receipt["bytes"]

    fresh = tmp_path / "restored"
    capsys.readouterr()
    assert main(["store", "restore", str(snapshot), "--db", str(fresh), "--digest", receipt["digest"]]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == receipt["count"]
    loaded = resolve_model(None, "cpu")
    with open_store(StoreSettings(db=fresh), loaded.model_id, loaded.info.model.embedding_dim) as store:
        ids = store.iter_ids()
        restored = store.content_hashes(ids)
    assert len(ids) == receipt["count"] == len(restored) >= WRITERS

    cut_before = cut_after = 0
    for writer in writers:
        ops = writer.ops
        done_before = sum(op.answered < asked for op in ops)  # answered before the snapshot was asked for
        sent_before = sum(op.sent < marks["answered"] for op in ops)
        mine = {m: h for m, h in restored.items() if m.startswith(f"snap:w{writer.index}-")}
        cuts = [k for k in range(len(ops) + 1) if _state(ops[:k]) == mine]
        assert cuts, f"writer {writer.index}: the snapshot is no prefix of its writes: {mine}"
        assert any(done_before <= k <= sent_before for k in cuts), (writer.index, cuts, done_before, sent_before)
        assert sent_before < len(ops), "some writes must come after the snapshot"
        cut_before += done_before
        cut_after += len(ops) - sent_before
    assert cut_before >= WRITERS * WRITES_BEFORE and cut_after >= WRITERS * WRITES_AFTER
    assert all(m.startswith("snap:") for m in restored)

    again = tmp_path / "again.tar.gz"
    assert main(["store", "snapshot", str(again), "--db", str(fresh)]) == 0
    local = json.loads(capsys.readouterr().out)
    assert (local["count"], local["digest"]) == (receipt["count"], receipt["digest"]) and again.stat().st_size > 0
    print(json.dumps({"receipt": receipt, "writes_before": cut_before, "writes_after": cut_after}))
