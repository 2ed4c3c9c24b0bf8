"""Finding the processes of a run that left its process group.

A run is a process group, but a descendant can leave it (setsid, setpgid), and once the
process between it and the run exits it is reparented to us (subreaper) or to init:
neither its group, its session nor its ancestry lead back to the run any more. Two
marks find it, combined:

- ancestry: the processes below the run's leader, below the members of its group and
  below strays already found, in one look at the ppid links of /proc;
- the run's id in the process's environment (``RECONCILER_RUN_ID``, set by spawn.py and
  inherited by every descendant that does not clear its environment), read from
  /proc/PID/environ: this survives reparenting and a restart of the controller. Only
  processes started after the run's leader can carry it, so only their environ is read.

What neither mark reaches (a descendant that cleared its environment *and* whose parent
died before we looked, one in another PID namespace, one we may not read as a non-root
controller) is written down in docs/SECURITY.md.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
from collections.abc import Iterable

from reconciler.supervisor.model import RUN_ID_ENV
from reconciler.supervisor.procinfo import ProcStat, read_stat

_KTHREADD = 2


class ProcScan:
    """One look at every process in /proc: stat fields, children by parent, and (read
    lazily, once each) the run id in a process's environment."""

    def __init__(self) -> None:
        self.procs: dict[int, ProcStat] = {}
        self.children: dict[int, list[int]] = {}
        self._marks: dict[int, str | None] = {}
        try:
            names = os.listdir("/proc")
        except OSError:
            names = []
        for name in names:
            if not name.isdigit():
                continue
            st = read_stat(int(name))
            if st is None or st.ppid == _KTHREADD or st.pid == _KTHREADD:
                continue  # gone, or a kernel thread
            self.procs[st.pid] = st
            self.children.setdefault(st.ppid, []).append(st.pid)

    def below(self, roots: Iterable[int]) -> set[int]:
        """Every process below the roots (the roots not included)."""
        out: set[int] = set()
        todo = list(roots)
        while todo:
            for child in self.children.get(todo.pop(), ()):
                if child not in out:
                    out.add(child)
                    todo.append(child)
        return out

    def mark(self, pid: int) -> str | None:
        if pid not in self._marks:
            self._marks[pid] = _read_mark(pid)
        return self._marks[pid]

    def marked(self, run_id: str, since_ticks: int) -> set[int]:
        """Processes started at or after since_ticks that carry run_id in their environment."""
        return {
            pid
            for pid, st in self.procs.items()
            if st.start_ticks >= since_ticks and self.mark(pid) == run_id
        }


def _read_mark(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return None  # gone, or not ours to read (a non-root controller, another user)
    key = RUN_ID_ENV.encode() + b"="
    for entry in raw.split(b"\0"):
        if entry.startswith(key):
            return entry[len(key) :].decode("utf-8", "replace")
    return None


def send(pid: int, start_ticks: int, sig: signal.Signals) -> bool:
    """Signal pid only if it is still the process that started at start_ticks (pidfd:
    no reused pid can be hit between the check and the signal); True if sent."""
    pidfd: int | None = None
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    except (OSError, AttributeError):
        pidfd = None  # old kernel: the check and kill() below leave a tiny window
    try:
        st = read_stat(pid)
        if st is None or st.start_ticks != start_ticks:
            return False
        if pidfd is not None:
            signal.pidfd_send_signal(pidfd, sig)
        else:
            os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False
    except OSError as exc:
        if exc.errno == errno.EPERM:
            return False  # not ours to signal: out of reach, see docs/SECURITY.md
        raise
    finally:
        if pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(pidfd)
