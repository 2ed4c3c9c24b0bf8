"""The loop under stalls and long reads: observe before deciding; reads off the loop."""

from __future__ import annotations

import os
import signal
import time
from datetime import datetime

import pytest
from controller_harness import ControllerProc, write_task


def due_of(e: dict) -> float:
    return datetime.fromisoformat(e["due"]).timestamp()


def at(e: dict) -> float:
    return datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp()


def test_a_stalled_controller_starts_the_late_run(dirs, controllers) -> None:
    """Runs that ended during a stall (SIGSTOP, a VM pause) no longer hold a place when
    the controller wakes: the coalesced late run starts, it is not skipped for
    max-concurrency. The run's background child keeps its output pipe open past the
    stall, so the run's end is reported only a moment after the first tick: a decision
    that did not look at what was reaped would count it as alive."""
    spec, state = dirs
    write_task(spec, "tick", {
        "schedule": "*/4 * * * * *",
        "command": "sleep 0.2; (sleep 12 &); exit 0",
        "startingDeadlineSeconds": 30,
    })
    c = ControllerProc(spec, state)
    controllers.append(c)
    c.wait_for("run.started", task="tick", timeout=20)
    c.signal(signal.SIGSTOP)
    stopped_at = time.time()
    time.sleep(9)
    c.signal(signal.SIGCONT)
    late = c.wait_for(
        "run.started", task="tick", timeout=20, where=lambda e: due_of(e) >= stopped_at
    )[0]
    assert at(late) - due_of(late) > 1, "the late run for a due time missed in the stall"
    time.sleep(1)
    assert c.find("run.skipped", task="tick", reason="max-concurrency") == []
    assert c.find("run.skipped", task="tick", reason="coalesced")


@pytest.mark.slow
def test_full_rereads_do_not_hold_up_the_tick(dirs, controllers) -> None:
    """Thousands of changed files are read again on every SIGHUP; meanwhile the
    every-second task starts on time, because the read runs off the loop."""
    spec, state = dirs
    many = spec / "many"
    many.mkdir()
    os.chmod(many, 0o755)
    body = (
        "apiVersion: reconciler/v1\nkind: Task\nmetadata: {{name: job-{i}}}\n"
        "spec: {{schedule: '0 0 1 1 *', command: [/bin/true], env: {{A: '{i}'}}}}\n"
    )
    for i in range(4000):
        p = many / f"job-{i}.yaml"
        p.write_text(body.format(i=i))
        os.chmod(p, 0o644)
    write_task(spec, "tick", {"schedule": "* * * * * *", "command": ["true"]})
    c = ControllerProc(spec, state)
    controllers.append(c)
    c.wait_for("spec.applied", timeout=120)
    c.wait_for("run.started", task="tick", timeout=20)
    start = time.time()
    n = 0
    while time.time() - start < 12:
        # Every file changed (its ctime moves), so every one is parsed again.
        for p in many.iterdir():
            os.utime(p)
        c.signal(signal.SIGHUP)
        n += 1
        time.sleep(0.3)
    end = time.time()
    starts = [e for e in c.find("run.started", task="tick") if start + 1 <= due_of(e) <= end - 1]
    lateness = sorted(at(e) - due_of(e) for e in starts)
    assert len(starts) >= int(end - start) - 3, f"seconds missed: {len(starts)} started"
    assert lateness[-1] < 0.5, f"late starts while reading: {lateness[-5:]}"
