"""`-o json` of every command speaks camelCase (`nextRun`, `invalidFiles`), as kubectl does;
keys that are the user's own (env names, labels) are left as written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

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
