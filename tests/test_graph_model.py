"""Crystal graph and dual encoder: shapes, invariances, the CGCNN formula, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pymatgen.core import Structure

from matconcept.encoders.atom_features import N_ATOM_FEATURES, atom_feature_table, atom_features
from matconcept.encoders.cgcnn import CGCNNConv
from matconcept.encoders.checkpoint import load_checkpoint, save_checkpoint
from matconcept.encoders.dual_encoder import DualEncoder, ModelConfig
from matconcept.encoders.embedder import Embedder
from matconcept.encoders.graph import GraphFeaturizer, GraphSettings
from matconcept.encoders.structure_io import read_structure
from matconcept.encoders.xrd_cnn import XRDEncoder
from tests.data import cod_cif


def test_atom_feature_table_covers_z_1_to_100():
    table = atom_feature_table()
    assert table.shape == (101, N_ATOM_FEATURES)
    assert not table[0].any()
    # every element has its group, period and block bits set
    assert (table[1:, :19].sum(1) == 1).all()
    assert (table[1:, 19:26].sum(1) == 1).all()
    assert len({row.tobytes() for row in table[1:]}) > 90


def test_disordered_site_features_are_occupancy_weighted():
    from pymatgen.core import Lattice

    s = Structure(Lattice.cubic(3.6), [{"Cu": 0.5, "Au": 0.5}], [[0, 0, 0]])
    table = atom_feature_table()
    np.testing.assert_allclose(atom_features(s)[0], 0.5 * table[29] + 0.5 * table[79])


def test_graph_shapes_and_neighbour_cap(batio3):
    graph = GraphFeaturizer().featurize(batio3)
    assert graph.x.shape == (5, 92)
    assert graph.edge_index.shape == (2, 5 * 12)
    assert graph.edge_dist.shape == (60,)
    assert float(graph.edge_dist.max()) <= 8.0
    # neighbours of each centre are the 12 nearest, in increasing distance
    centre0 = graph.edge_dist[graph.edge_index[1] == 0]
    assert torch.all(centre0[1:] >= centre0[:-1])


def test_small_cutoff_gives_fewer_edges_without_padding(batio3):
    graph = GraphFeaturizer(GraphSettings(radius=2.5)).featurize(batio3)
    # Ti-O bonds (2.0 Å) only: Ti has 6, each O 2, Ba none
    counts = torch.bincount(graph.edge_index[1], minlength=5).tolist()
    assert sorted(counts) == [0, 2, 2, 2, 6]


def _dense_cgcnn(conv: CGCNNConv, x, edge_index, edge_attr):
    """The paper's formula written with explicit loops over centres (eval mode)."""
    out = []
    for i in range(x.shape[0]):
        mask = edge_index[1] == i
        j = edge_index[0][mask]
        z = conv.lin(torch.cat([x[i].expand(len(j), -1), x[j], edge_attr[mask]], dim=1))
        z = conv.bn_edge(z)
        gate, core = z.chunk(2, dim=1)
        out.append((torch.sigmoid(gate) * torch.nn.functional.softplus(core)).sum(0))
    return torch.nn.functional.softplus(x + conv.bn_node(torch.stack(out)))


def test_cgcnn_conv_matches_the_published_formula(batio3):
    torch.manual_seed(0)
    graph = GraphFeaturizer().featurize(batio3)
    conv = CGCNNConv(8, 41)
    conv.bn_edge.running_mean.normal_()
    conv.bn_node.running_var.uniform_(0.5, 2)
    conv.eval()
    x = torch.randn(5, 8)
    from matconcept.encoders.cgcnn import GaussianDistance

    edge_attr = GaussianDistance()(graph.edge_dist)
    expected = _dense_cgcnn(conv, x, graph.edge_index, edge_attr)
    torch.testing.assert_close(conv(x, graph.edge_index, edge_attr), expected)


def test_xrd_encoder_layer_sizes():
    enc = XRDEncoder()
    assert enc.head[0].in_features == 880
    assert enc(torch.rand(3, 5000)).shape == (3, 1024)


def test_dual_encoder_paper_sizes():
    model = DualEncoder()
    linears = [m for m in model.crystal.head if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64, 1024), (1024, 1024)] * 1 + [
        (1024, 1024),
        (1024, 1024),
    ]
    assert model.crystal.embed.in_features == 92 and model.crystal.embed.out_features == 64
    assert len(model.crystal.convs) == 3
    assert model.crystal.distance.num_centers == 41


@pytest.mark.parametrize("name", ["vo2-m1", "BaTiO3_cubic", "FeAs"])
def test_embedding_invariant_to_site_order_and_supercell(random_model, name):
    embedder = Embedder(random_model, device="cpu")
    parsed = read_structure(cod_cif(name))
    s = parsed.structure
    order = np.random.default_rng(1).permutation(len(s))
    permuted = Structure.from_sites([s[i] for i in order])
    supercell = read_structure((s * (2, 2, 2)).to(fmt="cif"), name="supercell.cif").structure
    raw_supercell = s * (2, 2, 2)
    vecs, _ = embedder.embed_structures([s, permuted, supercell, raw_supercell])
    for other in vecs[1:]:
        np.testing.assert_allclose(other, vecs[0], atol=1e-4)
    assert np.abs(vecs[0]).max() > 1e-2  # not trivially zero


def test_different_materials_get_different_embeddings(random_model):
    embedder = Embedder(random_model, device="cpu")
    a = read_structure(cod_cif("vo2-m1")).structure
    b = read_structure(cod_cif("vo2-rutile")).structure
    vecs, _ = embedder.embed_structures([a, b])
    assert np.linalg.norm(vecs[0] - vecs[1]) > 1e-2


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_checkpoint_round_trip(tmp_path, random_model, batio3, dtype):
    model = random_model.model
    model_id = save_checkpoint(model, tmp_path / "ckpt", dtype=dtype, training={"epochs": 0})
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert loaded.model_id == model_id and model_id.startswith("mc-")
    assert loaded.info.training == {"epochs": 0}
    assert loaded.info.model == model.config
    a, ax = Embedder(random_model, device="cpu").embed_structures([batio3])
    b, bx = Embedder(loaded, device="cpu").embed_structures([batio3])
    tol = 1e-5 if dtype == "float32" else 5e-2
    np.testing.assert_allclose(a, b, atol=tol, rtol=tol)
    np.testing.assert_allclose(ax, bx, atol=tol, rtol=tol)
    # the id is a content hash: same weights → same id, different weights → different id
    assert save_checkpoint(loaded.model, tmp_path / "again", dtype=dtype) == model_id or dtype == "float16"
    other = DualEncoder(ModelConfig())
    assert save_checkpoint(other, tmp_path / "other") != model_id


def test_tampered_checkpoint_is_refused(tmp_path, random_model):
    model_id = save_checkpoint(random_model.model, tmp_path / "ckpt")
    assert load_checkpoint(tmp_path / "ckpt").info.model_id == model_id
    state = random_model.model.state_dict()
    state["crystal.embed.bias"] = state["crystal.embed.bias"] + 1.0
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "ckpt" / "model.safetensors"))
    with pytest.raises(ValueError, match="changed since saving"):
        load_checkpoint(tmp_path / "ckpt")


def test_loaded_checkpoint_runs_on_requested_device(tmp_path, random_model):
    save_checkpoint(random_model.model, tmp_path / "ckpt")
    loaded = load_checkpoint(tmp_path / "ckpt", device="cpu")
    assert next(loaded.model.parameters()).device.type == "cpu"
    assert not loaded.model.training


def test_pool_workers_send_graphs_back_in_line_and_unchanged(monkeypatch):
    """Graphs cross the process boundary as in-line arrays (not one shared-memory segment per tensor),
    and come back exactly as one process makes them: every attribute, dtype and value."""
    import pickle

    from matconcept.encoders import pipeline
    from matconcept.encoders.builtin import cod_cif_files
    from matconcept.encoders.pipeline import featurize_entries, reduce_data
    from matconcept.encoders.sources import iter_entries

    monkeypatch.setattr(pipeline, "WORK_WHILE_POOL_STARTS", False)  # every entry through the workers
    entries = list(iter_entries(cod_cif_files()[:6]))
    single = [r.graph for r in featurize_entries(entries, workers=1)]
    pooled = [r.graph for r in featurize_entries(entries, workers=2)]
    rebuild, (arrays,) = reduce_data(single[0])
    assert all(not isinstance(v, torch.Tensor) for v in arrays.values())  # nothing left for shared memory
    for one, two in [*zip(single, pooled, strict=True), (single[0], rebuild(*pickle.loads(pickle.dumps((arrays,)))))]:
        assert sorted(one.keys()) == sorted(two.keys())
        for key in one.keys():  # noqa: SIM118 (iterating a PyG Data yields (key, value) pairs)
            a, b = one[key], two[key]
            if isinstance(a, torch.Tensor):
                assert a.dtype == b.dtype and torch.equal(a, b), key
            else:
                assert a == b, key


def _squared(item: int, featurizer) -> int:
    """A pool work function (module level: the workers import it)."""
    return item * item


def test_pool_and_its_starting_caller_give_every_result_in_order_and_stop_when_closed():
    """While the pool starts, the caller works through the first items itself; the workers take the rest,
    and the results come in input order. Closing the generator early leaves no worker running."""
    import multiprocessing

    from matconcept.encoders.pipeline import parallel_featurize

    assert list(parallel_featurize(range(3000), _squared, workers=2)) == [i * i for i in range(3000)]
    results = parallel_featurize(range(10**6), _squared, workers=2)
    assert [next(results) for _ in range(5)] == [0, 1, 4, 9, 16]
    results.close()
    assert not multiprocessing.active_children()


def test_a_query_embeds_only_the_vectors_it_compares():
    """A structure search needs no XRD vector: a graph without the simulated pattern gets the same concept
    and structure-type vectors as the full path, and asking for xrd without a pattern, or for a vector the
    model does not give, fails by name."""
    from matconcept.encoders.checkpoint import resolve_model

    embedder = Embedder(resolve_model(None, "cpu"), device="cpu")
    assert embedder.vector_names == ("crystal", "xrd", "structure")
    structures = [read_structure(cod_cif(n)).structure for n in ("vo2-m1", "BaTiO3_cubic")]
    full = embedder.embed([embedder.featurizer.featurize(s) for s in structures])
    bare = [embedder.featurizer.featurize(s, pattern=False) for s in structures]
    assert all("xrd" not in g for g in bare)
    query = embedder.embed(bare, ("crystal", "structure"))
    assert set(query) == {"crystal", "structure"}
    for name in query:
        np.testing.assert_allclose(query[name], full[name], atol=1e-6)
    assert full["xrd"].shape == (2, embedder.dim)
    with pytest.raises(ValueError, match="no fingerprint"):
        embedder.embed(bare, ("fingerprint",))
    with pytest.raises(ValueError, match="needs the simulated pattern"):
        embedder.embed(bare, ("xrd",))
