"""applied.json: the task set the controller has in force, env values hashed.

One entry per task of this host: the file and line it came from and its normalised
document with env values hashed (envmask.hashed_document), never in clear. Written by the
controller after each apply; read by `status` and `diff` (and by the ledger's recovery
from damage, which only needs the names).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import tzinfo
from typing import TYPE_CHECKING, Any

from reconciler.envmask import hashed_document
from reconciler.schedule import Schedule, parse_schedule
from reconciler.state.directory import JsonPieces, StateDir
from reconciler.state.layout import APPLIED_FILE

if TYPE_CHECKING:
    from reconciler.spec import Task

_PIECE_CHARS = 1 << 16  # written 64 KiB at a time


def applied_document(task: Task) -> dict[str, Any]:
    """The document as the applied set keeps it: env values hashed, never in clear."""
    return hashed_document(task.document)


def applied_json(tasks: Iterable[Task]) -> JsonPieces:
    """applied.json's content: each task's file, line and applied document, by name.

    The very text `write_json` makes of the whole, made one task at a time as it is
    written: the applied set of 10,000 tasks is 4 MB, never held whole, and a thread
    writing it hands the GIL over between tasks (a tick does not wait for it)."""

    def pieces() -> Iterator[bytes]:
        parts, size, comma = ["{"], 0, ""
        for t in sorted(tasks, key=lambda t: t.name):
            entry = {"file": t.file, "line": t.line, "document": applied_document(t)}
            text = json.dumps(entry, separators=(",", ":"), sort_keys=True)
            parts.append(f"{comma}{json.dumps(t.name)}:{text}")
            comma = ","
            size += len(text)
            if size >= _PIECE_CHARS:
                yield "".join(parts).encode()
                parts, size = [], 0
        parts.append("}")
        yield "".join(parts).encode()

    return JsonPieces(pieces)


@dataclass(frozen=True)
class AppliedTask:
    """One entry of the controller's applied set."""

    name: str
    file: str | None
    line: int | None
    document: dict[str, Any]

    @property
    def spec(self) -> dict[str, Any]:
        spec = self.document.get("spec")
        return spec if isinstance(spec, dict) else {}

    @property
    def type(self) -> str:
        return str(self.spec.get("type", "cron"))


def parse_applied(data: Any) -> dict[str, AppliedTask]:
    """The applied set from its JSON; anything malformed is left out."""
    out: dict[str, AppliedTask] = {}
    if not isinstance(data, Mapping):
        return out
    for name, entry in data.items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("document"), Mapping):
            continue
        line = entry.get("line")
        out[str(name)] = AppliedTask(
            name=str(name),
            file=str(entry["file"]) if entry.get("file") is not None else None,
            line=line if isinstance(line, int) else None,
            document=dict(entry["document"]),
        )
    return out


def read_applied(state: StateDir) -> dict[str, AppliedTask] | None:
    """The applied set; None when the controller has not written one yet (a damaged file
    is as good as absent)."""
    data = state.read_json(APPLIED_FILE)
    return None if data is None else parse_applied(data)


@dataclass(frozen=True)
class AppliedSchedule:
    schedule: Schedule | None
    zone: tzinfo
    error: str | None = None


def applied_schedule(task: AppliedTask) -> AppliedSchedule:
    """The schedule and zone of an applied document (a task without zone: this host's)."""
    from reconciler.spec.zones import get_zone, host_zone

    spec = task.spec
    zone_name = spec.get("timezone")
    try:
        zone: tzinfo = get_zone(str(zone_name)) if zone_name else host_zone()
    except ValueError as exc:
        return AppliedSchedule(None, host_zone(), f"timezone: {exc}")
    text = spec.get("schedule")
    if task.type != "cron" or not isinstance(text, str):
        return AppliedSchedule(None, zone)
    try:
        return AppliedSchedule(parse_schedule(text, task.name), zone)
    except ValueError as exc:
        return AppliedSchedule(None, zone, f"schedule: {exc}")
