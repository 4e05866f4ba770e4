"""The map of one collection: its current layout, kept in step with the store, and its jobs.

:class:`MapKeeper` is what both the ``matconcept map`` command and the service's store replica
use, so the layout is computed, extended and served one way:

- :meth:`MapKeeper.build` reads every stored vector, computes a layout and saves it;
- :meth:`MapKeeper.points` answers the web page: every stored material with its position and the
  payload fields the page colours and searches by. Materials stored since the layout was computed
  (or changed since) are *placed* into it first, never by recomputing it;
- :meth:`MapKeeper.place` positions query vectors (an uploaded CIF or pattern) without storing them;
- :meth:`MapKeeper.start_build` runs a build in a background thread and reports its progress
  through :meth:`MapKeeper.status`, so the service keeps answering searches meanwhile.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from matconcept.service.map.layout import Layout, LayoutError, LayoutParams, Progress, compute_layout
from matconcept.service.map.storage import LayoutStore
from matconcept.service.store.base import VectorStore
from matconcept.service.store.records import stored_crystal_system

logger = logging.getLogger(__name__)

POINT_FIELDS: tuple[str, ...] = (
    "formula",
    "elements",
    "spacegroup_number",
    "spacegroup_symbol",
    "crystal_system",
    "source",
    "n_elements",
)
"""Payload fields sent with every map point: what the page and the figures colour, search and label by."""
DECIMALS = 4
"""Decimals of served positions (a layout spans ~100 units: 1e-4 is far below a pixel; smaller JSON)."""
PLACE_BATCH = 1000
"""Materials whose vectors are read and placed in one step when the layout catches up with the store."""


class MapJob(BaseModel):
    """Progress of the layout computation the service is running (or ran last)."""

    state: Literal["idle", "running", "done", "failed"] = "idle"
    stage: str = ""
    progress: float = Field(default=0.0, ge=0.0, le=1.0)
    message: str = ""


class LayoutSummary(BaseModel):
    layout_id: str
    method: str
    using: str
    n_points: int
    n_placed: int
    model_id: str
    created_at: str
    elapsed_s: float


class MapStatus(BaseModel):
    """``GET /v1/map``: the current layout (None before the first) and the layout job."""

    layout: LayoutSummary | None = None
    job: MapJob = Field(default_factory=MapJob)


class MapPoints(BaseModel):
    """Every stored material on the map, column by column (compact JSON for 100k+ points)."""

    layout_id: str
    material_id: list[str]
    x: list[float]
    y: list[float]
    formula: list[str]
    elements: list[list[str]]
    spacegroup_number: list[int | None]
    spacegroup_symbol: list[str | None]
    crystal_system: list[str | None]
    source: list[str]
    n_elements: list[int]


def read_vectors(store: VectorStore, using: str, progress: Callable[[int], None] | None = None):
    """(material ids, (n, dim) float32 vectors) of every stored material."""
    ids: list[str] = []
    chunks: list[np.ndarray] = []
    for payloads, vectors in store.scroll([], using=using):
        ids.extend(p["material_id"] for p in payloads)
        chunks.append(vectors)
        if progress is not None:
            progress(len(payloads))
    dim = store.dim
    return ids, (np.concatenate(chunks) if chunks else np.zeros((0, dim), dtype=np.float32))


class MapKeeper:
    """The current layout of one collection, kept in step with its store.

    Args:
        store: The collection.
        layouts: Where its layouts are saved.
        store_lock: Held around every store call (the service's store replica serialises calls).
    """

    def __init__(
        self, store: VectorStore, layouts: LayoutStore, store_lock: AbstractContextManager | None = None
    ) -> None:
        self.store, self.layouts = store, layouts
        self.store_lock = store_lock or nullcontext()
        self.lock = threading.RLock()
        self.job = MapJob()
        self._layout: Layout | None = None
        self._loaded = False
        self._stale: set[str] = set()
        self._synced = False
        self._points: MapPoints | None = None
        self._thread: threading.Thread | None = None

    # -- the layout -----------------------------------------------------------------------------
    @property
    def layout(self) -> Layout | None:
        with self.lock:
            if not self._loaded:
                self._layout = self.layouts.load()
                self._loaded = True
                if self._layout is not None and self._layout.info.model_id != self.store.model_id:
                    logger.warning("layout %s is of another model; ignoring it", self._layout.info.layout_id)
                    self._layout = None
            return self._layout

    def status(self) -> MapStatus:
        layout = self.layout
        summary = None
        if layout is not None:
            info = layout.info
            summary = LayoutSummary(
                layout_id=info.layout_id,
                method=info.params.method,
                using=info.params.using,
                n_points=info.n_points,
                n_placed=info.n_placed,
                model_id=info.model_id,
                created_at=info.created_at,
                elapsed_s=info.elapsed_s,
            )
        return MapStatus(layout=summary, job=self.job.model_copy())

    def build(self, params: LayoutParams | None = None, progress: Progress | None = None) -> Layout:
        """Compute a new layout of every stored vector, save it and make it current."""
        params = params or LayoutParams()
        progress = progress or (lambda stage, fraction: None)
        progress("reading vectors", 0.0)
        with self.store_lock:
            ids, vectors = read_vectors(self.store, params.using)
        layout = compute_layout(ids, vectors, self.store.model_id, params, progress)
        del vectors
        progress("saving", 1.0)
        self.layouts.save(layout)
        with self.lock:
            self._layout, self._loaded = layout, True
            self._points = None
            self._stale.clear()
            self._synced = False
        return layout

    def start_build(self, params: LayoutParams | None = None) -> MapStatus:
        """Run :meth:`build` in a background thread (one at a time); progress in :meth:`status`."""
        with self.lock:
            if self._thread is not None and self._thread.is_alive():
                return self.status()
            self.job = MapJob(state="running", stage="starting")
            self._thread = threading.Thread(target=self._run_build, args=(params,), name="map-build", daemon=True)
            self._thread.start()
            return self.status()

    def _run_build(self, params: LayoutParams | None) -> None:
        def progress(stage: str, fraction: float) -> None:
            self.job = MapJob(state="running", stage=stage, progress=min(1.0, max(0.0, fraction)))

        try:
            layout = self.build(params, progress)
        except LayoutError as exc:
            self.job = MapJob(state="failed", stage="failed", message=str(exc))
        except Exception:
            logger.exception("map layout failed")
            self.job = MapJob(state="failed", stage="failed", message="internal error; the service log has the details")
        else:
            self.job = MapJob(
                state="done",
                stage="done",
                progress=1.0,
                message=f"{layout.info.n_points} materials laid out in {layout.info.elapsed_s:.1f} s",
            )

    def wait(self, timeout: float | None = None) -> MapStatus:
        """Block until a background build ends (tests, the CLI)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.status()

    # -- keeping up with the store --------------------------------------------------------------
    def changed(self, material_ids: list[str]) -> None:
        """The store wrote or deleted these materials: re-place them when the map is next read."""
        with self.lock:
            self._stale.update(material_ids)
            self._synced = False
            self._points = None

    def sync(self) -> tuple[int, int]:
        """Place stored materials the layout lacks (or that changed); forget deleted placed ones.

        Returns (placed, dropped). Fitted points are never moved by this: only a new build does.
        """
        with self.lock:
            layout = self.layout
            if layout is None or self._synced:
                return 0, 0
            with self.store_lock:
                stored = self.store.iter_ids()
            stored_set = set(stored)
            todo = layout.missing(stored) + [m for m in self._stale if m in stored_set]
            todo = list(dict.fromkeys(todo))
            for start in range(0, len(todo), PLACE_BATCH):
                chunk = todo[start : start + PLACE_BATCH]
                with self.store_lock:
                    records = self.store.get(chunk, with_vectors=True)
                using = layout.info.params.using
                vectors = np.asarray([r.vectors[using] for r in records], dtype=np.float32)
                layout.extend([r.material_id for r in records], layout.place(vectors))
            dropped = layout.drop(set(layout.ids) - stored_set)
            self._stale.clear()
            self._synced = True
            if todo or dropped:
                self.layouts.save_placed(layout)
                logger.info("map %s: placed %d, dropped %d", layout.info.layout_id, len(todo), dropped)
            return len(todo), dropped

    def points(self) -> MapPoints | None:
        """Every stored material with its position (None before the first layout)."""
        with self.lock:
            if self._points is not None:
                return self._points
            layout = self.layout
            if layout is None:
                return None
            self.sync()
            columns: dict[str, list] = {name: [] for name in ("material_id", "x", "y", *POINT_FIELDS)}
            with self.store_lock:
                pages = list(self.store.scroll(list(POINT_FIELDS)))
            for payloads, _ in pages:
                for p in payloads:
                    xy = self.position(p["material_id"])
                    if xy is None:  # written between sync and scroll: on the next read
                        continue
                    columns["material_id"].append(p["material_id"])
                    columns["x"].append(xy[0])
                    columns["y"].append(xy[1])
                    p["crystal_system"] = stored_crystal_system(p)  # stores written before it was a field
                    for name in POINT_FIELDS:
                        columns[name].append(p.get(name))
            self._points = MapPoints(layout_id=layout.info.layout_id, **columns)
            return self._points

    def place(self, vectors: np.ndarray) -> tuple[str, np.ndarray]:
        """(layout id, positions) of query vectors in the current layout; nothing is stored."""
        with self.lock:
            layout = self.layout
            if layout is None:
                raise LayoutError("no map yet: run `matconcept map` or POST /v1/map/layout")
            return layout.info.layout_id, np.round(layout.place(vectors), DECIMALS)

    def position(self, material_id: str) -> tuple[float, float] | None:
        """(x, y) of a laid-out material, rounded to :data:`DECIMALS` as everywhere the map is served."""
        layout = self.layout
        xy = None if layout is None else layout.position(material_id)
        return None if xy is None else (round(xy[0], DECIMALS), round(xy[1], DECIMALS))
