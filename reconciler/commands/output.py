"""Rendering shared by the operator commands: tables, times, JSON, masked env."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any, TextIO

# Env values are masked in one place (envmask); MASK is its mask, and masked_document
# imports it on first use (envmask pulls in notify's URL masks: not every command needs it).
MASK = "***"


def masked_document(document: Mapping[str, Any]) -> dict[str, Any]:
    """The document as users see it: each env value (and secret URL) masked (envmask)."""
    from reconciler.envmask import masked_document as masked

    return masked(document)



def table(headers: Sequence[str], rows: Iterable[Sequence[str]], gap: int = 3) -> str:
    """Left-aligned columns as `kubectl get` prints them; the last column is not padded."""
    all_rows = [list(headers)] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(headers))]
    lines = []
    for r in all_rows:
        cells = [c.ljust(widths[i]) for i, c in enumerate(r[:-1])] + [r[-1]]
        lines.append((" " * gap).join(cells).rstrip())
    return "\n".join(lines)


def print_table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], out: TextIO | None = None
) -> None:
    print(table(headers, rows), file=out or sys.stdout)


# `-o json` speaks camelCase, as kubectl does (the JSON log keeps snake_case); units are
# spelled out as in the HTTP API, and the next due time is `nextRun` everywhere, as in get.
_JSON_KEYS = {
    "next_due": "nextRun",
    "duration_s": "durationSeconds",
    "age_s": "ageSeconds",
    "uptime_s": "uptimeSeconds",
}
_USER_KEYED = frozenset({"env", "labels"})  # maps whose keys the user chose: left alone


def camel_keys(obj: Any) -> Any:
    """`obj` with every snake_case key in camelCase (`last_run` -> `lastRun`)."""
    if isinstance(obj, list):
        return [camel_keys(v) for v in obj]
    if isinstance(obj, dict):
        return {_camel(k): v if k in _USER_KEYED else camel_keys(v) for k, v in obj.items()}
    return obj


def _camel(key: Any) -> Any:
    if not isinstance(key, str) or "_" not in key or not key.islower():
        return key
    known = _JSON_KEYS.get(key)
    if known is not None:
        return known
    head, *rest = key.split("_")
    return head + "".join(word.capitalize() for word in rest)


def dump_json(obj: Any, out: TextIO | None = None) -> None:
    json.dump(obj, out or sys.stdout, indent=2, ensure_ascii=False)
    (out or sys.stdout).write("\n")


def rfc3339_offset(t: float | None, tz: tzinfo | None = None) -> str | None:
    """An instant in RFC 3339 with the zone's numeric offset, `+00:00` for UTC: the CLI's
    form (the logs write `Z`: controller.runs.rfc3339_zulu)."""
    if t is None:
        return None
    return datetime.fromtimestamp(t, tz or UTC).isoformat(timespec="seconds")


def human_time(t: float, tz: tzinfo | None = None) -> str:
    """`2026-03-29 03:00:00 +02:00`: readable in a table, still exact."""
    d = datetime.fromtimestamp(t, tz or UTC)
    off = d.strftime("%z")
    return d.strftime("%Y-%m-%d %H:%M:%S ") + f"{off[:3]}:{off[3:]}"


def duration(seconds: float) -> str:
    """A compact age as kubectl prints it: `45s`, `4m`, `4m10s`, `2h5m`, `3d4h`."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 600:
        m, r = divmod(s, 60)
        return f"{m}m{r}s" if r else f"{m}m"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        h, r = divmod(s, 3600)
        return f"{h}h{r // 60}m" if r // 60 else f"{h}h"
    d, r = divmod(s, 86400)
    return f"{d}d{r // 3600}h" if r // 3600 else f"{d}d"


def relative(t: float, now: float) -> str:
    """`in 4m`, `3s ago`, `now`."""
    delta = t - now
    if abs(delta) < 1:
        return "now"
    return f"in {duration(delta)}" if delta > 0 else f"{duration(-delta)} ago"


def when(t: float | None, now: float, tz: tzinfo | None = None) -> str:
    """An instant with its distance from now, or `-`."""
    if t is None:
        return "-"
    return f"{human_time(t, tz)} ({relative(t, now)})"


def seconds_text(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}s" if value < 10 else duration(value)


def command_text(command: Any) -> str:
    """A command as one line: a shell string as written, an argv joined shell-quoted."""
    import shlex

    if isinstance(command, str):
        return command
    if isinstance(command, (list, tuple)):
        return shlex.join(str(c) for c in command)
    return "-"


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def safe(text: str) -> str:
    """Control characters escaped: a command or file name cannot forge table lines."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def clip(text: str, width: int) -> str:
    text = safe(text)
    return text if len(text) <= width else text[: width - 3] + "..."


def print_spec_errors(errors: Iterable[Any], out: TextIO | None = None) -> None:
    """Validation errors one per line, as `validate` prints them (`file:line: task: ...`)."""
    for err in errors:
        print(str(err), file=out or sys.stderr)


def error(command: str, message: str) -> None:
    print(f"reconciler {command}: {message}", file=sys.stderr)
