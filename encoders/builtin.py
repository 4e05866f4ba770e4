"""Real structures that ship inside the project's dependencies, found without any download.

The one place that knows where they live: the corpus builder seeds from them, ``matconcept ingest
--builtin`` stores them so a fresh install has something to search, and tests and benchmarks use
them as real inputs.

* pymatgen's AFLOW prototype library: 288 structures tagged with their AFLOW label, Pearson
  symbol, Strukturbericht designation and mineral name.
* the ``crystals`` package: 87 COD CIFs (elements, perovskites, VO2 phases…).
* ase's test data: COD mineral CIFs.
* pymatgen's sample structures (``pymatgen/util/structures/*.json``): LiFePO4, SrTiO3, …
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from pymatgen.core import Structure

AFLOW_PROTOTYPES_FILE = ("analysis", "prototypes", "aflow_prototypes.json.gz")
CRYSTALS_CIF_DIR = "cifs"
ASE_MINERAL_DIR = ("test", "testdata", "minerals")
PYMATGEN_SAMPLE_DIR = ("util", "structures")


@dataclass(frozen=True)
class BuiltinStructure:
    """A shipped structure with its provenance.

    Attributes:
        source: ``aflow``, ``cod`` (crystals or ase COD CIFs) or ``pymatgen``.
        source_id: AFLOW label, COD file stem (a COD id where the file is named by it) or sample name.
        structure: The structure as shipped (conventional cell for CIFs).
        tags: Family labels (``aflow``, ``pearson``, ``strukturbericht``, ``mineral``) when known.
        path: The file it came from, for CIF-based sources (ingest reads the file itself).
    """

    source: str
    source_id: str
    structure: Structure = field(repr=False)
    tags: dict[str, str] = field(default_factory=dict)
    path: Path | None = None


def package_dir(package: str) -> Path:
    """Folder of an installed package, found without importing it (pymatgen imports slowly)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"package {package!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


@cache
def aflow_prototypes() -> tuple[BuiltinStructure, ...]:
    """The 288 AFLOW prototypes with their tags."""
    path = package_dir("pymatgen").joinpath(*AFLOW_PROTOTYPES_FILE)
    out = []
    for entry in json.loads(gzip.decompress(path.read_bytes())):
        tags = {k: str(v) for k, v in entry["tags"].items() if v}
        out.append(BuiltinStructure("aflow", tags["aflow"], Structure.from_dict(entry["snl"]), tags))
    return tuple(out)


def crystals_cifs() -> list[Path]:
    """The COD CIFs shipped with the ``crystals`` package."""
    return sorted((package_dir("crystals") / CRYSTALS_CIF_DIR).glob("*.cif"))


def ase_cifs() -> list[Path]:
    """COD mineral CIFs from ase's test data (named ``cod_<id>.cif``)."""
    return sorted(package_dir("ase").joinpath(*ASE_MINERAL_DIR).glob("*.cif"))


def cod_cif_files() -> list[Path]:
    """Every shipped COD CIF (crystals + ase)."""
    return crystals_cifs() + ase_cifs()


def pymatgen_samples() -> list[BuiltinStructure]:
    """pymatgen's sample structures (JSON)."""
    out = []
    for path in sorted(package_dir("pymatgen").joinpath(*PYMATGEN_SAMPLE_DIR).glob("*.json")):
        out.append(BuiltinStructure("pymatgen", path.stem, Structure.from_file(path), path=path))
    return out
