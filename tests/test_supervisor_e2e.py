"""End to end with a real controller: strays of stopped runs, the environment of `user` runs."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import pytest
from controller_harness import ControllerProc, start, wait_until, write_task

from reconciler.supervisor import process_start_ticks
from reconciler.supervisor.descendants import _read_mark
from reconciler.supervisor.procinfo import read_stat

DAEMON = "setsid sh -c 'echo $$; exec sleep 300 >/dev/null 2>&1'"


def alive(pid: int, ticks: int) -> bool:
    st = read_stat(pid)
    return st is not None and st.start_ticks == ticks and st.state not in ("Z", "X")


@contextlib.contextmanager
def cleanup(found: list[tuple[int, int]]):  # type: ignore[no-untyped-def]
    try:
        yield found
    finally:
        for pid, ticks in found:
            if alive(pid, ticks):
                os.kill(pid, signal.SIGKILL)


def stray(c: ControllerProc, run_id: str, found: list[tuple[int, int]]) -> tuple[int, int]:
    line = c.wait_for("run.output", run_id=run_id)[0]
    pid = int(line["message"])
    ticks = process_start_ticks(pid)
    assert ticks is not None
    found.append((pid, ticks))
    return pid, ticks


def test_timeout_and_shutdown_stop_setsid_grandchildren(dirs, controllers) -> None:  # type: ignore[no-untyped-def]
    write_task(
        dirs[0],
        "hang",
        {"schedule": "* * * * * *", "command": f"({DAEMON} &); sleep 300",
         "timeoutSeconds": 1, "terminationGracePeriodSeconds": 1},
    )
    write_task(dirs[0], "serve", {"type": "daemon", "command": f"{DAEMON} & sleep 300"})
    with cleanup([]) as found:
        c = start(controllers, dirs)
        first = c.wait_for("run.started", task="hang")[0]
        hang = stray(c, first["run_id"], found)
        served = c.wait_for("run.started", task="serve")[0]
        daemon = stray(c, served["run_id"], found)
        ex = c.wait_for("run.exited", run_id=first["run_id"], timeout=30)[0]
        assert ex["outcome"] == "timed-out"
        assert not alive(*hang)  # gone when the run is reported
        assert alive(*daemon)
        assert c.stop() == 0
        # Shutdown: the daemon's grandchild, and those of the later `hang` runs, are gone
        # (a pid found again carries the run's id: not a reused pid).
        assert [p for p in found if alive(*p)] == []
        for out in c.find("run.output"):
            assert _read_mark(int(out["message"])) != out["run_id"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_user_run_does_not_see_controller_environment(dirs, controllers, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    write_task(
        dirs[0],
        "envdump",
        {"schedule": "* * * * * *", "command": ["/usr/bin/env"], "user": "nobody",
         "env": {"FOO": "bar"}},
    )
    write_task(dirs[0], "rootdump", {"schedule": "* * * * * *", "command": ["/usr/bin/env"]})
    c = ControllerProc(dirs[0], dirs[1], env={"SECRET_TOKEN": "root-only", "LANG": "C.UTF-8"})
    controllers.append(c)
    run = c.wait_for("run.started", task="envdump")[0]
    c.wait_for("run.exited", run_id=run["run_id"])
    env = dict(e["message"].split("=", 1) for e in c.find("run.output", run_id=run["run_id"]))
    assert env == {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/nonexistent",
        "USER": "nobody",
        "LOGNAME": "nobody",
        "SHELL": "/usr/sbin/nologin",
        "LANG": "C.UTF-8",
        "FOO": "bar",
        "RECONCILER_RUN_ID": run["run_id"],
    } | ({"TZ": os.environ["TZ"]} if "TZ" in os.environ else {})
    root = c.wait_for("run.started", task="rootdump")[0]
    c.wait_for("run.exited", run_id=root["run_id"])
    lines = [e["message"] for e in c.find("run.output", run_id=root["run_id"])]
    assert "SECRET_TOKEN=root-only" in lines  # a run without `user` keeps it
    assert c.stop() == 0
    wait_until(lambda: c.proc.poll() is not None, 10, "controller gone")
