"""Prometheus metrics of one controller, in a registry of their own (no global state).

The controller keeps one :class:`Metrics` for its whole life, so counters never reset
on a reload; :meth:`Metrics.forget_task` only drops gauge series of a removed task.
Every method is thread-safe (prometheus_client's metrics lock themselves; the few
multi-step updates here take :attr:`Metrics._lock`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from reconciler import __version__
from reconciler.obs.logs import dropped_lines

__all__ = ["CONTENT_TYPE", "DURATION_BUCKETS", "TICK_LAG_BUCKETS", "Metrics", "OUTCOMES"]

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

# Cron jobs last from a blink to hours: 0.1 s .. 1 day.
DURATION_BUCKETS = (
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0,
)  # fmt: skip
# The loop wakes every second; lag past a second means missed due times are near.
TICK_LAG_BUCKETS = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip

OUTCOMES = ("succeeded", "failed", "timed-out", "oom-killed", "stopped")
# The contract's skip reasons, created at 0 with a task's first series (see _touch).
SKIP_REASONS = ("max-concurrency", "deadline", "coalesced", "suspended")


class _Registry(CollectorRegistry):
    """A registry that leaves out prometheus_client's ``*_created`` samples.

    Prometheus 2.x stores them as extra gauge series per counter and histogram child,
    which doubles the series count for nothing an alert uses. Switching them off in
    prometheus_client is process-global; filtering here keeps it per registry.
    """

    def collect(self) -> Iterator[Metric]:
        for metric in super().collect():
            if metric.type in ("counter", "histogram", "summary"):
                created = metric.name + "_created"
                if any(s.name == created for s in metric.samples):
                    clone = Metric(metric.name, metric.documentation, metric.type, metric.unit)
                    clone.samples = [s for s in metric.samples if s.name != created]
                    metric = clone
            yield metric


class _DroppedLogLines:
    """Exports the log sink's count of lines not written (see reconciler.obs.logs)."""

    def collect(self) -> Iterable[Metric]:
        yield CounterMetricFamily(
            "reconciler_log_lines_dropped",
            "Log lines not written: stdout too slow or stopped (run.output lines first), "
            "closed pipe, full disk.",
            value=dropped_lines(),
        )


# The failure series of every loaded task, at 0 from its load (see Metrics.declare_tasks).
DECLARED_OUTCOMES = ("failed", "timed-out")


class _WithDeclared:
    """reconciler_runs_finished_total as its counter has it, plus a 0 for each failure
    series of a declared task that the counter has not made yet.

    Made when scraped, not at load: 20,000 counter children for 10,000 tasks cost 13 MB
    and half a second of the loop before its first tick.
    """

    def __init__(self, counter: Counter, declared: Callable[[], list[str]]) -> None:
        self._counter = counter
        self._declared = declared

    def describe(self) -> Iterable[Metric]:
        return self._counter.describe()

    def collect(self) -> Iterable[Metric]:
        for metric in self._counter.collect():
            total = metric.name + "_total"
            made = {
                (s.labels.get("task"), s.labels.get("outcome"))
                for s in metric.samples
                if s.name == total
            }
            for task in self._declared():
                for outcome in DECLARED_OUTCOMES:
                    if (task, outcome) not in made:
                        metric.add_sample(total, {"task": task, "outcome": outcome}, 0.0)
            yield metric


class Metrics:
    def __init__(self) -> None:
        self.registry: CollectorRegistry = _Registry(auto_describe=True)
        r = self.registry
        self._lock = threading.Lock()
        self._known_tasks: set[str] = set()
        self._declared: dict[str, None] = {}  # in order of declaration
        self._running_tasks: set[str] = set()

        self._started = Counter(
            "reconciler_runs_started_total",
            "Runs started, by task and trigger (schedule, manual, reboot, restart).",
            ["task", "trigger"],
            registry=r,
        )
        self._finished = Counter(
            "reconciler_runs_finished_total",
            "Runs that ended, by task and outcome (succeeded, failed, timed-out, stopped).",
            ["task", "outcome"],
            registry=None,
        )
        r.register(_WithDeclared(self._finished, self._declared_tasks))
        self._duration = Histogram(
            "reconciler_run_duration_seconds",
            "Wall-clock duration of finished runs.",
            ["task"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self._skipped = Counter(
            "reconciler_runs_skipped_total",
            "Due runs that were not started, by task and reason.",
            ["task", "reason"],
            registry=r,
        )
        self._running = Gauge(
            "reconciler_running_processes",
            "Runs alive now (own and adopted), by task.",
            ["task"],
            registry=r,
        )
        self._last_success = Gauge(
            "reconciler_last_success_timestamp_seconds",
            "Unix time at which the last successful run of the task ended.",
            ["task"],
            registry=r,
        )
        self._spec_errors = Gauge(
            "reconciler_spec_errors",
            "Spec files that are invalid now (their last valid tasks stay in force).",
            registry=r,
        )
        self._spec_invalid = Counter(
            "reconciler_spec_invalid_total",
            "Loads of a spec file that failed validation.",
            registry=r,
        )
        self._tasks_loaded = Gauge(
            "reconciler_tasks_loaded",
            "Tasks in force (valid, all hosts) after the last load.",
            registry=r,
        )
        self._tick_lag = Histogram(
            "reconciler_tick_lag_seconds",
            "How late the controller loop ran a tick after the second it was due.",
            buckets=TICK_LAG_BUCKETS,
            registry=r,
        )
        self._last_tick = Gauge(
            "reconciler_last_tick_timestamp_seconds",
            "Unix time of the controller loop's last tick.",
            registry=r,
        )
        self._daemon_restarts = Counter(
            "reconciler_daemon_restarts_total",
            "Daemon processes restarted after they exited.",
            ["task"],
            registry=r,
        )
        self._daemon_gave_up = Gauge(
            "reconciler_daemon_gave_up",
            "1 while a daemon is no longer restarted after a crash loop (crashLoop).",
            ["task"],
            registry=r,
        )
        self._retries_waiting = Gauge(
            "reconciler_retries_waiting",
            "Failed cron runs waiting for their next attempt (retry).",
            registry=r,
        )
        self._state_write_errors = Counter(
            "reconciler_state_write_errors_total",
            "Failed writes of a file in the state directory (a full disk...), by file.",
            ["file"],
            registry=r,
        )
        self._notifications_failed = Counter(
            "reconciler_notifications_failed",
            "Notifications and healthcheck pings not delivered after their last try, by "
            "task and kind (webhook, command, apprise, healthcheck).",
            ["task", "kind"],
            registry=r,
        )
        self._notifications_dropped = Counter(
            "reconciler_notifications_dropped",
            "Notifications and pings dropped undelivered: queue full or shutdown, by kind.",
            ["kind"],
            registry=r,
        )
        Info("reconciler_build", "Version of the running controller.", registry=r).info(
            {"version": __version__}
        )
        r.register(_DroppedLogLines())
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)

    # -- series that exist at 0 --------------------------------------------------------

    def _touch(self, task: str) -> None:
        """Create a task's counter series at 0 the first time the task shows up.

        ``increase()`` cannot see the first increment of a series that appears with
        value 1; a series already scraped at 0 makes "3 failures in an hour" count 3.
        """
        if task in self._known_tasks:
            return
        with self._lock:
            if task in self._known_tasks:
                return
            self._known_tasks.add(task)
        for outcome in OUTCOMES:
            self._finished.labels(task, outcome)
        for reason in SKIP_REASONS:
            self._skipped.labels(task, reason)
        self._daemon_restarts.labels(task)

    def declare_tasks(self, tasks: Iterable[str]) -> None:
        """Export the failure series of loaded tasks at 0 (call after each spec load).

        Only the series "a task is failing" alerts count from: every series of every
        task would cost ~6 KB each, 60 MB for 10,000 tasks. The rest appear at a task's
        first run (see `_touch`). Only the names are kept here: the zeros are made at
        each scrape (`_WithDeclared`), so a load costs no counter children.
        """
        with self._lock:
            self._declared.update(dict.fromkeys(tasks))

    def _declared_tasks(self) -> list[str]:
        """Declared tasks, for the scrape (on the HTTP server's thread)."""
        with self._lock:
            return list(self._declared)

    # -- runs ------------------------------------------------------------------------

    def run_started(self, task: str, trigger: str = "schedule") -> None:
        self._touch(task)
        self._started.labels(task, trigger).inc()

    def run_finished(self, task: str, outcome: str, duration_s: float, ended_at: float) -> None:
        self._touch(task)
        self._finished.labels(task, outcome).inc()
        self._duration.labels(task).observe(max(0.0, duration_s))
        if outcome == "succeeded":
            self._last_success.labels(task).set(ended_at)

    def run_skipped(self, task: str, reason: str) -> None:
        self._touch(task)
        self._skipped.labels(task, reason).inc()

    def daemon_restart(self, task: str) -> None:
        self._touch(task)
        self._daemon_restarts.labels(task).inc()

    def set_gave_up(self, task: str, gave_up: bool) -> None:
        self._daemon_gave_up.labels(task).set(1 if gave_up else 0)

    def set_retries_waiting(self, n: int) -> None:
        self._retries_waiting.set(n)

    # -- notifications ---------------------------------------------------------------

    def notification_failed(self, task: str, kind: str) -> None:
        self._notifications_failed.labels(task, kind).inc()

    def notification_dropped(self, kind: str) -> None:
        self._notifications_dropped.labels(kind).inc()

    # -- gauges ----------------------------------------------------------------------

    def set_running(self, counts: Mapping[str, int]) -> None:
        """Running processes by task; tasks seen before and absent now go to 0."""
        with self._lock:
            for task in self._running_tasks - counts.keys():
                self._running.labels(task).set(0)
            for task, n in counts.items():
                self._running.labels(task).set(n)
            self._running_tasks.update(counts.keys())

    def forget_task(self, task: str) -> None:
        """Drop a removed task's gauge series; its counters keep their values (a
        counter that vanished and came back would look like a reset)."""
        with self._lock:
            self._running_tasks.discard(task)
            for gauge in (self._running, self._last_success, self._daemon_gave_up):
                with contextlib.suppress(KeyError):
                    gauge.remove(task)

    def set_spec_errors(self, n: int) -> None:
        self._spec_errors.set(n)

    def spec_error(self) -> None:
        self._spec_invalid.inc()

    def state_write_error(self, file: str) -> None:
        self._state_write_errors.labels(file).inc()

    def set_tasks_loaded(self, n: int) -> None:
        self._tasks_loaded.set(n)

    def tick(self, lag_s: float, now: float) -> None:
        self._tick_lag.observe(max(0.0, lag_s))
        self._last_tick.set(now)

    # -- exposition ------------------------------------------------------------------

    def render(self) -> bytes:
        """Prometheus text exposition format 0.0.4 (:data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)
