"""Batch ingest on real parts: the crystals package's COD CIFs, archives, pymatgen JSON, the hostile set.

Counts in the summary and the failure report are derived from the input files themselves; a real
``matconcept ingest`` subprocess is SIGKILLed mid-run and the re-run must end with exactly the
expected points.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from matconcept.encoders.builtin import ase_cifs, crystals_cifs, package_dir
from matconcept.encoders.embedder import Embedder
from matconcept.service.ingest.local import builtin_items, ingest, ingest_builtin
from matconcept.service.store import PointIn, SearchFilters
from matconcept.service.store.edge import EdgeStore

PYMATGEN_SAMPLES = ("LiFePO4", "SrTiO3")


@pytest.fixture(scope="module")
def embedder(random_model) -> Embedder:
    return Embedder(random_model, device="cpu")


@pytest.fixture
def collection(tmp_path, embedder):
    with EdgeStore(tmp_path / "db" / "c", embedder.model_id, embedder.dim) as store:
        yield store


def _mixed_inputs(root: Path, hostile: tuple[Path, dict[str, str]]) -> dict[str, str]:
    """Write a mixed input tree; return entry stem → expected failure reason ("" = stored)."""
    expected: dict[str, str] = {}
    (root / "cod").mkdir(parents=True)
    for path in crystals_cifs():
        shutil.copy(path, root / "cod" / path.name)
        expected[path.stem] = ""
    (root / "copies" / "deep").mkdir(parents=True)
    shutil.copy(crystals_cifs()[0], root / "copies" / "deep" / crystals_cifs()[0].name)  # a duplicate
    bad_dir, reasons = hostile
    shutil.copytree(bad_dir, root / "hostile")
    expected.update({Path(name).stem: reason for name, reason in reasons.items()})
    (root / "archives").mkdir()
    with tarfile.open(root / "archives" / "minerals.tar.gz", "w:gz") as tar:
        for path in ase_cifs():
            tar.add(path, arcname=f"cif/{path.name}")
            expected[path.stem] = ""
    samples = package_dir("pymatgen") / "util" / "structures"
    with zipfile.ZipFile(root / "archives" / "samples.zip", "w") as archive:
        for name in PYMATGEN_SAMPLES:
            archive.write(samples / f"{name}.json", arcname=f"json/{name}.json")
            expected[name] = ""
    return expected


def _report(path: Path) -> dict[str, dict]:
    return {Path(line["path"]).stem: line for line in map(json.loads, path.read_text().splitlines())}


def test_ingest_mixed_collection_exact_counts_and_report(tmp_path, collection, embedder, hostile_dir):
    expected = _mixed_inputs(tmp_path / "in", hostile_dir)
    good = {stem for stem, reason in expected.items() if not reason}
    bad = {stem: reason for stem, reason in expected.items() if reason}
    report = tmp_path / "report.jsonl"
    summary = ingest([tmp_path / "in"], collection, embedder, workers=1, batch=16, report=report, progress=False)
    duplicates = 1
    assert summary.model_dump() == {
        "read": len(expected) + duplicates,
        "added": len(good),
        "updated": 0,
        "unchanged": duplicates,
        "failed": len(bad),
        "seconds": summary.seconds,
    }
    assert set(collection.iter_ids()) == {f"user:{stem}" for stem in good}
    lines = _report(report)
    assert {stem: line["reason"] for stem, line in lines.items()} == bad
    for stem, line in lines.items():
        assert line["id"] == f"user:{stem}" and Path(line["path"]).name in line["message"]
    disordered = collection.get(["user:partial_occupancy"])[0].payload
    assert disordered.disordered and disordered.elements == ["Ba", "O", "Sr", "Ti"]
    lfp = collection.get(["user:LiFePO4"])[0].payload
    assert lfp.formula == "LiFePO4" and lfp.n_elements == 4 and lfp.n_sites == 28

    again = ingest([tmp_path / "in"], collection, embedder, workers=1, batch=16, progress=False)
    assert (again.read, again.added, again.updated, again.unchanged, again.failed) == (
        summary.read, 0, 0, len(good) + duplicates, len(bad)
    )  # fmt: skip
    assert collection.count() == len(good)


def test_cod_ids_last_version_wins_edits_update_and_force(tmp_path, collection, embedder):
    """A COD mirror (cif/2/10/08/2100862.cif) and a CIF named otherwise give the same COD id."""
    from tests.data import cod_cif

    batio3 = cod_cif("BaTiO3_cubic")
    mirror = tmp_path / "cod" / "cif" / "2" / "10" / "08"
    mirror.mkdir(parents=True)
    shutil.copy(batio3, mirror / "2100862.cif")
    (tmp_path / "cod" / "z_newer").mkdir()
    (tmp_path / "cod" / "z_newer" / "BaTiO3.cif").write_text(batio3.read_text() + "\n# corrected\n")
    shutil.copy(cod_cif("GaAs"), tmp_path / "cod" / "GaAs.cif")
    for _ in range(2):  # a re-run must leave the same, last version stored
        summary = ingest([tmp_path / "cod"], collection, embedder, source="cod", workers=1, progress=False)
        assert summary.read == 3 and summary.failed == 0
        assert sorted(collection.iter_ids()) == ["cod:2100862", "cod:9008845"]
        stored = collection.content_hashes(["cod:2100862"])["cod:2100862"]
        from matconcept.service.store.payload import content_hash

        assert stored == content_hash((tmp_path / "cod" / "z_newer" / "BaTiO3.cif").read_bytes())
    record = collection.get(["cod:2100862"])[0].payload
    assert record.cod_id == "2100862" and record.source == "cod" and record.spacegroup_number == 221

    gaas = tmp_path / "cod" / "GaAs.cif"
    gaas.write_text(gaas.read_text() + "\n# edited\n")
    edited = ingest([tmp_path / "cod"], collection, embedder, source="cod", workers=1, progress=False)
    # BaTiO3's two versions are both rewritten (older first, newer last); GaAs changed.
    assert (edited.added, edited.updated, edited.unchanged) == (0, 3, 0)
    gaas.write_text(gaas.read_text())  # same bytes again
    rerun = ingest([tmp_path / "cod"], collection, embedder, source="cod", workers=1, progress=False)
    assert (rerun.added, rerun.updated, rerun.unchanged) == (0, 2, 1)
    forced = ingest([tmp_path / "cod"], collection, embedder, source="cod", workers=1, force=True, progress=False)
    assert (forced.added, forced.updated, forced.unchanged, forced.failed) == (0, 3, 0, 0)
    assert collection.count() == 2


def test_ingest_builtin(tmp_path, collection, embedder):
    items = list(builtin_items())
    ids = [label.material_id for _, label in items]
    summary = ingest_builtin(collection, embedder, workers=2, progress=False, report=tmp_path / "r.jsonl")
    assert summary.read == len(items)
    assert summary.added + summary.updated + summary.unchanged + summary.failed == summary.read
    assert summary.added + summary.failed <= len(set(ids)) == collection.count() + summary.failed
    assert collection.count(SearchFilters(sources=["aflow"])) > 250
    nacl = collection.search(collection.get(["aflow:AB_cF8_225_a_b"], with_vectors=True)[0].vectors["crystal"], k=1)
    assert nacl[0].payload.tags["aflow"] == "AB_cF8_225_a_b"
    _every_builtin_downloads_as_its_structure(collection, items)


def _every_builtin_downloads_as_its_structure(store, items) -> None:
    """Each stored built-in downloads as a CIF that matches its stored primitive cell, and (every 10th)
    the structure as shipped; the shipped CIFs keep their file, in-memory AFLOW/pymatgen ones have none."""
    from matconcept.encoders.builtin import builtin_structures
    from matconcept.service.store.structures import render
    from tests.structure_match import matches

    files = {label.material_id: entry.data for entry, label in items if label.source == "cod"}  # last one wins
    kept = store.get_structures([label.material_id for _, label in items])
    assert len(kept) == store.count() and {m.split(":")[0] for m in kept} == {"aflow", "cod", "pymatgen"}
    shipped = {item.material_id: item for item in builtin_structures()}
    for i, (material_id, stored) in enumerate(sorted(kept.items())):
        cif = render(material_id, stored, "cif").content
        assert matches(cif, "cif", stored.pymatgen()), material_id
        if i % 10 == 0:
            assert matches(cif, "cif", shipped[material_id].parse().structure), material_id
        assert stored.original() == files.get(material_id)
    cod = next(m for m in kept if m.startswith("cod:"))
    assert kept[cod].original_name.endswith(".cif") and "_cell_length_a" in render(cod, kept[cod], "original").content


def test_builtin_structures_have_one_id_everywhere():
    """Ingest stores, the corpus seeds from and evaluation labels a shipped structure under one id."""
    from matconcept.encoders.structure_io import ParseLimits
    from matconcept.training.corpus import builtin_seeds
    from matconcept.training.evaluation.items import builtin_items as evaluation_items

    stored = [label.material_id for _, label in builtin_items()]
    aflow = [m for m in stored if m.startswith("aflow:")]
    # pymatgen ships some AFLOW labels more than once (A_oC8_64_f: α-Ga, black P, I2): repeats are numbered.
    assert len(aflow) == len(set(aflow)) == 288 and {"aflow:A_oC8_64_f-2", "aflow:A_oC8_64_f-3"} <= set(aflow)
    assert {"cod", "pymatgen"} <= {m.split(":")[0] for m in stored}
    seeds = [r.id for r in builtin_seeds(ParseLimits(max_sites=64)) if r.source != "ncrystal"]
    assert len(seeds) > 300 and set(seeds) <= set(stored)
    assert [item.id for item in evaluation_items("all")] == aflow


def test_ingest_workers_load_neither_torch_nor_pyg():
    """The pool workers' modules (the pool and ingest's work) import no torch or PyG: the workers' server
    starts in under a second (it took ~4 s with them), and the graphs travel as numpy arrays."""
    code = "import sys, matconcept.encoders.pipeline, matconcept.service.ingest.prepare; "
    code += "print([m for m in ('torch', 'torch_geometric') if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_points_of_a_batch_are_checked_for_finite_vectors(embedder):
    """A batch of finite vectors makes its points without per-point validation, the same points as the
    validated constructor; a non-finite vector still fails its batch (ingest then embeds one by one)."""
    import numpy as np

    from matconcept.encoders.sources import iter_entries
    from matconcept.encoders.structure_io import ParseLimits
    from matconcept.service.ingest.local import label_entry, points_from_prepared, prepare_entry

    entries = list(iter_entries(crystals_cifs()[:3]))
    prepared = [prepare_entry((e, label_entry(e, "cod")), embedder.featurizer, ParseLimits()) for e in entries]
    points = points_from_prepared(prepared, embedder)
    for point in points:
        checked = PointIn(**{name: getattr(point, name) for name in PointIn.model_fields})
        assert checked.stored_payload() == point.stored_payload()
        assert all(np.array_equal(getattr(checked, n), getattr(point, n)) for n in ("crystal", "xrd", "structure_type"))

    class NaNEmbedder:
        def embed(self, graphs):
            vectors = embedder.embed(graphs)
            vectors["xrd"][1, 0] = np.nan
            return vectors

    with pytest.raises(ValueError, match="NaN"):
        points_from_prepared(prepared, NaNEmbedder())


def _cli(*args: str, **kwargs) -> list[str]:
    return [sys.executable, "-m", "matconcept.service.cli", *args]


def test_killed_ingest_resumes_to_exactly_the_expected_points(tmp_path, hostile_dir):
    from matconcept.encoders.checkpoint import resolve_model

    cli_model = resolve_model(None, "cpu")  # the model the `matconcept ingest` subprocess uses
    inputs = tmp_path / "in"
    (inputs / "cod").mkdir(parents=True)
    for path in crystals_cifs():
        shutil.copy(path, inputs / "cod" / path.name)
    # The hostile set without big_cell.cif (seconds to parse): failures must come back from the pool.
    hostile = {n: r for n, r in hostile_dir[1].items() if n != "big_cell.cif"}
    (inputs / "hostile").mkdir()
    for name in hostile:
        shutil.copy(hostile_dir[0] / name, inputs / "hostile" / name)
    good = {p.stem for p in crystals_cifs()} | {Path(n).stem for n, r in hostile.items() if not r}
    db = tmp_path / "db"
    env = {**os.environ, "MATCONCEPT_HOME": str(tmp_path / "home")}
    args = ["ingest", str(inputs), "--db", str(db), "--batch", "8", "--report", str(tmp_path / "r.jsonl")]
    proc = subprocess.Popen(
        _cli("-v", *args, "--workers", "1"), stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    stored_batches = 0
    deadline = time.monotonic() + 240
    while stored_batches < 3 and time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        stored_batches += "matconcept.service.ingest.local: stored 8 points" in line
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL and stored_batches == 3, "the ingest must be killed mid-way"

    collection = db / f"matconcept-{cli_model.model_id}"
    with EdgeStore(collection, cli_model.model_id) as store:
        survived = store.iter_ids()
    assert len(survived) == len(set(survived)) >= 24 and len(survived) < len(good)
    assert set(survived) <= {f"user:{stem}" for stem in good}

    done = subprocess.run(_cli(*args, "--workers", "2"), capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    n_bad = sum(1 for r in hostile.values() if r)
    assert summary["read"] == len(good) + n_bad and summary["failed"] == n_bad
    assert summary["unchanged"] == len(survived) and summary["added"] == len(good) - len(survived)
    with EdgeStore(collection, cli_model.model_id) as store:
        final = store.iter_ids()
        assert sorted(final) == sorted(f"user:{stem}" for stem in good)
        assert store.count() == len(good)
        for record in store.get(final[:5], with_vectors=True):
            assert len(record.vectors["crystal"]) == len(record.vectors["xrd"]) == cli_model.info.model.embedding_dim


def test_points_of_an_older_payload_version_are_completed_by_a_plain_rerun(tmp_path, collection, embedder):
    """A store written before structures were kept re-ingests those points without ``--force``."""
    from tests.data import cod_cif

    folder = tmp_path / "cifs"
    folder.mkdir()
    shutil.copy(cod_cif("GaAs"), folder / "GaAs.cif")
    first = ingest([folder], collection, embedder, source="cod", workers=1, progress=False)
    assert first.added == 1
    (record,) = collection.get(["cod:9008845"], with_vectors=True)
    old = PointIn(  # as an older version wrote it: metadata and vectors, no structure, no version
        payload=record.payload.model_copy(update={"payload_version": 0}),
        crystal=record.vectors["crystal"],
        xrd=record.vectors["xrd"],
    )
    collection.upsert([old])
    assert collection.get_structures(["cod:9008845"]) == {"cod:9008845": None}
    assert collection.content_hashes(["cod:9008845"]) == {"cod:9008845": ""}

    rerun = ingest([folder], collection, embedder, source="cod", workers=1, progress=False)
    assert (rerun.added, rerun.updated, rerun.unchanged) == (0, 1, 0)
    assert collection.get_structures(["cod:9008845"])["cod:9008845"] is not None
    again = ingest([folder], collection, embedder, source="cod", workers=1, progress=False)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 1)


def test_reembed_adds_the_structure_vector_and_touches_nothing_else(tmp_path, collection, embedder):
    """``ingest --reembed``: points stored by a model without a structure-type encoder, re-embedded from their
    kept structures into the collection of a checkpoint that has one (and again in place): same payloads,
    the same concept and XRD vectors, a structure vector each; a point without a kept structure is skipped."""
    import numpy as np
    import torch

    from matconcept.encoders.checkpoint import load_checkpoint, save_checkpoint, with_structure_type
    from matconcept.encoders.structure_type import StructureTypeEncoder
    from matconcept.service.ingest.reembed import reembed

    ingest(crystals_cifs()[:4], collection, embedder, source="cod", workers=1, progress=False)
    bare = collection.get([collection.iter_ids()[0]], with_vectors=True)[0]
    collection.upsert(
        [
            PointIn(
                payload=bare.payload.model_copy(update={"material_id": "old:1", "source": "old", "source_id": "1"}),
                crystal=bare.vectors["crystal"],
                xrd=bare.vectors["xrd"],
            )
        ]
    )
    before = {pl["material_id"]: (pl, v) for page in collection.scroll_raw() for pl, v in page}
    torch.manual_seed(0)
    save_checkpoint(with_structure_type(embedder.model, StructureTypeEncoder()), tmp_path / "typed")
    typed = Embedder(load_checkpoint(tmp_path / "typed"), device="cpu")
    assert typed.model_id != embedder.model_id
    with EdgeStore(tmp_path / "db" / "typed", typed.model_id, typed.dim, structure_dim=typed.structure_dim) as target:
        summary = reembed(collection, target, typed, progress=False)
        assert (summary.read, summary.reembedded, summary.skipped, summary.failed) == (5, 4, 1, 0)
        after = {pl["material_id"]: (pl, v) for page in target.scroll_raw() for pl, v in page}
        assert set(after) == set(before) - {"old:1"}
        for mid, (payload, vectors) in after.items():
            assert payload == before[mid][0]
            assert len(vectors["structure"]) == typed.structure_dim
            for name in ("crystal", "xrd", "fingerprint"):
                assert np.allclose(vectors[name], before[mid][1][name], atol=1e-5), (mid, name)
        again = reembed(target, target, typed, progress=False)
        assert again.reembedded == 4 and target.count() == 4
