"""What follows a run's start and end: its next attempt, notifications, dead-man pings.

Decided here, on the loop, from the run's outcome and its task's document; delivered off
the loop by reconciler.notify (a bounded queue, never waited on). The rules:

- A failed cron run (failed, timed-out, oom-killed) of a scheduled due time, or a retry
  of one, gets another attempt while `retry.limit` allows: the same due time, `attempt`
  + 1, `delaySeconds` (doubling, at most `maxDelaySeconds`) after the failed attempt's
  end (`run.retrying`). Manual, `@reboot` and daemon runs are not retried.
- `failure` is sent once per due time, after its last attempt; `success` after a
  success; `recovery` for the first success after one or more failures; `start` when a
  run starts; `gave-up` when a daemon stops being restarted after a crash loop. A stopped
  run (shutdown, removal, Replace) is none of these.
- `healthcheck.url`: GET URL/start at start; at the end POST URL on success or URL/fail on
  failure, with the last 10 KiB of output. Never the success URL for a failure.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC
from typing import Any

from reconciler.controller import events
from reconciler.controller.events import RunEnd
from reconciler.controller.journal import DueJournal
from reconciler.controller.runs import rfc3339_zulu
from reconciler.reconcile import RetryPolicy, WaitingRetry, retry_at
from reconciler.spec import Task

FAILED = frozenset({"failed", "timed-out", "oom-killed"})
RETRIED_TRIGGERS = frozenset({"schedule", "retry"})

OutputCallback = Callable[[str, str, str, str], None]


class FollowUp:
    def __init__(self, journal: DueJournal, notifier: Any | None, host: str) -> None:
        self.journal = journal
        self.notifier = notifier  # reconciler.notify.Notifier, or None: nothing to send
        self.host = host
        self._tails: dict[str, Any] = {}  # run_id -> notify.OutputTail, for tasks that notify
        self._lock = threading.Lock()

    def tee(self, inner: OutputCallback) -> OutputCallback:
        """The output callback, also keeping the last lines of runs that notify."""

        def both(run_id: str, task: str, stream: str, line: str) -> None:
            inner(run_id, task, stream, line)
            tail = self._tails.get(run_id)
            if tail is not None:
                tail.add(line)

        return both

    # --- a run starts ---------------------------------------------------------------------

    def started(self, task: Task, record: dict[str, Any]) -> None:
        if self.notifier is None or not (task.notify or task.healthcheck_url):
            return
        from reconciler.notify import OutputTail

        with self._lock:
            self._tails[record["run_id"]] = OutputTail()
        if task.healthcheck_url:
            self.notifier.ping(task.healthcheck_url, "start", task=task.name)
        self._send(task, "start", record, None)

    # --- a run ends -------------------------------------------------------------------------

    def ended(self, end: RunEnd, outcome: str, reason: str, task: Task | None) -> None:
        with self._lock:
            tail = self._tails.pop(end.run_id, None)
        if task is None or outcome in ("stopped", "unknown"):
            return
        failed = outcome in FAILED
        final = not (failed and self._retry(end, task))  # else: another attempt follows
        record = _record(end, outcome, reason, task)
        if task.healthcheck_url and self.notifier is not None:
            body = tail.tail_bytes() if tail is not None else b""
            phase = "fail" if failed else "success"
            self.notifier.ping(task.healthcheck_url, phase, task=task.name, body=body)
        if not final:
            return
        recovered = self.journal.settled(task.name, failed)
        if failed:
            self._send(task, "failure", record, tail)
        else:
            self._send(task, "success", record, tail)
            if recovered:
                self._send(task, "recovery", record, tail)

    def gave_up(self, task: Task, record: dict[str, Any]) -> None:
        self._send(task, "gave-up", record, None)

    def _retry(self, end: RunEnd, task: Task) -> bool:
        """Schedule the next attempt if one is left; True when it was."""
        if end.kind != "cron" or end.trigger not in RETRIED_TRIGGERS or end.due is None:
            return False
        policy = task.retry
        if policy is None:
            return False
        at = retry_at(
            RetryPolicy(policy.limit, policy.delay_seconds, policy.max_delay_seconds),
            end.attempt,
            end.ended_at,
        )
        if at is None:
            return False
        retry = WaitingRetry(due=end.due, attempt=end.attempt + 1, not_before=at)
        self.journal.set_retry(task.name, retry)
        events.run_retrying(task.name, end.run_id, end.due, retry, end.ended_at, task.timezone)
        return True

    def _send(self, task: Task, event: str, record: dict[str, Any], tail: Any) -> None:
        if self.notifier is None or not task.notify:
            return
        from reconciler.notify import build_message

        message = build_message(task.name, event, record, task.notify, tail, self.host)  # type: ignore[arg-type]
        if message is not None:
            self.notifier.submit(message)


def _record(end: RunEnd, outcome: str, reason: str, task: Task | None) -> dict[str, Any]:
    """The run record notifications carry (the contract's run record fields)."""
    tz = task.timezone if task is not None else UTC
    return {
        "run_id": end.run_id,
        "task": end.task,
        "trigger": end.trigger,
        "attempt": end.attempt,
        "due": rfc3339_zulu(end.due, tz) if end.due is not None else None,
        "started": rfc3339_zulu(end.started_at, tz),
        "ended": rfc3339_zulu(end.ended_at, tz),
        "duration_s": round(end.duration_s, 3),
        "pid": end.pid,
        "exit_code": end.exit_code,
        "signal": end.signal,
        "outcome": outcome,
        "reason": reason,
    }


def start_record(task: Task, run_id: str, trigger: str, attempt: int, due: int | None,
                 started: float, pid: int | None) -> dict[str, Any]:
    """The run record of a run that just started (for `start` notifications)."""
    tz = task.timezone
    return {
        "run_id": run_id,
        "task": task.name,
        "trigger": trigger,
        "attempt": attempt,
        "due": rfc3339_zulu(due, tz) if due is not None else None,
        "started": rfc3339_zulu(started, tz),
        "ended": None,
        "duration_s": None,
        "pid": pid,
        "exit_code": None,
        "signal": None,
        "outcome": "running",
        "reason": None,
    }
