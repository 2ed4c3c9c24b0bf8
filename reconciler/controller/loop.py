"""The controller loop: wake, then reconcile once.

Every wake-up source (the clock reaching a second, a file event, a signal, a child
exiting, a control request, a finished read of the spec directory) only makes the loop
look again. `reconcile_once` then observes (reaps what ended), decides (`reconcile`),
puts the due cursors in the journal, executes, answers requests and records. One thread
owns all decisions; watchers, the spec reader, the output pump and the HTTP server only
poke it.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import selectors
import signal
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler import __version__
from reconciler.controller import events
from reconciler.controller.adoption import adopt_previous_runs
from reconciler.controller.control import ControlServer
from reconciler.controller.desired import Applied, DesiredState
from reconciler.controller.executor import Executor
from reconciler.controller.followup import FollowUp
from reconciler.controller.journal import DueJournal
from reconciler.controller.refresh import SpecRefresh
from reconciler.controller.requests import Requests
from reconciler.controller.specset import Refresh
from reconciler.controller.statefiles import StateFiles
from reconciler.coordination import EtcdConfig, connect, decide
from reconciler.history import HistoryWriter
from reconciler.hosts import HostIdentity
from reconciler.notify import Notifier
from reconciler.obs import Metrics
from reconciler.reconcile import Inputs
from reconciler.spec import SpecError
from reconciler.spec.zones import host_zone
from reconciler.state import (
    APPLIED_FILE,
    CONTROL_SOCKET,
    CONTROLLER_FILE,
    LEDGER_DELTA,
    RUNS_FILE,
    STATUS_FILE,
    StateDir,
    StateError,
    process_start_ticks,
)
from reconciler.state.applied import applied_document as applied_document  # re-exported
from reconciler.state.applied import applied_json
from reconciler.supervisor import Supervisor, become_subreaper

if TYPE_CHECKING:
    from reconciler.obs.http import HttpServer

TICK_EARLY_S = 0.004
TICK_SPIN_S = 0.0015
HEALTHY_TICK_AGE_S = 5.0
SHUTDOWN_EXTRA_S = 10.0  # beyond the longest grace period, before giving up on runs


@dataclass
class Options:
    spec_dir: Path
    state: StateDir
    identity: HostIdentity
    watch: str = "inotify"
    http: str | None = None
    etcd: EtcdConfig | None = None  # fleet coordination (reconciler.coordination)
    hostname: str | None = None  # this host's name in the fleet


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
        self.files = StateFiles(self.state, self.metrics)
        self.journal = DueJournal(self.files)
        self.desired = DesiredState(
            opts.spec_dir, opts.identity, self.journal, self.metrics, clock
        )
        self.history = HistoryWriter(self.state.path, self.metrics)  # its own thread
        # Retries, notifications and pings; delivery on the notifier's own threads.
        self.followup = FollowUp(self.journal, Notifier(self.metrics), opts.hostname or "")
        self.supervisor = Supervisor(
            on_output=self.followup.tee(self.history.tee(events.run_output)), wake=self.wake
        )
        self.executor = Executor(
            self.supervisor, self.journal, self.files, self.metrics, self.desired.task, clock,
            history=self.history,
        )
        self.executor.followup = self.followup
        self.coord = connect(opts.etcd, opts.identity.describe(), opts.hostname, opts.spec_dir,
                             clock(), self.wake)  # placement: one; its etcd calls on its threads
        self.desired.coordinated = opts.etcd is not None
        self.executor.ended_hooks.append(self.coord.run_ended)  # run summaries
        self.requests = Requests()
        self.refresh = SpecRefresh(opts.spec_dir, self.desired.specs, opts.watch, self.wake)
        self.http: HttpServer | None = None
        self.started_at = clock()
        self.last_tick_mono = time.monotonic()
        self.stopping = False
        self._rpipe, self._wpipe = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        # Signals that arrived while the process was still starting (see commands.apply).
        self._signals: deque[int] = deque(early_signals or ())
        self._status: dict[str, Any] = {}
        self._collect_pending = False

    # --- wake-ups -------------------------------------------------------------------------

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wpipe, b"x")

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._signals.append(signum)

    # --- life cycle -----------------------------------------------------------------------

    def run(self) -> int:
        try:
            self._setup()
            self.load()
            adopt_previous_runs(self.executor, self.journal, self.metrics, self.desired.task)
            self._loop()
            self._shutdown()
        except StateError:
            raise
        except Exception as exc:
            # A bug must not leave runs behind unsupervised: stop them, then fail loudly.
            events.controller_failed(exc)
            with contextlib.suppress(Exception):
                self._shutdown()
            raise
        finally:
            self._teardown()
        return 0

    def _setup(self) -> None:
        self.state.ensure()
        self.state.acquire()
        become_subreaper()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR2, signal.SIGCHLD):
            signal.signal(signum, self._on_signal)
        signal.set_wakeup_fd(self._wpipe, warn_on_full_buffer=False)
        self.state.remove_stale_temps()
        self.journal.load()
        self.files.load_history()
        self.history.start()
        self.requests.server = ControlServer(self.state.path / CONTROL_SOCKET, self.wake)
        self._write_controller_info()
        if self.opts.http:
            # The HTTP server and Jinja2 only with --http.
            from reconciler.obs.http import HttpServer
            from reconciler.web import WebApp, warn_if_exposed

            web = WebApp(self.state.path, lambda: self.desired.tasks, lambda: self.desired.anchors)
            self.http = HttpServer(
                self.opts.http, self.metrics, self.healthy, lambda: self.desired.ready, web
            )
            self.http.start()
            warn_if_exposed(self.http.host)
        self.refresh.start()
        self.coord.start()

    def _teardown(self) -> None:
        signal.set_wakeup_fd(-1)
        self.refresh.close()
        if self.http is not None:
            self.http.stop()
        if self.requests.server is not None:
            self.requests.server.close()
        self.coord.close()  # after the runs stopped: revokes our lease, locks and claims
        self.supervisor.close()
        self.history.close()  # after the last run's end: writes what is pending
        if self.followup.notifier is not None:
            self.followup.notifier.close(2.0)  # what is queued gets a moment, no more
        self.state.release()

    def _write_controller_info(self) -> None:
        self.state.write_json(CONTROLLER_FILE, controller_info(self.opts, self.started_at))

    def healthy(self) -> bool:
        return self.stopping or time.monotonic() - self.last_tick_mono < HEALTHY_TICK_AGE_S

    # --- the loop -------------------------------------------------------------------------

    def _loop(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._rpipe, selectors.EVENT_READ)
        next_tick = math.floor(self.clock())
        while not self.stopping:
            sel.select(max(0.0, self._sleep_for(next_tick)))
            with contextlib.suppress(BlockingIOError):
                while os.read(self._rpipe, 4096):
                    pass
            self.requests.accept(self.stopping)
            self._handle_signals()
            if self.stopping:
                break
            result = self.refresh.take()
            if result is not None:
                self._apply(result)
            now = self.clock()
            if 0 < next_tick - now <= TICK_EARLY_S and not self.requests:
                self.state.prepare(LEDGER_DELTA)  # its write precedes the spawns
                sleep_onto(next_tick - self.clock())
                now = self.clock()
            if next_tick - now > 2.0:
                next_tick = math.floor(now)  # the clock stepped back: keep ticking
            on_second = now >= next_tick
            # A run's timeout between two ticks is acted on when it falls, not at the tick.
            timed_out = self.executor.next_timeout(time.monotonic()) is not None
            if on_second or self.requests or timed_out or self.coord.has_news():
                second = math.floor(now)
                self.reconcile_once(second)
                self.last_tick_mono = time.monotonic()
                if on_second or self.requests:
                    self.metrics.tick(now - second, now)
                next_tick = second + 1
            else:
                self.executor.collect_exits()
            self._flush_state(after_tick=on_second)
            if on_second and self._collect_pending:  # a new task set: a second away
                self._collect_pending = False
                collect_garbage()

    def _sleep_for(self, next_tick: int) -> float:
        """Until the next second, a stop's deadline, a burst of file events settling, or
        the instant a run reaches its timeoutSeconds."""
        now = self.clock()
        timeout = min(next_tick - now, 1.0)
        deadline = self.supervisor.next_deadline()
        if deadline is not None:
            timeout = min(timeout, deadline - time.monotonic())
        settles = self.refresh.settles_in()
        if settles is not None:
            timeout = min(timeout, settles)
        run_timeout = self.executor.next_timeout()
        if run_timeout is not None:
            timeout = min(timeout, run_timeout - time.monotonic())
        if 0 < timeout < 1.0 and timeout == next_tick - now and self.desired.due_at(next_tick):
            # epoll sleeps in whole milliseconds and wakes late under load: wake a
            # little early and finish with a nanosleep, so runs start on the second.
            # Only when a run is due then: an idle second costs one wake-up, not two.
            timeout -= TICK_EARLY_S
        return timeout

    def reconcile_once(self, second: int) -> None:
        """Observe, decide, journal, execute, answer, record: one level-triggered pass."""
        self.executor.collect_exits()  # observe first: what ended no longer holds a place
        due = self.desired.pop_due(second)
        decision = decide(
            Inputs(
                now=self.clock(),
                tasks=self.desired.tasks,
                due=due,
                observed=self.executor.observed(),
                daemons=self.journal.daemons,
                manual=self.requests.manual(),
                reboot=self.desired.take_reboot(),
                daemon_tasks=self.desired.daemon_tasks,
                mono=time.monotonic(),
                retries=self.journal.retries,
            ),
            self.coord.observe(),
        )
        actions = decision.actions
        self.coord.claim(decision.claims)  # placement: one: claimed off the loop
        self.journal.before_spawn(due, actions)
        started, answers = self.executor.execute(actions, self.desired.tasks)
        if started:
            self.journal.after_spawn(self.executor.records())
        self.requests.answer(answers)
        if self.coord.passed(actions, self.clock(), self._status):  # status.json changed
            self.files.dirty.add(STATUS_FILE)
        self.metrics.set_retries_waiting(len(self.journal.retries))
        self._note_notifications()

    def _handle_signals(self) -> None:
        while self._signals:
            signum = self._signals.popleft()
            if signum in (signal.SIGTERM, signal.SIGINT):
                if not self.stopping:
                    events.controller_stopping(signum)
                self.stopping = True
            elif signum in (signal.SIGHUP, signal.SIGUSR2):
                self.refresh.request()

    # --- reading the spec directory ---------------------------------------------------------

    def load(self) -> None:
        """Read the spec directory on this thread and apply it (at start)."""
        with collector_paused():
            # Frozen whole by collector_paused, the first read leaves no garbage (measured):
            # a full pass over 100,000 tasks after the first tick made the second one late.
            self._apply(self.refresh.read_now(), collect=False)

    def _apply(self, result: Refresh, collect: bool = True) -> None:
        applied: Applied | None = self.desired.apply(result)
        if applied is None:  # the directory is gone: keep everything, watch for its return
            self.refresh.directory_gone()
            self._write_status(result.errors)
            return
        if applied.first:
            self.files.prune_history(self.desired.all_tasks)
        self.executor.skips.unsuspended(
            {n for n in applied.touched if not self.desired.is_suspended(n)}
        )
        if applied.added or applied.removed or applied.first:
            self.history.tasks_now(self.desired.all_tasks)
        if applied.added or applied.changed or applied.removed or applied.first:
            self.files.dirty.add(APPLIED_FILE)
        self.coord.tasks_now(self.desired.tasks, self.desired.all_tasks, len(applied.errors))
        self._write_status(applied.errors)
        if applied.tasks_changed and collect:
            self._collect_pending = True  # just after the next tick (see _loop)

    # --- shutdown -----------------------------------------------------------------------

    def _shutdown(self) -> None:
        self.requests.refuse_all()
        self.executor.stop_all("shutdown")
        runs = self.executor.runs
        longest = max((r.view.grace_s for r in runs.values()), default=0.0)
        give_up = time.monotonic() + longest + SHUTDOWN_EXTRA_S
        while runs and time.monotonic() < give_up:
            self.executor.collect_exits()
            if not runs:
                break
            deadline = self.supervisor.next_deadline()
            wait = 0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic()))
            time.sleep(wait)
        self._flush_state(force=True)
        events.controller_stopped(len(runs))

    # --- state files -------------------------------------------------------------------------

    def _flush_state(self, force: bool = False, after_tick: bool = False) -> None:
        self.files.flush(
            self.journal.ledger,
            {RUNS_FILE: self.executor.records, STATUS_FILE: lambda: self._status},
            # The applied set grows with the fleet: built and written off the loop, from
            # the tasks in force now (immutable Task objects: the list is the snapshot).
            late={APPLIED_FILE: lambda: partial(applied_json, list(self.desired.tasks.values()))},
            force=force,
            after_tick=after_tick,
        )

    def _write_status(self, errors: list[SpecError]) -> None:
        """status.json anew; written by the loop's next flush, after its tick."""
        self._status = self.desired.status(errors)
        self._note_notifications()
        self.files.dirty.add(STATUS_FILE)

    def _note_notifications(self) -> None:
        """Put the notifier's counts in status.json when they moved (a failed delivery
        shows in `status` within a second)."""
        notifier = self.followup.notifier
        counts = dict(notifier.counts) if notifier is not None else {}
        if counts != self._status.get("notifications"):
            self._status["notifications"] = counts
            self.files.dirty.add(STATUS_FILE)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No automatic pass of the cyclic collector while the first read is applied: a read
    leaves next to no cyclic garbage, and passes over the growing heap cost 1.6 s of the
    7.6 s a read of 100,000 tasks takes. The full pass after the first tick follows."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        # The allocations counted meanwhile would start a full pass at the first one
        # after: 0.26 s with 100,000 tasks, before the first tick. What the read made is
        # set aside (frozen) until collect_garbage, after that tick, unfreezes it.
        gc.freeze()
        if enabled:
            gc.enable()


def collect_garbage() -> None:
    """After a new task set, just after a tick (a second away from the next one): collect
    what the old set and the read left behind, then keep the loaded tasks out of the
    cyclic collector. A full pass over 10,000 tasks costs ~100 ms: run at random, it
    could fall in the middle of a second's spawns."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def sleep_onto(delay: float) -> None:
    """Sleep `delay` seconds and be running when they are over: a sleeping VM wakes
    up to 2 ms late, so the last stretch is spent awake (at most TICK_SPIN_S of CPU,
    only before a second with a run due)."""
    end = time.monotonic() + delay
    if delay > TICK_SPIN_S:
        time.sleep(delay - TICK_SPIN_S)
    while time.monotonic() < end:
        pass


def controller_info(opts: Options, started_at: float) -> dict[str, Any]:
    """controller.json: which process holds the state directory, and how it was started."""
    pid = os.getpid()
    return {
        "pid": pid,
        "start_ticks": process_start_ticks(pid),
        "started_at": started_at,
        "version": __version__,
        "spec_dir": str(opts.spec_dir.absolute()),
        "state_dir": str(opts.state.path.absolute()),
        "identity": opts.identity.describe(),
        "host_zone": getattr(host_zone(), "key", None),
        "watch": opts.watch,
        "http": opts.http,
    }
