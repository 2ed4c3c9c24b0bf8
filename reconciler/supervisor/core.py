"""The Supervisor: the live runs of this controller and everything about their processes."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator

from reconciler.supervisor.cgroups import CgroupError, Cgroups, RunCgroup, kill_all
from reconciler.supervisor.live import DRAIN_SECONDS, KILL_WAIT_SECONDS, LiveRun, Strays
from reconciler.supervisor.model import Exited, RunHandle, RunSpec, SpawnError
from reconciler.supervisor.procinfo import group_exists, read_stat
from reconciler.supervisor.pump import OutputCallback, Pump, Stream
from reconciler.supervisor.reaper import describe_status, reap_all
from reconciler.supervisor.spawn import prepare, spawn

log = logging.getLogger("reconciler.supervisor")

# A run's cgroup still holding processes when the run is reported (what it daemonized)
# is tried again this often, and removed once empty.
CGROUP_RETRY_SECONDS = 5.0


class Supervisor:
    """Starts, stops, adopts and reaps runs. See the package docstring for the contract."""

    def __init__(self, on_output: OutputCallback, wake: Callable[[], None] | None = None) -> None:
        self._wake = wake or (lambda: None)
        self._lock = threading.Lock()
        self._runs: dict[str, LiveRun] = {}
        self._by_pid: dict[int, LiveRun] = {}
        self._closed = False
        self._pump = Pump(on_output)
        # Streams of runs started inside holding_output(), read once it ends.
        self._held: list[Stream] | None = None
        self._strays = Strays()
        self._cgroups = Cgroups()
        # Cgroups of reported runs that still held processes; removed once empty.
        self._leftover: list[RunCgroup] = []
        self._leftover_at = 0.0
        try:
            self._cgroups.clean_leftovers()
        except OSError as exc:
            log.warning("cannot clean cgroups left by an earlier controller: %s", exc)

    # --- starting and adopting ----------------------------------------------------------

    def start(self, spec: RunSpec) -> RunHandle:
        if self._closed:
            raise RuntimeError("supervisor is closed")
        prepared = prepare(spec)
        cgroup: RunCgroup | None = None
        if spec.limits is not None and spec.limits.cgroup():
            try:
                cgroup = self._cgroups.create(spec.run_id, spec.limits)
            except CgroupError as exc:
                raise SpawnError(str(exc)) from None
        # The lock is held across the spawn so that poll() in another thread cannot
        # reap a quick child before it is known.
        with self._lock:
            try:
                if spec.run_id in self._runs:
                    raise ValueError(f"run {spec.run_id} already exists")
                spawned = spawn(prepared, cgroup.procs_files() if cgroup is not None else ())
            except BaseException:
                if cgroup is not None:
                    cgroup.remove()
                raise
            started_at = time.time()
            pid = spawned.popen.pid
            handle = RunHandle(
                run_id=spec.run_id,
                task=spec.task,
                pid=pid,
                pgid=pid,  # start_new_session: the child leads its own session and group
                start_ticks=None,
                started_at=started_at,
                adopted=False,
            )
            run = LiveRun(handle, popen=spawned.popen, open_streams=2, cgroup=cgroup)
            self._runs[spec.run_id] = run
            self._by_pid[pid] = run
            on_done = functools.partial(self._stream_done, run)
            run.streams = [
                Stream(spec.run_id, spec.task, name, fd, on_done)
                for name, fd in (("stdout", spawned.stdout_fd), ("stderr", spawned.stderr_fd))
            ]
        if self._held is not None:
            self._held.extend(run.streams)
        else:
            self._pump.add_streams(run.streams)
        return handle

    @contextlib.contextmanager
    def holding_output(self) -> Iterator[None]:
        """Runs started inside are read from only when the block ends (their output
        waits in the pipe): the caller can log that they started before any of their
        output, and the pump thread wakes once, not once per run. Call from the thread
        that calls start(); not nested."""
        assert self._held is None, "holding_output() is not reentrant"
        self._held = []
        try:
            yield
        finally:
            held, self._held = self._held, None
            self._pump.add_streams(held)

    def adopt(
        self, run_id: str, task: str, pid: int, start_ticks: int, started_at: float
    ) -> RunHandle | None:
        """Take over a run left by a previous controller; None if it is gone (or the pid
        now belongs to another process)."""
        st = read_stat(pid)
        if st is None or st.start_ticks != start_ticks or st.state in ("Z", "X"):
            return None
        pidfd: int | None = None
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return None
        except (OSError, AttributeError):
            pidfd = None  # old kernel: noticed by polling /proc instead
        if pidfd is not None and (read_stat(pid) or st).start_ticks != start_ticks:
            os.close(pidfd)  # the pid was reused between the two looks
            return None
        handle = RunHandle(run_id, task, pid, st.pgid, start_ticks, started_at, adopted=True)
        run = LiveRun(handle, whole_group=st.pgid == pid, cgroup=self._cgroups.adopt(run_id, pid))
        with self._lock:
            if run_id in self._runs:
                if pidfd is not None:
                    os.close(pidfd)
                raise ValueError(f"run {run_id} already exists")
            self._runs[run_id] = run
            self._by_pid[pid] = run
            if pidfd is not None:
                run.waker = self._pump.add_waker(pidfd, self._wake)
        return handle

    # --- stopping -------------------------------------------------------------------------

    def stop(self, run_id: str, grace: float, reason: str) -> None:
        """SIGTERM to the run's process group now, SIGKILL when `grace` runs out.

        A second stop keeps the earlier deadline unless its own is sooner, and the first
        reason. The run's Exited still comes from poll()."""
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                return
            now = time.monotonic()
            deadline = now + max(0.0, grace)
            if run.kill_deadline is None:
                # Look for strays before the group gets its signal: a member dying of it
                # would cut the ppid link to what it started.
                strays = self._strays.of(run, now)
                if run.ended_mono is None:
                    run.stop_reason = reason
                    run.send_signal(signal.SIGTERM)
                    self._strays.signal(run, strays, signal.SIGTERM)
                elif run.send_signal(signal.SIGTERM) | bool(strays):
                    # The leader ended on its own but its group (or what left it) lives
                    # on: they get their grace period too before the run is reported.
                    self._strays.signal(run, strays, signal.SIGTERM)
                    run.settled = None
                else:
                    return
                run.kill_deadline = deadline
            elif deadline < run.kill_deadline:
                run.kill_deadline = deadline
            if run.kill_sent is None and run.kill_deadline <= now:
                self._escalate(run, now)

    def stop_all(self, reason: str, grace_for: Callable[[RunHandle], float]) -> None:
        for handle in self.running():
            self.stop(handle.run_id, grace_for(handle), reason)

    def _escalate(self, run: LiveRun, now: float) -> None:
        strays = self._strays.of(run, now)
        run.send_signal(signal.SIGKILL)
        if run.cgroup is not None:
            kill_all(run.cgroup, signal.SIGKILL)
        run.kill_sent = now
        for pid, ticks in run.strays.items():
            strays.setdefault(pid, ticks)
        self._strays.signal(run, strays, signal.SIGKILL, again=True)

    # --- observing ---------------------------------------------------------------------

    def _stream_done(self, run: LiveRun, _stream: Stream) -> None:
        # Pump thread.
        with self._lock:
            run.open_streams -= 1
        self._wake()

    def _reap(self, now: float) -> None:
        for pid, status in reap_all():
            run = self._by_pid.pop(pid, None)
            if run is None:
                continue  # an orphaned grandchild, or a child of nobody we know
            if run.popen is not None:
                # Keeps Popen.__del__ from waiting on (or warning about) this pid.
                run.popen.returncode = os.waitstatus_to_exitcode(status)
                run.popen = None
            if run.ended_mono is None:
                run.exit_code, run.signal = describe_status(status)
                run.ended_at = time.time()
                run.ended_mono = now

    def _check_adopted(self, now: float) -> None:
        me = os.getpid()
        for run in self._runs.values():
            h = run.handle
            if not h.adopted or run.ended_mono is not None:
                continue
            st = read_stat(h.pid)
            same = st is not None and st.start_ticks == h.start_ticks
            if same and st is not None and (st.state not in ("Z", "X") or st.ppid == me):
                continue  # alive, or our own zombie that the next reap collects
            self._by_pid.pop(h.pid, None)
            run.ended_at = time.time()
            run.ended_mono = now
            if run.waker is not None:
                self._pump.discard_waker(run.waker)

    def _settle(self, run: LiveRun, now: float) -> None:
        if run.kill_deadline is None:
            run.settled = run.ended_mono
            return
        group_alive = run.whole_group and not run.group_gone and group_exists(run.handle.pgid)
        if run.whole_group and not group_alive:
            run.group_gone = True
        # Strays found only now (forked during the grace period) get the current signal.
        strays = self._strays.of(run, now)
        sig = signal.SIGTERM if run.kill_sent is None else signal.SIGKILL
        self._strays.signal(run, strays, sig)
        if not group_alive and not strays:
            run.settled = now
        elif run.kill_sent is not None and now >= run.kill_sent + KILL_WAIT_SECONDS:
            log.warning(
                "run %s: process group %d or %d other descendants survived SIGKILL",
                run.handle.run_id,
                run.handle.pgid,
                len(strays),
            )
            run.settled = now

    def poll(self) -> list[Exited]:
        """Reap, escalate due SIGKILLs, notice adopted runs ending; return finished runs.

        Never blocks. A run is returned once its process is over (for a stopped run: its
        whole process group) and its output pipes reached EOF, or DRAIN_SECONDS later."""
        out: list[Exited] = []
        with self._lock:
            now = time.monotonic()
            for run in self._runs.values():
                if not run.handle.resolved() and run.ended_mono is None:
                    _ = run.handle.start_ticks  # while /proc/<pid> is sure to exist
            self._reap(now)
            self._check_adopted(now)
            if self._leftover and now >= self._leftover_at + CGROUP_RETRY_SECONDS:
                self._leftover_at = now
                self._leftover = [rc for rc in self._leftover if not rc.remove()]
            for run in list(self._runs.values()):
                due = run.kill_deadline
                if due is not None and run.kill_sent is None and now >= due:
                    self._escalate(run, now)
                if run.ended_mono is None:
                    continue
                if run.settled is None:
                    self._settle(run, now)
                    if run.settled is None:
                        continue
                if run.open_streams > 0:
                    if not run.abandoned and now >= run.settled + DRAIN_SECONDS:
                        run.abandoned = True
                        for stream in run.streams:
                            self._pump.abandon(stream)
                    continue
                out.append(self._finish(run))
        return out

    def _finish(self, run: LiveRun) -> Exited:
        h = run.handle
        del self._runs[h.run_id]
        if self._by_pid.get(h.pid) is run:
            del self._by_pid[h.pid]
        oom_killed = False
        if run.cgroup is not None:
            oom_killed = run.cgroup.oom_killed()
            if not run.cgroup.remove():
                self._leftover.append(run.cgroup)
        return run.exited(oom_killed)

    def ended(self) -> set[str]:
        """Runs whose process is over (reaped, or gone if adopted) but that poll() has not
        returned yet: their last output, or the rest of a stopped group, is still awaited."""
        with self._lock:
            return {rid for rid, run in self._runs.items() if run.ended_mono is not None}

    def running(self) -> list[RunHandle]:
        """Every run not yet returned by poll(), adopted ones included."""
        with self._lock:
            return [run.handle for run in self._runs.values()]

    def next_deadline(self) -> float | None:
        """Monotonic time by which poll() should be called even if nothing wakes us."""
        now = time.monotonic()
        times: list[float] = []
        with self._lock:
            for run in self._runs.values():
                times.extend(run.deadlines(now))
        return min(times) if times else None

    def close(self) -> None:
        """Stop the pump thread. Runs are left as they are: stop them first."""
        self._closed = True
        self._pump.close()
