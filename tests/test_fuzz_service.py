"""The live service under fuzzing: HTTP by schemathesis from its own OpenAPI document, gRPC by Hypothesis.

One service (Ray Serve, real embedder and store, the API key set) serves both parts:

* **HTTP** — the schemathesis CLI runs its examples, coverage, fuzzing and stateful phases against
  ``/openapi.json`` with a fixed seed and :data:`HTTP_EXAMPLES` examples per operation (raise it with
  ``MATCONCEPT_FUZZ_EXAMPLES`` for a longer run). Checks: no 5xx, status codes, content types, headers
  and bodies as documented, data the schema calls valid accepted (``positive_data_acceptance``; what a
  JSON schema cannot say — that a CIF is a CIF, a pattern's arrays are as long as each other — is
  filled in for positive cases by :mod:`tests.schemathesis_hooks`), ``Allow`` on 405, no resource
  available after its delete, auth not ignored. Not checked: ``negative_data_rejection`` (the service
  is lenient on purpose in places the schema is strict: an empty form field is an absent one, element
  symbols in any case, a number where JSON gives a boolean; it answers 413, not 400, over a cap) and
  response times (2 shared cores). The fuzz service caps upserts at :data:`MAX_UPSERT_ITEMS` items
  (its document says so) so a generated batch stays seconds long.
* **gRPC** — Hypothesis builds request messages for every RPC from the proto's descriptors: random
  oneof members, empty and huge repeated fields (:data:`HUGE` doubles), NaN and infinite floats,
  integers at their type's limits, arbitrary text and bytes, and sometimes real files (COD CIF,
  a pattern) so the deep paths run. Invalid UTF-8 in string fields, which protobuf refuses to build,
  is sent as raw bytes: the message is serialized with a same-length placeholder, the placeholder
  patched, and the bytes sent through a channel without a serializer. Every answer is OK or one of
  :data:`DOCUMENTED` — never UNKNOWN or INTERNAL — and the service still answers afterwards.

The numbers of cases tried go to ``tests/artifacts/fuzz_http.json`` and ``fuzz_grpc.json`` (and are printed).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import grpc
import pytest
import requests
from google.protobuf.descriptor import FieldDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.live_service import API_KEY

HTTP_EXAMPLES = int(os.environ.get("MATCONCEPT_FUZZ_EXAMPLES", "4"))
"""Schemathesis examples per operation and phase (the coverage phase's cases are fixed by the schema)."""
GRPC_EXAMPLES = int(os.environ.get("MATCONCEPT_FUZZ_GRPC_EXAMPLES", "30"))
"""Hypothesis messages per RPC."""
MAX_UPSERT_ITEMS = 12
HUGE = 200_000
"""Length of a huge repeated double field: 1.6 MB on the wire, under the 16 MiB request cap."""
SEED = 20261129
ROOT = Path(__file__).resolve().parents[1]
RPCS = ("Embed", "Search", "Upsert", "Get", "Delete", "Stats")
DOCUMENTED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAVAILABLE,
}
"""The status codes the API documents; UNKNOWN and INTERNAL are bugs."""
GRPC_OUTCOMES: dict[str, Counter] = {}


def _artifacts() -> Path:
    folder = Path(os.environ.get("MATCONCEPT_TEST_ARTIFACTS") or Path(__file__).parent / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def service(serve_cluster, tmp_path_factory):
    return serve_cluster.deploy("fuzz_service", tmp_path_factory.mktemp("store"), max_upsert_items=MAX_UPSERT_ITEMS)


@pytest.fixture(scope="module")
def cifs() -> list[Path]:
    from matconcept.encoders.builtin import crystals_cifs

    return sorted(crystals_cifs(), key=lambda p: p.stat().st_size)[:6]


@pytest.fixture(scope="module")
def stored(service, cifs) -> list[str]:
    """Six real COD CIFs stored, so searches, gets and deletes have something to find."""
    from matconcept.service.client import MatconceptClient

    with MatconceptClient(service.grpc_target, api_key=API_KEY) as client:
        result = client.upsert(cifs, source="cod")
    assert result.failed == 0, result
    return [r.material_id for r in result.results]


# -- HTTP: schemathesis --------------------------------------------------------------------------------
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "positive_data_acceptance",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "use_after_free",
    "ensure_resource_availability",
    "ignored_auth",
)


def test_schemathesis_finds_no_server_error_and_no_contract_breach(service, stored, tmp_path):
    report_dir = tmp_path / "report"
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "run", f"{service.http_url}/openapi.json"),
        *("--phases", "examples,coverage,fuzzing,stateful", "--checks", ",".join(CHECKS)),
        *("--max-examples", str(HTTP_EXAMPLES), "--seed", str(SEED), "--workers", "1", "--no-shrink"),
        *("--header", f"Authorization: Bearer {API_KEY}", "--request-timeout", "120"),
        *("--suppress-health-check", "all", "--report", "json", "--report-dir", str(report_dir)),
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks", "PYTHONPATH": str(ROOT)}
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1500)
    (report,) = report_dir.glob("*.json")
    result = json.loads(report.read_text())
    summary = {
        "examples_per_operation": HTTP_EXAMPLES,
        "seed": SEED,
        "operations": result["operations"]["tested"],
        "phases": {name: phase["status"] for name, phase in result["phases"].items()},
        "test_cases": result["test_cases"],
        "failures": result["failures"],
        "errors": result["errors"],
        "running_time_s": round(result["running_time"], 1),
    }
    (_artifacts() / "fuzz_http.json").write_text(json.dumps(summary, indent=2))
    print("\nHTTP fuzzing:", json.dumps(summary))
    assert run.returncode == 0 and not result["failures"] and not result["errors"], run.stdout[-8000:]
    assert result["operations"]["tested"] >= 15
    assert all(phase["status"] == "success" for phase in result["phases"].values()), summary["phases"]


# -- gRPC: Hypothesis over the proto -------------------------------------------------------------------
INT_LIMITS = {
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
}
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from((math.nan, math.inf, -math.inf, 1e308, 0.0))


def _real_values() -> dict[str, st.SearchStrategy]:
    """Real values for some fields by name, mixed with random ones, so requests reach the deep paths."""
    from matconcept.encoders.builtin import crystals_cifs
    from matconcept.service.app.openapi import NACL_CIF

    cif = sorted(crystals_cifs(), key=lambda p: p.stat().st_size)[0].read_text()
    grid = [10.0 + 0.1 * i for i in range(1000)]
    peaks = [100.0 + 1000.0 * math.exp(-(((t - 31.7) / 0.1) ** 2)) for t in grid]
    return {
        "text": st.sampled_from((NACL_CIF, cif)),
        "data": st.sampled_from((NACL_CIF.encode(), cif.encode())),
        "format": st.sampled_from(("", "cif", "json", "poscar", "xyz")),
        "two_theta": st.just(grid),
        "intensity": st.just(peaks),
        "material_id": st.sampled_from(("cod:1000000", "user:nacl-example", ":", "a:", "x" * 300)),
        "wavelength": st.sampled_from(("", "Cu", "Mo", "0.7293", "-1", "nan", "Zn")),
        "structure_format": st.sampled_from(("", "cif", "json", "poscar", "original", "pdf")),
        "elements_all": st.lists(st.sampled_from(("Li", "O", "Fe", "Xx", "")), max_size=3),
        "chemical_system": st.sampled_from(("", "Co-Li-O", "Na-Cl", "Q-Z")),
    }


def _scalar(field: FieldDescriptor, real: dict) -> st.SearchStrategy:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return _message(field.message_type, real)
    if field.type == FieldDescriptor.TYPE_ENUM:
        return st.sampled_from([v.number for v in field.enum_type.values]) | st.integers(-5, 100)
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return FLOATS
    if field.type in INT_LIMITS:
        low, high = INT_LIMITS[field.type]
        return st.integers(low, high) | st.sampled_from((low, high, 0, 1, 10))
    if field.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if field.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=200)
    return TEXT


def _field(field: FieldDescriptor, real: dict) -> st.SearchStrategy:
    base = _scalar(field, real)
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
        return st.dictionaries(_scalar(key, real), _scalar(value, real), max_size=4)
    if field.is_repeated:
        lists = st.lists(base, max_size=5)
        if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            lists = lists | st.builds(lambda x: [x] * HUGE, FLOATS)  # huge, all one value (NaN too)
        if field.name in real:
            lists = real[field.name] | lists
        return lists
    return real[field.name] | base if field.name in real else base


@st.composite
def _draw_message(draw, descriptor, real: dict):
    from google.protobuf import message_factory

    message = message_factory.GetMessageClass(descriptor)()
    chosen = {oneof.name: draw(st.sampled_from([None, *oneof.fields])) for oneof in descriptor.oneofs}
    for field in descriptor.fields:
        oneof = field.containing_oneof
        if oneof is not None and chosen[oneof.name] is not field:
            continue
        if oneof is None and not draw(st.booleans()):
            continue
        value = draw(_field(field, real))
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            getattr(message, field.name).update(value)
        elif field.is_repeated:
            target = getattr(message, field.name)
            for item in value:
                target.add().CopyFrom(item) if field.type == FieldDescriptor.TYPE_MESSAGE else target.append(item)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            getattr(message, field.name).CopyFrom(value)
        else:
            setattr(message, field.name, value)
    return message


def _message(descriptor, real: dict) -> st.SearchStrategy:
    return st.deferred(lambda: _draw_message(descriptor, real))


@pytest.fixture(scope="module")
def channel(service):
    options = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
    with grpc.insecure_channel(service.grpc_target, options=options) as ch:
        yield ch


@pytest.fixture(scope="module", autouse=True)
def grpc_report():
    yield
    if GRPC_OUTCOMES:
        summary = {
            rpc: {"cases": sum(c.values()), "codes": dict(sorted(c.items()))} for rpc, c in GRPC_OUTCOMES.items()
        }
        (_artifacts() / "fuzz_grpc.json").write_text(json.dumps(summary, indent=2))
        print("\ngRPC fuzzing:", json.dumps(summary))


def _call(channel, rpc: str, payload: bytes, key: str | None) -> grpc.StatusCode:
    """Send ``payload`` (a serialized request) raw to ``rpc``; the status code it answers with."""
    method = channel.unary_unary(f"/matconcept.v1.Matconcept/{rpc}")  # no serializer: bytes as they are
    metadata = [("authorization", f"Bearer {key}")] if key else []
    try:
        method(payload, metadata=metadata, timeout=120)
        code = grpc.StatusCode.OK
    except grpc.RpcError as exc:
        code = exc.code()
    GRPC_OUTCOMES.setdefault(rpc, Counter())[code.name] += 1
    return code


def _request_descriptor(rpc: str):
    from matconcept.service.app.rpc import matconcept_pb2 as pb

    return pb.DESCRIPTOR.services_by_name["Matconcept"].methods_by_name[rpc].input_type


@pytest.mark.parametrize("rpc", RPCS)
def test_generated_messages_get_documented_status_codes(channel, stored, rpc):
    real = _real_values()
    descriptor = _request_descriptor(rpc)

    @settings(
        max_examples=GRPC_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(message=_message(descriptor, real), key=st.sampled_from((API_KEY, None, "wrong")))
    def fuzz(message, key):
        code = _call(channel, rpc, message.SerializeToString(), key)
        assert code in DOCUMENTED, f"{rpc} answered {code.name} to {str(message)[:2000]}"

    fuzz()


INVALID_UTF8 = (b"\xff", b"\xc3\x28", b"\xe2\x82", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf")
"""Lone 0xFF, a bad continuation, a truncated sequence, an encoded surrogate, past U+10FFFF, overlong '/'."""


def _string_paths(descriptor, prefix=()) -> list[tuple[str, ...]]:
    """Every string field reachable in a request (through its message fields), as attribute paths."""
    out = []
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_STRING:
            out.append((*prefix, field.name))
        elif field.type == FieldDescriptor.TYPE_MESSAGE and not field.message_type.GetOptions().map_entry:
            if len(prefix) < 2:
                out.extend(_string_paths(field.message_type, (*prefix, field.name)))
        elif field.message_type is not None and field.message_type.GetOptions().map_entry:
            out.append((*prefix, field.name, "<map>"))
    return out


def _with_placeholder(rpc: str, path: tuple[str, ...], placeholder: str):
    from google.protobuf import message_factory

    message = message_factory.GetMessageClass(_request_descriptor(rpc))()
    target = message
    for i, name in enumerate(path[:-1]):
        field = target.DESCRIPTOR.fields_by_name[name]
        if path[i + 1] == "<map>":
            getattr(target, name)[placeholder] = placeholder
            return message
        target = getattr(target, name).add() if field.is_repeated else getattr(target, name)
    field = target.DESCRIPTOR.fields_by_name[path[-1]]
    if field.is_repeated:
        getattr(target, path[-1]).append(placeholder)
    else:
        setattr(target, path[-1], placeholder)
    return message


@pytest.mark.parametrize("rpc", [rpc for rpc in RPCS if _string_paths(_request_descriptor(rpc))])
def test_invalid_utf8_in_any_string_field_is_refused_cleanly(channel, stored, rpc):
    """Protobuf will not build such a message, so it is patched into serialized bytes and sent raw."""
    paths = _string_paths(_request_descriptor(rpc))
    for k, path in enumerate(paths):
        bad = INVALID_UTF8[k % len(INVALID_UTF8)]
        placeholder = "Q" * len(bad)
        payload = _with_placeholder(rpc, path, placeholder).SerializeToString()
        assert payload.count(placeholder.encode()) >= 1
        payload = payload.replace(placeholder.encode(), bad)
        code = _call(channel, rpc, payload, API_KEY)
        assert code in DOCUMENTED, f"{rpc} {'.'.join(path)} with {bad!r}: {code.name}"
    # Not a protobuf message at all, and a truncated one.
    for payload in (b"\xff" * 64, _with_placeholder(rpc, paths[0], "abcdef").SerializeToString()[:-3]):
        assert _call(channel, rpc, payload, API_KEY) in DOCUMENTED


def test_the_service_still_answers_after_the_fuzzing(service, channel, stored, cifs):
    from matconcept.service.client import MatconceptClient

    with MatconceptClient(service.grpc_target, api_key=API_KEY) as client:
        assert client.stats().count >= 1
        # schemathesis holds the key and deletes ids it read in answers (spread over the resources it saw), so
        # which stored materials survive depends on the generated sequence: store the first again, then read it.
        assert client.upsert(cifs[:1], source="cod").results[0].material_id == stored[0]
        assert client.get([stored[0]]).materials[0].material_id == stored[0]
    assert requests.get(f"{service.http_url}/healthz", timeout=30).status_code == 200
