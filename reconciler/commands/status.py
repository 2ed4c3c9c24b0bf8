"""`reconciler status`: what the controller of a state directory is doing."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

from reconciler.commands import output as render
from reconciler.commands.options import add_state_dir, state_dir
from reconciler.state import ControllerRef, StateDir, StateError

if TYPE_CHECKING:
    from reconciler.state.applied import AppliedTask
    from reconciler.state.ledger import Ledger
    from reconciler.state.runs import RunRecord


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "status",
        help="show what the controller on this host is doing",
        description="Show the controller of a state directory: its tasks, running "
        "processes, last runs, next due times and spec errors. Exit 1 when no "
        "controller runs.",
    )
    add_state_dir(p)
    p.add_argument("-o", "--output", choices=["json"], help="output format")
    p.set_defaults(func=run)


def unreadable(sd: StateDir) -> str | None:
    """Why the state directory cannot be inspected by this user, if it cannot: no access,
    or a state file that is not a regular file (read, it could hang the command)."""
    if not sd.path.exists():
        return None
    if not os.access(sd.path, os.R_OK | os.X_OK):
        return (
            f"cannot read state directory {sd.path}: permission denied "
            "(run as the controller's user)"
        )
    try:
        sd.check_files()
    except StateError as exc:
        return str(exc)
    return None


def find(sd: StateDir, command: str) -> ControllerRef | None:
    """The verified controller, or None after saying why on stderr.

    The state directory must be one nobody else could have forged (`StateDir.untrusted`)
    and the pid it records must hold the lock with the recorded start time.
    """
    problem = unreadable(sd) or sd.untrusted()
    if problem:
        render.error(command, problem)
        return None
    try:
        ref = sd.find_controller()
    except StateError as exc:
        render.error(command, str(exc))
        return None
    if ref is None:
        render.error(command, f"no controller is running for state directory {sd.path}")
    return ref


def _daemon_state(
    task: AppliedTask, runs: list[RunRecord], ledger: Ledger, now: float
) -> dict[str, Any]:
    """The daemon's phase, by the rule `reconcile` starts daemons by (its version's
    fingerprint unknown here: the applied set keeps env hashed)."""
    from reconciler.reconcile import DaemonState, daemon_phase

    mine = [r.view(keep_stopping=True) for r in runs if r.task == task.name and r.kind == "daemon"]
    info = ledger.daemons.get(task.name, DaemonState())
    state = daemon_phase(
        fingerprint=None, state=info, now=now, runs=mine, suspend=bool(task.spec.get("suspend"))
    )
    return {
        "state": state,
        "failures": info.failures,
        "restart_at": info.not_before if state == "back-off" else None,
    }


def collect(sd: StateDir, ref: ControllerRef, now: float) -> dict[str, Any]:
    """Everything `status` shows, as JSON-ready data (env values never included)."""
    # Imported here, once a controller was found: `status` without one answers at once.
    from reconciler.forecast import applied_next_due
    from reconciler.state.applied import applied_schedule, read_applied
    from reconciler.state.history import last_run, read_legacy
    from reconciler.state.ledger import read_ledger
    from reconciler.state.runs import read_runs
    from reconciler.state.status import read_status

    info = ref.info
    status = read_status(sd)
    applied = read_applied(sd) or {}
    runs = read_runs(sd)
    ledger, _ = read_ledger(sd)
    # One file per task; a controller of an older version kept them all in one.
    legacy = read_legacy(sd)
    from reconciler.spec.zones import host_zone

    local = host_zone()
    zones: dict[str, tzinfo] = {n: applied_schedule(t).zone for n, t in applied.items()}
    started = info.get("started_at")
    started = float(started) if isinstance(started, (int, float)) else None

    tasks = []
    for name, task in sorted(applied.items()):
        zone = zones[name]
        nxt = applied_next_due(task, ledger, now) if task.type == "cron" else None
        last = last_run(sd, name, legacy)
        item: dict[str, Any] = {
            "name": name,
            "type": task.type,
            "schedule": task.spec.get("schedule"),
            "timezone": task.spec.get("timezone"),
            "suspend": bool(task.spec.get("suspend")),
            "file": task.file,
            "line": task.line,
            "running": sum(1 for r in runs if r.task == name),
            "next_due": render.rfc3339_offset(nxt, zone),
            "last_run": None,
        }
        waiting = ledger.retries.get(name)
        if waiting is not None:
            item["retry"] = {
                "attempt": waiting.attempt,
                "due": render.rfc3339_offset(waiting.due, zone),
                "at": render.rfc3339_offset(waiting.not_before, zone),
            }
        if task.type == "daemon":
            item["daemon"] = _daemon_state(task, runs, ledger, now)
            item["daemon"]["restart_at"] = render.rfc3339_offset(item["daemon"]["restart_at"], zone)
        if last is not None:
            item["last_run"] = {
                "run_id": last.get("run_id"),
                "trigger": last.get("trigger"),
                "due": render.rfc3339_offset(last.get("due"), zone),
                "started_at": render.rfc3339_offset(last.get("started_at"), zone),
                "ended_at": render.rfc3339_offset(last.get("ended_at"), zone),
                "outcome": last.get("outcome"),
                "exit_code": last.get("exit_code"),
                "signal": last.get("signal"),
                "duration_s": last.get("duration_s"),
                "error": last.get("error"),
                "reason": _reason(last),
            }
        tasks.append(item)

    running = [
        {
            "task": r.task,
            "run_id": r.run_id,
            "kind": r.kind,
            "pid": r.pid,
            "trigger": r.trigger,
            "due": render.rfc3339_offset(r.due, zones.get(r.task, local)),
            "started_at": render.rfc3339_offset(r.started_at, zones.get(r.task, local)),
            "age_s": round(max(0.0, now - r.started_at), 3),
            "stopping": r.stopping,
        }
        for r in runs
    ]
    return {
        "controller": {
            "pid": ref.pid,
            "version": info.get("version"),
            "started_at": render.rfc3339_offset(started, local),
            "uptime_s": round(now - started, 3) if started is not None else None,
            "spec_dir": info.get("spec_dir"),
            "state_dir": str(sd.path.absolute()),
            "identity": info.get("identity"),
            "watch": info.get("watch"),
            "http": info.get("http"),
        },
        "specs": {
            "loaded": status.loaded,
            "updated_at": render.rfc3339_offset(status.updated_at, local),
            "dir_error": status.dir_error,
            "errors": status.spec_errors,
            "tasks_total": status.tasks_total,
            "tasks_for_host": (
                status.tasks_for_host if status.tasks_for_host is not None else len(applied)
            ),
        },
        "running": running,
        "tasks": tasks,
        "notifications": status.notifications,
        "coordination": status.coordination or None,
    }


def _identity_text(identity: Any) -> str:
    if not isinstance(identity, Mapping):
        return "-"
    parts = [str(a) for a in identity.get("addresses") or []]
    parts += [str(n) for n in identity.get("names") or []]
    return ", ".join(parts) or "(no addresses or names)"


def _error_text(err: Any) -> str:
    if isinstance(err, Mapping):
        return render.safe(str(err.get("error") or err.get("message") or err))
    return render.safe(str(err))


def _reason(last: Mapping[str, Any]) -> str:
    """The run's reason as recorded, or worded from its outcome (older records)."""
    from reconciler.history import reason_of

    return str(last.get("reason") or reason_of(
        outcome=str(last.get("outcome") or "?"), exit_code=last.get("exit_code"),
        signal=last.get("signal"), error=last.get("error"),
    ))


def _last_text(last: Mapping[str, Any] | None, ended: float | None, now: float) -> list[str]:
    """LAST RUN, RESULT, DURATION cells."""
    if last is None:
        return ["-", "-", "-"]
    outcome = str(last.get("outcome") or "?")
    reason = last.get("reason") or _reason(last)
    result = render.clip(f"{outcome}: {reason}", 60)
    when = render.relative(ended, now) if ended is not None else "-"
    dur = last.get("duration_s")
    return [when, result, render.seconds_text(dur if isinstance(dur, (int, float)) else None)]


def print_human(data: dict[str, Any], now: float) -> None:
    c = data["controller"]
    s = data["specs"]
    up = render.duration(c["uptime_s"]) if c["uptime_s"] is not None else "?"
    lines = [
        ("Controller", f"running, pid {c['pid']}, up {up} (since {c['started_at']})"),
        ("Version", str(c["version"] or "?")),
        ("Spec dir", render.safe(str(c["spec_dir"]))),
        ("State dir", render.safe(c["state_dir"])),
        ("Host", _identity_text(c["identity"])),
    ]
    if not s["loaded"]:
        lines.append(("Tasks", "loading"))
    else:
        lines.append(
            ("Tasks", f"{s['tasks_for_host']} for this host, {s['tasks_total']} in the documents")
        )
    n_err = len(s["errors"]) + (1 if s["dir_error"] else 0)
    lines.append(("Spec errors", str(n_err) if n_err else "none"))
    coord = data.get("coordination")
    if coord:
        state = "reachable" if coord.get("reachable") else "NOT reachable"
        since = coord.get("since")
        when = f" since {render.relative(since, now)}" if isinstance(since, int | float) else ""
        locks = ", ".join(coord.get("locks") or []) or "none"
        skipped = coord.get("skipped_no_coordination") or 0
        lines.append(("Coordination", f"fleet {coord.get('fleet')}, etcd {state}{when}, "
                      f"locks: {locks}, {skipped} due times skipped (no-coordination)"))
    sent = data.get("notifications") or {}
    if sent.get("failed") or sent.get("dropped"):
        lines.append(("Notifications", f"{sent.get('failed', 0)} failed, "
                      f"{sent.get('dropped', 0)} dropped, {sent.get('delivered', 0)} delivered"))
    width = max(len(k) for k, _ in lines) + 2
    for key, value in lines:
        print(f"{(key + ':').ljust(width)}{value}")
    if s["dir_error"]:
        print(f"  {render.safe(str(s['dir_error']))}")
    for err in s["errors"]:
        print(f"  {_error_text(err)}")

    print()
    if data["running"]:
        print(f"Running ({len(data['running'])}):")
        rows = []
        for r in data["running"]:
            age = render.duration(r["age_s"])
            if r["stopping"]:
                age += f" (stopping: {r['stopping']})"
            rows.append([r["task"], r["run_id"], str(r["pid"]), r["trigger"], r["due"] or "-", age])
        render.print_table(["TASK", "RUN ID", "PID", "TRIGGER", "DUE", "AGE"], rows)
    else:
        print("Running: nothing")

    print()
    if not data["tasks"]:
        print("Tasks: none for this host")
        return
    print("Tasks:")
    rows = []
    for t in data["tasks"]:
        sched = "-"
        if t["type"] == "cron":
            sched = render.clip(str(t["schedule"]), 40)
            if t["timezone"]:
                sched += f" ({t['timezone']})"
        if t["type"] == "daemon":
            d = t["daemon"]
            nxt = d["state"]
            if d["state"] == "back-off" and d["restart_at"]:
                at = datetime.fromisoformat(d["restart_at"]).timestamp()
                nxt += f": restart {render.relative(at, now)} ({d['failures']} failures)"
        elif t["suspend"]:
            nxt = "suspended"
        elif t.get("retry"):
            at = datetime.fromisoformat(t["retry"]["at"]).timestamp()
            nxt = f"retry (attempt {t['retry']['attempt']}) {render.relative(at, now)}"
        elif t["next_due"]:
            nxt = t["next_due"]
        elif str(t["schedule"]).startswith("@reboot"):
            nxt = "@reboot"
        else:
            nxt = "-"
        last = t["last_run"]
        ended = datetime.fromisoformat(last["ended_at"]).timestamp() if last and last[
            "ended_at"] else None
        rows.append([t["name"], t["type"], sched, nxt, str(t["running"])]
                    + _last_text(last, ended, now))
    render.print_table(
        ["NAME", "TYPE", "SCHEDULE", "NEXT", "RUNNING", "LAST RUN", "RESULT", "DURATION"], rows
    )


def run(args: argparse.Namespace) -> int:
    sd = state_dir(args)
    ref = find(sd, "status")
    if ref is None:
        return 1
    now = time.time()
    try:
        data = collect(sd, ref, now)
    except StateError as exc:  # a state file swapped for a FIFO since the check
        render.error("status", str(exc))
        return 1
    if args.output == "json":
        render.dump_json(render.camel_keys(data))
        return 0
    print_human(data, now)
    sys.stdout.flush()
    return 0
