"""Descendants that left the run's process group (setsid) are stopped with the run."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest
from helpers_proc import Harness, harness, wait_for, zombie_children

from reconciler.supervisor import RunSpec, process_start_ticks
from reconciler.supervisor.procinfo import read_stat

# A grandchild in a session (and process group) of its own that prints its pid and
# sleeps; its output does not hold the run's pipes open.
DAEMON = "setsid sh -c 'echo $$; exec sleep 300 >/dev/null 2>&1'"
# The same, ignoring SIGTERM (exec keeps an ignored signal ignored).
STUBBORN = "setsid sh -c 'trap \"\" TERM; echo $$; exec sleep 300 >/dev/null 2>&1'"


@pytest.fixture
def h() -> Iterator[Harness]:
    with harness() as hh:
        yield hh


def sh(run_id: str, script: str) -> RunSpec:
    return RunSpec(run_id, "task", ["/bin/sh", "-c", script], {})


class Stray:
    """A process we must find gone; killed at the end of the test if it is not."""

    def __init__(self, pid: int) -> None:
        ticks = process_start_ticks(pid)
        assert ticks is not None, f"pid {pid} already gone"
        self.pid, self.ticks = pid, ticks

    def alive(self) -> bool:
        st = read_stat(self.pid)
        return st is not None and st.start_ticks == self.ticks and st.state not in ("Z", "X")

    def kill(self) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


@contextlib.contextmanager
def strays() -> Iterator[list[Stray]]:
    found: list[Stray] = []
    try:
        yield found
    finally:
        for s in found:
            s.kill()


def stray_of(h: Harness, run_id: str, found: list[Stray], line: int = 0) -> Stray:
    pid = int(wait_for(lambda: h.out.lines(run_id)[line:], what="the grandchild's pid")[0])
    stray = Stray(pid)
    found.append(stray)
    handle = next(r for r in h.sup.running() if r.run_id == run_id)
    assert os.getsid(pid) == pid != handle.pid  # out of the run's session and group
    return stray


def no_zombies(h: Harness) -> bool:
    h.poller.poll()
    return zombie_children(os.getpid()) == []


def test_timeout_stops_setsid_grandchild(h: Harness) -> None:
    with strays() as found:
        h.sup.start(sh("r1", f"{DAEMON} & sleep 300"))
        stray = stray_of(h, "r1", found)
        h.sup.stop("r1", 5.0, "timeout")
        ex = h.wait("r1")
        assert ex.stop_reason == "timeout"
        assert not stray.alive()
        wait_for(lambda: no_zombies(h), what="no zombies left")


def test_stop_finds_grandchild_already_reparented_to_us(h: Harness) -> None:
    # The subshell exits at once: the grandchild is reparented to us (subreaper) before
    # the stop, so neither the run's group nor its process tree lead to it.
    with strays() as found:
        h.sup.start(sh("r1", f"({DAEMON} &); sleep 300"))
        stray = stray_of(h, "r1", found)
        wait_for(lambda: (read_stat(stray.pid) or read_stat(1)).ppid == os.getpid(), what="reparent")
        h.sup.stop("r1", 5.0, "replaced")
        h.wait("r1")
        assert not stray.alive()
        wait_for(lambda: no_zombies(h), what="no zombies left")


def test_grandchild_with_cleared_environment_found_through_its_parent(h: Harness) -> None:
    with strays() as found:
        h.sup.start(sh("r1", f"env -i /usr/bin/{DAEMON} & sleep 300"))
        stray = stray_of(h, "r1", found)
        h.sup.stop("r1", 5.0, "timeout")
        h.wait("r1")
        assert not stray.alive()


def test_grandchild_ignoring_term_gets_sigkill_after_grace(h: Harness) -> None:
    with strays() as found:
        h.sup.start(sh("r1", f"{STUBBORN} & sleep 300"))
        stray = stray_of(h, "r1", found)
        t0 = time.monotonic()
        h.sup.stop("r1", 1.0, "shutdown")
        ex = h.wait("r1")
        # The run is reported only once the grandchild is gone, after its grace period.
        assert time.monotonic() - t0 >= 1.0
        assert ex.stop_reason == "shutdown"
        assert not stray.alive()
        wait_for(lambda: no_zombies(h), what="no zombies left")


def test_grandchild_gets_sigterm_first(h: Harness) -> None:
    script = "setsid sh -c 'trap \"echo term >&2; exit 0\" TERM; echo $$; while :; do sleep 0.05; done'"
    with strays() as found:
        h.sup.start(sh("r1", f"{script} & sleep 300"))
        stray = stray_of(h, "r1", found)
        h.sup.stop("r1", 30.0, "timeout")
        t0 = time.monotonic()
        h.wait("r1")
        assert time.monotonic() - t0 < 10  # it ended on SIGTERM, long before the SIGKILL
        assert "term" in h.out.lines("r1", "stderr")
        assert not stray.alive()


def test_stop_all_stops_grandchildren_of_every_run(h: Harness) -> None:
    with strays() as found:
        for i in range(3):
            h.sup.start(sh(f"r{i}", f"({DAEMON} &); {DAEMON} & sleep 300"))
        mine = []
        for i in range(3):
            wait_for(lambda i=i: len(h.out.lines(f"r{i}")) == 2, what="two grandchildren")  # type: ignore[misc]
            mine += [stray_of(h, f"r{i}", found, n) for n in (0, 1)]
        h.sup.stop_all("shutdown", lambda _h: 5.0)
        for i in range(3):
            h.wait(f"r{i}")
        assert [s for s in mine if s.alive()] == []


def test_other_runs_grandchildren_are_left_alone(h: Harness) -> None:
    with strays() as found:
        h.sup.start(sh("a", f"({DAEMON} &); sleep 300"))
        h.sup.start(sh("b", f"({DAEMON} &); sleep 300"))
        a = stray_of(h, "a", found)
        b = stray_of(h, "b", found)
        h.sup.stop("a", 5.0, "timeout")
        h.wait("a")
        assert not a.alive()
        assert b.alive()


def test_run_ending_on_its_own_leaves_daemonized_grandchild(h: Harness) -> None:
    # As cron: a run that exits by itself leaves what it daemonized; it is still reaped
    # by us (the subreaper) when it ends.
    with strays() as found:
        h.sup.start(sh("r1", f"({DAEMON} &); exit 0"))
        ex = h.wait("r1")
        assert ex.exit_code == 0
        stray = Stray(int(h.out.lines("r1")[0]))
        found.append(stray)
        assert stray.alive()
        h.sup.stop("r1", 0.0, "shutdown")  # over: nothing to stop any more
        time.sleep(0.2)
        assert stray.alive()
        os.kill(stray.pid, signal.SIGKILL)
        wait_for(lambda: no_zombies(h), what="the grandchild reaped")


# Starts a run the way a previous controller did (with its RECONCILER_RUN_ID) and leaves
# it behind: its leader is not our child, its daemonized grandchild not our descendant.
PREVIOUS_CONTROLLER = textwrap.dedent(
    """
    import os, subprocess, sys
    env = dict(os.environ, RECONCILER_RUN_ID="old-run")
    p = subprocess.Popen(["/bin/sh", "-c", sys.argv[1]], env=env, start_new_session=True,
                         stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(p.pid, p.stdout.readline().decode().strip(), flush=True)
    """
)


def test_adopted_run_stops_grandchildren_left_by_previous_controller(h: Harness) -> None:
    with strays() as found:
        out = subprocess.run(
            [sys.executable, "-c", PREVIOUS_CONTROLLER, f"({DAEMON} &); exec sleep 300"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.split()
        leader, grandchild = Stray(int(out[0])), Stray(int(out[1]))
        found += [leader, grandchild]
        handle = h.sup.adopt("old-run", "task", leader.pid, leader.ticks, time.time())
        assert handle is not None
        h.sup.stop("old-run", 5.0, "shutdown")
        h.wait("old-run")
        assert not leader.alive()
        assert not grandchild.alive()
