"""Errors never quote secrets (issue 10, item 8): nothing of a file reached through a
symlink that leaves the spec directory, and never more than 200 characters of anything."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from controller_harness import ControllerProc, write_task
from test_spec_support import HEADER, load, task_yaml, write

SECRET = "ghp_S3cr3tT0k3nS3cr3tT0k3n"
GIT_CREDENTIALS = f"https://deploy:{SECRET}@github.com\n"
DOTENV = f"GITHUB_TOKEN={SECRET}\nDB_PASSWORD=hunter2-{SECRET}\n"
YAML_SECRETS = f"token: {SECRET}\npassword: [{SECRET}]\n"


def validate(path: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir(mode=0o755)
    write(folder / ".git-credentials", GIT_CREDENTIALS, mode=0o600)
    write(folder / ".env", DOTENV, mode=0o600)
    write(folder / "vars.yaml", YAML_SECRETS, mode=0o600)
    return folder


@pytest.mark.parametrize(
    "target, problems",
    [(".git-credentials", "1 problem"), (".env", "1 problem"), ("vars.yaml", "3 problems")],
)
def test_validate_quotes_nothing_of_a_file_outside_the_spec_dir(
    tmp_path: Path, outside: Path, target: str, problems: str
) -> None:
    spec = tmp_path / "spec"
    spec.mkdir(mode=0o755)
    os.symlink(outside / target, spec / "x.yaml")
    out = validate(spec)
    assert SECRET not in out
    assert out.splitlines()[0] == (
        f"{spec}/x.yaml:1: invalid ({problems}); not quoted, as the file is reached through "
        f"a symlink that leaves the spec directory (to {outside / target}): run "
        f"`reconciler validate {outside / target}` to see them"
    )


def test_validate_quotes_nothing_of_etc_shadow(tmp_path: Path) -> None:
    shadow = Path("/etc/shadow")
    if not os.access(shadow, os.R_OK):
        pytest.skip("needs a readable /etc/shadow")
    spec = tmp_path / "spec"
    spec.mkdir(mode=0o755)
    os.symlink(shadow, spec / "x.yaml")
    os.symlink(shadow, spec / "y.json")
    out = validate(spec)
    for line in shadow.read_text().splitlines():
        user = line.split(":", 1)[0]
        assert line[:12] not in out, "a line of /etc/shadow is quoted"
        assert f'"{user}' not in out
    assert "invalid (" in out and "not quoted" in out


def test_a_link_inside_the_spec_dir_keeps_its_details(tmp_path: Path) -> None:
    spec = tmp_path / "spec"
    write(spec / "real" / "a.yaml", task_yaml("a", timezone="Bogus/Zone"))
    os.symlink("real/a.yaml", spec / "b.yaml")
    errors = [str(e) for e in load(spec).errors]
    assert len(errors) == 1
    assert errors[0].startswith(f'{spec}/b.yaml:6: a: spec.timezone: "Bogus/Zone" ')


def test_spec_invalid_in_the_log_quotes_nothing(
    dirs: tuple[Path, Path], controllers: list[ControllerProc], outside: Path
) -> None:
    spec, state = dirs
    write_task(spec, "fine", {"schedule": "@daily", "command": ["true"]})
    c = ControllerProc(spec, state, ["--watch", "poll"])
    controllers.append(c)
    c.wait_for("spec.applied")
    os.symlink(outside / ".git-credentials", spec / "creds.yaml")
    c.signal(signal.SIGHUP)
    c.wait_for("spec.invalid", file=str(spec / "creds.yaml"))
    assert c.stop() == 0
    assert not any(SECRET in line for line in c.raw)
    status = json.loads((state / "status.json").read_text())
    assert SECRET not in json.dumps(status)


# --- at most 200 characters of any value, on every error path ------------------------

LONG = "Q" * 5000
RUN = "Q" * 201


def _doc(**spec: str) -> str:
    lines = [HEADER.rstrip("\n"), "metadata:", "  name: t", "spec:"]
    lines += [f"  {k}: {v}" for k, v in spec.items()]
    return "\n".join(lines) + "\n"


CASES = {
    "schedule": _doc(schedule=LONG, command='["true"]'),
    "schedule field": _doc(schedule=f'"{LONG} * * * *"', command='["true"]'),
    "every": _doc(schedule=f'"@every {LONG}"', command='["true"]'),
    "timezone": _doc(schedule="'@daily'", command='["true"]', timezone=LONG),
    "hosts": _doc(schedule="'@daily'", command='["true"]', hosts=f"[{LONG}]"),
    "cidr": _doc(schedule="'@daily'", command='["true"]', hosts=f'["10.0.0.0/{LONG}"]'),
    "enum": _doc(schedule="'@daily'", command='["true"]', concurrencyPolicy=LONG),
    "type": _doc(schedule="'@daily'", command='["true"]', maxConcurrency=LONG),
    "unknown field": _doc(schedule="'@daily'", command='["true"]', **{LONG: "1"}),
    "env key": _doc(schedule="'@daily'", command='["true"]', env=f"{{{LONG}: 1}}"),
    "user": _doc(schedule="'@daily'", command='["true"]', user=f"[{LONG}]"),
    "name": HEADER + f"metadata:\n  name: {LONG}\nspec:\n  command: [x]\n  schedule: '@daily'\n",
    "apiVersion": f"apiVersion: {LONG}\nkind: Task\nmetadata: {{name: t}}\nspec: {{}}\n",
    "label": HEADER + f"metadata:\n  name: t\n  labels: {{a: [{LONG}]}}\nspec: {{}}\n",
    "scalar document": LONG + "\n",
    "list document": f"- {LONG}\n",
    "duplicate key": f"{LONG}: 1\n{LONG}: 2\n",
    "int tag": f"a: !!int {LONG}\n",
    "unknown tag": f"a: !{LONG} x\n",
    "unknown alias": f"a: *{LONG}\n",
    "timestamp": _doc(schedule="'@daily'", command='["true"]', workingDir=f"2001-01-01 {LONG}"),
    "syntax after a long line": f"a: {LONG}\n  - b: [\n",
    "bad indentation": f"a:\n  b: {LONG}\n c: {LONG}\n",
    "tab": f"a:\n\t{LONG}: 1\n",
    "unclosed quote": f'a: "{LONG}\n',
    "bad escape": f'a: "\\{LONG}"\n',
    "control character": f"a: {LONG}\x07{LONG}\n",
    "merge": f"a: {{<<: [{LONG}]}}\n",
    "complex key": f"? [{LONG}]\n: 1\n",
}

JSON_CASES = {
    "json syntax": '{"a": ' + LONG + "}",
    "json number": '{"a": 1' + "9" * 5000 + "e99999}",
    "json nan": '{"a": NaN' + LONG + "}",
    "json duplicate": json.dumps({"x": 1})[:-1] + f', "{LONG}": 1, "{LONG}": 2}}',
    "json value": json.dumps(
        {
            "apiVersion": "reconciler/v1",
            "kind": "Task",
            "metadata": {"name": "t"},
            "spec": {"schedule": LONG, "command": [LONG, 1], "env": {"A": 1}},
        }
    ),
}


@pytest.mark.parametrize("case", sorted(CASES) + sorted(JSON_CASES))
def test_no_error_quotes_more_than_200_characters(tmp_path: Path, case: str) -> None:
    text = CASES.get(case) or JSON_CASES[case]
    path = write(tmp_path / ("a.json" if case in JSON_CASES else "a.yaml"), text)
    errors = [str(e) for e in load(path).errors]
    assert errors, "the file is invalid"
    for error in errors:
        assert RUN not in error, error[:400]
        assert len(error) < len(str(path)) + 700, error[:400]
