"""``matconcept embed`` as a user runs it: a real subprocess over real and hostile files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from matconcept.encoders.xrd import XRDSimulator
from tests.data import cod_cif

STRUCTURES = ["BaTiO3_cubic", "GaAs", "vo2-m1"]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "matconcept.service.cli", "embed", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_embed_directory_with_bad_files(tmp_path, hostile_dir):
    inputs = tmp_path / "in"
    (inputs / "nested").mkdir(parents=True)
    for name in STRUCTURES:
        shutil.copy(cod_cif(name), inputs / "nested" / f"{name}.cif")
    bad_dir, expected = hostile_dir
    for name in ("empty.cif", "nan_coordinates.cif", "unknown_element.cif"):
        shutil.copy(bad_dir / name, inputs / name)
    out = tmp_path / "vectors.jsonl"
    proc = _run(str(inputs), "--output", str(out), "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 6
    ok = [line for line in lines if "vector" in line]
    errors = {Path(line["source"]).name: line["error"] for line in lines if "error" in line}
    assert {Path(line["source"]).stem for line in ok} == set(STRUCTURES)
    assert {name: err["reason"] for name, err in errors.items()} == {
        name: expected[name] for name in ("empty.cif", "nan_coordinates.cif", "unknown_element.cif")
    }
    assert all(name in err["message"] for name, err in errors.items())
    by_id = {line["id"]: line for line in ok}
    assert by_id["2100862"]["formula"] == "BaTiO3"  # COD id taken from _cod_database_code
    assert len({line["model"] for line in ok}) == 1
    vectors = np.array([line["vector"] for line in ok])
    assert vectors.shape == (3, 1024) and np.isfinite(vectors).all()
    assert np.linalg.norm(vectors[0] - vectors[1]) > 1e-3


def test_embed_xrd_pattern_file_matches_structure_pattern_embedding(tmp_path, batio3):
    from matconcept.encoders.embedder import Embedder
    from matconcept.encoders.xrd import XRDSettings

    settings = XRDSettings()
    pattern = XRDSimulator(settings).pattern(batio3)
    two_theta = settings.two_theta_min + settings.step * (np.arange(settings.n_bins) + 0.5)
    xy = tmp_path / "batio3.xy"
    np.savetxt(xy, np.column_stack([two_theta, pattern * 1000]), header="2theta intensity")
    (tmp_path / "broken.xy").write_text("2theta intensity\nfoo bar\n")
    proc = _run(str(xy), str(tmp_path / "broken.xy"), "--modality", "xrd")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert lines[1]["error"]["reason"] == "bad_pattern" and "broken.xy" in lines[1]["error"]["message"]
    got = np.array(lines[0]["vector"])
    direct = Embedder(device="cpu").embed_patterns(pattern[None, :])[0]  # the CLI's default model
    assert np.linalg.norm(got - direct) < 1e-3 * max(1.0, np.linalg.norm(direct))
