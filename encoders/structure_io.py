"""Structure input: CIF / pymatgen JSON / POSCAR text, bytes or path → a checked pymatgen Structure.

Everything downstream (graph, XRD, store payloads) assumes a structure that is finite, has atoms,
only elements with Z = 1..100 (the range of the atom-feature table), no overlapping atoms and a
bounded primitive cell. This module is the single place where those assumptions are checked, so
each failure gets a typed :class:`~matconcept.encoders.errors.StructureInputError` naming the input.

Partially occupied (disordered) sites, common in COD, are kept: the graph featurizer weights atom
features by occupancy and pymatgen's XRD treats occupancy in the structure factor.
"""

from __future__ import annotations

import json
import logging
import math
import re
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from pymatgen.core import Element, Structure

from matconcept.encoders.errors import InputErrorReason, StructureInputError
from matconcept.encoders.sources import RawEntry

logger = logging.getLogger(__name__)

StructureFormat = Literal["cif", "json", "poscar"]

MAX_Z = 98
"""Highest atomic number we accept (Cf): the atom-feature table covers Z ≤ 100, but pymatgen's
X-ray scattering factors (and so the XRD modality) stop at Cf."""

SYMPREC = 0.1
"""Å; spglib tolerance for the symmetry search that gives the primitive cell and space group
(0.1 Å is pymatgen's and the Materials Project's usual choice). We use spglib (through pymatgen's
SpacegroupAnalyzer) rather than ``Structure.get_primitive_structure``, which measured 6.8 s for a
500-site cell here against 0.28 s."""

PRE_REDUCTION_FACTOR = 4
"""A cell may hold this many times ``max_sites`` before reduction (e.g. a 2×2×2 supercell of an
allowed cell); beyond it we refuse before spending seconds on symmetry."""

MIN_CELL_HEIGHT = 0.1
"""Å; the smallest distance between opposite faces of a cell we accept. A flatter cell is degenerate
(real cells are above 1 Å), and pymatgen's neighbour search over it needs so many periodic images
that its allocation overflows (a MemoryError or a NULL-pointer error, found by fuzzing)."""

MAX_CELL_EDGE = 1000.0
"""Å; the longest cell edge we accept (the largest zeolite and MOF cells are below 200 Å)."""

MAX_FRACTIONAL = 1e3
"""The largest |fractional coordinate| we accept; CIFs use [-1, 2], and huge values overflow the
neighbour search's cell index as a flat cell does."""

SPLIT_SITE_OCCUPANCY_TOLERANCE = 1e-3
"""Two close, partially occupied sites whose occupancies sum to ≤ 1 (+ this) are a split
position (positional disorder), not overlapping atoms."""


class ParseLimits(BaseModel):
    """Limits applied to every input (configurable per call, service request or CLI run)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_bytes: int = Field(default=5_000_000, gt=0, description="largest accepted input, bytes")
    max_sites: int = Field(default=1000, gt=0, description="largest primitive cell, sites")
    min_distance: float = Field(default=0.5, ge=0, description="closest allowed atoms, Å")
    primitive: bool = Field(default=True, description="reduce to the primitive cell (paper default)")


class CodMetadata(BaseModel):
    """Bibliographic and identity fields COD (and many other CIF sources) carry."""

    model_config = ConfigDict(extra="forbid")

    cod_id: str | None = None
    formula: str | None = None
    mineral: str | None = None
    doi: str | None = None
    journal: str | None = None
    year: int | None = None
    title: str | None = None


class ParsedStructure(BaseModel):
    """A checked structure and what we know about where it came from."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    structure: Structure
    source: str = Field(description="file name, archive entry or request field it came from")
    formula: str = Field(description="reduced formula")
    disordered: bool = Field(description="True when any site is partially occupied or mixed")
    spacegroup_number: int | None = Field(default=None, description="International number (spglib)")
    spacegroup_symbol: str | None = Field(default=None, description="Hermann–Mauguin symbol (spglib)")
    metadata: CodMetadata = Field(default_factory=CodMetadata)


_COD_FIELDS: dict[str, str] = {
    "_cod_database_code": "cod_id",
    "_chemical_formula_sum": "formula",
    "_chemical_name_mineral": "mineral",
    "_journal_paper_doi": "doi",
    "_journal_name_full": "journal",
    "_journal_year": "year",
    "_publ_section_title": "title",
}

_NUMBER_RE = re.compile(r"-?\d+")


def _fail(reason: InputErrorReason, source: str, detail: str) -> StructureInputError:
    return StructureInputError(reason, source, detail)


def _load_bytes(src: str | bytes | Path, name: str | None, limits: ParseLimits) -> tuple[str, str]:
    """Return (text, source name). ``str`` is taken as a path when it names an existing file."""
    if isinstance(src, Path) or (isinstance(src, str) and _looks_like_path(src)):
        path = Path(src)
        source = name or str(path)
        if not path.exists():
            if isinstance(src, Path):
                raise _fail(InputErrorReason.UNREADABLE, source, "file does not exist")
            return src, name or "<text>"
        if not path.is_file():
            raise _fail(InputErrorReason.UNREADABLE, source, "not a regular file")
        size = path.stat().st_size
        if size > limits.max_bytes:
            raise _fail(InputErrorReason.TOO_LARGE, source, f"file is {size} bytes, limit is {limits.max_bytes}")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise _fail(InputErrorReason.UNREADABLE, source, f"cannot read file ({exc.strerror})") from exc
        return _decode(data, source), source
    if isinstance(src, bytes):
        source = name or "<bytes>"
        if len(src) > limits.max_bytes:
            raise _fail(InputErrorReason.TOO_LARGE, source, f"input is {len(src)} bytes, limit is {limits.max_bytes}")
        return _decode(src, source), source
    source = name or "<text>"
    if len(src.encode("utf-8", errors="replace")) > limits.max_bytes:
        raise _fail(InputErrorReason.TOO_LARGE, source, f"input is larger than {limits.max_bytes} bytes")
    return src, source


def _looks_like_path(text: str) -> bool:
    """A one-line string naming an existing file is a path; anything else is content."""
    if "\n" in text or len(text) > 1024 or text.lstrip().startswith("{"):
        return False
    try:
        return Path(text).is_file()
    except OSError:  # name too long, invalid characters
        return False


def _decode(data: bytes, source: str) -> str:
    if b"\x00" in data[:65536]:
        raise _fail(InputErrorReason.NOT_CIF, source, "binary data (NUL bytes), not a text structure file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        # Old CIFs are often Latin-1 (author names); the structure fields are ASCII either way.
        return data.decode("latin-1")


def guess_format(text: str, source: str) -> StructureFormat:
    """Guess the format from the file suffix, then from the content."""
    lower = source.lower()
    if lower.endswith((".cif", ".mcif")):
        return "cif"
    if lower.endswith(".json") or lower.endswith(".json.gz"):
        return "json"
    name = Path(lower).name
    if name.startswith(("poscar", "contcar")) or lower.endswith(".vasp"):
        return "poscar"
    stripped = text.lstrip()
    if stripped.startswith("{"):
        return "json"
    if re.search(r"^\s*data_", text, flags=re.MULTILINE) or "_cell_length_a" in text:
        return "cif"
    return "cif"


def _cif_metadata(parser: object) -> CodMetadata:
    blocks = getattr(getattr(parser, "_cif", None), "data", {}) or {}
    if not blocks:
        return CodMetadata()
    block = next(iter(blocks.values())).data
    values: dict[str, object] = {}
    for key, field in _COD_FIELDS.items():
        raw = block.get(key)
        if isinstance(raw, list):
            raw = raw[0] if raw else None
        if raw is None:
            continue
        text = " ".join(str(raw).split()).strip("'\"; ")
        if not text or text in {"?", "."}:
            continue
        if field == "year":
            match = _NUMBER_RE.search(text)
            values[field] = int(match.group()) if match else None
        else:
            values[field] = text
    return CodMetadata(**values)


def _parse_cif(text: str, source: str) -> tuple[Structure, CodMetadata]:
    from pymatgen.io.cif import CifParser

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            parser = CifParser.from_str(text)
            structures = parser.parse_structures(primitive=False, on_error="raise")
        except Exception as exc:
            if "_cell_length_a" in text and "_atom_site_fract_" not in text and "_atom_site_cartn_" not in text:
                raise _fail(InputErrorReason.NO_ATOMS, source, "the CIF has a cell but no atom sites") from exc
            notes = " ".join(str(w.message) for w in caught)
            raise _classify_cif_failure(source, f"{exc} {notes}") from exc
    if not structures:
        raise _fail(InputErrorReason.NOT_CIF, source, "no structure could be parsed from the CIF")
    if len(structures) > 1:
        logger.info("%s holds %d structures; using the first", source, len(structures))
    return structures[0], _cif_metadata(parser)


def _classify_cif_failure(source: str, text: str) -> StructureInputError:
    lower = text.lower()
    if "nan" in lower or "infinity" in lower or "inf " in lower:
        return _fail(InputErrorReason.NON_FINITE, source, "a coordinate or cell parameter is NaN or infinite")
    if "element" in lower or "symbol" in lower or "species" in lower:
        return _fail(InputErrorReason.UNKNOWN_ELEMENT, source, f"unknown element ({_short(text)})")
    if "no structure" in lower or "invalid cif" in lower:
        return _fail(InputErrorReason.NOT_CIF, source, f"not a valid CIF ({_short(text)})")
    return _fail(InputErrorReason.NOT_CIF, source, f"CIF could not be parsed ({_short(text)})")


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _parse_other(text: str, fmt: StructureFormat, source: str) -> Structure:
    try:
        if fmt == "json":
            return Structure.from_dict(json.loads(text))
        return Structure.from_str(text, fmt="poscar")
    except Exception as exc:
        lower = str(exc).lower()
        if "nan" in lower or "inf" in lower:
            raise _fail(InputErrorReason.NON_FINITE, source, "a coordinate is NaN or infinite") from exc
        if "element" in lower or "symbol" in lower:
            raise _fail(InputErrorReason.UNKNOWN_ELEMENT, source, f"unknown element ({_short(str(exc))})") from exc
        raise _fail(
            InputErrorReason.NOT_STRUCTURE, source, f"not a {fmt.upper()} structure ({_short(str(exc))})"
        ) from exc


def check_structure(structure: Structure, source: str, limits: ParseLimits) -> ParsedStructure:
    """Validate a structure, find its space group and reduce it to the primitive cell."""
    if len(structure) == 0:
        raise _fail(InputErrorReason.NO_ATOMS, source, "the structure has no atomic sites")
    for site in structure:
        for sp in site.species:
            symbol = getattr(sp, "symbol", str(sp))
            z = getattr(getattr(sp, "element", sp), "Z", None)
            if not isinstance(getattr(sp, "element", sp), Element) or z is None or not 1 <= z <= MAX_Z:
                raise _fail(
                    InputErrorReason.UNKNOWN_ELEMENT,
                    source,
                    f"species {symbol!r} is not an element with Z in 1..{MAX_Z}",
                )
    matrix = structure.lattice.matrix
    if not np.all(np.isfinite(matrix)) or not np.all(np.isfinite(structure.frac_coords)):
        raise _fail(InputErrorReason.NON_FINITE, source, "a coordinate or lattice vector is NaN or infinite")
    volume = abs(float(np.linalg.det(matrix)))
    if not math.isfinite(volume) or volume < 1e-3:
        raise _fail(InputErrorReason.NON_FINITE, source, f"the cell volume is {volume:.3g} Å³")
    _check_cell_extent(matrix, volume, structure.frac_coords, source)
    if len(structure) > limits.max_sites * PRE_REDUCTION_FACTOR:
        raise _fail(
            InputErrorReason.TOO_MANY_SITES,
            source,
            f"{len(structure)} sites in the cell, limit is {limits.max_sites} in the primitive cell",
        )
    _check_overlaps(structure, source, limits.min_distance)
    number = symbol = None
    try:
        structure, number, symbol = _symmetrize(structure, limits.primitive)
    except Exception:  # a failed symmetry search is no reason to reject a valid cell
        logger.warning("%s: symmetry search failed; using the cell as given", source)
    if len(structure) > limits.max_sites:
        raise _fail(
            InputErrorReason.TOO_MANY_SITES,
            source,
            f"{len(structure)} sites in the primitive cell, limit is {limits.max_sites}",
        )
    return ParsedStructure(
        structure=structure,
        source=source,
        formula=structure.composition.reduced_formula,
        disordered=not structure.is_ordered,
        spacegroup_number=number,
        spacegroup_symbol=symbol,
    )


def _symmetrize(structure: Structure, primitive: bool) -> tuple[Structure, int, str]:
    """Space group and primitive cell from ONE spglib call.

    pymatgen's ``find_primitive`` runs spglib a second time after the dataset; the dataset already
    holds the primitive lattice (in the input's Cartesian frame) and each atom's primitive-cell
    index, which halves the cost of this step (the largest after CIF parsing).
    """
    from pymatgen.core import Lattice
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    dataset = SpacegroupAnalyzer(structure, symprec=SYMPREC).get_symmetry_dataset()
    number, symbol = int(dataset.number), str(dataset.international)
    if not primitive or len(structure) < 2:
        return structure, number, symbol
    mapping = np.asarray(dataset.mapping_to_primitive)
    _, first = np.unique(mapping, return_index=True)
    if len(first) >= len(structure):
        return structure, number, symbol
    lattice = np.asarray(dataset.primitive_lattice, dtype=float)
    frac = structure.cart_coords[first] @ np.linalg.inv(lattice)
    species = [structure[int(i)].species for i in first]
    return Structure(Lattice(lattice), species, frac - np.floor(frac)), number, symbol


def _check_cell_extent(matrix: np.ndarray, volume: float, frac_coords: np.ndarray, source: str) -> None:
    """Refuse a degenerate cell (too flat or too long) or absurd coordinates before any neighbour search."""
    lengths = np.linalg.norm(matrix, axis=1)
    if float(lengths.max()) > MAX_CELL_EDGE:
        raise _fail(
            InputErrorReason.NON_FINITE, source, f"a cell edge is {lengths.max():.3g} Å, limit is {MAX_CELL_EDGE:g} Å"
        )
    faces = np.linalg.norm(np.cross(matrix[[1, 2, 0]], matrix[[2, 0, 1]]), axis=1)
    height = float(volume / faces.max())
    if height < MIN_CELL_HEIGHT:
        raise _fail(
            InputErrorReason.NON_FINITE,
            source,
            f"the cell is degenerate: {height:.3g} Å between opposite faces, at least {MIN_CELL_HEIGHT:g} Å needed",
        )
    if frac_coords.size and float(np.abs(frac_coords).max()) > MAX_FRACTIONAL:
        raise _fail(
            InputErrorReason.NON_FINITE,
            source,
            f"a fractional coordinate is {np.abs(frac_coords).max():.3g}, limit is {MAX_FRACTIONAL:g}",
        )


def _check_overlaps(structure: Structure, source: str, min_distance: float) -> None:
    if min_distance <= 0:
        return
    centers, neighbors, _, distances = structure.get_neighbor_list(r=min_distance, exclude_self=True)
    if len(centers) == 0:
        return
    occupancy = np.array([site.species.num_atoms for site in structure])
    # Split positions: partially occupied sites whose occupancies fit in one site are disorder.
    split = occupancy[centers] + occupancy[neighbors] <= 1.0 + SPLIT_SITE_OCCUPANCY_TOLERANCE
    bad = ~split
    if np.any(bad):
        i = int(np.argmin(np.where(bad, distances, np.inf)))
        a, b = int(centers[i]), int(neighbors[i])
        raise _fail(
            InputErrorReason.OVERLAPPING_ATOMS,
            source,
            f"sites {a} ({structure[a].species_string}) and {b} ({structure[b].species_string}) "
            f"are {distances[i]:.3f} Å apart, minimum is {min_distance} Å",
        )


def read_structure(
    src: str | bytes | Path,
    *,
    name: str | None = None,
    fmt: StructureFormat | None = None,
    limits: ParseLimits | None = None,
) -> ParsedStructure:
    """Read one structure from a path, CIF/JSON/POSCAR text or bytes, and check it.

    Args:
        src: A path (``Path`` or a one-line ``str`` naming an existing file), text or bytes.
        name: What to call the input in errors and metadata (defaults to the path or ``<text>``).
        fmt: ``"cif"``, ``"json"`` (pymatgen ``Structure.as_dict``) or ``"poscar"``; guessed if None.
        limits: Size, site-count and distance limits.

    Raises:
        StructureInputError: with a reason and a message naming ``name`` for any bad input.
    """
    limits = limits or ParseLimits()
    text, source = _load_bytes(src, name, limits)
    if not text.strip():
        raise _fail(InputErrorReason.EMPTY, source, "the input is empty")
    fmt = fmt or guess_format(text, source)
    metadata = CodMetadata()
    if fmt == "cif":
        structure, metadata = _parse_cif(text, source)
    else:
        structure = _parse_other(text, fmt, source)
    parsed = check_structure(structure, source, limits)
    parsed.metadata = metadata
    return parsed


def from_structure(structure: Structure, source: str, limits: ParseLimits | None = None) -> ParsedStructure:
    """Check an in-memory Structure (corpus builders, MP records) the same way as a file."""
    return check_structure(structure, source, limits or ParseLimits())


def read_entry(entry: RawEntry, limits: ParseLimits | None = None) -> ParsedStructure:
    """Parse one :class:`~matconcept.encoders.sources.RawEntry` (a walked file or archive member)."""
    limits = limits or ParseLimits()
    if entry.size < 0:
        raise _fail(InputErrorReason.UNREADABLE, entry.name, "no such file, or an unreadable archive")
    if entry.data is None or entry.size > limits.max_bytes:
        raise _fail(InputErrorReason.TOO_LARGE, entry.name, f"file is {entry.size} bytes, limit is {limits.max_bytes}")
    return read_structure(entry.data, name=entry.name, limits=limits)
