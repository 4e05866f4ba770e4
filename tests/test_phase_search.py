"""The service's pattern-search physics (matconcept.service.app.phase_search, service.store.peaks), without Ray.

Real structures (AFLOW prototypes, cubic BaTiO3 from its COD CIF) and measured-like scans of them.
"""

from __future__ import annotations

import numpy as np
import pytest

from matconcept.encoders.builtin import aflow_prototypes
from matconcept.encoders.errors import StructureInputError
from matconcept.encoders.xrd.fingerprint import FINGERPRINT_DIM
from matconcept.encoders.xrd.synthetic import MeasuredConditions, simulate_measured
from matconcept.service.app.phase_search import Candidate, PatternSearchOptions, prepare, rank
from matconcept.service.store.peaks import FINGERPRINT_DIM as STORE_FINGERPRINT_DIM
from matconcept.service.store.peaks import (
    PEAKS_D,
    PEAKS_I,
    peaks_for,
    peaks_from_payload,
    peaks_payload,
    phase_features,
)

WANTED = ("AB_cF8_225_a_b", "A_hP2_194_c")
"""Rock salt and hcp Mg: the query's phases, among 60 other prototypes."""


@pytest.fixture(scope="module")
def candidates() -> list[tuple[str, object]]:
    protos = aflow_prototypes()
    chosen = [p for p in protos if p.source_id in WANTED] + [p for p in protos[:60] if p.source_id not in WANTED]
    return [(f"aflow:{p.source_id}", p.structure) for p in chosen]


def _candidates(structures) -> list[Candidate]:
    out = []
    for material_id, structure in structures:
        payload = peaks_payload(phase_features(structure)[0])
        out.append(Candidate(material_id, peaks_from_payload(payload)))
    return out


def test_peaks_round_trip_through_a_payload(batio3):
    peaks, fingerprint = phase_features(batio3)
    payload = peaks_payload(peaks)
    assert set(payload) == {PEAKS_D, PEAKS_I} and all(isinstance(v, float) for v in payload[PEAKS_D])
    back = peaks_from_payload(payload)
    assert back.d == pytest.approx(peaks.d, abs=1e-5) and back.intensity == pytest.approx(peaks.intensity, abs=1e-5)
    assert fingerprint.shape == (FINGERPRINT_DIM,) == (STORE_FINGERPRINT_DIM,)  # the store's copy agrees
    assert peaks_from_payload({"formula": "x"}) is None
    assert peaks_for({}, batio3).d == pytest.approx(peaks.d)  # an older point: simulated from its structure
    assert peaks_for({}, None) is None


def test_rank_orders_by_match_and_finds_a_mixture(candidates, batio3):
    names = [name for name, _ in candidates]
    target = names.index("aflow:AB_cF8_225_a_b")
    conditions = MeasuredConditions(strain=0.012, zero_shift=-0.05, fwhm=0.15, noise=0.02, background=0.08)
    two_theta, counts = simulate_measured(candidates[target][1], conditions, rng=1)
    options = PatternSearchOptions()
    query = prepare(two_theta.tolist(), counts.tolist(), options, "scan.xy")
    pool = [*_candidates(candidates), Candidate("user:nopeaks", None)]
    ranking = rank(query, pool, options)
    assert ranking.order[0] == "aflow:AB_cF8_225_a_b" and ranking.order[-1] == "user:nopeaks"
    best = ranking.matches["aflow:AB_cF8_225_a_b"]
    assert (
        best.score > 0.9
        and best.strain == pytest.approx(0.012, abs=1e-3)
        and best.shift == pytest.approx(-0.05, abs=0.04)
    )
    assert [p.material_id for p in ranking.phases] == ["aflow:AB_cF8_225_a_b"]
    assert ranking.fwhm == pytest.approx(0.15, rel=0.15) and ranking.fwhm_estimated

    second = names.index("aflow:A_hP2_194_c")
    mixture = simulate_measured([candidates[target][1], candidates[second][1]], conditions, fractions=[1.0, 0.7], rng=2)
    query = prepare(mixture[0].tolist(), mixture[1].tolist(), options, "mixture.xy")
    phases = rank(query, pool, options).phases
    assert {p.material_id for p in phases} == {"aflow:AB_cF8_225_a_b", "aflow:A_hP2_194_c"}
    single = rank(query, pool, PatternSearchOptions(max_phases=1))
    assert single.phases == [] and single.residual is None


def test_prepare_names_bad_input():
    x = np.linspace(10, 80, 500)
    options = PatternSearchOptions(wavelength="Mo")
    with pytest.raises(StructureInputError, match=r"scan\.xy: all intensities are zero"):
        prepare(x.tolist(), [0.0] * 500, options, "scan.xy")
    with pytest.raises(StructureInputError, match="unknown wavelength"):
        prepare(x.tolist(), [1.0] * 500, PatternSearchOptions(wavelength="Zn"), "scan.xy")
    with pytest.raises(StructureInputError, match="no peaks"):
        prepare(x.tolist(), [1.0] * 500, PatternSearchOptions(), "flat.xy")


# -- the "only these elements" filter, on the embedded engine ----------------------------------------
def test_elements_only_keeps_subsets_of_the_set(tmp_path, random_model):
    from matconcept.encoders.structure_io import from_structure
    from matconcept.service.app import convert
    from matconcept.service.store.edge import EdgeStore
    from matconcept.service.store.payload import payload_from_parsed
    from matconcept.service.store.records import PointIn, SearchFilters

    chosen = {p.source_id: p.structure for p in aflow_prototypes()[:40]}
    points = []
    for source_id, structure in chosen.items():
        parsed = from_structure(structure, source_id)
        vector = np.random.default_rng(len(points)).normal(size=8).astype(np.float32)
        points.append(PointIn(payload=payload_from_parsed(parsed, "aflow", source_id, "h"), crystal=vector, xrd=vector))
    with EdgeStore(tmp_path / "store", "mc-test", 8) as store:
        store.upsert(points)
        allowed = {"Na", "Cl", "Cu", "Au", "O"}
        filters = SearchFilters(elements_only=sorted(allowed))
        hits = store.search(np.ones(8, dtype=np.float32), using="crystal", k=40, filters=filters, exact=True)
        expected = {p.payload.material_id for p in points if set(p.payload.elements) <= allowed}
        assert expected and {h.material_id for h in hits} == expected
        assert store.count(filters) == len(expected)
        both = SearchFilters(elements_only=["Na", "Cl", "Cu"], elements_all=["Cu"])
        assert all("Cu" in h.payload.elements for h in store.search(np.ones(8), using="crystal", k=40, filters=both))
    assert convert.filters_from_pb(convert.filters_to_pb(filters)) == filters
    with pytest.raises(ValueError, match=r"\['Fe'\] are required but not among elements_only"):
        SearchFilters(elements_only=["O"], elements_all=["Fe"])
    with pytest.raises(ValueError, match="elements_only: 'Xx' is not an element symbol"):
        SearchFilters(elements_only="Na,Xx")


def test_points_keep_peaks_and_fingerprint_searchable(tmp_path, batio3):
    """Ingest stores each point's peak list (payload, never in a hit) and fingerprint (a named vector)."""
    from matconcept.encoders.structure_io import from_structure
    from matconcept.encoders.xrd.fingerprint import query_fingerprint
    from matconcept.encoders.xrd.match import prepare_query
    from matconcept.encoders.xrd.measured import measured_on_grid
    from matconcept.service.store.edge import EdgeStore
    from matconcept.service.store.payload import payload_from_parsed
    from matconcept.service.store.peaks import FINGERPRINT, PhaseFeatures
    from matconcept.service.store.records import PointIn

    structures = {p.source_id: p.structure for p in aflow_prototypes()[:30]}
    structures["BaTiO3"] = batio3
    points = []
    for i, (source_id, structure) in enumerate(structures.items()):
        payload = payload_from_parsed(from_structure(structure, source_id), "aflow", source_id, "h")
        vector = np.random.default_rng(i).normal(size=8).astype(np.float32)
        points.append(PointIn(payload=payload, crystal=vector, xrd=vector, phase=PhaseFeatures.of(structure)))
    with EdgeStore(tmp_path / "store", "mc-test", 8) as store:
        assert store.has_vector(FINGERPRINT)
        store.upsert(points)
        conditions = MeasuredConditions(strain=-0.01, fwhm=0.1, noise=0.02, background=0.05)
        on_grid = measured_on_grid(*simulate_measured(batio3, conditions, rng=3))
        query = prepare_query(on_grid.pattern, covered=on_grid.covered)
        hits = store.search(query_fingerprint(query), using=FINGERPRINT, k=5)
        assert hits[0].material_id == "aflow:BaTiO3"
        assert "peaks_d" not in hits[0].payload.model_dump() and hits[0].match is None
        peaks = store.get_peaks(["aflow:BaTiO3", "aflow:missing"])
        assert list(peaks) == ["aflow:BaTiO3"] and peaks["aflow:BaTiO3"].d[0] == pytest.approx(4.0, rel=0.01)
        with pytest.raises(ValueError, match="using must be one of"):
            store.search(np.ones(8), using="peaks", k=1)


def test_a_store_made_before_fingerprints_keeps_working(tmp_path, monkeypatch, batio3):
    """Its shard has two vectors: points are written without the fingerprint, a fingerprint search
    is refused by name, and peak lists are simulated from the stored structure."""
    from matconcept.encoders.structure_io import from_structure
    from matconcept.service.store import edge
    from matconcept.service.store.base import StoreError
    from matconcept.service.store.payload import payload_from_parsed
    from matconcept.service.store.peaks import FINGERPRINT, PhaseFeatures
    from matconcept.service.store.records import PointIn
    from matconcept.service.store.structures import StoredStructure

    with monkeypatch.context() as patch:
        patch.setattr(edge, "vector_sizes", lambda dim, structure_dim=None: {"crystal": dim, "xrd": dim})
        with edge.EdgeStore(tmp_path / "old", "mc-test", 8):
            pass
    payload = payload_from_parsed(from_structure(batio3, "BaTiO3"), "user", "BaTiO3", "h")
    vector = np.ones(8, dtype=np.float32)
    with edge.EdgeStore(tmp_path / "old", "mc-test", 8) as store:
        assert not store.has_vector(FINGERPRINT)
        store.upsert([PointIn(payload=payload, crystal=vector, xrd=vector, phase=PhaseFeatures.of(batio3))])
        assert store.search(vector, using="xrd", k=1)[0].material_id == "user:BaTiO3"
        with pytest.raises(StoreError, match="keeps no fingerprint vectors"):
            store.search(np.ones(FINGERPRINT_DIM), using=FINGERPRINT, k=1)
        older = PointIn(payload=payload, crystal=vector, xrd=vector, structure=StoredStructure.of(batio3))
        store.upsert([older])  # an older point: no peak list, but its structure
        assert store.get_peaks(["user:BaTiO3"])["user:BaTiO3"].d[0] == pytest.approx(4.0, rel=0.01)


def test_rank_fits_texture_from_stored_structures_of_the_best_few(candidates):
    """A textured scan (c-axis plates of hcp Mg): with the stored structures the best few are fitted
    with a texture, read from the store for those few only; a candidate stored without its structure
    (an older point) turns the fit off for all, so every candidate is scored alike."""
    from matconcept.service.store.structures import StoredStructure

    stored = {name: StoredStructure.of(structure) for name, structure in candidates}
    asked: list[list[str]] = []

    def reader(ids: list[str]):
        asked.append(list(ids))
        return {m: stored.get(m) for m in ids}

    hcp = dict(candidates)["aflow:A_hP2_194_c"]
    conditions = MeasuredConditions(strain=-0.008, fwhm=0.12, noise=0.01, texture=0.6, texture_axis=(0, 0, 1))
    two_theta, counts = simulate_measured(hcp, conditions, rng=3)
    options = PatternSearchOptions(max_phases=1)
    query = prepare(two_theta.tolist(), counts.tolist(), options, "plates.xy")
    pool = _candidates(candidates)
    plain = rank(query, pool, options)
    textured = rank(query, pool, options, reader)
    assert textured.order[0] == plain.order[0] == "aflow:A_hP2_194_c"
    assert len(asked) == 1 and "aflow:A_hP2_194_c" in asked[0] and len(asked[0]) <= 8
    assert textured.matches["aflow:A_hP2_194_c"].score > plain.matches["aflow:A_hP2_194_c"].score + 0.01

    del stored["aflow:A_hP2_194_c"]  # stored before structures were kept
    again = rank(query, pool, options, reader)
    assert again.matches == plain.matches and again.order == plain.order
