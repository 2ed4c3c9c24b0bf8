"""Formatting a log record as one line: JSON in the contract's key order, or escaped text.

Timestamps (RFC 3339, UTC, milliseconds, ``Z``), escaping of control characters and lone
surrogates, and the field safety rules (an ``env`` field carries names, never values).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from collections.abc import Mapping
from typing import Any

from pythonjsonlogger.core import merge_record_extra
from pythonjsonlogger.json import JsonEncoder, JsonFormatter

LOGGER_NAME = "reconciler"
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
OBS_ATTR = "_reconciler_obs"
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
    return _PJLENCODER.default(obj)


def sanitize(value: object, depth: int = 0) -> object:
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
        return {_scrub_surrogates(str(k)): sanitize(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        value = _json_default(value)
    if isinstance(value, (list, tuple)):
        return [sanitize(v, depth + 1) for v in value]
    try:
        converted = _json_default(value)
    except Exception:
        converted = repr(value)
    if isinstance(converted, (str, int, float, bool)) or converted is None:
        return sanitize(converted, depth + 1)
    return _scrub_surrogates(str(converted))


# pjl's encoder knows datetimes, enums, bytes, dataclasses and exceptions.
_PJLENCODER = JsonEncoder()
ENCODER = json.JSONEncoder(
    ensure_ascii=True, allow_nan=False, separators=(",", ":"), default=_json_default
)


def _encode(data: dict[str, Any]) -> str:
    try:
        line = ENCODER.encode(data)
    except (ValueError, TypeError, RecursionError):
        # NaN/inf, circular or odd values: convert and try once more.
        return ENCODER.encode(sanitize(data))
    if "\\ud" in line:
        # ensure_ascii turned a surrogate into \udXXX (or a valid pair, or text that
        # merely looks so); scrub lone surrogates and re-encode.
        return ENCODER.encode(sanitize(data))
    return line


def _serializer(obj: object, **_kwargs: object) -> str:
    # pjl passes json.dumps-style keyword arguments; the module encoder has them fixed.
    assert isinstance(obj, dict)
    return _encode(obj)


# --- formatters -------------------------------------------------------------------------


def record_fields(record: logging.LogRecord) -> tuple[str, dict[str, Any] | None]:
    obs = record.__dict__.get(OBS_ATTR)
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
        event, fields = record_fields(record)
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
        text = json.dumps(sanitize(value), ensure_ascii=False, separators=(",", ":"))
    return escape_control(text)


class TextLineFormatter(logging.Formatter):
    """``2026-11-25T11:46:22.123Z info  run.started task=x run_id=... message``.

    Every control character is escaped, so one record is always one line. Backslashes
    are left alone (output escaped by the supervisor stays readable); the JSON format
    is the unambiguous one.
    """

    def format(self, record: logging.LogRecord) -> str:
        level = _LEVEL_NAMES.get(record.levelno) or record.levelname.lower()
        event, fields = record_fields(record)
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


