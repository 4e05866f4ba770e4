"""``matconcept search`` over a real embedded store of the crystals package's COD CIFs.

Most cases call the console script's ``main()`` in this process (same code a user runs, without a
process start each); one case runs it as a real subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from matconcept.encoders.builtin import crystals_cifs
from matconcept.service.cli import main
from matconcept.service.store.edge import EdgeStore
from tests.data import cod_cif


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    """A store with every crystals CIF (source cod), embedded by the model the CLI uses by default."""
    from matconcept.encoders.checkpoint import resolve_model
    from matconcept.encoders.embedder import Embedder
    from matconcept.service.ingest.local import ingest
    from matconcept.service.store import StoreSettings, open_store

    root = tmp_path_factory.mktemp("search")
    embedder = Embedder(resolve_model(None, "cpu"), device="cpu")
    settings = StoreSettings(db=root / "db", home=root / "home")
    with open_store(settings, embedder.model_id, embedder.dim, embedder.structure_dim) as store:
        ingest(crystals_cifs(), store, embedder, source="cod", workers=1, progress=False)
        payloads = [r.payload for r in store.get(store.iter_ids())]
    return root / "db", embedder, payloads


def _search(capsys, db, *args: str) -> tuple[int, str, str]:
    code = main(["search", *args, "--db", str(db[0]), "--device", "cpu"])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_search_by_cif_file_prints_a_table(capsys, db):
    # One notion, so the distances are in one space and sorted (the default, hybrid, ranks by fused score).
    code, out, _ = _search(capsys, db, str(cod_cif("BaTiO3_cubic")), "--top-k", "4", "--using", "crystal")
    assert code == 0
    rows = [line.split() for line in out.splitlines()[2:]]
    assert len(rows) == 4 and [r[0] for r in rows] == ["1", "2", "3", "4"]
    assert rows[0][1:3] == ["cod:2100862", "BaTiO3"] and float(rows[0][-1]) < 1e-3
    distances = [float(r[-1]) for r in rows]
    assert distances == sorted(distances)


def test_search_by_id_with_filters_json(capsys, db):
    _, _, payloads = db
    with_oxygen = {p.material_id for p in payloads if "O" in p.elements and p.n_sites <= 10}
    code, out, _ = _search(
        capsys, db, "cod:2100862", "--top-k", "200", "--filter", "elements_all=O", "--filter", "max_sites=10", "--json"
    )
    assert code == 0
    result = json.loads(out)
    ids = [h["material_id"] for h in result["hits"]]
    assert set(ids) == with_oxygen and 0 < len(ids) < len(payloads)
    assert ids[0] == "cod:2100862" and result["hits"][0]["distance"] < 1e-3
    assert all("O" in h["payload"]["elements"] and h["payload"]["n_sites"] <= 10 for h in result["hits"])
    assert [h["rank"] for h in result["hits"]] == list(range(1, len(ids) + 1))
    code, out, _ = _search(capsys, db, "cod:2100862", "--filter", "chemical_system=Ti-O-Ba", "--json")
    assert [h["material_id"] for h in json.loads(out)["hits"]] == [
        p.material_id for p in payloads if set(p.elements) == {"Ba", "O", "Ti"}
    ]


def test_search_by_xrd_pattern(capsys, db, tmp_path, batio3):
    from matconcept.encoders.xrd import XRDSettings, XRDSimulator

    settings = XRDSettings()
    pattern = XRDSimulator(settings).pattern(batio3)
    two_theta = settings.two_theta_min + settings.step * (np.arange(settings.n_bins) + 0.5)
    xy = tmp_path / "measured.xy"
    np.savetxt(xy, np.column_stack([two_theta, 1000 * pattern]))
    code, out, _ = _search(capsys, db, "--xrd", str(xy), "--using", "xrd", "--top-k", "3", "--json")
    assert code == 0
    hits = json.loads(out)["hits"]
    assert hits[0]["material_id"] == "cod:2100862" and hits[0]["distance"] < 0.05 * max(1.0, hits[1]["distance"])
    code, out, _ = _search(capsys, db, "--xrd", str(xy), "--top-k", "5", "--json")  # cross-modal
    cross = json.loads(out)
    assert code == 0 and cross["using"] == "crystal" and len(cross["hits"]) == 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cod:0000000"], "no stored material with this id"),
        (["no-such-file.cif"], "no such file"),
        (["cod:2100862", "--filter", "elements_all=Xx"], "'Xx' is not an element symbol"),
        (["cod:2100862", "--filter", "spacegroup=225"], "spacegroup: Extra inputs are not permitted"),
        (["cod:2100862", "--filter", "min_sites"], "is not KEY=VALUE"),
        (["cod:2100862", "--xrd", "x.xy"], "exactly one of QUERY or --xrd"),
        (["cod:2100862", "--top-k", "0"], "--top-k must be at least 1"),
    ],
)
def test_bad_input_gets_a_clear_error(capsys, db, args, message):
    code, out, err = _search(capsys, db, *args)
    assert code == 2 and message in err and "Traceback" not in err and out == ""


def test_bad_pattern_and_missing_store(capsys, db, tmp_path):
    bad = tmp_path / "bad.xy"
    bad.write_text("2theta intensity\nfoo bar\n")
    code, _, err = _search(capsys, db, "--xrd", str(bad))
    assert code == 2 and "bad.xy" in err
    code = main(["search", "cod:1", "--db", str(tmp_path / "empty"), "--device", "cpu"])
    assert code == 2 and "run `matconcept ingest`" in capsys.readouterr().err


def test_search_subprocess_reports_a_store_owned_by_another_process(db):
    directory, embedder, _ = db
    command = [
        sys.executable,
        "-m",
        "matconcept.service.cli",
        "search",
        "cod:2100862",
        "--db",
        str(directory),
        "--json",
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["hits"][0]["material_id"] == "cod:2100862"
    with EdgeStore(directory / f"matconcept-{embedder.model_id}", embedder.model_id):
        proc = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2 and "in use by another process" in proc.stderr and "Traceback" not in proc.stderr


def test_search_output_formats_table_json_csv(capsys, db):
    """--format table|json|csv print the same hits; --json is --format json; the two must agree."""
    import csv
    import io

    args = ("cod:2100862", "--top-k", "5")
    _, table, _ = _search(capsys, db, *args, "--format", "table")
    _, as_json, _ = _search(capsys, db, *args, "--format", "json")
    _, alias, _ = _search(capsys, db, *args, "--json")
    code, as_csv, _ = _search(capsys, db, *args, "--format", "csv")
    assert code == 0 and json.loads(as_json) == json.loads(alias)
    hits = json.loads(as_json)["hits"]
    rows = list(csv.DictReader(io.StringIO(as_csv)))
    assert (
        [r["material_id"] for r in rows]
        == [h["material_id"] for h in hits]
        == [line.split()[1] for line in table.splitlines()[2:]]
    )
    assert [int(r["rank"]) for r in rows] == [1, 2, 3, 4, 5]
    first = rows[0]
    assert (first["formula"], first["spacegroup_number"], first["source"]) == ("BaTiO3", "221", "cod")
    assert first["elements"] == "Ba O Ti" and float(first["distance"]) < 1e-3 and first["cod_id"] == "2100862"
    assert [float(r["distance"]) for r in rows] == pytest.approx([h["distance"] for h in hits], rel=1e-5)
    assert table.startswith("# cod:2100862: 5 nearest")
    code, out, err = _search(capsys, db, *args, "--json", "--format", "csv")
    assert code == 2 and "--json and --format csv disagree" in err and out == ""


def test_get_writes_the_stored_structure(capsys, db, tmp_path):
    """``matconcept get``: CIF, JSON and POSCAR parse to the stored structure; original is the file."""
    from matconcept.encoders.structure_io import read_structure
    from tests.structure_match import matches

    path = cod_cif("BaTiO3_cubic")
    stored = read_structure(path).structure  # the primitive cell ingest embedded
    for fmt in ("cif", "json", "poscar"):
        code = main(["get", "cod:2100862", "--db", str(db[0]), "--format", fmt])
        out = capsys.readouterr().out
        assert code == 0 and matches(out, fmt, stored), fmt
    target = tmp_path / "out" / "BaTiO3.cif"
    assert main(["get", "cod:2100862", "--db", str(db[0]), "--out", str(target)]) == 0
    assert "written to" in capsys.readouterr().err and matches(target.read_text(), "cif", stored)
    original = tmp_path / "original.cif"
    assert main(["get", "cod:2100862", "--db", str(db[0]), "--format", "original", "--out", str(original)]) == 0
    assert original.read_bytes() == path.read_bytes()
    assert main(["get", "cod:0000000", "--db", str(db[0])]) == 2
    assert "no stored material with this id" in capsys.readouterr().err
    assert main(["get", "BaTiO3", "--db", str(db[0])]) == 2
    assert "is not a material id" in capsys.readouterr().err


def test_search_by_notion(capsys, db, tmp_path, random_model):
    """``--using structure`` and ``--using hybrid --fusion ...``: hits name their notion (and fusion); a model
    without the structure-type encoder, or a pattern, is told so."""
    from matconcept.encoders.checkpoint import save_checkpoint

    code, out, _ = _search(capsys, db, "cod:2100862", "--using", "structure", "--top-k", "5", "--json")
    hits = json.loads(out)["hits"]
    assert code == 0 and hits[0]["material_id"] == "cod:2100862" and {h["notion"] for h in hits} == {"structure"}
    for fusion in ("rrf", "zscore"):
        code, out, _ = _search(
            capsys, db, str(cod_cif("BaTiO3_cubic")), "--using", "hybrid", "--fusion", fusion, "--json"
        )
        hits = json.loads(out)["hits"]
        assert code == 0 and hits[0]["material_id"] == "cod:2100862" and {h["fusion"] for h in hits} == {fusion}
    bare = save_checkpoint(random_model.model, tmp_path / "bare")
    code, _, err = _search(capsys, db, "cod:2100862", "--using", "structure", "--model", str(tmp_path / "bare"))
    assert code != 0 and f"model {bare} has no structure-type encoder" in err
    code, _, err = _search(capsys, db, "--xrd", str(tmp_path / "x.xy"), "--using", "hybrid")
    assert code != 0 and "not hybrid" in err
    # No --using: the measured best, hybrid (zscore) for a CIF or a stored id on a model with structure types;
    # on one without, crystal (so the bare model gets as far as its empty store); --fusion alone asks to fuse.
    for query in (str(cod_cif("BaTiO3_cubic")), "cod:2100862"):
        code, out, _ = _search(capsys, db, query, "--top-k", "5", "--json")
        result = json.loads(out)
        assert code == 0 and result["using"] == "hybrid" and result["hits"][0]["material_id"] == "cod:2100862"
        assert {h["fusion"] for h in result["hits"]} == {"zscore"}
    code, out, _ = _search(capsys, db, "cod:2100862", "--fusion", "rrf", "--top-k", "3", "--json")
    assert code == 0 and {h["fusion"] for h in json.loads(out)["hits"]} == {"rrf"}
    code, _, err = _search(capsys, db, "cod:2100862", "--model", str(tmp_path / "bare"))
    assert code == 2 and "structure-type encoder" not in err and "nothing stored for model" in err
