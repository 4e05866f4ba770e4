"""The dataset sources by name, and reading a fetched one.

The registry names each source once; ``matconcept corpus fetch --source`` and ``matconcept ingest
--dataset`` take these names. Reading never downloads: a source that was not fetched is an error that
says which command fetches it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from matconcept.encoders.datasets import crystal_builder, debian, matminer, zeolites
from matconcept.encoders.datasets.core import (
    BadEntryHandler,
    DatasetItem,
    DatasetSource,
    SourceManifest,
    dataset_root,
    log_bad_entry,
    read_manifest,
)

SOURCES: dict[str, DatasetSource] = {
    s.name: s
    for s in (matminer.SOURCE, crystal_builder.SOURCE, debian.PYMATGEN_TEST_FILES, debian.AVOGADRO, zeolites.SOURCE)
}
"""Every known source, in fetch order."""


class DatasetNotFetchedError(LookupError):
    """A source was asked for before ``matconcept corpus fetch`` put it in the cache."""


def get_source(name: str) -> DatasetSource:
    """The source called ``name``; ``ValueError`` listing the known names otherwise."""
    try:
        return SOURCES[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(SOURCES)}") from None


def source_folder(name: str, root: str | Path | None = None) -> Path:
    """Folder of a fetched source (it may not exist yet)."""
    return dataset_root(root) / get_source(name).name


def fetched_manifest(name: str, root: str | Path | None = None) -> SourceManifest:
    """The manifest of a fetched source; :class:`DatasetNotFetchedError` when it was never fetched."""
    folder = source_folder(name, root)
    manifest = read_manifest(folder)
    if manifest is None:
        raise DatasetNotFetchedError(
            f"dataset {name!r} is not fetched under {folder.parent}; run `matconcept corpus fetch --source {name}`"
        )
    return manifest


def read_dataset(
    name: str, root: str | Path | None = None, on_bad: BadEntryHandler = log_bad_entry
) -> Iterator[DatasetItem]:
    """The items of a fetched source, in a stable order; bad entries go to ``on_bad`` (logged by default).

    Raises:
        DatasetNotFetchedError: the source is not in the cache.
    """
    fetched_manifest(name, root)
    return get_source(name).read(source_folder(name, root), on_bad)
