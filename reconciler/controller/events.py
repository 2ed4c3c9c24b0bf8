"""The controller's contract log events: one function per event, fields assembled here.

The names and fields are promises (PRODUCT.md, docs/BEHAVIOUR.md "Logs"); the units that
decide and act call these functions with what happened and never build a field dict.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from reconciler.controller.runs import rfc3339_zulu
from reconciler.obs import log_event
from reconciler.reconcile import RunView, WaitingRetry
from reconciler.spec import SpecError

Zone = ZoneInfo | Any  # datetime.UTC or a task's zone


@dataclass(frozen=True)
class RunEnd:
    """The end of one run, however it ended: exited, could not start, or ended while no
    controller watched it."""

    task: str
    run_id: str
    pid: int | None
    kind: str  # "cron" | "daemon"
    fingerprint: str
    due: int | None
    trigger: str
    started_at: float
    ended_at: float
    exit_code: int | None = None
    signal: str | None = None
    stop_reason: str | None = None  # set when the controller stopped it
    adopted: bool = False
    error: str | None = None  # the run could not start
    note: str | None = None  # replaces the message (e.g. "ended while no controller watched")
    attempt: int = 1  # 1 for a first try
    timeout_s: int | None = None  # the run's timeoutSeconds, for the reason of a time-out
    replica: int = 0  # which of a daemon's replicas
    oom_killed: bool = False  # the kernel killed it for its memoryMax

    @property
    def duration_s(self) -> float:
        return max(0.0, self.ended_at - self.started_at)


def _due(due: int | None, tz: Zone) -> str | None:
    return rfc3339_zulu(due, tz) if due is not None else None


def controller_stopping(signum: int) -> None:
    name = signal.Signals(signum).name
    log_event("controller.stopping", f"Received {name}; stopping all runs.", signal=name)


def controller_stopped(runs_left: int) -> None:
    log_event("controller.stopped", "Controller stopped.", runs_left=runs_left)


def controller_failed(exc: BaseException) -> None:
    log_event(
        "controller.failed",
        f"Unexpected error, stopping all runs: {exc!r}"[:500],
        level="error",
        error=repr(exc)[:500],
    )


def watch_fallback(reason: str) -> None:
    log_event("watch.fallback", reason, level="warning")


def spec_dir_invalid(spec_dir: str, message: str) -> None:
    log_event("spec.invalid", message, level="error", file=spec_dir, line=None, error=message)


def spec_invalid(err: SpecError) -> None:
    text = str(err)
    log_event(
        "spec.invalid",
        f"Invalid task document: {text}; the last good tasks of this file stay in force.",
        level="error",
        file=err.file,
        line=err.line,
        error=text,
        task=err.task,
    )


def spec_applied(
    added: Sequence[str], changed: Sequence[str], removed: Sequence[str], tasks: int, total: int
) -> None:
    log_event(
        "spec.applied",
        f"Applied {tasks} tasks for this host "
        f"({len(added)} added, {len(changed)} changed, {len(removed)} removed).",
        added=list(added),
        changed=list(changed),
        removed=list(removed),
        tasks=tasks,
        tasks_total=total,
    )


def run_output(run_id: str, task: str, stream: str, line: str) -> None:
    log_event("run.output", line, task=task, run_id=run_id, stream=stream)


def run_started(
    task: str, task_type: str, run_id: str, pid: int, due: int | None, trigger: str, tz: Zone,
    attempt: int = 1,
) -> None:
    fields: dict[str, Any] = {
        "task": task,
        "run_id": run_id,
        "pid": pid,
        "type": task_type,
        "due": _due(due, tz),
        "attempt": attempt,
    }
    if trigger != "schedule":
        fields["trigger"] = trigger
    log_event("run.started", f"Started {task} (pid {pid}).", **fields)


def run_exited(end: RunEnd, outcome: str, tz: Zone) -> None:
    fields: dict[str, Any] = {
        "task": end.task,
        "run_id": end.run_id,
        "pid": end.pid,
        "exit_code": end.exit_code,
        "signal": end.signal,
        "duration_s": round(end.duration_s, 3),
        "outcome": outcome,
        "due": _due(end.due, tz),
        "attempt": end.attempt,
    }
    if end.error is not None:
        fields["error"] = end.error
        message = f"Could not start {end.task}: {end.error}"
        level = "error"
    else:
        how = f"exit code {end.exit_code}" if end.exit_code is not None else (
            end.signal or "unknown status"
        )
        message = (
            f"{end.task} (pid {end.pid}) exited: {outcome}, {how}, after {end.duration_s:.3f}s."
        )
        level = "info" if outcome in ("succeeded", "stopped") else "warning"
    log_event("run.exited", end.note or message, level=level, **fields)


def run_skipped(
    task: str,
    due: int | None,
    reason: str,
    tz: Zone,
    *,
    summary: bool = False,
    count: int | None = None,
    due_last: int | None = None,
    host: str | None = None,
) -> None:
    """One skipped due time, or (summary) a range of them in one line; `count` None:
    not counted (a range summarised without enumerating it). `host`: the host that runs
    it instead (reason elsewhere)."""
    fields: dict[str, Any] = {"task": task, "due": _due(due, tz), "reason": reason}
    message = f"Skipped the run of {task} due at {fields['due']}: {reason}."
    if host is not None:
        fields["host"] = host
        message = f"Skipped the run of {task} due at {fields['due']}: it runs on {host}."
    if summary:
        fields["count"] = count
        if due_last is not None:
            fields["due_last"] = rfc3339_zulu(due_last, tz)
        message = (
            f"Skipped runs of {task} due from {fields['due']}"
            f" to {fields.get('due_last', 'later')}: {reason}."
        )
    log_event("run.skipped", message, level="warning", **fields)


def run_interrupted(task: str, due: int, tz: Zone) -> None:
    """A due run the previous controller was starting when it died, with no run recorded."""
    log_event(
        "run.skipped",
        f"The run of {task} due at {rfc3339_zulu(due, tz)} was being started when the "
        "previous controller stopped; it may have started unrecorded.",
        level="warning",
        task=task,
        due=rfc3339_zulu(due, tz),
        reason="interrupted",
    )


def run_stopping(view: RunView, reason: str, grace_s: float) -> None:
    log_event(
        "run.stopping",
        f"Stopping {view.task} (pid {view.pid}): {reason}.",
        task=view.task,
        run_id=view.run_id,
        pid=view.pid,
        reason=reason,
        grace_s=grace_s,
    )


def run_adopted(task: str, run_id: str, pid: int, due: int | None, tz: Zone) -> None:
    log_event(
        "run.adopted",
        f"Found {task} (pid {pid}) still running from the previous controller.",
        task=task,
        run_id=run_id,
        pid=pid,
        due=_due(due, tz),
    )


def run_retrying(
    task: str, run_id: str, due: int, retry: WaitingRetry, ended_at: float, tz: Zone
) -> None:
    delay = max(0.0, retry.not_before - ended_at)
    log_event(
        "run.retrying",
        f"{task} failed; attempt {retry.attempt} of its run due at {_due(due, tz)} "
        f"in {delay:.0f}s.",
        level="warning",
        task=task,
        run_id=run_id,
        due=_due(due, tz),
        attempt=retry.attempt,
        delay_s=round(delay, 3),
    )


def daemon_gave_up(task: str, restarts: int, window_s: float) -> None:
    log_event(
        "daemon.gave-up",
        f"Daemon {task} was restarted {restarts} times within {window_s:g}s; it is not "
        "restarted again until its document changes or `reconciler run` starts it.",
        level="error",
        task=task,
        restarts=restarts,
        window_s=window_s,
    )


def daemon_backoff(task: str, restart_in_s: float, failures: int) -> None:
    log_event(
        "daemon.backoff",
        f"Daemon {task} will be restarted in {restart_in_s:.0f}s.",
        level="warning",
        task=task,
        restart_in_s=round(restart_in_s, 3),
        failures=failures,
    )
