"""Shared fixtures.

* ``batio3``: cubic BaTiO3 (COD 2100862) parsed from the real CIF in the ``crystals`` package.
* ``nacl``: rock-salt NaCl from pymatgen's AFLOW prototype library's AB_cF8_225_a_b, relabelled.
* ``random_model``: the seeded, untrained dual encoder (eval mode) — what ships until training.
* ``hostile_dir``: the hostile CIF set of :mod:`tests.hostile`, written once per session.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def batio3():
    from matconcept.encoders.structure_io import read_structure
    from tests.data import cod_cif

    return read_structure(cod_cif("BaTiO3_cubic")).structure


@pytest.fixture(scope="session")
def nacl():
    from pymatgen.core import Lattice, Structure

    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


@pytest.fixture(scope="session")
def random_model():
    from matconcept.encoders.checkpoint import random_model as make

    return make()


@pytest.fixture(scope="session")
def hostile_dir(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    from tests.hostile import write_hostile_set

    directory = tmp_path_factory.mktemp("hostile")
    return directory, write_hostile_set(directory)
