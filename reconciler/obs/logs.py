"""Structured logs: one JSON object (or one escaped text line) per log record.

The contract's shape is ``{"timestamp", "level", "message", "event", ...fields}`` in that
order. Records are formatted with python-json-logger's ``JsonFormatter``; this module
only decides the key order, the timestamp form (RFC 3339, UTC, milliseconds, ``Z``), the
lowercase level, and a few safety rules:

* Lines are pure ASCII (``ensure_ascii``), so a stream with any encoding can take them,
  and a task's output is always one JSON string value: it cannot start a new line.
* Lone surrogates (from ``surrogateescape`` decoding, e.g. file names) are rewritten as
  ``\\xNN``/``\\uNNNN`` text before encoding: emitted as ``\\udcNN`` JSON escapes they
  make strict parsers (serde_json, used by Vector) reject the whole line.
* A field named ``env`` never carries values: the controller never passes one, and if
  anything does, only the variable names are logged (also inside nested mappings).
* Nobody who logs ever waits for stdout. A line is formatted in the caller's thread and
  put on a bounded queue; one daemon thread writes whole lines to (a duplicate of) the
  stream's descriptor. When the reader is slow or stopped, ``run.output`` lines are
  dropped first (past 256 KiB queued, until the queue has drained), other events last
  (past 8 MiB); drops are counted (``dropped_lines_by_kind``, exported as
  ``reconciler_log_lines_dropped_total{kind}``) and, once the writer has caught up, told
  in one ``log.dropped`` line. A stdout whose reader went away (EPIPE) is swallowed and
  counted. At exit ``logging.shutdown`` closes the handler: pending lines get up to 2 s.
  An in-memory stream (no descriptor, as in tests) is written at once, under a lock.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Literal, TextIO

from reconciler.obs.logformat import (
    LOGGER_NAME,
    OBS_ATTR,
    JsonLineFormatter,
    TextLineFormatter,
    escape_control,
    format_timestamp,
)
from reconciler.obs.logsink import (
    CLOSE_TIMEOUT_S,
    _LineHandler,
    dropped_lines,
    dropped_lines_by_kind,
)

__all__ = [
    "LOGGER_NAME",
    "JsonLineFormatter",
    "TextLineFormatter",
    "dropped_lines",
    "dropped_lines_by_kind",
    "escape_control",
    "flush_logs",
    "format_timestamp",
    "log_event",
    "setup_logging",
]

_logger = logging.getLogger(LOGGER_NAME)

_LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

# --- public API -------------------------------------------------------------------------

_setup_lock = threading.Lock()


def setup_logging(
    fmt: Literal["json", "text"] = "json",
    stream: TextIO | None = None,
    level: str = "INFO",
) -> None:
    """Send the ``reconciler`` logger's records to ``stream`` (default: stdout).

    Idempotent: calling again replaces the handler this function installed (so a test
    or a re-exec can switch stream or format) and never stacks a second one. Only the
    ``reconciler`` logger is touched; it stops propagating so the root logger's handlers
    do not print a second copy. Until it is called, records take standard logging's way
    (root handlers, or Python's last resort: warnings and errors to stderr).
    """
    if fmt not in ("json", "text"):
        raise ValueError(f"log format must be 'json' or 'text', not {fmt!r}")
    levelno = _LEVELS.get(level.lower())
    if levelno is None:
        raise ValueError(f"unknown log level {level!r}")
    formatter: logging.Formatter = JsonLineFormatter() if fmt == "json" else TextLineFormatter()
    handler = _LineHandler(stream if stream is not None else sys.stdout)
    handler.setFormatter(formatter)
    with _setup_lock:
        old = [h for h in _logger.handlers if isinstance(h, _LineHandler)]
        for h in old:
            _logger.removeHandler(h)
        _logger.addHandler(handler)
        _logger.setLevel(levelno)
        _logger.propagate = False
    for h in old:
        h.close()  # its pending lines first (bounded), then its writer ends


def flush_logs(timeout: float = CLOSE_TIMEOUT_S) -> bool:
    """Wait up to `timeout` until every line logged so far is written; False if the
    sink did not catch up in time (a stopped reader). Never needed for correctness:
    ``logging.shutdown`` at exit flushes (bounded) too."""
    ok = True
    for h in list(_logger.handlers):
        if isinstance(h, _LineHandler) and h.sink is not None:
            ok = h.sink.flush(timeout) and ok
    return ok


def log_event(event: str, message: str, level: str = "info", **fields: object) -> None:
    """Log one contract event: ``message`` is the human sentence, ``fields`` follow it.

    Thread-safe and cheap (a few microseconds): it skips logging's caller lookup, which
    walks the stack. Pass ``None`` for a field that is null (``exit_code`` when killed).
    Never pass an ``env`` field: if one arrives anyway only its keys are logged.
    """
    levelno = _LEVELS.get(level)
    if levelno is None:
        raise ValueError(f"unknown log level {level!r}")
    if not _logger.isEnabledFor(levelno):
        return
    record = _logger.makeRecord(LOGGER_NAME, levelno, "", 0, message, (), None)
    record.__dict__[OBS_ATTR] = (event, fields)
    _logger.handle(record)
