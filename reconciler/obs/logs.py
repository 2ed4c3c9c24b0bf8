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
* Each line is written with one ``write`` under the handler lock, so threads never
  interleave inside a line; a broken stdout pipe is swallowed and counted.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import math
import os
import re
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any, Literal, TextIO

from pythonjsonlogger.core import merge_record_extra
from pythonjsonlogger.json import JsonEncoder, JsonFormatter

__all__ = [
    "LOGGER_NAME",
    "JsonLineFormatter",
    "TextLineFormatter",
    "dropped_lines",
    "escape_control",
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


# --- the handler ------------------------------------------------------------------------

_stats_lock = threading.Lock()
_dropped = 0


def _count_drop() -> None:
    global _dropped
    with _stats_lock:
        _dropped += 1


def dropped_lines() -> int:
    """Lines that could not be written (closed pipe, full disk...) since start."""
    return _dropped


class _LineHandler(logging.Handler):
    """Writes each record as one whole line with one write, under the handler lock."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self.broken = False

    def handle(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        if not self.filter(record):
            return False
        # Format outside the lock: threads only contend for the write itself.
        try:
            line = self.format(record) + "\n"
        except Exception as exc:
            line = self._fallback(record, exc)
        with self.lock:  # type: ignore[union-attr]
            self._write(line)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.handle(record)

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

    def _write(self, line: str) -> None:
        if self.broken:
            _count_drop()
            return
        try:
            try:
                self.stream.write(line)
            except UnicodeEncodeError:
                # Text format on a stream that cannot take the characters (an ASCII
                # locale): TextIOWrapper encodes before buffering, so nothing went out.
                self.stream.write(line.encode("ascii", "backslashreplace").decode("ascii"))
            self.stream.flush()
        except BrokenPipeError:
            _count_drop()
            self._retire_stream()
        except OSError as exc:
            _count_drop()
            if exc.errno == errno.EPIPE:
                self._retire_stream()
        except ValueError:  # "I/O operation on closed file"
            _count_drop()

    def _retire_stream(self) -> None:
        """The reader is gone for good: stop writing, and point the descriptor at
        /dev/null so the buffered rest (and the interpreter's flush at exit, which would
        turn the exit status into 120) go nowhere quietly."""
        self.broken = True
        try:
            fd = self.stream.fileno()
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            return
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, fd)
            finally:
                os.close(devnull)
            self.stream.flush()
        except (OSError, ValueError):
            pass


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
        for old in list(_logger.handlers):
            if isinstance(old, _LineHandler):
                _logger.removeHandler(old)
        _logger.addHandler(handler)
        _logger.setLevel(levelno)
        _logger.propagate = False


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
