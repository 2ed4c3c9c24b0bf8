"""What `apply` would do, and when: answered for the operator commands, rendering nothing.

Which tasks run on a host, when they are next due (`get`, `plan`, `status`), and what a
new set of documents changes against the set a controller has applied (`diff`, whose
process actions come from `reconcile` itself).
"""

from __future__ import annotations

import heapq
import itertools
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from reconciler.due import jitter_offset
from reconciler.envmask import hashed_document, plain
from reconciler.hosts import HostIdentity, matches
from reconciler.reconcile import (
    Action,
    DaemonState,
    Inputs,
    RunView,
    StartRun,
    StopRun,
    daemon_phase,
    reconcile,
)
from reconciler.state.applied import AppliedTask, applied_schedule

if TYPE_CHECKING:
    from reconciler.due import ScheduleLike
    from reconciler.spec import SpecError, Task

# `plan --until` refuses windows with more due times than this (a per-second task over a
# year is 31 million lines); `--count` asks for an explicit number instead.
PLAN_LIMIT = 100_000


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


def next_due(
    schedule: ScheduleLike | None,
    zone: Any,
    now: float,
    *,
    cursor: int | None = None,
    anchor: int | None = None,
) -> int | None:
    """When the controller next starts a scheduled run: the first due second after the
    later of `cursor` (the last due time it handled) and now. None when that is not
    knowable: no schedule, `@reboot`, `@every` without its anchor. The one rule of "next
    due" for `get`, `status` and `diff` (the controller's own is its DueQueue)."""
    if schedule is None or schedule.kind == "reboot":
        return None
    if schedule.kind == "every" and anchor is None:
        return None
    after = math.floor(now) if cursor is None else max(cursor, math.floor(now))
    return schedule.next_after(after, zone, anchor)


@dataclass(frozen=True, order=True)
class PlanEntry:
    start: int  # the due time plus the task's jitter on the host (jitterSeconds)
    task: str
    due: int


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


def _due_times(task: Task, start: int, host: str) -> Iterator[PlanEntry]:
    assert task.schedule is not None
    # `@every` is anchored at --from: due at from+D, from+2D, ...
    anchor = start if task.schedule.kind == "every" else None
    jitter = jitter_offset(task.name, host, task.jitter_seconds)
    first = start - jitter if anchor is None else start  # runs that start from `start` on
    for due in task.schedule.iter_due(first, task.timezone, anchor):
        yield PlanEntry(due + jitter, task.name, due)


def plan(
    tasks: Sequence[Task],
    start: float,
    until: float | None = None,
    count: int | None = None,
    limit: int | None = PLAN_LIMIT,
    host: str = "",
) -> Iterator[PlanEntry]:
    """Runs starting at or after `start` and before `until` (or the first `count`), merged
    across tasks in order of start time, then task name. `host`: see due.jitter_host.

    With `until`, raises PlanTooLarge before yielding anything when the window holds
    more than `limit` due times.
    """
    first = math.ceil(start)
    merged: Iterator[PlanEntry] = heapq.merge(*(_due_times(t, first, host) for t in tasks))
    if count is not None:
        return itertools.islice(merged, max(0, count))
    if until is None:
        raise ValueError("plan needs until or count")
    window = itertools.takewhile(lambda e: e.start < until, merged)
    if limit is None:
        return window
    head = list(itertools.islice(window, limit + 1))
    if len(head) > limit:
        raise PlanTooLarge(f"the window holds more than {limit} due times")
    return iter(head)


# --- documents ----------------------------------------------------------------------------


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
class ProcessAction:
    """A consequence for processes: what the controller does once the change is applied.

    kind: start-daemon, restart-daemon, stop-daemon, stop-run, left-running, schedule,
    reboot, suspended, none.
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


def _ids(runs: Iterable[RunView]) -> tuple[tuple[str, ...], tuple[int, ...]]:
    rs = list(runs)
    return tuple(r.run_id for r in rs), tuple(r.pid for r in rs)


def _left_running(runs: Sequence[RunView], stopped: Mapping[str, StopRun]) -> ProcessAction | None:
    cron = [r for r in runs if r.kind == "cron" and r.stopping is None and r.run_id not in stopped]
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
    task: Task, now: float, anchor: int | None, against_controller: bool
) -> ProcessAction:
    sched = task.schedule
    assert sched is not None
    if task.suspend:
        return ProcessAction("suspended", "suspended: no new runs")
    if sched.kind == "reboot":
        when = "when the controller next starts" if against_controller else "when the controller starts"
        return ProcessAction("reboot", f"@reboot: runs once {when}")
    if sched.kind == "every" and anchor is None:
        anchor = math.floor(now)  # a newly applied @every is anchored when it is applied
    return ProcessAction(
        "schedule", "next run", next_due=next_due(sched, task.timezone, now, anchor=anchor)
    )


# How `diff` words each stop `reconcile` decides: (kind, verb) by stop reason.
_DAEMON_STOPS = {
    "changed": ("restart-daemon", "restarted"),
    "removed": ("stop-daemon", "stopped"),
    "suspended": ("stop-daemon", "stopped (suspended)"),
    "scaled-down": ("stop-daemon", "stopped (scaled down)"),
    "duplicate": ("stop-daemon", "stopped (a duplicate)"),
    "timeout": ("stop-daemon", "stopped (past its timeoutSeconds)"),
}

# What `diff` says of a daemon task `reconcile` neither starts nor stops, by its phase.
_DAEMON_PHASES = {
    "running": ("none", "daemon left running (no process-relevant change)"),
    "stopping": ("none", "daemon being stopped already"),
    "suspended": ("suspended", "suspended: not started"),
    "finished": ("none", "daemon finished: not started until its process fields change"),
    "crash-loop": ("none", "daemon gave up after a crash loop: not started until it changes"),
    "back-off": ("none", "daemon waits out its back-off, then starts"),
}


def _stop(kind: str, verb: str, runs: list[RunView]) -> ProcessAction:
    ids, pids = _ids(runs)
    grace = max((r.grace_s for r in runs), default=30.0)
    what = "daemon" if kind != "stop-run" else "run"
    return ProcessAction(
        kind,
        f"{what} {verb} (pid {', '.join(map(str, pids))}: SIGTERM, SIGKILL after {grace:g}s)",
        ids,
        pids,
    )


def _decided(
    new: Task | None,
    runs: Sequence[RunView],
    decided: Sequence[Action],
    daemons: Mapping[str, DaemonState],
    now: float,
) -> list[ProcessAction]:
    """The process actions `reconcile` decided for one task (its runs stopped, its daemon
    started), or, when it decided none for a daemon, why not (its phase)."""
    stopped = {a.run_id: a for a in decided if isinstance(a, StopRun)}
    groups: dict[tuple[str, str], list[RunView]] = {}
    for run in runs:
        stop = stopped.get(run.run_id)
        if stop is None:
            continue
        if run.kind == "daemon":
            key = _DAEMON_STOPS.get(stop.reason, ("stop-daemon", f"stopped ({stop.reason})"))
        else:
            key = ("stop-run", f"stopped ({stop.reason})")
        groups.setdefault(key, []).append(run)
    out = [_stop(kind, verb, rs) for (kind, verb), rs in groups.items()]
    n = sum(1 for a in decided if isinstance(a, StartRun))
    if n:
        out.append(ProcessAction("start-daemon", f"{n} daemon replicas started" if n > 1 else "daemon started"))
    elif new is not None and new.type == "daemon" and not out:
        mine = [r for r in runs if r.kind == "daemon"]
        phase = daemon_phase(
            fingerprint=new.process_fingerprint(), state=daemons.get(new.name, DaemonState()),
            now=now, runs=mine, suspend=new.suspend,
        )
        out.append(ProcessAction(*_DAEMON_PHASES.get(phase, ("none", f"daemon {phase}"))))
    return out


def _actions(
    change: TaskChange,
    runs: Sequence[RunView],
    decided: Sequence[Action],
    daemons: Mapping[str, DaemonState],
    now: float,
    anchor: int | None,
    against_controller: bool,
) -> list[ProcessAction]:
    """The process consequences of one task's change: those of the decision, then when a
    cron task next runs, then the cron runs left to finish."""
    old, new = change.old, change.new
    out = _decided(new, runs, decided, daemons, now)
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
    left = _left_running(runs, {a.run_id: a for a in decided if isinstance(a, StopRun)})
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


def predict(
    tasks: Mapping[str, Task],
    runs: Sequence[RunView],
    daemons: Mapping[str, DaemonState],
    now: float,
) -> list[Action]:
    """What the controller decides once `tasks` (this host's) are in force, with these
    live runs and this ledger: the decision itself, `reconcile`, with nothing due."""
    return reconcile(Inputs(now=now, tasks=tasks, observed=runs, daemons=daemons))


def diff(
    applied: Mapping[str, AppliedTask],
    tasks: Mapping[str, Task],
    identity: HostIdentity,
    runs: Sequence[RunView] = (),
    anchors: Mapping[str, int] | None = None,
    now: float = 0.0,
    against_controller: bool = True,
    daemons: Mapping[str, DaemonState] | None = None,
) -> Diff:
    """What applying `tasks` on the host `identity` changes against `applied`, given the
    controller's live runs (runs.json) and ledger (`@every` anchors, daemon states)."""
    mine = {n: t for n, t in tasks.items() if matches(t.hosts, identity)}
    other = sorted(n for n in tasks if n not in mine)
    anchors = anchors or {}
    daemons = daemons or {}
    decided = predict(mine, runs, daemons, now)
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
        ids = {r.run_id for r in task_runs}
        own = [a for a in decided if (a.run_id in ids if isinstance(a, StopRun) else a.task == name)]
        change.actions = _actions(
            change, task_runs, own, daemons, now, anchors.get(name), against_controller
        )
        changes.append(change)
    return Diff(changes=changes, other_hosts=other)


# --- what a running controller has in force ------------------------------------------


class LedgerView(Protocol):
    """What `applied_next_due` needs of the controller's ledger (controller.runs)."""

    cursors: dict[str, int]

    def anchor(self, task: str, schedule_text: str | None) -> int | None: ...


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
    anchor = ledger.anchor(task.name, sched.text) if sched is not None else None
    return next_due(sched, found.zone, now, cursor=ledger.cursors.get(task.name), anchor=anchor)
