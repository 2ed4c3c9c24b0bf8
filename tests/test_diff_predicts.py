"""`diff` predicts with the decision itself: the process actions it prints are those of
`reconcile()` fed with the same tasks, live runs and ledger daemon states. And the rules
kept once: the daemon phase, runs.json's parser, env masking, next due."""

from __future__ import annotations

import json
import time
from pathlib import Path

from reconciler.envmask import MASK, env_hash, hashed_document, masked_document
from reconciler.forecast import diff, next_due
from reconciler.hosts import HostIdentity
from reconciler.reconcile import (
    BACKOFF_MAX_S,
    DaemonState,
    Inputs,
    RunView,
    StartRun,
    StopRun,
    daemon_phase,
    reconcile,
)
from reconciler.schedule import parse_schedule
from reconciler.spec import Task, load_paths
from reconciler.state.applied import applied_document, parse_applied
from reconciler.state.runs import RunRecord, encode, parse_runs

OLD = """\
apiVersion: reconciler/v1
kind: Task
metadata: {name: web}
spec: {type: daemon, command: [/srv/web, "80"]}
---
apiVersion: reconciler/v1
kind: Task
metadata: {name: gone}
spec: {type: daemon, command: [/srv/gone]}
---
apiVersion: reconciler/v1
kind: Task
metadata: {name: paused}
spec: {type: daemon, command: [/srv/paused]}
---
apiVersion: reconciler/v1
kind: Task
metadata: {name: done}
spec: {type: daemon, command: [/srv/done], restartPolicy: Never}
---
apiVersion: reconciler/v1
kind: Task
metadata: {name: crashy}
spec: {type: daemon, command: [/srv/crashy]}
---
apiVersion: reconciler/v1
kind: Task
metadata: {name: report}
spec: {schedule: "@hourly", command: [/usr/bin/report]}
"""

NEW = (
    OLD.replace('"80"', '"8080"')
    .replace("metadata: {name: gone}\nspec: {type: daemon, command: [/srv/gone]}",
             "metadata: {name: gone}\nspec: {schedule: '@daily', command: [/srv/gone]}")
    .replace("command: [/srv/paused]}", "command: [/srv/paused], suspend: true}")
    .replace("restartPolicy: Never}", "restartPolicy: Never, terminationGracePeriodSeconds: 9}")
    .replace("command: [/srv/crashy]}", "command: [/srv/crashy], timeoutSeconds: 60}")
    .replace("command: [/usr/bin/report]}", "command: [/usr/bin/report, -v]}")
    + "---\napiVersion: reconciler/v1\nkind: Task\nmetadata: {name: fresh}\n"
    "spec: {type: daemon, command: [/srv/fresh]}\n"
)


def tasks_of(tmp: Path, name: str, text: str) -> dict[str, Task]:
    d = tmp / name
    d.mkdir()
    (d / "t.yaml").write_text(text)
    result = load_paths([d])
    assert not result.errors, result.errors
    return dict(result.tasks)


def view(task: Task, run_id: str, kind: str, pid: int, **kw: object) -> RunView:
    fields: dict[str, object] = dict(
        run_id=run_id, task=task.name, kind=kind, pid=pid, started_at=time.time() - 60,
        due=None, fingerprint=task.process_fingerprint(), timeout_s=None, grace_s=5.0,
    )
    fields.update(kw)
    return RunView(**fields)  # type: ignore[arg-type]


def test_diff_actions_are_the_decision(tmp_path: Path) -> None:
    old, new = tasks_of(tmp_path, "old", OLD), tasks_of(tmp_path, "new", NEW)
    applied = parse_applied(json.loads(json.dumps(
        {n: {"file": t.file, "line": t.line, "document": applied_document(t)}
         for n, t in old.items()})))
    now = time.time()
    runs = [
        view(old["web"], "web-1", "daemon", 101),
        view(old["gone"], "gone-1", "daemon", 102),
        view(old["paused"], "paused-1", "daemon", 103),
        view(old["report"], "report-1", "cron", 104),
    ]
    daemons = {
        "done": DaemonState(finished_fingerprint=new["done"].process_fingerprint()),
        "crashy": DaemonState(failures=3, not_before=now + 60,
                              failed_fingerprint=new["crashy"].process_fingerprint()),
    }
    result = diff(applied, new, HostIdentity(), runs, {}, now, True, daemons)
    decided = reconcile(Inputs(now=now, tasks=new, observed=runs, daemons=daemons))

    # Every stop and start the decision makes is in the diff, and nothing else is.
    by_run = {r.run_id: r for r in runs}
    stopped = {a.run_id for a in decided if isinstance(a, StopRun)}
    started = {a.task for a in decided if isinstance(a, StartRun)}
    shown_stops = {rid for c in result.changes for a in c.actions
                   if a.kind in ("restart-daemon", "stop-daemon", "stop-run") for rid in a.run_ids}
    shown_starts = {c.name for c in result.changes for a in c.actions if a.kind == "start-daemon"}
    assert shown_stops == stopped == {"web-1", "gone-1", "paused-1"}
    assert shown_starts == started == {"fresh"}
    reasons = {a.run_id: a.reason for a in decided if isinstance(a, StopRun)}
    kinds = {rid: a.kind for c in result.changes for a in c.actions for rid in a.run_ids}
    assert reasons == {"web-1": "changed", "gone-1": "removed", "paused-1": "suspended"}
    assert kinds["web-1"] == "restart-daemon" and kinds["gone-1"] == "stop-daemon"
    assert kinds["paused-1"] == "stop-daemon" and kinds["report-1"] == "left-running"
    assert by_run["report-1"].run_id not in stopped
    # Neither started nor stopped: the diff says why, with the daemon's phase.
    actions = {c.name: [(a.kind, a.message) for a in c.actions] for c in result.changes}
    assert actions["crashy"] == [("none", "daemon waits out its back-off, then starts")]
    # Finished under the same process fields: a grace period change does not start it.
    assert actions["done"] == [("none", "daemon finished: not started until its process fields change")]


def test_finished_daemon_changed_only_outside_its_process_is_not_started(tmp_path: Path) -> None:
    base = "apiVersion: reconciler/v1\nkind: Task\nmetadata: {name: d}\nspec: {type: daemon, command: [a], restartPolicy: Never%s}\n"
    old = tasks_of(tmp_path, "old", base % "")
    new = tasks_of(tmp_path, "new", base % ", terminationGracePeriodSeconds: 7")
    applied = parse_applied({"d": {"file": "f", "line": 1, "document": applied_document(old["d"])}})
    daemons = {"d": DaemonState(finished_fingerprint=new["d"].process_fingerprint())}
    result = diff(applied, new, HostIdentity(), [], {}, time.time(), True, daemons)
    assert reconcile(Inputs(now=time.time(), tasks=new, daemons=daemons)) == []
    (change,) = result.changes
    assert [a.kind for a in change.actions] == ["none"]
    assert "finished" in change.actions[0].message
    # Without that ledger entry the decision starts it, and the diff says so.
    result = diff(applied, new, HostIdentity(), [], {}, time.time(), True, {})
    assert [a.kind for a in result.changes[0].actions] == ["start-daemon"]


def test_daemon_phase() -> None:
    now = 1_000_000.0
    run = RunView("r", "d", "daemon", 1, now, None, "fp", None, 30.0)
    stopping = RunView("s", "d", "daemon", 2, now, None, "fp", None, 30.0, stopping="changed")
    phase = daemon_phase
    assert phase(fingerprint="fp", state=DaemonState(), now=now, runs=[run]) == "running"
    assert phase(fingerprint="fp", state=DaemonState(), now=now, runs=[stopping]) == "stopping"
    assert phase(fingerprint="fp", state=DaemonState(), now=now, suspend=True) == "suspended"
    assert phase(fingerprint="fp", state=DaemonState(), now=now) == "starting"
    backoff = DaemonState(failures=2, not_before=now + 4, failed_fingerprint="fp")
    assert phase(fingerprint="fp", state=backoff, now=now) == "back-off"
    assert phase(fingerprint=None, state=backoff, now=now) == "back-off"
    assert phase(fingerprint="other", state=backoff, now=now) == "starting"  # a new version
    far = DaemonState(failures=2, not_before=now + BACKOFF_MAX_S + 5, failed_fingerprint="fp")
    assert phase(fingerprint="fp", state=far, now=now) == "starting"  # clock stepped back
    done = DaemonState(finished_fingerprint="fp")
    assert phase(fingerprint="fp", state=done, now=now) == "finished"
    assert phase(fingerprint=None, state=done, now=now) == "finished"
    assert phase(fingerprint="other", state=done, now=now) == "starting"
    assert phase(fingerprint="fp", state=DaemonState(gave_up="doc"), now=now, gave_up=True) == "crash-loop"
    assert phase(fingerprint=None, state=DaemonState(gave_up="doc"), now=now) == "crash-loop"
    assert phase(fingerprint="fp", state=DaemonState(gave_up="doc"), now=now, gave_up=False) == "starting"


def test_runs_file_one_parser_round_trip() -> None:
    v = RunView("r1", "web", "daemon", 42, 1000.5, None, "fp", 30, 5.0, stopping="changed",
                started_mono=12.0, attempt=1, replica=2)
    record = encode(v, "daemon", 42, 777)
    assert "started_mono" not in record
    (rec,) = parse_runs([record, {"run_id": "x"}, "junk"])  # the malformed are skipped
    assert rec.trigger == "daemon" and rec.start_ticks == 777 and rec.stopping == "changed"
    assert rec.view() == RunView("r1", "web", "daemon", 42, 1000.5, None, "fp", 30, 5.0,
                                 replica=2)  # adopted: its stop is decided afresh
    assert rec.view(keep_stopping=True).stopping == "changed"
    assert RunRecord.parse({**record, "replica": -1, "attempt": "2"}) == RunRecord(
        **{**rec.__dict__, "replica": 0, "attempt": 1})


def test_env_masked_and_hashed_in_one_place() -> None:
    doc = {"metadata": {"name": "t"}, "spec": {"command": ("a",), "env": {"K": "secret"}}}
    assert masked_document(doc)["spec"] == {"command": ["a"], "env": {"K": MASK}}
    assert hashed_document(doc)["spec"]["env"] == {"K": env_hash("secret")}
    assert "secret" not in json.dumps(hashed_document(doc))
    assert doc["spec"]["env"] == {"K": "secret"}  # the task's own document untouched


def test_next_due_one_rule() -> None:
    from datetime import UTC

    hourly, every = parse_schedule("@hourly"), parse_schedule("@every 90s")
    now = 1_800_000_123.7
    assert next_due(hourly, UTC, now) == 1_800_003_600
    assert next_due(hourly, UTC, now, cursor=1_800_003_600) == 1_800_007_200  # handled
    assert next_due(every, UTC, now) is None  # no anchor yet
    assert next_due(every, UTC, now, anchor=1_800_000_000) == 1_800_000_180
    assert next_due(parse_schedule("@reboot"), UTC, now) is None
    assert next_due(None, UTC, now) is None
