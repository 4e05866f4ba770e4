"""Training package: corpus, cache, loss, augmentation, trainer (learning, resume after SIGKILL).

Everything runs for real: the corpus is built from the structures shipped in our dependencies,
featurized with the project's featurizer, and trained with the real trainer through the real
``matconcept`` command in subprocesses where a user would run it.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from matconcept.training.augment import XRDAugment, augment_patterns
from matconcept.training.batches import StructureAugment, collate
from matconcept.training.cache import build_cache
from matconcept.training.corpus import CorpusConfig, build_corpus, load_records, records_from_mp_docs
from matconcept.training.loss import prototype_loss, triplet_loss

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "training" / "configs" / "tiny.yaml"


# --------------------------------------------------------------------------------------------- loss


def _reference_direction(d: np.ndarray, pos: np.ndarray, ok: np.ndarray, valid: np.ndarray, m: float, s: np.ndarray):
    losses = []
    for i in range(d.shape[0]):
        if not valid[i]:
            continue
        cands = [j for j in range(d.shape[1]) if ok[i, j] and d[i, j] < pos[i] + m]
        if not cands:
            continue
        j = max(cands, key=lambda c: s[i, c])
        losses.append(max(0.0, pos[i] - d[i, j] + m))
    return float(np.mean(losses)) if losses else 0.0


@pytest.mark.parametrize("scale", [0.3, 1.0, 3.0])
def test_triplet_loss_matches_a_loop(scale):
    gen = torch.Generator().manual_seed(int(scale * 10))
    b, dim = 24, 8
    xrd = torch.randn(b, dim, generator=gen) * scale
    crystal = xrd + 0.5 * torch.randn(b, dim, generator=gen)
    scores = torch.rand(2, b, b, generator=gen)
    got = float(triplet_loss(xrd, crystal, margin=1.0, scores=scores))
    d = torch.cdist(xrd, crystal).double().numpy()
    ok = ~np.eye(b, dtype=bool)
    pos = np.diag(d)
    valid = np.ones(b, bool)
    s = scores.numpy()
    want = 0.5 * (
        _reference_direction(d, pos, ok, valid, 1.0, s[0]) + _reference_direction(d.T, pos, ok, valid, 1.0, s[1])
    )
    assert got == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_triplet_loss_with_groups_draws_negatives_from_other_groups_only():
    gen = torch.Generator().manual_seed(3)
    b = 28
    xrd = torch.randn(b, 6, generator=gen)
    crystal = xrd + 0.7 * torch.randn(b, 6, generator=gen)
    groups = torch.randint(0, 5, (b,), generator=gen)
    scores = torch.rand(2, b, b, generator=gen)
    got = float(triplet_loss(xrd, crystal, margin=1.0, scores=scores, groups=groups))
    d = torch.cdist(xrd, crystal).double().numpy()
    g = groups.numpy()
    ok = g[None] != g[:, None]
    pos, valid, s = np.diag(d), np.ones(b, bool), scores.numpy()
    want = 0.5 * (
        _reference_direction(d, pos, ok, valid, 1.0, s[0]) + _reference_direction(d.T, pos, ok.T, valid, 1.0, s[1])
    )
    assert got == pytest.approx(want, rel=1e-5, abs=1e-6)
    # one group for all: no negative anywhere, so nothing is pushed apart
    assert float(triplet_loss(xrd, crystal, scores=scores, groups=torch.zeros(b, dtype=torch.long))) == 0.0
    assert got != pytest.approx(float(triplet_loss(xrd, crystal, margin=1.0, scores=scores)))


def test_prototype_loss_matches_a_loop():
    gen = torch.Generator().manual_seed(7)
    b = 30
    crystal = torch.randn(b, 6, generator=gen)
    groups = torch.randint(0, 6, (b,), generator=gen)
    scores = torch.rand(2, b, b, generator=gen)
    got = float(prototype_loss(crystal, groups, margin=1.0, scores=scores))
    d = torch.cdist(crystal, crystal).double().numpy()
    g = groups.numpy()
    same = (g[None] == g[:, None]) & ~np.eye(b, dtype=bool)
    valid = same.any(1)
    s = scores.numpy()
    pos = np.array([d[i, max(np.flatnonzero(same[i]), key=lambda j: s[0, i, j])] if valid[i] else 0 for i in range(b)])
    want = _reference_direction(d, pos, g[None] != g[:, None], valid, 1.0, s[1])
    assert got == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_loss_is_zero_when_pairs_are_separated_and_has_gradients():
    eye = torch.eye(5) * 10
    assert float(triplet_loss(eye, eye.clone())) == 0.0
    x = torch.randn(16, 4, requires_grad=True)
    loss = triplet_loss(x, torch.randn(16, 4))
    loss.backward()
    assert loss.item() > 0 and x.grad is not None and x.grad.abs().sum() > 0


def test_concept_pairs_put_a_same_concept_partner_beside_every_anchor():
    from matconcept.training.trainer import epoch_batches

    labels = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 3, 3, 4, 4])
    train = torch.arange(11)  # item 11 is not training material: 10 has no training partner, 5 none at all
    seen = set()
    for epoch in range(20):
        batches = epoch_batches(train, 4, 1, epoch, pair_labels=labels)
        assert len(batches) == 5 and all(b.numel() == 4 for b in batches)
        for b in batches:
            anchors, partners = b[:2], b[2:]
            assert bool(torch.isin(partners, train).all())
            for a, p in zip(anchors.tolist(), partners.tolist(), strict=True):
                if a not in (5, 10):
                    assert labels[a] == labels[p] and a != p
                    seen.add((a, p))
    # every other member of a family is drawn as a partner over the epochs (uniform among the others)
    assert {p for a, p in seen if a == 6} == {7, 8, 9}


def test_warm_start_copies_a_checkpoint_and_names_one_that_does_not_fit(tmp_path):
    from matconcept.encoders.checkpoint import random_model, save_checkpoint
    from matconcept.encoders.dual_encoder import DualEncoder, ModelConfig
    from matconcept.training.trainer import _warm_start

    small = ModelConfig(embedding_dim=16, hidden=8, crystal_head=[16], xrd_channels=4, xrd_head=[16])
    source = random_model(small).model
    with torch.no_grad():
        for p in source.parameters():
            p.add_(0.5)  # not what a fresh init gives
    save_checkpoint(source, tmp_path / "ckpt")
    target = DualEncoder(small)
    _warm_start(target, tmp_path / "ckpt")
    for (name, a), b in zip(target.state_dict().items(), source.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match=r"ckpt.*architecture"):
        _warm_start(DualEncoder(small.model_copy(update={"hidden": 12})), tmp_path / "ckpt")


def test_concept_key_follows_group_and_element_groups():
    from matconcept.training.corpus import CorpusRecord, concept_key

    def record(formula: str, group: str = "AB_225_2") -> CorpusRecord:
        return CorpusRecord(
            id=formula, source="x", source_id=formula, parent=formula, group=group, formula=formula,
            lattice=[[1, 0, 0], [0, 1, 0], [0, 0, 1]], species=["Na", "Cl"], frac=[[0, 0, 0], [0.5, 0.5, 0.5]],
        )  # fmt: skip

    assert concept_key(record("NaCl")) == concept_key(record("KBr")) == "AB_225_2|g1-g17"
    assert concept_key(record("MgO")) != concept_key(record("NaCl"))
    assert concept_key(record("NaCl", "AB_221_2")) != concept_key(record("NaCl"))


# ------------------------------------------------------------------------------------------- corpus


def test_corpus_reaches_20000_distinct_structures_reproducibly(tmp_path):
    manifests = [build_corpus(CorpusConfig(target=20_000), tmp_path / name) for name in ("a", "b")]
    assert manifests[0]["sha256"] == manifests[1]["sha256"]
    assert manifests[0]["count"] >= 20_000
    records = load_records(tmp_path / "a")
    assert len({r.id for r in records}) == len(records)
    assert len({(r.group, r.formula) for r in records}) == len(records)
    by_id = {r.id: r for r in records}
    for r in records:
        assert len(r.species) >= 2  # monatomic cells are excluded, as in the paper
        parent = by_id[r.parent]
        assert parent.group == r.group  # every substitution is tagged with its seed's prototype group
        if r.source == "substitution":
            assert r.substitution and len(r.species) == len(parent.species)
            assert [r.substitution.get(s, s) for s in parent.species] == r.species
    assert {"aflow", "cod", "pymatgen", "substitution"} <= set(manifests[0]["by_source"])
    split_of_group: dict[str, str] = {}
    for r in records:  # a prototype group lives in exactly one split
        assert split_of_group.setdefault(r.group, r.split) == r.split
    assert set(manifests[0]["by_split"]) == {"train", "val", "test"}


def test_cif_directory_and_recorded_mp_response(tmp_path, hostile_dir):
    directory, expected = hostile_dir
    valid_ordered = [n for n, reason in expected.items() if reason == "" and "partial" not in n]
    config = CorpusConfig(builtin=False, substitutions=False, cif_paths=[directory], max_sites=1000)
    manifest = build_corpus(config, tmp_path / "cif")
    records = load_records(tmp_path / "cif")
    assert manifest["count"] == len(records) == len(valid_ordered)  # bad files skipped, disordered left out
    assert all(r.source == "cif" for r in records)

    # A recorded MP summary response, written by hand in the API's document shape (mp-22862, NaCl).
    a = 5.69 / 2
    docs = [
        {
            "material_id": "mp-22862",
            "formula_pretty": "NaCl",
            "symmetry": {"number": 225, "symbol": "Fm-3m"},
            "structure": {
                "@module": "pymatgen.core.structure",
                "@class": "Structure",
                "charge": 0,
                "lattice": {"matrix": [[0, a, a], [a, 0, a], [a, a, 0]], "pbc": [True, True, True]},
                "sites": [
                    {"species": [{"element": "Na", "occu": 1}], "abc": [0, 0, 0], "label": "Na", "properties": {}},
                    {
                        "species": [{"element": "Cl", "occu": 1}],
                        "abc": [0.5, 0.5, 0.5],
                        "label": "Cl",
                        "properties": {},
                    },
                ],
            },
        },
        {"material_id": "mp-0", "formula_pretty": "X", "structure": {"lattice": "broken"}},
    ]
    path = tmp_path / "mp.json"
    path.write_text(json.dumps(docs))
    manifest = build_corpus(CorpusConfig(builtin=False, substitutions=False, mp_records=[path]), tmp_path / "mp")
    (mp,) = load_records(tmp_path / "mp")
    assert (mp.id, mp.source, mp.formula, mp.group) == ("mp:mp-22862", "mp", "NaCl", "AB_225_2")
    assert manifest["by_source"] == {"mp": 1}
    assert list(records_from_mp_docs(docs[1:], config_limits())) == []


def test_ncrystal_ncmat_reader():
    from matconcept.training.corpus import read_ncmat

    text = "NCMAT v5\n@CELL\n  cubic 5.64\n@SPACEGROUP\n  225\n@ATOMPOSITIONS\n  Na 0 0 0\n  Cl 1/2 1/2 1/2\n"
    structure = read_ncmat(text)
    assert structure.composition.reduced_formula == "NaCl" and len(structure) == 8
    assert structure.lattice.abc == pytest.approx((5.64, 5.64, 5.64))
    with pytest.raises(ValueError, match="@CELL"):
        read_ncmat("NCMAT v5\n@DENSITY\n 1.0 g_per_cm3\n")


def config_limits():
    from matconcept.encoders.structure_io import ParseLimits

    return ParseLimits()


def test_corpus_cli_builds_and_caches(tmp_path):
    out = tmp_path / "corpus"
    cmd = [sys.executable, "-m", "matconcept.service.cli", "corpus", "build", "--out", str(out), "--target", "400"]
    cmd += ["--max-sites", "16", "--cache", str(tmp_path / "cache"), "--workers", "1"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    assert summary["count"] == 400 and summary["featurized"] == 400
    with gzip.open(out / "structures.jsonl.gz", "rt") as fh:
        assert sum(1 for _ in fh) == 400


# -------------------------------------------------------------------------------------------- cache


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("small")
    build_corpus(CorpusConfig(target=300, max_sites=16), root / "corpus")
    return root, load_records(root / "corpus")


def test_cache_is_reused_and_batches_match_the_featurizer(small_corpus):
    from matconcept.encoders.featurize import Featurizer

    root, records = small_corpus
    t0 = time.perf_counter()
    store = build_cache(records, root / "cache", workers=1)
    first = time.perf_counter() - t0
    files = sorted((root / "cache").rglob("*.pt"))
    t0 = time.perf_counter()
    again = build_cache(records, root / "cache", workers=1)
    assert sorted((root / "cache").rglob("*.pt")) == files
    assert time.perf_counter() - t0 < first
    assert torch.equal(store.x, again.x) and torch.equal(store.xrd_val, again.xrd_val)
    assert bool(store.ok.all())
    idx = torch.tensor([3, 0, 17])
    batch = collate(store, idx)
    feat = Featurizer()
    for row, i in enumerate(idx.tolist()):
        s = records[i].structure()
        assert torch.allclose(batch.xrd[row], torch.from_numpy(feat.pattern(s)))
        data = feat.graph.featurize(s)
        assert int((batch.batch == row).sum()) == data.num_nodes
    assert batch.edge_index.max() < batch.x.shape[0]


def test_structure_augmentations_leave_the_embedding_unchanged(small_corpus, random_model):
    root, records = small_corpus
    store = build_cache(records, root / "cache", workers=1)
    idx = torch.arange(0, 40, 3)
    model = random_model.model.eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        plain = model.crystal(collate(store, idx))
        aug = StructureAugment(permute_sites=True, supercell_probability=1.0, max_supercell=3)
        augmented_batch = collate(store, idx, augment=aug, generator=gen)
        moved = model.crystal(augmented_batch)
    assert augmented_batch.x.shape[0] > collate(store, idx).x.shape[0]  # supercells really were built
    assert torch.allclose(plain, moved, atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------------------------------ augment


def test_xrd_augmentation_looks_measured_and_keeps_clean_when_disabled():
    patterns = torch.zeros(6, 5000)
    peak = 2000  # 2θ = 50.01°
    patterns[:, peak] = 1.0
    patterns[:, 3000] = 0.4
    assert augment_patterns(patterns, XRDAugment(enabled=False)) is patterns
    cfg = XRDAugment(enabled=True, probability=1.0)
    out = augment_patterns(patterns, cfg, generator=torch.Generator().manual_seed(1))
    assert out.shape == patterns.shape and torch.all(out >= 0)
    assert torch.allclose(out.amax(1), torch.ones(6))
    assert int((out > 0.05).sum(1).min()) > 3  # broadened: a stick became a peak of several bins
    # Bragg: ±2 % strain and ±0.1° zero shift keep the peak within ~1.1° of 50°.
    centre = out.argmax(1).float()
    assert torch.all((centre - peak).abs() < 1.2 / 0.02)
    again = augment_patterns(patterns, cfg, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out, again)  # reproducible with a generator
    pure_shift = XRDAugment(
        enabled=True,
        probability=1.0,
        fwhm=(0.02, 0.02),
        strain=0.0,
        intensity_sigma=0.0,
        background=0.0,
        noise_counts=(1e12, 1e12),
        lorentz_fraction=(0.0, 0.0),
    )
    shifted = augment_patterns(patterns, pure_shift, generator=torch.Generator().manual_seed(2))
    assert torch.all((shifted.argmax(1) - peak).abs() <= 0.1 / 0.02 + 1)


def _reference_cgcnn_conv(self, x, edge_index, edge_attr):
    """The CGCNN convolution as first written: one Linear over the concatenated [v_i | v_j | u_ij]."""
    from torch_geometric.utils import scatter

    src, dst = edge_index
    z = self.bn_edge(self.lin(torch.cat([x[dst], x[src], edge_attr], dim=-1)))
    gate, core = z.chunk(2, dim=-1)
    summed = scatter(torch.sigmoid(gate) * F.softplus(core), dst, 0, dim_size=x.shape[0], reduce="sum")
    return F.softplus(x + self.bn_node(summed))


def test_fast_cpu_step_matches_the_reference_formulas(small_corpus, monkeypatch):
    """The trainer's sped-up step (issue 17) gives the loss and gradients of the formulas as first written."""
    from matconcept.encoders import cgcnn
    from matconcept.encoders.dual_encoder import DualEncoder, ModelConfig
    from matconcept.training import augment
    from matconcept.training.trainer import TrainConfig, train_step

    root, records = small_corpus
    store = build_cache(records, root / "cache", workers=1)
    config = TrainConfig(
        model=ModelConfig(hidden=8, crystal_head=(16,), xrd_channels=4, xrd_head=(16,), embedding_dim=16),
        xrd_augment=XRDAugment(enabled=True, probability=1.0),
        batch_size=24,
    )
    groups = torch.arange(len(records))

    def step() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        torch.manual_seed(0)
        model = DualEncoder(config.model).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        batch = collate(store, torch.arange(0, 72, 3))
        loss = train_step(model, optimizer, batch, config, groups, torch.Generator().manual_seed(5), bf16=False)
        return loss, {k: p.grad for k, p in model.named_parameters()}

    fast_loss, fast_grads = step()
    with monkeypatch.context() as m:
        gaussian = lambda self, d: torch.exp(-(((d[:, None] - self.centers) / self.width) ** 2))  # noqa: E731
        m.setattr(cgcnn.GaussianDistance, "forward", gaussian)
        m.setattr(cgcnn.CGCNNConv, "forward", _reference_cgcnn_conv)
        grouped = lambda x, k: F.conv1d(x[None], k[:, None], padding=k.shape[1] // 2, groups=x.shape[0])[0]  # noqa: E731
        m.setattr(augment, "broaden", grouped)
        ref_loss, ref_grads = step()
    torch.testing.assert_close(fast_loss, ref_loss, rtol=1e-5, atol=1e-6)
    scale = max(float(g.abs().max()) for g in ref_grads.values())
    for name, grad in ref_grads.items():
        # Biases right before a BatchNorm have zero true gradient: theirs is rounding noise, hence the atol.
        torch.testing.assert_close(fast_grads[name], grad, rtol=1e-4, atol=1e-5 * scale, msg=name)


# ---------------------------------------------------------------------------------------- trainer


def _write_config(path: Path, root: Path, **overrides) -> Path:
    config = yaml.safe_load(TINY.read_text())
    config.update(corpus=str(root / "corpus"), cache=str(root / "cache"), run_dir=str(root / "run"))
    config.update(overrides)
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    """The tiny config's corpus and cache, built once (through the trainer's own preparation)."""
    from matconcept.training.trainer import TrainConfig, prepare_data

    root = tmp_path_factory.mktemp("tiny")
    config = TrainConfig.from_yaml(_write_config(root / "prep.yaml", root))
    prepare_data(config)
    return root


def _matconcept(*args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "matconcept.service.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


@pytest.mark.slow
def test_tiny_config_learns_well_above_chance(tiny_root, tmp_path):
    from matconcept.encoders.checkpoint import load_checkpoint
    from matconcept.encoders.embedder import Embedder

    config = _write_config(tmp_path / "tiny.yaml", tiny_root, run_dir=str(tmp_path / "run"))
    result = _matconcept("train", "--config", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 13))
    chance = rows[0]["val_chance_top1"]
    best = max(r["val_xrd_top1"] for r in rows)
    assert best >= 3 * chance, rows
    assert max(r["val_xrd_top10"] for r in rows) >= 2.5 * 10 * chance
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    loaded = load_checkpoint(tmp_path / "run" / "best")
    assert loaded.info.training["val"]["xrd_top1"] == pytest.approx(best)
    crystal, xrd = Embedder(loaded).embed_structures([load_records(tiny_root / "corpus")[0].structure()])
    assert crystal.shape == xrd.shape == (1, 64) and np.isfinite(crystal).all()


@pytest.mark.slow
def test_resume_after_sigkill_continues_with_the_same_state(tiny_root, tmp_path):
    from matconcept.training.trainer import TrainConfig, load_state, train

    # The thread count is pinned: CPU kernels sum in a thread-dependent order, and this test compares bits.
    overrides = {"epochs": 8, "max_train": 320, "max_eval": 64, "batch_size": 64, "torch_threads": 2}
    config_path = _write_config(tmp_path / "resume.yaml", tiny_root, run_dir=str(tmp_path / "killed"), **overrides)
    run = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "matconcept.service.cli", "train", "--config", str(config_path)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        metrics = run / "metrics.jsonl"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
            break
        assert proc.poll() is None, "training ended before it could be killed"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    saved = load_state(run / "state.pt")
    killed_at = saved["state"]["epoch"]
    assert 1 <= killed_at < 8
    assert TrainConfig.model_validate_json(saved["config"]) == TrainConfig.from_yaml(config_path)

    result = _matconcept("train", "--config", str(config_path), "--resume")
    assert result.returncode == 0, result.stderr[-3000:]
    epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs[-1] == 8 and sorted(set(epochs)) == list(range(1, 9))
    assert f"resumed {run} at epoch {killed_at}" in result.stderr

    # An uninterrupted run with the same config ends in the same model and optimizer state.
    reference = TrainConfig.from_yaml(config_path).model_copy(update={"run_dir": tmp_path / "reference"})
    train(reference, progress=False)
    resumed, straight = load_state(run / "state.pt"), load_state(tmp_path / "reference" / "state.pt")
    assert resumed["state"]["epoch"] == straight["state"]["epoch"] == 8
    for key, value in straight["model"].items():
        assert torch.allclose(resumed["model"][key].float(), value.float(), atol=1e-5), key
    opt_a, opt_b = resumed["optimizer"]["state"], straight["optimizer"]["state"]
    assert opt_a.keys() == opt_b.keys()
    for k in opt_b:
        assert torch.allclose(opt_a[k]["exp_avg"], opt_b[k]["exp_avg"], atol=1e-5)
        assert float(opt_a[k]["step"]) == float(opt_b[k]["step"])


def test_resume_refuses_a_different_config(tiny_root, tmp_path):
    from matconcept.training.trainer import TrainConfig, save_state

    config_path = _write_config(tmp_path / "a.yaml", tiny_root, run_dir=str(tmp_path / "run"))
    config = TrainConfig.from_yaml(config_path)
    from matconcept.encoders.dual_encoder import DualEncoder
    from matconcept.training.trainer import TrainState

    model = DualEncoder(config.model)
    (tmp_path / "run").mkdir()
    save_state(tmp_path / "run" / "state.pt", config, model, torch.optim.Adam(model.parameters()), TrainState())
    changed = _write_config(tmp_path / "b.yaml", tiny_root, run_dir=str(tmp_path / "run"), lr=0.01)
    result = _matconcept("train", "--config", str(changed), "--resume", timeout=120)
    assert result.returncode != 0
    assert "different config" in result.stderr


def test_cache_built_by_the_pool_matches_one_process(small_corpus, tmp_path, monkeypatch):
    from matconcept.training import cache

    _, records = small_corpus
    records = records[:90]
    monkeypatch.setattr(cache, "SHARD_SIZE", 40)  # three shards cut from one pool's ordered stream
    pooled = build_cache(records, tmp_path / "pooled", workers=2)
    assert len(list((tmp_path / "pooled").rglob("*.pt"))) == 3
    single = build_cache(records, tmp_path / "single", workers=1)
    for key in cache.STORE_KEYS:
        assert torch.equal(getattr(pooled, key), getattr(single, key)), key


def test_evaluate_notions_on_the_substituted_test_split(small_corpus, capsys):
    """``evaluate-notions --corpus``: every notion of the shipped model on the corpus's held-out prototype
    groups (substitutions of seeds never trained on), and a clear error for a folder that is no corpus."""
    from matconcept.service.cli import main

    root, records = small_corpus
    test = [r for r in records if r.split == "test"]
    assert main(["evaluate-notions", "--corpus", str(root / "corpus"), "--baselines", "--device", "cpu"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_structures"] == len(test)
    assert {"concept", "structure", "hybrid (z-scored sum)", "hybrid (rank fusion)"} <= set(report["notions"])
    structure = report["notions"]["structure"]
    # substitution keeps the structure type: the chemistry-blind notion groups a seed's variants together
    assert structure["structure_type"] > report["notions"]["concept"]["structure_type"]
    assert main(["evaluate-notions", "--corpus", str(root), "--baselines"]) == 2
    assert "not a built corpus" in capsys.readouterr().err
