"""A run's record: what is known at its start, what its end adds, and the human reason."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# TASK-YYYYMMDDTHHMMSSZ-XXXXXX (docs/BEHAVIOUR.md "Logs"): the task is in the id.
RUN_ID = re.compile(r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)-\d{8}T\d{6}Z-[0-9a-f]{6}$")

STOP_REASONS = {
    "removed": "task removed",
    "changed": "task changed",
    "replaced": "replaced by a newer run",
    "suspended": "task suspended",
    "duplicate": "duplicate run",
    "shutdown": "controller shut down",
}


def valid_run_id(run_id: str) -> bool:
    return RUN_ID.match(run_id) is not None


def task_of_run_id(run_id: str) -> str | None:
    found = RUN_ID.match(run_id)
    return found.group(1) if found else None


@dataclass(frozen=True)
class RunStart:
    """A run that started (or tried to): what its record holds from the start."""

    run_id: str
    task: str
    type: str  # cron | daemon
    trigger: str
    attempt: int
    due: int | None
    started: float
    pid: int | None
    output_limit: int

    def record(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "task": self.task, "type": self.type,
            "trigger": self.trigger, "attempt": self.attempt, "due": self.due,
            "started": self.started, "ended": None, "duration_s": None, "pid": self.pid,
            "exit_code": None, "signal": None, "outcome": "running", "reason": None,
        }


@dataclass(frozen=True)
class RunFinish:
    """The end of a run, and how many runs of its task the history keeps."""

    start: RunStart
    ended: float
    exit_code: int | None
    signal: str | None
    outcome: str
    reason: str
    keep_succeeded: int = 20
    keep_failed: int = 20

    def record(self) -> dict[str, Any]:
        return {
            **self.start.record(),
            "ended": self.ended,
            "duration_s": round(max(0.0, self.ended - self.start.started), 3),
            "exit_code": self.exit_code,
            "signal": self.signal,
            "outcome": self.outcome,
            "reason": self.reason,
        }


def reason_of(
    *,
    outcome: str,
    exit_code: int | None,
    signal: str | None,
    stop_reason: str | None = None,
    error: str | None = None,
    timeout_s: int | None = None,
) -> str:
    """One human sentence: `exit code 3`, `command not found: /usr/bin/bakup`,
    `timed out after 2 s`, `killed by SIGKILL`, `stopped: task removed`."""
    if error:
        return error
    if outcome == "timed-out":
        return f"timed out after {timeout_s} s" if timeout_s else "timed out"
    if outcome == "stopped" and stop_reason:
        return f"stopped: {STOP_REASONS.get(stop_reason, stop_reason)}"
    if outcome == "unknown":
        return "ended while no controller watched it"
    if signal:
        return f"killed by {signal}"
    if exit_code is not None:
        return f"exit code {exit_code}"
    return "ended, status unknown"
