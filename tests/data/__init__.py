"""Real structures for tests: they ship inside installed packages (see :mod:`matconcept.encoders.builtin`)."""

from __future__ import annotations

from pathlib import Path

from matconcept.encoders.builtin import crystals_cifs


def cod_cif(name: str) -> Path:
    """One of the ``crystals`` package's COD CIFs by file stem, e.g. ``cod_cif("BaTiO3_cubic")``."""
    for path in crystals_cifs():
        if path.stem == name:
            return path
    raise FileNotFoundError(name)
