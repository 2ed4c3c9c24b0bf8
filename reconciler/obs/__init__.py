"""Observability: JSON logs with the contract's event names, Prometheus metrics, HTTP.

Logs
----
``setup_logging(fmt, stream, level)`` once at start, then ``log_event(event, message,
level="info", **fields)`` from any thread. JSON lines look like::

    {"timestamp":"2026-11-25T11:46:22.123Z","level":"info","message":"Run started.",
     "event":"run.started","task":"rotate-logs","run_id":"...","pid":4242,...}

(one line; wrapped here). Lines are ASCII: other characters are ``\\uXXXX`` escapes.
Levels are ``debug``, ``info``, ``warning``, ``error``, ``critical``. A field that
collides with ``timestamp``/``level``/``message``/``event`` is written as ``<name>_``.
A field named ``env`` is never logged with its values: the controller never passes one,
and if one arrives its value becomes ``{"keys": [...], "values": "<redacted>"}`` (also
inside nested mappings). The text format, ``--log-format text``, is for people::

    2026-11-25T11:46:22.123Z info  run.started task=rotate-logs run_id=... Run started.

with every control character (newline, CR, tab, ESC, DEL, C1, U+2028/9) escaped as
``\\n``, ``\\r``, ``\\t``, ``\\xNN`` or ``\\uNNNN`` so no task output can start a line of its
own. Nobody who logs waits for stdout: lines are queued (bounded) and written by one
thread. When stdout cannot keep up, ``run.output`` lines are dropped first, other events
last; drops are counted in ``reconciler_log_lines_dropped_total`` and told in one
``log.dropped`` line once the sink has caught up. A stdout whose reader went away (EPIPE)
is not fatal: lines are dropped and counted the same way. ``flush_logs(timeout)`` waits
for the queue; at exit it gets up to 2 s.

Metrics
-------
All in the controller's own registry, exposed at ``/metrics`` (text format 0.0.4).
``task`` is the task's name (never its command); counters keep their values across
reloads and a removed task's counters stay (only its gauges go).

=============================================  =========  ==================================
name                                           type       meaning
=============================================  =========  ==================================
reconciler_runs_started_total{task,trigger}    counter    runs started; trigger: schedule,
                                                          manual (``reconciler run``),
                                                          reboot, restart (daemon)
reconciler_runs_finished_total{task,outcome}   counter    runs ended; outcome: succeeded,
                                                          failed, timed-out, stopped
reconciler_run_duration_seconds{task}          histogram  run wall time, buckets 0.1 s..1 d
reconciler_runs_skipped_total{task,reason}     counter    due runs not started; reason as
                                                          in ``run.skipped``
reconciler_running_processes{task}             gauge      runs alive now (adopted included)
reconciler_last_success_timestamp_seconds      gauge      end time of the last successful
{task}                                                    run (absent until one succeeds)
reconciler_spec_errors                         gauge      spec files invalid now
reconciler_spec_invalid_total                  counter    failed loads of a spec file
reconciler_tasks_loaded                        gauge      tasks in force
reconciler_tick_lag_seconds                    histogram  lateness of loop ticks
reconciler_last_tick_timestamp_seconds         gauge      time of the last loop tick
reconciler_daemon_restarts_total{task}         counter    daemons restarted after exiting
reconciler_build_info{version}                 gauge      always 1
reconciler_log_lines_dropped_total             counter    log lines not written: stdout too
                                                          slow or stopped (``run.output``
                                                          first), closed, or full; see
                                                          ``log.dropped``
process_*, python_info                         various    prometheus_client's process and
                                                          platform collectors
=============================================  =========  ==================================

For each task the counters of every outcome, of the contract's skip reasons and of
daemon restarts exist at 0 from the task's first appearance (``declare_tasks`` makes
that happen at load time), so ``increase()`` counts the first failure too. The
``*_created`` series of prometheus_client are left out.

HTTP
----
``--http HOST:PORT`` serves GET and HEAD on ``/metrics``, ``/healthz`` (200 ``ok`` or
503) and ``/readyz`` (200 or 503); other methods 405 with ``Allow: GET, HEAD``, other
paths 404. No request changes state; access logs are off.
"""

from reconciler.obs.http import HttpServer, parse_http_addr, serve_http
from reconciler.obs.logs import (
    dropped_lines,
    escape_control,
    flush_logs,
    log_event,
    setup_logging,
)
from reconciler.obs.metrics import Metrics

__all__ = [
    "HttpServer",
    "Metrics",
    "dropped_lines",
    "escape_control",
    "flush_logs",
    "log_event",
    "parse_http_addr",
    "serve_http",
    "setup_logging",
]
