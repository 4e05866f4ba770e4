"""The CLI's shared pieces without a store or a model: the hit table, filters, failing with a message."""

from __future__ import annotations

import json

import pytest

from matconcept.service.cli import main
from matconcept.service.cli.common import CliError, hit_table, parse_filters, print_hits
from matconcept.service.store import Hit, MaterialPayload

LONG_ID = "aflow:A2B3C7D_oP13_47_t_aq_eqrs_h"


def _hit(material_id: str, distance: float, formula: str, spacegroup: int | None) -> Hit:
    payload = MaterialPayload.model_construct(
        material_id=material_id,
        formula=formula,
        spacegroup_number=spacegroup,
        spacegroup_symbol="Pmmm" if spacegroup else None,
    )
    return Hit.model_construct(material_id=material_id, distance=distance, payload=payload)


def test_hit_table_columns_fit_the_longest_cell():
    hits = [_hit(LONG_ID, 0.12345, "Ba2Cu3O7Y", 47), _hit("cod:1", 10.5, "NaCl", None)]
    lines = hit_table(hits).splitlines()
    assert [line.split()[:3] for line in lines[1:]] == [["1", LONG_ID, "Ba2Cu3O7Y"], ["2", "cod:1", "NaCl"]]
    column = lines[0].index("formula")  # after the long id, the next column still lines up
    assert lines[1][column:].startswith("Ba2Cu3O7Y ") and lines[2][column:].startswith("NaCl ")
    assert lines[1].endswith("0.1235") and lines[2].endswith("10.5000") and len(lines[1]) == len(lines[2])
    assert hit_table([]).split() == ["rank", "id", "formula", "space", "group", "distance"]


def test_print_hits_json(capsys):
    print_hits("q", [_hit("cod:1", 0.5, "NaCl", 225)], using="crystal", model_id="m", as_json=True)
    out = json.loads(capsys.readouterr().out)
    assert (out["query"], out["model"], out["using"]) == ("q", "m", "crystal")
    assert out["hits"][0]["rank"] == 1 and out["hits"][0]["material_id"] == "cod:1"


def test_parse_filters_errors_are_cli_errors():
    assert parse_filters([]) is None
    assert parse_filters(["max_sites=10"]).max_sites == 10
    with pytest.raises(CliError, match="is not KEY=VALUE"):
        parse_filters(["max_sites"])
    with pytest.raises(CliError, match=r"bad --filter \(spacegroup: Extra inputs are not permitted\)"):
        parse_filters(["spacegroup=225"])


def test_main_prints_a_cli_error_and_exits_2(capsys):
    assert main(["ingest"]) == 2
    assert capsys.readouterr().err.strip() == "matconcept: error: ingest needs PATH... or --builtin"
    assert main(["evaluate", "--limit", "1"]) == 2  # evaluate's errors are JSON lines
    assert json.loads(capsys.readouterr().err)["error"]["reason"] == "bad_argument"
