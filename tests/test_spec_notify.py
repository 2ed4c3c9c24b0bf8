"""Spec fields of failure handling and notifications, and kind: TaskDefaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.notify import Target, mask_secret_urls
from reconciler.spec import load_paths

TASK = """\
apiVersion: reconciler/v1
kind: Task
metadata: {{name: {name}}}
spec:
{body}
"""

FULL = """\
  schedule: "@daily"
  command: ["true"]
  successExitCodes: [0, 3]
  retry: {limit: 3, delaySeconds: 5}
  notify:
    - on: [failure, recovery]
      webhook: https://hooks.example.com/cron/TOKEN
    - on: [failure]
      command: ["/usr/local/bin/page-oncall", "--now"]
  healthcheck: {url: "https://hc-ping.com/0d7f"}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def errors(tmp_path: Path) -> list[str]:
    return [str(e).removeprefix(str(tmp_path) + "/") for e in load_paths([tmp_path]).errors]


def test_fields_reach_the_task(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", TASK.format(name="backup", body=FULL))
    result = load_paths([tmp_path])
    assert result.errors == []
    task = result.tasks["backup"]
    assert task.success_exit_codes == frozenset({0, 3})
    assert task.retry is not None and (task.retry.limit, task.retry.delay_seconds) == (3, 5)
    assert task.retry.max_delay_seconds == 600
    assert task.notify == (
        Target(
            frozenset({"failure", "recovery"}), "webhook", "https://hooks.example.com/cron/TOKEN"
        ),
        Target(frozenset({"failure"}), "command", ("/usr/local/bin/page-oncall", "--now")),
    )
    assert task.healthcheck_url == "https://hc-ping.com/0d7f"
    shown = mask_secret_urls(json.loads(json.dumps(task.document["spec"])))
    assert shown["notify"][0]["webhook"] == "https://hooks.example.com/***"
    assert shown["healthcheck"]["url"] == "https://hc-ping.com/***"


def test_defaults_without_the_fields(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", TASK.format(name="a", body='  schedule: "@daily"\n  command: x\n'))
    task = load_paths([tmp_path]).tasks["a"]
    assert task.success_exit_codes == frozenset({0}) and task.retry is None
    assert task.notify == () and task.healthcheck_url is None and task.crash_loop is None
    assert "notify" not in task.document["spec"]  # fingerprints of old tasks unchanged


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            "  type: daemon\n  command: x\n  retry: {limit: 1}\n",
            "a.yaml:7: a: spec.retry: not allowed for a daemon (cron tasks only)",
        ),
        (
            '  schedule: "@daily"\n  command: x\n  crashLoop: {maxRestarts: 1}\n',
            "a.yaml:7: a: spec.crashLoop: only allowed for a daemon (type: daemon)",
        ),
        (
            '  schedule: "@daily"\n  command: x\n  successExitCodes: [256]\n',
            "a.yaml:7: a: spec.successExitCodes[0]: 256 is greater than the maximum of 255",
        ),
        (
            '  schedule: "@daily"\n  command: x\n  notify:\n    - on: [failure]\n'
            "      webhook: gopher://x/SECRET\n",
            "a.yaml:9: a: spec.notify[0].webhook: must be an http:// or https:// URL (found gopher:)",
        ),
        (
            '  schedule: "@daily"\n  command: x\n  notify:\n    - on: [failure]\n',
            "a.yaml:8: a: spec.notify[0]: needs exactly one of webhook, command, apprise",
        ),
        (
            '  schedule: "@daily"\n  command: x\n  notify:\n    - on: [failure]\n'
            "      webhook: https://x/\n      command: [a]\n",
            "a.yaml:8: a: spec.notify[0]: needs exactly one of webhook, command, apprise "
            "(found webhook, command)",
        ),
        (
            '  schedule: "@daily"\n  command: x\n  notify:\n    - on: [failed]\n      command: [a]\n',
            'a.yaml:8: a: spec.notify[0].on[0]: "failed" is not one of failure, recovery, '
            "success, start, gave-up; did you mean failure?",
        ),
        (
            '  schedule: "@daily"\n  command: x\n  healthcheck: {url: "https://:80/SECRET"}\n',
            "a.yaml:7: a: spec.healthcheck.url: is not a valid URL (no host)",
        ),
    ],
)
def test_errors_name_file_line_task_and_field(tmp_path: Path, body: str, error: str) -> None:
    write(tmp_path, "a.yaml", TASK.format(name="a", body=body))
    assert errors(tmp_path) == [error]
    assert "SECRET" not in error


def test_apprise_missing_is_a_validation_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.notify import targets

    monkeypatch.setattr(targets, "apprise_installed", lambda: False)
    body = '  schedule: "@daily"\n  command: x\n  notify:\n    - on: [failure]\n      apprise: "mailto://a:b@c.example"\n'
    write(tmp_path, "a.yaml", TASK.format(name="a", body=body))
    assert errors(tmp_path) == [
        "a.yaml:9: a: spec.notify[0].apprise: needs the Apprise library, which is not "
        "installed on this host (pip install 'reconciler[notify]')"
    ]


DEFAULTS = """\
apiVersion: reconciler/v1
kind: TaskDefaults
metadata: {name: house-rules}
spec:
  timezone: Europe/Berlin
  env: {A: default, B: default}
  retry: {limit: 2}
  notify:
    - on: [failure]
      webhook: https://hooks.example.com/default
  outputLimitBytes: 2048
"""


def test_task_defaults_apply_to_every_task_of_the_directory(tmp_path: Path) -> None:
    write(tmp_path, "00-defaults.yaml", DEFAULTS)
    sub = tmp_path / "team"
    sub.mkdir()
    write(
        sub,
        "a.yaml",
        TASK.format(name="a", body='  schedule: "@daily"\n  command: x\n  env: {B: mine}\n'),
    )
    write(
        tmp_path,
        "b.yaml",
        TASK.format(name="b", body="  type: daemon\n  command: x\n  outputLimitBytes: 10\n"),
    )
    write(
        tmp_path,
        "c.yaml",
        TASK.format(
            name="c", body='  schedule: "@daily"\n  command: x\n  notify: []\n  retry: {limit: 5}\n'
        ),
    )
    result = load_paths([tmp_path])
    assert result.errors == []
    a, b, c = (result.tasks[n] for n in "abc")
    assert dict(a.env) == {"A": "default", "B": "mine"}
    assert a.timezone_name == "Europe/Berlin" and a.output_limit_bytes == 2048
    assert a.retry is not None and a.retry.limit == 2
    assert [t.value for t in a.notify] == ["https://hooks.example.com/default"]
    assert b.retry is None and b.output_limit_bytes == 10  # retry is for cron runs only
    assert c.notify == () and c.retry is not None and c.retry.limit == 5  # replaced whole
    assert a.document["spec"]["timezone"] == "Europe/Berlin"  # shown with defaults applied


def test_a_second_task_defaults_and_a_bad_one_are_errors(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", DEFAULTS)
    write(tmp_path, "b.yaml", DEFAULTS.replace("house-rules", "other"))
    assert errors(tmp_path) == [
        "b.yaml:1: other: kind: a second TaskDefaults in the spec directory; the first is at "
        f"{tmp_path}/a.yaml:1"
    ]
    (tmp_path / "b.yaml").unlink()
    write(
        tmp_path, "a.yaml", DEFAULTS.replace("limit: 2", "limit: 0").replace("https://", "ftp://")
    )
    found = errors(tmp_path)
    assert any(e.startswith("a.yaml:7: house-rules: spec.retry.limit: ") for e in found)
    assert (
        "a.yaml:10: house-rules: spec.notify[0].webhook: must be an http:// or https:// URL (found ftp:)"
        in found
    )
