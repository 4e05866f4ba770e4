"""Raw entries → checked structures → (graph + XRD) features, in parallel, one bad entry at a time.

The CPU-heavy part of embedding, ingest and the training cache (CIF parsing, primitive cell,
neighbour list, XRD) runs in a process pool so that every core works; the model then embeds the
results in batches. :func:`parallel_featurize` is that pool, the only one: each worker builds one
:class:`~matconcept.encoders.featurize.Featurizer` and applies a caller's function to each item
with it. :func:`featurize_entries` runs it over raw entries (ingest, embed); the training cache runs
it over corpus records. Failures come back as :class:`~matconcept.encoders.errors.StructureInputError`
values, never as exceptions, so a collection of hundreds of thousands of awkward CIFs is walked to
the end.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing as mp
import multiprocessing.pool
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from matconcept.encoders.errors import InputErrorReason, StructureInputError
from matconcept.encoders.featurize import Featurizer
from matconcept.encoders.graph import GraphSettings, graph_data
from matconcept.encoders.sources import RawEntry
from matconcept.encoders.structure_io import CifReader, ParsedStructure, ParseLimits, read_entry
from matconcept.encoders.xrd import XRDSettings

if TYPE_CHECKING:
    from torch_geometric.data import Data

logger = logging.getLogger(__name__)

POOL_CHUNKSIZE = 8
"""Entries per task sent to a worker: amortises pickling without starving the progress bar."""
WORK_WHILE_POOL_STARTS = True
"""Whether :func:`parallel_featurize`'s caller works through items itself while its pool starts: the
first pool of a process that preloads torch and PyG waits ~4 s for the workers' server to import them
on one core, while the other idled (2,000 COD CIFs ingested on 2 cores: 156 -> 174 CIFs/s with a cold
server, before ingest's workers stopped loading torch). Tests that must see every item cross the
process boundary turn it off."""

GRAPH_MODULES = ("torch_geometric.data",)
"""What a pool's workers' server preloads for work that makes PyG graphs (torch with it)."""

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


@dataclass(slots=True)
class Featurized:
    """One entry's outcome: ``parsed`` and ``graph`` on success, ``error`` otherwise."""

    entry_name: str
    entry_stem: str
    parsed: ParsedStructure | None = None
    graph: Data | None = None
    error: StructureInputError | None = None


_WORKER: tuple[Featurizer, Callable[..., object]] | None = None
"""This worker process's featurizer and work function, set once by :func:`_init_worker`."""


def data_from_arrays(arrays: dict[str, object]) -> Data:
    """A graph from :func:`reduce_data`'s arrays (numpy arrays become tensors sharing their memory).

    Runs on the parent's result thread for every entry: the attributes go into the graph in one
    update (:func:`~matconcept.encoders.graph.graph_data`, 0.13 -> 0.08 ms per entry).
    """
    return graph_data(arrays)


def reduce_data(data: Data) -> tuple[Callable[[dict[str, object]], Data], tuple[dict[str, object]]]:
    """How a pool worker sends a graph back: its tensors as numpy arrays, pickled in line.

    multiprocessing's pickler sends each torch tensor through a shared-memory segment and a file
    descriptor, which cost ~5 ms per featurized entry here (a graph holds nine tensors) against
    0.2 ms for the same arrays in line, and that round trip ran on the parent's result thread, the
    ingest's serial stage.
    """
    import torch

    arrays = {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in data.to_dict().items()}
    return data_from_arrays, (arrays,)


def _init_worker(graph: GraphSettings, xrd: XRDSettings, work: Callable[..., object]) -> None:
    global _WORKER
    _WORKER = (Featurizer(graph, xrd), work)
    _set_up_torch()


_TORCH_SET_UP = False


def _set_up_torch() -> None:
    """Once torch and PyG are loaded in this worker (preloaded, or by the work itself): one torch thread
    (the pool provides the parallelism) and graphs sent back in line, not through shared memory.
    A worker whose work makes no graphs (ingest's, which sends arrays) never loads them."""
    global _TORCH_SET_UP
    if _TORCH_SET_UP or "torch_geometric.data" not in sys.modules:
        return
    from multiprocessing.reduction import ForkingPickler

    import torch
    from torch_geometric.data import Data

    torch.set_num_threads(1)
    ForkingPickler.register(Data, reduce_data)
    _TORCH_SET_UP = True


def _work(item: object) -> object:
    assert _WORKER is not None, "_work runs only in a pool worker set up by _init_worker"
    featurizer, work = _WORKER
    result = work(item, featurizer)
    _set_up_torch()  # before the result is pickled
    return result


def parallel_featurize(
    items: Iterable[ItemT],
    work: Callable[[ItemT, Featurizer], ResultT],
    graph: GraphSettings | None = None,
    xrd: XRDSettings | None = None,
    workers: int | None = None,
    chunksize: int = POOL_CHUNKSIZE,
    preload: Sequence[str] = GRAPH_MODULES,
) -> Iterator[ResultT]:
    """``work(item, featurizer)`` for each item, with ``workers`` processes (1 = in this process).

    Each worker process builds its :class:`Featurizer` once (building it loads tables and models
    that must not be pickled per item) and runs torch on one thread: the pool provides the
    parallelism. Workers are spawned, not forked, because forking after torch or Ray has started
    threads is unsafe. ``work`` must therefore be picklable: a module-level function, or a
    :func:`functools.partial` of one with picklable arguments; it should turn failures into
    values, since an exception ends the whole run.

    Args:
        items: Inputs, consumed lazily (``chunksize`` at a time per worker).
        work: Function of (item, featurizer) returning that item's result.
        graph: Graph settings of the featurizer; the defaults when None.
        xrd: XRD settings of the featurizer; the defaults when None.
        workers: Processes; every core when None.
        chunksize: Items per task sent to a worker.
        preload: Modules the workers' server imports once, before it forks workers, besides this
            module and ``work``'s: torch and PyG by default, for work that makes graphs; ``()`` for
            work that makes arrays only (ingest's), whose workers then start in under a second.

    While the pool starts (the first pool of a process waits for its workers' server to import
    ``preload``: ~4 s for torch and PyG, on one core), this thread works through the first items
    itself; the pool takes the rest. Each worker also imports the script that runs as ``__main__``
    again (multiprocessing's rule), so a script should import torch inside its ``main``.

    Yields:
        ``work``'s results, in input order, as they finish. Closing the generator early stops the pool.
    """
    graph = graph or GraphSettings()
    xrd = xrd or XRDSettings()
    workers = workers or os.cpu_count() or 1
    if workers <= 1:
        featurizer = Featurizer(graph, xrd)
        for item in items:
            yield work(item, featurizer)
        return
    starter = _PoolStarter(workers, graph, xrd, work, preload)
    pending = iter(items)
    try:
        featurizer = None
        while WORK_WHILE_POOL_STARTS and starter.starting:
            item = next(pending, _END)
            if item is _END:
                break
            if featurizer is None:
                featurizer = Featurizer(graph, xrd)
            yield work(item, featurizer)
        pool = starter.result()
    except BaseException:  # an error, or the generator closed while the pool starts: stop it once started
        starter.close()
        raise
    with pool:
        yield from pool.imap(_work, pending, chunksize=chunksize)


_END = object()


class _PoolStarter:
    """Creates a :class:`_Pool` in a thread, so that its caller can work while the workers start."""

    def __init__(
        self, workers: int, graph: GraphSettings, xrd: XRDSettings, work: Callable[..., object], preload: Sequence[str]
    ) -> None:
        self.pool: _Pool | None = None
        self.error: BaseException | None = None
        args = (workers, graph, xrd, work, preload)
        self.thread = threading.Thread(target=self._start, args=args, name="featurize-pool-start", daemon=True)
        self.thread.start()

    def _start(
        self, workers: int, graph: GraphSettings, xrd: XRDSettings, work: Callable[..., object], preload: Sequence[str]
    ) -> None:
        try:
            context = _pool_context(work, preload)
            self.pool = _Pool(workers, initializer=_init_worker, initargs=(graph, xrd, work), context=context)
        except BaseException as exc:  # raised again in the caller's thread by result()
            self.error = exc

    @property
    def starting(self) -> bool:
        return self.thread.is_alive()

    def result(self) -> _Pool:
        """The started pool (waits for it); raises what starting it raised."""
        self.thread.join()
        if self.error is not None:
            raise self.error
        assert self.pool is not None
        return self.pool

    def close(self) -> None:
        """Wait for the pool to start and stop it (its caller no longer needs it)."""
        self.thread.join()
        if self.pool is not None:
            self.pool.terminate()


class _Pool(multiprocessing.pool.Pool):
    """multiprocessing's Pool without its worker handler's busy wait on the result pipe.

    The stock Pool's worker-handler thread waits on the result pipe among its wake-up sources, so
    while results sit in the pipe (until the result thread has read them) it loops without
    blocking: 0.3-0.6 ms of the parent's CPU per ingested CIF, competing for the GIL with the
    threads that unpickle results and embed them. It needs no wake-up from results: worker exits
    (their sentinels), ``close``/``terminate`` and an emptied task cache reach it through the
    other sources, which is all that :class:`multiprocessing.pool.ThreadPool` waits on too.
    """

    def _get_sentinels(self) -> list:
        return [self._change_notifier._reader]


def _pool_context(work: Callable[..., object], preload: Sequence[str] = ()) -> mp.context.BaseContext:
    """Workers forked from a forkserver that imported this module, ``work``'s and ``preload`` once.

    Forking this process after torch, Ray or a store has started threads is unsafe, so workers
    used to be spawned, and each spent ~4.5 s of CPU importing torch, torch_geometric and pymatgen
    (more than 2,000 CIFs' worth of parsing on the fast path). The forkserver is a clean,
    single-threaded process started once per process: it imports those modules once and forks
    every worker of every later pool from that state (the modules of the first pool's preload: one
    server per process).
    """
    ctx = mp.get_context("forkserver")
    module = getattr(getattr(work, "func", work), "__module__", None)
    ctx.set_forkserver_preload([__name__, *preload] + ([module] if module and module != "__main__" else []))
    return ctx


def featurize_entry(
    entry: RawEntry, featurizer: Featurizer, limits: ParseLimits, reader: CifReader = "fast", pattern: bool = True
) -> Featurized:
    """Parse, check and featurize one entry; any failure becomes ``Featurized.error``.

    ``pattern=False``: no simulated pattern on the graph (a query that needs no XRD vector)."""
    try:
        parsed = read_entry(entry, limits, reader)
    except StructureInputError as exc:
        return Featurized(entry.name, entry.stem, error=exc)
    try:
        graph = featurizer.featurize(parsed.structure, pattern=pattern)
    except Exception as exc:  # a checked structure should featurize; report, never crash a batch
        logger.exception("%s: featurization failed", entry.name)
        err = StructureInputError(InputErrorReason.FEATURIZE_FAILED, entry.name, f"featurization failed: {exc}")
        return Featurized(entry.name, entry.stem, parsed=parsed, error=err)
    return Featurized(entry.name, entry.stem, parsed=parsed, graph=graph)


def featurize_entries(
    entries: Iterable[RawEntry],
    graph: GraphSettings | None = None,
    xrd: XRDSettings | None = None,
    limits: ParseLimits | None = None,
    workers: int | None = None,
    reader: CifReader = "fast",
) -> Iterator[Featurized]:
    """Featurize ``entries`` in input order with ``workers`` processes (1 = in this process).

    ``workers=None`` uses every core. Results stream as they finish, in input order. ``reader``
    chooses the CIF reader (see :func:`~matconcept.encoders.structure_io.read_structure`).
    """
    work = functools.partial(featurize_entry, limits=limits or ParseLimits(), reader=reader)
    return parallel_featurize(entries, work, graph, xrd, workers)
