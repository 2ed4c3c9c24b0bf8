"""Fleet questions the operator commands ask, answered without rendering anything.

Which tasks run on a host, when they are due (`get`, `plan`, `status`), and what a new
set of documents changes against the set a controller has applied (`diff`).
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from reconciler.hosts import HostIdentity, matches
from reconciler.schedule import Schedule, parse_schedule

if TYPE_CHECKING:
    from reconciler.spec import SpecError, Task

# `plan --until` refuses windows with more due times than this (a per-second task over a
# year is 31 million lines); `--count` asks for an explicit number instead.
PLAN_LIMIT = 100_000

# Fields whose change restarts a daemon (PRODUCT.md: "process-relevant fields").
PROCESS_FIELDS = ("command", "env", "user", "workingDir")


# --- loading ------------------------------------------------------------------------------


@dataclass
class Loaded:
    tasks: dict[str, Task]
    errors: list[SpecError]
    missing: list[str]  # paths that do not exist: nothing was loaded


def load(paths: Sequence[str]) -> Loaded:
    # Imported here: the spec room (pydantic, jsonschema) is the slow part of startup, and
    # `status`, `stop` and friends never need it.
    from reconciler.spec import load_paths

    missing = [p for p in paths if not os.path.lexists(p)]
    if missing:
        return Loaded({}, [], missing)
    result = load_paths([Path(p) for p in paths])
    return Loaded(dict(result.tasks), list(result.errors), [])


# --- due times ----------------------------------------------------------------------------


def next_due(task: Task, after: int, anchor: int | None = None) -> int | None:
    """The first due second of a cron task strictly after `after`; None when not knowable.

    Daemons and `@reboot` have none; `@every` has one only with its anchor.
    """
    sched = task.schedule
    if task.type != "cron" or sched is None or sched.kind == "reboot":
        return None
    if sched.kind == "every" and anchor is None:
        return None
    return sched.next_after(after, task.timezone, anchor)


@dataclass(frozen=True, order=True)
class PlanEntry:
    due: int
    task: str


class PlanTooLarge(Exception):
    """The window holds more due times than `PLAN_LIMIT`."""


def plan_tasks(tasks: Mapping[str, Task], identity: HostIdentity) -> list[Task]:
    """Tasks `plan` lists for a host: scheduled cron tasks, not suspended, hosts matching."""
    return [
        t
        for _, t in sorted(tasks.items())
        if t.type == "cron"
        and not t.suspend
        and t.schedule is not None
        and t.schedule.kind in ("cron", "every")
        and matches(t.hosts, identity)
    ]


def _due_times(task: Task, start: int) -> Iterator[PlanEntry]:
    assert task.schedule is not None
    # `@every` is anchored at --from: due at from+D, from+2D, ...
    anchor = start if task.schedule.kind == "every" else None
    for due in task.schedule.iter_due(start, task.timezone, anchor):
        yield PlanEntry(due, task.name)


def plan(
    tasks: Sequence[Task],
    start: float,
    until: float | None = None,
    count: int | None = None,
    limit: int | None = PLAN_LIMIT,
) -> Iterator[PlanEntry]:
    """Due times at or after `start` and before `until` (or the first `count`), merged
    across tasks in order of time, then task name.

    With `until`, raises PlanTooLarge before yielding anything when the window holds
    more than `limit` due times.
    """
    first = math.ceil(start)
    merged: Iterator[PlanEntry] = heapq.merge(*(_due_times(t, first) for t in tasks))
    if count is not None:
        return itertools.islice(merged, max(0, count))
    if until is None:
        raise ValueError("plan needs until or count")
    window = itertools.takewhile(lambda e: e.due < until, merged)
    if limit is None:
        return window
    head = list(itertools.islice(window, limit + 1))
    if len(head) > limit:
        raise PlanTooLarge(f"the window holds more than {limit} due times")
    return iter(head)


# --- documents ----------------------------------------------------------------------------


def env_hash(value: Any) -> str:
    """How the controller stores an env value in its applied set (never in clear)."""
    return "sha256:" + hashlib.sha256(str(value).encode()).hexdigest()[:16]


def plain(document: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy as JSON has it (tuples become lists), comparable with what was read back."""
    out = json.loads(json.dumps(document))
    assert isinstance(out, dict)
    return out


def hashed_document(document: Mapping[str, Any]) -> dict[str, Any]:
    """A document with env values hashed as the controller's applied set keeps them."""
    doc = plain(document)
    spec = doc.get("spec")
    if isinstance(spec, dict) and isinstance(spec.get("env"), dict):
        spec["env"] = {str(k): env_hash(v) for k, v in spec["env"].items()}
    return doc


def changed_paths(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted paths of the leaves that differ (`spec.schedule`, `spec.env.TOKEN`)."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in old or key not in new:
                out.append(path)
            else:
                out.extend(changed_paths(old[key], new[key], path))
        return out
    return [] if old == new else [prefix or "."]


# --- diff against an applied set ------------------------------------------------------


@dataclass(frozen=True)
class AppliedTask:
    """One entry of the controller's applied set (APPLIED_FILE)."""

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


def read_applied(data: Any) -> dict[str, AppliedTask]:
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


@dataclass(frozen=True)
class LiveRun:
    """One alive run as the controller records it (RUNS_FILE)."""

    run_id: str
    task: str
    kind: str
    pid: int
    started_at: float
    due: int | None
    fingerprint: str
    grace_s: float
    stopping: str | None
    trigger: str


def read_runs(data: Any) -> list[LiveRun]:
    out: list[LiveRun] = []
    if not isinstance(data, list):
        return out
    for rec in data:
        if not isinstance(rec, Mapping):
            continue
        try:
            due = rec.get("due")
            out.append(
                LiveRun(
                    run_id=str(rec["run_id"]),
                    task=str(rec["task"]),
                    kind="daemon" if rec.get("kind") == "daemon" else "cron",
                    pid=int(rec["pid"]),
                    started_at=float(rec["started_at"]),
                    due=int(due) if isinstance(due, (int, float)) else None,
                    fingerprint=str(rec.get("fingerprint") or ""),
                    grace_s=float(rec.get("grace_s") or 30),
                    stopping=rec.get("stopping") if isinstance(rec.get("stopping"), str) else None,
                    trigger=str(rec.get("trigger") or "schedule"),
                )
            )
        except (KeyError, TypeError, ValueError):
            continue
    return sorted(out, key=lambda r: (r.task, r.started_at, r.run_id))


@dataclass(frozen=True)
class ProcessAction:
    """A consequence for processes: what the controller does once the change is applied.

    kind: start-daemon, restart-daemon, stop-daemon, left-running, schedule, reboot,
    suspended, none.
    """

    kind: str
    message: str
    run_ids: tuple[str, ...] = ()
    pids: tuple[int, ...] = ()
    next_due: int | None = None


@dataclass
class TaskChange:
    name: str
    change: str  # added | changed | removed
    old: AppliedTask | None
    new: Task | None
    fields: list[str] = field(default_factory=list)
    actions: list[ProcessAction] = field(default_factory=list)

    @property
    def type(self) -> str:
        if self.new is not None:
            return self.new.type
        assert self.old is not None
        return self.old.type


def _process_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return any(old.get(f) != new.get(f) for f in PROCESS_FIELDS)


def _ids(runs: Iterable[LiveRun]) -> tuple[tuple[str, ...], tuple[int, ...]]:
    rs = list(runs)
    return tuple(r.run_id for r in rs), tuple(r.pid for r in rs)


def _left_running(runs: list[LiveRun]) -> ProcessAction | None:
    cron = [r for r in runs if r.kind == "cron" and r.stopping is None]
    if not cron:
        return None
    ids, pids = _ids(cron)
    n = len(cron)
    return ProcessAction(
        "left-running",
        f"{n} cron run{'s' if n != 1 else ''} in flight (pid {', '.join(map(str, pids))}) "
        "left to finish as started",
        ids,
        pids,
    )


def _schedule_action(
    task: Task, now: int, anchor: int | None, against_controller: bool
) -> ProcessAction:
    sched = task.schedule
    assert sched is not None
    if task.suspend:
        return ProcessAction("suspended", "suspended: no new runs")
    if sched.kind == "reboot":
        when = "when the controller next starts" if against_controller else "when the controller starts"
        return ProcessAction("reboot", f"@reboot: runs once {when}")
    if sched.kind == "every" and anchor is None:
        anchor = now  # a newly applied @every is anchored when it is applied
    return ProcessAction("schedule", "next run", next_due=sched.next_after(now, task.timezone, anchor))


def _stop_daemon(runs: list[LiveRun], kind: str, verb: str) -> ProcessAction:
    ids, pids = _ids(runs)
    grace = max((r.grace_s for r in runs), default=30.0)
    return ProcessAction(
        kind,
        f"daemon {verb} (pid {', '.join(map(str, pids))}: SIGTERM, SIGKILL after {grace:g}s)",
        ids,
        pids,
    )


def _daemon_action(
    old: AppliedTask | None, new: Task, daemons: list[LiveRun]
) -> ProcessAction:
    if new.suspend:
        if daemons:
            return _stop_daemon(daemons, "stop-daemon", "stopped (suspended)")
        return ProcessAction("suspended", "suspended: not started")
    fp = new.process_fingerprint()
    if daemons:
        stale = [r for r in daemons if r.fingerprint != fp]
        if not stale:
            return ProcessAction("none", "daemon left running (no process-relevant change)")
        return _stop_daemon(stale, "restart-daemon", "restarted")
    was_daemon = old is not None and old.type == "daemon" and not old.spec.get("suspend")
    if was_daemon and old is not None:
        new_spec = hashed_document(new.document).get("spec") or {}
        if not _process_changed(old.spec, new_spec):
            return ProcessAction("none", "no process changes (the daemon is not running now)")
    return ProcessAction("start-daemon", "daemon started")


def _actions(
    old: AppliedTask | None,
    new: Task | None,
    runs: list[LiveRun],
    now: int,
    anchor: int | None,
    against_controller: bool,
) -> list[ProcessAction]:
    """The process consequences of one task's change, as `reconcile` will decide them."""
    out: list[ProcessAction] = []
    daemons = [r for r in runs if r.kind == "daemon" and r.stopping is None]
    if new is None or new.type != "daemon":
        # Removed, or now a cron task: a daemon of it is desired no more.
        if daemons:
            out.append(_stop_daemon(daemons, "stop-daemon", "stopped"))
    else:
        out.append(_daemon_action(old, new, daemons))
    if new is not None and new.type == "cron" and new.schedule is not None:
        old_spec = old.spec if old is not None else {}
        new_spec = new.document.get("spec") or {}
        if (
            old is None
            or old.type != "cron"
            or any(old_spec.get(k) != new_spec.get(k) for k in ("schedule", "timezone"))
            or bool(old_spec.get("suspend")) != new.suspend
        ):
            if old is not None and old_spec.get("schedule") != new_spec.get("schedule"):
                anchor = None  # a new @every schedule is anchored anew
            out.append(_schedule_action(new, now, anchor, against_controller))
    left = _left_running(runs)
    if left is not None:
        out.append(left)
    if not out:
        out.append(ProcessAction("none", "no new runs" if new is None else "no process changes"))
    return out


@dataclass
class Diff:
    changes: list[TaskChange]
    other_hosts: list[str]  # tasks in the documents that do not select this host

    @property
    def added(self) -> list[str]:
        return [c.name for c in self.changes if c.change == "added"]

    @property
    def changed(self) -> list[str]:
        return [c.name for c in self.changes if c.change == "changed"]

    @property
    def removed(self) -> list[str]:
        return [c.name for c in self.changes if c.change == "removed"]


def diff(
    applied: Mapping[str, AppliedTask],
    tasks: Mapping[str, Task],
    identity: HostIdentity,
    runs: Sequence[LiveRun] = (),
    anchors: Mapping[str, int] | None = None,
    now: float = 0.0,
    against_controller: bool = True,
) -> Diff:
    """What applying `tasks` on the host `identity` changes against `applied`."""
    mine = {n: t for n, t in tasks.items() if matches(t.hosts, identity)}
    other = sorted(n for n in tasks if n not in mine)
    t_now = math.floor(now)
    anchors = anchors or {}
    changes: list[TaskChange] = []
    for name in sorted(set(mine) | set(applied)):
        old = applied.get(name)
        new = mine.get(name)
        if old is not None and new is not None:
            fields = changed_paths(plain(old.document), hashed_document(new.document))
            if not fields:
                continue
            change = TaskChange(name, "changed", old, new, fields)
        elif new is not None:
            change = TaskChange(name, "added", None, new)
        else:
            change = TaskChange(name, "removed", old, None)
        task_runs = [r for r in runs if r.task == name]
        change.actions = _actions(
            old, new, task_runs, t_now, anchors.get(name), against_controller
        )
        changes.append(change)
    return Diff(changes=changes, other_hosts=other)


# --- what a running controller has in force ------------------------------------------


class LedgerView(Protocol):
    """What `applied_next_due` needs of the controller's ledger (controller.records)."""

    cursors: dict[str, int]

    def anchor(self, task: str, schedule_text: str | None) -> int | None: ...


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
        return AppliedSchedule(parse_schedule(text), zone)
    except ValueError as exc:
        return AppliedSchedule(None, zone, f"schedule: {exc}")


def applied_next_due(task: AppliedTask, ledger: LedgerView, now: float) -> int | None:
    """When the controller next starts a run of this cron task, from its ledger.

    The next due time after the later of the ledger's cursor (the last due time
    handled) and now. None for daemons, `@reboot`, suspended tasks and `@every` without
    an anchor yet.
    """
    if task.spec.get("suspend"):
        return None
    found = applied_schedule(task)
    sched = found.schedule
    if sched is None or sched.kind == "reboot":
        return None
    anchor = None
    if sched.kind == "every":
        anchor = ledger.anchor(task.name, sched.text)
        if anchor is None:
            return None
    after = max(ledger.cursors.get(task.name, math.floor(now)), math.floor(now))
    return sched.next_after(after, found.zone, anchor)
