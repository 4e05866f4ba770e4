"""The materials map: layouts of real embeddings, placement, storage on disk, and ``matconcept map``.

The store holds the ``crystals`` package's real COD CIFs embedded by the shipped model (what a
user's first store looks like); the layout is openTSNE on the real vectors.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from matconcept.encoders.builtin import crystals_cifs
from matconcept.encoders.symmetry import crystal_system
from matconcept.service.cli import main
from matconcept.service.map.keeper import MapKeeper
from matconcept.service.map.layout import MIN_POINTS, LayoutError, LayoutParams, compute_layout
from matconcept.service.map.storage import CURRENT, LayoutStore


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """(settings, embedder, ids, crystal vectors) of a store holding every crystals CIF."""
    from matconcept.encoders.checkpoint import resolve_model
    from matconcept.encoders.embedder import Embedder
    from matconcept.service.ingest.local import ingest
    from matconcept.service.map.keeper import read_vectors
    from matconcept.service.store import StoreSettings, open_store

    root = tmp_path_factory.mktemp("map")
    embedder = Embedder(resolve_model(None, "cpu"), device="cpu")
    settings = StoreSettings(db=root / "db", home=root / "home")
    with open_store(settings, embedder.model_id) as store:
        ingest(crystals_cifs(), store, embedder, source="cod", workers=1, progress=False)
        ids, vectors = read_vectors(store, "crystal")
    return settings, embedder, ids, vectors


@pytest.fixture(scope="module")
def layout(embedded):
    _, embedder, ids, vectors = embedded
    return compute_layout(ids, vectors, embedder.model_id, LayoutParams(n_iter=300))


def _extent(coords: np.ndarray) -> float:
    return float(np.linalg.norm(coords.max(axis=0) - coords.min(axis=0)))


def test_layout_keeps_neighbours_and_places_stored_vectors_back_home(embedded, layout):
    _, _, ids, vectors = embedded
    assert layout.coords.shape == (len(ids), 2) and np.all(np.isfinite(layout.coords))
    assert 0.5 < layout.info.pca_variance <= 1.0
    # Neighbourhoods survive: a point's nearest 2-D neighbour is among its 10 nearest in 1024-d far
    # more often than chance (10 / n).
    d_high = np.linalg.norm(vectors[:, None] - vectors[None], axis=-1)
    d_low = np.linalg.norm(layout.coords[:, None] - layout.coords[None], axis=-1)
    np.fill_diagonal(d_high, np.inf)
    np.fill_diagonal(d_low, np.inf)
    high10 = np.argsort(d_high, axis=1)[:, :10]
    low1 = np.argmin(d_low, axis=1)
    kept = np.mean([low1[i] in high10[i] for i in range(len(ids))])
    assert kept > 0.5, kept
    # A stored vector placed again lands on its own fitted position; the layout does not move.
    before = layout.coords.copy()
    assert np.array_equal(layout.place(vectors[:15]), layout.coords[:15])
    assert np.array_equal(layout.coords, before)
    # Nudged a little (beyond "the same material"), it is optimised into place next to it.
    rng = np.random.default_rng(0)
    nudged = vectors[:15] + rng.normal(scale=0.01 * vectors.std(), size=vectors[:15].shape).astype(np.float32)
    moved = np.linalg.norm(layout.place(nudged) - layout.coords[:15], axis=1)
    assert np.all(moved > 0) and np.median(moved) < 0.05 * _extent(layout.coords), moved


def test_a_strained_copy_is_placed_near_its_original(embedded, layout):
    from matconcept.encoders.structure_io import read_structure

    _, embedder, _, vectors = embedded
    structure = read_structure(crystals_cifs()[0]).structure.copy()
    structure.apply_strain(0.01)
    crystal, _ = embedder.embed_structures([structure])
    (xy,) = layout.place(crystal)
    nearest = int(np.argmin(np.linalg.norm(vectors - crystal[0], axis=1)))
    assert np.linalg.norm(xy - layout.coords[nearest]) < 0.1 * _extent(layout.coords)


def test_bad_layout_inputs_are_refused_with_a_reason(embedded):
    _, embedder, ids, vectors = embedded
    with pytest.raises(LayoutError, match=f"at least {MIN_POINTS} stored materials"):
        compute_layout(ids[:3], vectors[:3], embedder.model_id)
    with pytest.raises(LayoutError, match="ids but vectors"):
        compute_layout(ids[:10], vectors[:9], embedder.model_id)
    bad = vectors[:10].copy()
    bad[3, 7] = np.nan
    with pytest.raises(LayoutError, match="NaN"):
        compute_layout(ids[:10], bad, embedder.model_id)


def test_layout_threads_never_exceed_the_cores():
    """``n_jobs`` is an API field (up to 1024): 1024 OpenMP threads on 2 cores made a layout ~60x slower."""
    import os

    from matconcept.service.map.layout import _n_jobs

    cores = os.cpu_count() or 1
    assert [_n_jobs(LayoutParams(n_jobs=n)) for n in (0, -1, 1, 1024)] == [cores, cores, 1, cores]


def test_layouts_round_trip_and_only_a_finished_layout_becomes_current(tmp_path, layout):
    store = LayoutStore(tmp_path / "maps")
    assert store.load() is None and store.current_id() is None
    store.save(layout)
    loaded = store.load()
    assert loaded.info == layout.info and loaded.ids == layout.ids
    assert np.array_equal(loaded.coords, layout.coords) and np.array_equal(loaded.reference, layout.reference)
    assert np.allclose(loaded.place(layout.pca_mean[None] * 0 + 1), layout.place(layout.pca_mean[None] * 0 + 1))
    # A crash while writing leaves a staging folder behind: it is never read and is removed later.
    (tmp_path / "maps" / ".staging-dead").mkdir()
    assert store.current_id() == layout.info.layout_id
    second = layout.__class__(
        layout.info.model_copy(update={"layout_id": "tsne-second"}),
        list(layout.ids),
        layout.coords.copy(),
        layout.pca_mean,
        layout.pca_components,
        layout.reference,
    )
    store.save(second)
    assert (tmp_path / "maps" / CURRENT).read_text().strip() == "tsne-second"
    assert not (tmp_path / "maps" / ".staging-dead").exists()
    assert set(store.layout_ids()) == {layout.info.layout_id, "tsne-second"}
    with pytest.raises(LayoutError, match="no layout 'nope'"):
        store.load("nope")


def test_keeper_places_new_materials_and_forgets_deleted_ones(embedded, tmp_path):
    from itertools import islice

    from matconcept.service.ingest.local import builtin_items, ingest_items
    from matconcept.service.store import StoreSettings, open_store
    from matconcept.service.store.records import PointIn

    settings, embedder, ids, _ = embedded
    local = StoreSettings(db=tmp_path / "db", home=tmp_path / "home")
    with open_store(settings, embedder.model_id) as source, open_store(local, embedder.model_id) as store:
        records = source.get(ids, with_vectors=True)
        store.upsert([PointIn(payload=r.payload, crystal=r.vectors["crystal"], xrd=r.vectors["xrd"]) for r in records])
        keeper = MapKeeper(store, LayoutStore(local.maps_dir(embedder.model_id)))
        assert keeper.points() is None and keeper.status().layout is None
        keeper.build(LayoutParams(n_iter=250))
        fitted = {m: keeper.position(m) for m in ids}
        # New materials arrive (AFLOW prototypes), one old one is deleted.
        ingest_items(islice(builtin_items(), 6), store, embedder, progress=False, workers=1)
        new_ids = sorted(set(store.iter_ids()) - set(ids))
        assert len(new_ids) == 6
        store.delete([ids[0]])
        keeper.changed([ids[0], *new_ids])
        points = keeper.points()
        assert set(points.material_id) == (set(ids) - {ids[0]}) | set(new_ids)
        assert keeper.status().layout.n_placed == 6 and keeper.status().layout.n_points == len(ids)
        for m in ids[1:]:
            assert keeper.position(m) == fitted[m], "a fitted point moved without a new layout"
        row = points.material_id.index(new_ids[0])
        assert points.formula[row] and points.elements[row] and points.source[row] == "aflow"
        assert points.crystal_system == [crystal_system(n) for n in points.spacegroup_number]
        assert points.crystal_system[row] is not None
        # A new keeper (a restarted service) reads the placed points back from disk.
        again = MapKeeper(store, LayoutStore(local.maps_dir(embedder.model_id)))
        assert again.position(new_ids[0]) == keeper.position(new_ids[0])


def test_map_cli_draws_the_map_updates_it_and_reports_a_busy_store(embedded, tmp_path, capsys):
    from matconcept.service.store import open_store

    settings, embedder, ids, _ = embedded
    out = tmp_path / "figures"
    code = main(["map", "--db", str(settings.db_dir), "--json", "--out", str(out), "--format", "png", "svg",
                 "--element", "O", "--iterations", "250"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["layout"]["n_points"] == len(ids) and summary["layout"]["method"] == "tsne"
    names = {p.rsplit("/", 1)[-1] for p in summary["figures"]}
    assert {"map-crystal_system.png", "map-source.svg", "map-element-O.png", "elements.png", "elements.svg"} <= names
    for path in summary["figures"]:
        data = Path(path).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" if path.endswith(".png") else b"<svg" in data[:2000]
    assert main(["map", "--db", str(settings.db_dir), "--update", "--no-figures"]) == 0
    assert "placed 0 materials" in capsys.readouterr().err
    # While another process (here: another handle) owns the store, the command says what to do.
    with open_store(settings, embedder.model_id):
        assert main(["map", "--db", str(settings.db_dir), "--no-figures"]) == 2
    assert "POST /v1/map/layout" in capsys.readouterr().err
    assert main(["map", "--db", str(settings.db_dir), "--element", "Xx"]) == 2
    assert "'Xx' is not an element symbol" in capsys.readouterr().err
