"""Skipped due times, as the logs tell them: bounded per task and tick, a suspension once."""

from __future__ import annotations

from datetime import UTC

from reconciler.controller import events
from reconciler.obs import Metrics
from reconciler.reconcile import SkipRun
from reconciler.spec import Task

SKIP_LOG_LIMIT = 100  # per task and tick; beyond that one summary line


class SkipReport:
    """Logs skipped due times: at most SKIP_LOG_LIMIT lines per task and tick, and a
    suspension once when it is first met, not every second."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._suspended: set[str] = set()

    def unsuspended(self, names: set[str]) -> None:
        """These tasks are no longer suspended: a later suspension is logged anew."""
        self._suspended -= names

    def report(self, action: SkipRun, task: Task | None, counts: dict[str, int]) -> None:
        self.metrics.run_skipped(action.task, action.reason)
        if action.reason == "suspended":
            if action.task in self._suspended:
                return  # logged when the suspension was first met
            self._suspended.add(action.task)
        n = counts.get(action.task, 0) + 1
        counts[action.task] = n
        if n > SKIP_LOG_LIMIT:
            return
        events.run_skipped(
            action.task,
            action.due,
            action.reason,
            task.timezone if task is not None else UTC,
            summary=action.count != 1 or n == SKIP_LOG_LIMIT,
            count=action.count,
            due_last=action.due_last,
            host=action.host,
        )
