"""The embedder deployment's pieces that need no Ray cluster: its batch sizing and its one featurization input."""

from __future__ import annotations

import pytest
from pymatgen.io.vasp import Poscar
from torch_geometric.data import Data

from matconcept.encoders.builtin import crystals_cifs
from matconcept.encoders.errors import StructureInputError
from matconcept.encoders.structure_io import read_entry
from matconcept.service.app.deployments import GraphSlots, structure_entry
from matconcept.service.app.schemas import StructureIn
from matconcept.service.app.settings import ServiceSettings


def test_graph_slots_come_from_the_settings_and_count_large_cells_as_several_requests():
    slots = GraphSlots.from_settings(ServiceSettings(max_batch_size=32, max_batch_atoms=4000))
    assert slots.atoms_per_slot == 125.0
    graphs = [Data(num_nodes=n) for n in (10, 20, 30)]
    assert slots(graphs) == 3  # small cells: one slot each
    assert slots([Data(num_nodes=400)]) == 4  # 400 sites take 4 slots of 125
    assert GraphSlots.from_settings(ServiceSettings(max_batch_size=64, max_batch_atoms=10)).atoms_per_slot == 1.0


def test_structure_entry_names_the_field_and_file_and_chooses_the_format_like_a_file(batio3):
    cif = crystals_cifs()[0].read_text()
    entry = structure_entry(StructureIn(content=cif, name="a.cif"), "items[2].structure", "item2")
    assert (entry.name, entry.stem, entry.data) == ("items[2].structure/a.cif", "a", cif.encode())
    assert structure_entry(StructureIn(content=cif, name=""), "structure", "item0").stem == "item0"
    poscar = Poscar(batio3).get_str()
    # A POSCAR is read as one by its file name or by the format given, never guessed to be a CIF.
    for s in (StructureIn(content=poscar, name="POSCAR"), StructureIn(content=poscar, name="x", format="poscar")):
        assert read_entry(structure_entry(s, "structure", "s")).formula == "BaTiO3"
    with pytest.raises(StructureInputError, match=r"^query\.structure/junk\.cif: "):
        read_entry(structure_entry(StructureIn(content=b"junk", name="junk.cif"), "query.structure", "q"))
