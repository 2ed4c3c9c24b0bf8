"""The controller loop: wake, observe, decide, act.

Every wake-up source (the clock reaching a second, a file event, a signal, a child
exiting, a control request) only makes the loop look again. Each tick the loop computes
this host's due runs and daemons, compares them with the live runs and executes what
`reconcile` decides. One thread owns all decisions; watchers, the output pump and the
HTTP server only poke it.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import secrets
import selectors
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler import __version__
from reconciler.controller.control import ControlServer, Pending
from reconciler.controller.persist import StateFiles
from reconciler.controller.records import (
    Ledger,
    Run,
    RunRecord,
    applied_document,
    outcome_of,
    rfc3339,
)
from reconciler.controller.specset import Refresh, SpecSet
from reconciler.controller.watch import SpecWatcher
from reconciler.hosts import HostIdentity, matches
from reconciler.obs import HttpServer, Metrics, log_event
from reconciler.reconcile import (
    Action,
    DaemonState,
    DueQueue,
    Inputs,
    ManualRequest,
    RefuseRun,
    RunView,
    SkipRun,
    StartRun,
    StopRun,
    after_daemon_exit,
    reconcile,
)
from reconciler.spec import SpecError, Task
from reconciler.spec.zones import host_zone
from reconciler.state import (
    APPLIED_FILE,
    CONTROL_SOCKET,
    CONTROLLER_FILE,
    LEDGER_DELTA,
    LEDGER_FILE,
    RUNS_FILE,
    STATUS_FILE,
    StateDir,
    StateError,
    process_start_ticks,
)
from reconciler.supervisor import (
    Exited,
    RunHandle,
    RunSpec,
    SpawnError,
    Supervisor,
    become_subreaper,
)

DEBOUNCE_QUIET_S = 0.04  # a burst of events settles when quiet this long...
DEBOUNCE_MAX_S = 0.5  # ...or after this long at most
RESCAN_EVERY_S = 300.0  # level-triggered safety net against a missed file event
SKIP_LOG_LIMIT = 100  # per task and tick; beyond that one summary line
TICK_EARLY_S = 0.004
TICK_SPIN_S = 0.0015


@dataclass(frozen=True)
class _Launch:
    """What starting one run's process gave: a handle, or the error (for users)."""

    task: Task
    run_id: str
    at: float  # wall clock when the start was attempted
    handle: RunHandle | None
    mono: float
    error: str | None


@dataclass
class Options:
    spec_dir: Path
    state: StateDir
    identity: HostIdentity
    watch: str = "inotify"
    http: str | None = None


class Controller:
    def __init__(
        self,
        opts: Options,
        clock: Callable[[], float] = time.time,
        early_signals: list[int] | None = None,
    ) -> None:
        self.opts = opts
        self.clock = clock
        self.state = opts.state
        self.metrics = Metrics()
        self.specs = SpecSet(opts.spec_dir)
        self.queue = DueQueue()
        self.ledger = Ledger()
        self.tasks: dict[str, Task] = {}  # this host's tasks in force
        self.daemon_tasks: dict[str, Task] = {}
        self._anchors: dict[str, int] = {}
        self.all_tasks: dict[str, Task] = {}
        self.runs: dict[str, Run] = {}
        self.pending: list[tuple[ManualRequest, Pending]] = []
        self.started_at = clock()
        self.last_tick_mono = time.monotonic()
        self.ready = False
        self.stopping = False
        self.dir_error_logged: str | None = None
        self.suspend_logged: set[str] = set()
        self.spec_errors_seen: set[str] = set()
        self._dirty_since: float | None = None
        self._last_event: float = 0.0
        self._reload_requested = False
        self._last_rescan = time.monotonic()
        self.files = StateFiles(self.state, self.metrics)
        self._status: dict[str, Any] = {}
        self._reboot: list[str] = []
        self._fallback_logged = False
        self._rpipe, self._wpipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        # Signals that arrived while the process was still starting (see commands.apply).
        self._signals: deque[int] = deque(early_signals or ())
        self.supervisor = Supervisor(on_output=self._on_output, wake=self.wake)
        self.watcher = SpecWatcher(opts.spec_dir, opts.watch, self._on_fs_event)
        self.control: ControlServer | None = None
        self.http: HttpServer | None = None

    # --- wake-ups -------------------------------------------------------------------------

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wpipe, b"x")

    def _on_fs_event(self) -> None:
        now = time.monotonic()
        if self._dirty_since is None:
            self._dirty_since = now
        self._last_event = now
        self.wake()

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._signals.append(signum)

    def _on_output(self, run_id: str, task: str, stream: str, line: str) -> None:
        log_event("run.output", line, task=task, run_id=run_id, stream=stream)

    # --- life cycle -----------------------------------------------------------------------

    def setup(self) -> None:
        self.state.ensure()
        self.state.acquire()
        become_subreaper()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR2, signal.SIGCHLD):
            signal.signal(signum, self._on_signal)
        signal.set_wakeup_fd(self._wpipe, warn_on_full_buffer=False)
        self.state.remove_stale_temps()
        self.ledger = self.files.load_ledger()
        self.files.load_history()
        self.control = ControlServer(self.state.path / CONTROL_SOCKET, self.wake)
        self._write_controller_info()
        if self.opts.http:
            self.http = HttpServer(self.opts.http, self.metrics, self.healthy, lambda: self.ready)
            self.http.start()
        self.watcher.start()
        self._log_watch_fallback()

    def _log_watch_fallback(self) -> None:
        if self.watcher.fallback and not self._fallback_logged:
            self._fallback_logged = True
            log_event("watch.fallback", self.watcher.fallback, level="warning")

    def _write_controller_info(self) -> None:
        pid = os.getpid()
        self.state.write_json(
            CONTROLLER_FILE,
            {
                "pid": pid,
                "start_ticks": process_start_ticks(pid),
                "started_at": self.started_at,
                "version": __version__,
                "spec_dir": str(self.opts.spec_dir.absolute()),
                "state_dir": str(self.state.path.absolute()),
                "identity": self.opts.identity.describe(),
                "host_zone": getattr(host_zone(), "key", None),
                "watch": self.opts.watch,
                "http": self.opts.http,
            },
        )

    def healthy(self) -> bool:
        return self.stopping or time.monotonic() - self.last_tick_mono < 5.0

    def run(self) -> int:
        try:
            self.setup()
            self.reload(initial=True)
            self._adopt_previous_runs()
            self._loop()
            self._shutdown()
        except StateError:
            raise
        except Exception as exc:
            # A bug must not leave runs behind unsupervised: stop them, then fail loudly.
            log_event(
                "controller.failed",
                f"Unexpected error, stopping all runs: {exc!r}"[:500],
                level="error",
                error=repr(exc)[:500],
            )
            with contextlib.suppress(Exception):
                self._shutdown()
            raise
        finally:
            self._teardown()
        return 0

    def _teardown(self) -> None:
        signal.set_wakeup_fd(-1)
        self.watcher.stop()
        if self.http is not None:
            self.http.stop()
        if self.control is not None:
            self.control.close()
        self.supervisor.close()
        self.state.release()

    # --- the loop -------------------------------------------------------------------------

    def _loop(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._rpipe, selectors.EVENT_READ)
        next_tick = math.floor(self.clock())
        while not self.stopping:
            now = self.clock()
            timeout = min(next_tick - now, 1.0)
            deadline = self.supervisor.next_deadline()
            if deadline is not None:
                timeout = min(timeout, deadline - time.monotonic())
            if self._dirty_since is not None:
                settle = min(self._last_event + DEBOUNCE_QUIET_S, self._dirty_since + DEBOUNCE_MAX_S)
                timeout = min(timeout, settle - time.monotonic())
            if 0 < timeout < 1.0 and timeout == next_tick - now and self._due_at(next_tick):
                # epoll sleeps in whole milliseconds and wakes late under load: wake a
                # little early and finish with a nanosleep, so runs start on the second.
                # Only when a run is due then: an idle second costs one wake-up, not two.
                timeout -= TICK_EARLY_S
            if sel.select(max(0.0, timeout)):
                with contextlib.suppress(BlockingIOError):
                    while os.read(self._rpipe, 4096):
                        pass
            self._accept_control()
            self._handle_signals()
            if self.stopping:
                break
            self._maybe_reload()
            self._handle_exits(self.supervisor.poll())
            now = self.clock()
            if 0 < next_tick - now <= TICK_EARLY_S and not self.pending:
                self.state.prepare(LEDGER_DELTA)  # its write precedes the spawns
                self._sleep_onto(next_tick - self.clock())
                now = self.clock()
            if next_tick - now > 2.0:
                next_tick = math.floor(now)  # the clock stepped back: keep ticking
            on_second = now >= next_tick
            if on_second or self.pending:
                second = math.floor(now)
                lag = now - second
                self.tick(second, self._take_reboot())
                self.last_tick_mono = time.monotonic()
                self.metrics.tick(lag, now)
                next_tick = second + 1
            self._flush_state(after_tick=on_second)

    @staticmethod
    def _sleep_onto(delay: float) -> None:
        """Sleep `delay` seconds and be running when they are over: a sleeping VM wakes
        up to 2 ms late, so the last stretch is spent awake (at most TICK_SPIN_S of CPU,
        only before a second with a run due)."""
        end = time.monotonic() + delay
        if delay > TICK_SPIN_S:
            time.sleep(delay - TICK_SPIN_S)
        while time.monotonic() < end:
            pass

    def _due_at(self, second: int) -> bool:
        """Whether a cron run may start at `second` (@reboot and manual runs included)."""
        earliest = self.queue.earliest()
        return (earliest is not None and earliest <= second) or bool(self._reboot)

    def _handle_signals(self) -> None:
        while self._signals:
            signum = self._signals.popleft()
            if signum in (signal.SIGTERM, signal.SIGINT):
                if not self.stopping:
                    log_event(
                        "controller.stopping",
                        f"Received {signal.Signals(signum).name}; stopping all runs.",
                        signal=signal.Signals(signum).name,
                    )
                self.stopping = True
            elif signum in (signal.SIGHUP, signal.SIGUSR2):
                self._reload_requested = True

    def _maybe_reload(self) -> None:
        mono = time.monotonic()
        due = self._reload_requested
        settled = self._dirty_since is not None and (
            mono - self._last_event >= DEBOUNCE_QUIET_S or mono - self._dirty_since >= DEBOUNCE_MAX_S
        )
        if settled:
            due = True
        if not due and mono - self._last_rescan >= RESCAN_EVERY_S:
            due = True
        if not due and not self.watcher.watching_root and self.opts.spec_dir.is_dir():
            due = True  # the directory came back
        if due:
            self._dirty_since = None
            self._reload_requested = False
            self._last_rescan = mono
            self.reload()

    # --- specs --------------------------------------------------------------------------

    def reload(self, initial: bool = False) -> None:
        was_watching = self.watcher.watching_root
        if self.opts.spec_dir.is_dir() and (not was_watching or self.watcher.root_replaced()):
            # Watch first, read second: a file written between the two is then seen by
            # the read or raises an event, never neither.
            self.watcher.start()
            self._log_watch_fallback()
        result: Refresh = self.specs.refresh()
        if result.dir_error is not None:
            if self.dir_error_logged != result.dir_error:
                log_event(
                    "spec.invalid",
                    result.dir_error,
                    level="error",
                    file=str(self.opts.spec_dir),
                    line=None,
                    error=result.dir_error,
                )
                self.metrics.spec_error()
                self.dir_error_logged = result.dir_error
            if was_watching:
                self.watcher.start()
                self._log_watch_fallback()
            self._write_status(result)
            return
        self.dir_error_logged = None
        changed = self._apply(result.tasks, initial or not self.ready)
        result.errors = result.errors + self._unrunnable()
        self._log_spec_errors(result.errors)
        if not self.ready:
            # @reboot: once per controller start, at the first load that succeeds (the spec
            # directory may appear only after start, as with a git-sync sidecar).
            self._reboot = [
                n
                for n, t in self.tasks.items()
                if t.type == "cron" and t.schedule is not None and t.schedule.kind == "reboot"
            ]
            self._prune_ledger()
            self.files.prune_history(self.all_tasks)
        self.ready = True
        self._write_status(result)
        if changed:
            # Collect what the old task set left behind now, then keep the loaded tasks out
            # of the cyclic collector: a full pass over 10,000 tasks costs ~20 ms and would
            # otherwise fall at random, maybe in the middle of a second's spawns.
            gc.unfreeze()
            gc.collect()
            gc.freeze()

    def _take_reboot(self) -> list[str]:
        reboot, self._reboot = self._reboot, []
        return reboot

    def _prune_ledger(self) -> None:
        """Forget what the ledger holds of tasks not in force at start: a task removed while
        no controller ran and added back later is new, not owed its missed runs."""
        keep = set(self.tasks)
        ledger = self.ledger
        for table in (ledger.cursors, ledger.schedules, ledger.anchors, ledger.daemons):
            for name in [n for n in table if n not in keep]:
                del table[name]
        self.files.dirty.add(LEDGER_FILE)

    def _unrunnable(self) -> list[SpecError]:
        """Tasks this controller cannot run as asked: `user` needs a root controller.

        They stay loaded (the file is valid, and a root controller elsewhere can run them);
        the error stands in `status` and each run attempt fails with the same reason.
        """
        if os.geteuid() == 0:
            return []
        return [
            SpecError(
                file=t.file,
                line=t.line,
                task=t.name,
                field="spec.user",
                message=f"running as user {t.user} needs a root controller",
            )
            for t in self.tasks.values()
            if t.user is not None
        ]

    def _log_spec_errors(self, errors: list[SpecError]) -> None:
        current: set[str] = set()
        for err in errors:
            text = str(err)
            current.add(text)
            if text in self.spec_errors_seen:
                continue  # a standing error is logged once, not on every re-read
            log_event(
                "spec.invalid",
                f"Invalid task document: {text}; the last good tasks of this file stay in force.",
                level="error",
                file=err.file,
                line=err.line,
                error=text,
                task=err.task,
            )
            self.metrics.spec_error()
        self.spec_errors_seen = current
        self.metrics.set_spec_errors(len({e.file for e in errors}))

    def _apply(self, all_tasks: dict[str, Task], initial: bool) -> bool:
        identity = self.opts.identity
        before, before_all = self.tasks, self.all_tasks
        # Tasks of unchanged files are the very same objects: only the others are looked at,
        # so an edit among 10,000 tasks costs one file's worth of work.
        touched = {n for n, t in all_tasks.items() if before_all.get(n) is not t}
        touched |= {n for n in before_all if n not in all_tasks}
        mine = dict(before)
        for name in touched:
            task = all_tasks.get(name)
            if task is not None and matches(task.hosts, identity):
                mine[name] = task
            else:
                mine.pop(name, None)
        added = sorted(n for n in touched if n in mine and n not in before)
        removed = sorted(n for n in touched if n in before and n not in mine)
        changed = sorted(
            n
            for n in touched
            if n in mine and n in before and mine[n].spec_fingerprint() != before[n].spec_fingerprint()
        )
        self.all_tasks = all_tasks
        self.tasks = mine
        if touched:
            self.daemon_tasks = {n: t for n, t in mine.items() if t.type == "daemon"}
        now = math.floor(self.clock())
        anchors = self._every_anchors(now)
        self._anchors = anchors
        moves = self.queue.sync(
            mine,
            self.ledger.cursors,
            anchors,
            now,
            only=None if initial else touched,
            schedules=self.ledger.schedules,
        )
        self.ledger.cursors.update(moves.cursors)
        self.ledger.schedules.update(moves.schedules)
        for name in touched:
            task = mine.get(name)
            if task is None or not task.suspend:
                self.suspend_logged.discard(name)  # a later suspension is logged anew
        for name in removed:
            self.metrics.forget_task(name)
        # Series at 0 from the start, so the first failure is an increase, not a new series.
        self.metrics.declare_tasks(added)
        self.metrics.set_tasks_loaded(len(mine))
        if initial or added or changed or removed:
            log_event(
                "spec.applied",
                f"Applied {len(mine)} tasks for this host "
                f"({len(added)} added, {len(changed)} changed, {len(removed)} removed).",
                added=added,
                changed=changed,
                removed=removed,
                tasks=len(mine),
                tasks_total=len(all_tasks),
            )
            self.files.dirty.update({APPLIED_FILE, LEDGER_FILE})
        return bool(touched)

    def _every_anchors(self, now: int) -> dict[str, int]:
        anchors: dict[str, int] = {}
        for name, task in self.tasks.items():
            if task.schedule is None or task.schedule.kind != "every":
                continue
            prev = self.ledger.anchors.get(name)
            if prev is None or prev.get("schedule") != task.schedule_text:
                prev = {"schedule": task.schedule_text, "at": now}  # first applied now
                self.ledger.anchors[name] = prev
                self.files.dirty.add(LEDGER_FILE)
            anchors[name] = int(prev["at"])
        return anchors

    # --- tick -----------------------------------------------------------------------------

    def tick(self, second: int, reboot: list[str]) -> None:
        anchors = self._anchors
        due = self.queue.pop_due(second, self.tasks, self.ledger.cursors, anchors)
        manual = [m for m, _ in self.pending]
        now = self.clock()
        self.ledger.cursors.update({d.task: d.last for d in due if d.last is not None})
        actions = reconcile(
            Inputs(
                now=now,
                tasks=self.tasks,
                due=due,
                observed=[r.view for r in self.runs.values()],
                daemons=self.ledger.daemons,
                manual=manual,
                reboot=reboot,
                daemon_tasks=self.daemon_tasks,
                mono=time.monotonic(),
            )
        )
        if due:
            # The new cursors are on disk before any run of these due times exists, so a
            # crash can never start one of them twice: in the delta file, which holds
            # only the cursors moved since the last snapshot, not the whole ledger (that
            # made one due task among 10,000 start 20 ms late). The fsync for power loss
            # follows the spawns (the flush below), off the path from due second to exec.
            self.ledger.recent.update({d.task: d.last for d in due if d.last is not None})
            starting = {
                a.task: a.due
                for a in actions
                if isinstance(a, StartRun) and a.due is not None and a.trigger == "schedule"
            }
            self.files.write(LEDGER_DELTA, self.ledger.delta(starting))
            self.files.dirty.add(LEDGER_DELTA)
        if self._execute(actions):
            # Recorded at once, not at the end of the loop: a controller killed now must
            # find these runs (no second copy of a daemon), and runs.json comes before the
            # delta drops `starting`: a run is never both unrecorded and forgotten.
            self.files.dirty.discard(RUNS_FILE)
            self.files.write(RUNS_FILE, [r.record() for r in self.runs.values()])

    def _execute(self, actions: list[Action]) -> bool:
        """Carry out the actions; True when something was started."""
        answers: dict[str, dict[str, Any]] = {}
        skips: dict[str, int] = {}
        for action in actions:
            if isinstance(action, StopRun):
                self._stop(action)
        starts = [a for a in actions if isinstance(a, StartRun)]
        # Every process of this tick first, then the bookkeeping and log lines: the last
        # run of a busy second starts almost as early as the first. Their output is read
        # only once their run.started lines are out, so it never comes first.
        with self.supervisor.holding_output():
            base_env = dict(os.environ) if starts else {}
            launched = [self._launch(a, base_env) for a in starts]
            done = iter(launched)
            for action in actions:
                if isinstance(action, StartRun):
                    answer = self._started(action, next(done))
                    if action.request_id is not None:
                        answers[action.request_id] = answer
                elif isinstance(action, SkipRun):
                    self._skip(action, skips)
                elif isinstance(action, RefuseRun):
                    answers[action.request_id] = {"ok": False, "reason": action.reason}
        for request, pending in self.pending:
            answer = answers.get(request.request_id, {"ok": False, "reason": "not handled"})
            ControlServer.reply(pending.conn, answer)
        self.pending = []
        if starts:
            self._running_changed()  # once per tick, not per start
        return bool(starts)

    def _skip(self, action: SkipRun, counts: dict[str, int]) -> None:
        self.metrics.run_skipped(action.task, action.reason)
        task = self.tasks.get(action.task)
        tz = task.timezone if task is not None else UTC
        if action.reason == "suspended":
            if action.task in self.suspend_logged:
                return  # logged when the suspension was first met
            self.suspend_logged.add(action.task)
        n = counts.get(action.task, 0) + 1
        counts[action.task] = n
        if n > SKIP_LOG_LIMIT:
            return
        fields: dict[str, Any] = {
            "task": action.task,
            "due": rfc3339(action.due, tz) if action.due is not None else None,
            "reason": action.reason,
        }
        message = f"Skipped the run of {action.task} due at {fields['due']}: {action.reason}."
        if action.count != 1 or n == SKIP_LOG_LIMIT:
            fields["count"] = action.count
            if action.due_last is not None:
                fields["due_last"] = rfc3339(action.due_last, tz)
            message = (
                f"Skipped runs of {action.task} due from {fields['due']}"
                f" to {fields.get('due_last', 'later')}: {action.reason}."
            )
        log_event("run.skipped", message, level="warning", **fields)

    def _new_run_id(self, task: str, at: float) -> str:
        stamp = datetime.fromtimestamp(at, UTC).strftime("%Y%m%dT%H%M%SZ")
        return f"{task}-{stamp}-{secrets.token_hex(3)}"

    def _launch(self, action: StartRun, base_env: dict[str, str]) -> _Launch:
        """Start the process of one StartRun; nothing else, so the next one follows fast."""
        task = self.tasks[action.task]
        now = self.clock()
        run_id = self._new_run_id(task.name, action.due if action.due is not None else now)
        env = dict(base_env)
        env.update(task.env)
        spec = RunSpec(
            run_id=run_id,
            task=task.name,
            argv=task.argv(),
            env=env,
            cwd=task.working_dir,
            user=task.user,
        )
        try:
            handle = self.supervisor.start(spec)
        except SpawnError as exc:
            return _Launch(task, run_id, now, None, time.monotonic(), str(exc))
        return _Launch(task, run_id, now, handle, time.monotonic(), None)

    def _started(self, action: StartRun, launch: _Launch) -> dict[str, Any]:
        """Record, log and count a launch; answers a manual request."""
        task, run_id, handle = launch.task, launch.run_id, launch.handle
        if handle is None:
            self._finished(
                task=task.name, run_id=run_id, pid=None,
                kind="daemon" if task.type == "daemon" else "cron",
                fingerprint=task.process_fingerprint(), due=action.due, trigger=action.trigger,
                started_at=launch.at, ended_at=launch.at, exit_code=None, sig=None,
                stop_reason=None, adopted=False, error=launch.error,
            )
            return {"ok": False, "reason": launch.error, "run_id": run_id}
        view = RunView(
            run_id=run_id,
            task=task.name,
            kind="daemon" if task.type == "daemon" else "cron",
            pid=handle.pid,
            started_at=handle.started_at,
            due=action.due,
            fingerprint=task.process_fingerprint(),
            timeout_s=task.timeout_seconds,
            grace_s=float(task.termination_grace_period_seconds),
            started_mono=launch.mono,
        )
        self.runs[run_id] = Run(view=view, handle=handle, trigger=action.trigger)
        fields: dict[str, Any] = {
            "task": task.name,
            "run_id": run_id,
            "pid": handle.pid,
            "type": task.type,
            "due": rfc3339(action.due, task.timezone) if action.due is not None else None,
        }
        if action.trigger != "schedule":
            fields["trigger"] = action.trigger
        log_event("run.started", f"Started {task.name} (pid {handle.pid}).", **fields)
        self.metrics.run_started(task.name, action.trigger)
        self.files.dirty.add(RUNS_FILE)
        return {"ok": True, "run_id": run_id, "pid": handle.pid}

    def _stop(self, action: StopRun) -> None:
        run = self.runs.get(action.run_id)
        if run is None or run.view.stopping is not None:
            return
        run.view = replace(run.view, stopping=action.reason)
        log_event(
            "run.stopping",
            f"Stopping {run.view.task} (pid {run.view.pid}): {action.reason}.",
            task=run.view.task,
            run_id=run.view.run_id,
            pid=run.view.pid,
            reason=action.reason,
            grace_s=action.grace_s,
        )
        self.supervisor.stop(action.run_id, action.grace_s, action.reason)

    def _handle_exits(self, exits: list[Exited]) -> None:
        for ex in exits:
            run = self.runs.pop(ex.run_id, None)
            self._finished(
                task=ex.task, run_id=ex.run_id, pid=ex.pid,
                kind=run.view.kind if run is not None else "cron",
                fingerprint=run.view.fingerprint if run is not None else "",
                due=run.view.due if run is not None else None,
                trigger=run.trigger if run is not None else "schedule",
                started_at=ex.started_at, ended_at=ex.ended_at, exit_code=ex.exit_code,
                # None when it ended on its own, even if a stop raced it.
                sig=ex.signal, stop_reason=ex.stop_reason,
                adopted=run is not None and run.handle is not None and run.handle.adopted,
            )
            self.files.dirty.add(RUNS_FILE)
        if exits:
            self._running_changed()

    def _finished(
        self,
        *,
        task: str,
        run_id: str,
        pid: int | None,
        kind: str,
        fingerprint: str,
        due: int | None,
        trigger: str,
        started_at: float,
        ended_at: float,
        exit_code: int | None,
        sig: str | None,
        stop_reason: str | None,
        adopted: bool,
        error: str | None = None,
        note: str | None = None,
    ) -> None:
        """The end of a run, whether it exited or could not start: log, count, remember,
        and for a daemon, work out when it may start again."""
        outcome = outcome_of(stop_reason, exit_code, sig, adopted)
        duration = max(0.0, ended_at - started_at)
        current = self.tasks.get(task)
        tz = current.timezone if current is not None else UTC
        fields: dict[str, Any] = {
            "task": task,
            "run_id": run_id,
            "pid": pid,
            "exit_code": exit_code,
            "signal": sig,
            "duration_s": round(duration, 3),
            "outcome": outcome,
            "due": rfc3339(due, tz) if due is not None else None,
        }
        if error is not None:
            fields["error"] = error
            message = f"Could not start {task}: {error}"
            level = "error"
        else:
            how = f"exit code {exit_code}" if exit_code is not None else (sig or "unknown status")
            message = f"{task} (pid {pid}) exited: {outcome}, {how}, after {duration:.3f}s."
            level = "info" if outcome in ("succeeded", "stopped") else "warning"
        log_event("run.exited", note or message, level=level, **fields)
        self.metrics.run_finished(task, outcome, duration, ended_at)
        remembered = {
            "run_id": run_id,
            "due": due,
            "trigger": trigger,
            "started_at": started_at,
            "ended_at": ended_at,
            "exit_code": exit_code,
            "signal": sig,
            "outcome": outcome,
            "duration_s": round(duration, 3),
        }
        if error:
            remembered["error"] = error
        self.files.remember(task, remembered)
        if kind != "daemon":
            return
        state = after_daemon_exit(
            self.ledger.daemons.get(task, DaemonState()),
            restart_policy=current.restart_policy if current is not None else "Always",
            fingerprint=fingerprint,
            exit_code=exit_code,
            signal=sig,
            started_at=started_at,
            ended_at=ended_at,
            stop_reason=stop_reason,
        )
        self.ledger.daemons[task] = state
        self.files.dirty.add(LEDGER_FILE)
        if stop_reason is None and state.not_before > ended_at:
            self.metrics.daemon_restart(task)
            log_event(
                "daemon.backoff",
                f"Daemon {task} will be restarted in {state.not_before - ended_at:.0f}s.",
                level="warning",
                task=task,
                restart_in_s=round(state.not_before - ended_at, 3),
                failures=state.failures,
            )

    def _running_changed(self) -> None:
        counts: dict[str, int] = {}
        for r in self.runs.values():
            counts[r.view.task] = counts.get(r.view.task, 0) + 1
        self.metrics.set_running(counts)

    # --- control requests ---------------------------------------------------------------

    def _accept_control(self) -> None:
        if self.control is None:
            return
        for pending in self.control.take():
            op = pending.request.get("op")
            if op == "run" and isinstance(pending.request.get("task"), str):
                req = ManualRequest(request_id=secrets.token_hex(4), task=pending.request["task"])
                if self.stopping:
                    ControlServer.reply(pending.conn, {"ok": False, "reason": "controller is stopping"})
                    continue
                self.pending.append((req, pending))
            elif op == "ping":
                ControlServer.reply(pending.conn, {"ok": True, "pid": os.getpid()})
            else:
                ControlServer.reply(pending.conn, {"ok": False, "reason": f"unknown request {op!r}"})

    # --- previous controller's runs -----------------------------------------------------------

    def _adopt_previous_runs(self) -> None:
        raw = self.state.read_json(RUNS_FILE)
        records = [r for r in map(RunRecord.parse, raw if isinstance(raw, list) else []) if r]
        for rec in records:
            handle = None
            if rec.start_ticks is not None and rec.run_id not in self.runs:
                try:
                    handle = self.supervisor.adopt(
                        rec.run_id, rec.task, rec.pid, rec.start_ticks, rec.started_at
                    )
                except ValueError:
                    continue  # the same run twice in a damaged file
            if handle is None:
                self._finished(
                    task=rec.task, run_id=rec.run_id, pid=rec.pid, kind=rec.kind,
                    fingerprint=rec.fingerprint, due=rec.due, trigger=rec.trigger,
                    started_at=rec.started_at, ended_at=self.clock(), exit_code=None,
                    sig=None, stop_reason=None, adopted=True,
                    note=f"{rec.task} (pid {rec.pid}) ended while no controller watched it.",
                )
                continue
            self.runs[rec.run_id] = Run(view=rec.view(), handle=handle, trigger=rec.trigger)
            log_event(
                "run.adopted",
                f"Found {rec.task} (pid {rec.pid}) still running from the previous controller.",
                task=rec.task,
                run_id=rec.run_id,
                pid=rec.pid,
            )
        self.files.dirty.add(RUNS_FILE)
        self._running_changed()
        self._report_interrupted_starts(records)

    def _report_interrupted_starts(self, records: list[RunRecord]) -> None:
        """Due runs the previous controller was starting when it died, with no run recorded."""
        recorded = {(r.task, r.due) for r in records}
        for task, due in sorted(self.ledger.starting.items()):
            if (task, due) in recorded:
                continue
            t = self.tasks.get(task)
            tz = t.timezone if t is not None else UTC
            log_event(
                "run.skipped",
                f"The run of {task} due at {rfc3339(due, tz)} was being started when the "
                "previous controller stopped; it may have started unrecorded.",
                level="warning",
                task=task,
                due=rfc3339(due, tz),
                reason="interrupted",
            )
            self.metrics.run_skipped(task, "interrupted")
        if self.ledger.starting:
            self.ledger.starting = {}
            self.files.dirty.add(LEDGER_FILE)

    # --- shutdown -----------------------------------------------------------------------

    def _shutdown(self) -> None:
        for _req, pending in self.pending:
            ControlServer.reply(pending.conn, {"ok": False, "reason": "controller is stopping"})
        self.pending = []
        for run in list(self.runs.values()):
            self._stop(StopRun(run.view.run_id, "shutdown", run.view.grace_s))
        longest = max((r.view.grace_s for r in self.runs.values()), default=0.0)
        give_up = time.monotonic() + longest + 10.0
        while self.runs and time.monotonic() < give_up:
            self._handle_exits(self.supervisor.poll())
            if not self.runs:
                break
            deadline = self.supervisor.next_deadline()
            wait = 0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic()))
            time.sleep(wait)
        self._flush_state(force=True)
        log_event("controller.stopped", "Controller stopped.", runs_left=len(self.runs))

    # --- state files -------------------------------------------------------------------------

    def _flush_state(self, force: bool = False, after_tick: bool = False) -> None:
        self.files.flush(
            self.ledger,
            {
                RUNS_FILE: lambda: [r.record() for r in self.runs.values()],
                STATUS_FILE: lambda: self._status,
                APPLIED_FILE: lambda: {
                    n: {"file": t.file, "line": t.line, "document": applied_document(t)}
                    for n, t in sorted(self.tasks.items())
                },
            },
            force=force,
            after_tick=after_tick,
        )

    def _write_status(self, result: Refresh) -> None:
        self._status = {
            "updated_at": self.clock(),
            "spec_dir": str(self.opts.spec_dir),
            "dir_error": result.dir_error,
            "spec_errors": [e.to_dict() for e in result.errors],
            "tasks_total": len(self.all_tasks),
            "tasks_for_host": len(self.tasks),
        }
        self.files.dirty.add(STATUS_FILE)
        self._flush_state()
