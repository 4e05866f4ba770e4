"""The service application the two browser-page modules share: real COD CIFs stored and their map drawn.

``test_map_web`` and ``test_results_web`` need the same store (:data:`N_STORED` COD CIFs of the
``crystals`` package, :data:`NOT_STORED` left out, stored over gRPC, then ``POST /v1/map/layout``) and
write nothing else to it (uploads are placed or searched, never stored; a recomputed layout holds the
same materials), so the ``pages_service`` fixture deploys and fills it once for both when they run
in a row (:meth:`tests.live_service.ServeCluster.shared`).
"""

from __future__ import annotations

import time
from pathlib import Path

import requests

from tests.live_service import API_KEY

PAGES = "pages"
"""The shared application's name on the session's cluster."""
N_STORED = 20
NOT_STORED = "GaAs"
"""A COD CIF of the ``crystals`` package left out of the store (zincblende: unlike the stored ones)."""
LAYOUT_TIMEOUT_S = 90


def layout_settled(service) -> dict:
    """Wait until no layout job runs (one a previous module started would compete for the CPU); the map state."""
    deadline = time.time() + LAYOUT_TIMEOUT_S
    while True:
        state = requests.get(f"{service.http_url}/v1/map").json()
        if state["job"]["state"] != "running" or time.time() > deadline:
            return state
        time.sleep(0.5)


def store_materials(service) -> dict[str, Path]:
    """Store N_STORED real COD CIFs through the API and compute their map: material id → CIF path."""
    from matconcept.encoders.builtin import crystals_cifs
    from matconcept.service.client import MatconceptClient

    paths = [p for p in crystals_cifs() if p.stem != NOT_STORED][:N_STORED]
    with MatconceptClient(service.grpc_target, api_key=API_KEY) as client:
        result = client.upsert(paths, source="cod")
    assert result.failed == 0, result
    by_id = {r.material_id: p for r, p in zip(result.results, paths, strict=True)}

    r = requests.post(f"{service.http_url}/v1/map/layout", headers={"authorization": f"Bearer {API_KEY}"}, json={})
    assert r.status_code == 200, r.text
    state = layout_settled(service)
    assert state["job"]["state"] == "done", state
    assert state["layout"]["n_points"] == N_STORED
    return by_id
