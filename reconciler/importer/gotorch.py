"""gotorch task file (a JSON array of task objects) to task drafts.

gotorch decodes with Go's encoding/json: keys match field names case-insensitively and
unknown keys are ignored. Here an unknown key is still ignored, but reported; an entry
that cannot be converted is reported at the line where its object starts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from reconciler.importer.model import Conversion, Draft, Problem
from reconciler.importer.names import derive_name

DOCUMENTED_ORDER = "second minute hour day-of-month month day-of-week"
FIELDS = {f.lower(): f for f in ("Command", "Script", "TaskType", "Times", "Max", "Ips")}
_JSON_BLANKS = " \t\n\r"


class _Object(dict[str, Any]):
    """A decoded JSON object that remembers keys given more than once."""

    duplicates: list[str]


def _object(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object()
    obj.duplicates = []
    for key, value in pairs:
        if key in obj:
            obj.duplicates.append(key)
        obj[key] = value
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


@dataclass
class _Entry:
    index: int
    line: int
    value: Any


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _JSON_BLANKS:
        pos += 1
    return pos


def split_array(text: str) -> tuple[list[_Entry], Problem | None]:
    """The top-level array's elements with the line each starts on (strict JSON)."""
    decoder = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_no_constant)
    pos = _skip(text, 0)
    if not text.startswith("[", pos):
        return [], Problem(_line_of(text, pos), "a gotorch task file is a JSON array")
    entries: list[_Entry] = []
    pos = _skip(text, pos + 1)
    if text.startswith("]", pos):
        pos += 1
    else:
        while True:
            start = pos
            try:
                value, pos = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                return entries, Problem(exc.lineno, f"invalid JSON: {exc.msg}")
            except ValueError as exc:
                return entries, Problem(_line_of(text, start), f"invalid JSON: {exc}")
            entries.append(_Entry(len(entries), _line_of(text, start), value))
            pos = _skip(text, pos)
            if text.startswith(",", pos):
                pos = _skip(text, pos + 1)
            elif text.startswith("]", pos):
                pos += 1
                break
            else:
                return entries, Problem(_line_of(text, pos), "invalid JSON: expected , or ]")
    pos = _skip(text, pos)
    if pos < len(text):
        return entries, Problem(_line_of(text, pos), "invalid JSON: extra data after the array")
    return entries, None


_ANY = ("*", "?")  # `?` is `*` in a day field (Quartz, robfig/cron; ours too)


def _any_day(field: str) -> bool:
    """Unrestricted for cron's day rule: `*`, `*/n` (as cron reads it) or `?`."""
    return field.startswith("*") or field == "?"


class _Reject(Exception):
    """The entry cannot be converted; the message says why."""


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "an array"}.get(type(value), "an object")


class _EntryReader:
    def __init__(self, entry: _Entry, source: str) -> None:
        self.entry = entry
        self.source = source
        self.warnings: list[str] = []
        self.notes: list[str] = []
        self.fields: dict[str, Any] = {}

    def read(self) -> Draft:
        obj = self.entry.value
        if not isinstance(obj, dict):
            raise _Reject(f"expected an object, got {_type_name(obj)}")
        self._collect_fields(obj)
        command = self._command()
        task_type = self._task_type()
        spec: dict[str, Any] = {"type": "cron" if task_type == "common" else "daemon"}
        if task_type == "common":
            spec["schedule"] = self._schedule()
        elif self.fields.get("Times"):
            self.notes.append(f"gotorch: Times {self.fields['Times']!r} ignored: "
                              "a daemon runs all the time")
        spec["command"] = command
        hosts = self._hosts()
        if hosts:
            spec["hosts"] = hosts
        max_concurrency = self._max(task_type)
        if max_concurrency is not None:
            spec["maxConcurrency"] = max_concurrency
        if task_type == "daemon" and (replicas := self._replicas()) is not None:
            spec["replicas"] = replicas
        comments = [f"# from {self.source}:{self.entry.line}: entry [{self.entry.index}]"]
        comments += [f"# {n}" for n in self.notes]
        return Draft(
            line=self.entry.line, name_hint=derive_name(command), spec=spec, comments=comments
        )

    def _collect_fields(self, obj: dict[str, Any]) -> None:
        duplicates: list[str] = getattr(obj, "duplicates", [])
        if duplicates:
            raise _Reject(f"key {duplicates[0]!r} given more than once")
        for key, value in obj.items():
            name = FIELDS.get(key.lower())
            if name is None:
                self.warnings.append(f"unknown key {key!r} ignored (gotorch ignored it too)")
            elif name in self.fields:
                raise _Reject(f"key {key!r} repeats {name!r} (keys match case-insensitively)")
            elif value is not None:  # Go leaves a field untouched for null
                self.fields[name] = value

    def _string(self, name: str) -> str | None:
        value = self.fields.get(name)
        if value is not None and not isinstance(value, str):
            raise _Reject(f"{name} must be a string, got {_type_name(value)}")
        return value

    def _command(self) -> str:
        command, script = self._string("Command"), self._string("Script")
        if command is not None and script is not None:
            raise _Reject("both Command and Script are given; keep one")
        text = command if command is not None else script
        if text is None or not text.strip():
            raise _Reject("no command: Command (or Script) is missing or empty")
        return text

    def _task_type(self) -> str:
        task_type = self._string("TaskType")
        if task_type is None:
            return "common"  # gotorch runs anything that is not "daemon" on its schedule
        if task_type not in ("common", "daemon"):
            raise _Reject(f"TaskType {task_type!r} is neither 'common' nor 'daemon'")
        return task_type

    def _schedule(self) -> str:
        times = self._string("Times")
        if not times or not times.strip():
            raise _Reject("a common task needs Times")
        fields = times.split()
        if len(fields) != 6:
            raise _Reject(f"Times {times!r} has {len(fields)} fields; gotorch takes 6 "
                          f"({DOCUMENTED_ORDER})")
        dom, dow = fields[3], fields[5]
        if not _any_day(dom) and not _any_day(dow):
            # gotorch needs both to match; cron rules (ours) run when either matches.
            raise _Reject(f"Times {times!r} restricts both day-of-month and day-of-week: "
                          "gotorch ran only when both matched, reconciler (as cron) runs "
                          "when either does")
        month = fields[4]
        if month not in _ANY or dow not in _ANY:
            # gotorch documents `... month day-of-week`; its own parser took the 5th
            # field for the day of the week and the 6th for the month. The documented
            # order wins, and the user is told, since either may be what their task did.
            self.warnings.append(
                f"Times {times!r} read in gotorch's documented order ({DOCUMENTED_ORDER}): "
                f"month {month!r}, day-of-week {dow!r}; gotorch's own code read the 5th "
                "field as day-of-week and the 6th as month: check which your task meant"
            )
            self.notes.append(
                f"gotorch: Times {times!r} read in the documented order "
                f"({DOCUMENTED_ORDER}): month {month!r}, day-of-week {dow!r}; gotorch's "
                f"own code read the 5th field as day-of-week and the 6th as month"
            )
        return " ".join(fields)

    def _hosts(self) -> list[str] | None:
        ips = self.fields.get("Ips")
        if ips is None:
            return None
        if not isinstance(ips, list) or not all(isinstance(ip, str) for ip in ips):
            raise _Reject("Ips must be an array of strings")
        # gotorch runs a task with no Ips everywhere: that is reconciler's missing `hosts`.
        return list(ips) or None

    def _max_value(self) -> int:
        value = self.fields.get("Max", 0)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Reject(f"Max must be a whole number, got {_type_name(value)}")
        return value

    def _replicas(self) -> int | None:
        """A daemon's Max is how many copies gotorch kept running: `replicas`."""
        value = self._max_value()
        if value > 1:
            return value
        if "Max" in self.fields and value < 1:
            self.notes.append(f"gotorch: Max {value} for a daemon: one process (replicas 1)")
        return None

    def _max(self, task_type: str) -> int | None:
        value = self._max_value()
        if task_type == "daemon":
            return None  # see _replicas
        if value <= 0:
            given = f"Max {value}" if "Max" in self.fields else "no Max"
            self.notes.append(f"gotorch: {given} meant no limit; maxConcurrency "
                              "is left at its default of 1")
            return None
        return value


def convert_gotorch(text: str, source: str) -> Conversion:
    result = Conversion()
    entries, fatal = split_array(text)
    if fatal is not None:
        # A file Go could not decode never ran under gotorch either: convert nothing.
        result.problems.append(fatal)
        return result
    for entry in entries:
        reader = _EntryReader(entry, source)
        prefix = f"[{entry.index}]"
        try:
            draft = reader.read()
        except _Reject as exc:
            result.problems.append(Problem(entry.line, f"{prefix}: {exc}"))
            continue
        result.drafts.append(draft)
        result.problems += [Problem(entry.line, f"{prefix}: {w}", fatal=False)
                            for w in reader.warnings]
    return result
