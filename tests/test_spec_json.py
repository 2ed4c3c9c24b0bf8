"""Strict JSON task files: same bounds and line marks as YAML."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_spec_support import load, task_dict, write

from reconciler.spec.jsonload import parse_json


def test_valid_json_task_loads_with_lines(tmp_path: Path) -> None:
    doc = task_dict("j1", maxConcurrency=2)
    result = load(write(tmp_path / "a.json", json.dumps(doc, indent=2)))
    assert result.errors == []
    task = result.tasks["j1"]
    assert task.line == 1
    assert task.max_concurrency == 2


def test_lines_per_key_and_item() -> None:
    text = '{\n  "a": 1,\n  "b": [\n    "x",\n    {"c": "q\\"uote"}\n  ],\n  "d\\u0041": {}\n}\n'
    doc = parse_json(text).documents[0]
    assert doc.data == {"a": 1, "b": ["x", {"c": 'q"uote'}], "dA": {}}
    assert doc.lines[("a",)] == 2
    assert doc.lines[("b",)] == 3
    assert doc.lines[("b", 0)] == 4
    assert doc.lines[("b", 1)] == 5
    assert doc.lines[("b", 1, "c")] == 5
    assert doc.lines[("dA",)] == 7


def test_error_line_points_at_the_field(tmp_path: Path) -> None:
    doc = task_dict("j1", maxConcurrency=-1)
    path = write(tmp_path / "a.json", json.dumps(doc, indent=2))
    result = load(path)
    line = json.dumps(doc, indent=2).splitlines().index('    "maxConcurrency": -1,') + 1
    assert [str(e) for e in result.errors] == [
        f"{path}:{line}: j1: spec.maxConcurrency: -1 is less than the minimum of 1"
    ]


def test_duplicate_keys_are_errors_with_both_lines(tmp_path: Path) -> None:
    text = '{\n "apiVersion": "reconciler/v1",\n "kind": "Task",\n "kind": "Task"\n}'
    path = write(tmp_path / "a.json", text)
    assert [str(e) for e in load(path).errors] == [
        f'{path}:4: <document 1>: kind: duplicate key "kind" (first on line 3)'
    ]


@pytest.mark.parametrize(
    "value, message",
    [
        ("NaN", "invalid JSON: NaN is not allowed in JSON task files"),
        ("Infinity", "invalid JSON: Infinity is not allowed in JSON task files"),
        ("-Infinity", "invalid JSON: -Infinity is not allowed in JSON task files"),
        ("1e400", "invalid JSON: number 1e400 is out of range"),
    ],
)
def test_non_finite_numbers_are_refused(tmp_path: Path, value: str, message: str) -> None:
    path = write(tmp_path / "a.json", '{\n "x": ' + value + "\n}")
    errors = load(path).errors
    assert len(errors) == 1
    assert errors[0].message == message


def test_syntax_error_has_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "a.json", '{\n "a": 1,\n "b": ,\n}')
    assert [str(e) for e in load(path).errors] == [f"{path}:3: invalid JSON: Expecting value"]


def test_trailing_comma_and_comments_are_not_json(tmp_path: Path) -> None:
    assert load(write(tmp_path / "a.json", '{"a": 1,}')).errors
    assert load(write(tmp_path / "b.json", '// c\n{"a": 1}')).errors


def test_lone_surrogate_escape_is_refused(tmp_path: Path) -> None:
    errors = load(write(tmp_path / "a.json", '{"a": "\\ud800"}')).errors
    assert [e.message for e in errors] == ["invalid JSON: \\u escape of a lone surrogate"]


def test_surrogate_pairs_are_fine() -> None:
    assert parse_json('{"a": "\\ud83d\\ude00"}').documents[0].data == {"a": "\U0001f600"}


def test_deep_nesting(tmp_path: Path) -> None:
    assert parse_json("[" * 64 + "]" * 64).documents[0].problems == []
    doc = parse_json("[" * 65 + "]" * 65).documents[0]
    assert [p.message for p in doc.problems] == [
        "nesting deeper than 64 levels of mappings and lists"
    ]
    errors = load(write(tmp_path / "a.json", "[" * 100_000)).errors
    assert [e.message for e in errors] == ["nesting deeper than 64 levels of mappings and lists"]


def test_node_bound() -> None:
    doc = parse_json("[" + ",".join(["1"] * 10_001) + "]").documents[0]
    assert [p.message for p in doc.problems] == ["document has more than 10000 nodes"]


def test_top_level_must_be_an_object(tmp_path: Path) -> None:
    path = write(tmp_path / "a.json", '[{"a": 1}]')
    assert [str(e) for e in load(path).errors] == [
        f"{path}:1: <document 1>: a task document must be a mapping, not a list"
    ]


def test_empty_json_file_is_an_error(tmp_path: Path) -> None:
    errors = load(write(tmp_path / "a.json", "")).errors
    assert [e.message for e in errors] == ["invalid JSON: Expecting value"]


def test_integral_floats_count_as_integers_as_in_json_schema(tmp_path: Path) -> None:
    doc = task_dict("j1", maxConcurrency=3.0, terminationGracePeriodSeconds=1e1)
    result = load(write(tmp_path / "a.json", json.dumps(doc)))
    assert result.errors == []
    task = result.tasks["j1"]
    assert (task.max_concurrency, task.termination_grace_period_seconds) == (3, 10)
    assert type(task.document["spec"]["maxConcurrency"]) is int
