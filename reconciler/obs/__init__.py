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
All in the controller's own registry (``Metrics``), exposed at ``/metrics``. The table of
every metric, its type, labels and meaning is docs/METRICS.md (checked against this
class by tests/test_metrics_doc.py).

HTTP
----
``--http HOST:PORT`` serves GET and HEAD on ``/metrics``, ``/healthz`` (200 ``ok`` or
503) and ``/readyz`` (200 or 503); other methods 405 with ``Allow: GET, HEAD``, other
paths 404. No request changes state; access logs are off.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.lazy import lazy_names
from reconciler.obs.logs import (
    dropped_lines,
    escape_control,
    flush_logs,
    log_event,
    setup_logging,
)

if TYPE_CHECKING:
    from reconciler.obs.http import HttpServer, parse_http_addr, serve_http
    from reconciler.obs.metrics import Metrics

# Imported on first use (module __getattr__): whoever only logs does not pay for
# prometheus_client, and a controller without --http not for the HTTP server.
_HOME = {
    "HttpServer": "http",
    "parse_http_addr": "httpaddr",
    "serve_http": "http",
    "Metrics": "metrics",
}


__getattr__, __dir__ = lazy_names(__name__, globals(), _HOME)


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
