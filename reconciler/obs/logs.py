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

import contextlib
import errno
import io
import json
import logging
import math
import os
import re
import select
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal, TextIO

from pythonjsonlogger.core import merge_record_extra
from pythonjsonlogger.json import JsonEncoder, JsonFormatter

__all__ = [
    "LOGGER_NAME",
    "JsonLineFormatter",
    "TextLineFormatter",
    "dropped_lines",
    "dropped_lines_by_kind",
    "escape_control",
    "flush_logs",
    "log_event",
    "setup_logging",
]

LOGGER_NAME = "reconciler"

_logger = logging.getLogger(LOGGER_NAME)

_LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
_LEVEL_NAMES: dict[int, str] = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "critical",
}
# Keys every line starts with; a field of the same name is renamed to `<name>_`.
_CORE_KEYS = frozenset({"timestamp", "level", "message", "event"})
# The attribute that carries log_event's (event, fields) on a LogRecord. The leading
# underscore keeps python-json-logger from copying it as an "extra".
_OBS_ATTR = "_reconciler_obs"
_REDACTED = "<redacted>"

# --- timestamps -------------------------------------------------------------------------

_ts_cache: tuple[int, str] = (-1, "")


def format_timestamp(epoch: float) -> str:
    """RFC 3339 in UTC with milliseconds: ``2026-11-25T11:46:22.123Z``."""
    global _ts_cache
    # Round to microseconds first (as datetime does): 0.123 is 0.12299999... in binary.
    total_ms = round(epoch * 1_000_000) // 1000
    sec, ms = divmod(total_ms, 1000)
    cached_sec, prefix = _ts_cache  # one tuple read: safe without a lock
    if cached_sec != sec:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        _ts_cache = (sec, prefix)
    return f"{prefix}.{ms:03d}Z"


# --- escaping ---------------------------------------------------------------------------

# C0, DEL, C1, the Unicode line/paragraph separators (some viewers break lines there)
# and surrogates (a stream encoder would raise on them).
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(match: re.Match[str]) -> str:
    ch = match.group()
    named = _NAMED_ESCAPES.get(ch)
    if named is not None:
        return named
    cp = ord(ch)
    if cp < 0x100:
        return f"\\x{cp:02x}"
    if 0xDC80 <= cp <= 0xDCFF:
        # surrogateescape's stand-in for an undecodable byte: show the byte as
        # backslashreplace would.
        return f"\\x{cp - 0xDC00:02x}"
    return f"\\u{cp:04x}"


def escape_control(text: str) -> str:
    """Escape control characters and surrogates so ``text`` stays on one line."""
    if _CONTROL_RE.search(text) is None:
        return text
    return _CONTROL_RE.sub(_escape_char, text)


def _scrub_surrogates(text: str) -> str:
    if _SURROGATE_RE.search(text) is None:
        return text
    return _SURROGATE_RE.sub(_escape_char, text)


# --- field safety -----------------------------------------------------------------------


def _redact_env(value: object) -> object:
    """Env values never reach a log: keep the variable names only."""
    if isinstance(value, Mapping):
        return {"keys": sorted(str(k) for k in value), "values": _REDACTED}
    return _REDACTED


def _redact_nested(value: object, depth: int = 0) -> object:
    if depth > 16:
        return value
    if isinstance(value, Mapping):
        return {
            k: (_redact_env(v) if k == "env" else _redact_nested(v, depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_redact_nested(v, depth + 1) for v in value]
    return value


def _contains_mapping(value: object) -> bool:
    if isinstance(value, Mapping):
        return True
    if isinstance(value, (list, tuple)):
        return any(isinstance(v, (Mapping, list, tuple)) for v in value)
    return False


def _json_default(obj: object) -> object:
    if isinstance(obj, (set, frozenset)):
        try:
            return sorted(obj)  # type: ignore[type-var]
        except TypeError:
            return list(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return _PJL_ENCODER.default(obj)


def _sanitize(value: object, depth: int = 0) -> object:
    """Make any value JSON-safe (slow path, only after a failed encode)."""
    if depth > 32:
        return "<too deep>"
    if isinstance(value, str):
        return _scrub_surrogates(value)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {_scrub_surrogates(str(k)): _sanitize(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        value = _json_default(value)
    if isinstance(value, (list, tuple)):
        return [_sanitize(v, depth + 1) for v in value]
    try:
        converted = _json_default(value)
    except Exception:
        converted = repr(value)
    if isinstance(converted, (str, int, float, bool)) or converted is None:
        return _sanitize(converted, depth + 1)
    return _scrub_surrogates(str(converted))


# pjl's encoder knows datetimes, enums, bytes, dataclasses and exceptions.
_PJL_ENCODER = JsonEncoder()
_ENCODER = json.JSONEncoder(
    ensure_ascii=True, allow_nan=False, separators=(",", ":"), default=_json_default
)


def _encode(data: dict[str, Any]) -> str:
    try:
        line = _ENCODER.encode(data)
    except (ValueError, TypeError, RecursionError):
        # NaN/inf, circular or odd values: convert and try once more.
        return _ENCODER.encode(_sanitize(data))
    if "\\ud" in line:
        # ensure_ascii turned a surrogate into \udXXX (or a valid pair, or text that
        # merely looks so); scrub lone surrogates and re-encode.
        return _ENCODER.encode(_sanitize(data))
    return line


def _serializer(obj: object, **_kwargs: object) -> str:
    # pjl passes json.dumps-style keyword arguments; the module encoder has them fixed.
    assert isinstance(obj, dict)
    return _encode(obj)


# --- formatters -------------------------------------------------------------------------


def _record_fields(record: logging.LogRecord) -> tuple[str, dict[str, Any] | None]:
    obs = record.__dict__.get(_OBS_ATTR)
    if obs is not None:
        return obs  # type: ignore[no-any-return]
    return "log", None


def _put_field(data: dict[str, Any], key: str, value: object) -> None:
    if key in _CORE_KEYS:
        key += "_"
    if key == "env":
        value = _redact_env(value)
    elif _contains_mapping(value):
        value = _redact_nested(value)
    data[key] = value


class JsonLineFormatter(JsonFormatter):
    """python-json-logger formatter emitting the contract's key order and timestamp."""

    def __init__(self) -> None:
        super().__init__(json_serializer=_serializer, json_ensure_ascii=True)

    def add_fields(
        self,
        log_data: dict[str, Any],
        record: logging.LogRecord,
        message_dict: dict[str, Any],
    ) -> None:
        log_data["timestamp"] = format_timestamp(record.created)
        log_data["level"] = _LEVEL_NAMES.get(record.levelno) or record.levelname.lower()
        log_data["message"] = record.message
        event, fields = _record_fields(record)
        log_data["event"] = event
        if fields is not None:
            for key, value in fields.items():
                _put_field(log_data, key, value)
        else:
            # A plain `logging.getLogger("reconciler.x").warning(...)` call.
            log_data["logger"] = record.name
            extras: dict[str, Any] = {}
            # pjl's own helper copies `extra=` attributes, skipping LogRecord's.
            merge_record_extra(record, extras, reserved=self._skip_fields)
            for key, value in extras.items():
                _put_field(log_data, key, value)
        for key, value in message_dict.items():  # exc_info / stack_info from pjl
            _put_field(log_data, key, value)


def _text_value(value: object) -> str:
    if isinstance(value, str):
        if value and not any(c in value for c in ' "=\\') and _CONTROL_RE.search(value) is None:
            return value
        return escape_control(json.dumps(value, ensure_ascii=False))
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)  # an IntEnum's repr is not a number
    if isinstance(value, float) and math.isfinite(value):
        return float.__repr__(value)
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_json_default)
    except (ValueError, TypeError, RecursionError):
        text = json.dumps(_sanitize(value), ensure_ascii=False, separators=(",", ":"))
    return escape_control(text)


class TextLineFormatter(logging.Formatter):
    """``2026-11-25T11:46:22.123Z info  run.started task=x run_id=... message``.

    Every control character is escaped, so one record is always one line. Backslashes
    are left alone (output escaped by the supervisor stays readable); the JSON format
    is the unambiguous one.
    """

    def format(self, record: logging.LogRecord) -> str:
        level = _LEVEL_NAMES.get(record.levelno) or record.levelname.lower()
        event, fields = _record_fields(record)
        parts = [format_timestamp(record.created), f"{level:<5}", escape_control(event)]
        data: dict[str, Any] = {}
        if fields is None:
            data["logger"] = record.name
        else:
            for key, value in fields.items():
                _put_field(data, key, value)
        for key, value in data.items():
            parts.append(f"{escape_control(key)}={_text_value(value)}")
        parts.append(escape_control(record.getMessage()))
        if record.exc_info:
            parts.append(escape_control(self.formatException(record.exc_info)))
        return " ".join(parts)


# --- drop counters ----------------------------------------------------------------------

# What a line is, for the drop policy: a task's output goes first, everything else
# ("event": lifecycle, spec, controller, plain logging calls) last.
Kind = Literal["output", "event"]
OUTPUT: Final = "output"
EVENT: Final = "event"

_stats_lock = threading.Lock()
_dropped: dict[Kind, int] = {OUTPUT: 0, EVENT: 0}


def _count_drop(kind: Kind, n: int = 1) -> None:
    with _stats_lock:
        _dropped[kind] += n


def dropped_lines() -> int:
    """Lines not written (slow or stopped reader, closed pipe, full disk...) since start."""
    with _stats_lock:
        return _dropped[OUTPUT] + _dropped[EVENT]


def dropped_lines_by_kind() -> dict[Kind, int]:
    """``{"output": n, "event": m}``: the same count split by what was dropped."""
    with _stats_lock:
        return dict(_dropped)


def _kind_of(record: logging.LogRecord) -> Kind:
    event, _ = _record_fields(record)
    return OUTPUT if event == "run.output" else EVENT


# --- the sink: a bounded queue and a writer thread --------------------------------------

# Output lines are taken while the queue holds less than this; past it, every output line
# is dropped until the writer has caught up (queue empty), which then logs `log.dropped`.
OUTPUT_QUEUE_BYTES = 256 * 1024
OUTPUT_QUEUE_LINES = 4096
# Lifecycle events are taken until this (a stopped reader: hours of events of a few tasks).
EVENT_QUEUE_BYTES = 8 * 1024 * 1024
EVENT_QUEUE_LINES = 50_000
# One write() carries up to this many bytes of whole lines.
_BATCH_BYTES = 64 * 1024
# Default bound of the flush at exit (logging.shutdown calls close()).
CLOSE_TIMEOUT_S = 2.0


class _Sink:
    """Lines go into a bounded FIFO; one daemon thread writes them to a descriptor.

    Producers (the loop, the output pump, HTTP threads) only take a lock for a deque
    append, never wait for the descriptor. The writer uses the descriptor with
    ``os.write``, never the stream object: a thread blocked inside a buffered stream
    would hold its lock, and the interpreter's flush of stdout at exit would then wait
    on it (or abort). Order is kept: a line is written in order or dropped, never late.
    """

    def __init__(
        self,
        fd: int,
        stream_closed: Callable[[], bool],
        dropped_line: Callable[[int, int], bytes | None],
    ) -> None:
        self._fd = fd
        self._stream_closed = stream_closed  # the owner closed it: the number may be reused
        self._dropped_line = dropped_line
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[tuple[Kind, bytes]] = deque()
        self._bytes = 0
        self._busy = False  # the writer holds a batch (or a `log.dropped` line)
        self._dropping = False  # output lines are refused until the queue drains
        self._unreported: dict[Kind, int] = {OUTPUT: 0, EVENT: 0}
        self._closing = False
        self.broken = False  # the reader is gone for good (EPIPE)
        self._thread = threading.Thread(target=self._run, name="reconciler-log", daemon=True)
        self._thread.start()

    # -- producers ---------------------------------------------------------------------

    def refuses_output(self) -> bool:
        """True while output lines are dropped anyway: the caller need not format them.
        Read without the lock: a stale answer only costs one formatted line or one
        line dropped a moment late."""
        return self._dropping or self.broken

    def drop(self, kind: Kind, n: int = 1) -> None:
        _count_drop(kind, n)
        if not self.broken:
            with self._cond:
                self._unreported[kind] += n

    def offer(self, kind: Kind, data: bytes) -> None:
        with self._cond:
            if self.broken:
                accepted = False
            elif kind == OUTPUT:
                if not self._dropping and (
                    self._bytes >= OUTPUT_QUEUE_BYTES or len(self._queue) >= OUTPUT_QUEUE_LINES
                ):
                    self._dropping = True
                accepted = not self._dropping
            else:
                accepted = self._bytes < EVENT_QUEUE_BYTES and len(self._queue) < EVENT_QUEUE_LINES
            if accepted:
                self._queue.append((kind, data))
                self._bytes += len(data)
                if not self._busy:
                    self._cond.notify_all()
                return
            if not self.broken:
                self._unreported[kind] += 1
        _count_drop(kind)

    # -- the writer ----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                batch: list[bytes] = []
                kinds: dict[Kind, int] = {OUTPUT: 0, EVENT: 0}
                size = 0
                while self._queue and (not batch or size + len(self._queue[0][1]) <= _BATCH_BYTES):
                    kind, data = self._queue.popleft()
                    batch.append(data)
                    kinds[kind] += 1
                    size += len(data)
                self._bytes -= size
                self._busy = True
                # The sink has caught up: this batch empties the queue. What was dropped
                # is told just before it, so a stop's last line stays the last line.
                report = self._caught_up()
            if report is not None:
                self._report(report)
            # Lines taken after the reader went away are not written to /dev/null.
            ok = not self.broken and not self._stream_closed()
            ok = ok and self._write_all(b"".join(batch))
            if not ok:
                # The descriptor refused them (EPIPE, ENOSPC, closed): counted, and told
                # with the rest once writes succeed again.
                for kind, n in kinds.items():
                    self.drop(kind, n)
            with self._cond:
                report = self._caught_up()
                if report is None:
                    self._busy = False
                    self._cond.notify_all()
            if report is not None:
                self._report(report)
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _caught_up(self) -> tuple[int, int] | None:
        """Under the lock: with the queue empty, take output again and return the drops
        not told yet (None: nothing to tell)."""
        if self._queue or self.broken:
            return None
        self._dropping = False
        out, ev = self._unreported[OUTPUT], self._unreported[EVENT]
        if not (out or ev):
            return None
        self._unreported = {OUTPUT: 0, EVENT: 0}
        return out, ev

    def _report(self, counts: tuple[int, int]) -> None:
        line = self._dropped_line(*counts)
        if line is not None and not self._stream_closed():
            self._write_all(line)

    def _write_all(self, data: bytes) -> bool:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._fd, view)
            except BlockingIOError:
                # A descriptor somebody made non-blocking: wait until it takes more.
                poller = select.poll()
                poller.register(self._fd, select.POLLOUT)
                poller.poll(1000)
                continue
            except OSError as exc:
                if exc.errno == errno.EPIPE:
                    self._retire()
                return False
            view = view[n:]
        return True

    def _retire(self) -> None:
        """The reader is gone for good: stop writing, and point the descriptors at
        /dev/null so a buffered rest (and the interpreter's flush of stdout at exit,
        which would turn the exit status into 120) go nowhere quietly."""
        with self._cond:
            self.broken = True
            self._dropping = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
        except OSError:
            return
        try:
            with contextlib.suppress(OSError):
                os.dup2(devnull, self._fd)
        finally:
            os.close(devnull)

    # -- flush and close -------------------------------------------------------------

    def flush(self, timeout: float) -> bool:
        """Wait until every queued line is written (True) or `timeout` passes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float) -> bool:
        """Flush for at most `timeout`; past half of it, queued output lines are dropped
        so lifecycle events (`controller.stopped`) still get out to a slow reader."""
        deadline = time.monotonic() + timeout
        done = self.flush(timeout / 2)
        if not done:
            with self._cond:
                kept = deque(item for item in self._queue if item[0] != OUTPUT)
                purged = len(self._queue) - len(kept)
                self._queue = kept
                self._bytes = sum(len(data) for _, data in kept)
                if not self.broken:
                    self._unreported[OUTPUT] += purged
            _count_drop(OUTPUT, purged)
            done = self.flush(max(0.0, deadline - time.monotonic()))
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(max(0.0, min(0.5, deadline - time.monotonic())))
        return done


# --- the handler ------------------------------------------------------------------------


def _stream_fd(stream: TextIO) -> int | None:
    """The descriptor behind `stream`, or None for an in-memory stream."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return None
    return fd if isinstance(fd, int) and fd >= 0 else None


class _LineHandler(logging.Handler):
    """Formats each record in the caller's thread and hands the whole line to a
    :class:`_Sink` (a stream with a descriptor: stdout, a pipe, a file). An in-memory
    stream (tests) takes the line at once, with one write under the handler lock."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self.encoding = getattr(stream, "encoding", None) or "utf-8"
        fd = _stream_fd(stream)
        self.sink: _Sink | None = None
        if fd is not None:
            with contextlib.suppress(OSError, ValueError):
                stream.flush()  # what was printed before goes first
            self.sink = _Sink(fd, self._stream_closed, self._dropped_line)

    def handle(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        if not self.filter(record):
            return False
        sink = self.sink
        kind = _kind_of(record)
        if sink is not None and kind == OUTPUT and sink.refuses_output():
            sink.drop(kind)  # not even formatted
            return True
        # Format outside any lock: threads only contend for the queue or the write.
        try:
            line = self.format(record) + "\n"
        except Exception as exc:
            line = self._fallback(record, exc)
        if sink is not None:
            sink.offer(kind, line.encode(self.encoding, "backslashreplace"))
            return True
        with self.lock:  # type: ignore[union-attr]
            self._write(line, kind)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.handle(record)

    def flush(self, timeout: float = CLOSE_TIMEOUT_S) -> None:  # type: ignore[override]
        if self.sink is not None:
            self.sink.flush(timeout)
            return
        with contextlib.suppress(OSError, ValueError):
            self.stream.flush()

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:  # type: ignore[override]
        """Called by logging.shutdown() at exit: pending lines get up to `timeout`."""
        if self.sink is not None:
            self.sink.close(timeout)
        super().close()

    def _stream_closed(self) -> bool:
        try:
            return bool(self.stream.closed)
        except Exception:
            return True

    def _dropped_line(self, output: int, events: int) -> bytes | None:
        """The `log.dropped` line the writer puts out once the sink has caught up."""
        if not _logger.isEnabledFor(logging.WARNING):
            return None
        n = output + events
        record = _logger.makeRecord(
            LOGGER_NAME,
            logging.WARNING,
            "",
            0,
            f"{n} log line(s) dropped: stdout could not keep up ({output} task output, "
            f"{events} other).",
            (),
            None,
        )
        record.__dict__[_OBS_ATTR] = (
            "log.dropped",
            {"dropped": n, "output": output, "events": events, "dropped_total": dropped_lines()},
        )
        try:
            return (self.format(record) + "\n").encode(self.encoding, "backslashreplace")
        except Exception:
            return None

    def _fallback(self, record: logging.LogRecord, exc: Exception) -> str:
        event, _ = _record_fields(record)
        data = {
            "timestamp": format_timestamp(record.created),
            "level": "error",
            "message": "A log record could not be formatted.",
            "event": "log.format-error",
            "original_event": event,
            "error": f"{type(exc).__name__}: {exc}",
        }
        if isinstance(self.formatter, TextLineFormatter):
            return (
                escape_control(
                    f"{data['timestamp']} error log.format-error original_event={event} "
                    f"{data['message']} {data['error']}"
                )
                + "\n"
            )
        return _ENCODER.encode(_sanitize(data)) + "\n"

    # -- in-memory streams ---------------------------------------------------------------

    def _write(self, line: str, kind: Kind) -> None:
        try:
            try:
                self.stream.write(line)
            except UnicodeEncodeError:
                # Text format on a stream that cannot take the characters (an ASCII
                # locale): TextIOWrapper encodes before buffering, so nothing went out.
                self.stream.write(line.encode("ascii", "backslashreplace").decode("ascii"))
            self.stream.flush()
        except (OSError, ValueError):  # ValueError: "I/O operation on closed file"
            _count_drop(kind)


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
    record.__dict__[_OBS_ATTR] = (event, fields)
    _logger.handle(record)
