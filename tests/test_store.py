"""The store on real parts: qdrant-edge on disk, payloads and vectors of real COD structures.

Filters are checked against the same predicate evaluated in Python over every stored payload, each
with a case where it must exclude something. The congruence test runs the same operations against a
Qdrant server when ``QDRANT_URL`` is set (``docker compose -f deploy/docker-compose.yml up qdrant``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable

import numpy as np
import pytest

from matconcept.service.store import (
    MaterialPayload,
    PointIn,
    SearchFilters,
    StoreLockedError,
    StoreSettings,
    open_store,
)
from matconcept.service.store.base import StoreError
from matconcept.service.store.edge import EdgeStore
from matconcept.service.store.payload import point_id

MODEL = "mc-test-store"


@pytest.fixture(scope="module")
def points(random_model) -> list[PointIn]:
    """Real points: the crystals package's COD CIFs, featurized and embedded by the random model."""
    from matconcept.encoders.builtin import crystals_cifs
    from matconcept.encoders.embedder import Embedder
    from matconcept.encoders.pipeline import featurize_entries
    from matconcept.encoders.sources import iter_entries
    from matconcept.service.ingest.local import label_entry, points_from_featurized

    entries = list(iter_entries(crystals_cifs()))
    labels = {e.name: label_entry(e, "cod") for e in entries}
    results = [r for r in featurize_entries(entries, workers=1) if r.error is None]
    unique = {labels[r.entry_name].material_id: r for r in results}  # gamma-Pu is shipped twice
    results = list(unique.values())
    out = points_from_featurized(results, [labels[r.entry_name] for r in results], Embedder(random_model, "cpu"))
    # Give a few a second source so the source filter has something to separate.
    for p in out[::7]:
        p.payload.source = "aflow"
    return out


@pytest.fixture
def store(tmp_path, points):
    with EdgeStore(tmp_path / "collection", MODEL, 1024) as s:
        s.upsert(points)
        yield s


def _ids(hits) -> set[str]:
    return {h.material_id for h in hits}


def test_upsert_get_count_and_idempotent_reupsert(store, points):
    assert store.count() == len(points)
    store.upsert(points[:5])  # same ids → replaced, not duplicated
    assert store.count() == len(points)
    assert sorted(store.iter_ids()) == sorted(p.payload.material_id for p in points)
    wanted = [points[3].payload.material_id, "cod:does-not-exist", points[0].payload.material_id]
    records = store.get(wanted, with_vectors=True)
    assert [r.material_id for r in records] == [wanted[0], wanted[2]]
    assert records[0].payload == points[3].payload
    np.testing.assert_allclose(records[0].vectors["crystal"], points[3].crystal, rtol=1e-6)
    np.testing.assert_allclose(records[0].vectors["xrd"], points[3].xrd, rtol=1e-6)
    assert store.get(wanted)[0].vectors is None
    hashes = store.content_hashes(wanted)
    assert hashes == {wanted[0]: points[3].payload.content_hash, wanted[2]: points[0].payload.content_hash}


def test_search_is_exact_euclidean_nearest_first(store, points):
    query = points[10].crystal
    hits = store.search(query, k=5)
    assert hits[0].material_id == points[10].payload.material_id and hits[0].distance < 1e-3
    distances = np.array([np.linalg.norm(p.crystal - query) for p in points])
    expected = [points[i].payload.material_id for i in np.argsort(distances)[:5]]
    assert [h.material_id for h in hits] == expected
    np.testing.assert_allclose([h.distance for h in hits], np.sort(distances)[:5], rtol=1e-4, atol=1e-4)
    xrd_hits = store.search(points[10].xrd, using="xrd", k=3, exact=True)
    assert xrd_hits[0].material_id == points[10].payload.material_id
    with pytest.raises(ValueError, match="dimensions"):
        store.search(np.zeros(7))
    with pytest.raises(ValueError, match="NaN"):
        store.search(np.full(1024, np.nan))
    with pytest.raises(ValueError, match="using"):
        store.search(query, using="graph")


FILTER_CASES: list[tuple[dict, Callable[[MaterialPayload], bool]]] = [
    ({"elements_all": ["O"]}, lambda p: "O" in p.elements),
    ({"elements_all": ["Ba", "o"]}, lambda p: {"Ba", "O"} <= set(p.elements)),
    ({"elements_none": ["O"]}, lambda p: "O" not in p.elements),
    ({"elements_none": "O,V"}, lambda p: not {"O", "V"} & set(p.elements)),
    ({"chemical_system": "O-V"}, lambda p: set(p.elements) == {"O", "V"}),
    ({"chemical_system": "Ti-O-Ba"}, lambda p: set(p.elements) == {"Ba", "O", "Ti"}),
    ({"spacegroup_number": 225}, lambda p: p.spacegroup_number == 225),
    ({"min_sites": 4}, lambda p: p.n_sites >= 4),
    ({"max_sites": 2}, lambda p: p.n_sites <= 2),
    ({"min_sites": 2, "max_sites": 6}, lambda p: 2 <= p.n_sites <= 6),
    ({"sources": ["aflow"]}, lambda p: p.source == "aflow"),
    (
        {"sources": ["cod"], "elements_all": ["O"], "max_sites": 12},
        lambda p: p.source == "cod" and "O" in p.elements and p.n_sites <= 12,
    ),
]


@pytest.mark.parametrize(("spec", "predicate"), FILTER_CASES, ids=[str(c[0]) for c in FILTER_CASES])
def test_each_filter_returns_only_matching_payloads(store, points, spec, predicate):
    filters = SearchFilters(**spec)
    expected = {p.payload.material_id for p in points if predicate(p.payload)}
    assert 0 < len(expected) < len(points), "the case must both match and exclude materials"
    hits = store.search(points[0].crystal, k=len(points), filters=filters, exact=True)
    assert _ids(hits) == expected
    assert all(predicate(h.payload) for h in hits)
    assert store.count(filters) == len(expected)
    top = store.search(points[0].crystal, k=3, filters=filters)
    assert _ids(top) <= expected and len(top) == min(3, len(expected))


def test_filter_validation_errors_name_the_field():
    with pytest.raises(ValueError, match="elements_all: 'Xx' is not an element"):
        SearchFilters(elements_all=["Xx"])
    with pytest.raises(ValueError, match="min_sites"):
        SearchFilters(min_sites=10, max_sites=2)
    with pytest.raises(ValueError, match="both required and excluded"):
        SearchFilters(elements_all=["O"], elements_none=["O"])
    with pytest.raises(ValueError, match="Extra inputs"):
        SearchFilters(element="O")
    assert SearchFilters(chemical_system="o-li-Co").chemical_system == "Co-Li-O"


def test_delete(store, points):
    ids = [p.payload.material_id for p in points[:3]]
    assert store.delete([*ids, "cod:missing"]) == 3
    assert store.count() == len(points) - 3
    assert store.get(ids) == []
    assert store.delete(ids) == 0


class _PayloadOfAnOlderVersion(MaterialPayload):
    """A payload as ingest wrote it before ``crystal_system`` was stored."""

    def model_dump(self, **kwargs):
        return {k: v for k, v in super().model_dump(**kwargs).items() if k != "crystal_system"}


def test_crystal_system_is_stored_at_ingest_and_derived_for_older_payloads(tmp_path, points):
    from matconcept.encoders.symmetry import crystal_system
    from matconcept.service.store.records import stored_crystal_system

    assert {p.payload.crystal_system for p in points} >= {"cubic", "hexagonal"}
    for p in points:
        assert p.payload.crystal_system == crystal_system(p.payload.spacegroup_number)
    old = [
        PointIn(payload=_PayloadOfAnOlderVersion(**p.payload.model_dump()), crystal=p.crystal, xrd=p.xrd)
        for p in points
    ]
    with EdgeStore(tmp_path / "old", MODEL) as s:
        s.upsert(old)
        raw = [payload for payloads, _ in s.scroll(["spacegroup_number", "crystal_system"]) for payload in payloads]
        assert raw and all("crystal_system" not in payload for payload in raw)  # really written without it
        expected = {p.payload.material_id: p.payload.crystal_system for p in points}
        assert {r["material_id"]: stored_crystal_system(r) for r in raw} == expected
        records = s.get(list(expected))
        assert {r.material_id: r.payload.crystal_system for r in records} == expected
    assert stored_crystal_system({"spacegroup_number": None}) is None
    assert stored_crystal_system({"spacegroup_number": 999}) is None  # lenient on read: never a failed load
    assert stored_crystal_system({"spacegroup_number": 1, "crystal_system": "triclinic"}) == "triclinic"


def test_reopen_keeps_points_and_indexes(tmp_path, points):
    directory = tmp_path / "c"
    with EdgeStore(directory, MODEL) as s:
        s.upsert(points)
    with EdgeStore(directory, MODEL) as s:
        assert s.count() == len(points)
        assert s.count(SearchFilters(elements_all=["O"])) == sum("O" in p.payload.elements for p in points)
    with pytest.raises(StoreError, match="holds vectors of model"):
        EdgeStore(directory, "mc-another-model")


def test_hnsw_after_optimize_matches_exact_search(store, points):
    store.optimize()
    for p in points[:5]:
        approx = store.search(p.crystal, k=10)
        exact = store.search(p.crystal, k=10, exact=True)
        assert [h.material_id for h in approx] == [h.material_id for h in exact]


def test_snapshot_and_restore(tmp_path, store, points):
    snap = store.snapshot(tmp_path / "snaps" / "store.tar.gz")
    assert snap.is_file() and snap.stat().st_size > 0
    store.delete([p.payload.material_id for p in points[:10]])
    assert store.count() == len(points) - 10
    store.restore(snap)
    assert store.count() == len(points)
    assert store.search(points[1].crystal, k=1)[0].material_id == points[1].payload.material_id
    moved = [p.payload.material_id for p in points[:10]]
    assert store.get_structures(moved) == {p.payload.material_id: p.structure for p in points[:10]}  # with the snapshot
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not a tar file")
    with pytest.raises(StoreError, match=r"bad\.tar\.gz"):
        store.restore(bad)
    assert store.count() == len(points)  # a failed restore changes nothing
    with EdgeStore(tmp_path / "other", "mc-other") as other, pytest.raises(StoreError, match="snapshot of model"):
        other.restore(snap)


def test_second_process_gets_a_clear_lock_error(tmp_path, store):
    code = textwrap.dedent(f"""
        from matconcept.service.store.edge import EdgeStore
        from matconcept.service.store import StoreLockedError
        try:
            EdgeStore({str(store.directory)!r}, {MODEL!r})
        except StoreLockedError as exc:
            print("LOCKED", exc)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert "LOCKED" in proc.stdout and "in use by another process" in proc.stdout, proc.stderr
    assert str(os.getpid()) in proc.stdout
    with pytest.raises(StoreLockedError):
        EdgeStore(store.directory, MODEL)


def test_point_ids_are_deterministic_uuid5():
    assert point_id("cod", "1000000") == point_id("cod", "1000000")
    assert point_id("cod", "1000000") != point_id("mp", "1000000")


def test_settings_and_open_store(tmp_path, monkeypatch, points):
    monkeypatch.setenv("MATCONCEPT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("QDRANT_URL", raising=False)
    settings = StoreSettings()
    assert settings.db_dir == tmp_path / "home" / "qdrant"
    with open_store(settings, MODEL) as s:
        assert s.engine == "qdrant-edge" and s.count() == 0
        s.upsert(points[:2])
    assert (settings.db_dir / f"matconcept-{MODEL}").is_dir()
    monkeypatch.setenv("QDRANT_URL", "http://qdrant.example:6333")
    assert StoreSettings().qdrant_url == "http://qdrant.example:6333"


@pytest.mark.skipif(not os.environ.get("QDRANT_URL"), reason="needs a Qdrant server (set QDRANT_URL)")
def test_remote_and_embedded_engines_agree(tmp_path, points):
    settings = StoreSettings(collection_prefix=f"matconcept-test-{os.getpid()}")
    remote = open_store(settings, MODEL)
    try:
        assert remote.engine == "qdrant-server"
        remote.upsert(points)
        with EdgeStore(tmp_path / "edge", MODEL) as edge:
            edge.upsert(points)
            assert remote.count() == edge.count() == len(points)
            for spec, _ in FILTER_CASES:
                f = SearchFilters(**spec)
                assert remote.count(f) == edge.count(f)
                a = remote.search(points[2].crystal, k=8, filters=f, exact=True)
                b = edge.search(points[2].crystal, k=8, filters=f, exact=True)
                assert [h.material_id for h in a] == [h.material_id for h in b]
            ids = [p.payload.material_id for p in points[:4]]
            assert remote.content_hashes(ids) == edge.content_hashes(ids)
            assert (
                remote.get_structures(ids)
                == edge.get_structures(ids)
                == {p.payload.material_id: p.structure for p in points[:4]}
            )
            assert remote.delete(ids) == edge.delete(ids) == 4
    finally:
        remote.client.delete_collection(remote.collection)
        remote.close()


class _PayloadSpy:
    """Wraps the qdrant-edge shard and records every payload it hands back."""

    def __init__(self, shard) -> None:
        self.shard, self.payloads = shard, []

    def __getattr__(self, name: str):
        return getattr(self.shard, name)

    def _seen(self, records):
        self.payloads.extend(dict(r.payload or {}) for r in records)
        return records

    def query(self, request):
        return self._seen(self.shard.query(request))

    def retrieve(self, *args, **kwargs):
        return self._seen(self.shard.retrieve(*args, **kwargs))

    def scroll(self, request):
        records, offset = self.shard.scroll(request)
        return self._seen(records), offset


def test_structures_are_kept_but_never_read_by_searches_gets_or_scrolls(store, points):
    from matconcept.encoders.builtin import crystals_cifs
    from matconcept.service.store.structures import STRUCTURE_FIELDS

    ids = [p.payload.material_id for p in points]
    spy = _PayloadSpy(store._shard)
    store._shard = spy
    try:
        for p in points[:5]:
            assert store.search(p.crystal, k=20, exact=True)
        assert len(store.get(ids)) == len(ids)
        assert sum(len(payloads) for payloads, _ in store.scroll(["formula"])) == len(ids)
    finally:
        store._shard = spy.shard
    assert len(spy.payloads) > 2 * len(ids)
    assert not [
        sorted(set(STRUCTURE_FIELDS) & set(payload)) for payload in spy.payloads if set(STRUCTURE_FIELDS) & set(payload)
    ]
    kept = store.get_structures([*ids, "cod:does-not-exist"])
    assert set(kept) == set(ids)
    files = {}
    for path in crystals_cifs():
        files.setdefault(path.name, set()).add(path.read_bytes())
    for p in points:
        stored = kept[p.payload.material_id]
        assert stored == p.structure and stored.original() in files[stored.original_name]
        assert stored.pymatgen().composition.reduced_formula == p.payload.formula
        assert len(stored.pymatgen()) == p.payload.n_sites


def test_every_stored_structure_downloads_as_a_matching_file(store, points):
    """Every stored material as CIF, JSON, POSCAR and its original file parses to the stored structure;
    a disordered one keeps its occupancies in CIF and has no POSCAR; missing files are clear errors."""
    from pymatgen.core import Lattice, Structure

    from matconcept.service.store.structures import StoredStructure, StructureUnavailable, render
    from tests.structure_match import matches

    kept = store.get_structures([p.payload.material_id for p in points])
    for material_id, stored in kept.items():
        structure = stored.pymatgen()
        cif = render(material_id, stored, "cif")
        assert cif.filename == material_id.replace(":", "_") + ".cif" and cif.media_type == "chemical/x-cif"
        assert matches(cif.content, "cif", structure), material_id
        assert matches(render(material_id, stored, "json").content, "json", structure)
        original = render(material_id, stored, "original")
        assert original.filename == stored.original_name and original.media_type == "chemical/x-cif"
        assert matches(original.content, "cif", structure), material_id  # the shipped CIF, as parsed at ingest
        assert matches(render(material_id, stored, "poscar").content, "poscar", structure)
    alloy = Structure(Lattice.cubic(3.6), [{"Fe": 0.5, "Ni": 0.5}, "Ni"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    disordered = StoredStructure.of(alloy)
    assert matches(render("user:alloy", disordered, "cif").content, "cif", alloy)  # occupancies kept
    with pytest.raises(StructureUnavailable, match="disordered") as info:
        render("user:alloy", disordered, "poscar")
    assert info.value.reason == "unsupported_format"
    with pytest.raises(StructureUnavailable, match="not read from a file"):
        render("aflow:x", disordered, "original")
    with pytest.raises(StructureUnavailable, match="ingest it again"):
        render("cod:1", None, "cif")
    with pytest.raises(ValueError, match="format must be one of"):
        render("cod:1", disordered, "xyz")


def test_a_point_without_a_structure_reads_back_as_none(tmp_path, points):
    """Points written before structures were kept (or by a caller that has none) still load."""
    bare = [PointIn(payload=p.payload, crystal=p.crystal, xrd=p.xrd) for p in points[:3]]
    with EdgeStore(tmp_path / "bare", MODEL) as s:
        s.upsert(bare)
        ids = [p.payload.material_id for p in bare]
        assert s.get_structures(ids) == dict.fromkeys(ids)
        assert [r.payload for r in s.get(ids)] == [p.payload for p in bare]


def test_structure_vector_and_hybrid_fusions(tmp_path, points, store):
    """A third named vector ``structure`` when the model has one; hybrid search by the engine's RRF (prefetch +
    fusion, the same scores as our rule) and by z-scored distances; a store without it says so."""
    from matconcept.service.store.hybrid import HybridOptions, rrf_fuse

    rng = np.random.default_rng(3)
    typed = [p.model_copy(update={"structure_type": rng.normal(size=16).astype(np.float32)}) for p in points]
    with EdgeStore(tmp_path / "typed", MODEL, 1024, structure_dim=16) as s:
        s.upsert(typed)
        assert s.sizes["structure"] == 16
        query = typed[4]
        mid = query.payload.material_id
        assert s.search(query.structure_type, using="structure", k=1)[0].material_id == mid
        vectors = {"crystal": query.crystal, "structure": query.structure_type}
        options = HybridOptions(fusion="rrf", structure_weight=0.5, depth=20)
        fused = s.hybrid_search(vectors, k=10, options=options)
        lists = {n: [(h.material_id, h.distance) for h in s.search(vectors[n], using=n, k=20)] for n in vectors}
        ours = {f.key: f.score for f in rrf_fuse(lists, options)}
        assert fused[0].material_id == mid and {h.fusion for h in fused} == {"rrf"}
        assert all(h.score == pytest.approx(ours[h.material_id], rel=1e-5) for h in fused)
        assert [h.score for h in fused] == sorted((h.score for h in fused), reverse=True)
        zscored = s.hybrid_search(vectors, k=10, options=HybridOptions(fusion="zscore", structure_weight=1.0))
        assert zscored[0].material_id == mid and {h.notion for h in zscored} == {"structure"}
        structure_only = [h.material_id for h in s.search(query.structure_type, using="structure", k=10)]
        assert [h.material_id for h in zscored] == structure_only  # all weight on one notion: its own order
        # the embedded engine scores the fusion's candidates itself: the distances Python computes from their vectors
        import uuid

        from matconcept.service.store.base import VectorStore
        from matconcept.service.store.payload import point_id_for

        # the embedded engine's point ids are UUID objects, kept as they come (the fusion's keys)
        union = [uuid.UUID(point_id_for(h.material_id)) for h in s.search(query.crystal, using="crystal", k=15)]
        for name in vectors:
            engine, python = (
                s._distances_to(union, name, vectors[name]),
                VectorStore._distances_to(s, union, name, vectors[name]),
            )
            assert set(engine) == set(union) == set(python)
            assert engine == pytest.approx(python, rel=1e-4, abs=1e-5)
        # a notion's own candidates keep their distances; only the others' are computed
        lists = {"crystal": [(p, 0.5) for p in union[:5]], "structure": [(p, 0.25) for p in union[3:9]]}
        both = s._distances(lists, vectors)
        assert set(both["crystal"]) == set(both["structure"]) == set(union[:9])
        assert [both["crystal"][p] for p in union[:5]] == [0.5] * 5
        assert both["structure"][union[0]] == pytest.approx(python[union[0]], rel=1e-4)
        page = next(s.scroll_raw(page=3))
        s.write_raw([(pl["material_id"], {**v, "structure": [0.0] * 16}, pl) for pl, v in page])
        again = {pl["material_id"]: (pl, v) for pl, v in next(s.scroll_raw(page=3))}
        assert all(again[pl["material_id"]][0] == pl for pl, _ in page)
        assert all(again[pl["material_id"]][1]["structure"] == [0.0] * 16 for pl, _ in page)
    with pytest.raises(StoreError, match="no structure vectors"):
        store.hybrid_search({"crystal": points[0].crystal, "structure": np.zeros(16)}, k=3)
    with pytest.raises(StoreError, match="no structure vectors"):
        store.search(np.zeros(16), using="structure")


def test_payload_density_is_pymatgens_float():
    """The payload's density is computed without pymatgen's unit objects and is the same float as
    ``Structure.density`` (ordered, disordered and oxidation-state-decorated cells)."""
    from matconcept.encoders.builtin import aflow_prototypes, cod_cif_files
    from matconcept.encoders.structure_io import read_structure
    from matconcept.service.store.payload import density

    structures = [read_structure(p.read_text(errors="replace"), name=p.name).structure for p in cod_cif_files()]
    structures += [a.structure for a in aflow_prototypes()[:40]]
    decorated = structures[0].copy()
    decorated.add_oxidation_state_by_guess()
    disordered = structures[1].copy()
    disordered.replace(0, {"Fe": 0.5, "Ni": 0.25})
    assert not disordered.is_ordered
    cells = [*structures, decorated, disordered]
    assert [density(s) for s in cells] == [s.density for s in cells]
