"""``matconcept embed``: files → one JSON line of embedding (or error) per input.

A structure's line carries every vector of the model under ``vectors`` (``crystal``: the concept,
``structure``: the structure type, where the model has that encoder, ``xrd``: of its simulated
pattern); ``vector`` stays the crystal vector, as before.

A file that cannot be read or parsed is a line with ``error`` (the run goes on); only a bad
``--model`` stops it. The featurizer and the XRD reader are imported when used (start-up speed).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from matconcept.encoders.errors import InputErrorReason, StructureInputError
from matconcept.encoders.sources import iter_entries
from matconcept.service.cli.common import SubParsers, add_device_option, add_model_option, open_embedder

if TYPE_CHECKING:
    from matconcept.encoders.embedder import Embedder

EMBED_CHUNK = 256
"""Inputs embedded per model call; also how often output is flushed."""


def add_parsers(subparsers: SubParsers) -> None:
    p = subparsers.add_parser("embed", help="embed CIF files (or XRD patterns) with the dual encoder")
    p.add_argument("paths", nargs="+", type=Path, help="files or directories (walked for *.cif)")
    p.add_argument("--modality", choices=["structure", "xrd"], default="structure")
    p.add_argument("--output", "-o", type=Path, help="JSONL file to write (default: standard output)")
    add_model_option(p)
    p.add_argument("--workers", type=int, default=None, help="featurization processes (default: all cores)")
    add_device_option(p)
    p.set_defaults(func=run_embed)


def _error_line(source: str, exc: StructureInputError) -> dict:
    return {"source": source, "error": exc.to_dict()}


def _structure_lines(args: argparse.Namespace, embedder: Embedder) -> Iterator[dict]:
    from matconcept.encoders.pipeline import featurize_entries

    settings = embedder.loaded.info.model
    entries = iter_entries(args.paths, suffixes=(".cif", ".mcif"))
    results = featurize_entries(entries, settings.graph, settings.xrd, workers=args.workers)
    pending = []

    def flush() -> Iterator[dict]:
        from matconcept.service.ingest.local import embed_all

        crystal, xrd, types = embed_all(embedder, [r.graph for r in pending])
        for r, vec, x, t in zip(pending, crystal, xrd, types, strict=True):
            meta = r.parsed.metadata
            vectors = {
                "crystal": vec.tolist(),
                **({"structure": t.tolist()} if t is not None else {}),
                "xrd": x.tolist(),
            }
            yield {
                "source": r.entry_name,
                "id": meta.cod_id or r.entry_stem,
                "formula": r.parsed.formula,
                "model": embedder.model_id,
                "vector": vec.tolist(),
                "vectors": vectors,
            }
        pending.clear()

    for r in results:
        if r.error is not None:
            yield _error_line(r.entry_name, r.error)
            continue
        pending.append(r)
        if len(pending) >= EMBED_CHUNK:
            yield from flush()
    if pending:
        yield from flush()


def _xrd_lines(args: argparse.Namespace, embedder: Embedder) -> Iterator[dict]:
    from matconcept.encoders.xrd import read_xy, resample_pattern

    settings = embedder.loaded.info.model.xrd
    for entry in iter_entries(args.paths, suffixes=(".xy", ".xye", ".dat", ".txt", ".csv")):
        try:
            if entry.data is None:
                raise StructureInputError(InputErrorReason.UNREADABLE, entry.name, "cannot read file")
            two_theta, intensity = read_xy(entry.data, name=entry.name)
            pattern = resample_pattern(two_theta, intensity, settings)
        except StructureInputError as exc:
            yield _error_line(entry.name, exc)
            continue
        except ValueError as exc:
            yield _error_line(entry.name, StructureInputError(InputErrorReason.BAD_PATTERN, entry.name, str(exc)))
            continue
        vec = embedder.embed_patterns(np.asarray(pattern)[None, :])[0]
        yield {
            "source": entry.name,
            "id": entry.stem,
            "formula": None,
            "model": embedder.model_id,
            "vector": vec.tolist(),
            "vectors": {"xrd": vec.tolist()},
        }


def run_embed(args: argparse.Namespace) -> int:
    embedder = open_embedder(args.model, args.device)
    lines = _structure_lines(args, embedder) if args.modality == "structure" else _xrd_lines(args, embedder)
    out: IO[str] = args.output.open("w") if args.output else sys.stdout
    failed = done = 0
    try:
        for line in tqdm(lines, desc="embed", unit="file", disable=None, file=sys.stderr):
            out.write(json.dumps(line) + "\n")
            failed += "error" in line
            done += 1
    finally:
        if args.output:
            out.close()
    print(json.dumps({"embedded": done - failed, "failed": failed, "model": embedder.model_id}), file=sys.stderr)
    return 0
