"""The two YAML mistakes a newcomer makes first, each answered with what to do: an
unquoted schedule (`*` starts an alias) and a tab in the indentation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAD = "apiVersion: reconciler/v1\nkind: Task\nmetadata:\n  name: backup\nspec:\n"
STAR = "; YAML reads a value that starts with * as an alias: quote it, as in "
TAB = "; a tab in the indentation: YAML indents with spaces only"


def validate(tmp_path: Path, text: str) -> str:
    spec = tmp_path / "specs"
    spec.mkdir()
    path = spec / "backup.yaml"
    path.write_text(text)
    os.chmod(path, 0o644)
    run = subprocess.run([sys.executable, "-m", "reconciler", "validate", "specs"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1, run.stdout + run.stderr
    return run.stdout.splitlines()[0]


@pytest.mark.parametrize(
    "spec, line, example",
    [
        ("  schedule: */5 * * * *\n  command: /bin/true\n", 6, "schedule: '*/5 * * * *'"),
        ("  command: /bin/true\n  schedule: * 3 * * *\n", 7, "schedule: '* 3 * * *'"),
        ("  command: /bin/true\n  schedule: *\n", 7, "schedule: '*'"),
        ("  command:\n    - *\n  schedule: '@daily'\n", 7, "- '*'"),
        ("  command: /bin/true\n  schedule: */5 * * * * # it's every 5 minutes\n", 7,
         "schedule: '*/5 * * * * # it''s every 5 minutes'"),
    ],
)
def test_an_unquoted_schedule_gets_the_quoted_form(
    tmp_path: Path, spec: str, line: int, example: str
) -> None:
    assert validate(tmp_path, HEAD + spec) == (
        f"specs/backup.yaml:{line}: invalid YAML: while scanning an alias: did not find "
        f"expected alphabetic or numeric character{STAR}{example}"
    )


def test_a_long_value_is_not_quoted_back(tmp_path: Path) -> None:
    out = validate(tmp_path, HEAD + "  schedule: */5 * * * * " + "x" * 300 + "\n")
    assert out.endswith(STAR + "schedule: '*/5 * * * *'") and "xxx" not in out


def test_an_alias_name_that_is_not_defined_gets_the_hint(tmp_path: Path) -> None:
    out = validate(tmp_path, HEAD + "  schedule: *5\n  command: /bin/true\n")
    # The document is dropped at the alias: it has no name yet, so it is counted.
    assert out == ("specs/backup.yaml:6: <document 1>: spec.schedule: unknown alias *5 (YAML reads "
                   "a value that starts with * as an alias: quote it)")


@pytest.mark.parametrize(
    "spec, line, problem",
    [
        ("\tschedule: '@daily'\n\tcommand: /bin/true\n", 6,
         "while scanning for the next token: found character that cannot start any token"),
        ("  command: /bin/true\n\tschedule: '@daily'\n", 7,
         "while scanning a plain scalar: found a tab character that violates indentation"),
        ("  schedule: '@daily'\n  command: /bin/true\n  env:\n  \tA: b\n", 9,
         "while scanning for the next token: found character that cannot start any token"),
    ],
)
def test_a_tab_in_the_indentation_is_named(
    tmp_path: Path, spec: str, line: int, problem: str
) -> None:
    expected = f"specs/backup.yaml:{line}: invalid YAML: {problem}{TAB}"
    assert validate(tmp_path, HEAD + spec) == expected


def test_a_tab_inside_a_value_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(HEAD + "  schedule: '@daily'\n  command: echo\ta\t# tab, then a comment\n")
    os.chmod(path, 0o644)
    run = subprocess.run([sys.executable, "-m", "reconciler", "validate", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout
