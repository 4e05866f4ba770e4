"""End to end: phase identification of measured-like patterns through the real service (HTTP and gRPC).

Real COD CIFs (shipped with ``crystals``) are stored through the Upsert RPC; each is then queried
with a measured-looking scan of itself (:func:`~matconcept.encoders.xrd.synthetic.simulate_measured`:
strain, zero shift, broadening, texture, background, Poisson noise) and must come first, with its
fitted strain and shift. Also: the "only these elements" filter (Cu among Cu and Ni, whose fcc
patterns differ by a 2.6 % cell and barely in intensities), a two-phase mixture, another wavelength
(an .xy at Mo Kα and an .xrdml upload), the embedding-only mode, and bad patterns named on both
ingresses.
"""

from __future__ import annotations

import numpy as np
import pytest
import requests

from matconcept.encoders.xrd import WAVELENGTHS, XRDSettings
from matconcept.encoders.xrd.synthetic import MeasuredConditions, random_conditions, simulate_measured
from tests.live_service import API_KEY

DISTINCT = (
    "BaTiO3_cubic.cif",
    "C.cif",
    "FeAs.cif",
    "GaAs.cif",
    "Mg.cif",
    "W.cif",
    "Si.cif",
    "SiC.cif",
    "Sn-beta.cif",
    "vo2-m1.cif",
    "vo2-rutile.cif",
    "S.cif",
    "Bi.cif",
    "Ga.cif",
    "In.cif",
    "Zn.cif",
    "U.cif",
)
"""Structures whose patterns differ beyond strain and texture: each must be found first."""
LOOKALIKES = ("Cu.cif", "Ni.cif")
"""Stored too: both fcc, Ni's cell 2.6 % smaller (inside the fitted ±3 %), form factors nearly equal:
a Cu pattern is told from Ni's by chemistry only (the elements filter)."""


@pytest.fixture(scope="module")
def service(serve_cluster, tmp_path_factory):
    return serve_cluster.deploy("phase_id_service", tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def client(service):
    from matconcept.service.client import MatconceptClient

    with MatconceptClient(service.grpc_target, api_key=API_KEY) as c:
        yield c


@pytest.fixture(scope="module")
def stored(client) -> dict[str, tuple[str, object]]:
    """file name → (material id, structure), stored through the Upsert RPC."""
    from matconcept.encoders.builtin import crystals_cifs
    from matconcept.encoders.structure_io import read_structure

    paths = {p.name: p for p in crystals_cifs()}
    chosen = [paths[name] for name in (*DISTINCT, *LOOKALIKES)]
    result = client.upsert(chosen, source="cod")
    assert result.failed == 0, result
    return {p.name: (r.material_id, read_structure(p).structure) for r, p in zip(result.results, chosen, strict=True)}


def _xy(two_theta: np.ndarray, counts: np.ndarray) -> bytes:
    return "\n".join(f"{t:.4f} {c:.0f}" for t, c in zip(two_theta, counts, strict=True)).encode()


def test_each_structure_is_identified_first_over_grpc(client, stored):
    rng = np.random.default_rng(12)
    for name in DISTINCT:
        material_id, structure = stored[name]
        conditions = random_conditions(rng)
        two_theta, counts = simulate_measured(structure, conditions, rng=rng)
        result = client.search(pattern=(two_theta, counts), top_k=5)
        best = result.hits[0]
        assert best.material_id == material_id, (name, conditions, [(h.material_id, h.match) for h in result.hits])
        assert best.match is not None and best.match.score > 0.6  # texture down to r = 0.7 costs score
        assert best.match.strain == pytest.approx(conditions.strain, abs=3e-3)
        assert best.distance >= 0  # the embedding distance stays beside the match
        assert result.pattern is not None and result.pattern.candidates >= len(stored) - 1
        assert result.pattern.fwhm == pytest.approx(conditions.fwhm, rel=0.3)
        scores = [h.match.score for h in result.hits]
        assert scores == sorted(scores, reverse=True)


def test_each_structure_is_identified_first_over_http(service, stored):
    rng = np.random.default_rng(34)
    for name in DISTINCT[:8]:
        material_id, structure = stored[name]
        two_theta, counts = simulate_measured(structure, random_conditions(rng), rng=rng)
        query = {"pattern": {"two_theta": two_theta.tolist(), "intensity": counts.tolist()}, "top_k": 3}
        r = requests.post(f"{service.http_url}/v1/search", json=query, timeout=60)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["hits"][0]["material_id"] == material_id
        assert set(body["hits"][0]["match"]) == {"score", "strain", "shift"}
        assert body["phases"][0]["material_id"] == material_id


def test_only_these_elements(client, stored):
    cu, structure = stored["Cu.cif"]
    ni, _ = stored["Ni.cif"]
    conditions = MeasuredConditions(strain=0.004, zero_shift=0.03, fwhm=0.15, noise=0.02, background=0.05, texture=0.8)
    pattern = simulate_measured(structure, conditions, rng=5)
    plain = client.search(pattern=pattern, top_k=5)
    assert {h.material_id for h in plain.hits[:2]} == {cu, ni}  # the look-alikes lead, in either order
    only = client.search(pattern=pattern, top_k=5, filters={"elements_only": ["Cu", "O", "Ba", "Ti"]})
    assert only.hits[0].material_id == cu
    assert all(set(h.payload.elements) <= {"Cu", "O", "Ba", "Ti"} for h in only.hits)
    assert ni not in {h.material_id for h in only.hits}


def test_two_phase_mixture(client, stored):
    batio3, a = stored["BaTiO3_cubic.cif"]
    silicon, b = stored["Si.cif"]
    conditions = MeasuredConditions(strain=-0.006, zero_shift=0.05, fwhm=0.12, noise=0.02, background=0.08)
    pattern = simulate_measured([a, b], conditions, fractions=[1.0, 0.6], rng=8)
    result = client.search(pattern=pattern, top_k=5)
    assert {p.material_id for p in result.phases} == {batio3, silicon}
    assert sum(p.weight for p in result.phases) <= 1.0 + 1e-6
    assert {batio3, silicon} <= {h.material_id for h in result.hits}
    single = client.search(pattern=pattern, top_k=5, pattern_options={"max_phases": 1})
    assert single.phases == []


def test_other_wavelengths_and_files(service, client, stored, tmp_path):
    from tests.test_measured_input import _xrdml

    material_id, structure = stored["BaTiO3_cubic.cif"]
    mo = XRDSettings(wavelength=WAVELENGTHS["MoKa"], two_theta_min=4.0, two_theta_max=50.0, step=0.01)
    two_theta, counts = simulate_measured(structure, MeasuredConditions(fwhm=0.08, noise=0.02), settings=mo, rng=2)
    assert client.search(pattern=(two_theta, counts), wavelength="Mo", top_k=3).hits[0].material_id == material_id
    upload = {"file": ("scan_mo.xy", _xy(two_theta, counts))}
    r = requests.post(f"{service.http_url}/v1/search", files=upload, data={"wavelength": "Mo"}, timeout=60)
    assert r.status_code == 200 and r.json()["hits"][0]["material_id"] == material_id, r.text
    xrdml = tmp_path / "scan.xrdml"  # states its own wavelength (Mo Kα)
    xrdml.write_text(_xrdml(two_theta, counts))
    assert client.search(pattern=xrdml, top_k=3).hits[0].material_id == material_id
    r = requests.post(f"{service.http_url}/v1/search", files={"file": ("scan.xrdml", xrdml.read_bytes())}, timeout=60)
    assert r.status_code == 200 and r.json()["hits"][0]["material_id"] == material_id, r.text


def test_embedding_only_mode_keeps_the_old_search(client, stored):
    _, structure = stored["Si.cif"]
    pattern = simulate_measured(structure, MeasuredConditions(fwhm=0.1), rng=1)
    result = client.search(pattern=pattern, top_k=3, using="xrd", pattern_options={"rerank": False})
    assert result.pattern is None and result.phases == []
    assert all(h.match is None for h in result.hits)
    distances = [h.distance for h in result.hits]
    assert distances == sorted(distances)


@pytest.mark.parametrize(
    ("two_theta", "intensity", "reason"),
    [
        (np.linspace(10, 80, 10), np.ones(10), "only 10 points"),
        (np.linspace(10, 80, 500), np.zeros(500), "all intensities are zero"),
        (np.linspace(0, 80, 500), np.ones(500), "2θ must lie between 0° and 180°"),
        (np.linspace(10, 80, 500), np.ones(500), "no peaks above its background"),
    ],
)
def test_bad_patterns_are_named_on_both_ingresses(service, client, stored, two_theta, intensity, reason):
    from matconcept.service.client import MatconceptError

    with pytest.raises(MatconceptError, match=reason) as info:
        client.search(pattern=(two_theta, intensity))
    assert info.value.code.name == "INVALID_ARGUMENT" and "bad_pattern" in info.value.message
    query = {"pattern": {"two_theta": two_theta.tolist(), "intensity": intensity.tolist()}}
    r = requests.post(f"{service.http_url}/v1/search", json=query, timeout=60)
    assert r.status_code == 400 and reason in r.json()["error"]["message"], r.text


def test_unknown_wavelength_is_named(service, client, stored):
    from matconcept.service.client import MatconceptError

    _, structure = stored["Si.cif"]
    two_theta, counts = simulate_measured(structure, MeasuredConditions(fwhm=0.1), rng=1)
    with pytest.raises(MatconceptError, match="unknown wavelength 'Zn'"):
        client.search(pattern=(two_theta, counts), wavelength="Zn")
    query = {"pattern": {"two_theta": two_theta.tolist(), "intensity": counts.tolist()}}
    r = requests.post(
        f"{service.http_url}/v1/search", json={**query, "pattern_options": {"wavelength": "Zn"}}, timeout=60
    )
    assert r.status_code == 400 and "unknown wavelength" in r.json()["error"]["message"], r.text
