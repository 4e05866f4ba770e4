"""The committed gRPC stubs match the contract: regenerating them changes nothing."""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location("proto_generate", ROOT / "proto" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_stubs_are_current():
    stale = _generator().stale()
    assert stale == [], f"stale gRPC stubs {stale}: run python proto/generate.py and commit service/rpc"


def test_stale_stubs_are_detected(tmp_path):
    generator = _generator()
    for path in generator.generate(tmp_path):
        if path.name.endswith("_pb2.py"):
            path.write_text(path.read_text().replace("matconcept", "matkonzept", 1))
    assert generator.stale(tmp_path) == ["matconcept_pb2.py"]


def test_messages_pickle_under_their_package():
    """Ray pickles requests between the proxy and replicas: the message module must be importable."""
    from matconcept.service.app.rpc import matconcept_pb2 as pb

    request = pb.SearchRequest(material_id="cod:1000000", top_k=5)
    assert pb.SearchRequest.__module__ == "matconcept.service.app.rpc.matconcept_pb2"
    assert pickle.loads(pickle.dumps(request)) == request
    assert pb.DESCRIPTOR.package == "matconcept.v1"
    assert "Matconcept" in pb.DESCRIPTOR.services_by_name
