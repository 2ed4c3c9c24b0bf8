"""A slow log reader and the clock: due-to-exec latency of an every-second task.

    python bench/bench_log_sink.py [--seconds 20] [--cases unloaded stopped flood]

Each case starts a real `reconciler apply` whose stdout is a pipe read by a thread of
this script, with an every-second task `tick` that appends `$$ $(date +%s.%N)` to a
file (the run's pid and the moment it ran, after fork, exec of sh and of date). The
due second of each run comes from its `run.started` line (matched by pid), read when
the reader is back at full speed; as bench_apply.py, latency = exec time - due second.

(a) unloaded: the reader reads as fast as it can.
(b) stopped: a second task prints 200 lines a second; the reader stops for the window
    (the pipe fills in a few seconds), as `reconciler apply | cat` with the cat stopped.
(c) flood: a daemon writes output as fast as `tr | fold` go (200-byte lines) and the
    reader takes 40 KB/s.

Printed per case: runs in the window, seconds of the window without a run, latency
p50/p99/max, and the lines the controller dropped (from its `log.dropped` lines).
Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

CHATTY = "for i in $(seq 1 200); do echo chatter-line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; done"
FLOOD = "while :; do head -c 200000 /dev/zero | tr '\\0' x | fold -w 200; sleep 0.05; done"


class PacedReader:
    """Reads a pipe at `rate` bytes/s (None: as fast as possible; 0: not at all)."""

    def __init__(self, fd: int, rate: float | None) -> None:
        self.fd = fd
        self.rate = rate
        self.data = bytearray()
        self.eof = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            rate = self.rate
            if rate == 0:
                time.sleep(0.05)
                continue
            chunk = os.read(self.fd, 4096 if rate is not None else 1 << 16)
            if not chunk:
                self.eof.set()
                return
            self.data.extend(chunk)
            if rate is not None:
                time.sleep(len(chunk) / rate)

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in bytes(self.data).decode("utf-8", "replace").split("\n")[:-1]:
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out


def write_task(spec: Path, name: str, body: dict[str, Any]) -> None:
    doc = {"apiVersion": "reconciler/v1", "kind": "Task", "metadata": {"name": name}, "spec": body}
    (spec / f"{name}.json").write_text(json.dumps(doc))


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def run_case(case: str, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        spec, state, marks = Path(tmp, "specs"), Path(tmp, "state"), Path(tmp, "ticks")
        spec.mkdir()
        os.chmod(spec, 0o755)
        cmd = f"echo $$ $(date +%s.%N) >> {marks}"
        write_task(spec, "tick", {"schedule": "* * * * * *", "command": cmd})
        if case == "stopped":
            write_task(spec, "chatty", {"schedule": "* * * * * *", "command": CHATTY})
        elif case == "flood":
            write_task(spec, "flood", {"type": "daemon", "command": FLOOD})
        r, w = os.pipe()
        proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "apply", str(spec), "--state-dir", str(state)],
            stdout=w,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        os.close(w)
        reader = PacedReader(r, None)
        deadline = time.monotonic() + 60
        while not marks.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2)
        reader.rate = {"unloaded": None, "stopped": 0, "flood": 40_000}[case]
        if case == "stopped":
            time.sleep(3)  # the pipe fills
        t0 = time.time()
        time.sleep(seconds)
        t1 = time.time()
        reader.rate = None
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
        reader.eof.wait(60)
        os.close(r)
        ran = {}
        for line in marks.read_text().splitlines():
            pid, when = line.split()
            ran[int(pid)] = float(when)
        events = reader.events()
        due = {
            e["pid"]: datetime.fromisoformat(e["due"]).timestamp()
            for e in events
            if e.get("event") == "run.started" and e.get("task") == "tick"
        }
        dropped = sum(e.get("dropped", 0) for e in events if e.get("event") == "log.dropped")
        window = {pid: when for pid, when in ran.items() if t0 <= when < t1}
        lat = [(when - due[pid]) * 1000 for pid, when in window.items() if pid in due]
        covered = {int(due[pid]) for pid in window if pid in due}
        missed = sum(1 for s in range(int(t0) + 1, int(t1)) if s not in covered)
        if not lat:
            print(f"{case:9} {seconds:.0f} s: no runs measured ({len(window)} runs, no lines)")
            return
        print(
            f"{case:9} {seconds:.0f} s: {len(window)} runs, {missed} seconds missed, due-to-exec "
            f"p50 {statistics.median(lat):.1f} ms, p99 {pct(lat, 99):.1f} ms, "
            f"max {max(lat):.1f} ms; {dropped} log lines dropped"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument(
        "--cases", nargs="+", default=["unloaded", "stopped", "flood"],
        choices=["unloaded", "stopped", "flood"],
    )  # fmt: skip
    args = ap.parse_args()
    for case in args.cases:
        run_case(case, args.seconds)


if __name__ == "__main__":
    main()
