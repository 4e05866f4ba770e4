"""The web page of the materials map: static files served by the gateway under ``/map``.

The scatter library is plotly.js (``scattergl``: WebGL, smooth at 100k+ points), taken from the
bundle the ``plotly`` package ships on PyPI, so it is installed with the project and never fetched
from a CDN at run time.
"""

from __future__ import annotations

from pathlib import Path

WEB_DIR = Path(__file__).resolve().parent
ASSET_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
"""What may be served from this folder, and as what (ES modules need a JavaScript type)."""
ASSET_SUFFIXES = tuple(ASSET_TYPES)
PLOTLY_BUNDLE = "plotly.min.js"


def plotly_bundle() -> Path:
    """plotly.js as shipped inside the ``plotly`` Python package."""
    from importlib.resources import files

    return Path(str(files("plotly") / "package_data" / PLOTLY_BUNDLE))


def asset_path(name: str) -> Path | None:
    """The file behind ``/map/static/<name>`` (sub-folders allowed, e.g. ``js/main.js``), or None.

    None for anything that is not a page asset inside this folder: other suffixes, empty, hidden or
    ``..`` path parts, backslashes, and links that lead outside.
    """
    if name == PLOTLY_BUNDLE:
        path = plotly_bundle()
        return path if path.is_file() else None
    parts = name.split("/")
    if "\\" in name or any(not part or part.startswith(".") for part in parts) or not name.endswith(ASSET_SUFFIXES):
        return None
    path = WEB_DIR.joinpath(*parts)
    if not path.is_file() or not path.resolve().is_relative_to(WEB_DIR):
        return None
    return path


def asset_media_type(path: Path) -> str:
    """The Content-Type of a page asset (``text/javascript`` for the ES modules)."""
    return ASSET_TYPES.get(path.suffix.lower(), "application/octet-stream")
