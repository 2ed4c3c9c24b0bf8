"""`-o json` of every command speaks camelCase (`nextRun`, `lastRun`, `exitCode`), as kubectl does;
keys that are the user's own (env names, labels) are left as written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from controller_harness import ControllerProc, start, wait_until, write_task

CAMEL = re.compile(r"^[a-z][a-zA-Z0-9]*$")
USER_KEYS = {"env", "labels"}  # maps whose keys the user chose

DOCS = """\
apiVersion: reconciler/v1
kind: Task
metadata:
  name: nightly-backup
  labels: {team_name: infra}
spec:
  schedule: "0 3 * * *"
  command: /bin/true
  env: {BACKUP_DIR: /srv}
  timeoutSeconds: 60
---
apiVersion: reconciler/v1
kind: Task
metadata:
  name: web
spec:
  type: daemon
  command: [sleep, "1000"]
"""


def not_camel(value: Any, path: str = "") -> list[str]:
    if isinstance(value, list):
        return [bad for i, v in enumerate(value) for bad in not_camel(v, f"{path}[{i}]")]
    if not isinstance(value, dict):
        return []
    found = []
    for key, sub in value.items():
        if not CAMEL.match(key):
            found.append(f"{path}.{key}")
        if key not in USER_KEYS:
            found += not_camel(sub, f"{path}.{key}")
    return found


def reconciler(*args: str | Path) -> Any:
    run = subprocess.run([sys.executable, "-m", "reconciler", *map(str, args)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode in (0, 1), run.stderr
    return json.loads(run.stdout)


def specs(tmp_path: Path, broken: bool = False) -> Path:
    spec = tmp_path / "specs"
    spec.mkdir()
    os.chmod(spec, 0o755)
    (spec / "tasks.yaml").write_text(DOCS)
    if broken:
        (spec / "bad.yaml").write_text("apiVersion: reconciler/v1\nkind: Task\n"
                                       "metadata: {name: Bad}\nspec: {schedule: '@daily'}\n")
    for f in spec.iterdir():
        os.chmod(f, 0o644)
    return spec


def test_get_plan_and_validate(tmp_path: Path) -> None:
    spec = specs(tmp_path, broken=True)
    got = reconciler("get", spec, "-o", "json")
    assert {"nextRun", "onThisHost"} <= set(got[0]) and not_camel(got) == []
    assert got[0]["metadata"]["labels"] == {"team_name": "infra"}  # the user's own keys
    plan = reconciler("plan", spec, "--host", "web-1", "--from", "2026-01-01T00:00:00Z",
                      "--count", "2", "-o", "json")
    assert plan and not_camel(plan) == []
    report = reconciler("validate", spec, "-o", "json")
    assert report["invalidFiles"] == 1 and report["valid"] is False
    assert not_camel(report) == []


def test_status_and_diff_of_a_running_controller(
    dirs: tuple[Path, Path], controllers: list[ControllerProc]
) -> None:
    write_task(dirs[0], "flaky", {"schedule": "* * * * * *", "command": ["sh", "-c", "exit 3"],
                                  "env": {"MY_VAR": "x"}})
    write_task(dirs[0], "web", {"type": "daemon", "command": ["sleep", "1000"]})
    c = start(controllers, dirs)
    c.wait_for("run.exited", task="flaky")
    state = dirs[1]

    def flaky_of(status: Any) -> Any:
        return next(t for t in status["tasks"] if t["name"] == "flaky")

    # The run history is written just after a tick: its last run shows a moment later.
    wait_until(lambda: flaky_of(reconciler("status", "--state-dir", state, "-o", "json"))
               ["lastRun"] is not None, what="status shows flaky's last run")
    status = reconciler("status", "--state-dir", state, "-o", "json")
    assert not_camel(status) == []
    flaky = flaky_of(status)
    assert flaky["nextRun"] and flaky["lastRun"]["exitCode"] == 3
    assert isinstance(flaky["lastRun"]["durationSeconds"], float)
    assert status["controller"]["specDir"] and status["running"][0]["runId"]

    # Edited documents elsewhere: the controller would apply them at once in its own folder.
    edited = dirs[0].parent / "edited"
    edited.mkdir(mode=0o755)
    write_task(edited, "web", {"type": "daemon", "command": ["sleep", "2000"]})
    write_task(edited, "flaky", {"schedule": "*/5 * * * * *", "command": ["true"]})
    diff = reconciler("diff", edited, "--state-dir", state, "-o", "json")
    assert not_camel(diff) == [] and diff["otherHosts"] == []
    actions = [a for t in diff["tasks"] for a in t["actions"]]
    assert any("runIds" in a for a in actions) and any("nextRun" in a for a in actions)
    assert c.stop() == 0
