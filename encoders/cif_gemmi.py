"""The fast CIF reader: gemmi's C++ tokenizer + numpy symmetry expansion, mirroring pymatgen's CifParser.

pymatgen's ``CifParser`` spends ~10 ms on a COD CIF, most of it in its regex tokenizer, in parsing
the same symmetry-operation strings again for every file and in expanding sites one image at a time.
This module reads the same CIF with gemmi (``gemmi.cif.read_string``: ~0.1 ms) and expands the
asymmetric unit with numpy, following ``CifParser._get_structure`` (pymatgen 2026.x) rule by rule
with ``check_occu=True`` (what :func:`~matconcept.encoders.structure_io.read_structure` asks for):

* species from ``_atom_site_type_symbol`` (else the label) through the same symbol rules, oxidation
  states from ``_atom_type_oxidation_number`` as pymatgen assigns them;
* fractional coordinates within 1e-4 of 1/3 or 2/3 (relative) snapped to them, as pymatgen's
  ``_sanitize_data`` does; uncertainties ``0.123(4)`` stripped;
* an atom whose symmetry image lands within 1e-4 (fractional, periodic) of an earlier atom joins
  that site (a mixed site); sites with occupancy ≤ 0 are dropped;
* each site's images wrapped into [0, 1) and de-duplicated within 1e-4 among the sites of the same
  composition.

It is deliberately narrow: anything that pymatgen treats in a special way (several data blocks,
magnetic CIFs, Pauling-file symbols, implicit hydrogens, missing cell or coordinate values,
occupancies summing above 1, symmetry given only by a space-group name, decimal translations in
symmetry operations, exotic tag spellings, …) makes :func:`read_cif_cell` return ``None``, and the
caller parses the CIF with pymatgen as before. Every input pymatgen rejects therefore still gets
pymatgen's answer and the same error reason; only well-formed CIFs take the fast path.
``tests/test_cif_equivalence.py`` checks that both paths give the same graph and pattern for every
CIF that ships with the dependencies.
"""

from __future__ import annotations

import functools
import logging
import math
import re
from dataclasses import dataclass, field

import numpy as np
from pymatgen.core import Composition, Element, Lattice, Species

logger = logging.getLogger(__name__)

SITE_TOLERANCE = 1e-4
"""Fractional distance under which two positions are the same site (pymatgen's ``site_tolerance``)."""
FRAC_TOLERANCE = 1e-4
"""Relative tolerance for snapping coordinates to 1/3 and 2/3 (pymatgen's ``frac_tolerance``)."""
PAIRWISE_MAX = 400
"""Up to this many images of one composition are de-duplicated pairwise (cheaper than building a k-d tree)."""
EXACT_FIRST_MIN = 48
"""From this many images on, exact copies are set aside before the pairwise comparison (see :func:`_unique_images`)."""
DENSE_MATCH_MAX = 200_000
"""Atoms² × operations up to which atoms are matched to earlier sites by one dense comparison."""
MAX_IMAGES = 100_000
"""Atoms x symmetry operations beyond which pymatgen reads the CIF (and the site limits refuse it)."""
MAX_PAIRS = 1_000_000
"""Coinciding positions beyond which pymatgen reads the CIF: a mutated file with thousands of atoms on
one spot would otherwise make the pair lists quadratic in memory (found by the reader fuzz test)."""
MIN_THICKNESS = 0.01
"""Å; pymatgen refuses a cell with a lattice-plane spacing d(100), d(010) or d(001) below this."""

_SPECIAL_FRACTIONS = (1 / 3, 2 / 3)
_UNCERTAINTY_RE = re.compile(r"\(.+\)*")
_SPECIAL_SYMBOL_RE = re.compile("Hw|Ow|Wat|wat|OH|OH2|NO3")
"""Symbols pymatgen maps specially (water, implicit hydrogens): left to pymatgen."""
_IMPLICIT_HYDROGEN_SYMBOLS = ("Wat", "wat", "O-H")
_DATA_BLOCK_RE = re.compile(r"^\s*data_", flags=re.MULTILINE | re.IGNORECASE)
_MAGNETIC_TAGS = ("_space_group_magn", "_atom_site_moment", "_space_group_symop_magn")
_SYMOP_TAGS = ("_symmetry_equiv_pos_as_xyz", "_space_group_symop_operation_xyz")
_CELL_TAGS = tuple(f"_cell_length_{x}" for x in "abc") + tuple(f"_cell_angle_{x}" for x in ("alpha", "beta", "gamma"))
_SITE_COLUMNS = ["label", "?type_symbol", "fract_x", "fract_y", "fract_z", "?occupancy"]
_OXIDATION_COLUMNS = ["symbol", "oxidation_number"]


@dataclass(slots=True)
class CellArrays:
    """A unit cell as arrays: what the checks, the symmetry search and the primitive cell work on.

    Attributes:
        lattice: (3, 3) row vectors, Å.
        frac: (n, 3) fractional coordinates.
        species: One composition per site (``{Element or Species: occupancy}``).
        magmoms: Per-site magnetic moments when the input carried them (magnetic CIFs through
            pymatgen); they take part in the symmetry search as they do in pymatgen's.
    """

    lattice: np.ndarray
    frac: np.ndarray
    species: list[Composition]
    magmoms: list | None = field(default=None)


@dataclass(slots=True)
class GemmiCif:
    """What the fast reader got from a CIF: the unit cell and the raw values of metadata tags."""

    cell: CellArrays
    values: dict[str, str]


class _NotForFastPath(Exception):
    """The CIF needs pymatgen's treatment (or its error)."""


def str2float(text: str) -> float:
    """pymatgen's ``str2float``: strip an uncertainty ``(n)``; ``.`` is 0; anything else non-numeric raises."""
    try:
        return float(_UNCERTAINTY_RE.sub("", text) if "(" in text else text)  # no "(": nothing to strip
    except ValueError:
        if text.strip() == ".":
            return 0.0
        raise


@functools.cache
def _valid_symbol(symbol: str) -> bool:
    return Element.is_valid_symbol(symbol)


@functools.cache
def _element_symbol(raw: str) -> str | None:
    """pymatgen's ``CifParser._parse_symbol`` for ordinary symbols (special ones raise)."""
    if _SPECIAL_SYMBOL_RE.match(raw):
        raise _NotForFastPath(f"special symbol {raw!r}")
    if _valid_symbol(raw[:2].title()):
        return raw[:2].title()
    if raw and _valid_symbol(raw[0].upper()):
        return raw[0].upper()
    raise _NotForFastPath(f"symbol {raw!r} is not an element")  # pymatgen's dummy species and errors


@functools.cache
def _species(symbol: str, oxidation: float | None) -> Element | Species:
    return Element(symbol) if oxidation is None else Species(symbol, oxidation)


@functools.cache
def _symops(ops: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(rotations (m, 3, 3), translations (m, 3)) of xyz operation strings, cached across files.

    ``ops`` are the values as the CIF spells them (quoted or not): the cache key costs no Python
    call per operation (a COD CIF lists 70 of them on average).
    """
    import gemmi

    rots, trans = [], []
    for raw in ops:
        text = gemmi.cif.as_string(raw)
        if "." in text:  # gemmi rounds decimal translations to 1/24; pymatgen keeps them
            raise _NotForFastPath(f"decimal symmetry operation {text!r}")
        try:
            op = gemmi.Op(text)
        except (RuntimeError, ValueError) as exc:
            raise _NotForFastPath(f"symmetry operation {text!r}") from exc
        rots.append(np.array(op.rot, dtype=float) / op.DEN)
        trans.append(np.array(op.tran, dtype=float) / op.DEN)
    return np.stack(rots), np.stack(trans)


def _pbc_close(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) bool: the positions agree within ``SITE_TOLERANCE`` modulo lattice translations."""
    diff = a[:, None, :] - b[None, :, :]
    diff -= np.round(diff)
    return np.all(np.abs(diff) < SITE_TOLERANCE, axis=-1)


def _snap(value: float) -> float:
    for special in _SPECIAL_FRACTIONS:
        if abs(value / special - 1) <= FRAC_TOLERANCE:  # math.isclose(..., abs_tol=FRAC_TOLERANCE, rel_tol=0)
            return special
    return value


def _exact_tag(text: str, tag: str) -> None:
    # gemmi finds tags case-insensitively; pymatgen only under their exact spelling.
    if tag not in text:
        raise _NotForFastPath(f"{tag} not spelled as pymatgen expects")


_SPACE_GROUP_NAME_TAGS = (
    "_symmetry_space_group_name_H-M",
    "_symmetry_space_group_name_H_M",
    "_space_group_name_Hall",
    "_space_group_name_H-M_alt",
    "_symmetry_space_group_name_hall",
    "_symmetry_space_group_name_h-m",
)
"""pymatgen's order of tags for a space-group name when a CIF lists no operations (their ``_``-suffixed
variants are left to pymatgen)."""


def _symmetry(block, text: str) -> tuple[np.ndarray, np.ndarray]:
    """The CIF's symmetry operations as pymatgen's ``get_symops`` finds them: the xyz list, else the
    operations of a space-group name that pymatgen's table knows (else pymatgen decides)."""
    import gemmi

    for tag in _SYMOP_TAGS:
        column = block.find_values(tag)
        if len(column):
            _exact_tag(text, tag)
            return _symops(tuple(column))
    for tag in _SPACE_GROUP_NAME_TAGS:
        raw = block.find_value(tag)
        if raw is not None and tag in text and (name := gemmi.cif.as_string(raw)):
            return _named_symops(re.sub(r"[\s_]", "", name))
    raise _NotForFastPath("no symmetry operations or space-group name")


@functools.cache
def _named_symops(name: str) -> tuple[np.ndarray, np.ndarray]:
    """pymatgen's own operations for a space-group name in its table (so both paths expand alike)."""
    from pymatgen.symmetry.groups import SYMM_DATA, SpaceGroup

    table = {re.sub(r"[\s_]", "", key): key for key in SYMM_DATA["space_group_encoding"]}
    if name not in table:
        raise _NotForFastPath(f"space group {name!r} outside pymatgen's table")
    ops = SpaceGroup(table[name]).symmetry_ops
    return np.stack([op.rotation_matrix for op in ops]), np.stack([op.translation_vector for op in ops])


def _oxidation_states(block, text: str) -> dict[str, float] | None:
    """pymatgen's ``_parse_oxi_states``: by type symbol, and by that symbol without its charge."""
    import gemmi

    table = block.find("_atom_type_", _OXIDATION_COLUMNS)
    if not len(table):
        return None
    _exact_tag(text, "_atom_type_oxidation_number")
    states: dict[str, float] = {}
    try:
        rows = [(gemmi.cif.as_string(row[0]), str2float(gemmi.cif.as_string(row[1]))) for row in table]
    except ValueError:
        return None
    for symbol, value in rows:
        states[symbol] = value
    for symbol, value in rows:
        states[re.sub(r"\d?[\+,\-]?$", "", symbol)] = value
    return states


def _lattice(block, text: str) -> np.ndarray:
    import gemmi

    params = []
    for tag in _CELL_TAGS:
        raw = block.find_value(tag)
        if raw is None:
            raise _NotForFastPath(f"no {tag}")
        _exact_tag(text, tag)
        params.append(str2float(gemmi.cif.as_string(raw)))
    if not all(math.isfinite(p) for p in params):
        raise _NotForFastPath("non-finite cell parameter")
    matrix = Lattice.from_parameters(*params).matrix
    if not np.all(np.isfinite(matrix)) or abs(np.linalg.det(matrix)) < 1e-9:
        raise _NotForFastPath("degenerate cell")
    spacings = 1.0 / np.linalg.norm(np.linalg.inv(matrix).T, axis=1)
    if np.any(spacings < MIN_THICKNESS):
        raise _NotForFastPath("cell thinner than pymatgen accepts")
    return matrix


def _asymmetric_unit(block, text: str, rots: np.ndarray, trans: np.ndarray) -> tuple[list[Composition], np.ndarray]:
    """Merged asymmetric-unit sites: (composition per site, fractional coordinates as given), under the
    CIF's symmetry operations (``rots``, ``trans``: :func:`_symmetry`)."""
    import gemmi

    table = block.find("_atom_site_", _SITE_COLUMNS)
    if not len(table):
        raise _NotForFastPath("no atom sites")
    for tag in ("_atom_site_label", "_atom_site_fract_x", "_atom_site_fract_y", "_atom_site_fract_z"):
        _exact_tag(text, tag)
    has_type, has_occupancy = table.has_column(1), table.has_column(5)
    if has_type:
        _exact_tag(text, "_atom_site_type_symbol")
    if has_occupancy:
        _exact_tag(text, "_atom_site_occupancy")
    oxidation = _oxidation_states(block, text)
    species: list[Element | Species] = []
    occupancies: list[float] = []
    coords: list[np.ndarray] = []
    for row in table:
        raw_symbol = gemmi.cif.as_string(row[1] if has_type else row[0])
        if " + " in raw_symbol or raw_symbol[:3] in _IMPLICIT_HYDROGEN_SYMBOLS:
            raise _NotForFastPath("Pauling-file mixed symbol or implicit hydrogens")
        symbol = _element_symbol(raw_symbol)
        oxi = None
        if oxidation is not None:
            oxi = oxidation.get(symbol, 0)
            if has_type:
                oxi = oxidation.get(raw_symbol, oxi)
        occupancy = 1.0
        if has_occupancy:
            raw_occ = row[5]
            try:
                occupancy = str2float(raw_occ if raw_occ in ("?", ".") else gemmi.cif.as_string(raw_occ))
            except ValueError:
                occupancy = 1.0
        if not math.isfinite(occupancy):
            raise _NotForFastPath("non-finite occupancy")
        if occupancy <= 0:
            continue
        try:
            coord = np.array([_snap(str2float(gemmi.cif.as_string(row[i]))) for i in (2, 3, 4)])
        except ValueError as exc:
            raise _NotForFastPath("unreadable coordinate") from exc
        if not np.all(np.isfinite(coord)):
            raise _NotForFastPath("non-finite coordinate")
        species.append(_species(symbol, oxi))
        occupancies.append(max(occupancy, 1e-8))
        coords.append(coord)
    if not coords:
        raise _NotForFastPath("no site with a positive occupancy")
    given = np.stack(coords)
    if len(given) * len(rots) > MAX_IMAGES:
        raise _NotForFastPath(f"{len(given)} atoms x {len(rots)} operations")
    targets = _merge_targets(given, rots, trans)
    comps: dict[int, dict] = {}
    for i, target in enumerate(targets.tolist()):
        comp = comps.setdefault(target, {})
        comp[species[i]] = comp.get(species[i], 0.0) + occupancies[i]
    compositions = [Composition(c) for c in comps.values()]
    if any(sum(c.values()) > 1 for c in compositions):
        raise _NotForFastPath("occupancies above 1 (pymatgen's error)")
    return compositions, given[list(comps)]


def _merge_targets(coords: np.ndarray, rots: np.ndarray, trans: np.ndarray) -> np.ndarray:
    """For each given atom, the earlier site it joins (itself when it starts a site).

    pymatgen's ``get_matching_coord``: an atom joins the first site (in the order sites were made)
    met by its image under the first operation, in the CIF's order, that meets any site. Candidate
    pairs come from one dense comparison for small cells and from a periodic k-d tree for big ones;
    the rule itself only runs for the few atoms that have a candidate.
    """
    n, m = len(coords), len(rots)
    images = np.einsum("mij,nj->nmi", rots, coords) + trans  # (atom, operation, 3)
    if n * n * m <= DENSE_MATCH_MAX:
        diff = images[:, :, None, :] - coords[None, None, :, :]
        diff -= np.round(diff)
        close = np.all(np.abs(diff) < SITE_TOLERANCE, axis=-1)  # (atom j, operation, atom i)
        close &= np.tri(n, n, -1, dtype=bool)[:, None, :]  # only earlier atoms i < j
        atom, op, other = np.nonzero(close)
    else:
        from scipy.spatial import cKDTree

        def wrapped(x: np.ndarray) -> np.ndarray:
            x = x - np.floor(x)
            return np.where(x >= 1.0, x - 1.0, x)

        tree = cKDTree(wrapped(coords), boxsize=1.0)
        points = wrapped(images.reshape(-1, 3))
        if int(tree.query_ball_point(points, SITE_TOLERANCE, p=np.inf, return_length=True).sum()) > MAX_PAIRS:
            raise _NotForFastPath("too many coinciding atoms")
        hits = tree.query_ball_point(points, SITE_TOLERANCE, p=np.inf)
        triples = [(k // m, k % m, i) for k, found in enumerate(hits) for i in found if i < k // m]
        atom, op, other = (np.array(t, dtype=np.int64) for t in zip(*triples, strict=True)) if triples else ([],) * 3
    targets = np.arange(n)
    candidates: dict[int, dict[int, list[int]]] = {}
    for j, o, i in zip(np.asarray(atom).tolist(), np.asarray(op).tolist(), np.asarray(other).tolist(), strict=True):
        candidates.setdefault(j, {}).setdefault(o, []).append(i)
    for j in sorted(candidates):
        for o in sorted(candidates[j]):
            sites = [i for i in candidates[j][o] if targets[i] == i]
            if sites:
                targets[j] = min(sites)
                break
    return targets


def _unique_images(images: np.ndarray) -> np.ndarray:
    """Mask of the images to keep: each one unless an earlier image lies within ``SITE_TOLERANCE``.

    pymatgen keeps an image unless it meets an earlier *kept* one; images of a site either coincide
    (special positions) or lie far apart, so the two rules agree. Small sets are compared pairwise
    (their distinct values only, from :data:`EXACT_FIRST_MIN` images on); large ones (big cells,
    192 operations) through a periodic k-d tree, O(n log n).
    """
    if len(images) < EXACT_FIRST_MIN:
        return ~np.tril(_pbc_close(images, images), -1).any(axis=1)
    if len(images) <= PAIRWISE_MAX:
        return _unique_values_first(images)
    from scipy.spatial import cKDTree

    images = np.where(images >= 1.0, images - 1.0, images)  # x - floor(x) rounds up to 1.0 for tiny negatives
    tree = cKDTree(images, boxsize=1.0)
    if int(tree.query_ball_point(images, SITE_TOLERANCE, p=np.inf, return_length=True).sum()) > MAX_PAIRS:
        raise _NotForFastPath("too many coinciding images")
    pairs = tree.query_pairs(SITE_TOLERANCE, p=np.inf, output_type="ndarray")
    keep = np.ones(len(images), dtype=bool)
    keep[pairs.max(axis=1)] = False
    return keep


def _unique_values_first(images: np.ndarray) -> np.ndarray:
    """:func:`_unique_images`' rule, comparing distinct values pairwise instead of all images.

    A site on a special position has many bit-identical images (192 operations put an fcc site's
    images on 4 points), so the distinct values are few: an image equal to an earlier one is
    dropped (their distance is 0), and the first image of a value is dropped exactly when the value
    lies within the tolerance of another value whose first image comes earlier. Same mask as the
    all-pairs comparison; 0.55 -> 0.13 ms per COD CIF.
    """
    values, first = np.unique(images, axis=0, return_index=True)
    if len(values) == len(images):
        return ~np.tril(_pbc_close(images, images), -1).any(axis=1)
    close = _pbc_close(values, values)
    close &= first[None, :] < first[:, None]  # close to a value met earlier
    keep = np.zeros(len(images), dtype=bool)
    keep[first[~close.any(axis=1)]] = True
    return keep


def _expand(compositions: list[Composition], coords: np.ndarray, rots: np.ndarray, trans: np.ndarray) -> CellArrays:
    """Apply the operations to each merged site; de-duplicate images within each composition group
    (pymatgen's ``_unique_coords`` over its sites grouped by composition, in the same order)."""
    groups: dict[Composition, list[int]] = {}
    for i, comp in enumerate(compositions):
        groups.setdefault(comp, []).append(i)
    frac_out: list[np.ndarray] = []
    species_out: list[Composition] = []
    for comp, members in groups.items():
        images = (np.einsum("mij,nj->nmi", rots, coords[members]) + trans).reshape(-1, 3)
        images -= np.floor(images)
        kept = images[_unique_images(images)]
        frac_out.append(kept)
        species_out.extend([comp] * len(kept))
    return CellArrays(lattice=np.zeros((3, 3)), frac=np.concatenate(frac_out), species=species_out)


def read_cif_cell(text: str, metadata_tags: tuple[str, ...] = ()) -> GemmiCif | None:
    """The unit cell of a one-block CIF as pymatgen would build it, or None where pymatgen must decide.

    Args:
        text: The CIF.
        metadata_tags: Tags whose first value to return as text (quotes and text-field markers removed).
    """
    import gemmi

    if len(_DATA_BLOCK_RE.findall(text)) != 1 or any(tag in text for tag in _MAGNETIC_TAGS):
        return None
    try:
        doc = gemmi.cif.read_string(text)
        if len(doc) != 1:
            return None
        block = doc[0]
        lattice = _lattice(block, text)
        rots, trans = _symmetry(block, text)
        compositions, coords = _asymmetric_unit(block, text, rots, trans)
        cell = _expand(compositions, coords, rots, trans)
        cell.lattice = lattice
        values = {}
        for tag in metadata_tags:
            raw = block.find_value(tag)
            if raw is None:
                column = block.find_values(tag)
                raw = column[0] if len(column) else None
            if raw is not None and tag in text:
                values[tag] = gemmi.cif.as_string(raw)
        return GemmiCif(cell, values)
    except _NotForFastPath as exc:
        logger.debug("pymatgen path: %s", exc)
        return None
    except Exception as exc:  # gemmi's syntax errors, or anything unforeseen: pymatgen decides, as before
        logger.debug("pymatgen path after an error in the fast reader: %s", exc)
        return None
