"""The executor: carries out a tick's actions on processes and accounts for every run.

Start, stop and skip come from `reconcile`; exits come from the supervisor. Every run
that ends (it exited, could not start, or ended while no controller watched it) goes
through `finish`: logged, counted, remembered in the task's history and, for a daemon,
given its back-off. The live runs are the observed state the next decision reads.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from reconciler.controller import events
from reconciler.controller.events import RunEnd
from reconciler.controller.followup import FollowUp, start_record
from reconciler.controller.journal import DueJournal
from reconciler.controller.runs import Run, outcome_of
from reconciler.controller.skips import SkipReport
from reconciler.controller.statefiles import StateFiles
from reconciler.history import HistoryWriter, RunFinish, RunStart, reason_of
from reconciler.obs import Metrics
from reconciler.reconcile import (
    Action,
    CrashLoop,
    DaemonExit,
    DaemonPolicy,
    DaemonState,
    RefuseRun,
    RunKind,
    RunView,
    SkipRun,
    StartRun,
    StopRun,
    after_daemon_exit,
    daemon_key,
)
from reconciler.spec import Task
from reconciler.state import RUNS_FILE
from reconciler.state.runs import RunRecord
from reconciler.supervisor import Exited, Limits, RunHandle, RunSpec, SpawnError, Supervisor

Answer = dict[str, Any]  # the reply to a manual run request


@dataclass(frozen=True)
class _Launch:
    """What starting one run's process gave: a handle, or the error (for users)."""

    task: Task
    run_id: str
    at: float  # wall clock when the start was attempted
    handle: RunHandle | None
    mono: float
    error: str | None


class Executor:
    def __init__(
        self,
        supervisor: Supervisor,
        journal: DueJournal,
        files: StateFiles,
        metrics: Metrics,
        task_of: Callable[[str], Task | None],
        clock: Callable[[], float] = time.time,
        history: HistoryWriter | None = None,
    ) -> None:
        self.supervisor = supervisor
        self.journal = journal
        self.files = files
        self.metrics = metrics
        self.task_of = task_of
        self.clock = clock
        self.runs: dict[str, Run] = {}
        self.skips = SkipReport(metrics)
        self.ended_hooks: list[Callable[[RunEnd, str], None]] = []  # e.g. fleet summaries
        self.followup: FollowUp | None = None  # retries, notifications, pings
        self.history = history  # run records and output, written off the loop

    # --- observed state -----------------------------------------------------------------

    def collect_exits(self) -> None:
        """Account for every run the supervisor saw end."""
        exits = self.supervisor.poll()
        for ex in exits:
            self._exited(ex)
        if exits:
            self.files.dirty.add(RUNS_FILE)
            self.running_changed()

    def observed(self) -> list[RunView]:
        """The live runs, as the decision sees them. A cron run whose process ended on its
        own no longer holds a place, even while its last output is still being read (after
        a stall, a late run must not be skipped for a run that is over). A daemon stays
        until its exit is accounted for: its restart waits for its back-off."""
        ended = self.supervisor.ended()
        return [
            r.view
            for r in self.runs.values()
            if not (r.view.kind == "cron" and r.view.stopping is None and r.view.run_id in ended)
        ]

    def next_timeout(self, by: float | None = None) -> float | None:
        """The monotonic instant of the earliest timeout of a live run (see timeout_at)."""
        return timeout_at(self.runs.values(), self.clock(), by)

    def records(self) -> list[dict[str, Any]]:
        """runs.json: what a successor controller adopts."""
        return [r.record() for r in self.runs.values()]

    def running_changed(self) -> None:
        counts: dict[str, int] = {}
        for r in self.runs.values():
            counts[r.view.task] = counts.get(r.view.task, 0) + 1
        self.metrics.set_running(counts)

    # --- carrying out a decision ----------------------------------------------------------

    def execute(
        self, actions: Sequence[Action], tasks: Mapping[str, Task]
    ) -> tuple[bool, dict[str, Answer]]:
        """Carry out the actions; returns whether anything started, and the answers to
        manual run requests by id."""
        answers: dict[str, Answer] = {}
        skips: dict[str, int] = {}
        for action in actions:
            if isinstance(action, StopRun):
                self.stop(action)
        starts = [a for a in actions if isinstance(a, StartRun)]
        # Every process of this tick first, then the bookkeeping and log lines: the last
        # run of a busy second starts almost as early as the first. Their output is read
        # only once their run.started lines are out, so it never comes first.
        with self.supervisor.holding_output():
            launched = [self._launch(tasks[a.task], a) for a in starts]
            done = iter(launched)
            for action in actions:
                if isinstance(action, StartRun):
                    answer = self._started(action, next(done))
                    if action.request_id is not None:
                        answers[action.request_id] = answer
                elif isinstance(action, SkipRun):
                    if action.attempt is not None:
                        self.journal.drop_retry(action.task)  # a waiting retry dropped
                    self.skips.report(action, tasks.get(action.task), skips)
                elif isinstance(action, RefuseRun):
                    answers[action.request_id] = {"ok": False, "reason": action.reason}
        if starts:
            self.running_changed()  # once per tick, not per start
        return bool(starts), answers

    @staticmethod
    def _new_run_id(task: str, at: float) -> str:
        stamp = datetime.fromtimestamp(at, UTC).strftime("%Y%m%dT%H%M%SZ")
        return f"{task}-{stamp}-{secrets.token_hex(3)}"

    def _launch(self, task: Task, action: StartRun) -> _Launch:
        """Start the process of one StartRun; nothing else, so the next one follows fast."""
        now = self.clock()
        run_id = self._new_run_id(task.name, action.due if action.due is not None else now)
        spec = RunSpec(
            run_id=run_id,
            task=task.name,
            argv=task.argv(),
            task_env=_fenced(_run_env(task, action), action),
            cwd=task.working_dir,
            user=task.user,
            limits=Limits.of(task.resources),
        )
        try:
            handle = self.supervisor.start(spec)
        except SpawnError as exc:
            return _Launch(task, run_id, now, None, time.monotonic(), str(exc))
        return _Launch(task, run_id, now, handle, time.monotonic(), None)

    def _started(self, action: StartRun, launch: _Launch) -> Answer:
        """Record, log and count a launch."""
        task, run_id, handle = launch.task, launch.run_id, launch.handle
        kind: RunKind = "daemon" if task.type == "daemon" else "cron"
        if handle is None:
            self.finish(
                RunEnd(
                    task=task.name, run_id=run_id, pid=None, kind=kind,
                    fingerprint=task.process_fingerprint(), due=action.due,
                    trigger=action.trigger, started_at=launch.at, ended_at=launch.at,
                    error=launch.error, attempt=action.attempt, replica=action.replica,
                )
            )
            return {"ok": False, "reason": launch.error, "run_id": run_id}
        view = RunView(
            run_id=run_id,
            task=task.name,
            kind=kind,
            pid=handle.pid,
            started_at=handle.started_at,
            due=action.due,
            fingerprint=task.process_fingerprint(),
            timeout_s=task.timeout_seconds,
            grace_s=float(task.termination_grace_period_seconds),
            started_mono=launch.mono,
            attempt=action.attempt,
            replica=action.replica,
        )
        self.runs[run_id] = Run(view=view, handle=handle, trigger=action.trigger)
        if self.history is not None:
            self.history.started(_run_start(task, run_id, action, handle.started_at, handle.pid))
        events.run_started(
            task.name, task.type, run_id, handle.pid, action.due, action.trigger, task.timezone,
            attempt=action.attempt,
        )
        if task.type == "daemon" and task.crash_loop is not None:
            if action.trigger == "manual":  # after a crash loop: a fresh window
                self.journal.set_daemon(daemon_key(task.name, action.replica), DaemonState())
            self.metrics.set_gave_up(task.name, False)
        if self.followup is not None:
            self.followup.started(task, start_record(
                task, run_id, action.trigger, action.attempt, action.due, handle.started_at,
                handle.pid,
            ))
        self.metrics.run_started(task.name, action.trigger)
        self.files.dirty.add(RUNS_FILE)
        return {"ok": True, "run_id": run_id, "pid": handle.pid}

    def stop(self, action: StopRun) -> None:
        run = self.runs.get(action.run_id)
        if run is None or run.view.stopping is not None:
            return
        run.view = replace(run.view, stopping=action.reason)
        events.run_stopping(run.view, action.reason, action.grace_s)
        self.supervisor.stop(action.run_id, action.grace_s, action.reason)

    def stop_all(self, reason: str) -> None:
        for run in list(self.runs.values()):
            self.stop(StopRun(run.view.run_id, reason, run.view.grace_s))

    # --- runs of a previous controller -----------------------------------------------------

    def adopt(self, rec: RunRecord) -> bool:
        """Take over a run recorded by the previous controller; False if it is gone (its
        end is then accounted for here)."""
        handle = None
        if rec.start_ticks is not None and rec.run_id not in self.runs:
            try:
                handle = self.supervisor.adopt(
                    rec.run_id, rec.task, rec.pid, rec.start_ticks, rec.started_at
                )
            except ValueError:
                return False  # the same run twice in a damaged file
        if handle is None:
            self.finish(
                RunEnd(
                    task=rec.task, run_id=rec.run_id, pid=rec.pid, kind=rec.kind,
                    fingerprint=rec.fingerprint, due=rec.due, trigger=rec.trigger,
                    started_at=rec.started_at, ended_at=self.clock(), adopted=True,
                    note=f"{rec.task} (pid {rec.pid}) ended while no controller watched it.",
                )
            )
            return False
        self.runs[rec.run_id] = Run(view=rec.view(), handle=handle, trigger=rec.trigger)
        current = self.task_of(rec.task)
        events.run_adopted(
            rec.task, rec.run_id, rec.pid, rec.due, current.timezone if current else UTC
        )
        return True

    # --- the end of a run -------------------------------------------------------------------

    def _exited(self, ex: Exited) -> None:
        run = self.runs.pop(ex.run_id, None)
        self.finish(
            RunEnd(
                task=ex.task, run_id=ex.run_id, pid=ex.pid,
                kind=run.view.kind if run is not None else "cron",
                fingerprint=run.view.fingerprint if run is not None else "",
                due=run.view.due if run is not None else None,
                trigger=run.trigger if run is not None else "schedule",
                started_at=ex.started_at, ended_at=ex.ended_at, exit_code=ex.exit_code,
                # None when it ended on its own, even if a stop raced it.
                signal=ex.signal, stop_reason=ex.stop_reason,
                adopted=run is not None and run.handle is not None and run.handle.adopted,
                timeout_s=run.view.timeout_s if run is not None else None,
                attempt=run.view.attempt if run is not None else 1,
                replica=run.view.replica if run is not None else 0,
                oom_killed=ex.oom_killed,
            )
        )

    def finish(self, end: RunEnd) -> None:
        """The end of a run, whether it exited or could not start: log, count, remember,
        and for a daemon, work out when it may start again."""
        current = self.task_of(end.task)
        outcome = outcome_of(
            end.stop_reason, end.exit_code, end.signal, end.adopted,
            current.success_exit_codes if current is not None else frozenset({0}),
            end.oom_killed,
        )
        reason = reason_of(
            outcome=outcome, exit_code=end.exit_code, signal=end.signal,
            stop_reason=end.stop_reason, error=end.error, timeout_s=end.timeout_s,
        )
        events.run_exited(end, outcome, current.timezone if current is not None else UTC)
        self.metrics.run_finished(end.task, outcome, end.duration_s, end.ended_at)
        remembered: dict[str, Any] = {
            "run_id": end.run_id,
            "due": end.due,
            "trigger": end.trigger,
            "started_at": end.started_at,
            "ended_at": end.ended_at,
            "exit_code": end.exit_code,
            "signal": end.signal,
            "outcome": outcome,
            "duration_s": round(end.duration_s, 3),
        }
        if end.error:
            remembered["error"] = end.error
        self.files.remember(end.task, remembered)
        for hook in self.ended_hooks:
            hook(end, outcome)
        if self.history is not None:
            self.history.finished(_run_finish(end, outcome, reason, current))
        if self.followup is not None:
            self.followup.ended(end, outcome, reason, current)
        if end.kind == "daemon":
            self._daemon_ended(end, current)

    def _daemon_ended(self, end: RunEnd, current: Task | None) -> None:
        state = after_daemon_exit(
            self.journal.daemons.get(daemon_key(end.task, end.replica), DaemonState()),
            DaemonExit(
                fingerprint=end.fingerprint,
                exit_code=end.exit_code,
                signal=end.signal,
                started_at=end.started_at,
                ended_at=end.ended_at,
                stop_reason=end.stop_reason,
            ),
            daemon_policy(current),
        )
        self.journal.set_daemon(daemon_key(end.task, end.replica), state)
        if state.gave_up is not None and current is not None and current.crash_loop:
            self.metrics.set_gave_up(end.task, True)
            events.daemon_gave_up(
                end.task, len(state.restarts), current.crash_loop.window_seconds
            )
            if self.followup is not None:
                self.followup.gave_up(current, {
                    "run_id": end.run_id, "task": end.task, "trigger": end.trigger,
                    "attempt": end.attempt, "pid": end.pid, "exit_code": end.exit_code,
                    "signal": end.signal, "outcome": "gave-up",
                    "reason": f"restarted {len(state.restarts)} times within "
                    f"{current.crash_loop.window_seconds} s",
                })
        elif end.stop_reason is None and state.not_before > end.ended_at:
            self.metrics.daemon_restart(end.task)
            events.daemon_backoff(end.task, state.not_before - end.ended_at, state.failures)


def daemon_policy(task: Task | None) -> DaemonPolicy:
    """What a daemon's document says about its restarts."""
    if task is None:
        return DaemonPolicy()
    loop = task.crash_loop
    return DaemonPolicy(
        restart_policy=task.restart_policy,
        success_codes=task.success_exit_codes,
        crash_loop=CrashLoop(loop.max_restarts, loop.window_seconds) if loop else None,
        document=task.spec_fingerprint(),
    )


def _run_start(
    task: Task, run_id: str, action: StartRun, started: float, pid: int | None
) -> RunStart:
    return RunStart(
        run_id=run_id, task=task.name, type=task.type, trigger=action.trigger,
        attempt=action.attempt, due=action.due, started=started, pid=pid,
        output_limit=task.output_limit_bytes,
    )


def _run_env(task: Task, action: StartRun) -> Mapping[str, str]:
    """The task's env, and for a daemon the replica it is (RECONCILER_REPLICA, 0..N-1)."""
    if task.type != "daemon":
        return task.env
    return {**task.env, "RECONCILER_REPLICA": str(action.replica)}


def _fenced(env: Mapping[str, str], action: StartRun) -> Mapping[str, str]:
    """A placement: one run's fencing token (reconciler.coordination) in its environment."""
    if action.fencing_token is None:
        return env
    return {**env, "RECONCILER_FENCING_TOKEN": str(action.fencing_token)}


def _run_finish(end: RunEnd, outcome: str, reason: str, current: Task | None) -> RunFinish:
    """The history's record of a run's end, with its reason in one sentence."""
    start = RunStart(
        run_id=end.run_id, task=end.task, type=end.kind, trigger=end.trigger,
        attempt=end.attempt, due=end.due, started=end.started_at, pid=end.pid,
        output_limit=current.output_limit_bytes if current is not None else 0,
    )
    return RunFinish(
        start=start, ended=end.ended_at, exit_code=end.exit_code, signal=end.signal,
        outcome=outcome, reason=reason,
        keep_succeeded=current.successful_runs_history_limit if current is not None else 20,
        keep_failed=current.failed_runs_history_limit if current is not None else 20,
    )


def timeout_at(runs: Iterable[Run], wall: float, by: float | None = None) -> float | None:
    """The monotonic instant of the earliest timeout of a run not yet being stopped
    (with `by`: only one at or before it). The decision measures a run's age the same
    way (reconcile: monotonic for our own runs, the wall clock for adopted ones)."""
    soonest: float | None = None
    for run in runs:
        view = run.view
        if view.timeout_s is None or view.stopping is not None:
            continue
        if view.started_mono is not None:
            at = view.started_mono + view.timeout_s
        else:
            at = time.monotonic() + view.started_at + view.timeout_s - wall
        if soonest is None or at < soonest:
            soonest = at
    return soonest if by is None or (soonest is not None and soonest <= by) else None
