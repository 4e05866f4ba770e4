"""Real structures that ship inside the project's dependencies, found without any download.

The one place that knows where they live and what they are called: :func:`builtin_structures`
walks them once under one id each (:attr:`BuiltinStructure.material_id`). ``matconcept ingest
--builtin`` stores them so a fresh install has something to search, the corpus builder seeds from
them, evaluation labels the AFLOW prototypes, and tests and benchmarks use them as real inputs.

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
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from pymatgen.core import Structure

from matconcept.encoders.sources import RawEntry, entry_source_id, iter_entries
from matconcept.encoders.structure_io import ParsedStructure, ParseLimits, from_structure, read_entry

AFLOW_PROTOTYPES_FILE = ("analysis", "prototypes", "aflow_prototypes.json.gz")
CRYSTALS_CIF_DIR = "cifs"
ASE_MINERAL_DIR = ("test", "testdata", "minerals")
PYMATGEN_SAMPLE_DIR = ("util", "structures")
BUILTIN_SOURCES = ("aflow", "cod", "pymatgen")
"""The sources :func:`builtin_structures` yields, in its order."""


@dataclass(frozen=True)
class BuiltinStructure:
    """A shipped structure with its provenance and its one id.

    Ingest stores it as ``<source>:<source_id>``, the corpus seeds from it under that id and
    evaluation labels it under that id: :attr:`source_id` is the only place the id is made.

    Attributes:
        source: ``aflow``, ``cod`` (crystals or ase COD CIFs) or ``pymatgen``.
        source_id: Unique within ``aflow`` and ``pymatgen``: the AFLOW label (``-2``, ``-3``… for
            the labels pymatgen ships more than once, in shipped order) or the sample name. For
            ``cod`` the CIF's ``_cod_database_code`` (else the file stem), the rule ingest applies
            to any COD file: two packages shipping the same COD entry give one material.
        structure: The structure as shipped, for in-memory sources; ``None`` for CIF files (see
            :meth:`parse`).
        tags: Family labels (``aflow``, ``pearson``, ``strukturbericht``, ``mineral``) when known.
        path: The file it came from (CIF or pymatgen JSON).
        file: The CIF as read, for file sources.
    """

    source: str
    source_id: str
    structure: Structure | None = field(default=None, repr=False)
    tags: dict[str, str] = field(default_factory=dict)
    path: Path | None = None
    file: RawEntry | None = field(default=None, repr=False)

    @property
    def material_id(self) -> str:
        """``<source>:<source_id>``, the id ingest stores and the corpus and evaluation use."""
        return f"{self.source}:{self.source_id}"

    def raw_entry(self) -> RawEntry:
        """The input as bytes: the CIF as shipped, or the canonical pymatgen JSON of an in-memory
        structure (sorted keys), so that ingest hashes and skips both kinds alike."""
        if self.file is not None:
            return self.file
        if self.structure is None:
            raise ValueError(f"{self.material_id} has neither a structure nor a file")
        data = json.dumps(self.structure.as_dict(), sort_keys=True).encode()
        return RawEntry(f"{self.material_id}.json", self.source_id, data, len(data))

    def parse(self, limits: ParseLimits | None = None) -> ParsedStructure:
        """The checked structure (in-memory ones as they are, CIFs parsed with their COD metadata).

        Raises:
            StructureInputError: the structure fails ``limits``, or the CIF does not parse.
        """
        if self.structure is not None:
            return from_structure(self.structure, self.material_id, limits)
        return read_entry(self.raw_entry(), limits)


def package_dir(package: str) -> Path:
    """Folder of an installed package, found without importing it (pymatgen imports slowly)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"package {package!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def builtin_structures(sources: tuple[str, ...] = BUILTIN_SOURCES) -> Iterator[BuiltinStructure]:
    """Every shipped structure once, under its one id, in one order: AFLOW prototypes, COD CIFs
    (crystals, then ase), pymatgen samples.

    The walk ``matconcept ingest --builtin``, the training corpus's seeds and the evaluation's
    built-in set all go through.
    """
    unknown = set(sources) - set(BUILTIN_SOURCES)
    if unknown:
        raise ValueError(f"unknown built-in sources {sorted(unknown)}; known: {', '.join(BUILTIN_SOURCES)}")
    if "aflow" in sources:
        yield from aflow_prototypes()
    if "cod" in sources:
        yield from cod_structures()
    if "pymatgen" in sources:
        yield from pymatgen_samples()


@cache
def aflow_prototypes() -> tuple[BuiltinStructure, ...]:
    """The 288 AFLOW prototypes with their tags (``tags["aflow"]`` is the label, repeats included)."""
    path = package_dir("pymatgen").joinpath(*AFLOW_PROTOTYPES_FILE)
    out = []
    uses: dict[str, int] = {}
    for entry in json.loads(gzip.decompress(path.read_bytes())):
        tags = {k: str(v) for k, v in entry["tags"].items() if v}
        # AFLOW labels are not unique (A_oC8_64_f is α-U, α-Ga...): number repeats in shipped order.
        label = tags["aflow"]
        uses[label] = uses.get(label, 0) + 1
        source_id = label if uses[label] == 1 else f"{label}-{uses[label]}"
        out.append(BuiltinStructure("aflow", source_id, Structure.from_dict(entry["snl"]), tags))
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


def cod_structures() -> Iterator[BuiltinStructure]:
    """The shipped COD CIFs as read (not parsed), identified by their COD id."""
    for entry in iter_entries(cod_cif_files()):
        yield BuiltinStructure("cod", entry_source_id(entry, "cod"), path=Path(entry.name), file=entry)


def pymatgen_samples() -> list[BuiltinStructure]:
    """pymatgen's sample structures (JSON)."""
    out = []
    for path in sorted(package_dir("pymatgen").joinpath(*PYMATGEN_SAMPLE_DIR).glob("*.json")):
        out.append(BuiltinStructure("pymatgen", path.stem, Structure.from_file(path), path=path))
    return out
