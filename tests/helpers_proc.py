"""Helpers for tests that run real processes: deadlines, /proc scans, output capture."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from reconciler.supervisor import CONTINUATION_MARKER, Exited, Supervisor
from reconciler.supervisor.procinfo import ProcStat, read_stat
from reconciler.supervisor.reaper import is_subreaper, set_subreaper

T = TypeVar("T")

DEADLINE = 10.0  # generous: a loaded 2-core machine must not make the suite flake


def wait_for(
    check: Callable[[], T | None], timeout: float = DEADLINE, interval: float = 0.01, what: str = ""
) -> T:
    """Call check until it returns something truthy; fail after timeout."""
    end = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")
        time.sleep(interval)


def all_procs() -> list[ProcStat]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = read_stat(int(name))
            if st is not None:
                out.append(st)
    return out


def group_members(pgid: int) -> list[ProcStat]:
    return [p for p in all_procs() if p.pgid == pgid]


def zombie_children(ppid: int) -> list[ProcStat]:
    return [p for p in all_procs() if p.ppid == ppid and p.state == "Z"]


class Output:
    """on_output recorder, safe to read from the test thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lines: list[tuple[str, str, str, str]] = []
        self.wakes = 0

    def __call__(self, run_id: str, task: str, stream: str, line: str) -> None:
        with self._lock:
            self._lines.append((run_id, task, stream, line))

    def wake(self) -> None:
        with self._lock:
            self.wakes += 1

    def lines(self, run_id: str, stream: str = "stdout") -> list[str]:
        with self._lock:
            return [ln for r, _t, s, ln in self._lines if r == run_id and s == stream]

    def count(self, run_id: str) -> int:
        with self._lock:
            return sum(1 for r, *_ in self._lines if r == run_id)


def join_pieces(pieces: Iterable[str]) -> list[str]:
    """Undo the splitting of long lines."""
    out: list[str] = []
    pending = ""
    for piece in pieces:
        if piece.endswith(CONTINUATION_MARKER):
            pending += piece[: -len(CONTINUATION_MARKER)]
        else:
            out.append(pending + piece)
            pending = ""
    if pending:
        out.append(pending)
    return out


class Poller:
    """Collects Exited records from a Supervisor, by run id."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.exited: dict[str, Exited] = {}

    def poll(self) -> dict[str, Exited]:
        for ex in self.sup.poll():
            assert ex.run_id not in self.exited, f"{ex.run_id} reported twice"
            self.exited[ex.run_id] = ex
        return self.exited

    def wait(self, run_id: str, timeout: float = DEADLINE) -> Exited:
        def check() -> Exited | None:
            return self.poll().get(run_id)

        return wait_for(check, timeout, what=f"run {run_id} to exit")


class Harness:
    def __init__(self, sup: Supervisor, out: Output) -> None:
        self.sup = sup
        self.out = out
        self.poller = Poller(sup)

    def wait(self, run_id: str, timeout: float = DEADLINE) -> Exited:
        return self.poller.wait(run_id, timeout)


@contextlib.contextmanager
def harness(subreaper: bool = True) -> Iterator[Harness]:
    """A Supervisor for one test; as in production the test process is made a subreaper
    (this machine's PID 1 may not reap orphans). Everything is stopped afterwards."""
    was_subreaper = is_subreaper()
    if subreaper:
        set_subreaper(True)
    out = Output()
    sup = Supervisor(out, out.wake)
    h = Harness(sup, out)
    try:
        yield h
    finally:
        try:
            sup.stop_all("teardown", lambda _h: 0.0)
            wait_for(lambda: (h.poller.poll(), not sup.running())[1], what="teardown")
        finally:
            sup.close()
            set_subreaper(was_subreaper)


@contextlib.contextmanager
def created_user(prefix: str = "rsup", home: bool = False) -> Iterator[str]:
    """A real user (and its own primary group plus one supplementary group) made with
    useradd for the test and removed afterwards. Needs root. With home=True its home
    folder exists, is owned by it and is 0750; else the passwd entry names a missing one."""
    suffix = f"{os.getpid() % 100000}{threading.get_ident() % 97}"
    name, primary, extra = f"{prefix}{suffix}", f"{prefix}p{suffix}", f"{prefix}x{suffix}"
    home_dir = f"/home/{name}"
    subprocess.run(["groupadd", primary], check=True)
    subprocess.run(["groupadd", extra], check=True)
    subprocess.run(
        ["useradd", "-M", "-g", primary, "-G", extra, "-d", home_dir, "-s", "/bin/sh", name],
        check=True,
    )
    try:
        if home:
            os.makedirs(home_dir, mode=0o750)
            pw = pwd.getpwnam(name)
            os.chown(home_dir, pw.pw_uid, pw.pw_gid)
            os.chmod(home_dir, 0o750)
        yield name
    finally:
        if home:
            shutil.rmtree(home_dir, ignore_errors=True)
        subprocess.run(["userdel", name], check=False)
        subprocess.run(["groupdel", extra], check=False)
        subprocess.run(["groupdel", primary], check=False)
