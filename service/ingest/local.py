"""Batch ingest: files, directories, archives or the built-in structures → the embedding store.

One path for every input: raw entries (:mod:`matconcept.encoders.sources`) are labelled with their material
id and content hash, entries already stored with the same hash are skipped *before* parsing (so a
killed run started again only does the remaining work), the rest stream through three overlapping
stages: the process pool (:func:`matconcept.encoders.pipeline.parallel_featurize`) parses, featurizes
and builds everything of a point but its vectors (:func:`prepare_entry`: payload, kept structure,
peak list), this thread embeds them in batches (:meth:`matconcept.encoders.embedder.Embedder.embed_graphs`),
and a writer thread upserts each batch while the next one is embedded. Memory stays bounded: at most
``MAX_IN_FLIGHT`` entries between the reader and this thread, one batch being embedded and
``WRITE_QUEUE_DEPTH`` batches waiting for the writer. Point ids are UUID5 of
the material id and each point is one upsert of payload + both vectors, so re-running after a
SIGKILL at any moment ends with exactly the right points. One bad entry never stops a run: it is
counted and written to the JSONL failure report (``path``, ``id``, ``reason``, ``message``).

The service's Upsert RPC reuses :func:`label_entry`, :func:`prepare_entry` and :func:`points_from_prepared`.
"""

from __future__ import annotations

import functools
import json
import logging
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from itertools import islice
from pathlib import Path
from typing import IO

import numpy as np
from pydantic import BaseModel, Field
from torch_geometric.data import Data

from matconcept.encoders.embedder import Embedder
from matconcept.encoders.errors import InputErrorReason, StructureInputError
from matconcept.encoders.graph import graph_data
from matconcept.encoders.pipeline import Featurized, parallel_featurize
from matconcept.encoders.sources import RawEntry, iter_entries
from matconcept.encoders.structure_io import CifReader, ParseLimits
from matconcept.service.ingest.malloc import keep_large_allocations
from matconcept.service.ingest.prepare import PointLabel, Prepared, label_entry, prepare_entry
from matconcept.service.store.base import VectorStore
from matconcept.service.store.payload import content_hash, payload_from_parsed
from matconcept.service.store.peaks import PhaseFeatures
from matconcept.service.store.records import PointIn
from matconcept.service.store.structures import StoredStructure, file_name

logger = logging.getLogger(__name__)

DEFAULT_BATCH = 256
"""Materials per embedding call and per upsert."""
LOOKUP_CHUNK = 512
"""Entries whose stored content hashes are fetched in one call before parsing."""
MAX_IN_FLIGHT = 2048
"""Entries read but not yet featurized: the process pool's feeder would otherwise read a whole COD
mirror (tens of GB) into memory ahead of the workers."""
WRITE_QUEUE_DEPTH = 2
"""Embedded batches waiting for the writer thread; the embedding loop blocks beyond it (bounded memory)."""
OPTIMIZE_MIN_POINTS = 20_000
"""Build HNSW at the end of an ingest once the collection is this large: below it an exact scan of
1024-d vectors takes a few ms, above it HNSW keeps top-50 queries near 5 ms (benchmarks/bench_search.py)."""


class IngestSummary(BaseModel):
    """What an ingest did; ``read == added + updated + unchanged + failed``.

    ``updated`` counts materials whose stored content changed (or that ``force`` rewrote);
    ``unchanged`` those already stored with the same content hash (and repeats within one run).
    """

    read: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    seconds: float = 0.0
    stage_seconds: dict[str, float] = Field(default_factory=dict, exclude=True, description="for benchmarks")


def embed_all(embedder: Embedder, graphs: Sequence[Data]) -> tuple[np.ndarray, np.ndarray, list[np.ndarray | None]]:
    """Every vector a point keeps: (crystal, xrd, structure-type vectors or Nones where the model has no
    structure-type encoder). The one place ingest, the upsert route and ``--reembed`` run the model."""
    vectors = embedder.embed(graphs)  # each batch collated once for every encoder
    types = list(vectors["structure"]) if "structure" in vectors else [None] * len(graphs)
    return vectors["crystal"], vectors["xrd"], types


def points_from_featurized(
    results: Sequence[Featurized], labels: Sequence[PointLabel], embedder: Embedder
) -> list[PointIn]:
    """Embed successfully featurized entries in one batch and build their points (payload + 2 vectors
    + the structure: the primitive cell as embedded and the label's original file, if any)."""
    if len(results) != len(labels):
        raise ValueError(f"{len(results)} results but {len(labels)} labels")
    if not results:
        return []
    crystal, xrd, types = embed_all(embedder, [r.graph for r in results])
    return [
        PointIn(
            payload=payload_from_parsed(r.parsed, lab.source, lab.source_id, lab.content_hash, lab.tags),
            crystal=c,
            xrd=x,
            structure_type=t,
            structure=StoredStructure.of(r.parsed.structure, lab.original, lab.original_name),
            phase=PhaseFeatures.of(r.parsed.structure),  # peak list + fingerprint, for pattern search
        )
        for r, lab, c, x, t in zip(results, labels, crystal, xrd, types, strict=True)
    ]


def points_from_prepared(results: Sequence[Prepared], embedder: Embedder) -> list[PointIn]:
    """Embed prepared entries in one batch and complete their points."""
    if not results:
        return []
    graphs = [graph_data(r.graph) if isinstance(r.graph, dict) else r.graph for r in results]
    crystal, xrd, types = embed_all(embedder, graphs)
    vectors = [crystal, xrd, *(() if types[0] is None else (np.stack(types),))]
    # The model's rows are 1-D float32 vectors: what PointIn's validator checks is finiteness, once
    # per batch here (the validator cost 14 us a point); a batch with a non-finite row is validated
    # point by point, so the bad point raises as before.
    make = PointIn.model_construct if all(np.isfinite(v).all() for v in vectors) else PointIn
    return [
        make(payload=r.payload, crystal=c, xrd=x, structure_type=t, structure=r.structure, phase=r.phase)
        for r, c, x, t in zip(results, crystal, xrd, types, strict=True)
    ]


class _Writer:
    """The upsert stage: a thread writing embedded batches while the next batch is embedded.

    A failed upsert is raised again in the ingest thread at the next :meth:`put` or at :meth:`close`.
    """

    def __init__(self, store: VectorStore, depth: int = WRITE_QUEUE_DEPTH) -> None:
        self.store = store
        self.queue: queue.Queue[tuple[list[PointIn], int] | None] = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.seconds = 0.0
        self.thread = threading.Thread(target=self._loop, name="ingest-writer", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is not None:
                continue  # drain: the ingest thread raises the first error
            points, read = item
            start = time.perf_counter()
            try:
                self.store.upsert(points)
            except BaseException as exc:
                self.error = exc
                continue
            finally:
                self.seconds += time.perf_counter() - start
            logger.info("stored %d points (%d entries read)", len(points), read)

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def put(self, points: list[PointIn], read: int) -> None:
        """Queue a batch (``read``: entries read so far, for the log line written once it is stored)."""
        self._raise()
        self.queue.put((points, read))

    def close(self, check: bool = True) -> None:
        """Wait for every queued batch to be written; with ``check``, raise the first failure."""
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()
        if check:
            self._raise()


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


class _Run:
    """State of one ingest run: counters, the in-flight labels and the pending batch."""

    def __init__(
        self,
        store: VectorStore,
        embedder: Embedder,
        batch: int,
        force: bool,
        report: IO[str] | None,
        writer: _Writer | None = None,
    ):
        self.store, self.embedder, self.batch, self.force, self.report = store, embedder, batch, force, report
        self.writer = writer
        self.summary = IngestSummary()
        self.in_flight: deque[PointLabel] = deque()
        self.slots = threading.Semaphore(MAX_IN_FLIGHT)
        self.stopped = threading.Event()
        self.skipped = 0  # counted by the feeder thread (stored, same hash); merged at the end
        self.seen: dict[str, str] = {}  # feeder thread: material id → content hash of its last entry
        self.pending: dict[str, tuple[Prepared, PointLabel, str]] = {}  # id → (result, label, counter)
        self.done: dict[str, str] = {}  # material id → content hash written (or pending) in this run
        self.timer = {"lookup": 0.0, "featurize_wait": 0.0, "embed": 0.0, "upsert": 0.0}

    def to_featurize(self, items: Iterable[tuple[RawEntry, PointLabel]]) -> Iterator[tuple[RawEntry, PointLabel]]:
        """Entries that need work; stored ones with the same content hash are counted and skipped.

        Runs in the process pool's feeder thread when ``workers > 1``: it blocks once
        ``MAX_IN_FLIGHT`` entries await their result, and ends early when the run stops.
        """
        for chunk in _chunks(items, LOOKUP_CHUNK):
            start = time.perf_counter()
            ids = [label.material_id for entry, label in chunk if entry.data is not None]
            stored = self.store.content_hashes(ids) if ids else {}
            self.timer["lookup"] += time.perf_counter() - start
            for entry, label in chunk:
                self.summary.read += 1
                label.stored_hash = stored.get(label.material_id) if entry.data is not None else None
                earlier = self.seen.get(label.material_id, label.content_hash)
                self.seen[label.material_id] = label.content_hash
                # Skip only when stored and not preceded in this run by another version of the
                # material: then the last version in input order wins, on every re-run alike.
                if not self.force and label.stored_hash == label.content_hash == earlier:
                    self.skipped += 1
                    continue
                while not self.slots.acquire(timeout=0.2):
                    if self.stopped.is_set():
                        return
                if self.stopped.is_set():
                    return
                self.in_flight.append(label)
                yield entry, label

    def fail(self, result: Prepared, label: PointLabel, error: StructureInputError | None = None) -> None:
        self.summary.failed += 1
        error = error or result.error
        if self.report is not None and error is not None:
            line = {"path": result.entry_name, "id": label.material_id, **error.to_dict()}
            self.report.write(json.dumps(line) + "\n")
            self.report.flush()

    def accept(self, result: Prepared, label: PointLabel) -> None:
        mid = label.material_id
        if mid in self.done:  # the same material twice in one run (a copy, or a newer version)
            if self.done[mid] == label.content_hash:
                self.summary.unchanged += 1
                return
            counter = "updated"
        else:
            counter = "added" if label.stored_hash is None else "updated"
        setattr(self.summary, counter, getattr(self.summary, counter) + 1)
        self.done[mid] = label.content_hash
        self.pending[mid] = (result, label, counter)
        if len(self.pending) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        start = time.perf_counter()
        points = self._embed(list(self.pending.values()))
        mid = time.perf_counter()
        self.timer["embed"] += mid - start
        if self.writer is not None:
            self.writer.put(points, self.summary.read)  # written while the next batch is embedded
            self.timer["write_wait"] = self.timer.get("write_wait", 0.0) + time.perf_counter() - mid
        else:
            self.store.upsert(points)
            self.timer["upsert"] += time.perf_counter() - mid
            logger.info("stored %d points (%d entries read)", len(points), self.summary.read)
        self.pending.clear()

    def _embed(self, batch: list[tuple[Prepared, PointLabel, str]]) -> list[PointIn]:
        """Points of a batch; if the model fails on it, one at a time, so one bad graph fails alone."""
        try:
            return points_from_prepared([b[0] for b in batch], self.embedder)
        except Exception:
            logger.exception("embedding a batch of %d failed; retrying one by one", len(batch))
        points = []
        for result, label, counter in batch:
            try:
                points.extend(points_from_prepared([result], self.embedder))
            except Exception as exc:
                setattr(self.summary, counter, getattr(self.summary, counter) - 1)
                self.done.pop(label.material_id, None)
                reason = InputErrorReason.FEATURIZE_FAILED
                self.fail(result, label, StructureInputError(reason, result.entry_name, f"embedding failed: {exc}"))
        return points


def ingest_items(
    items: Iterable[tuple[RawEntry, PointLabel]],
    store: VectorStore,
    embedder: Embedder,
    *,
    workers: int | None = None,
    batch: int = DEFAULT_BATCH,
    force: bool = False,
    report: str | Path | None = None,
    limits: ParseLimits | None = None,
    progress: bool = True,
    optimize: bool | None = None,
    reader: CifReader = "fast",
) -> IngestSummary:
    """Ingest labelled raw entries (the engine behind :func:`ingest` and :func:`ingest_builtin`).

    Args:
        optimize: Build HNSW at the end: always (True), never (False), or once the collection holds
            ``OPTIMIZE_MIN_POINTS`` (None).
        reader: The CIF reader (``"pymatgen"``: the reference path, for benchmarks).
    """
    from tqdm import tqdm

    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    if embedder.model_id != store.model_id:
        raise ValueError(f"the embedder's model {embedder.model_id} does not match the store's {store.model_id}")
    if embedder.has_structure_type and not store.has_vector("structure"):
        logger.warning(
            "the collection of %s keeps no structure vectors (opened without structure_dim): they are not stored",
            store.model_id,
        )
    started = time.perf_counter()
    keep_large_allocations()  # the embedding's batch buffers stay mapped between batches
    settings = embedder.loaded.info.model
    with ExitStack() as stack:
        report_file: IO[str] | None = None
        if report is not None:
            Path(report).parent.mkdir(parents=True, exist_ok=True)
            report_file = stack.enter_context(Path(report).open("w"))
        writer = _Writer(store)
        stack.callback(writer.close, check=False)  # on an error below: stop the writer, keep that error
        run = _Run(store, embedder, batch, force, report_file, writer)
        stack.callback(run.stopped.set)  # lets the feeder thread end if this loop raises
        work = functools.partial(prepare_entry, limits=limits or ParseLimits(), reader=reader)
        results = parallel_featurize(run.to_featurize(items), work, settings.graph, settings.xrd, workers, preload=())
        bar = stack.enter_context(tqdm(desc="ingest", unit="entry", disable=not progress or None, file=sys.stderr))
        wait = time.perf_counter()
        for result in results:
            run.timer["featurize_wait"] += time.perf_counter() - wait
            run.timer["worker_cpu"] = run.timer.get("worker_cpu", 0.0) + result.cpu_s
            run.slots.release()
            label = run.in_flight.popleft()
            if result.error is not None or result.graph is None:
                run.fail(result, label)
            else:
                run.accept(result, label)
            bar.update(1)
            wait = time.perf_counter()
        run.flush()
        writer.close()
        run.timer["upsert"] += writer.seconds
        if optimize or (optimize is None and store.count() >= OPTIMIZE_MIN_POINTS):
            start = time.perf_counter()
            store.optimize()
            run.timer["optimize"] = time.perf_counter() - start
    summary = run.summary
    summary.unchanged += run.skipped
    summary.seconds = round(time.perf_counter() - started, 3)
    summary.stage_seconds = {k: round(v, 3) for k, v in run.timer.items()}
    return summary


def ingest(
    paths: Iterable[str | Path],
    store: VectorStore,
    embedder: Embedder,
    *,
    source: str = "user",
    workers: int | None = None,
    batch: int = DEFAULT_BATCH,
    force: bool = False,
    report: str | Path | None = None,
    limits: ParseLimits | None = None,
    progress: bool = True,
    optimize: bool | None = None,
    reader: CifReader = "fast",
) -> IngestSummary:
    """Ingest CIF / pymatgen JSON / POSCAR files, directories (recursively) and archives.

    A material's id is ``<source>:<COD id or file stem>``; see :func:`label_entry`.
    """
    limits = limits or ParseLimits()
    items = ((entry, label_entry(entry, source)) for entry in iter_entries(paths, max_bytes=limits.max_bytes))
    return ingest_items(
        items,
        store,
        embedder,
        workers=workers,
        batch=batch,
        force=force,
        report=report,
        limits=limits,
        progress=progress,
        optimize=optimize,
        reader=reader,
    )


def builtin_items() -> Iterator[tuple[RawEntry, PointLabel]]:
    """The structures that ship with the dependencies, as labelled raw entries.

    Walked and named by :func:`matconcept.encoders.builtin.builtin_structures`: AFLOW prototypes
    (``aflow:<label>``, tagged) and pymatgen's samples (``pymatgen:<name>``) are in-memory structures
    whose entry is their canonical pymatgen JSON, hashed like a file; the COD CIFs of ``crystals``
    and ase are the files as shipped (``cod:<COD id>``).
    """
    from matconcept.encoders.builtin import builtin_structures

    for item in builtin_structures():
        entry = item.raw_entry()
        label = PointLabel(item.source, item.source_id, content_hash(entry.data or b""), dict(item.tags))
        if item.file is not None:  # a shipped CIF is kept; the JSON of an in-memory structure is not a file
            label.original, label.original_name = entry.data, file_name(entry.name)
        yield entry, label


def ingest_builtin(store: VectorStore, embedder: Embedder, **kwargs) -> IngestSummary:
    """Store the built-in structures so a fresh install has something to search (see :func:`builtin_items`)."""
    return ingest_items(builtin_items(), store, embedder, **kwargs)
