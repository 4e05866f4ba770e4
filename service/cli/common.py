"""What every ``matconcept`` command shares: its options, opening the model, filters, the hit table,
the stage progress bar, and failing with a message.

Failing: a command raises :class:`CliError`; :func:`matconcept.service.cli.main` prints it and exits
with :data:`EXIT_USAGE` (2, as argparse does for bad usage). That is the only way a command fails on
purpose. Commands whose output is meant for programs (``evaluate``) set ``json_errors=True`` in their
parser defaults, and their errors are then one JSON line ``{"error": {"reason", "message"}}``.

Imports: ``matconcept --help`` builds every command's parser, so the command modules and this one
import only light modules at the top. Heavy libraries (torch through the encoders, ray, pymatgen,
grpc, the Qdrant engines) are imported inside the functions that use them, for start-up speed only.
The command modules import this module and nothing else of the CLI, so there is no cycle to dodge.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from matconcept.encoders.checkpoint import LoadedModel
    from matconcept.encoders.embedder import Embedder
    from matconcept.service.store import Hit, SearchFilters, StoreSettings

SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What each command module's ``add_parsers`` receives from :func:`matconcept.service.cli.build_parser`."""

EXIT_USAGE = 2
"""Exit status for a command that cannot do what was asked (bad input, busy store), as argparse uses."""
EXIT_INTERRUPTED = 130
"""Exit status after SIGINT (128 + 2, as shells report it)."""

FILTER_HELP = (
    "KEY=VALUE, repeatable: elements_all=Li,O  elements_none=Pb  elements_only=Li,Co,O  chemical_system=Co-Li-O  "
    "spacegroup_number=225  min_sites=1  max_sites=20  sources=cod,aflow"
)


# ------------------------------------------------------------------------------------------ failing


class CliError(Exception):
    """A command cannot do what was asked; ``main()`` prints ``message`` and exits with :data:`EXIT_USAGE`.

    ``reason`` is a short machine-readable code, shown only in the JSON error style.
    """

    def __init__(self, message: str, *, reason: str = "bad_argument") -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


def report_error(exc: CliError, *, as_json: bool = False) -> None:
    """Print a command's failure on standard error: ``matconcept: error: ...`` or one JSON line."""
    if as_json:
        print(json.dumps({"error": {"reason": exc.reason, "message": exc.message}}), file=sys.stderr)
    else:
        print(f"matconcept: error: {exc.message}", file=sys.stderr)


# ------------------------------------------------------------------------------------------ options


def add_model_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, help="checkpoint directory (default: the shipped model)")


def add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1... (default: cuda if available)")


def add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", type=Path, help="embedded store directory (default: $MATCONCEPT_HOME/qdrant)")


def add_filter_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE", help=FILTER_HELP)


def add_json_option(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--json", action="store_true", help=help)


def add_output_format_option(parser: argparse.ArgumentParser) -> None:
    """``--format table|json|csv`` for a command that prints hits; ``--json`` stays as its alias."""
    parser.add_argument(
        "--format",
        choices=OUTPUT_FORMATS,
        default=None,
        help="table (default, columns sized to their content), json (one object), or csv (one row per hit)",
    )
    add_json_option(parser, "same as --format json")


def output_format(args: argparse.Namespace) -> str:
    """The output format asked by ``--format`` and its alias ``--json`` (they must agree)."""
    if args.json and args.format not in (None, "json"):
        raise CliError(f"--json and --format {args.format} disagree; give one of them")
    return "json" if args.json else args.format or "table"


# ---------------------------------------------------------------------------------- model and store


def open_model(model: Path | None, device: object = "cpu") -> LoadedModel:
    """The checkpoint at ``model`` (default: the shipped one), or a :class:`CliError` naming it."""
    from matconcept.encoders.checkpoint import resolve_model

    try:
        return resolve_model(model, device)
    except (OSError, ValueError) as exc:
        raise CliError(f"{model or 'the shipped model'}: {exc}", reason="bad_model") from None


def open_embedder(model: Path | None, device: str | None) -> Embedder:
    """The embedder of ``--model`` on ``--device`` (default: cuda if available)."""
    from matconcept.encoders.embedder import Embedder, default_device

    chosen = device or default_device()
    loaded = open_model(model, chosen)
    try:
        return Embedder(loaded, device=chosen)
    except (OSError, ValueError) as exc:
        raise CliError(f"{model or 'the shipped model'}: {exc}", reason="bad_model") from None


def store_settings(db: Path | None) -> StoreSettings:
    """Store settings from the environment, with ``--db`` as the embedded directory when given."""
    from matconcept.service.store import StoreSettings

    return StoreSettings(db=db) if db is not None else StoreSettings()


def parse_filters(items: Sequence[str]) -> SearchFilters | None:
    """``--filter KEY=VALUE`` options as search filters (None when there are none)."""
    from pydantic import ValidationError

    from matconcept.service.store import SearchFilters

    values: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CliError(f"--filter {item!r} is not KEY=VALUE")
        values[key.strip()] = value.strip()
    if not values:
        return None
    try:
        return SearchFilters(**values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'filter'}: {e['msg']}" for e in exc.errors())
        raise CliError(f"bad --filter ({problems})") from None


# ------------------------------------------------------------------------------------------- output

OUTPUT_FORMATS: tuple[str, ...] = ("table", "json", "csv")
"""What commands that print hits can print."""
CSV_COLUMNS: tuple[str, ...] = (
    "rank",
    "material_id",
    "distance",
    "formula",
    "spacegroup_number",
    "spacegroup_symbol",
    "crystal_system",
    "source",
    "n_sites",
    "elements",
    "doi",
    "cod_id",
)
"""Columns of ``--format csv``: the hit and the payload fields people sort and filter by."""


def hit_table(hits: Sequence[Hit]) -> str:
    """Hits as a text table whose columns are as wide as their longest cell (long ids stay aligned)."""
    matched = any(hit.match is not None for hit in hits)  # a re-ranked pattern search: its fit too
    header = ("rank", "id", "formula", "space group", "distance") + (("match", "strain", "shift°") if matched else ())
    right = (True, False, False, False, True) + ((True, True, True) if matched else ())
    rows = [header]
    for rank, hit in enumerate(hits, 1):
        p = hit.payload
        group = f"{p.spacegroup_symbol} ({p.spacegroup_number})" if p.spacegroup_number else "-"
        row = (str(rank), hit.material_id, p.formula, group, f"{hit.distance:.4f}")
        if matched:
            m = hit.match
            row += (f"{m.score:.4f}", f"{m.strain:+.2%}", f"{m.shift:+.3f}") if m is not None else ("-", "-", "-")
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.rjust(w) if r else cell.ljust(w) for cell, w, r in zip(row, widths, right, strict=True)).rstrip()
        for row in rows
    )


def hit_csv(hits: Sequence[Hit]) -> str:
    """Hits as CSV with a header row (:data:`CSV_COLUMNS`; elements space-separated, absent values empty)."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for rank, hit in enumerate(hits, 1):
        p = hit.payload
        row = {"rank": rank, "material_id": hit.material_id, "distance": f"{hit.distance:.6g}"}
        row["elements"] = " ".join(p.elements)
        values = [row[c] if c in row else getattr(p, c, None) for c in CSV_COLUMNS]
        writer.writerow(["" if v is None else v for v in values])
    return out.getvalue()


def print_hits(
    query: str,
    hits: Sequence[Hit],
    *,
    using: str,
    model_id: str,
    as_json: bool = False,
    fmt: str = "table",
    phases: Sequence[Any] = (),
) -> None:
    """A search result on standard output: a titled table, one JSON object with ranked hits, or CSV
    (``as_json`` is ``fmt="json"``, for callers of the ``--json`` era). ``phases``: a pattern's."""
    fmt = "json" if as_json else fmt
    if fmt == "json":
        ranked = [{"rank": i, **h.model_dump()} for i, h in enumerate(hits, 1)]
        out = {"query": query, "model": model_id, "using": using, "hits": ranked}
        if phases:
            out["phases"] = [p.model_dump() for p in phases]
        print(json.dumps(out))
    elif fmt == "csv":
        sys.stdout.write(hit_csv(hits))
    else:
        if any(h.match is not None for h in hits):
            print(f"# {query}: {len(hits)} best matches (search-match of vector candidates, model {model_id})")
        else:
            print(f"# {query}: {len(hits)} nearest by {using} vectors (model {model_id})")
        print(hit_table(hits))
        if len(phases) > 1:
            found = ", ".join(f"{p.material_id} ({p.weight:.0%}, match {p.score:.3f})" for p in phases)
            print(f"# phases: {found}")


def note(message: str) -> None:
    """A progress note for the person at the terminal (standard error; standard output stays data)."""
    print(message, file=sys.stderr)


@contextmanager
def stage_bar(name: str = "map") -> Iterator[Callable[[str, float], None]]:
    """A tqdm bar on standard error for work reported as ``(stage, fraction done)``, e.g. a map layout.

    Yields the ``progress(stage, fraction)`` callback; the stage is shown as the bar's description.
    """
    from tqdm import tqdm

    bar = tqdm(total=100, unit="%", desc=name, file=sys.stderr, leave=True)

    def progress(stage: str, fraction: float) -> None:
        bar.set_description(f"{name}: {stage}", refresh=False)
        bar.update(max(0, int(fraction * 100) - bar.n))

    try:
        yield progress
    finally:
        bar.close()
