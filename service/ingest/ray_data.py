"""Batch ingest on Ray Data: the local ingest's steps, spread over a Ray cluster.

``matconcept ingest --ray`` runs the same per-entry functions as :mod:`matconcept.service.ingest.local`
(:func:`~matconcept.service.ingest.local.label_entry`; :func:`~matconcept.service.ingest.local.prepare_entry`:
parse, featurize and every part of the point but its vectors;
:func:`~matconcept.service.ingest.local.points_from_prepared`: the model) as a Ray Data pipeline::

    listing (driver) ─► parse, featurize, build (CPU tasks) ─► embedding actor pool (GPU where a node has one)
                     ─► writes: the driver for the embedded store (its one owner), parallel writer
                        actors for a Qdrant server

The driver lists and hashes the inputs and decides, with the local ingest's rules, which entries need
work (stored with the same content hash: skipped before parsing), so a re-run does only what is left
and the counts match the local ingest's exactly: ``read == added + updated + unchanged + failed``.
Entries travel to the workers with their bytes (a Ray cluster needs no shared filesystem), in blocks
put into Ray's object store as they are read; the object store spills to disk, so the driver's memory
stays bounded while a large listing is hashed.

Within one run a material may appear twice (a copy, a newer version): as in the local ingest the last
version in input order is the one stored; such materials are written by the driver after the pipeline,
in input order, so parallel writers cannot race on them.

Ray: ``RAY_ADDRESS`` names a running cluster; otherwise a private local Ray is started (bound to
127.0.0.1, Ray's token auth off as in :mod:`matconcept.service.app.launch`) and stopped at the end.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matconcept.encoders.embedder import Embedder
from matconcept.encoders.errors import InputErrorReason, StructureInputError
from matconcept.encoders.sources import RawEntry, iter_entries
from matconcept.encoders.structure_io import ParseLimits
from matconcept.service.ingest.local import (
    DEFAULT_BATCH,
    OPTIMIZE_MIN_POINTS,
    IngestSummary,
    PointLabel,
    Prepared,
    builtin_items,
    label_entry,
    points_from_prepared,
    prepare_entry,
)
from matconcept.service.store.base import VectorStore

logger = logging.getLogger(__name__)

BLOCK_ROWS = 256
"""Entries per block put into the object store by the driver (one Ray Data block)."""
FEATURIZE_BATCH = 16
"""Entries per parse/featurize task call."""
EMBED_ACTOR_MEMORY = 512 * 1024**2
"""Bytes of memory an embedding actor reserves (model, a batch of graphs and activations)."""
CPUS_PER_EMBED_ACTOR = 16
"""One CPU embedding actor per this many CPUs: the model costs 0.4 ms of CPU per entry against ~6 ms
for parsing and building the point (benchmarks/bench_ingest_scale.py), so one actor keeps up with
about 15 cores of CPU tasks."""
LOOKUP_CHUNK = 512
"""Entries whose stored content hashes the driver fetches in one call."""
LOCAL_TEMP = "/tmp/mc-ray-ingest-{uid}"
"""Session directory of the private local Ray (short: Ray's Unix sockets need < 108 characters)."""


@dataclass(slots=True, frozen=True)
class _Todo:
    """What the driver keeps of an entry sent to the pipeline (its bytes travel on, not kept here)."""

    name: str
    material_id: str
    content_hash: str
    stored_hash: str | None


@dataclass(slots=True)
class _Work:
    """The driver's listing: the entries that need work, in input order (ordinal = index)."""

    todo: list[_Todo] = field(default_factory=list)
    read: int = 0
    skipped: int = 0


# ------------------------------------------------------------------------------------ Ray stages


_FEATURIZER: dict[tuple[str, str], Any] = {}
"""One featurizer per worker process and settings (built on a worker's first batch)."""


def featurize_rows(batch: dict[str, Any], graph: Any, xrd: Any, limits: ParseLimits) -> dict[str, Any]:
    """Ray Data CPU stage: parse, featurize and build the points (all but their vectors) of a batch of
    pickled (raw entry, label) pairs.

    Returns the batch's ordinals, the pickled :class:`Prepared` of each entry and the Ray node that
    did the work (reported, so a run shows how its work spread).
    """
    import ray
    import torch

    from matconcept.encoders.featurize import Featurizer

    key = (graph.model_dump_json(), xrd.model_dump_json())
    if key not in _FEATURIZER:
        torch.set_num_threads(1)  # Ray runs one task per CPU; the parallelism is there
        _FEATURIZER[key] = Featurizer(graph, xrd)
    featurizer = _FEATURIZER[key]
    node = ray.get_runtime_context().get_node_id()
    out = []
    for blob in batch["entry"]:
        out.append(pickle.dumps(prepare_entry(pickle.loads(blob), featurizer, limits)))
    return {"ordinal": batch["ordinal"], "featurized": out, "node": [node] * len(out)}


class EmbedStage:
    """Ray Data actor: embeds prepared entries (one model per actor, on its GPU when it has one); the
    rest of each point was built in the CPU tasks, so an actor does nothing but run the model.

    A batch the model fails on is embedded one entry at a time, so one bad graph fails alone.
    """

    def __init__(self, loaded: Any, device: str, batch: int) -> None:
        import torch

        torch.set_num_threads(1)
        self.embedder = Embedder(loaded, device=device, batch_size=batch)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import ray

        node = ray.get_runtime_context().get_node_id()
        prepared: list[Prepared] = [pickle.loads(b) for b in batch["featurized"]]
        ordinals = [int(o) for o in batch["ordinal"]]
        points: dict[int, bytes] = {}
        errors: dict[int, bytes] = {}
        good = []
        for o, r in zip(ordinals, prepared, strict=True):
            if r.error is not None or r.graph is None:
                errors[o] = pickle.dumps(r.error)
            else:
                good.append((o, r))
        try:
            made = points_from_prepared([r for _, r in good], self.embedder)
            points.update({o: pickle.dumps(p) for (o, _), p in zip(good, made, strict=True)})
        except Exception:
            logger.exception("embedding a batch of %d failed; retrying one by one", len(good))
            for o, r in good:
                try:
                    points[o] = pickle.dumps(points_from_prepared([r], self.embedder)[0])
                except Exception as exc:
                    reason = InputErrorReason.FEATURIZE_FAILED
                    errors[o] = pickle.dumps(StructureInputError(reason, r.entry_name, f"embedding failed: {exc}"))
        return {
            "ordinal": ordinals,
            "point": [points.get(o, b"") for o in ordinals],
            "error": [errors.get(o, b"") for o in ordinals],
            "featurize_node": list(batch["node"]),
            "embed_node": [node] * len(ordinals),
        }


class WriteStage:
    """Ray Data actor for a Qdrant server: upserts the batch's points (parallel writers).

    Points of materials that appear more than once in the run (``deferred`` ordinals) are not
    written here but passed back to the driver, which writes them in input order.
    """

    def __init__(
        self, store_settings: Any, model_id: str, dim: int, deferred: frozenset[int], structure_dim: int | None = None
    ) -> None:
        from matconcept.service.store import open_store

        self.store = open_store(store_settings, model_id, dim, structure_dim)
        self.deferred = deferred

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        ordinals = [int(o) for o in batch["ordinal"]]
        now = [pickle.loads(p) for o, p in zip(ordinals, batch["point"], strict=True) if p and o not in self.deferred]
        self.store.upsert(now)
        written = [bool(p) and o not in self.deferred for o, p in zip(ordinals, batch["point"], strict=True)]
        return {
            **batch,
            "written": written,
            "point": [b"" if w else p for w, p in zip(written, batch["point"], strict=True)],
        }


# ------------------------------------------------------------------------------------ driver


class _Lister:
    """Lists, labels and filters the input in the driver, with the local ingest's rule: an entry
    stored with the same content hash, and not preceded in this run by another version of the
    material, is counted and skipped before parsing."""

    def __init__(self, store: VectorStore, force: bool) -> None:
        self.store, self.force = store, force
        self.work = _Work()
        self.seen: dict[str, str] = {}

    def entries(self, items: Iterable[tuple[RawEntry, PointLabel]]) -> Iterator[tuple[RawEntry, PointLabel]]:
        from itertools import islice

        it = iter(items)
        while chunk := list(islice(it, LOOKUP_CHUNK)):
            ids = [label.material_id for entry, label in chunk if entry.data is not None]
            stored = self.store.content_hashes(ids) if ids else {}
            for entry, label in chunk:
                self.work.read += 1
                label.stored_hash = stored.get(label.material_id) if entry.data is not None else None
                earlier = self.seen.get(label.material_id, label.content_hash)
                self.seen[label.material_id] = label.content_hash
                if not self.force and label.stored_hash == label.content_hash == earlier:
                    self.work.skipped += 1
                    continue
                todo = _Todo(entry.name, label.material_id, label.content_hash, label.stored_hash)
                self.work.todo.append(todo)
                yield entry, label


def _blocks(entries: Iterable[tuple[RawEntry, PointLabel]], start: Callable[[], None]) -> Iterator[Any]:
    """Object-store references of Arrow tables of pickled (entry, label) pairs, ``BLOCK_ROWS`` at a
    time (a label's original file is the entry's bytes object, which pickle writes once).

    ``start`` (Ray's start or connection) is called before the first block only: a re-run with
    nothing left to do never starts Ray.
    """
    import pyarrow as pa
    import ray

    ordinal = 0
    rows: list[bytes] = []

    def put() -> Any:
        if ordinal == 0:
            start()
        return ray.put(pa.table({"ordinal": list(range(ordinal, ordinal + len(rows))), "entry": rows}))

    for entry in entries:
        rows.append(pickle.dumps(entry))
        if len(rows) == BLOCK_ROWS:
            yield put()
            ordinal += len(rows)
            rows = []
    if rows:
        yield put()


def init_ray(workers: int | None = None) -> bool:
    """Connect to ``RAY_ADDRESS`` or start a private local Ray; True when this call did either (the
    caller then shuts it down: a local Ray stops, a cluster connection closes)."""
    import ray

    if ray.is_initialized():
        return False
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], logging_level=logging.WARNING, log_to_driver=False)
        return True
    temp = Path(LOCAL_TEMP.format(uid=os.getuid()))
    temp.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # Ray 2.60 would write ~/.ray/auth_token otherwise
    ray.init(
        num_cpus=workers or os.cpu_count() or 1,
        _temp_dir=str(temp),
        _node_ip_address="127.0.0.1",
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    return True


def ingest_items_ray(
    items: Iterable[tuple[RawEntry, PointLabel]],
    store: VectorStore,
    embedder: Embedder,
    *,
    store_settings: Any | None = None,
    workers: int | None = None,
    embed_actors: int | None = None,
    writers: int = 2,
    batch: int = DEFAULT_BATCH,
    force: bool = False,
    report: str | Path | None = None,
    limits: ParseLimits | None = None,
    progress: bool = True,
    optimize: bool | None = None,
    stats: dict[str, Any] | None = None,
) -> IngestSummary:
    """Ingest labelled raw entries on Ray Data (the engine behind :func:`ingest_ray`).

    Args:
        store: The collection, opened by the caller (the driver owns the embedded store).
        store_settings: Where a Qdrant server store is (``StoreSettings``): writer actors open their
            own clients; None writes everything from the driver.
        workers: CPUs of the private local Ray (ignored with ``RAY_ADDRESS``).
        embed_actors: Embedding actors, each on a GPU where the cluster has GPUs, else on one CPU;
            default one per GPU, or one per ``CPUS_PER_EMBED_ACTOR`` CPUs of the cluster.
        writers: Writer actors for a Qdrant server.
        stats: Filled with the stage times and the Ray nodes that featurized and embedded.
    """
    import ray
    from tqdm import tqdm

    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    if embedder.model_id != store.model_id:
        raise ValueError(f"the embedder's model {embedder.model_id} does not match the store's {store.model_id}")
    started = time.perf_counter()
    limits = limits or ParseLimits()
    settings = embedder.loaded.info.model
    timer: dict[str, float] = {}
    with ExitStack() as stack:

        def start() -> None:
            t = time.perf_counter()
            if init_ray(workers):
                stack.callback(ray.shutdown)
            timer["ray_start"] = time.perf_counter() - t

        lister = _Lister(store, force)
        t = time.perf_counter()
        refs = list(_blocks(lister.entries(items), start))
        timer["list_hash"] = time.perf_counter() - t - timer.get("ray_start", 0.0)
        work = lister.work
        summary = IngestSummary(read=work.read, unchanged=work.skipped)
        outcomes: dict[int, tuple[Any, StructureInputError | None]] = {}
        nodes: dict[str, set[str]] = {"featurize": set(), "embed": set()}
        remote = store_settings is not None and getattr(store_settings, "qdrant_url", None)
        if refs:
            import ray.data

            ray.data.DataContext.get_current().enable_progress_bars = progress
            counts = Counter(t.material_id for t in work.todo)
            deferred = frozenset(o for o, t in enumerate(work.todo) if counts[t.material_id] > 1)
            resources = ray.cluster_resources()
            gpus = int(resources.get("GPU", 0))
            actors = embed_actors or gpus or max(1, int(resources.get("CPU", 1)) // CPUS_PER_EMBED_ACTOR)
            ds = ray.data.from_arrow_refs(refs).map_batches(
                featurize_rows,
                batch_size=FEATURIZE_BATCH,
                fn_kwargs={"graph": settings.graph, "xrd": settings.xrd, "limits": limits},
                num_cpus=1,
            )
            ds = ds.map_batches(
                EmbedStage,
                fn_constructor_kwargs={
                    "loaded": embedder.loaded,
                    "device": "cuda" if gpus else "cpu",
                    "batch": batch,
                },
                batch_size=batch,
                compute=ray.data.ActorPoolStrategy(size=actors),
                num_gpus=1 if gpus else 0,
                num_cpus=0 if gpus else 1,
                # The model's memory, reserved; it also keeps Ray Data from fusing the CPU tasks into
                # the actors (fused, every entry would be parsed inside the few embedding actors).
                memory=EMBED_ACTOR_MEMORY,
            )
            if remote:
                ds = ds.map_batches(
                    WriteStage,
                    fn_constructor_kwargs={
                        "store_settings": store_settings,
                        "model_id": store.model_id,
                        "dim": store.dim,
                        "structure_dim": store.sizes.get("structure"),
                        "deferred": deferred,
                    },
                    batch_size=batch,
                    compute=ray.data.ActorPoolStrategy(size=writers),
                    num_cpus=0.5,
                )
            t = time.perf_counter()
            bar = stack.enter_context(tqdm(total=len(work.todo), desc="ingest", unit="entry", disable=not progress))
            later: dict[int, Any] = {}
            for rows in ds.iter_batches(batch_size=None, batch_format="numpy"):
                now = []
                for i, o in enumerate(rows["ordinal"]):
                    o = int(o)
                    nodes["featurize"].add(str(rows["featurize_node"][i]))
                    nodes["embed"].add(str(rows["embed_node"][i]))
                    point = pickle.loads(rows["point"][i]) if rows["point"][i] else None
                    error = pickle.loads(rows["error"][i]) if rows["error"][i] else None
                    written = bool(rows["written"][i]) if "written" in rows else False
                    outcomes[o] = (point is not None or written, error)
                    if point is not None and o in deferred:
                        later[o] = point
                    elif point is not None:
                        now.append(point)
                store.upsert(now)
                bar.update(len(rows["ordinal"]))
            # Materials seen more than once: every successful version in input order, the last wins.
            for o in sorted(later):
                store.upsert([later[o]])
            timer["pipeline"] = time.perf_counter() - t
        _count(summary, work, outcomes, report)
        if optimize or (optimize is None and store.count() >= OPTIMIZE_MIN_POINTS):
            t = time.perf_counter()
            store.optimize()
            timer["optimize"] = time.perf_counter() - t
    summary.seconds = round(time.perf_counter() - started, 3)
    summary.stage_seconds = {k: round(v, 3) for k, v in timer.items()}
    if stats is not None:
        stats.update({"stage_seconds": summary.stage_seconds, "nodes": {k: sorted(v) for k, v in nodes.items()}})
    return summary


def _count(
    summary: IngestSummary,
    work: _Work,
    outcomes: dict[int, tuple[bool, StructureInputError | None]],
    report: str | Path | None,
) -> None:
    """The local ingest's counters, replayed in input order over the pipeline's outcomes."""
    done: dict[str, str] = {}
    lines = []
    for o, label in enumerate(work.todo):
        ok, error = outcomes.get(o, (False, None))
        if not ok:
            summary.failed += 1
            if error is not None:
                lines.append({"path": label.name, "id": label.material_id, **error.to_dict()})
            continue
        mid = label.material_id
        if mid in done:
            if done[mid] == label.content_hash:
                summary.unchanged += 1
                continue
            summary.updated += 1
        elif label.stored_hash is None:
            summary.added += 1
        else:
            summary.updated += 1
        done[mid] = label.content_hash
    if report is not None:
        Path(report).parent.mkdir(parents=True, exist_ok=True)
        with Path(report).open("w") as out:
            for line in lines:
                out.write(json.dumps(line) + "\n")


def ingest_ray(
    paths: Iterable[str | Path], store: VectorStore, embedder: Embedder, *, source: str = "user", **kwargs
) -> IngestSummary:
    """Ingest CIF / pymatgen JSON / POSCAR files, directories and archives on Ray (see :func:`ingest_items_ray`)."""
    limits = kwargs.get("limits") or ParseLimits()
    items = ((entry, label_entry(entry, source)) for entry in iter_entries(paths, max_bytes=limits.max_bytes))
    return ingest_items_ray(items, store, embedder, **kwargs)


def ingest_builtin_ray(store: VectorStore, embedder: Embedder, **kwargs) -> IngestSummary:
    """The built-in structures, on Ray (see :func:`matconcept.service.ingest.local.builtin_items`)."""
    return ingest_items_ray(builtin_items(), store, embedder, **kwargs)
