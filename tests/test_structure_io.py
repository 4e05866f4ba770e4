"""Structure input: every bad-input reason from a real file, formats, metadata, disorder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from matconcept.encoders.builtin import crystals_cifs
from matconcept.encoders.errors import InputErrorReason, StructureInputError
from matconcept.encoders.sources import iter_entries
from matconcept.encoders.structure_io import ParseLimits, read_entry, read_structure
from tests.data import cod_cif
from tests.hostile import hostile_files


@pytest.mark.parametrize("name", [n for n, (_, reason) in hostile_files().items() if reason])
def test_each_bad_input_gets_its_reason_and_names_the_file(hostile_dir, name):
    directory, expected = hostile_dir
    with pytest.raises(StructureInputError) as info:
        read_structure(directory / name)
    assert info.value.reason == InputErrorReason(expected[name])
    assert name in info.value.message
    assert info.value.to_dict() == {"reason": expected[name], "message": info.value.message}


def test_partial_occupancy_is_kept_and_flagged(hostile_dir):
    directory, _ = hostile_dir
    parsed = read_structure(directory / "partial_occupancy.cif")
    assert parsed.disordered
    occupancies = {str(sp): occ for site in parsed.structure for sp, occ in site.species.items()}
    assert occupancies["Ba"] == pytest.approx(0.5)
    assert occupancies["Sr"] == pytest.approx(0.5)


def test_cod_metadata_extracted():
    parsed = read_structure(cod_cif("BaTiO3_cubic"))
    meta = parsed.metadata
    assert meta.cod_id == "2100862"
    assert meta.doi == "10.1107/S010876819200510X"
    assert meta.year == 1992
    assert meta.formula == "Ba O3 Ti"
    assert parsed.formula == "BaTiO3"
    assert parsed.spacegroup_number == 221
    assert not parsed.disordered


def test_text_bytes_and_path_agree():
    path = cod_cif("GaAs")
    from_path = read_structure(path)
    from_text = read_structure(path.read_text(), name="upload.cif")
    from_bytes = read_structure(path.read_bytes(), name="upload.cif")
    assert from_text.source == "upload.cif"
    assert from_path.structure == from_text.structure == from_bytes.structure


def test_json_and_poscar(tmp_path, batio3):
    (tmp_path / "s.json").write_text(json.dumps(batio3.as_dict()))
    batio3.to(filename=str(tmp_path / "POSCAR"))
    a = read_structure(tmp_path / "s.json")
    b = read_structure(tmp_path / "POSCAR")
    assert a.formula == b.formula == "BaTiO3"
    with pytest.raises(StructureInputError) as info:
        read_structure('{"not": "a structure"}', name="x.json")
    assert info.value.reason == InputErrorReason.NOT_STRUCTURE


def test_reduces_to_primitive_cell_and_limits_sites(batio3):
    supercell = batio3 * (2, 2, 2)
    parsed = read_structure(json.dumps(supercell.as_dict()), name="super.json")
    assert len(parsed.structure) == 5
    doubled = json.dumps((batio3 * (2, 1, 1)).as_dict())
    with pytest.raises(StructureInputError) as info:
        read_structure(doubled, name="super.json", limits=ParseLimits(max_sites=4))
    assert info.value.reason == InputErrorReason.TOO_MANY_SITES
    assert "5 sites in the primitive cell, limit is 4" in info.value.message


def test_byte_limit_is_configurable():
    with pytest.raises(StructureInputError) as info:
        read_structure(cod_cif("GaAs"), limits=ParseLimits(max_bytes=100))
    assert info.value.reason == InputErrorReason.TOO_LARGE


def test_every_shipped_cod_cif_parses():
    failures = []
    for path in crystals_cifs():
        try:
            read_structure(path)
        except StructureInputError as exc:
            failures.append(exc.message)
    assert failures == []


def test_archive_entries_are_named_and_missing_paths_reported(tmp_path):
    import tarfile

    archive = tmp_path / "cod.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(cod_cif("GaAs"), arcname="cif/1/00/00/GaAs.cif")
    entries = list(iter_entries([archive, tmp_path / "missing.cif"]))
    assert [e.name for e in entries] == [f"{archive}!cif/1/00/00/GaAs.cif", str(tmp_path / "missing.cif")]
    assert read_entry(entries[0]).formula == "GaAs"
    with pytest.raises(StructureInputError) as info:
        read_entry(entries[1])
    assert info.value.reason == InputErrorReason.UNREADABLE


def test_elements_without_xray_scattering_data_are_rejected(nacl):
    es = nacl.copy()
    es.replace_species({"Na": "Es"})
    with pytest.raises(StructureInputError) as info:
        read_structure(json.dumps(es.as_dict()), name="einsteinium.json")
    assert info.value.reason == InputErrorReason.UNKNOWN_ELEMENT
    assert "'Es'" in info.value.message and "einsteinium.json" in info.value.message


def test_moyopy_runs_only_on_cells_it_is_safe_on(nacl):
    """moyopy's search exhausted memory on a fuzzed 2-atom cell with a 0.56 Å lattice translation:
    such cells (and overly elongated ones) go to spglib, and the file still reads."""
    from matconcept.encoders.structure_io import CellArrays, moyopy_safe, read_structure

    fuzzed = np.array([[3.78418103, 0.0, 2.44734706], [0.02239939, 0.55719802, 4.47197522], [0.0, 0.0, 4.50661]])
    species = [nacl[0].species, nacl[0].species]
    frac = np.array([[0.233, 0.233, 0.233], [0.767, 0.767, 0.767]])
    assert not moyopy_safe(CellArrays(lattice=fuzzed, frac=frac, species=species))
    needle = np.diag([3.0, 3.0, 95.0])
    assert not moyopy_safe(CellArrays(lattice=needle, frac=frac, species=species))
    assert moyopy_safe(CellArrays(lattice=nacl.lattice.matrix, frac=nacl.frac_coords, species=nacl.species_and_occu))
    poscar = "fuzzed\n1.0\n" + "\n".join(" ".join(f"{x:.8f}" for x in row) for row in fuzzed)
    poscar += "\nNa\n2\ndirect\n0.233 0.233 0.233\n0.767 0.767 0.767\n"
    try:
        read_structure(poscar.encode(), name="POSCAR")
    except StructureInputError as exc:  # a named reason is as good as a structure; a crash is not
        assert exc.reason
