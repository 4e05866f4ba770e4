"""What ingest's pool workers do: a labelled raw entry → everything of its point but the vectors.

Kept apart from :mod:`matconcept.service.ingest.local` (the ingest loop, which runs the model) so that
the workers import neither torch nor PyG: the graph goes back as numpy arrays
(:meth:`~matconcept.encoders.featurize.Featurizer.arrays_with_reflections`) and becomes a PyG graph
where the model runs (:func:`matconcept.service.ingest.local.points_from_prepared`). The workers' server
then starts in under a second instead of ~4 s (torch and PyG alone took 2.7 s of it), and each
worker holds a few hundred MB less.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from matconcept.encoders.errors import InputErrorReason, StructureInputError
from matconcept.encoders.featurize import Featurizer
from matconcept.encoders.sources import RawEntry, entry_source_id
from matconcept.encoders.structure_io import CifReader, ParseLimits, read_entry
from matconcept.encoders.xrd.peaks import peak_simulator
from matconcept.service.store.payload import content_hash, material_id, payload_from_parsed
from matconcept.service.store.peaks import PhaseFeatures
from matconcept.service.store.records import MaterialPayload
from matconcept.service.store.structures import StoredStructure, file_name

if TYPE_CHECKING:
    from torch_geometric.data import Data

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class PointLabel:
    """Who an entry is before it is parsed: its material id, content hash and tags.

    ``original`` is the file the point keeps beside its primitive cell (an upload, a CIF of a
    collection), compressed only when the point is built, so entries skipped as unchanged cost
    nothing; None for structures made in memory (the built-in AFLOW prototypes), whose entry is
    only their pymatgen JSON.
    """

    source: str
    source_id: str
    content_hash: str
    tags: dict[str, str] = field(default_factory=dict)
    stored_hash: str | None = None
    original: bytes | None = field(default=None, repr=False)
    original_name: str | None = None

    @property
    def material_id(self) -> str:
        return material_id(self.source, self.source_id)


def label_entry(entry: RawEntry, source: str, tags: dict[str, str] | None = None) -> PointLabel:
    """Label a raw entry: file stem (COD id for ``cod``, see ``entry_source_id``), the sha256 of its bytes,
    and the bytes themselves, which the point keeps as its original file."""
    data = entry.data or b""
    return PointLabel(
        source,
        entry_source_id(entry, source),
        content_hash(data),
        dict(tags or {}),
        original=entry.data,
        original_name=file_name(entry.name),
    )


@dataclass(slots=True)
class Prepared:
    """One entry made ready in a pool worker: everything of its point but the two vectors, or an error.

    Built where the entry is parsed so the pymatgen structure never crosses the process boundary
    (pickling it cost more than the payload, kept structure and peak list that replace it) and so
    the peak-list simulation runs in parallel instead of in the embedding thread.
    """

    entry_name: str
    entry_stem: str
    graph: dict[str, Any] | Data | None = None
    """The model's inputs as numpy arrays (:meth:`Featurizer.arrays`), or already as a PyG graph."""
    payload: MaterialPayload | None = None
    structure: StoredStructure | None = None
    phase: PhaseFeatures | None = None
    error: StructureInputError | None = None
    cpu_s: float = 0.0
    """CPU seconds the worker spent on this entry (the in-situ cost of parsing and point building)."""


def prepare_entry(
    item: tuple[RawEntry, PointLabel], featurizer: Featurizer, limits: ParseLimits, reader: CifReader = "fast"
) -> Prepared:
    """Parse, featurize and build the point parts of one labelled entry (runs in a pool worker)."""
    start = time.process_time()
    prepared = _prepare(item, featurizer, limits, reader)
    prepared.cpu_s = time.process_time() - start
    return prepared


def _prepare(
    item: tuple[RawEntry, PointLabel], featurizer: Featurizer, limits: ParseLimits, reader: CifReader
) -> Prepared:
    entry, label = item
    try:
        parsed = read_entry(entry, limits, reader)
    except StructureInputError as exc:
        return Prepared(entry.name, entry.stem, error=exc)
    try:  # the model's pattern and the stored peak list from one XRD simulation
        graph, reflections = featurizer.arrays_with_reflections(parsed.structure, peak_simulator())
    except Exception as exc:  # a checked structure should featurize; report, never crash a batch
        logger.exception("%s: featurization failed", entry.name)
        err = StructureInputError(InputErrorReason.FEATURIZE_FAILED, entry.name, f"featurization failed: {exc}")
        return Prepared(entry.name, entry.stem, error=err)
    try:
        return Prepared(
            entry.name,
            entry.stem,
            graph=graph,
            payload=payload_from_parsed(parsed, label.source, label.source_id, label.content_hash, label.tags),
            structure=StoredStructure.of(parsed.structure, label.original, label.original_name),
            phase=PhaseFeatures.of(reflections),
        )
    except Exception as exc:  # a checked, featurized structure should make a point; report, never crash
        logger.exception("%s: building the point failed", entry.name)
        err = StructureInputError(InputErrorReason.FEATURIZE_FAILED, entry.name, f"building the point failed: {exc}")
        return Prepared(entry.name, entry.stem, error=err)
