"""The pure decision: given tasks, due times, live runs and the clock, what to do now.

Nothing here touches the OS. The controller observes, calls `reconcile`, and executes the
actions it gets back; tests drive it with hand-made tasks, runs and instants.

Times are epoch seconds. `now` may be fractional (run ages, back-off); due times are whole
seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from reconciler.daemons import (
    BACKOFF_INITIAL_S,
    BACKOFF_MAX_S,
    BACKOFF_RESET_AFTER_S,
    CrashLoop,
    DaemonExit,
    DaemonPhase,
    DaemonPolicy,
    DaemonState,
    after_daemon_exit,
    daemon_phase,
)
from reconciler.due import (
    MAX_ENUMERATED_DUE,
    CursorMoves,
    DueQueue,
    DueSet,
    DueTask,
    collect_due,
)

RunKind = Literal["cron", "daemon"]
Trigger = Literal["schedule", "manual", "reboot", "daemon", "retry"]

__all__ = [
    "BACKOFF_INITIAL_S",
    "BACKOFF_MAX_S",
    "BACKOFF_RESET_AFTER_S",
    "MAX_ENUMERATED_DUE",
    "Action",
    "CrashLoop",
    "CursorMoves",
    "DaemonExit",
    "DaemonPhase",
    "DaemonPolicy",
    "DaemonState",
    "DueQueue",
    "DueSet",
    "Inputs",
    "ManualRequest",
    "RefuseRun",
    "RetryPolicy",
    "RunView",
    "SkipRun",
    "StartRun",
    "StopRun",
    "WaitingRetry",
    "after_daemon_exit",
    "collect_due",
    "daemon_key",
    "daemon_phase",
    "reconcile",
    "retry_at",
]



class TaskLike(DueTask, Protocol):
    """The fields of `reconciler.spec.Task` the decision reads (the due-time ones are
    DueTask's)."""

    @property
    def max_concurrency(self) -> int: ...

    @property
    def concurrency_policy(self) -> str: ...

    @property
    def restart_policy(self) -> str: ...

    @property
    def suspend(self) -> bool: ...

    @property
    def replicas(self) -> int: ...

    def process_fingerprint(self) -> str: ...

    def spec_fingerprint(self) -> str: ...


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
    attempt: int = 1  # 2, 3, ... for retries of the same due time
    replica: int = 0  # which of a daemon's `replicas` this process is


@dataclass(frozen=True)
class StartRun:
    task: str
    due: int | None
    trigger: Trigger
    request_id: str | None = None
    attempt: int = 1
    replica: int = 0  # daemons: RECONCILER_REPLICA
    fencing_token: int | None = None  # placement: one: the claim's or the lock's revision


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
    attempt: int | None = None  # set when a waiting retry is dropped
    host: str | None = None  # reason elsewhere: the host that runs it


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
class RetryPolicy:
    limit: int  # retries after the first attempt
    delay_s: float  # before the first retry; doubles each time
    max_delay_s: float


@dataclass(frozen=True)
class WaitingRetry:
    """The next attempt of a failed cron run, waiting for its time (state: it survives a
    restart)."""

    due: int
    attempt: int
    not_before: float


def retry_at(policy: RetryPolicy | None, attempt: int, ended_at: float) -> float | None:
    """When the attempt after `attempt` (which just failed) may start; None when no retry
    is left. The delay counts from the end of the failed attempt and doubles each time."""
    if policy is None or attempt > policy.limit:
        return None
    return ended_at + min(policy.max_delay_s, policy.delay_s * 2 ** (attempt - 1))


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
    retries: Mapping[str, WaitingRetry] = field(default_factory=dict)  # by task


def _given_up(
    tasks: Mapping[str, TaskLike], daemons: Mapping[str, DaemonState]
) -> set[tuple[str, int]]:
    """Daemon replicas that crash-looped under the document now in force."""
    out: set[tuple[str, int]] = set()
    for key, state in daemons.items():
        if state.gave_up is None:
            continue
        name, _, index = key.partition("/")
        task = tasks.get(name)
        if task is not None and state.gave_up == task.spec_fingerprint():
            out.add((name, int(index) if index.isdigit() else 0))
    return out


_NO_DAEMON_STATE = DaemonState()


def daemon_key(task: str, replica: int) -> str:
    """Where a daemon replica's restart bookkeeping is kept: the task's name for replica 0
    (as before replicas existed), `name/N` for the others (`/` is never in a name)."""
    return task if replica == 0 else f"{task}/{replica}"


def reconcile(inputs: Inputs) -> list[Action]:
    """What to do now."""
    now, tasks, due, observed = inputs.now, inputs.tasks, inputs.due, inputs.observed
    daemons, manual, reboot, mono = inputs.daemons, inputs.manual, inputs.reboot, inputs.mono
    daemon_tasks, retries = inputs.daemon_tasks, inputs.retries
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

    def try_start(
        task: TaskLike, due_t: int | None, trigger: Trigger, req: str | None, attempt: int = 1
    ) -> str | None:
        runs = _alive(observed, task.name) + started.get(task.name, [])
        ok, stops = _admit(task, runs, stopping_now)
        if not ok:
            return "max-concurrency"
        for s in stops:
            stopping_now.add(s.run_id)
            actions.append(s)
        actions.append(StartRun(task.name, due_t, trigger, req, attempt))
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

    # Waiting retries: dropped when the task's next due time came first (superseded), or
    # the task went or is suspended; started when their time has come and a place is free.
    new_due = {d.task for d in due if d.last is not None}
    for name, retry in sorted(retries.items()):
        task = tasks.get(name)
        if name in new_due:
            actions.append(SkipRun(name, retry.due, "superseded", attempt=retry.attempt))
        elif task is None or task.type != "cron":
            actions.append(SkipRun(name, retry.due, "removed", attempt=retry.attempt))
        elif task.suspend:
            actions.append(SkipRun(name, retry.due, "suspended", attempt=retry.attempt))
        elif retry.not_before <= now:
            try_start(task, retry.due, "retry", None, retry.attempt)  # else: waits for a place

    given_up = _given_up(tasks, daemons)  # (task, replica) of daemons that crash-looped
    for req in manual:
        task = tasks.get(req.task)
        if task is None:
            actions.append(RefuseRun(req.task, req.request_id, "no such task on this host"))
            continue
        if task.type != "cron":
            # `reconciler run NAME` starts again the replicas that gave up after a crash loop.
            live = {r.replica for r in _alive(observed, req.task)}
            restart = sorted(r for t, r in given_up if t == req.task and r not in live)
            for i, replica in enumerate(restart):
                given_up.discard((req.task, replica))
                request = req.request_id if i == 0 else None
                actions.append(StartRun(req.task, None, "manual", request, replica=replica))
            if not restart:
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
        for run in runs:
            if run.fingerprint != fp:
                stop(run, "changed")
            elif run.replica >= task.replicas:
                stop(run, "scaled-down")
        starting = {a.replica for a in actions if isinstance(a, StartRun) and a.task == name}
        for replica in range(task.replicas):
            mine = [r for r in runs if r.replica == replica]
            for run in [r for r in mine if r.fingerprint == fp and r.stopping is None][1:]:
                stop(run, "duplicate")
            if mine or replica in starting:
                continue  # one is running (or starting), or an old one is on its way out
            state = daemons.get(daemon_key(name, replica), _NO_DAEMON_STATE)
            gave_up = (name, replica) in given_up
            if daemon_phase(fingerprint=fp, state=state, now=now, gave_up=gave_up) == "starting":
                actions.append(StartRun(name, None, "daemon", replica=replica))
    return actions

