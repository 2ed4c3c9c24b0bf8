"""`reconciler status` and `reconciler diff`: against hand-made state directories (the
logic, independent of the controller), against nothing, and against a real controller."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from controller_harness import ControllerProc, cli

from reconciler.controller.loop import applied_document
from reconciler.spec import Task, load_paths
from reconciler.state import (
    APPLIED_FILE,
    CONTROLLER_FILE,
    HISTORY_FILE,
    LEDGER_FILE,
    LOCK_FILE,
    RUNS_FILE,
    STATUS_FILE,
    StateDir,
    process_start_ticks,
)

SECRET = "hunter2-secret"

APPLIED_SPECS = f"""\
apiVersion: reconciler/v1
kind: Task
metadata: {{name: nightly}}
spec:
  schedule: "0 3 * * *"
  timezone: Europe/Berlin
  command: ["/usr/bin/backup"]
  env: {{TOKEN: {SECRET}}}
---
apiVersion: reconciler/v1
kind: Task
metadata: {{name: web}}
spec:
  type: daemon
  command: ["/srv/web", "--port", "80"]
  env: {{KEY: {SECRET}}}
  hosts: ["web-*"]
---
apiVersion: reconciler/v1
kind: Task
metadata: {{name: old-daemon}}
spec:
  type: daemon
  command: ["/srv/old"]
  terminationGracePeriodSeconds: 5
---
apiVersion: reconciler/v1
kind: Task
metadata: {{name: gone-cron}}
spec:
  schedule: "*/5 * * * *"
  command: ["/usr/bin/report"]
---
apiVersion: reconciler/v1
kind: Task
metadata: {{name: every}}
spec:
  schedule: "@every 90s"
  command: ["true"]
---
apiVersion: reconciler/v1
kind: Task
metadata: {{name: db-only}}
spec:
  schedule: "0 1 * * *"
  command: ["true"]
  hosts: ["db-*"]
"""


def edited_specs() -> str:
    """APPLIED_SPECS with one change of each kind."""
    docs = APPLIED_SPECS.split("---\n")
    by_name = {d.split("name: ", 1)[1].split("}", 1)[0]: d for d in docs}
    by_name["nightly"] = by_name["nightly"].replace('"0 3 * * *"', '"30 4 * * *"')
    by_name["web"] = by_name["web"].replace('"80"', '"8080"')
    del by_name["old-daemon"]
    del by_name["gone-cron"]
    by_name["new-daemon"] = (
        "apiVersion: reconciler/v1\nkind: Task\nmetadata: {name: new-daemon}\n"
        "spec: {type: daemon, command: [/srv/new]}\n"
    )
    return "---\n".join(by_name.values())


def load_tasks(spec: Path) -> dict[str, Task]:
    result = load_paths([spec])
    assert not result.errors, result.errors
    return dict(result.tasks)


class FakeController:
    """A state directory as a running controller keeps it, with this test process as the
    controller: it holds the lock and its pid and start time are recorded."""

    def __init__(self, path: Path, identity: dict[str, list[str]]) -> None:
        self.sd = StateDir(path)
        self.sd.ensure()
        self.fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        self.now = time.time()
        self.sd.write_json(
            CONTROLLER_FILE,
            {
                "pid": os.getpid(),
                "start_ticks": process_start_ticks(os.getpid()),
                "started_at": self.now - 3600,
                "version": "0.1.0",
                "spec_dir": "/srv/specs",
                "state_dir": str(path),
                "identity": identity,
                "watch": "inotify",
                "http": None,
            },
        )

    def apply(self, tasks: dict[str, Task]) -> None:
        self.sd.write_json(
            APPLIED_FILE,
            {
                n: {"file": t.file, "line": t.line, "document": applied_document(t)}
                for n, t in sorted(tasks.items())
            },
        )

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[tuple[FakeController, Path, dict[str, Task]]]:
    """A controller of host web-3 / 10.0.0.5 with APPLIED_SPECS applied and runs alive."""
    spec = tmp_path / "specs"
    spec.mkdir()
    (spec / "tasks.yaml").write_text(APPLIED_SPECS)
    tasks = load_tasks(spec)
    ctl = FakeController(tmp_path / "state", {"addresses": ["10.0.0.5"], "names": ["web-3"]})
    ctl.apply({n: t for n, t in tasks.items() if n != "db-only"})
    now = ctl.now

    def run(task: str, run_id: str, kind: str, pid: int, age: float, due: int | None) -> dict[str, Any]:
        return {
            "run_id": run_id, "task": task, "kind": kind, "pid": pid, "started_at": now - age,
            "due": due, "fingerprint": tasks[task].process_fingerprint(), "timeout_s": None,
            "grace_s": float(tasks[task].termination_grace_period_seconds), "stopping": None,
            "trigger": "daemon" if kind == "daemon" else "schedule", "pgid": pid,
            "start_ticks": 1,
        }

    ctl.sd.write_json(
        RUNS_FILE,
        [
            run("web", "web-1", "daemon", 4001, 600, None),
            run("old-daemon", "old-1", "daemon", 4002, 700, None),
            run("gone-cron", "gone-1", "cron", 4003, 30, int(now) - 30),
            run("nightly", "nightly-1", "cron", 4004, 10, int(now) - 10),
        ],
    )
    ctl.sd.write_json(
        HISTORY_FILE,
        {
            "nightly": [
                {"run_id": "n-0", "due": int(now) - 86400, "trigger": "schedule",
                 "started_at": now - 86400, "ended_at": now - 86398.5, "exit_code": 3,
                 "signal": None, "outcome": "failed", "duration_s": 1.5},
            ],
        },
    )
    ctl.sd.write_json(
        LEDGER_FILE,
        {
            "cursors": {"nightly": int(now) - 10, "every": int(now) - 20},
            "anchors": {"every": {"schedule": "@every 90s", "at": int(now) - 200}},
            "daemons": {"old-daemon": {"failures": 0, "not_before": 0.0,
                                       "finished_fingerprint": None}},
        },
    )
    ctl.sd.write_json(
        STATUS_FILE,
        {
            "updated_at": now - 5,
            "spec_dir": "/srv/specs",
            "dir_error": None,
            "spec_errors": [
                {"file": "/srv/specs/bad.yaml", "line": 7, "task": "broken",
                 "field": "spec.schedule", "message": "hour: 25 is out of range 0-23",
                 "error": "/srv/specs/bad.yaml:7: broken: spec.schedule: hour: 25 is out of range 0-23"}
            ],
            "tasks_total": 6,
            "tasks_for_host": 5,
        },
    )
    try:
        yield ctl, spec, tasks
    finally:
        ctl.close()


# --- status on a hand-made state directory --------------------------------------------


def test_status_json(fake: tuple[FakeController, Path, dict[str, Task]]) -> None:
    ctl, _, _ = fake
    r = cli("status", "--state-dir", ctl.sd.path, "-o", "json")
    assert r.returncode == 0, r.stderr
    assert SECRET not in r.stdout and "sha256:" not in r.stdout
    data = json.loads(r.stdout)
    c = data["controller"]
    assert c["pid"] == os.getpid()
    assert 3590 < c["uptimeSeconds"] < 3700
    assert c["specDir"] == "/srv/specs"
    assert c["identity"] == {"addresses": ["10.0.0.5"], "names": ["web-3"]}
    assert data["specs"]["errors"][0]["line"] == 7
    assert data["specs"]["tasksForHost"] == 5
    running = {r["runId"]: r for r in data["running"]}
    assert set(running) == {"web-1", "old-1", "gone-1", "nightly-1"}
    assert running["nightly-1"]["pid"] == 4004
    assert 9 < running["nightly-1"]["ageSeconds"] < 60
    assert running["nightly-1"]["due"].endswith(("+01:00", "+02:00"))  # the task's zone
    tasks = {t["name"]: t for t in data["tasks"]}
    assert set(tasks) == {"nightly", "web", "old-daemon", "gone-cron", "every"}
    n = tasks["nightly"]
    due = datetime.fromisoformat(n["nextRun"])
    assert (due.hour, due.minute) == (3, 0) and due.timestamp() > ctl.now
    assert n["lastRun"]["outcome"] == "failed" and n["lastRun"]["exitCode"] == 3
    assert n["lastRun"]["reason"] == "exit code 3"
    assert n["lastRun"]["durationSeconds"] == 1.5
    # @every: the controller's anchor, A + k*90 s.
    every_due = datetime.fromisoformat(tasks["every"]["nextRun"]).timestamp()
    anchor = int(ctl.now) - 200
    assert (every_due - anchor) % 90 == 0 and ctl.now - 1 <= every_due <= ctl.now + 91
    assert tasks["web"]["daemon"]["state"] == "running"
    assert tasks["web"]["nextRun"] is None


def test_status_human(fake: tuple[FakeController, Path, dict[str, Task]]) -> None:
    ctl, _, _ = fake
    r = cli("status", "--state-dir", ctl.sd.path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert SECRET not in out and "sha256:" not in out
    assert f"pid {os.getpid()}" in out
    assert "10.0.0.5, web-3" in out
    assert "/srv/specs/bad.yaml:7: broken: spec.schedule: hour: 25 is out of range 0-23" in out
    assert "Running (4)" in out
    assert "failed: exit code 3" in out
    tasks = out.split("\nTasks:\n", 1)[1]
    nightly = next(line for line in tasks.splitlines() if line.startswith("nightly "))
    assert "0 3 * * * (Europe/Berlin)" in nightly and "failed: exit code 3" in nightly


def test_status_no_controller(tmp_path: Path) -> None:
    r = cli("status", "--state-dir", tmp_path / "state")
    assert r.returncode == 1
    assert f"no controller is running for state directory {tmp_path / 'state'}" in r.stderr


def test_status_stale_pid_file(tmp_path: Path) -> None:
    """A controller.json left behind (lock not held) is not a running controller."""
    sd = StateDir(tmp_path)
    sd.write_json(
        CONTROLLER_FILE, {"pid": os.getpid(), "start_ticks": process_start_ticks(os.getpid())}
    )
    r = cli("status", "--state-dir", tmp_path, "-o", "json")
    assert r.returncode == 1
    assert "no controller is running" in r.stderr and r.stdout == ""


# --- diff on a hand-made state directory ----------------------------------------------


def test_diff_no_changes(fake: tuple[FakeController, Path, dict[str, Task]]) -> None:
    ctl, spec, _ = fake
    r = cli("diff", spec, "--state-dir", ctl.sd.path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "No differences." in r.stdout
    assert "(1 task in the documents does not run on this host.)" in r.stdout


def test_diff_changes_json(fake: tuple[FakeController, Path, dict[str, Task]], tmp_path: Path) -> None:
    ctl, _, _ = fake
    new = tmp_path / "new"
    new.mkdir()
    (new / "tasks.yaml").write_text(edited_specs())
    r = cli("diff", new, "--state-dir", ctl.sd.path, "-o", "json")
    assert r.returncode == 1, r.stderr
    assert SECRET not in r.stdout and "sha256:" not in r.stdout
    data = json.loads(r.stdout)
    assert data["against"]["controller"] is True and data["against"]["pid"] == os.getpid()
    assert data["added"] == ["new-daemon"]
    assert data["changed"] == ["nightly", "web"]
    assert data["removed"] == ["gone-cron", "old-daemon"]
    assert data["otherHosts"] == ["db-only"]  # the controller's identity: web-3, 10.0.0.5
    tasks = {t["name"]: t for t in data["tasks"]}
    actions = {n: {a["action"]: a for a in t["actions"]} for n, t in tasks.items()}

    assert tasks["web"]["fields"] == ["spec.command"]
    restart = actions["web"]["restart-daemon"]
    assert restart["pids"] == [4001] and restart["runIds"] == ["web-1"]
    # The unchanged env shows masked and equal on both sides: not part of the diff.
    assert "KEY" not in "".join(
        line for line in tasks["web"]["diff"].splitlines() if line[:1] in "+-"
    )
    assert "-  - '80'" in tasks["web"]["diff"] and "+  - '8080'" in tasks["web"]["diff"]

    assert tasks["nightly"]["fields"] == ["spec.schedule"]
    assert actions["nightly"]["left-running"]["pids"] == [4004]
    nxt = datetime.fromisoformat(actions["nightly"]["schedule"]["nextRun"])
    assert (nxt.hour, nxt.minute) == (4, 30)

    assert actions["old-daemon"]["stop-daemon"]["pids"] == [4002]
    assert "SIGKILL after 5s" in actions["old-daemon"]["stop-daemon"]["message"]
    assert actions["gone-cron"]["left-running"]["pids"] == [4003]
    assert "stop-daemon" not in actions["gone-cron"]
    assert list(actions["new-daemon"]) == ["start-daemon"]
    assert tasks["new-daemon"]["diff"].startswith("--- /dev/null")


def test_diff_changes_human(fake: tuple[FakeController, Path, dict[str, Task]], tmp_path: Path) -> None:
    ctl, _, _ = fake
    new = tmp_path / "new"
    new.mkdir()
    (new / "tasks.yaml").write_text(edited_specs().replace(SECRET, "rotated"))
    r = cli("diff", new, "--state-dir", ctl.sd.path)
    assert r.returncode == 1, r.stderr
    out = r.stdout
    assert SECRET not in out and "rotated" not in out and "sha256:" not in out
    assert "~ web [daemon] changed (spec.command, spec.env.KEY)" in out
    assert "+    KEY: '*** (changed)'" in out
    assert "-    KEY: '***'" in out
    assert "+ new-daemon [daemon] added" in out
    assert "- old-daemon [daemon] removed" in out
    assert "daemon restarted (pid 4001" in out
    assert "1 cron run in flight (pid 4003) left to finish" in out
    assert "1 added, 2 changed, 2 removed." in out
    assert "(1 task in the documents does not run on this host.)" in out


def test_diff_identity_flags_override(fake: tuple[FakeController, Path, dict[str, Task]]) -> None:
    ctl, spec, _ = fake
    r = cli("diff", spec, "--state-dir", ctl.sd.path, "--hostname", "db-1", "--host-ip", "10.9.9.9",
            "-o", "json")
    assert r.returncode == 1, r.stderr
    data = json.loads(r.stdout)
    assert data["identity"] == {"addresses": ["10.9.9.9"], "names": ["db-1"]}
    assert data["added"] == ["db-only"]
    assert data["removed"] == ["web"]  # web-* no longer selects this host


def test_diff_against_nothing(tmp_path: Path) -> None:
    spec = tmp_path / "specs"
    spec.mkdir()
    (spec / "tasks.yaml").write_text(APPLIED_SPECS)
    state = tmp_path / "state"
    r = cli("diff", spec, "--state-dir", state, "--hostname", "web-3", "--host-ip", "10.0.0.5",
            "-o", "json")
    assert r.returncode == 1, r.stderr
    data = json.loads(r.stdout)
    assert data["against"]["controller"] is False
    assert data["added"] == ["every", "gone-cron", "nightly", "old-daemon", "web"]
    assert data["changed"] == [] and data["removed"] == []
    tasks = {t["name"]: t for t in data["tasks"]}
    assert [a["action"] for a in tasks["web"]["actions"]] == ["start-daemon"]
    assert [a["action"] for a in tasks["nightly"]["actions"]] == ["schedule"]
    assert SECRET not in r.stdout
    assert not state.exists()  # a dry run creates nothing


def test_diff_nothing_against_nothing(tmp_path: Path) -> None:
    spec = tmp_path / "specs"
    spec.mkdir()
    (spec / "db.yaml").write_text(APPLIED_SPECS.split("---\n")[-1])
    r = cli("diff", spec, "--state-dir", tmp_path / "state", "--hostname", "web-3",
            "--host-ip", "10.0.0.5")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "No differences." in r.stdout
    assert "against: nothing" in r.stdout.lower()


def test_diff_invalid_specs_is_an_error(tmp_path: Path) -> None:
    spec = tmp_path / "specs"
    spec.mkdir()
    (spec / "ok.yaml").write_text(APPLIED_SPECS)
    (spec / "bad.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Task\nmetadata: {name: broken}\n"
        "spec:\n  command: [x]\n  maxConcurrency: -1\n  schedule: '@daily'\n"
    )
    r = cli("diff", spec, "--state-dir", tmp_path / "state")
    assert r.returncode == 2
    assert "bad.yaml:6: broken: spec.maxConcurrency:" in r.stderr
    assert r.stdout == ""
    r = cli("diff", spec, "--state-dir", tmp_path / "state", "-o", "json")
    assert r.returncode == 2
    (err,) = json.loads(r.stdout)["errors"]
    assert (err["line"], err["task"], err["field"]) == (6, "broken", "spec.maxConcurrency")


def test_diff_missing_dir(tmp_path: Path) -> None:
    r = cli("diff", tmp_path / "nope", "--state-dir", tmp_path / "state")
    assert r.returncode == 2
    assert "does not exist" in r.stderr


# --- against a real controller --------------------------------------------------------

LIVE_SPECS = """\
apiVersion: reconciler/v1
kind: Task
metadata: {name: sleeper}
spec:
  type: daemon
  command: ["sleep", "300"]
  terminationGracePeriodSeconds: 2
  env: {TOKEN: live-secret}
---
apiVersion: reconciler/v1
kind: Task
metadata: {name: often}
spec:
  schedule: "@every 1s"
  command: ["true"]
"""


def wait_status(state: Path, ok: Any, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        r = cli("status", "--state-dir", state, "-o", "json")
        if r.returncode == 0:
            last = json.loads(r.stdout)
            if ok(last):
                return dict(last)
        time.sleep(0.2)
    raise AssertionError(f"controller not ready: {last}")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, subprocess.Popen[bytes]]]:
    base = tmp_path_factory.mktemp("live")
    spec, state = base / "specs", base / "state"
    spec.mkdir()
    (spec / "tasks.yaml").write_text(LIVE_SPECS)
    proc = ControllerProc(spec, state).proc  # the same flags as every controller test
    try:
        wait_status(
            state,
            lambda d: any(r["task"] == "sleeper" for r in d["running"])
            and any(t["name"] == "often" and t["lastRun"] for t in d["tasks"]),
        )
        yield spec, state, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_live_status(live: tuple[Path, Path, subprocess.Popen[bytes]]) -> None:
    spec, state, proc = live
    r = cli("status", "--state-dir", state, "-o", "json")
    assert r.returncode == 0, r.stderr
    assert "live-secret" not in r.stdout
    data = json.loads(r.stdout)
    assert data["controller"]["pid"] == proc.pid
    assert data["controller"]["identity"] == {"addresses": ["10.99.0.1"], "names": ["test-host"]}
    tasks = {t["name"]: t for t in data["tasks"]}
    assert tasks["sleeper"]["daemon"]["state"] == "running"
    assert tasks["often"]["lastRun"]["outcome"] == "succeeded"
    assert tasks["often"]["nextRun"] is not None
    human = cli("status", "--state-dir", state)
    assert human.returncode == 0 and "sleeper" in human.stdout and "live-secret" not in human.stdout


def test_live_diff(live: tuple[Path, Path, subprocess.Popen[bytes]], tmp_path: Path) -> None:
    spec, state, _ = live
    # No identity flags: the controller's own (test-host) is used.
    r = cli("diff", spec, "--state-dir", state)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "No differences." in r.stdout

    new = tmp_path / "specs"
    shutil.copytree(spec, new)
    text = (new / "tasks.yaml").read_text().replace('"300"', '"301"')
    (new / "tasks.yaml").write_text(text)
    r = cli("diff", new, "--state-dir", state, "-o", "json")
    assert r.returncode == 1, r.stderr
    data = json.loads(r.stdout)
    assert data["changed"] == ["sleeper"]
    pid = next(
        x["pid"] for x in json.loads(cli("status", "--state-dir", state, "-o", "json").stdout)["running"]
        if x["task"] == "sleeper"
    )
    (action,) = data["tasks"][0]["actions"]
    assert action["action"] == "restart-daemon" and action["pids"] == [pid]
    assert "live-secret" not in r.stdout


# --- the diff logic in process: process actions of less common changes ------------------


def _task(tmp: Path, name: str, body: str) -> Task:
    d = tmp / name
    d.mkdir(exist_ok=True)
    (d / "t.yaml").write_text(
        f"apiVersion: reconciler/v1\nkind: Task\nmetadata: {{name: {name}}}\nspec: {body}\n"
    )
    return load_tasks(d)[name]


def _applied(task: Task) -> dict[str, Any]:
    from reconciler.state.applied import parse_applied

    return parse_applied(
        json.loads(json.dumps({task.name: {"file": task.file, "line": task.line,
                                           "document": applied_document(task)}}))
    )


def _live(task: Task, kind: str, pid: int) -> Any:
    from reconciler.reconcile import RunView

    return RunView(run_id=f"{task.name}-r", task=task.name, kind=kind, pid=pid, started_at=0.0,
                   due=None, fingerprint=task.process_fingerprint(), grace_s=30.0, stopping=None,
                   timeout_s=None)


@pytest.mark.parametrize(
    "before, after, runs, expected",
    [
        # Metadata only: the daemon keeps running.
        ("{type: daemon, command: [a]}", "{type: daemon, command: [a], suspend: false}", "daemon",
         []),
        ("{type: daemon, command: [a], env: {K: v}}", "{type: daemon, command: [a], env: {K: w}}",
         "daemon", ["restart-daemon"]),
        ("{type: daemon, command: [a]}", "{type: daemon, command: [a], suspend: true}", "daemon",
         ["stop-daemon"]),
        ("{type: daemon, command: [a], suspend: true}", "{type: daemon, command: [a]}", None,
         ["start-daemon"]),
        ("{type: daemon, command: [a]}", "{schedule: '@hourly', command: [a]}", "daemon",
         ["stop-daemon", "schedule"]),
        ("{schedule: '@hourly', command: [a]}", "{type: daemon, command: [a]}", "cron",
         ["start-daemon", "left-running"]),
        ("{schedule: '@hourly', command: [a]}", "{schedule: '@hourly', command: [b]}", "cron",
         ["left-running"]),
        ("{schedule: '@hourly', command: [a]}", "{schedule: '@reboot', command: [a]}", None,
         ["reboot"]),
        ("{schedule: '@hourly', command: [a]}",
         "{schedule: '@hourly', command: [a], suspend: true}", None, ["suspended"]),
    ],
)
def test_diff_process_actions(
    tmp_path: Path, before: str, after: str, runs: str | None, expected: list[str]
) -> None:
    from reconciler.forecast import diff
    from reconciler.hosts import HostIdentity

    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    old = _task(tmp_path / "old", "t", before)
    new = _task(tmp_path / "new", "t", after)
    live = [_live(old, runs, 4242)] if runs else []
    result = diff(_applied(old), {"t": new}, HostIdentity(), live, {}, time.time())
    if not expected:
        assert result.changes == []  # the normalised documents are equal
        return
    (change,) = result.changes
    assert [a.kind for a in change.actions] == expected
    for a in change.actions:
        if a.kind in ("restart-daemon", "stop-daemon", "left-running"):
            assert a.pids == (4242,)


def test_diff_metadata_only_change_touches_no_process(tmp_path: Path) -> None:
    from reconciler.forecast import diff
    from reconciler.hosts import HostIdentity

    (tmp_path / "old").mkdir()
    old = _task(tmp_path / "old", "t", "{type: daemon, command: [a]}")
    new_dir = tmp_path / "new"
    new_dir.mkdir()
    (new_dir / "t.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Task\nmetadata: {name: t, labels: {team: web}}\n"
        "spec: {type: daemon, command: [a]}\n"
    )
    new = load_tasks(new_dir)["t"]
    result = diff(_applied(old), {"t": new}, HostIdentity(), [_live(old, "daemon", 7)], {}, 0.0)
    (change,) = result.changes
    assert change.fields == ["metadata.labels.team"]
    assert [a.kind for a in change.actions] == ["none"]
    assert "left running" in change.actions[0].message
