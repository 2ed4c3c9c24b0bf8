"""Adopting runs left by a previous controller (they are not our children)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
from helpers_proc import Harness, harness, wait_for

from reconciler.supervisor import process_start_ticks
from reconciler.supervisor.procinfo import read_stat

# Forks `sleep 100` (optionally in a new session), prints its pid, then waits for it:
# the sleep is this helper's child, never ours.
HELPER = textwrap.dedent(
    """
    import os, sys, time
    pid = os.fork()
    if pid == 0:
        if sys.argv[1] == "setsid":
            os.setsid()
        fd = os.open("/dev/null", os.O_RDWR)
        for target in (0, 1, 2):
            os.dup2(fd, target)
        os.execvp("sleep", ["sleep", "100"])
    while sys.argv[1] == "setsid" and os.getpgid(pid) != pid:
        time.sleep(0.001)  # report the pid only once the child leads its group
    print(pid, flush=True)
    os.close(1)
    os.waitpid(pid, 0)
    """
)


class Orphan:
    def __init__(self, setsid: bool) -> None:
        self.helper = subprocess.Popen(
            [sys.executable, "-c", HELPER, "setsid" if setsid else "same-group"],
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        assert self.helper.stdout is not None
        self.pid = int(self.helper.stdout.readline())
        self.helper.stdout.close()
        ticks = process_start_ticks(self.pid)
        assert ticks is not None
        self.ticks = ticks

    def cleanup(self) -> None:
        if process_start_ticks(self.pid) == self.ticks:  # never signal a reused pid
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self.helper.wait(10)


@pytest.fixture
def h() -> Iterator[Harness]:
    with harness() as hh:
        yield hh


@pytest.fixture
def orphan() -> Iterator[Orphan]:
    o = Orphan(setsid=True)
    yield o
    o.cleanup()


def test_adopt_and_stop(h: Harness, orphan: Orphan) -> None:
    st = read_stat(orphan.pid)
    assert st is not None and st.ppid != os.getpid()  # really not our child
    handle = h.sup.adopt("old-1", "task", orphan.pid, orphan.ticks, 1234.5)
    assert handle is not None
    assert (handle.pid, handle.pgid, handle.adopted, handle.started_at) == (
        orphan.pid,
        orphan.pid,
        True,
        1234.5,
    )
    assert [r.run_id for r in h.sup.running()] == ["old-1"]
    assert h.poller.poll() == {}
    wakes = h.out.wakes
    h.sup.stop("old-1", 5.0, "removed")
    wait_for(lambda: h.out.wakes > wakes, what="pidfd wake")
    ex = h.wait("old-1")
    assert (ex.exit_code, ex.signal, ex.stop_reason) == (None, None, "removed")
    assert (ex.started_at, ex.pid) == (1234.5, orphan.pid)
    assert h.sup.running() == []


def test_adopted_run_ending_on_its_own(h: Harness, orphan: Orphan) -> None:
    assert h.sup.adopt("old-1", "task", orphan.pid, orphan.ticks, 0.0) is not None
    os.kill(orphan.pid, signal.SIGKILL)
    ex = h.wait("old-1")
    assert (ex.exit_code, ex.stop_reason) == (None, None)


def test_adopt_refuses_wrong_start_time(h: Harness, orphan: Orphan) -> None:
    assert h.sup.adopt("old-1", "task", orphan.pid, orphan.ticks + 1, 0.0) is None
    assert h.sup.running() == []


def test_adopt_refuses_gone_pid(h: Harness) -> None:
    assert h.sup.adopt("old-1", "task", 2**22 + 7, 1, 0.0) is None


def test_adopted_non_leader_signalled_alone(h: Harness) -> None:
    # The sleep shares its group with the helper: only the sleep may be signalled.
    o = Orphan(setsid=False)
    try:
        handle = h.sup.adopt("old-1", "task", o.pid, o.ticks, 0.0)
        assert handle is not None and handle.pgid == o.helper.pid != o.pid
        h.sup.stop("old-1", 5.0, "removed")
        h.wait("old-1")
        assert o.helper.wait(10) == 0  # the helper was not signalled, it reaped the sleep
    finally:
        o.cleanup()
