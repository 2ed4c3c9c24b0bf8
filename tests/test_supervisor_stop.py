"""Stopping runs (whole process groups) and reaping, also as PID 1 of a namespace."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers_proc import Harness, group_members, harness, wait_for, zombie_children

from reconciler.supervisor import RunSpec, become_subreaper
from reconciler.supervisor.reaper import is_subreaper, set_subreaper

ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin"}


@pytest.fixture
def h() -> Iterator[Harness]:
    with harness() as hh:
        yield hh


def sh(run_id: str, script: str) -> RunSpec:
    return RunSpec(run_id, "task", ["/bin/sh", "-c", script], ENV)


def comms(pgid: int) -> list[str]:
    out = []
    for p in group_members(pgid):
        with contextlib.suppress(OSError):
            out.append(Path(f"/proc/{p.pid}/comm").read_text().strip())
    return out


def live(pgid: int) -> list[str]:
    return [p.state for p in group_members(pgid)]


def test_stop_term_trapped(h: Harness) -> None:
    h.sup.start(
        sh("r1", "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.05; done")
    )
    wait_for(lambda: h.out.lines("r1") == ["ready"], what="trap installed")
    h.sup.stop("r1", 30.0, "timeout")
    ex = h.wait("r1")
    assert (ex.exit_code, ex.signal, ex.stop_reason) == (7, None, "timeout")
    assert h.out.lines("r1") == ["ready", "got-term"]


def test_stop_term_ignored_gets_sigkill_after_grace(h: Harness) -> None:
    handle = h.sup.start(sh("r1", "trap '' TERM; echo ready; sleep 100"))
    wait_for(lambda: h.out.lines("r1") == ["ready"], what="trap installed")
    t0 = time.monotonic()
    h.sup.stop("r1", 0.5, "replaced")
    deadline = h.sup.next_deadline()
    assert deadline is not None and t0 < deadline <= t0 + 0.6
    ex = h.wait("r1")
    assert time.monotonic() - t0 >= 0.5
    assert (ex.exit_code, ex.signal, ex.stop_reason) == (None, "SIGKILL", "replaced")
    assert live(handle.pgid) == []


def test_second_stop_keeps_earlier_deadline_unless_shorter(h: Harness) -> None:
    h.sup.start(sh("r1", "trap '' TERM; echo ready; sleep 100"))
    wait_for(lambda: h.out.lines("r1") == ["ready"], what="trap installed")
    h.sup.stop("r1", 5.0, "timeout")
    first = h.sup.next_deadline()
    h.sup.stop("r1", 50.0, "shutdown")
    assert h.sup.next_deadline() == first
    t0 = time.monotonic()
    h.sup.stop("r1", 0.2, "shutdown")
    ex = h.wait("r1")
    assert time.monotonic() - t0 < 4.0
    assert (ex.signal, ex.stop_reason) == ("SIGKILL", "timeout")


def test_stop_unknown_run_is_ignored(h: Harness) -> None:
    h.sup.stop("nope", 1.0, "timeout")
    assert h.sup.next_deadline() is None


def test_stop_kills_whole_group(h: Harness) -> None:
    handle = h.sup.start(sh("r1", "sleep 100 & sleep 100"))
    wait_for(lambda: comms(handle.pgid).count("sleep") == 2, what="both sleeps")
    h.sup.stop("r1", 5.0, "timeout")
    ex = h.wait("r1")
    assert ex.signal == "SIGTERM"
    assert live(handle.pgid) == []


def test_stopped_group_members_get_grace_then_sigkill(h: Harness) -> None:
    # The shell dies on TERM at once; the background sleep ignores TERM and lives on
    # until the SIGKILL, and only then is the run over.
    script = "(trap '' TERM; echo ready; exec sleep 100) & wait"
    handle = h.sup.start(sh("r1", script))
    wait_for(lambda: h.out.lines("r1") == ["ready"], what="trap installed")
    t0 = time.monotonic()
    h.sup.stop("r1", 1.0, "shutdown")
    ex = h.wait("r1")
    assert time.monotonic() - t0 >= 1.0
    assert (ex.signal, ex.stop_reason) == ("SIGTERM", "shutdown")
    assert live(handle.pgid) == []


def test_stop_after_leader_exit_stops_leftovers(h: Harness) -> None:
    handle = h.sup.start(sh("r1", "sleep 100 & exit 0"))
    wait_for(
        lambda: [p.state for p in group_members(handle.pgid) if p.pid == handle.pid] == ["Z"],
        what="leader exited",
    )
    # Reaped, but not reported: the sleep holds the pipes, so a drain second starts now.
    assert h.poller.poll() == {}
    h.sup.stop("r1", 5.0, "shutdown")
    ex = h.wait("r1")
    assert ex.exit_code == 0 and ex.stop_reason is None  # it had ended on its own
    assert live(handle.pgid) == []


def test_stop_all(h: Harness) -> None:
    handles = [h.sup.start(sh(f"r{i}", "sleep 100")) for i in range(3)]
    graces: list[str] = []
    h.sup.stop_all("shutdown", lambda hd: graces.append(hd.run_id) or 5.0)  # type: ignore[func-returns-value]
    assert sorted(graces) == ["r0", "r1", "r2"]
    for hd in handles:
        assert h.wait(hd.run_id).stop_reason == "shutdown"
    assert h.sup.running() == []


def test_orphaned_grandchild_reaped(h: Harness) -> None:
    assert is_subreaper()
    handle = h.sup.start(sh("r1", "(sleep 100 &) ; exit 0"))
    me = os.getpid()
    # The orphaned sleep is reparented to us, the subreaper.
    orphan = wait_for(
        lambda: [p for p in group_members(handle.pgid) if p.pid != handle.pid and p.ppid == me],
        what="orphan reparented to us",
    )[0]
    h.wait("r1")
    os.kill(orphan.pid, signal.SIGKILL)  # it is our child now: its pid cannot be reused yet
    # poll() reaps it like any child: no zombie left behind.

    def reaped() -> bool:
        h.poller.poll()
        return all(p.pid != orphan.pid for p in group_members(handle.pgid))

    wait_for(reaped, what="orphan reaped")
    assert zombie_children(me) == []


def test_become_subreaper() -> None:
    was = is_subreaper()
    try:
        assert become_subreaper() is True
        assert is_subreaper()
    finally:
        set_subreaper(was)


PID1_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    from reconciler.supervisor import RunSpec, Supervisor

    def zombies():
        out = []
        for name in os.listdir("/proc"):
            if name.isdigit() and name != "1":
                try:
                    stat = open(f"/proc/{name}/stat").read()
                except OSError:
                    continue
                if stat[stat.rfind(")") + 2] == "Z":
                    out.append(int(name))
        return out

    def others():
        return [n for n in os.listdir("/proc") if n.isdigit() and n != "1"]

    sup = Supervisor(lambda *a: None)
    env = {"PATH": "/usr/bin:/bin"}
    for i in range(5):
        sup.start(RunSpec(f"r{i}", "t", ["/bin/sh", "-c", "(sleep 0.2 &) ; (sleep 0.3 &); exit 0"], env))
    done = {}
    end = time.monotonic() + 20
    while (len(done) < 5 or others()) and time.monotonic() < end:
        for ex in sup.poll():
            done[ex.run_id] = ex.exit_code
        time.sleep(0.02)
    sup.close()
    print(json.dumps({"pid": os.getpid(), "done": done, "zombies": zombies(), "left": others()}))
    """
)


def test_pid1_reaps_orphans_in_namespace(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare")
    script = tmp_path / "pid1.py"
    script.write_text(PID1_SCRIPT)
    try:
        proc = subprocess.run(
            ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, str(script)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("pid-1 script hung")
    if (
        proc.returncode != 0
        and "unshare" in proc.stderr
        and "Operation not permitted" in proc.stderr
    ):
        pytest.skip("unshare not permitted here")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["pid"] == 1
    assert result["done"] == {f"r{i}": 0 for i in range(5)}
    assert result["zombies"] == [] and result["left"] == []
