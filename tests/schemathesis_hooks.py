"""Schemathesis hooks for :mod:`tests.test_fuzz_http`: what the OpenAPI document cannot say, filled in.

The document states every type, range, enum, pattern and cap of the running service (``top_k`` up to
its ``max_top_k``, a vector of exactly the model's dimension, element symbols, material-id shape).
What no JSON schema can state is meaning and relations between fields:

* a structure's ``content`` must *be* a structure file (CIF, pymatgen JSON or POSCAR, as ``format`` says),
  and an uploaded ``file`` a structure or a two-column pattern (as ``kind`` says);
* a pattern's ``two_theta`` and ``intensity`` have the same length, ``two_theta`` is monotonic and at
  least a few points long, and some intensity is positive;
* a wavelength names an anode or a number of Å in range;
* a query gives exactly one of structure / pattern / material_id / vector (embed and map: structure
  or pattern), and ``pattern_options`` goes with a pattern only;
* filters: an element is not both required and excluded, ``elements_only`` holds the required
  elements, ``min_sites`` ≤ ``max_sites``.

For the *positive* cases only (data the schema calls valid, which the ``positive_data_acceptance``
check holds the service to accepting), :func:`map_case` replaces exactly these by real ones — rock
salt as CIF/JSON/POSCAR, its simulated powder pattern — and leaves every other generated value as it
was (``top_k``, ``using``, ``exact``, names, ids, tags, sources, ranges...). Negative cases and the
``not_a_server_error`` / schema-conformance checks see the generator's data untouched.

Loaded by the schemathesis CLI through ``SCHEMATHESIS_HOOKS=tests.schemathesis_hooks``.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import schemathesis
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation

QUERY_FIELDS = {
    "/v1/search": ("structure", "pattern", "material_id", "vector"),
    "/v1/embed": ("structure", "pattern"),
    "/v1/map/place": ("structure", "pattern"),
}
"""Routes whose JSON body takes exactly one of these query fields."""
WAVELENGTHS = ("Cu", "Mo", "Co Ka1", "1.5406", "0.7293")


@cache
def _files() -> dict[str, str]:
    """Rock salt as each structure format, and its simulated measured pattern as two-column text."""
    from pymatgen.core import Structure
    from pymatgen.io.vasp import Poscar

    from matconcept.encoders.xrd.synthetic import MeasuredConditions, simulate_measured
    from matconcept.service.app.openapi import NACL_CIF

    nacl = Structure.from_str(NACL_CIF, fmt="cif")
    two_theta, counts = simulate_measured(nacl, MeasuredConditions(noise=0.02, background=0.05), rng=0)
    step = max(1, len(two_theta) // 1000)  # ~1000 points: a real scan's size, a small request
    two_theta, counts = two_theta[::step], counts[::step]
    return {
        "cif": NACL_CIF,
        "json": json.dumps(nacl.as_dict()),
        "poscar": Poscar(nacl).get_str(),
        "xy": "\n".join(f"{t:.4f} {c:.2f}" for t, c in zip(two_theta, counts, strict=True)),
        "pattern": json.dumps({"two_theta": [round(float(t), 4) for t in two_theta], "intensity": counts.tolist()}),
    }


def _structure(value: Any) -> Any:
    if isinstance(value, dict) and "content" in value:
        value["content"] = _files()[value.get("format") or "cif"]
    return value


def _options(value: Any) -> Any:
    if isinstance(value, dict) and value.get("wavelength") not in (None, ""):
        value["wavelength"] = WAVELENGTHS[len(str(value["wavelength"])) % len(WAVELENGTHS)]
    return value


def _filters(value: Any) -> Any:
    """Make the cross-field rules of SearchFilters hold, keeping what was generated where it can."""
    if not isinstance(value, dict):
        return value
    required = set(value.get("elements_all") or [])
    if value.get("elements_none"):
        value["elements_none"] = [e for e in value["elements_none"] if e not in required]
    if value.get("elements_only"):
        system = set((value.get("chemical_system") or "").split("-")) - {""}
        value["elements_only"] = sorted(set(value["elements_only"]) | required | system)
    low, high = value.get("min_sites"), value.get("max_sites")
    if low is not None and high is not None and low > high:
        value["min_sites"], value["max_sites"] = high, low
    return value


def _vector_size(case) -> int | None:
    """The model's vector size as the service's document states it (``SearchQuery.vector``'s length)."""
    try:
        vector = case.operation.schema.raw_schema["components"]["schemas"]["SearchQuery"]["properties"]["vector"]
        return int(next(b for b in vector["anyOf"] if b.get("type") == "array")["minItems"])
    except (AttributeError, KeyError, StopIteration, TypeError, ValueError):
        return None


def _json_body(path: str, body: dict, dim: int | None) -> dict:
    if path == "/v1/materials" and isinstance(body.get("items"), list):
        for item in body["items"]:
            if isinstance(item, dict):
                _structure(item.get("structure"))
        return body
    if path == "/v1/pattern":
        _structure(body.get("structure"))
        return body
    fields = QUERY_FIELDS.get(path)
    if fields is None:
        return body
    given = [f for f in fields if body.get(f) is not None]
    # No query given (the coverage phase varies one other field at a time): the cheapest query, a vector
    # (search) or a pattern (map); a structure costs the embedder ~0.5 s and there are hundreds of these.
    keep = given[0] if given else "vector" if "vector" in fields and dim else "pattern"
    if path == "/v1/search":
        # The notions' relations, which the schema cannot state: hybrid options go with using hybrid only,
        # and the structure notion (alone or fused) needs a structure query, not a pattern or a crystal-sized vector.
        if body.get("using") != "hybrid":
            body.pop("hybrid", None)
        if body.get("using") in ("structure", "hybrid") and keep in ("pattern", "vector"):
            keep = "structure"
    for field in fields:
        if field != keep:
            body.pop(field, None)
    if keep == "structure":
        body["structure"] = _structure(body.get("structure") or {"content": "", "name": "NaCl.cif"})
    elif keep == "pattern":
        body["pattern"] = json.loads(_files()["pattern"])
    elif keep == "vector" and not given:
        body["vector"] = [1.0 / dim**0.5] * dim
    if keep != "pattern":
        body.pop("pattern_options", None)
    _options(body.get("pattern_options"))
    _filters(body.get("filters"))
    return body


def _form_body(body: dict) -> dict:
    if "using" in body:  # a search form: the same notion relations as a JSON search
        if body.get("using") != "hybrid":
            body.pop("hybrid", None)
        if body.get("using") in ("structure", "hybrid"):
            body["kind"] = "structure"
    pattern = body.get("kind") == "pattern"
    body["file"] = _files()["xy" if pattern else "cif"].encode()
    if body.get("wavelength") is not None:
        body["wavelength"] = WAVELENGTHS[len(str(body["wavelength"])) % len(WAVELENGTHS)]
    for name, repair in (("filters", _filters), ("pattern_options", _options)):
        if isinstance(body.get(name), dict):
            body[name] = repair(body[name])
    return body


@schemathesis.hook
def map_case(context, case):
    """Positive cases: real files and patterns where the schema only says "string" or "array"."""
    meta = case.meta
    if meta is None or meta.generation.mode is not GenerationMode.POSITIVE or not isinstance(case.body, dict):
        return case
    if (case.media_type or "").startswith("multipart/"):
        case.body = _form_body(case.body)
        # Schemathesis revalidates a body a hook changed, and counts any body holding bytes (the file) as
        # invalid; the form stays valid here (only the file, wavelength and JSON parts' relations change).
        meta.update_validated_hash(ParameterLocation.BODY, case._hash_container(case.body))
    else:
        case.body = _json_body(case.path, case.body, _vector_size(case))
    return case
