"""The service's web pages, static files served by the gateway: the results page (``/``, ``index.html``
and ``js/results/``) and the materials map (``/map``, ``map.html`` and ``js/``); their assets under
``/map/static/``.

No library is fetched from a CDN at run time. The plots are plotly.js (the map's ``scattergl``: WebGL,
smooth at 100k+ points), the bundle the ``plotly`` package ships on PyPI, installed with the project.
The results page's 3D structure viewer is 3Dmol.js, from the npm registry: ``deploy/install.sh``
copies its minified build into ``vendor/`` (git-ignored); without it the page says so.
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
