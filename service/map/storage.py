"""Layouts on disk, beside the collection they map; written so a crash never leaves half a layout.

::

    <maps dir>/                       StoreSettings.maps_dir(model_id)
        CURRENT                       the id of the layout in use (replaced atomically)
        <layout_id>/
            layout.json               LayoutInfo
            fitted.npz                ids, coords, PCA mean/components, PCA coordinates of fitted points
            placed.npz                ids and coords placed later (rewritten atomically)

A new layout is written to a temporary folder and renamed into place before ``CURRENT`` points at
it, so a reader sees the old layout or the new one, never a mix. Older layouts beyond
:data:`KEEP_LAYOUTS` are removed.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from matconcept.service.map.layout import Layout, LayoutError, LayoutInfo

logger = logging.getLogger(__name__)

CURRENT = "CURRENT"
INFO = "layout.json"
FITTED = "fitted.npz"
PLACED = "placed.npz"
KEEP_LAYOUTS = 2
"""Layouts kept on disk: the current one and the one before (to compare or go back)."""


def _write_atomic(path: Path, write) -> None:
    """Write ``path`` through a temporary file in the same folder and ``os.replace`` it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_text(path: Path, text: str) -> None:
    _write_atomic(path, lambda h: h.write(text.encode("utf-8")))


class LayoutStore:
    """The layouts of one collection, in one folder.

    Args:
        root: The collection's maps folder (created on first save).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def current_id(self) -> str | None:
        try:
            value = (self.root / CURRENT).read_text().strip()
        except FileNotFoundError:
            return None
        return value if value and (self.root / value / INFO).is_file() else None

    def layout_ids(self) -> list[str]:
        """Stored layouts, oldest first."""
        if not self.root.is_dir():
            return []
        found = [p for p in self.root.iterdir() if (p / INFO).is_file()]
        return [p.name for p in sorted(found, key=lambda p: (p / INFO).stat().st_mtime)]

    def load(self, layout_id: str | None = None) -> Layout | None:
        """A stored layout (the current one by default); None when there is none."""
        layout_id = layout_id or self.current_id()
        if layout_id is None:
            return None
        folder = self.root / layout_id
        if not (folder / INFO).is_file():
            raise LayoutError(f"no layout {layout_id!r} under {self.root}")
        info = LayoutInfo.model_validate_json((folder / INFO).read_text())
        with np.load(folder / FITTED, allow_pickle=False) as f:
            ids = [str(m) for m in f["ids"]]
            coords = f["coords"].astype(np.float32)
            mean, components, reference = f["pca_mean"], f["pca_components"], f["reference"]
        info.n_placed = 0
        if (folder / PLACED).is_file():
            with np.load(folder / PLACED, allow_pickle=False) as f:
                ids += [str(m) for m in f["ids"]]
                coords = np.concatenate([coords, f["coords"].astype(np.float32)])
                info.n_placed = len(f["ids"])
        return Layout(info, ids, coords, mean, components, reference)

    def save(self, layout: Layout, *, make_current: bool = True) -> Path:
        """Write a new layout (fitted and placed points) and make it the current one."""
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / layout.info.layout_id
        staging = Path(tempfile.mkdtemp(dir=self.root, prefix=".staging-"))
        try:
            n = layout.n_fitted
            with (staging / FITTED).open("wb") as handle:
                np.savez(
                    handle,
                    ids=np.asarray(layout.ids[:n], dtype=str),
                    coords=layout.coords[:n],
                    pca_mean=layout.pca_mean,
                    pca_components=layout.pca_components,
                    reference=layout.reference,
                )
            (staging / INFO).write_text(layout.info.model_dump_json(indent=2))
            if final.exists():
                shutil.rmtree(final)
            os.replace(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self.save_placed(layout)
        if make_current:
            _write_text(self.root / CURRENT, layout.info.layout_id + "\n")
            self.prune()
        return final

    def save_placed(self, layout: Layout) -> None:
        """Rewrite the points placed after the fit (and the count in layout.json)."""
        folder = self.root / layout.info.layout_id
        n = layout.n_fitted
        ids = np.asarray(layout.ids[n:], dtype=str)
        coords = layout.coords[n:]
        _write_atomic(folder / PLACED, lambda h: np.savez(h, ids=ids, coords=coords))
        _write_text(folder / INFO, layout.info.model_dump_json(indent=2))

    def prune(self, keep: int = KEEP_LAYOUTS) -> list[str]:
        """Remove all but the newest ``keep`` layouts (never the current one) and stale staging folders."""
        current = self.current_id()
        ids = self.layout_ids()
        removed = [i for i in ids[: max(0, len(ids) - keep)] if i != current]
        for layout_id in removed:
            shutil.rmtree(self.root / layout_id, ignore_errors=True)
        for stale in self.root.glob(".staging-*"):
            shutil.rmtree(stale, ignore_errors=True)
        return removed
