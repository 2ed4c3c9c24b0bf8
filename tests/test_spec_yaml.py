"""The bounded safe YAML reader: documents, lines, duplicate keys, tags, aliases, bounds."""

from __future__ import annotations

import datetime
import time
from pathlib import Path

import pytest
from test_spec_support import HEADER, load, task_yaml, write

from reconciler.spec.safeyaml import MAX_DOCUMENTS, parse_yaml


def only_doc(text: str):  # type: ignore[no-untyped-def]
    parsed = parse_yaml(text)
    assert parsed.problem is None
    assert len(parsed.documents) == 1
    return parsed.documents[0]


def test_lines_of_keys_and_items() -> None:
    doc = only_doc("a: 1\nb:\n  - x\n  - {c: 2}\nd: [y,\n  z]\n")
    assert doc.data == {"a": 1, "b": ["x", {"c": 2}], "d": ["y", "z"]}
    assert doc.lines[("a",)] == 1
    assert doc.lines[("b",)] == 2
    assert doc.lines[("b", 0)] == 3
    assert doc.lines[("b", 1)] == 4
    assert doc.lines[("b", 1, "c")] == 4
    assert doc.lines[("d", 1)] == 6
    assert doc.line_of(("b", 1, "c", "deeper")) == 4  # nearest ancestor


def test_multi_document_stream_skips_empty_and_comment_only_documents() -> None:
    text = "# header comment\n---\na: 1\n---\n# only a comment\n---\n---\nb: 2\n...\n"
    parsed = parse_yaml(text)
    assert parsed.problem is None
    assert [(d.index, d.line, d.data) for d in parsed.documents] == [
        (1, 3, {"a": 1}),
        (4, 8, {"b": 2}),
    ]


def test_document_source_is_its_own_text() -> None:
    parsed = parse_yaml("a: 1\nb: 2\n---\nc: 3\n")
    assert [d.source for d in parsed.documents] == ["a: 1\nb: 2", "c: 3"]


def test_yaml_11_scalars_as_pyyaml_safe_loader_reads_them() -> None:
    doc = only_doc("a: yes\nb: 0x1F\nc: 1_000\nd: ~\ne: 1.5\nf: '1'\ng: 2001-12-14\nh: !!str 12\n")
    assert doc.data == {
        "a": True,
        "b": 31,
        "c": 1000,
        "d": None,
        "e": 1.5,
        "f": "1",
        "g": datetime.date(2001, 12, 14),
        "h": "12",
    }


@pytest.mark.parametrize(
    "text, message",
    [
        ("a: 1\nb: 2\na: 3\n", 'duplicate key "a" (first on line 1)'),
        ("m:\n  k: 1\n  k: 1\n", 'duplicate key "k" (first on line 2)'),
        ("{a: 1, a: 2}\n", 'duplicate key "a" (first on line 1)'),
    ],
)
def test_duplicate_keys_are_errors(text: str, message: str) -> None:
    parsed = parse_yaml(text)
    assert [p.message for p in parsed.documents[0].problems] == [message]


def test_duplicate_key_line_is_the_second_occurrence() -> None:
    problem = parse_yaml("a: 1\nb: 2\na: 3\n").documents[0].problems[0]
    assert problem.line == 3
    assert problem.path == ("a",)


def test_merge_keys_explicit_keys_win_and_earlier_merges_win() -> None:
    text = (
        "base: &base {x: 1, y: 1}\nother: &other {y: 2, z: 2}\nm:\n  <<: [*base, *other]\n  x: 9\n"
    )
    doc = only_doc(text)
    assert doc.data["m"] == {"x": 9, "y": 1, "z": 2}
    assert doc.lines[("m", "y")] == 4  # merged keys point at the << line


def test_merge_of_a_scalar_is_an_error() -> None:
    problems = parse_yaml("a: &a 1\nm:\n  <<: *a\n").documents[0].problems
    assert [p.message for p in problems] == [
        "the value of << must be a mapping or a list of mappings"
    ]


def test_a_duplicate_merge_key_is_an_error() -> None:
    problems = parse_yaml("a: &a {x: 1}\nm:\n  <<: *a\n  <<: *a\n").documents[0].problems
    assert [p.message for p in problems] == ["duplicate merge key <<"]


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "x: !!python/object/apply:os.system ['true']\n",
            "tag !!python/object/apply:os.system is not allowed",
        ),
        ("x: !!python/name:os.system\n", "tag !!python/name:os.system is not allowed"),
        ("x: !custom 1\n", "tag !custom is not allowed"),
        ("x: !!set {a, b}\n", "tag !!set is not allowed"),
        ("x: !!int abc\n", "value is not a valid !!int"),
    ],
)
def test_only_standard_safe_tags(text: str, message: str) -> None:
    problems = parse_yaml(text).documents[0].problems
    assert message in [p.message for p in problems]


def test_object_building_tag_does_not_run_anything(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = HEADER + f"metadata: !!python/object/apply:os.system ['touch {marker}']\n"
    result = load(write(tmp_path / "a.yaml", text))
    assert not marker.exists()
    assert "tag !!python/object/apply:os.system is not allowed" in str(result.errors[0])


@pytest.mark.parametrize(
    "text, message",
    [
        ("1: a\n", "mapping key 1 must be a string (quote it)"),
        ("on: a\n", "mapping key true must be a string (quote it)"),
        ("? [a]\n: 1\nb: 2\n", "a mapping key must be a string"),
    ],
)
def test_keys_must_be_strings(text: str, message: str) -> None:
    doc = parse_yaml(text).documents[0]
    assert [p.message for p in doc.problems] == [message]


def test_billion_laughs_is_rejected_fast() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    text = "\n".join(lines) + "\n"
    start = time.monotonic()
    doc = parse_yaml(text).documents[0]
    assert time.monotonic() - start < 2.0
    assert [p.message for p in doc.problems] == [
        "document expands to more than 10000 nodes (aliases included)"
    ]
    assert doc.data is None


def test_aliases_within_bounds_are_fine() -> None:
    doc = only_doc("a: &x [1, 2]\nb: *x\n")
    assert doc.data == {"a": [1, 2], "b": [1, 2]}


def test_recursive_and_unknown_aliases_are_errors() -> None:
    assert [p.message for p in parse_yaml("a: &r [*r]\n").documents[0].problems] == [
        "unknown alias *r"
    ]
    assert [p.message for p in parse_yaml("a: *nope\n").documents[0].problems] == [
        "unknown alias *nope (YAML reads a value that starts with * as an alias: quote it)"
    ]


def test_nesting_of_64_is_fine_65_is_not() -> None:
    assert only_doc("[" * 64 + "]" * 64).problems == []
    doc = parse_yaml("[" * 65 + "]" * 65).documents[0]
    assert [p.message for p in doc.problems] == [
        "nesting deeper than 64 levels of mappings and lists"
    ]


def test_block_nesting_counts_too() -> None:
    text = "".join("  " * i + f"k{i}:\n" for i in range(70)) + "  " * 70 + "x\n"
    doc = parse_yaml(text).documents[0]
    assert [p.message for p in doc.problems] == [
        "nesting deeper than 64 levels of mappings and lists"
    ]


def test_100000_brackets_give_a_clean_error(tmp_path: Path) -> None:
    path = write(tmp_path / "deep.yaml", "[" * 100_000)
    start = time.monotonic()
    result = load(path)
    assert time.monotonic() - start < 5
    assert [str(e) for e in result.errors] == [
        f"{path}:1: nesting deeper than 64 levels of mappings and lists"
    ]


def test_100000_braces_in_a_value_give_a_clean_error(tmp_path: Path) -> None:
    path = write(tmp_path / "deep.yaml", HEADER + "metadata: " + "{a: " * 50_000)
    result = load(path)
    assert len(result.errors) == 1
    assert "nesting deeper than 64 levels" in str(result.errors[0])


def test_more_than_1000_documents_are_refused(tmp_path: Path) -> None:
    doc = task_yaml("t")
    path = write(tmp_path / "many.yaml", "---\n".join([doc] * (MAX_DOCUMENTS + 1)))
    result = load(path)
    assert [str(e) for e in result.errors] == [f"{path}: more than 1000 documents in one file"]


def test_1000_documents_are_read(tmp_path: Path) -> None:
    docs = [task_yaml(f"t{i}") for i in range(MAX_DOCUMENTS)]
    result = load(write(tmp_path / "many.yaml", "---\n".join(docs)))
    assert result.errors == []
    assert len(result.tasks) == MAX_DOCUMENTS


def test_syntax_error_has_a_line_and_earlier_documents_are_still_checked(tmp_path: Path) -> None:
    path = write(tmp_path / "a.yaml", task_yaml("ok", maxConcurrency=0) + "---\na: 'unterminated\n")
    result = load(path)
    texts = [str(e) for e in result.errors]
    assert texts[0] == f"{path}:6: ok: spec.maxConcurrency: 0 is less than the minimum of 1"
    assert texts[1].startswith(f"{path}:11: invalid YAML: ")


def test_control_characters_are_a_clean_error(tmp_path: Path) -> None:
    result = load(write(tmp_path / "a.yaml", "a: 1\nb: \x00\n"))
    assert [str(e) for e in result.errors] == [
        f"{tmp_path}/a.yaml:2: invalid YAML: character #x0000: control characters are not allowed"
    ]


def test_pure_python_parser_gives_the_same_data(monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    from reconciler.spec import safeyaml

    text = "a: &x {b: [1, 'two', 3.0]}\nc: *x\nd:\n  <<: *x\n  e: yes\n"
    fast = parse_yaml(text).documents[0]
    monkeypatch.setattr(safeyaml, "_Loader", yaml.SafeLoader)
    slow = parse_yaml(text).documents[0]
    assert fast.data == slow.data
    assert fast.lines == slow.lines
