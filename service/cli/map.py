"""``matconcept map``: compute the materials map of the store, or catch it up, and export figures.

    matconcept map                          # new t-SNE layout of every stored vector + PNG figures
    matconcept map --update                 # place materials stored since, without recomputing
    matconcept map --format png svg --color-by crystal_system source --element O --element Li

The layout is saved beside the store (see :mod:`matconcept.service.map.storage`) and served by
``matconcept serve`` at ``/map``. Like ``ingest``, this opens the embedded store itself, so it fails
with a clear message while a running service owns it; recompute through the service then
(``POST /v1/map/layout`` with the API key).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_COLOR_BY = ("crystal_system", "source", "n_elements")
FIELDS = ("crystal_system", "spacegroup_number", "source", "n_elements")


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "map",
        help="compute the 2-D materials map of the store (t-SNE) and export PNG/SVG figures",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--db", type=Path, help="embedded store directory (default: $MATCONCEPT_HOME/qdrant)")
    p.add_argument("--model", type=Path, help="checkpoint directory (default: the shipped model)")
    p.add_argument("--method", choices=["tsne", "umap"], default="tsne", help="tsne (openTSNE, default) or umap")
    p.add_argument("--using", choices=["crystal", "xrd"], default="crystal", help="which stored vectors to lay out")
    p.add_argument("--perplexity", type=float, default=30.0, help="t-SNE perplexity (default 30)")
    p.add_argument("--iterations", type=int, default=500, help="t-SNE iterations after early exaggeration")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--update", action="store_true", help="place new materials into the current layout instead")
    p.add_argument("--color-by", nargs="+", choices=FIELDS, default=list(DEFAULT_COLOR_BY), help="map figures")
    p.add_argument("--element", action="append", default=[], help="also a map highlighting this element")
    p.add_argument("--format", nargs="+", choices=["png", "svg"], default=["png"], help="figure formats")
    p.add_argument("--out", type=Path, help="figure folder (default: <layout folder>/figures)")
    p.add_argument("--no-figures", action="store_true", help="only compute and store the layout")
    p.add_argument("--json", action="store_true", help="print the layout summary as JSON")
    p.set_defaults(func=run_map)


class _Bar:
    """A tqdm bar over a layout's stages (the stage is the bar's description)."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=100, unit="%", desc="map", file=sys.stderr, leave=True)

    def __call__(self, stage: str, fraction: float) -> None:
        self.bar.set_description(f"map: {stage}", refresh=False)
        self.bar.update(max(0, int(fraction * 100) - self.bar.n))

    def close(self) -> None:
        self.bar.close()


def export_figures(points, folder: Path, color_by: list[str], elements: list[str], formats: list[str]) -> list[Path]:
    """The map coloured by each field, highlighted per element, and the periodic-table grid."""
    import numpy as np

    from matconcept.service.map.figures import crystal_system, plot_element_maps, plot_map

    folder.mkdir(parents=True, exist_ok=True)
    coords = np.column_stack([points.x, points.y]).astype(np.float32)
    title = f"{len(points.material_id)} materials · layout {points.layout_id}"
    written = []
    for fmt in formats:
        for field in color_by:
            values = (
                [crystal_system(n) for n in points.spacegroup_number]
                if field == "crystal_system"
                else getattr(points, field)
            )
            written.append(plot_map(coords, values, folder / f"map-{field}.{fmt}", field=field, title=title))
        for element in elements:
            has = [element in e for e in points.elements]
            written.append(
                plot_map(
                    coords,
                    has,
                    folder / f"map-element-{element}.{fmt}",
                    field="element",
                    title=f"{element}: {sum(has)} of {len(has)} materials",
                    highlight=has,
                    highlight_label=f"with {element}",
                )
            )
        written.append(plot_element_maps(coords, points.elements, folder / f"elements.{fmt}", title=title))
    return written


def run_map(args: argparse.Namespace) -> int:
    from pymatgen.core import Element

    from matconcept.encoders.checkpoint import resolve_model
    from matconcept.service.cli.store import _fail
    from matconcept.service.map.keeper import MapKeeper
    from matconcept.service.map.layout import LayoutError, LayoutParams
    from matconcept.service.map.storage import LayoutStore
    from matconcept.service.store import StoreError, StoreSettings, open_store

    bad = [e for e in args.element if not Element.is_valid_symbol(e)]
    if bad:
        return _fail(f"--element: {bad[0]!r} is not an element symbol")
    try:
        params = LayoutParams(
            method=args.method,
            using=args.using,
            perplexity=args.perplexity,
            n_iter=args.iterations,
            seed=args.seed,
        )
    except ValueError as exc:
        return _fail(str(exc))
    settings = StoreSettings(db=args.db) if args.db is not None else StoreSettings()
    loaded = resolve_model(args.model, "cpu")
    layouts = LayoutStore(settings.maps_dir(loaded.model_id))
    try:
        with open_store(settings, loaded.model_id, loaded.info.model.embedding_dim) as store:
            keeper = MapKeeper(store, layouts)
            if args.update:
                if keeper.layout is None:
                    return _fail("no map to update yet: run `matconcept map` first")
                placed, dropped = keeper.sync()
                print(f"placed {placed} materials, dropped {dropped}", file=sys.stderr)
            else:
                bar = _Bar()
                try:
                    keeper.build(params, progress=bar)
                finally:
                    bar.close()
            points = keeper.points()
    except (StoreError, LayoutError) as exc:
        message = str(exc)
        if "in use by another process" in message:
            message += "; while the service runs, recompute with POST /v1/map/layout (API key)"
        return _fail(message)
    status = keeper.status()
    summary = {"layout": status.layout.model_dump() if status.layout else None, "folder": str(layouts.root)}
    if not args.no_figures and points is not None:
        out = args.out or layouts.root / points.layout_id / "figures"
        summary["figures"] = [str(p) for p in export_figures(points, out, args.color_by, args.element, args.format)]
    if args.json:
        print(json.dumps(summary))
    else:
        layout = status.layout
        print(f"layout {layout.layout_id}: {layout.n_points} fitted + {layout.n_placed} placed ({layout.method})")
        for path in summary.get("figures", []):
            print(path)
    return 0
