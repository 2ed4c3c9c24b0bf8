"""YAML output: values survive PyYAML's 1.1 reading, comments cannot break a document."""

from __future__ import annotations

import yaml
from hypothesis import given
from hypothesis import strategies as st

from reconciler.importer import ImportedTask, render_document, render_stream
from reconciler.importer.emit import comment_text


def _task(spec: dict, comments: list[str] | None = None, name: str = "t") -> ImportedTask:
    return ImportedTask(name=name, line=1, spec=spec, comments=comments or [])


def test_yaml_11_words_and_cron_text_are_quoted() -> None:
    words = ["on", "yes", "No", "off", "y", "~", "null", "*", "0 */5 * * *", "@daily",
             "0755", "1e3", "2026-03-29", "12:30", "- x", "# x", "a: b", "'", '"', "!x", ""]
    task = _task({"type": "cron", "schedule": "*", "command": words,
                  "env": {w or "E": w for w in words}})
    assert yaml.safe_load(render_document(task))["spec"] == task.spec


def test_document_layout() -> None:
    task = _task({"type": "cron", "schedule": "0 */5 * * *", "command": "run"},
                 ["# kept", "note without hash"], name="job")
    assert render_document(task) == (
        "# kept\n"
        "# note without hash\n"
        "apiVersion: reconciler/v1\n"
        "kind: Task\n"
        "metadata:\n"
        "  name: job\n"
        "spec:\n"
        "  type: cron\n"
        "  schedule: 0 */5 * * *\n"
        "  command: run\n"
    )


def test_spec_fields_in_a_fixed_order() -> None:
    spec = {"maxConcurrency": 2, "env": {"A": "1"}, "command": "x", "user": "u",
            "hosts": ["h"], "timezone": "UTC", "schedule": "@daily", "type": "cron"}
    assert list(_task(spec).document()["spec"]) == [
        "type", "schedule", "timezone", "command", "hosts", "user", "env", "maxConcurrency"
    ]


def test_comments_cannot_end_early() -> None:
    nasty = "# a\rkind: Evil\x85b\u2028c\u2029d\x00e\udcff"
    line = comment_text(nasty)
    assert "\n" not in line and "\r" not in line
    assert line == "# a\\rkind: Evil\\x85b\\u2028c\\u2029d\\x00e\\udcff"
    doc = render_document(_task({"command": "x"}, [nasty]))
    assert yaml.safe_load(doc)["kind"] == "Task"


def test_stream_of_documents() -> None:
    tasks = [_task({"command": "a"}, ["# one"], "a"), _task({"command": "b"}, [], "b")]
    docs = list(yaml.safe_load_all(render_stream(tasks)))
    assert [d["metadata"]["name"] for d in docs] == ["a", "b"]
    assert render_stream([]) == ""


@given(st.text(st.characters(codec="utf-8", exclude_categories=("Cs",))))
def test_any_string_round_trips(text: str) -> None:
    task = _task({"command": text, "env": {"X": text}}, [text])
    loaded = yaml.safe_load(render_document(task))
    assert loaded["spec"] == {"command": text, "env": {"X": text}}
