"""app.gotemplate against Go's own text/template: every case in gotemplate_cases.json was rendered by
Go (scripts/dev/gotemplate-reference) with missingkey=error and encoding/json data, as Matchbox does."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from app.gotemplate import Limits, StringMap, TemplateError, go_value, render

CASES = json.loads((Path(__file__).parent / "gotemplate_cases.json").read_text())
# Go's own limit is 100000 nested template calls; ours is far lower (Python's stack), same error otherwise.
DIFFERENT_MESSAGE = {"recursive template depth"}


def template_data(case: dict):
    data = case["data"]
    if case.get("query_strings"):  # Matchbox hands request.query over as a map[string]string
        data = {**data, "request": {**data["request"], "query": StringMap(data["request"]["query"])}}
    return data


def test_the_fixture_covers_enough():
    assert len(CASES) >= 150
    assert sum("error" in c for c in CASES) >= 40
    assert sum(c["name"].startswith("matchbox ") for c in CASES) >= 6


@pytest.mark.parametrize("case", [c for c in CASES if "output" in c], ids=lambda c: c["name"])
def test_output_is_gos_byte_for_byte(case):
    assert render(case["template"], template_data(case), name=case["template_name"]) == case["output"]


@pytest.mark.parametrize("case", [c for c in CASES if "error" in c], ids=lambda c: c["name"])
def test_fails_where_go_fails_with_its_message(case):
    with pytest.raises(TemplateError) as caught:
        render(case["template"], template_data(case), name=case["template_name"])
    go_line = int(re.match(r"template: [^:]*:(\d+)", case["error"])[1])
    assert caught.value.line == go_line
    if case["name"] not in DIFFERENT_MESSAGE:
        assert str(caught.value) == case["error"]
    else:
        assert str(caught.value).split("exceeded")[0] == case["error"].split("exceeded")[0]


def test_go_value_prints_json_numbers_as_float64():
    assert [go_value(v) for v in (1234567, 3, 0.5, 1e21, True, "x")] == [
        "1.234567e+06", "3", "0.5", "1e+21", "true", "x"]


def test_string_map_index_of_missing_key_is_empty_string():
    data = {"request": {"query": StringMap({"mac": "52:54:00:a1:9c:ae"})}}
    assert render('[{{index .request.query "uuid"}}]', data) == "[]"
    assert render('[{{index .request "uuid"}}]', data) == "[<no value>]"


@pytest.mark.parametrize(("template", "message"), [
    ("{{range 100000000}}x{{end}}", "steps"),
    ('{{define "a"}}{{template "a" .}}{{template "a" .}}{{end}}{{template "a" .}}', "template depth"),
    ('{{define "a"}}{{.}}{{.}}{{.}}{{.}}{{end}}{{range 1000}}{{template "a" $.s}}{{end}}', "output exceeds"),
    ('{{$x := "xx"}}{{range 64}}{{$x = printf "%s%s" $x $x}}{{end}}', "exceeds"),
    ('{{printf "%*d" 1000000000 1}}', "width"),
    ("{{if 1}}" * 3000 + "{{end}}" * 3000, "nested too deeply"),
    ("{{" + "(" * 200 + "1" + ")" * 200 + "}}", "depth exceeded"),
])
def test_hostile_templates_end_with_a_clear_error(template, message):
    with pytest.raises(TemplateError, match=message):
        render(template, {"s": "y" * 1000}, limits=Limits(steps=100_000, depth=50, output_bytes=1 << 20))


def test_data_json_cannot_hold_is_refused():
    with pytest.raises(TemplateError, match="cannot hold a object"):
        render("{{.}}", {"x": object()})
