"""The web page of the materials map: static files served by the gateway under ``/map``.

The scatter library is plotly.js (``scattergl``: WebGL, smooth at 100k+ points), taken from the
bundle the ``plotly`` package ships on PyPI, so it is installed with the project and never fetched
from a CDN at run time.
"""

from __future__ import annotations

from pathlib import Path

WEB_DIR = Path(__file__).resolve().parent
ASSET_SUFFIXES = (".html", ".js", ".css", ".svg", ".png")
PLOTLY_BUNDLE = "plotly.min.js"


def plotly_bundle() -> Path:
    """plotly.js as shipped inside the ``plotly`` Python package."""
    from importlib.resources import files

    return Path(str(files("plotly") / "package_data" / PLOTLY_BUNDLE))


def asset_path(name: str) -> Path | None:
    """The file behind ``/map/static/<name>``, or None (no sub-folders, only page assets)."""
    if name == PLOTLY_BUNDLE:
        path = plotly_bundle()
        return path if path.is_file() else None
    if "/" in name or "\\" in name or name.startswith(".") or not name.endswith(ASSET_SUFFIXES):
        return None
    path = WEB_DIR / name
    return path if path.is_file() else None
