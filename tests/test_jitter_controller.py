"""jitterSeconds in a real controller: a run starts within [due, due + N), at the task's
documented per-host delay, while its logged `due` stays the scheduled second."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

from controller_harness import ControllerProc, start, write_task

HOST = "test-host"  # the harness starts controllers with --hostname test-host
N = 4


def delay(task: str, host: str = HOST) -> int:
    digest = hashlib.sha256(f"{task}\n{host}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % N


def test_runs_start_late_by_the_hosts_delay_and_log_the_scheduled_due(
    dirs: tuple[Path, Path], controllers: list[ControllerProc]
) -> None:
    # A name whose delay on this host is 2 s: a run started on time would be visibly early,
    # and a busy host still has 2 s before due + N.
    name = next(f"jit-{i}" for i in range(100) if delay(f"jit-{i}") == 2)
    write_task(dirs[0], name, {"schedule": "*/4 * * * * *", "jitterSeconds": N,
                               "command": ["true"]})
    c = start(controllers, dirs)
    started = c.wait_for("run.started", task=name, count=3, timeout=30)
    for event in started:
        due = datetime.fromisoformat(event["due"]).timestamp()
        at = datetime.fromisoformat(event["timestamp"]).timestamp()
        assert due % 4 == 0, event  # the scheduled second, not the jittered one
        assert due + 2 <= at < due + N, (event, at - due)
    dues = [datetime.fromisoformat(e["due"]).timestamp() for e in started]
    assert dues == sorted(set(dues)), "each due time once, in order"
    assert c.stop() == 0
