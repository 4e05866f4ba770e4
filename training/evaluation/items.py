"""What an evaluation runs on: labelled structures with the prototype group each belongs to.

Three sources, one item type:

* a split of a built training corpus (:mod:`matconcept.training.corpus`): the held-out ``test`` prototype
  groups by default, so no substitution of a test prototype was ever trained on;
* the built-in AFLOW prototype library (:func:`matconcept.encoders.builtin.builtin_structures`, under
  the ids ingest and the corpus give them), labelled with AFLOW label, Pearson symbol, Strukturbericht
  designation and mineral name; its split is the one the corpus would give each prototype's group
  (same hash), so it works without a built corpus;
* the labelled real set (:mod:`matconcept.encoders.datasets.labelled`: fetched Materials Project and AFLOW
  encyclopedia structures), split by whole structure-type families as ``evaluate-notions`` splits it, and
  labelled with its ``structure_type`` (the canonical AFLOW prototype) and ``concept`` (prototype + the
  periodic-table groups of the elements) families;
* a user's CIF files or directories, labelled by a CSV of ``id,label``.

Every item carries its ``group`` (the structure type of the seed it derives from): probes split
training and test data by group so a near-copy of a test structure is never in training.
"""

from __future__ import annotations

import csv
import io
import logging
import random
import warnings
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from pymatgen.core import Structure

from matconcept.encoders.errors import StructureInputError
from matconcept.encoders.structure_io import ParseLimits, from_structure, read_entry
from matconcept.encoders.symmetry import crystal_system

logger = logging.getLogger(__name__)

MISSING_LABELS = frozenset({"none", "null", "nan", "n/a", "-"})
"""Label values that mean "no label" (pymatgen's AFLOW tags write a missing Strukturbericht as "None")."""

LABEL_ID_COLUMNS = ("id", "name", "file", "cod_id")
"""Header names accepted for the item column of a ``--labels`` CSV (the other column is the label)."""


class EvalItem(BaseModel):
    """One structure to evaluate on.

    Attributes:
        id: Unique within the set (corpus id, ``aflow:<label>`` or the CIF's COD id / file stem).
        group: Prototype group (leave-groups-out unit); items without one are their own group.
        labels: Family labels by kind: ``prototype`` (the group), ``aflow``, ``pearson``,
            ``strukturbericht`` and its class letter ``strukturbericht_class`` (B1 → B: AB compounds),
            ``mineral``, ``user``; ``crystal_system`` always.
        density: g/cm³.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    id: str
    formula: str
    group: str
    structure: Structure = Field(repr=False)
    spacegroup_number: int
    labels: dict[str, str] = Field(default_factory=dict)
    density: float
    properties: dict[str, float] = Field(
        default_factory=dict, description="numeric labels (MP moduli, band gap, formation energy), where given"
    )


def _item(
    structure: Structure, item_id: str, group: str | None, labels: dict[str, str], limits: ParseLimits
) -> EvalItem:
    parsed = from_structure(structure, item_id, limits)
    sg = parsed.spacegroup_number or 1
    anon = parsed.structure.composition.anonymized_formula
    group = group or f"{anon}_{sg}_{len(parsed.structure)}"
    labels = {k: v for k, v in labels.items() if v.strip() and v.strip().lower() not in MISSING_LABELS}
    labels = {"prototype": group, **labels, "crystal_system": crystal_system(sg)}
    if labels.get("strukturbericht", "")[:1].isalpha():
        labels["strukturbericht_class"] = labels["strukturbericht"][:1].upper()
    return EvalItem(
        id=item_id,
        formula=parsed.formula,
        group=group,
        structure=parsed.structure,
        spacegroup_number=sg,
        labels=labels,
        density=float(parsed.structure.density),
    )


def _aflow_tags() -> dict[str, dict[str, str]]:
    """Family tags of each AFLOW prototype by its material id (the corpus's seed id)."""
    from matconcept.encoders.builtin import builtin_structures

    return {p.material_id: dict(p.tags) for p in builtin_structures(("aflow",))}


def corpus_items(corpus: Path, split: str = "test") -> list[EvalItem]:
    """Records of one split (``all`` for every record) of a built corpus, labelled.

    Substitutions inherit the family tags of their AFLOW seed, so a family (Strukturbericht B1,
    rock salt) spans many chemistries.
    """
    from matconcept.training.corpus import load_records

    tags = _aflow_tags()
    limits = ParseLimits(primitive=False)  # corpus cells are primitive already
    out = []
    records = [r for r in load_records(corpus) if split == "all" or r.split == split]
    for r in records:
        extra = tags.get(r.parent, {})
        try:
            out.append(_item(r.structure(), r.id, r.group, extra, limits))
        except StructureInputError as exc:
            logger.warning("corpus record %s skipped: %s", r.id, exc.message)
    return out


def builtin_items(split: str = "all", seed: int | None = None) -> list[EvalItem]:
    """The AFLOW prototypes, labelled, optionally restricted to the corpus split their group falls in.

    ``split`` uses :func:`matconcept.training.corpus.split_of` with the corpus defaults (seed, fractions), the
    same assignment a default ``corpus build`` makes.
    """
    from matconcept.encoders.builtin import builtin_structures
    from matconcept.training.corpus import CorpusConfig, split_of

    config = CorpusConfig() if seed is None else CorpusConfig(seed=seed)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for proto in builtin_structures(("aflow",)):
            try:
                item = _item(proto.structure, proto.material_id, None, dict(proto.tags), ParseLimits())
            except StructureInputError as exc:
                logger.info("prototype %s skipped: %s", proto.material_id, exc.message)
                continue
            if split == "all" or split_of(item.group, config.seed, config.val_fraction, config.test_fraction) == split:
                out.append(item)
    return out


def real_items(split: str = "test", root: Path | None = None, workers: int | None = None) -> list[EvalItem]:
    """The labelled real set's ``split`` (``all``: every side), labelled by structure type and concept family.

    Family members only on the val/test sides (what ``evaluate-notions`` scores); concept families need
    three members (:func:`matconcept.training.evaluation.notions.concept_labels`), smaller ones stay as
    distractors under a label no other item shares.
    """
    from matconcept.encoders.datasets.labelled import DEFAULT_SOURCES, WELL_KNOWN_TYPES, structure_type_set
    from matconcept.training.evaluation.notions import concept_labels
    from matconcept.training.structure_type import split_typed

    parts = split_typed(structure_type_set(DEFAULT_SOURCES, root, workers=workers).items, list(WELL_KNOWN_TYPES))
    typed = [*parts.train, *parts.val, *parts.test] if split == "all" else list(getattr(parts, split))
    concept = concept_labels([t.structure for t in typed], [t.family or t.prototype for t in typed])
    limits = ParseLimits(primitive=False)  # the labelled set holds checked primitive cells already
    out = []
    for t, c in zip(typed, concept, strict=True):
        family = t.family or ""
        labels = {"structure_type": family, "concept": c if family else "", "aflow": t.labels.get("aflow", "")}
        try:
            item = _item(t.structure, t.id, t.family or t.prototype, labels, limits)
        except StructureInputError as exc:
            logger.warning("labelled structure %s skipped: %s", t.id, exc.message)
            continue
        del item.labels["prototype"]  # the same as structure_type here; one row per family kind
        out.append(item.model_copy(update={"properties": dict(t.properties)}))
    return out


class LabelsError(ValueError):
    """A ``--labels`` CSV is unusable; the message names the file (and line) and says why."""


def read_labels_csv(path: Path | str) -> dict[str, str]:
    """``id → label`` from a two-column CSV with a header (``id,label``; see :data:`LABEL_ID_COLUMNS`).

    Raises:
        LabelsError: the file is missing or unreadable, has no usable header, no rows, or a row
            lacks its label.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelsError(f"{path}: cannot read labels ({exc})") from exc
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    id_col = next((f for f in fields if f in LABEL_ID_COLUMNS), None)
    label_col = "label" if "label" in fields else next((f for f in fields if f != id_col), None)
    if id_col is None or label_col is None:
        raise LabelsError(
            f"{path}: labels CSV needs a header with an id column ({', '.join(LABEL_ID_COLUMNS)}) and a label "
            f"column; found {reader.fieldnames}"
        )
    out: dict[str, str] = {}
    for line, row in enumerate(reader, start=2):
        cells = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items() if isinstance(v, str | None)}
        if not cells.get(id_col):
            continue
        if not cells.get(label_col):
            raise LabelsError(f"{path}:{line}: row for {cells[id_col]!r} has no label")
        out[cells[id_col]] = cells[label_col]
    if not out:
        raise LabelsError(f"{path}: labels CSV has no rows")
    return out


def cif_items(paths: Sequence[Path], labels: dict[str, str] | None = None) -> tuple[list[EvalItem], list[dict]]:
    """Structures from CIF files/directories/archives, with the user's labels where given.

    A label matches an item by COD id, file stem or file name. Unreadable files are returned as
    ``{"source", "reason", "message"}`` entries, never raised, so one bad file costs one item.
    """
    from matconcept.encoders.sources import iter_entries

    labels = labels or {}
    items, errors = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for entry in iter_entries(list(paths), suffixes=(".cif", ".mcif")):
            try:
                parsed = read_entry(entry)
                if parsed.disordered:
                    errors.append(
                        {"source": entry.name, "reason": "disordered", "message": f"{entry.name}: partial occupancies"}
                    )
                    continue
                item_id = parsed.metadata.cod_id or entry.stem
                extra = {}
                if parsed.metadata.mineral:
                    extra["mineral"] = parsed.metadata.mineral
                label = next((labels[k] for k in (item_id, entry.stem, Path(entry.name).name) if k in labels), None)
                if label is not None:
                    extra["user"] = label
                items.append(_item(parsed.structure, item_id, None, extra, ParseLimits(primitive=False)))
            except StructureInputError as exc:
                errors.append({"source": entry.name, **exc.to_dict()})
    return items, errors


def subsample(items: list[EvalItem], limit: int | None, seed: int = 0) -> list[EvalItem]:
    """At most ``limit`` items, drawn reproducibly and spread evenly over groups (so families survive)."""
    if limit is None or len(items) <= limit:
        return list(items)
    rng = random.Random(seed)
    by_group: dict[str, list[EvalItem]] = {}
    for it in items:
        by_group.setdefault(it.group, []).append(it)
    pools = [rng.sample(g, len(g)) for _, g in sorted(by_group.items())]
    out: list[EvalItem] = []
    while len(out) < limit:
        for pool in pools:
            if pool and len(out) < limit:
                out.append(pool.pop())
    return sorted(out, key=lambda it: it.id)
