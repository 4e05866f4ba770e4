"""Raw entries → checked structures → (graph + XRD) features, in parallel, one bad entry at a time.

The CPU-heavy part of embedding and ingest (CIF parsing, primitive cell, neighbour list, XRD) runs
in a process pool so that both cores work; the model then embeds the results in batches. Failures
come back as :class:`~matconcept.encoders.errors.StructureInputError` values, never as exceptions, so a
collection of hundreds of thousands of awkward CIFs is walked to the end.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from torch_geometric.data import Data

from matconcept.encoders.errors import InputErrorReason, StructureInputError
from matconcept.encoders.featurize import Featurizer
from matconcept.encoders.graph import GraphSettings
from matconcept.encoders.sources import RawEntry
from matconcept.encoders.structure_io import ParsedStructure, ParseLimits, read_entry
from matconcept.encoders.xrd import XRDSettings

logger = logging.getLogger(__name__)

POOL_CHUNKSIZE = 8
"""Entries per task sent to a worker: amortises pickling without starving the progress bar."""


@dataclass(slots=True)
class Featurized:
    """One entry's outcome: ``parsed`` and ``graph`` on success, ``error`` otherwise."""

    entry_name: str
    entry_stem: str
    parsed: ParsedStructure | None = None
    graph: Data | None = None
    error: StructureInputError | None = None


_WORKER: tuple[Featurizer, ParseLimits] | None = None


def _init_worker(graph: GraphSettings, xrd: XRDSettings, limits: ParseLimits) -> None:
    global _WORKER
    import torch

    torch.set_num_threads(1)  # the pool provides the parallelism
    _WORKER = (Featurizer(graph, xrd), limits)


def featurize_entry(entry: RawEntry, featurizer: Featurizer, limits: ParseLimits) -> Featurized:
    """Parse, check and featurize one entry; any failure becomes ``Featurized.error``."""
    try:
        parsed = read_entry(entry, limits)
    except StructureInputError as exc:
        return Featurized(entry.name, entry.stem, error=exc)
    try:
        graph = featurizer.featurize(parsed.structure)
    except Exception as exc:  # a checked structure should featurize; report, never crash a batch
        logger.exception("%s: featurization failed", entry.name)
        err = StructureInputError(InputErrorReason.FEATURIZE_FAILED, entry.name, f"featurization failed: {exc}")
        return Featurized(entry.name, entry.stem, parsed=parsed, error=err)
    return Featurized(entry.name, entry.stem, parsed=parsed, graph=graph)


def _work(entry: RawEntry) -> Featurized:
    assert _WORKER is not None
    return featurize_entry(entry, *_WORKER)


def featurize_entries(
    entries: Iterable[RawEntry],
    graph: GraphSettings | None = None,
    xrd: XRDSettings | None = None,
    limits: ParseLimits | None = None,
    workers: int | None = None,
) -> Iterator[Featurized]:
    """Featurize ``entries`` in input order with ``workers`` processes (1 = in this process).

    ``workers=None`` uses every core. Results stream as they finish, in input order.
    """
    graph = graph or GraphSettings()
    xrd = xrd or XRDSettings()
    limits = limits or ParseLimits()
    workers = workers or os.cpu_count() or 1
    if workers <= 1:
        featurizer = Featurizer(graph, xrd)
        for entry in entries:
            yield featurize_entry(entry, featurizer, limits)
        return
    ctx = mp.get_context("spawn")  # fork after torch/ray threads exist is unsafe
    with ctx.Pool(workers, initializer=_init_worker, initargs=(graph, xrd, limits)) as pool:
        yield from pool.imap(_work, entries, chunksize=POOL_CHUNKSIZE)
