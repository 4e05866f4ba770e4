"""The structure-type encoder: what it must ignore (chemistry, scale, supercell, site order), what it must
tell apart (zinc blende vs wurtzite, CsCl vs bcc, NiAs vs its inverse), its trainer and the notion report."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

from matconcept.encoders.embedder import Embedder
from matconcept.encoders.fusion import rrf_distance, zscore_distance
from matconcept.encoders.structure_type import StructureTypeEncoder, structure_type_graph


def rock_salt(a: str, b: str, lattice: float) -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(lattice), [a, b], [[0, 0, 0], [0.5, 0.5, 0.5]])


def zinc_blende(a: str, b: str, lattice: float) -> Structure:
    return Structure.from_spacegroup("F-43m", Lattice.cubic(lattice), [a, b], [[0, 0, 0], [0.25, 0.25, 0.25]])


def wurtzite(a: str, b: str, lat_a: float, lat_c: float, u: float = 0.38) -> Structure:
    coords = [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, u]]
    return Structure.from_spacegroup("P6_3mc", Lattice.hexagonal(lat_a, lat_c), [a, b], coords)


def cscl(a: str, b: str, lattice: float) -> Structure:
    return Structure.from_spacegroup("Pm-3m", Lattice.cubic(lattice), [a, b], [[0, 0, 0], [0.5, 0.5, 0.5]])


def nias(a: str, b: str, lat_a: float = 3.6, lat_c: float = 5.0) -> Structure:
    """NiAs: ``a`` octahedral on 2a, ``b`` trigonal prismatic on 2c."""
    coords = [[0, 0, 0], [1 / 3, 2 / 3, 0.25]]
    return Structure.from_spacegroup("P6_3/mmc", Lattice.hexagonal(lat_a, lat_c), [a, b], coords)


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(device="cpu")


def vectors(embedder: Embedder, structures: list[Structure]) -> np.ndarray:
    return embedder.embed_structure_types([embedder.featurizer.featurize(s) for s in structures])


def test_role_graph_is_blind_to_chemistry_scale_supercell_and_site_order():
    nacl = rock_salt("Na", "Cl", 5.64)
    mgo = rock_salt("Mg", "O", 4.21)
    shuffled = Structure.from_sites(list(reversed(nacl.sites)))
    reference = structure_type_graph(nacl)
    for other in (mgo, shuffled):
        graph = structure_type_graph(other)
        assert torch.equal(graph["type_x"].sort(0).values, reference["type_x"].sort(0).values)
        dist, expected = graph["type_edge_dist"].sort().values, reference["type_edge_dist"].sort().values
        assert torch.allclose(dist, expected, atol=1e-5)
    encoder = StructureTypeEncoder().eval()
    with torch.no_grad():
        from torch_geometric.data import Batch, Data

        datas = [Data(num_nodes=len(s), **structure_type_graph(s)) for s in (nacl, mgo, nacl * (2, 1, 1), shuffled)]
        out = encoder(Batch.from_data_list(datas))
    assert torch.allclose(out, out[0].expand_as(out), atol=1e-5), "an untrained encoder already ignores these"


def test_shipped_encoder_groups_structure_types_across_chemistry(embedder):
    assert embedder.has_structure_type and embedder.structure_dim == 128
    wurtzites = [wurtzite("Zn", "O", 3.25, 5.21), wurtzite("Ga", "N", 3.19, 5.19), wurtzite("Cd", "S", 4.14, 6.71)]
    blendes = [zinc_blende("Zn", "S", 5.41), zinc_blende("Ga", "As", 5.65), zinc_blende("Cd", "Te", 6.48)]
    salts = [rock_salt("Na", "Cl", 5.64), rock_salt("Mg", "O", 4.21), rock_salt("Ti", "N", 4.24)]
    v = vectors(embedder, wurtzites + blendes + salts)
    d = np.linalg.norm(v[:, None] - v[None], axis=-1)
    labels = np.repeat([0, 1, 2], 3)
    np.fill_diagonal(d, np.inf)
    for i in range(len(v)):
        nearest = np.argsort(d[i])[:2]
        assert (labels[nearest] == labels[i]).all(), (i, d[i].round(3))


def test_shipped_encoder_tells_apart_what_crystalnn_confuses(embedder):
    pairs = {
        "zinc blende / wurtzite": (zinc_blende("Zn", "S", 5.41), wurtzite("Zn", "S", 3.82, 6.26, 0.375)),
        "CsCl / bcc": (cscl("Cs", "Cl", 4.12), cscl("Fe", "Fe", 2.87)),
        "NiAs / inverse": (nias("Ni", "As"), nias("As", "Ni")),
    }
    same = vectors(embedder, [rock_salt("Na", "Cl", 5.64), rock_salt("K", "Br", 6.6)])
    floor = float(np.linalg.norm(same[0] - same[1]))
    for name, (a, b) in pairs.items():
        va, vb = vectors(embedder, [a, b])
        assert float(np.linalg.norm(va - vb)) > max(10 * floor, 0.05), name


def test_disordered_sites_take_their_majority_element():
    """Mixed sites and sites of one species at partial occupancy (common in COD) both featurize."""
    mixed = Structure(Lattice.cubic(4.2), [{"Mg": 0.7, "Fe": 0.3}, "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    partial = Structure(Lattice.cubic(4.2), [{"Mg": 0.9}, "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    ordered = Structure(Lattice.cubic(4.2), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    expected = structure_type_graph(ordered)
    for structure in (mixed, partial):
        graph = structure_type_graph(structure)
        assert torch.equal(graph["type_x"], expected["type_x"])
        assert torch.equal(graph["type_edge_same"], expected["type_edge_same"])


def test_fusions_rank_like_their_definitions():
    rng = np.random.default_rng(0)
    a, b = rng.random((3, 7)), rng.random((3, 7))
    rrf = rrf_distance([a, b])
    for q in range(3):
        ranks_a, ranks_b = np.argsort(np.argsort(a[q])), np.argsort(np.argsort(b[q]))
        expected = -(1 / (61 + ranks_a) + 1 / (61 + ranks_b))
        assert np.allclose(rrf[q], expected)
    z = zscore_distance([a, b], [0.8, 0.2])
    za = (a - a.mean(1, keepdims=True)) / a.std(1, keepdims=True)
    zb = (b - b.mean(1, keepdims=True)) / b.std(1, keepdims=True)
    assert np.allclose(z, 0.8 * za + 0.2 * zb)
    a[0, 0] = np.inf  # an excluded candidate stays excluded and does not skew the others
    z = zscore_distance([a, b])
    assert np.isinf(z[0, 0]) and np.isfinite(z[0, 1:]).all()


def test_trainer_learns_to_group_a_tiny_labelled_set():
    from matconcept.training.structure_type import (
        StructureTypeTrainConfig,
        embed_examples,
        train_structure_type,
        type_example,
    )

    rng = np.random.default_rng(1)
    structures, labels = [], []
    for _ in range(6):
        a, c = 3.0 + rng.random(), 5.0 + rng.random()
        structures += [wurtzite("Zn", "O", a, c * 1.6), rock_salt("Na", "Cl", a + 2), cscl("Cs", "Cl", a + 1)]
        labels += [0, 1, 2]
    config = StructureTypeTrainConfig(epochs=3, batch_size=9)
    examples = [type_example(s, config.model.graph.cutoff, y) for s, y in zip(structures, labels, strict=True)]
    encoder, history = train_structure_type(config, examples, examples, [str(y) for y in labels], progress=False)
    assert len(history) == 3 and all(np.isfinite(h["loss"]) for h in history)
    assert max(h["val_r_precision"] for h in history) >= 0.8  # chance: 5/17
    assert embed_examples(encoder, examples).shape == (18, 128)


def test_notion_report_scores_every_notion(embedder):
    from matconcept.training.evaluation.notions import notion_report

    structures = [
        rock_salt("Na", "Cl", 5.64),
        rock_salt("K", "Cl", 6.29),
        rock_salt("Mg", "O", 4.21),
        rock_salt("Ca", "O", 4.81),
        wurtzite("Zn", "O", 3.25, 5.21),
        wurtzite("Ga", "N", 3.19, 5.19),
        wurtzite("Al", "N", 3.11, 4.98),
        zinc_blende("Ga", "As", 5.65),
        zinc_blende("Ga", "P", 5.45),
        zinc_blende("In", "As", 6.06),
    ]
    prototypes = ["rs"] * 4 + ["wz"] * 3 + ["zb"] * 3
    report = notion_report(embedder, structures, prototypes, {"wz": "wurtzite"})
    assert set(report.notions) == {"concept", "structure", "hybrid (z-scored sum)", "hybrid (rank fusion)"}
    assert report.notions["structure"].structure_type == pytest.approx(1.0)
    assert report.notions["structure"].per_family == {"wurtzite": 1.0}
    assert report.n_concept_families == 1  # only the III-V zinc blendes: three of one prototype and element groups
    assert set(report.ms_per_structure) >= {"concept encoder", "structure encoder"}
