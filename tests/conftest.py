"""Shared fixtures.

* ``batio3``: cubic BaTiO3 (COD 2100862) parsed from the real CIF in the ``crystals`` package.
* ``nacl``: rock-salt NaCl from pymatgen's AFLOW prototype library's AB_cF8_225_a_b, relabelled.
* ``random_model``: the seeded, untrained dual encoder (eval mode) — what ships until training.
* ``hostile_dir``: the hostile CIF set of :mod:`tests.hostile`, written once per session.
* ``serve_cluster``: Ray and Serve on loopback, started once for the modules that deploy the service on
  it (:mod:`tests.live_service`); those modules run last, in one block (``pytest_collection_modifyitems``).
* ``pages_service``: the service application both browser-page modules use, with its materials and map.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
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


@pytest.fixture(scope="session")
def serve_cluster() -> Iterator:
    from tests.live_service import serve_cluster as start

    with start("mcts") as cluster:
        yield cluster


@pytest.fixture(scope="module")
def pages_service(serve_cluster, tmp_path_factory) -> tuple:
    """``(running, stored)``: the application of :mod:`tests.pages_service`, shared by the modules in a row."""
    from tests.pages_service import PAGES, layout_settled, store_materials

    running, stored = serve_cluster.shared(PAGES, lambda: tmp_path_factory.mktemp("store"), store_materials)
    layout_settled(running)
    return running, stored


def _module(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the modules on ``serve_cluster`` last, those sharing ``pages_service`` next to each other.

    Ray then starts once and stops at the end, and no test that starts a Ray of its own
    (``test_ingest_ray``'s cluster, the soak's service) runs beside it; each module stays in one block.
    """
    on_cluster = {_module(item) for item in items if "serve_cluster" in getattr(item, "fixturenames", ())}
    pages = {_module(item) for item in items if "pages_service" in getattr(item, "fixturenames", ())}

    def position(item: pytest.Item) -> tuple[bool, bool]:
        module = _module(item)
        return module in on_cluster, module not in pages

    items.sort(key=position)
