"""Training corpus: shipped seed structures, chemically sensible substitutions of them, and user sources.

The paper trained on 122k Materials Project structures; offline we have a few hundred real
structures that ship inside our dependencies (:mod:`matconcept.encoders.builtin`). The corpus grows them into
tens of thousands of ordered structures the way structure-prediction codes do: replace every site of
one element by a chemically similar element (same group, or a shared common oxidation state with a
close electronegativity) and rescale the cell volume by the change in atomic volume. Every record
keeps its source, its id and the *prototype group* of the seed it came from, and the train/val/test
split is drawn per group, so no substitution of a test prototype is ever trained on.

Records are written as one gzipped JSON line each (``structures.jsonl.gz``) with a compact structure
(lattice, species, fractional coordinates): what :mod:`matconcept.training.cache` featurizes.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import logging
import math
import random
import warnings
from collections.abc import Callable, Iterable, Iterator
from functools import cache, partial
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from pymatgen.core import Composition, Element, Lattice, Structure
from tqdm import tqdm

from matconcept.encoders.errors import StructureInputError
from matconcept.encoders.structure_io import ParsedStructure, ParseLimits, from_structure, read_entry

logger = logging.getLogger(__name__)

RECORDS_FILE = "structures.jsonl.gz"
MANIFEST_FILE = "manifest.json"
Split = Literal["train", "val", "test"]

MAX_SUBSTITUTION_Z = 83
"""Substitute only up to Bi: heavier elements are radioactive and rare in real crystals."""
EXCLUDED_SUBSTITUTES = frozenset({"Tc", "Pm", "Po", "At", "Rn", "Fr", "Ra"})
"""Radioactive elements never used as substitutes (they may still appear in seeds)."""
MAX_ELECTRONEGATIVITY_GAP = 0.6
"""Largest Pauling electronegativity difference for an oxidation-state swap (Na→Ag is 0.96 and
refused; Na→K is 0.11). Same-group swaps skip this test."""
MIN_VOLUME_SCALE = 0.55
MAX_VOLUME_SCALE = 2.5
"""Substitutions that would shrink or grow the cell beyond these volume ratios are refused: the
seed's geometry no longer means anything there."""
MIN_SCALED_DISTANCE = 0.9
"""Å; a substituted cell whose closest atoms would come closer than this is refused."""
DEFAULT_ATOMIC_RADIUS = 1.5
"""Å, for the few seed elements pymatgen has no radius for (noble gases, actinides)."""
KEEP_PROBABILITY = 0.3
"""Chance that an element of the seed is kept when drawing a substitution."""
ATTEMPTS_PER_VARIANT = 8
"""Random draws allowed per wanted variant before a seed is considered exhausted."""
RECORD_SCHEMA_VERSION = 1


class CorpusConfig(BaseModel):
    """What ``matconcept corpus build`` builds; the manifest stores it so a rebuild is identical."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 123
    target: int = Field(default=24_000, ge=0, description="structures wanted in total (seeds + substitutions)")
    builtin: bool = Field(default=True, description="use the seed structures shipped in dependencies")
    substitutions: bool = True
    cif_paths: list[Path] = Field(default_factory=list, description="COD mirror, CIF directories or archives")
    mp_records: list[Path] = Field(default_factory=list, description="saved Materials Project documents (JSON)")
    datasets: list[str] = Field(
        default_factory=list, description="fetched real-structure sources (matconcept corpus fetch), as seeds"
    )
    val_fraction: float = Field(default=0.1, ge=0, lt=0.5)
    test_fraction: float = Field(default=0.1, ge=0, lt=0.5)
    hold_out_labelled: bool = Field(
        default=False,
        description="put every prototype group holding a validation or test family member of the labelled real set "
        "(the split evaluate-notions scores) on that side, so real-family figures are for families never trained on",
    )
    max_sites: int = Field(default=64, gt=0, description="largest primitive cell kept (training cost grows with it)")
    workers: int | None = None


class CorpusRecord(BaseModel):
    """One corpus structure with its provenance."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="unique within the corpus, e.g. aflow:AB_cF8_225_a_b or sub:<parent>:<formula>")
    source: str = Field(description="aflow, cod, pymatgen, ncrystal, cif, mp, substitution")
    source_id: str
    parent: str = Field(description="id of the seed record it derives from (itself for seeds)")
    group: str = Field(description="prototype group: anonymous formula, space group and site count of the seed")
    split: Split = "train"
    formula: str
    substitution: dict[str, str] = Field(default_factory=dict, description="element map applied to the parent")
    lattice: list[list[float]]
    species: list[str]
    frac: list[list[float]]

    def structure(self) -> Structure:
        return Structure(Lattice(self.lattice), self.species, self.frac)


def _compact(structure: Structure) -> dict[str, Any]:
    return {
        "lattice": np.round(structure.lattice.matrix, 6).tolist(),
        "species": [site.specie.symbol for site in structure],
        "frac": np.round(structure.frac_coords % 1.0, 6).tolist(),
    }


def prototype_group(parsed: ParsedStructure) -> str:
    """Structure-type key of a seed: anonymous formula, space group and primitive site count.

    Two seeds of the same type (COD halite and AFLOW's rock-salt prototype) share a group, so the
    split cannot put one in training and the other in test.
    """
    anon = parsed.structure.composition.anonymized_formula
    return f"{anon}_{parsed.spacegroup_number or 0}_{len(parsed.structure)}"


# --------------------------------------------------------------------------------------------- seeds


def _seed_record(parsed: ParsedStructure, source: str, source_id: str) -> CorpusRecord:
    rid = f"{source}:{source_id}"
    return CorpusRecord(
        id=rid,
        source=source,
        source_id=source_id,
        parent=rid,
        group=prototype_group(parsed),
        formula=parsed.formula,
        **_compact(parsed.structure),
    )


def _checked(name: str, parse: Callable[[], ParsedStructure]) -> ParsedStructure | None:
    """``parse()``, or None (logged) when the seed fails a check or is disordered."""
    try:
        parsed = parse()
    except StructureInputError as exc:
        logger.info("seed %s skipped: %s", name, exc.message)
        return None
    if parsed.disordered:
        logger.info("seed %s skipped: disordered", name)
        return None
    return parsed


def ncrystal_dirs() -> list[Path]:
    """Where Debian's ``libncrystal-data`` (or an NCrystal install) keeps its ``.ncmat`` files."""
    candidates = [Path("/usr/share/NCrystal/data"), Path("/usr/share/ncrystal/data"), Path("/usr/share/NCrystal")]
    return [p for p in candidates if p.is_dir()]


def read_ncmat(text: str) -> Structure:
    """A crystal from an NCrystal ``.ncmat`` file (``@CELL``, ``@SPACEGROUP``, ``@ATOMPOSITIONS``).

    Raises:
        ValueError: the file has no cell or no atom positions (e.g. an amorphous or gas material).
    """
    sections: dict[str, list[str]] = {}
    current = ""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("@"):
            current = line[1:].split()[0].upper()
            sections.setdefault(current, [])
        elif current:
            sections[current].append(line)
    if "CELL" not in sections or "ATOMPOSITIONS" not in sections:
        raise ValueError("no @CELL or @ATOMPOSITIONS section")
    cell: dict[str, list[float]] = {}
    for line in sections["CELL"]:
        key, *vals = line.split()
        cell[key.lower()] = [float(v) for v in vals]
    lengths = cell.get("lengths") or cell.get("cubic", [0.0]) * 3
    angles = cell.get("angles", [90.0, 90.0, 90.0])
    species, coords = [], []
    for line in sections["ATOMPOSITIONS"]:
        name, *xyz = line.split()
        symbol = "".join(ch for ch in name if ch.isalpha())[:2]
        species.append(symbol if symbol in _ELEMENT_SYMBOLS else symbol[:1])
        coords.append([float(eval_fraction(v)) for v in xyz[:3]])
    lattice = Lattice.from_parameters(*lengths, *angles)
    if sections.get("SPACEGROUP"):
        sg = int(sections["SPACEGROUP"][0].split()[0])
        return Structure.from_spacegroup(sg, lattice, species, coords)
    return Structure(lattice, species, coords)


def eval_fraction(value: str) -> float:
    """``"1/3"`` → 0.333…, ``"0.25"`` → 0.25 (NCrystal writes exact fractions)."""
    if "/" in value:
        num, den = value.split("/", 1)
        return float(num) / float(den)
    return float(value)


_ELEMENT_SYMBOLS = frozenset(e.symbol for e in Element)


def builtin_seeds(limits: ParseLimits) -> Iterator[CorpusRecord]:
    """Every ordered seed structure that ships in a dependency (plus NCrystal data if installed).

    Ids are the built-in ones (:func:`matconcept.encoders.builtin.builtin_structures`), the same
    ``matconcept ingest --builtin`` stores.
    """
    from matconcept.encoders.builtin import builtin_structures

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # CifParser warns about every rounded occupancy
        for item in builtin_structures():
            parsed = _checked(item.material_id, partial(item.parse, limits))
            if parsed is not None:
                yield _seed_record(parsed, item.source, item.source_id)
    for directory in ncrystal_dirs():
        for path in sorted(directory.glob("*.ncmat")):
            try:
                structure = read_ncmat(path.read_text())
            except (ValueError, KeyError) as exc:
                logger.info("ncmat %s skipped: %s", path.name, exc)
                continue
            name = f"ncrystal:{path.stem}"
            parsed = _checked(name, partial(from_structure, structure, name, limits))
            if parsed is not None:
                yield _seed_record(parsed, "ncrystal", path.stem)


def cif_seeds(paths: Iterable[Path], limits: ParseLimits, source: str = "cif") -> Iterator[CorpusRecord]:
    """Ordered structures from a COD mirror or any CIF directory/archive (bad files are logged, skipped)."""
    from matconcept.encoders.sources import iter_entries

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # CifParser warns about every rounded occupancy
        for entry in tqdm(iter_entries(list(paths), suffixes=(".cif",)), desc=source, unit="file", disable=None):
            try:
                parsed = read_entry(entry, limits)
            except StructureInputError as exc:
                logger.info("%s %s skipped: %s", source, entry.name, exc.message)
                continue
            if not parsed.disordered:
                yield _seed_record(parsed, source, parsed.metadata.cod_id or entry.stem)


def dataset_seeds(names: Iterable[str], limits: ParseLimits, root: Path | None = None) -> Iterator[CorpusRecord]:
    """Ordered structures of fetched real-structure sources, under the ids ``ingest --dataset`` stores
    (``mp:mp-149``, ``aflowproto:AB_cF8_225_a_b``, ``cod:9008680``, ``iza:ABW``)."""
    from matconcept.encoders.datasets.registry import read_dataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # CifParser warns about every rounded occupancy
        for name in names:
            for item in tqdm(read_dataset(name, root), desc=name, unit="structure", disable=None):
                parsed = _checked(item.material_id, partial(item.parse, limits))
                if parsed is not None:
                    yield _seed_record(parsed, item.source, item.source_id)


def same_structure(a: CorpusRecord, b: CorpusRecord) -> bool:
    """pymatgen's ``StructureMatcher`` with its default tolerances (volumes scaled to each other)."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    return bool(StructureMatcher().fit(a.structure(), b.structure()))


# ---------------------------------------------------------------------------------------- substitution


@cache
def _xray_elements() -> frozenset[str]:
    """Elements the XRD simulator has form factors for (pymatgen's table)."""
    text = resources.files("pymatgen.analysis.diffraction").joinpath("atomic_scattering_params.json").read_text()
    return frozenset(json.loads(text))


@cache
def substitutes(symbol: str) -> tuple[str, ...]:
    """Chemically sensible replacements for ``symbol``, sorted.

    Same group (Na→K, O→S), or a shared common oxidation state with an electronegativity within
    :data:`MAX_ELECTRONEGATIVITY_GAP` (Fe³⁺→Cr³⁺, Mg²⁺→Zn²⁺) between two metals or two non-metals
    (metalloids pair with either), restricted to non-radioactive elements up to Bi with X-ray form
    factors.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen warns about noble gases' missing data
        return _substitutes(Element(symbol))


def _substitutes(el: Element) -> tuple[str, ...]:
    symbol = el.symbol
    kind = _metallicity(el)
    states = set(el.common_oxidation_states) - {0}
    out = []
    for other in Element:
        if other.symbol == symbol or other.Z > MAX_SUBSTITUTION_Z or other.symbol in EXCLUDED_SUBSTITUTES:
            continue
        if other.symbol not in _xray_elements() or other.is_noble_gas != el.is_noble_gas:
            continue
        lanthanoids = el.is_lanthanoid and other.is_lanthanoid
        same_group = lanthanoids or (other.group == el.group and not (el.is_lanthanoid or other.is_lanthanoid))
        shared = bool(states & set(other.common_oxidation_states))
        x1, x2 = _electronegativity(el), _electronegativity(other)
        close = not (math.isnan(x1) or math.isnan(x2)) and abs(x1 - x2) <= MAX_ELECTRONEGATIVITY_GAP
        compatible = "metalloid" in (kind, _metallicity(other)) or kind == _metallicity(other)
        if same_group or (shared and close and compatible):
            out.append(other.symbol)
    return tuple(sorted(out))


def _electronegativity(el: Element) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen warns for noble gases (no Pauling value)
        return float(el.X)


def _metallicity(el: Element) -> str:
    if el.is_metalloid:
        return "metalloid"
    return "metal" if el.is_metal else "nonmetal"


@cache
def _atomic_volume(symbol: str) -> float:
    """r³ with pymatgen's empirical atomic radius (Å), the quantity volume rescaling uses."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing radii fall back below
        el = Element(symbol)
        radius = el.atomic_radius or el.atomic_radius_calculated or DEFAULT_ATOMIC_RADIUS
    return float(radius) ** 3


class _Seed:
    """A seed prepared for substitution: its elements, site counts and closest distance."""

    def __init__(self, record: CorpusRecord) -> None:
        self.record = record
        self.elements = sorted(set(record.species))
        self.counts = {e: record.species.count(e) for e in self.elements}
        structure = record.structure()
        dist = structure.distance_matrix
        self.min_distance = float(dist[~np.eye(len(structure), dtype=bool)].min()) if len(structure) > 1 else 9.0
        self.volume = structure.volume

    def volume_scale(self, mapping: dict[str, str]) -> float:
        old = sum(self.counts[e] * _atomic_volume(e) for e in self.elements)
        new = sum(self.counts[e] * _atomic_volume(mapping.get(e, e)) for e in self.elements)
        return new / old

    def variant(self, mapping: dict[str, str]) -> CorpusRecord | None:
        scale = self.volume_scale(mapping)
        length = scale ** (1.0 / 3.0)
        if not MIN_VOLUME_SCALE <= scale <= MAX_VOLUME_SCALE or self.min_distance * length < MIN_SCALED_DISTANCE:
            return None
        species = [mapping.get(s, s) for s in self.record.species]
        formula = Composition("".join(species)).reduced_formula
        parent = self.record
        return CorpusRecord(
            id=f"sub:{parent.group}:{formula}",
            source="substitution",
            source_id=f"{parent.id}|" + ",".join(f"{k}>{v}" for k, v in sorted(mapping.items())),
            parent=parent.id,
            group=parent.group,
            formula=formula,
            substitution=dict(sorted(mapping.items())),
            lattice=(np.asarray(parent.lattice) * length).round(6).tolist(),
            species=species,
            frac=parent.frac,
        )

    def draw(self, rng: random.Random) -> dict[str, str] | None:
        """One random injective element map with at least one change (None if it collides)."""
        mapping: dict[str, str] = {}
        used = set()
        for e in self.elements:
            options = substitutes(e)
            target = e if not options or rng.random() < KEEP_PROBABILITY else rng.choice(options)
            if target in used:
                return None
            used.add(target)
            if target != e:
                mapping[e] = target
        return mapping or None


def substitution_variants(seeds: list[CorpusRecord], wanted: int, seed: int, taken: set[str]) -> Iterator[CorpusRecord]:
    """About ``wanted`` new distinct records drawn evenly over ``seeds``, reproducibly.

    Seeds with few possible substitutions (elements, noble-gas solids) give what they can; the
    quota of the others rises round by round until ``wanted`` is met or every seed is exhausted.
    """
    prepared = [_Seed(r) for r in seeds if len(r.species) > 1]
    if not prepared or wanted <= 0:
        return
    rngs = [random.Random(f"{seed}:{s.record.id}") for s in prepared]
    exhausted = [False] * len(prepared)
    produced = 0
    bar = tqdm(total=wanted, desc="substitutions", unit="structure", disable=None)
    for round_ in itertools.count(1):
        live = [i for i, done in enumerate(exhausted) if not done]
        if not live or produced >= wanted:
            break
        quota = max(1, math.ceil((wanted - produced) / len(live)))
        for i in live:
            made = 0
            for _ in range(quota * ATTEMPTS_PER_VARIANT):
                if made >= quota or produced >= wanted:
                    break
                mapping = prepared[i].draw(rngs[i])
                if mapping is None:
                    continue
                record = prepared[i].variant(mapping)
                if record is None or record.id in taken:
                    continue
                taken.add(record.id)
                made += 1
                produced += 1
                bar.update()
                yield record
            if made < quota:
                exhausted[i] = True
        logger.debug("substitution round %d: %d made", round_, produced)
    bar.close()


# ---------------------------------------------------------------------------------------------- MP


def records_from_mp_docs(docs: Iterable[dict[str, Any]], limits: ParseLimits) -> Iterator[CorpusRecord]:
    """Materials Project summary documents (``material_id``, ``structure``) → seed records.

    The documents are what ``MPRester().materials.summary.search(fields=[...])`` returns (as dicts);
    tests feed a recorded response so no network is needed.
    """
    for doc in docs:
        mid = str(doc["material_id"])
        try:
            structure = Structure.from_dict(doc["structure"])
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            logger.warning("MP document %s skipped: unreadable structure (%s)", mid, exc)
            continue
        parsed = _checked(f"mp:{mid}", partial(from_structure, structure, f"mp:{mid}", limits))
        if parsed is not None:
            yield _seed_record(parsed, "mp", mid)


def fetch_mp_docs(api_key: str, *, max_elements: int = 5, chunk_size: int = 1000) -> list[dict[str, Any]]:
    """Download ordered, non-monatomic MP structures (needs ``pip install mp-api`` and network).

    Imported only here, never at import time of this module.
    """
    try:
        from mp_api.client import MPRester
    except ImportError as exc:  # an optional dependency
        raise RuntimeError("the Materials Project source needs the mp-api package: pip install mp-api") from exc
    with MPRester(api_key) as mpr:
        docs = mpr.materials.summary.search(
            num_elements=(2, max_elements), fields=["material_id", "structure"], chunk_size=chunk_size
        )
    return [{"material_id": str(d.material_id), "structure": d.structure.as_dict()} for d in docs]


# --------------------------------------------------------------------------------------------- build


def held_out_groups(seeds: Iterable[CorpusRecord], datasets_root: Path | None = None) -> dict[str, Split]:
    """Prototype group → ``test``/``val`` for the groups of the labelled real set's held-out families.

    The labelled set (:mod:`matconcept.encoders.datasets.labelled`) splits whole structure-type families
    (:func:`matconcept.training.structure_type.split_typed`); a corpus seed that is one of their members
    takes its group to that side, and every seed and substitution of that group follows it, so no
    held-out family is trained on under another source's copy. Test wins over validation.
    """
    from matconcept.encoders.datasets.labelled import DEFAULT_SOURCES, WELL_KNOWN_TYPES, structure_type_set
    from matconcept.training.structure_type import split_typed

    split = split_typed(structure_type_set(DEFAULT_SOURCES, datasets_root).items, list(WELL_KNOWN_TYPES))
    side_of = {item.id: "val" for item in split.val} | {item.id: "test" for item in split.test}
    out: dict[str, Split] = {}
    for r in seeds:
        side = side_of.get(r.id.split("#")[0])  # "#2": a second cell kept under one id
        if side is not None and out.get(r.group) != "test":
            out[r.group] = side
    counts = [sum(v == name for v in out.values()) for name in ("test", "val")]
    logger.info("labelled hold-out: %d groups to test, %d to val", *counts)
    return out


def concept_key(record: CorpusRecord) -> str:
    """A record's concept family: its prototype group and the periodic-table groups of its elements.

    The training-side twin of the concept label evaluate-notions scores (canonical prototype + element
    groups): a same-group substitution keeps it, a cross-group one starts a new family.
    """
    return f"{record.group}|{element_groups(Composition(record.formula).elements)}"


def element_groups(elements: Iterable[Element | str]) -> str:
    """The sorted periodic-table groups of some elements (``g1-g17`` for an alkali halide)."""
    return "-".join(sorted({f"g{Element(str(e)).group}" for e in elements}))


def split_of(group: str, seed: int, val_fraction: float, test_fraction: float) -> Split:
    """Deterministic split of a prototype group (a hash, so adding sources never reshuffles groups)."""
    u = int.from_bytes(hashlib.sha256(f"{seed}:{group}".encode()).digest()[:8], "big") / 2.0**64
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def build_corpus(
    config: CorpusConfig, out: Path, mp_api_key: str | None = None, datasets_root: Path | None = None
) -> dict[str, Any]:
    """Build the corpus into ``out`` and return its manifest (counts per source and split).

    ``datasets_root``: where ``config.datasets`` were fetched (default: ``$MATCONCEPT_DATASETS`` or the cache).
    """
    with warnings.catch_warnings():
        # pymatgen sorts formulas by electronegativity and warns for every noble gas it meets
        warnings.filterwarnings("ignore", message="No Pauling electronegativity")
        return _build_corpus(config, out, mp_api_key, datasets_root)


def _build_corpus(
    config: CorpusConfig, out: Path, mp_api_key: str | None, datasets_root: Path | None = None
) -> dict[str, Any]:
    limits = ParseLimits(max_sites=config.max_sites)
    seeds: list[CorpusRecord] = []
    taken: set[str] = set()
    seed_ids: set[str] = set()
    kept: dict[str, list[CorpusRecord]] = {}  # group+formula → the seeds kept under it
    matched = {"same_structure": 0, "kept_beside": 0}  # dataset seeds whose group+formula was taken

    def add(records: Iterable[CorpusRecord], match: bool = False) -> None:
        """Keep one seed per group+formula; with ``match`` (the fetched real sources), a later seed with a
        taken key is kept too when StructureMatcher finds it differs from every seed kept under that key."""
        for r in records:
            if len(r.species) < 2:  # the paper excluded monatomic cells
                continue
            key = f"{r.group}:{r.formula}"
            if key in taken:
                if not match:
                    continue
                if any(same_structure(r, other) for other in kept[key]):
                    matched["same_structure"] += 1
                    continue
                matched["kept_beside"] += 1
                kept[key].append(r)
                key = f"{key}#{len(kept[key])}"
            else:
                kept[key] = [r]
            taken.add(key)
            if r.id in seed_ids:  # e.g. one COD id shipped by two packages as different cells
                r.id = r.parent = f"{r.id}#{sum(i.startswith(r.id) for i in seed_ids) + 1}"
            seed_ids.add(r.id)
            seeds.append(r)

    if config.builtin:
        add(tqdm(builtin_seeds(limits), desc="seeds", unit="structure", disable=None))
    if config.datasets:
        add(dataset_seeds(config.datasets, limits, datasets_root), match=True)
    if config.cif_paths:
        add(cif_seeds(config.cif_paths, limits))
    for path in config.mp_records:
        add(records_from_mp_docs(json.loads(Path(path).read_text()), limits))
    if mp_api_key:
        add(records_from_mp_docs(fetch_mp_docs(mp_api_key), limits))
    # Substitution ids are keyed on group+formula too, so "taken" dedups seeds and variants alike.
    taken_ids = {f"sub:{k}" for k in taken}
    records = list(seeds)
    if config.substitutions:
        records += list(substitution_variants(seeds, config.target - len(seeds), config.seed, taken_ids))
    held_out = held_out_groups(seeds, datasets_root) if config.hold_out_labelled else {}
    for r in records:
        r.split = held_out.get(r.group) or split_of(r.group, config.seed, config.val_fraction, config.test_fraction)
    out.mkdir(parents=True, exist_ok=True)
    # mtime=0: the gzip header carries no timestamp, so the same build gives the same bytes.
    with (out / RECORDS_FILE).open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as fh:
        for r in records:
            fh.write((r.model_dump_json() + "\n").encode())
    manifest = {
        "schema": RECORD_SCHEMA_VERSION,
        "config": json.loads(config.model_dump_json()),
        "count": len(records),
        "seeds": len(seeds),
        "groups": len({r.group for r in records}),
        "by_source": _count(r.source for r in records),
        "by_split": _count(r.split for r in records),
        "groups_by_split": _count(s for s in {(r.group, r.split) for r in records} for s in [s[1]]),
        "sha256": hashlib.sha256((out / RECORDS_FILE).read_bytes()).hexdigest(),
    }
    if config.datasets:  # what was read, so a rebuild elsewhere can check it read the same archives
        from matconcept.encoders.datasets.registry import fetched_manifest

        manifest["dataset_duplicates"] = matched
        manifest["datasets"] = {
            name: fetched_manifest(name, datasets_root).model_dump(include={"package", "version", "sha256", "licence"})
            for name in config.datasets
        }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
    return manifest


def _count(values: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))


def load_records(corpus: Path) -> list[CorpusRecord]:
    """All records of a built corpus, in file order."""
    with gzip.open(Path(corpus) / RECORDS_FILE, "rt") as fh:
        return [CorpusRecord.model_validate_json(line) for line in fh]
