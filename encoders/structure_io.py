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
from pymatgen.core import Composition, Element, Lattice, Structure

from matconcept.encoders.cif_gemmi import CellArrays, read_cif_cell
from matconcept.encoders.errors import InputErrorReason, StructureInputError
from matconcept.encoders.sources import RawEntry

logger = logging.getLogger(__name__)

StructureFormat = Literal["cif", "json", "poscar"]
CifReader = Literal["fast", "pymatgen"]
"""``fast``: gemmi + numpy for the CIFs it reads exactly as pymatgen would (:mod:`~matconcept.encoders.cif_gemmi`),
symmetry on arrays (:data:`FAST_SYMMETRY`); ``pymatgen``: pymatgen's CifParser for every CIF (the reference)."""

MAX_Z = 98
"""Highest atomic number we accept (Cf): the atom-feature table covers Z ≤ 100, but pymatgen's
X-ray scattering factors (and so the XRD modality) stop at Cf."""

SYMPREC = 0.1
"""Å; tolerance of the symmetry search that gives the primitive cell and space group (0.1 Å is
pymatgen's and the Materials Project's usual choice). We search on arrays (spglib with pymatgen's
SpacegroupAnalyzer conventions, or moyopy, see :data:`FAST_SYMMETRY`) rather than with
``Structure.get_primitive_structure``, which measured 6.8 s for a 500-site cell here against 0.28 s."""

FAST_SYMMETRY: Literal["moyopy", "spglib"] = "moyopy"
"""The symmetry search of the fast path. moyopy measured 0.75 ms per COD CIF against spglib's 3.6 ms
(and ~3 ms against ~40 ms on fcc primitive cells). With spglib's angle tolerance it names the same
space group as spglib for 408 of the 409 shipped structures (BaNiO3: 194, the known P6₃/mmc, where
spglib says 186). It runs only on cells it is safe on (:func:`moyopy_safe`); spglib takes the rest
and any cell moyopy fails on."""

ANGLE_TOLERANCE = 5.0
"""Degrees; spglib's angle tolerance as pymatgen's SpacegroupAnalyzer passes it."""

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
    return _metadata_from(next(iter(blocks.values())).data)


def _metadata_from(block: dict[str, object]) -> CodMetadata:
    """COD fields from a block's tag → value mapping (pymatgen's, or the fast reader's)."""
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


def cell_of(structure: Structure) -> CellArrays:
    """A Structure as the arrays the checks work on."""
    return CellArrays(
        lattice=np.array(structure.lattice.matrix, dtype=float),
        frac=np.array(structure.frac_coords, dtype=float).reshape(-1, 3),
        species=[site.species for site in structure],
    )


def check_structure(
    structure: Structure, source: str, limits: ParseLimits, reader: CifReader = "pymatgen"
) -> ParsedStructure:
    """Validate a structure, find its space group and reduce it to the primitive cell."""
    return check_cell(cell_of(structure), source, limits, reader, original=structure)


def check_cell(
    cell: CellArrays,
    source: str,
    limits: ParseLimits,
    reader: CifReader = "fast",
    original: Structure | None = None,
) -> ParsedStructure:
    """Validate a unit cell given as arrays, find its space group and reduce it to the primitive cell.

    The one place every input is checked, whichever reader produced it, so each bad input gets
    the same reason on both paths. ``reader`` chooses the symmetry search (moyopy or spglib);
    ``original``, the Structure the cell came from, is returned as it is (labels and site properties
    kept) when it is already primitive.
    """
    n = len(cell.species)
    if n == 0:
        raise _fail(InputErrorReason.NO_ATOMS, source, "the structure has no atomic sites")
    for comp in dict.fromkeys(cell.species):
        for sp in comp:
            symbol = getattr(sp, "symbol", str(sp))
            z = getattr(getattr(sp, "element", sp), "Z", None)
            if not isinstance(getattr(sp, "element", sp), Element) or z is None or not 1 <= z <= MAX_Z:
                raise _fail(
                    InputErrorReason.UNKNOWN_ELEMENT,
                    source,
                    f"species {symbol!r} is not an element with Z in 1..{MAX_Z}",
                )
    matrix, frac = cell.lattice, cell.frac
    if not np.all(np.isfinite(matrix)) or not np.all(np.isfinite(frac)):
        raise _fail(InputErrorReason.NON_FINITE, source, "a coordinate or lattice vector is NaN or infinite")
    volume = abs(float(np.linalg.det(matrix)))
    if not math.isfinite(volume) or volume < 1e-3:
        raise _fail(InputErrorReason.NON_FINITE, source, f"the cell volume is {volume:.3g} Å³")
    _check_cell_extent(matrix, volume, frac, source)
    if n > limits.max_sites * PRE_REDUCTION_FACTOR:
        raise _fail(
            InputErrorReason.TOO_MANY_SITES,
            source,
            f"{n} sites in the cell, limit is {limits.max_sites} in the primitive cell",
        )
    _check_overlaps(cell, source, limits.min_distance)
    number = symbol = None
    given = cell
    try:
        cell, number, symbol = _symmetrize(cell, limits.primitive, reader)
    except Exception:  # a failed symmetry search is no reason to reject a valid cell
        logger.warning("%s: symmetry search failed; using the cell as given", source)
    if len(cell.species) > limits.max_sites:
        raise _fail(
            InputErrorReason.TOO_MANY_SITES,
            source,
            f"{len(cell.species)} sites in the primitive cell, limit is {limits.max_sites}",
        )
    if original is not None and cell is given:
        structure = original
    else:
        structure = Structure(Lattice(cell.lattice), cell.species, cell.frac)
    return ParsedStructure(
        structure=structure,
        source=source,
        formula=structure.composition.reduced_formula,
        disordered=not structure.is_ordered,
        spacegroup_number=number,
        spacegroup_symbol=symbol,
    )


def _species_numbers(species: list[Composition]) -> list[int]:
    """One integer per distinct composition, numbered in order of appearance (SpacegroupAnalyzer's)."""
    index: dict[Composition, int] = {}
    return [index.setdefault(comp, len(index) + 1) for comp in species]


def _symmetrize(cell: CellArrays, primitive: bool, reader: CifReader) -> tuple[CellArrays, int, str]:
    """Space group and primitive cell from one symmetry search: moyopy (fast) or spglib (reference).

    Both give the primitive cell in the input's Cartesian frame with each input atom's primitive-cell
    atom; the first atom of each is kept at its input position (no symmetrisation), so both paths
    give the same cell up to the choice of primitive basis. moyopy measured 0.75 ms per COD CIF
    against spglib's 3.6 ms (CPU, the 95 shipped COD CIFs); where it fails, spglib decides. It is
    off by default (:data:`FAST_SYMMETRY`).
    """
    numbers = _species_numbers(cell.species)
    result = None
    if reader == "fast" and FAST_SYMMETRY == "moyopy" and moyopy_safe(cell):
        try:
            result = _moyopy_primitive(cell, numbers)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:  # moyopy gave up, or panicked (pyo3's PanicException is no Exception): spglib decides
            logger.debug("moyopy failed; using spglib", exc_info=True)
    if result is None:
        result = _spglib_primitive(cell, numbers)
    number, symbol, lattice, first = result
    if not primitive or len(cell.species) < 2 or len(first) >= len(cell.species):
        return cell, number, symbol
    frac = (cell.frac[first] @ cell.lattice) @ np.linalg.inv(lattice)
    species = [cell.species[int(i)] for i in first]
    return CellArrays(lattice=lattice, frac=frac - np.floor(frac), species=species), number, symbol


def _spglib_primitive(cell: CellArrays, numbers: list[int]) -> tuple[int, str, np.ndarray, np.ndarray]:
    """pymatgen's SpacegroupAnalyzer dataset on arrays: (number, symbol, primitive lattice, kept atoms)."""
    import spglib

    dataset = spglib.get_symmetry_dataset(
        (cell.lattice, cell.frac, numbers), symprec=SYMPREC, angle_tolerance=ANGLE_TOLERANCE
    )
    if dataset is None:
        raise ValueError("spglib could not determine the symmetry")
    _, first = np.unique(np.asarray(dataset.mapping_to_primitive), return_index=True)
    return int(dataset.number), str(dataset.international), np.asarray(dataset.primitive_lattice, float), first


MOYOPY_MAX_ASPECT = 30.0
"""moyopy runs only where the Niggli-reduced cell's longest translation is at most this many times
its shortest (the fuzzed cell that exhausted memory had 8× with a 0.56 Å translation; COD's longest
layered cells are ~15×)."""
MOYOPY_MIN_TRANSLATION = 1.5
"""Å; moyopy runs only on lattices whose shortest translation (Niggli-reduced) is at least this.
On a fuzzed 2-atom cell with a 0.56 Å translation its Bravais-group search allocated memory without
bound (the process aborted at 2.5 GB under a 4 GB limit, 24 GB without one); no crystal has a lattice
translation that short (every atom would nearly touch its own image), and spglib takes such cells."""


def moyopy_safe(cell: CellArrays) -> bool:
    """Whether moyopy may search this cell: its Niggli-reduced lattice has no translation shorter
    than :data:`MOYOPY_MIN_TRANSLATION` and is no more elongated than :data:`MOYOPY_MAX_ASPECT`
    (spglib's Niggli reduction, microseconds)."""
    import spglib

    reduced = spglib.niggli_reduce(cell.lattice)
    if reduced is None:
        return False
    lengths = np.linalg.norm(reduced, axis=1)
    return float(lengths.min()) >= MOYOPY_MIN_TRANSLATION and float(lengths.max()) <= MOYOPY_MAX_ASPECT * float(
        lengths.min()
    )


def _moyopy_primitive(cell: CellArrays, numbers: list[int]) -> tuple[int, str, np.ndarray, np.ndarray]:
    """moyopy's dataset: the primitive basis is its standard primitive basis taken back to the input frame.

    moyopy gives the transformation (P, p) from the input basis to the standardised primitive one;
    the primitive lattice in the input frame is Pᵀ·A. Input atoms that coincide modulo that lattice
    (within the symmetry tolerance) are one primitive-cell atom; if their count is not moyopy's
    primitive-cell size, spglib decides instead.
    """
    import moyopy
    import spglib
    from scipy.spatial import cKDTree

    dataset = moyopy.MoyoDataset(
        moyopy.Cell(cell.lattice.tolist(), cell.frac.tolist(), numbers),
        symprec=SYMPREC,
        angle_tolerance=math.radians(ANGLE_TOLERANCE),
    )
    size = len(dataset.prim_std_cell.numbers)
    lattice = np.asarray(dataset.prim_std_linear, dtype=float).T @ cell.lattice
    if size >= len(numbers):
        first = np.arange(len(numbers))
    else:
        frac = (cell.frac @ cell.lattice) @ np.linalg.inv(lattice)
        frac -= np.floor(frac)
        frac = np.where(frac >= 1.0, frac - 1.0, frac)
        tol = SYMPREC / float(np.linalg.norm(lattice, axis=1).max())
        pairs = cKDTree(frac, boxsize=1.0).query_pairs(tol, p=np.inf, output_type="ndarray")
        pairs = pairs[np.asarray(numbers)[pairs[:, 0]] == np.asarray(numbers)[pairs[:, 1]]]
        keep = np.ones(len(numbers), dtype=bool)
        keep[pairs.max(axis=1)] = False
        first = np.flatnonzero(keep)
        if len(first) != size:
            raise ValueError(f"{len(first)} primitive atoms found, moyopy's cell has {size}")
    symbol = str(spglib.get_spacegroup_type(dataset.hall_number).international_short)
    return int(dataset.number), symbol, lattice, first


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


def _check_overlaps(cell: CellArrays, source: str, min_distance: float) -> None:
    """Refuse fully occupied atoms closer than ``min_distance`` (pymatgen's neighbour search on arrays)."""
    from pymatgen.core import PeriodicSite
    from pymatgen.optimization.neighbors import find_points_in_spheres

    if min_distance <= 0:
        return
    lattice = np.ascontiguousarray(cell.lattice, dtype=float)
    cart = np.ascontiguousarray(cell.frac @ lattice, dtype=float)
    centers, neighbors, _, distances = find_points_in_spheres(
        cart, cart, r=min_distance, pbc=np.ones(3, dtype=np.int64), lattice=lattice, tol=1e-8
    )
    not_self = ~((centers == neighbors) & (distances <= 1e-8))
    centers, neighbors, distances = centers[not_self], neighbors[not_self], distances[not_self]
    if len(centers) == 0:
        return
    occupancy = np.array([comp.num_atoms for comp in cell.species])
    # Split positions: partially occupied sites whose occupancies fit in one site are disorder.
    split = occupancy[centers] + occupancy[neighbors] <= 1.0 + SPLIT_SITE_OCCUPANCY_TOLERANCE
    bad = ~split
    if np.any(bad):
        i = int(np.argmin(np.where(bad, distances, np.inf)))
        a, b = int(centers[i]), int(neighbors[i])
        grid = Lattice(lattice)
        name_a = PeriodicSite(cell.species[a], cell.frac[a], grid).species_string
        name_b = PeriodicSite(cell.species[b], cell.frac[b], grid).species_string
        raise _fail(
            InputErrorReason.OVERLAPPING_ATOMS,
            source,
            f"sites {a} ({name_a}) and {b} ({name_b}) are {distances[i]:.3f} Å apart, minimum is {min_distance} Å",
        )


def read_structure(
    src: str | bytes | Path,
    *,
    name: str | None = None,
    fmt: StructureFormat | None = None,
    limits: ParseLimits | None = None,
    reader: CifReader = "fast",
) -> ParsedStructure:
    """Read one structure from a path, CIF/JSON/POSCAR text or bytes, and check it.

    Args:
        src: A path (``Path`` or a one-line ``str`` naming an existing file), text or bytes.
        name: What to call the input in errors and metadata (defaults to the path or ``<text>``).
        fmt: ``"cif"``, ``"json"`` (pymatgen ``Structure.as_dict``) or ``"poscar"``; guessed if None.
        limits: Size, site-count and distance limits.
        reader: ``"fast"`` (gemmi where it reads the CIF exactly as pymatgen, moyopy for symmetry) or
            ``"pymatgen"`` (the reference path); both give the same structures and the same errors.

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
        fast = read_cif_cell(text, tuple(_COD_FIELDS)) if reader == "fast" else None
        if fast is not None:
            parsed = check_cell(fast.cell, source, limits, reader)
            parsed.metadata = _metadata_from(fast.values)
            return parsed
        structure, metadata = _parse_cif(text, source)
    else:
        structure = _parse_other(text, fmt, source)
    parsed = check_structure(structure, source, limits, reader)
    parsed.metadata = metadata
    return parsed


def from_structure(structure: Structure, source: str, limits: ParseLimits | None = None) -> ParsedStructure:
    """Check an in-memory Structure (corpus builders, MP records) the same way as a file."""
    return check_structure(structure, source, limits or ParseLimits(), "fast")


def read_entry(entry: RawEntry, limits: ParseLimits | None = None, reader: CifReader = "fast") -> ParsedStructure:
    """Parse one :class:`~matconcept.encoders.sources.RawEntry` (a walked file or archive member)."""
    limits = limits or ParseLimits()
    if entry.size < 0:
        raise _fail(InputErrorReason.UNREADABLE, entry.name, "no such file, or an unreadable archive")
    if entry.data is None or entry.size > limits.max_bytes:
        raise _fail(InputErrorReason.TOO_LARGE, entry.name, f"file is {entry.size} bytes, limit is {limits.max_bytes}")
    return read_structure(entry.data, name=entry.name, limits=limits, reader=reader)
