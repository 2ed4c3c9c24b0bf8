"""`timeoutSeconds: N` stops a run N seconds after its start, to within the tick: not at the
first whole second after N (N+1 for a run started on the second)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from controller_harness import ControllerProc, start, write_task


def test_a_scheduled_and_a_manual_run_end_on_their_timeout(
    dirs: tuple[Path, Path], controllers: list[ControllerProc]
) -> None:
    # `exec`: the signal reaches sleep itself, which dies of it at once.
    write_task(dirs[0], "every-second", {
        "schedule": "* * * * * *", "command": "exec sleep 30", "timeoutSeconds": 2,
    })
    write_task(dirs[0], "by-hand", {
        "schedule": "@yearly", "command": "exec sleep 30", "timeoutSeconds": 2,
    })
    c = start(controllers, dirs)
    # A manual run starts between two seconds: its timeout falls between ticks too.
    res = subprocess.run(
        [sys.executable, "-m", "reconciler", "run", "by-hand", "--state-dir", str(dirs[1])],
        capture_output=True, text=True, timeout=30,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    for task in ("every-second", "by-hand"):
        ended = c.wait_for("run.exited", task=task, timeout=30, count=2 if task == "every-second"
                           else 1)
        for e in ended:
            assert e["outcome"] == "timed-out" and e["signal"] == "SIGTERM", e
            assert 2.0 <= e["duration_s"] < 2.5, (task, e["duration_s"])
    assert c.stop() == 0
