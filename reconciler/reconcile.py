"""The pure decision: given tasks, due times, live runs and the clock, what to do now.

Nothing here touches the OS. The controller observes, calls `reconcile`, and executes the
actions it gets back; tests drive it with hand-made tasks, runs and instants.

Times are epoch seconds. `now` may be fractional (run ages, back-off); due times are whole
seconds.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

RunKind = Literal["cron", "daemon"]
Trigger = Literal["schedule", "manual", "reboot", "daemon"]

# Back-off of crash-looping daemons, as systemd/Kubernetes users expect.
BACKOFF_INITIAL_S = 1.0
BACKOFF_MAX_S = 300.0
BACKOFF_RESET_AFTER_S = 600.0

# Beyond this many missed due times of one task in one tick, the older ones are not
# enumerated one by one: a clock jumped by a year must not cost millions of iterations.
MAX_ENUMERATED_DUE = 1000


class ScheduleLike(Protocol):
    @property
    def kind(self) -> str: ...

    def next_after(self, t: int, tz: ZoneInfo, anchor: int | None = None) -> int | None: ...


class TaskLike(Protocol):
    """The fields of `reconciler.spec.Task` the decision reads."""

    @property
    def name(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def schedule(self) -> ScheduleLike | None: ...

    @property
    def timezone(self) -> ZoneInfo: ...

    @property
    def max_concurrency(self) -> int: ...

    @property
    def concurrency_policy(self) -> str: ...

    @property
    def starting_deadline_seconds(self) -> int: ...

    @property
    def restart_policy(self) -> str: ...

    @property
    def suspend(self) -> bool: ...


    def process_fingerprint(self) -> str: ...


@dataclass(frozen=True)
class RunView:
    """One live run as observed: what was started, and with which limits."""

    run_id: str
    task: str
    kind: RunKind
    pid: int
    started_at: float
    due: int | None
    fingerprint: str
    timeout_s: int | None
    grace_s: float
    stopping: str | None = None  # the stop reason once a stop was sent
    # Monotonic start, for the controller's own runs: a run's age must not jump with the
    # wall clock (a step forward would "time out" healthy runs). None for adopted runs.
    started_mono: float | None = None


@dataclass(frozen=True)
class StartRun:
    task: str
    due: int | None
    trigger: Trigger
    request_id: str | None = None


@dataclass(frozen=True)
class StopRun:
    run_id: str
    reason: str
    grace_s: float


@dataclass(frozen=True)
class SkipRun:
    task: str
    due: int | None
    reason: str
    count: int | None = 1  # None: a summarised range of older due times, not counted
    due_last: int | None = None


@dataclass(frozen=True)
class RefuseRun:
    """A manual run request that cannot be honoured."""

    task: str
    request_id: str
    reason: str


Action = StartRun | StopRun | SkipRun | RefuseRun


@dataclass(frozen=True)
class ManualRequest:
    request_id: str
    task: str


@dataclass(frozen=True)
class DueSet:
    """What one task has due in one tick."""

    task: str
    run: int | None  # the due time to start now, if any
    coalesced: tuple[int, ...] = ()
    deadline: tuple[int, ...] = ()
    # Older due times not enumerated (see MAX_ENUMERATED_DUE): first, last of the range.
    elided: tuple[int, int] | None = None
    last: int | None = None  # the latest due time handled (the ledger's new cursor)


@dataclass(frozen=True)
class DaemonState:
    """Restart bookkeeping of one daemon task."""

    failures: int = 0
    not_before: float = 0.0
    # A daemon that ended for good (Never, or OnFailure with success) is not restarted
    # until its process-relevant fields change.
    finished_fingerprint: str | None = None
    # The process-relevant fields the failures were counted for: a changed daemon starts
    # afresh, without the back-off of its previous version (as Kubernetes does).
    failed_fingerprint: str | None = None


@dataclass
class CursorMoves:
    """What DueQueue.sync moved: new cursors, and the schedule each is now set under."""

    cursors: dict[str, int] = field(default_factory=dict)
    schedules: dict[str, str] = field(default_factory=dict)


# --- due times ------------------------------------------------------------------------


def collect_due(
    task: str,
    schedule: ScheduleLike,
    tz: ZoneInfo,
    cursor: int,
    now: int,
    deadline_s: int,
    anchor: int | None = None,
) -> tuple[DueSet, int | None]:
    """Due times in (cursor, now], split into the run to start and the skips.

    Returns the set and the first due time after `now` (None: never again).
    Several missed due times coalesce into one run for the latest; each other one is a
    skip: `coalesced` while within the deadline, `deadline` past it.
    """
    times: list[int] = []
    elided: tuple[int, int] | None = None
    nxt = schedule.next_after(cursor, tz, anchor)
    while nxt is not None and nxt <= now:
        times.append(nxt)
        if len(times) >= MAX_ENUMERATED_DUE and nxt < now - deadline_s - 1:
            # Everything up to now - deadline - 1 is past the deadline anyway: summarise.
            jump_to = now - deadline_s - 1
            first_elided = schedule.next_after(nxt, tz, anchor)
            if first_elided is not None and first_elided <= jump_to:
                last_elided = _last_at_or_before(schedule, tz, anchor, jump_to, first_elided)
                elided = (first_elided, last_elided)
            nxt = schedule.next_after(max(jump_to, nxt), tz, anchor)
            continue
        nxt = schedule.next_after(nxt, tz, anchor)
    if not times and elided is None:
        return DueSet(task=task, run=None, last=None), nxt
    last = max(times[-1] if times else cursor, elided[1] if elided else cursor)
    latest = times[-1] if times else None
    run: int | None = None
    coalesced: list[int] = []
    past: list[int] = []
    if latest is not None and now - latest <= deadline_s:
        run = latest
        earlier = times[:-1]
    else:
        earlier = times
    for t in earlier:
        (coalesced if now - t <= deadline_s else past).append(t)
    return (
        DueSet(
            task=task,
            run=run,
            coalesced=tuple(coalesced),
            deadline=tuple(past),
            elided=elided,
            last=last,
        ),
        nxt,
    )


def _last_at_or_before(
    schedule: ScheduleLike, tz: ZoneInfo, anchor: int | None, bound: int, known: int
) -> int:
    """The latest due time at or before `bound` (`known` is one), without walking every
    due time from `known`: widen a window back from `bound` until it holds one."""
    width = 1
    while width <= bound - known:
        probe = schedule.next_after(bound - width, tz, anchor)
        if probe is not None and probe <= bound:
            last = probe
            for _ in range(MAX_ENUMERATED_DUE):
                after = schedule.next_after(last, tz, anchor)
                if after is None or after > bound:
                    break
                last = after
            return last
        width *= 2
    return known


@dataclass(order=True)
class _HeapItem:
    due: int
    task: str = field(compare=True)
    generation: int = field(compare=False, default=0)


class DueQueue:
    """Next due time of every cron task in a heap, so a tick costs O(due), not O(tasks).

    `cursors` is the ledger: the last due time handled per task. A task first seen (or
    whose schedule changed) starts from the second it was seen: nothing before that is due.
    """

    def __init__(self) -> None:
        self._heap: list[_HeapItem] = []
        self._generation: dict[str, int] = {}
        self._next: dict[str, int | None] = {}
        self._key: dict[str, tuple[object, ...]] = {}
        self._removed: set[str] = set()

    def __len__(self) -> int:
        return len(self._next)

    @staticmethod
    def _schedule_key(task: TaskLike, anchor: int | None) -> tuple[object, ...]:
        text = getattr(task.schedule, "text", None) or id(task.schedule)
        return (text, str(task.timezone), anchor)

    def sync(
        self,
        tasks: Mapping[str, TaskLike],
        cursors: Mapping[str, int],
        anchors: Mapping[str, int],
        now: int,
        only: set[str] | None = None,
        schedules: Mapping[str, str] | None = None,
    ) -> CursorMoves:
        """Bring the queue in line with `tasks`; cursors of new or rescheduled tasks move to
        now. Returns those moves (and the schedule each cursor is now set under) for the
        caller to keep: the queue changes nothing it is handed.

        `only`: the names that may have changed (None: all of them). `schedules`: the
        schedule (text and zone) each cursor was set under, kept with the cursors: a cursor
        left by a previous controller under another schedule is not caught up from.
        """
        moves = CursorMoves()
        names = tasks.keys() if only is None else [n for n in only if n in tasks]
        wanted = {
            name: t
            for name in names
            if (t := tasks[name]).type == "cron"
            and t.schedule is not None
            and t.schedule.kind in ("cron", "every")
        }
        for name in list(self._next) if only is None else [n for n in only if n in self._next]:
            if name not in wanted:
                self._forget(name)
        for name, task in wanted.items():
            anchor = anchors.get(name)
            key = self._schedule_key(task, anchor)
            if self._key.get(name) == key:
                continue
            written = f"{key[0]}|{key[1]}"
            stale = schedules is not None and schedules.get(name, written) != written
            cursor = cursors.get(name)
            if name in self._key or name in self._removed or cursor is None or stale:
                # New, rescheduled, or back after a removal: only future times are due
                # (nothing was due while it did not exist). The old cursor still bars
                # any due time handled before.
                cursor = max(now if cursor is None else cursor, now)
                moves.cursors[name] = cursor
                self._removed.discard(name)
            if schedules is not None and schedules.get(name) != written:
                moves.schedules[name] = written
            self._key[name] = key
            assert task.schedule is not None
            self._push(name, task.schedule.next_after(cursor, task.timezone, anchor))
        return moves

    def _forget(self, name: str) -> None:
        self._removed.add(name)
        self._generation[name] = self._generation.get(name, 0) + 1
        self._next.pop(name, None)
        self._key.pop(name, None)

    def _push(self, name: str, due: int | None) -> None:
        gen = self._generation.get(name, 0) + 1
        self._generation[name] = gen
        self._next[name] = due
        if due is not None:
            heapq.heappush(self._heap, _HeapItem(due, name, gen))

    def next_due(self, name: str) -> int | None:
        return self._next.get(name)

    def earliest(self) -> int | None:
        while self._heap:
            top = self._heap[0]
            if self._generation.get(top.task) == top.generation and top.task in self._next:
                return top.due
            heapq.heappop(self._heap)
        return None

    def pop_due(
        self,
        now: int,
        tasks: Mapping[str, TaskLike],
        cursors: Mapping[str, int],
        anchors: Mapping[str, int],
    ) -> list[DueSet]:
        """Every task with a due time at or before `now`; advances the heap. Each DueSet's
        `last` is its task's new cursor: the caller records it (the journal), the queue
        changes no cursor."""
        out: list[DueSet] = []
        while self._heap and self._heap[0].due <= now:
            item = heapq.heappop(self._heap)
            name = item.task
            if self._generation.get(name) != item.generation or name not in self._next:
                continue
            task = tasks[name]
            assert task.schedule is not None
            cursor = cursors.get(name, item.due - 1)
            due, nxt = collect_due(
                name,
                task.schedule,
                task.timezone,
                cursor,
                now,
                task.starting_deadline_seconds,
                anchors.get(name),
            )
            if due.last is not None:
                out.append(due)
            self._push(name, nxt)
        out.sort(key=lambda d: d.task)
        return out


# --- daemons --------------------------------------------------------------------------


def after_daemon_exit(
    state: DaemonState,
    *,
    restart_policy: str,
    fingerprint: str,
    exit_code: int | None,
    signal: str | None,
    started_at: float,
    ended_at: float,
    stop_reason: str | None,
) -> DaemonState:
    """Restart bookkeeping once a daemon's process ended."""
    if stop_reason is not None and stop_reason != "timeout":
        # We stopped it (change, removal, shutdown): no back-off, no verdict.
        return replace(state, not_before=0.0)
    if stop_reason == "timeout":
        signal, exit_code = signal or "SIGTERM", None  # a daemon past timeoutSeconds failed
    succeeded = exit_code == 0 and signal is None
    if restart_policy == "Never" or (restart_policy == "OnFailure" and succeeded):
        return replace(state, finished_fingerprint=fingerprint)
    failures = state.failures
    if ended_at - started_at >= BACKOFF_RESET_AFTER_S:
        failures = 0
    if state.failed_fingerprint not in (None, fingerprint):
        failures = 0
    delay = min(BACKOFF_MAX_S, BACKOFF_INITIAL_S * (2**failures))
    return DaemonState(
        failures=failures + 1, not_before=ended_at + delay, failed_fingerprint=fingerprint
    )


# --- the decision ---------------------------------------------------------------------


def _alive(observed: Iterable[RunView], task: str) -> list[RunView]:
    return sorted((r for r in observed if r.task == task), key=lambda r: (r.started_at, r.run_id))


def _admit(
    task: TaskLike, runs: Sequence[RunView], stopping_now: set[str]
) -> tuple[bool, list[StopRun]]:
    """May one more run of `task` start? Returns the verdict and the stops Replace needs."""
    live = [r for r in runs if r.stopping is None and r.run_id not in stopping_now]
    if task.concurrency_policy == "Replace":
        excess = len(live) - task.max_concurrency + 1
        if excess <= 0:
            return True, []
        return True, [StopRun(r.run_id, "replaced", r.grace_s) for r in live[:excess]]
    # Forbid: a run that is being stopped still holds its place until it is gone.
    holding = [r for r in runs if r.kind == "cron"]
    return len(holding) < task.max_concurrency, []


@dataclass(frozen=True)
class Inputs:
    """Everything one decision looks at."""

    now: float
    tasks: Mapping[str, TaskLike]  # this host's tasks
    due: Sequence[DueSet] = ()  # from DueQueue.pop_due
    observed: Sequence[RunView] = ()  # the live runs
    daemons: Mapping[str, DaemonState] = field(default_factory=dict)
    manual: Sequence[ManualRequest] = ()
    reboot: Sequence[str] = ()  # @reboot tasks to start now
    # The daemons among `tasks`, kept by the caller so a tick does not scan every task.
    daemon_tasks: Mapping[str, TaskLike] | None = None
    mono: float | None = None  # the monotonic clock, for the age of our own runs


def reconcile(inputs: Inputs) -> list[Action]:
    """What to do now."""
    now, tasks, due, observed = inputs.now, inputs.tasks, inputs.due, inputs.observed
    daemons, manual, reboot, mono = inputs.daemons, inputs.manual, inputs.reboot, inputs.mono
    daemon_tasks = inputs.daemon_tasks
    actions: list[Action] = []
    stopping_now: set[str] = set()

    def stop(run: RunView, reason: str) -> None:
        if run.stopping is None and run.run_id not in stopping_now:
            stopping_now.add(run.run_id)
            actions.append(StopRun(run.run_id, reason, run.grace_s))

    # Runs past their timeout (the limits they were started with, not today's spec).
    for run in observed:
        if run.timeout_s is None:
            continue
        if mono is not None and run.started_mono is not None:
            age = mono - run.started_mono
        else:
            age = now - run.started_at
        if age >= run.timeout_s:
            stop(run, "timeout")

    started: dict[str, list[RunView]] = {}

    def try_start(task: TaskLike, due_t: int | None, trigger: Trigger, req: str | None) -> str | None:
        runs = _alive(observed, task.name) + started.get(task.name, [])
        ok, stops = _admit(task, runs, stopping_now)
        if not ok:
            return "max-concurrency"
        for s in stops:
            stopping_now.add(s.run_id)
            actions.append(s)
        actions.append(StartRun(task.name, due_t, trigger, req))
        # A placeholder so a second start in the same tick sees this one.
        placeholder = RunView(
            run_id=f"pending:{task.name}:{len(actions)}",
            task=task.name,
            kind="cron",
            pid=0,
            started_at=now,
            due=due_t,
            fingerprint="",
            timeout_s=None,
            grace_s=0,
        )
        started.setdefault(task.name, []).append(placeholder)
        return None

    for name in reboot:
        task = tasks.get(name)
        if task is None:
            continue
        if task.suspend:
            actions.append(SkipRun(name, int(now), "suspended"))
            continue
        reason = try_start(task, int(now), "reboot", None)
        if reason:
            actions.append(SkipRun(name, int(now), reason))

    for d in due:
        task = tasks.get(d.task)
        if d.elided is not None:
            actions.append(
                SkipRun(d.task, d.elided[0], "deadline", count=None, due_last=d.elided[1])
            )
        for t in d.deadline:
            actions.append(SkipRun(d.task, t, "deadline"))
        for t in d.coalesced:
            actions.append(SkipRun(d.task, t, "coalesced"))
        if d.run is None:
            continue
        if task is None:
            continue
        if task.suspend:
            actions.append(SkipRun(d.task, d.run, "suspended"))
            continue
        reason = try_start(task, d.run, "schedule", None)
        if reason:
            actions.append(SkipRun(d.task, d.run, reason))

    for req in manual:
        task = tasks.get(req.task)
        if task is None:
            actions.append(RefuseRun(req.task, req.request_id, "no such task on this host"))
            continue
        if task.type != "cron":
            actions.append(RefuseRun(req.task, req.request_id, "is a daemon; it runs already"))
            continue
        if task.suspend:
            actions.append(RefuseRun(req.task, req.request_id, "suspended"))
            continue
        reason = try_start(task, None, "manual", req.request_id)
        if reason:
            actions.append(RefuseRun(req.task, req.request_id, reason))

    # Daemons: desired state, converged every tick.
    by_task: dict[str, list[RunView]] = {}
    for run in observed:
        if run.kind == "daemon":
            by_task.setdefault(run.task, []).append(run)
    for name, runs in by_task.items():
        task = tasks.get(name)
        if task is None or task.type != "daemon":
            for run in runs:
                stop(run, "removed")
        elif task.suspend:
            for run in runs:
                stop(run, "suspended")
    for name, task in (tasks if daemon_tasks is None else daemon_tasks).items():
        if task.type != "daemon" or task.suspend:
            continue
        fp = task.process_fingerprint()
        runs = sorted(by_task.get(name, []), key=lambda r: (r.started_at, r.run_id))
        current = [r for r in runs if r.fingerprint == fp and r.stopping is None]
        for run in runs:
            if run.fingerprint != fp:
                stop(run, "changed")
        for run in current[1:]:
            stop(run, "duplicate")
        if runs:
            continue  # one is running, or an old one is still on its way out
        state = daemons.get(name, DaemonState())
        if state.finished_fingerprint == fp:
            continue
        # Waiting out a back-off: only for the version that failed, and never longer than
        # the longest back-off (the clock may have been stepped back since).
        if (
            state.failed_fingerprint in (None, fp)
            and now < state.not_before <= now + BACKOFF_MAX_S
        ):
            continue
        actions.append(StartRun(name, None, "daemon"))
    return actions

