"""One live run as the supervisor keeps it, and how its processes are signalled.

`LiveRun` holds a run's process state (ended, stopping, settled) and its group; `Strays`
finds the processes of a run that left its process group (setsid), through the /proc
tree, the run's id in their environment (descendants.py) and the run's cgroup.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from dataclasses import dataclass, field
from signal import Signals

from reconciler.supervisor.cgroups import RunCgroup
from reconciler.supervisor.descendants import ProcScan, send
from reconciler.supervisor.model import Exited, RunHandle
from reconciler.supervisor.procinfo import read_stat
from reconciler.supervisor.pump import Stream, Waker

log = logging.getLogger("reconciler.supervisor")

# One look at /proc serves every run stopped within this long (stop_all, one poll()).
SCAN_REUSE_SECONDS = 0.05
# After its process ends, a run waits at most this long for its pipes to reach EOF
# (a background grandchild may hold them open forever).
DRAIN_SECONDS = 1.0
# After SIGKILL, how long a stopped run waits for its process group to be empty.
KILL_WAIT_SECONDS = 1.0
# Nothing tells us when the last member of a group exits if it was not our child.
GROUP_RECHECK_SECONDS = 0.25
# Adopted runs without a pidfd are only noticed by looking at /proc.
ADOPTED_RECHECK_SECONDS = 1.0


@dataclass(eq=False)
class LiveRun:
    handle: RunHandle
    popen: subprocess.Popen[bytes] | None = None
    streams: list[Stream] = field(default_factory=list)
    open_streams: int = 0
    waker: Waker | None = None
    # Set when the leader process is over (reaped, or vanished from /proc if adopted).
    ended_at: float | None = None
    ended_mono: float | None = None
    exit_code: int | None = None
    signal: str | None = None
    stop_reason: str | None = None
    # Stopping: SIGTERM sent, SIGKILL due at kill_deadline (monotonic).
    kill_deadline: float | None = None
    kill_sent: float | None = None
    # When nothing more is awaited from the process group; the drain clock starts here.
    settled: float | None = None
    abandoned: bool = False
    group_gone: bool = False
    # Adopted runs that do not lead their own group are signalled alone.
    whole_group: bool = True
    # Descendants outside the run's group found since it was stopped: pid -> start ticks.
    strays: dict[int, int] = field(default_factory=dict)
    # Runs with memoryMax, cpuMax or processesMax: their cgroup (cgroups.py).
    cgroup: RunCgroup | None = None

    def deadlines(self, now: float) -> list[float]:
        """When poll() should look at this run again (monotonic), if it is waiting."""
        times: list[float] = []
        if self.kill_deadline is not None and self.kill_sent is None:
            times.append(self.kill_deadline)
        if self.ended_mono is None:
            if self.handle.adopted and self.waker is None:
                times.append(now + ADOPTED_RECHECK_SECONDS)
        elif self.settled is None:
            if self.kill_deadline is None:
                times.append(now)
            else:
                times.append(now + GROUP_RECHECK_SECONDS)
                if self.kill_sent is not None:
                    times.append(self.kill_sent + KILL_WAIT_SECONDS)
        elif self.open_streams == 0:
            times.append(now)
        elif not self.abandoned:
            times.append(self.settled + DRAIN_SECONDS)
        return times

    def exited(self, oom_killed: bool) -> Exited:
        """What poll() reports of this run once it is over."""
        h = self.handle
        assert self.ended_at is not None
        return Exited(
            run_id=h.run_id,
            task=h.task,
            pid=h.pid,
            exit_code=self.exit_code,
            signal=self.signal,
            started_at=h.started_at,
            ended_at=self.ended_at,
            stop_reason=self.stop_reason,
            oom_killed=oom_killed,
        )

    def send_signal(self, sig: Signals) -> bool:
        """Signal the run's process group; False when there is nobody left to signal."""
        if self.group_gone:
            return False
        h = self.handle
        try:
            if self.whole_group:
                os.killpg(h.pgid, sig)
            else:
                st = read_stat(h.pid)
                if self.ended_mono is not None or st is None or st.start_ticks != h.start_ticks:
                    return False
                os.kill(h.pid, sig)
        except ProcessLookupError:
            self.group_gone = True
            return False
        except PermissionError as exc:
            log.warning("cannot signal run %s (pgid %d): %s", h.run_id, h.pgid, exc.strerror)
            return False
        return True


class Strays:
    """Finds and signals a run's processes outside its process group; one /proc scan
    serves every run stopped within SCAN_REUSE_SECONDS."""

    def __init__(self) -> None:
        self._scan: ProcScan | None = None
        self._scan_at = 0.0

    def _proc_scan(self, now: float) -> ProcScan:
        if self._scan is None or now - self._scan_at > SCAN_REUSE_SECONDS:
            self._scan = ProcScan()
            self._scan_at = now
        return self._scan

    def of(self, run: LiveRun, now: float) -> dict[int, int]:
        """The live processes of a run outside its process group (pid -> start ticks):
        below its leader, its group members or strays found before, or carrying its run
        id in their environment. See descendants.py."""
        h = run.handle
        scan = self._proc_scan(now)
        roots: set[int] = set()
        leader = scan.procs.get(h.pid)
        if run.ended_mono is None and leader is not None and leader.start_ticks == h.start_ticks:
            roots.add(h.pid)
        group: set[int] = set()
        if run.whole_group:
            group = {pid for pid, st in scan.procs.items() if st.pgid == h.pgid}
            roots |= group
        for pid, ticks in run.strays.items():
            st = scan.procs.get(pid)
            if st is not None and st.start_ticks == ticks:
                roots.add(pid)
        found = scan.below(roots) | scan.marked(h.run_id, h.start_ticks)
        if run.cgroup is not None:
            # The cgroup holds the whole tree, whatever left the group or cleared its
            # environment; read after the scan, so a process forked since is in it.
            found |= run.cgroup.pids()
        found -= group
        found.discard(h.pid)
        found.discard(os.getpid())
        out: dict[int, int] = {}
        for pid in found:
            st = scan.procs.get(pid) or read_stat(pid)
            if st is not None and st.state not in ("Z", "X"):
                out[pid] = st.start_ticks
        return out

    def signal(
        self, run: LiveRun, strays: dict[int, int], sig: signal.Signals, again: bool = False
    ) -> None:
        """Signal strays not signalled before (all of them with `again`)."""
        for pid, ticks in strays.items():
            if again or run.strays.get(pid) != ticks:
                run.strays[pid] = ticks
                send(pid, ticks, sig)
