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
from pathlib import Path
from typing import TYPE_CHECKING

from matconcept.service.cli.common import (
    CliError,
    SubParsers,
    add_db_option,
    add_json_option,
    add_model_option,
    note,
    open_model,
    stage_bar,
    store_settings,
)

if TYPE_CHECKING:
    from matconcept.service.map.keeper import MapPoints

DEFAULT_COLOR_BY = ("crystal_system", "source", "n_elements")
FIELDS = ("crystal_system", "spacegroup_number", "source", "n_elements")
BUSY_STORE_HINT = "while the service runs, recompute with POST /v1/map/layout (API key)"
"""Added to the message when the store is owned by another process (most often ``matconcept serve``)."""


def add_parsers(subparsers: SubParsers) -> None:
    p = subparsers.add_parser(
        "map",
        help="compute the 2-D materials map of the store (t-SNE) and export PNG/SVG figures",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_db_option(p)
    add_model_option(p)
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
    add_json_option(p, "print the layout summary as JSON")
    p.set_defaults(func=run_map)


def export_figures(
    points: MapPoints, folder: Path, color_by: list[str], elements: list[str], formats: list[str]
) -> list[Path]:
    """The map coloured by each field, highlighted per element, and the periodic-table grid."""
    import numpy as np

    from matconcept.service.map.figures import plot_element_maps, plot_map

    folder.mkdir(parents=True, exist_ok=True)
    coords = np.column_stack([points.x, points.y]).astype(np.float32)
    title = f"{len(points.material_id)} materials · layout {points.layout_id}"
    written = []
    for fmt in formats:
        for field in color_by:
            values = getattr(points, field)
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

    from matconcept.service.map.keeper import MapKeeper
    from matconcept.service.map.layout import LayoutError, LayoutParams
    from matconcept.service.map.storage import LayoutStore
    from matconcept.service.store import StoreError, StoreLockedError, open_store

    bad = [e for e in args.element if not Element.is_valid_symbol(e)]
    if bad:
        raise CliError(f"--element: {bad[0]!r} is not an element symbol")
    try:
        params = LayoutParams(
            method=args.method,
            using=args.using,
            perplexity=args.perplexity,
            n_iter=args.iterations,
            seed=args.seed,
        )
    except ValueError as exc:
        raise CliError(str(exc)) from None
    settings = store_settings(args.db)
    loaded = open_model(args.model)
    layouts = LayoutStore(settings.maps_dir(loaded.model_id))
    try:
        with open_store(
            settings,
            loaded.model_id,
            loaded.info.model.embedding_dim,
            getattr(loaded.info.model.structure_type, "dim", None),
        ) as store:
            keeper = MapKeeper(store, layouts)
            if args.update:
                if keeper.layout is None:
                    raise CliError("no map to update yet: run `matconcept map` first")
                placed, dropped = keeper.sync()
                note(f"placed {placed} materials, dropped {dropped}")
            else:
                with stage_bar() as progress:
                    keeper.build(params, progress=progress)
            points = keeper.points()
    except StoreLockedError as exc:
        raise CliError(f"{exc}; {BUSY_STORE_HINT}") from None
    except (StoreError, LayoutError) as exc:
        raise CliError(str(exc)) from None
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
