"""A run record as users see it: camelCase JSON (`runs -o json`, the HTTP API) and the
table cells of `reconciler runs`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def iso(t: Any) -> str | None:
    """Epoch seconds as RFC 3339 UTC with milliseconds; None stays None."""
    if not isinstance(t, int | float) or isinstance(t, bool):
        return None
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def api_record(rec: dict[str, Any]) -> dict[str, Any]:
    """The record with the camelCase keys of every `-o json` and the HTTP API."""
    return {
        "runId": rec.get("run_id"),
        "task": rec.get("task"),
        "type": rec.get("type"),
        "trigger": rec.get("trigger"),
        "attempt": rec.get("attempt", 1),
        "due": iso(rec.get("due")),
        "startedAt": iso(rec.get("started")),
        "endedAt": iso(rec.get("ended")),
        "durationSeconds": rec.get("duration_s"),
        "pid": rec.get("pid"),
        "exitCode": rec.get("exit_code"),
        "signal": rec.get("signal"),
        "outcome": rec.get("outcome"),
        "reason": rec.get("reason"),
    }


def api_output(output: dict[str, Any]) -> dict[str, Any]:
    """A run's kept output for the API: lines in order, the cut marked where it fell."""
    from reconciler.history.reader import lines_of

    lines = []
    for line in lines_of({"record": {"ended": 0}, "output": output}):
        lines.append(
            {"seq": line.seq, "time": iso(line.ms / 1000) if line.ms is not None else None,
             "stream": "marker" if line.marker else line.stream, "text": line.text}
        )
    return {
        "limitBytes": output.get("limit"),
        "totalBytes": output.get("bytes"),
        "totalLines": output.get("count"),
        "notKeptBytes": (output.get("cut") or {}).get("bytes", 0),
        "lines": lines,
    }


def local_time(t: Any) -> str:
    if not isinstance(t, int | float) or isinstance(t, bool):
        return "-"
    return datetime.fromtimestamp(t).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def duration_text(rec: dict[str, Any], now: float) -> str:
    d = rec.get("duration_s")
    if isinstance(d, int | float):
        return f"{d:.3f}s" if d < 10 else _compact(d)
    started = rec.get("started")
    if rec.get("ended") is None and isinstance(started, int | float):
        return _compact(now - started)
    return "-"


def _compact(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60}s"
    return f"{s // 3600}h{s % 3600 // 60}m"
