"""Evaluation metrics, baselines, probes and the ``matconcept evaluate`` command.

Each metric is checked on cases whose answer is known by construction: identical inputs at distance
0, a perfect embedding scoring 1, a random one scoring near chance, permutation-invariant
descriptors unchanged by reordering sites. The command runs end to end on real COD CIFs (elements
whose structure type is known: fcc, bcc, hcp) plus the hostile set.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from pymatgen.core import Structure

from matconcept.encoders.symmetry import crystal_system
from matconcept.training.evaluation.items import read_labels_csv, subsample
from matconcept.training.evaluation.metrics import (
    cross_modal_retrieval,
    nearest_other_distance,
    neighbour_quality,
    pairwise_l2,
    retrieval_curve,
)

FCC = ("Al", "Cu", "Ag", "Au", "Ni", "Pt")
BCC = ("Cr", "Mo", "W", "V", "Nb", "Ta")
HCP = ("Mg", "Zn", "Ti", "Zr", "Co", "Hf")


def _clusters(n_per: int, n_classes: int, dim: int, spread: float, rng) -> tuple[np.ndarray, list[str]]:
    centres = rng.normal(size=(n_classes, dim)) * 10
    labels = [f"c{i}" for i in range(n_classes) for _ in range(n_per)]
    x = np.repeat(centres, n_per, axis=0) + spread * rng.normal(size=(n_classes * n_per, dim))
    return x, labels


# ----------------------------------------------------------------------------------------- metrics


def test_identical_rows_are_at_distance_zero_and_distances_are_exact():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 1024)).astype(np.float32) * 100
    d = pairwise_l2(a, a.copy())
    assert np.all(np.diag(d) == 0.0)
    assert d[0, 1] == pytest.approx(np.linalg.norm(a[0].astype(np.float64) - a[1]), rel=1e-12)
    with pytest.raises(ValueError, match="same d"):
        pairwise_l2(a, a[:, :3])


def test_retrieval_perfect_random_and_known_rank():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 32))
    assert retrieval_curve(x, x.copy(), 10).tolist() == [1.0] * 10
    random_curve = retrieval_curve(x, rng.normal(size=(300, 32)), 10)
    chance = np.arange(1, 11) / 300
    assert np.all(np.abs(random_curve - chance) < 0.05)
    # query 0's own key is the 3rd closest by construction: two keys sit nearer to it
    keys = np.array([[3.0], [1.0], [2.0], [100.0]])
    queries = np.array([[0.0], [1.0], [2.0], [100.0]])
    assert retrieval_curve(queries, keys, 3).tolist() == [0.75, 0.75, 1.0]
    # the other direction from the same matrix: key 0 (at 3) has queries 2 and 1 nearer than query 0
    forward, backward = cross_modal_retrieval(queries, keys, 3)
    assert forward.tolist() == [0.75, 0.75, 1.0] and backward.tolist() == [0.75, 0.75, 1.0]


def test_neighbour_quality_perfect_random_and_hand_counted():
    rng = np.random.default_rng(2)
    x, labels = _clusters(20, 5, 16, 0.01, rng)
    perfect = neighbour_quality(x, labels, ks=(1, 19))
    assert perfect.r_precision == 1.0 and perfect.precision_at_k == {1: 1.0, 19: 1.0}
    assert perfect.chance_r_precision == pytest.approx(19 / 99)
    shuffled = neighbour_quality(rng.normal(size=(100, 16)), labels, ks=(5,))
    assert abs(shuffled.r_precision - shuffled.chance_r_precision) < 0.08
    assert abs(shuffled.precision_at_k[5] - shuffled.chance_precision) < 0.08
    # points on a line: a a b a; query 0's nearest is 1 (a), query 1's are 0 (a) then 2 (b)...
    line = np.array([[0.0], [1.0], [2.5], [4.0]])
    q = neighbour_quality(line, ["a", "a", "b", "a"], ks=(1,))
    # R=2 for each "a": q0 neighbours 1(a),2(b) → 1/2; q1: 0(a),2(b) → 1/2; q3: 2(b),1(a) → 1/2
    assert q.r_precision == pytest.approx(0.5)
    assert q.precision_at_k[1] == pytest.approx((1 + 1 + 0) / 3)
    assert q.n_queries == 3 and q.n_families == 1
    assert nearest_other_distance(line).tolist() == [1.0, 1.0, 1.5, 1.5]


def test_neighbour_quality_without_shared_labels_is_nan_not_an_error():
    q = neighbour_quality(np.eye(3), ["a", "b", "c"])
    assert q.n_queries == 0 and math.isnan(q.r_precision)


# ------------------------------------------------------------------------------------------- data


def test_crystal_system_bounds_and_labels_csv_errors(tmp_path):
    assert [crystal_system(n) for n in (1, 2, 3, 74, 75, 167, 168, 195, 230)] == [
        "triclinic", "triclinic", "monoclinic", "orthorhombic", "tetragonal", "trigonal", "hexagonal", "cubic", "cubic",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="231"):
        crystal_system(231)
    good = tmp_path / "labels.csv"
    good.write_text("id,label\nAl,fcc\nCr,bcc\n")
    assert read_labels_csv(good) == {"Al": "fcc", "Cr": "bcc"}
    from matconcept.training.evaluation.items import LabelsError

    headless = tmp_path / "headless.csv"
    headless.write_text("Al\n")
    with pytest.raises(LabelsError, match=r"headless\.csv.*header"):
        read_labels_csv(headless)
    blank = tmp_path / "blank.csv"
    blank.write_text("id,label\nAl,\n")
    with pytest.raises(LabelsError, match=r"blank\.csv:2.*'Al' has no label"):
        read_labels_csv(blank)
    with pytest.raises(LabelsError, match=r"missing\.csv"):
        read_labels_csv(tmp_path / "missing.csv")


def test_subsample_keeps_every_group():
    from matconcept.training.evaluation.items import builtin_items

    items = builtin_items("all")[:60]
    assert all(it.labels.get("strukturbericht") != "None" for it in items)  # pymatgen's missing-tag spelling
    assert sum("strukturbericht" in it.labels for it in items) > 10
    groups = {it.group for it in items}
    picked = subsample(items, len(groups))
    assert len(picked) == len(groups) and {it.group for it in picked} == groups
    assert subsample(items, None) == items


# -------------------------------------------------------------------------------------- baselines


@pytest.fixture(scope="module")
def spinel() -> Structure:
    """A 14-site primitive cell with three elements (AFLOW's spinel prototype, MgAl2O4)."""
    from matconcept.encoders.builtin import aflow_prototypes

    proto = next(p for p in aflow_prototypes() if p.tags.get("mineral", "").lower().startswith("spinel"))
    return proto.structure.get_primitive_structure()


def test_baselines_are_permutation_invariant_and_zero_on_identical_structures(spinel):
    from matconcept.training.evaluation.baselines import make_baselines
    from matconcept.training.evaluation.robustness import perturbations

    variants = perturbations(spinel, np.random.default_rng(0))
    assert len(variants["supercell"]) == 4 * len(spinel)
    for descriptor in make_baselines(workers=1):
        x = descriptor.featurize([spinel, spinel.copy(), variants["permuted"], variants["strained"]])
        scale = np.linalg.norm(x[0])
        assert scale > 0, descriptor.name
        assert np.linalg.norm(x[0] - x[1]) == 0.0, descriptor.name
        assert np.linalg.norm(x[0] - x[2]) < 1e-9 * scale, descriptor.name
        assert np.linalg.norm(x[0] - x[3]) > 0, descriptor.name  # strain is seen


def test_chgnet_baseline_is_opt_in_and_explains_itself_when_missing(spinel, nacl):
    """CHGNet's crystal features are not a default baseline; asked for without the package, the error says
    what to install; with it, one 64-d row per structure that tells two materials apart."""
    import importlib.util

    from matconcept.training.evaluation.baselines import DEFAULT_BASELINES, make_baselines

    assert "chgnet" not in DEFAULT_BASELINES
    if importlib.util.find_spec("chgnet") is None:
        with pytest.raises(ValueError, match="pip install chgnet"):
            make_baselines(["chgnet"])
        return
    (chgnet,) = make_baselines(["chgnet"])
    x = chgnet.featurize([spinel, nacl, spinel.copy()])
    assert x.shape == (3, 64) and np.isfinite(x).all()
    assert np.linalg.norm(x[0] - x[2]) < 1e-6 < np.linalg.norm(x[0] - x[1])


def test_embedding_robustness_on_real_structures(random_model, spinel, nacl, batio3):
    """CGCNN's mean pooling makes the crystal embedding blind to site order and supercells."""
    from matconcept.encoders.embedder import Embedder
    from matconcept.training.evaluation.robustness import nearest_other_by_formula, perturbations, robustness

    embedder = Embedder(random_model, device="cpu")
    originals = [spinel, nacl, batio3]

    def embed(structures):
        return embedder.embed_structures(structures)[0].astype(np.float64)

    base = embed(originals)
    rng = np.random.default_rng(3)
    variants: dict[str, list] = {}
    for s in originals:
        for name, v in perturbations(s, rng).items():
            variants.setdefault(name, []).append(v)
    result = robustness(embed, base, [0, 1, 2], variants, nearest_other_by_formula(base, ["a", "b", "c"]))
    assert result.n_structures == 3
    assert result.perturbations["permuted"].median_distance < 1e-3
    assert result.perturbations["supercell"].median_distance < 1e-3
    assert result.perturbations["permuted"].closer_than_nearest == 1.0
    assert result.perturbations["displaced"].median_distance > 0


# ----------------------------------------------------------------------------------------- probes


def test_probe_scores_informative_features_high_and_noise_near_chance():
    from matconcept.training.evaluation.probes import few_shot_probe

    rng = np.random.default_rng(4)
    n_groups, per_group = 30, 12
    groups = np.repeat([f"g{i}" for i in range(n_groups)], per_group)
    classes = np.array([f"k{i % 3}" for i in range(n_groups)])[np.arange(n_groups).repeat(per_group)]
    onehot = (classes[:, None] == np.array(["k0", "k1", "k2"])[None, :]).astype(float)
    features = {"perfect": onehot + 0.01 * rng.normal(size=onehot.shape), "noise": rng.normal(size=(len(groups), 8))}
    result = few_shot_probe(features, classes, classes, groups, sizes=(10, 40, 500), repeats=3, seed=0)
    assert result.scores["perfect"][0] == 1.0
    assert result.chance[0] == pytest.approx(1 / 3)
    assert abs(result.scores["noise"][0] - result.chance[0]) < 0.2
    assert result.scores["perfect"][2] is None  # 500 per class do not exist
    density = rng.uniform(1, 10, size=len(groups))
    reg = few_shot_probe(
        {"density": density[:, None], "noise": features["noise"]},
        density,
        classes,
        groups,
        sizes=(20,),
        regression=True,
        name="density",
    )
    assert reg.scores["density"][0] > 0.9 and reg.scores["noise"][0] < 0.3
    assert reg.mae["density"][0] < 0.5


# ------------------------------------------------------------------------------------------ command


@pytest.fixture(scope="module")
def element_set(tmp_path_factory):
    """18 COD element CIFs whose structure type is known (fcc, bcc, hcp) and a labels CSV for them."""
    import shutil

    from tests.data import cod_cif

    folder = tmp_path_factory.mktemp("elements")
    rows = ["name,label"]
    for label, names in (("fcc", FCC), ("bcc", BCC), ("hcp", HCP)):
        for name in names:
            shutil.copy(cod_cif(name), folder / f"{name}.cif")
            rows.append(f"{name},{label}")
    labels = folder / "labels.csv"
    labels.write_text("\n".join(rows) + "\n")
    return folder, labels


def test_knn_property_probe_reads_a_property_off_informative_neighbours_only():
    from matconcept.training.evaluation.probes import knn_property_probe

    rng = np.random.default_rng(0)
    n = 200
    groups = np.repeat(np.arange(40), 5)
    y = rng.normal(size=n)
    informative = np.c_[y + 0.05 * rng.normal(size=n), rng.normal(size=(n, 3)) * 0.01]
    noise = rng.normal(size=(n, 4))
    probe = knn_property_probe({"informative": informative, "noise": noise}, y, groups, "band_gap_ev")
    assert probe.r2["informative"] > 0.9 and probe.r2["noise"] < 0.2
    assert probe.mae["informative"] < 0.3 * probe.mean_mae < probe.mae["noise"]
    assert probe.folds == 5 and probe.n_items == n


def test_evaluate_command_on_labelled_cifs_and_hostile_files(element_set, hostile_dir, tmp_path, capsys):
    from matconcept.service.cli import main

    folder, labels = element_set
    hostile, expected = hostile_dir
    out = tmp_path / "report"
    argv = ["evaluate", str(folder), str(hostile), "--labels", str(labels), "--json", "--out", str(out)]
    assert main([*argv, "--workers", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dataset"]["n_items"] == 18  # the hostile set's only valid file is disordered: skipped
    skipped = {s["source"].rsplit("/", 1)[-1]: s["reason"] for s in report["dataset"]["skipped"]}
    for name, reason in expected.items():
        if reason:
            assert skipped[name] == reason, name
    assert skipped["partial_occupancy.cif"] == "disordered"
    retrieval = report["retrieval"]
    assert len(retrieval["xrd_to_structure"]) == 10 and retrieval["chance"][0] == pytest.approx(1 / 18)
    user = report["neighbour_quality"]["user"]
    assert set(user) == {"embedding", "structure notion", "sine_coulomb", "ewald", "crystalnn"}
    assert user["embedding"]["n_queries"] == 18 and user["embedding"]["n_families"] == 3
    # coordination alone tells fcc, bcc and hcp apart: the CrystalNN fingerprint must cluster them
    assert user["crystalnn"]["r_precision"] > user["crystalnn"]["chance_r_precision"] + 0.3
    robust = report["robustness"]
    assert robust["embedding"]["perturbations"]["permuted"]["median_distance"] < 1e-3
    assert robust["crystalnn"]["perturbations"]["supercell"]["median_distance"] < 1e-6
    assert {p["target"] for p in report["probes"]} >= {"crystal_system", "density"}
    for name in ("report.json", "report.md", "retrieval.png", "precision_at_k.png", "probes.png"):
        assert (out / name).stat().st_size > 0, name
    assert "Cross-modal retrieval" in (out / "report.md").read_text()


def test_evaluate_command_rejects_bad_arguments_by_name(element_set, tmp_path, capsys):
    from matconcept.service.cli import main

    folder, _ = element_set
    bad = tmp_path / "bad.csv"
    bad.write_text("just one column\n")
    assert main(["evaluate", str(folder), "--labels", str(bad)]) == 2
    err = json.loads(capsys.readouterr().err.strip().splitlines()[-1])["error"]
    assert err["reason"] == "bad_labels" and "bad.csv" in err["message"]
    assert main(["evaluate", str(tmp_path / "nowhere")]) == 2
    err = json.loads(capsys.readouterr().err.strip().splitlines()[-1])["error"]
    assert err["reason"] == "unreadable" and "nowhere" in err["message"]
    assert main(["evaluate", str(folder), "--model", str(tmp_path / "no-model")]) == 2
    err = json.loads(capsys.readouterr().err.strip().splitlines()[-1])["error"]
    assert err["reason"] == "bad_model" and "no-model" in err["message"]
    assert main(["evaluate", str(folder), "--baselines", "soap"]) == 2
    err = json.loads(capsys.readouterr().err.strip().splitlines()[-1])["error"]
    assert err["reason"] == "bad_argument" and "soap" in err["message"]


def test_default_data_is_the_corpus_the_model_was_trained_on(tmp_path):
    from matconcept.service.cli.train import model_corpus
    from matconcept.training.corpus import RECORDS_FILE, CorpusConfig

    assert model_corpus({"note": "random initialisation, untrained"}) == (None, CorpusConfig())
    (tmp_path / RECORDS_FILE).write_bytes(b"")
    recorded = {"config": {"corpus": str(tmp_path), "corpus_build": {"seed": 7, "target": 500}}}
    folder, build = model_corpus(recorded)
    assert folder == tmp_path and build.seed == 7 and build.target == 500
    gone = {"config": {"corpus": str(tmp_path / "moved"), "corpus_build": {"seed": 7}}}
    assert model_corpus(gone)[0] is None
