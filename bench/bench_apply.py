"""Controller figures: due-to-exec latency, and an idle controller's CPU and memory.

    python bench/bench_apply.py latency [--tasks 1 100 1000] [--rounds 3]
    python bench/bench_apply.py idle [--tasks 10000] [--seconds 60]

Latency: N tasks share one schedule; each child is `date +%s.%N`, so it prints the
moment it runs (after exec and the dynamic loader); the controller logs that line as
`run.output`, and it is compared with the due second of its `run.started`.
Idle: N tasks none of which is due for a year; CPU time and RSS of the controller from
/proc over the window, after loading.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path


def never_due() -> str:
    """Due once a year, on a date months away: loaded and scheduled, never due here."""
    month = (datetime.now().month + 5) % 12 + 1
    return f"0 0 0 1 {month} *"


def write_tasks(
    spec: Path, n: int, schedule: str, command: list[str], per_file: int = 10, prefix: str = "t"
) -> None:
    for f in range(0, n, per_file):
        docs = []
        for i in range(f, min(n, f + per_file)):
            docs.append(
                json.dumps(
                    {
                        "apiVersion": "reconciler/v1",
                        "kind": "Task",
                        "metadata": {"name": f"{prefix}{i:05d}"},
                        "spec": {"schedule": schedule, "command": command},
                    }
                )
            )
        (spec / f"f{f // per_file:04d}.yaml").write_text("\n---\n".join(docs) + "\n")


def start_controller(spec: Path, state: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", str(spec), "--state-dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def latency(n: int, rounds: int, idle: int = 0) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        spec, state = Path(tmp, "specs"), Path(tmp, "state")
        spec.mkdir()
        write_tasks(spec, n, "*/5 * * * * *", ["date", "+%s.%N"])
        if idle:
            (spec / "idle").mkdir()
            write_tasks(spec / "idle", idle, never_due(), ["true"], prefix="idle")
        proc = start_controller(spec, state)
        due: dict[str, float] = {}
        ran: dict[str, float] = {}
        rounds_seen: set[float] = set()
        assert proc.stdout is not None
        deadline = time.monotonic() + 30 + rounds * 10
        for raw in proc.stdout:
            ev = json.loads(raw)
            if ev.get("event") == "run.started":
                d = datetime.fromisoformat(ev["due"]).timestamp()
                due[ev["run_id"]] = d
                rounds_seen.add(d)
            elif ev.get("event") == "run.output":
                ran[ev["run_id"]] = float(ev["message"])
            if len(rounds_seen) > rounds and len(ran) >= len(due) - n:
                break
            if time.monotonic() > deadline:
                break
        # Keep reading while it stops: a controller whose stdout is full cannot finish.
        threading.Thread(target=lambda: proc.stdout.read() if proc.stdout else None, daemon=True).start()
        proc.terminate()
        proc.wait(60)
        lat = [(ran[r] - due[r]) * 1000 for r in ran if r in due]
        if not lat:
            print(f"{n:>5} tasks: no runs measured")
            return
        among = f" among {n + idle}" if idle else ""
        print(
            f"{n:>5} tasks due at once{among}: {len(lat)} runs, due-to-exec latency "
            f"p50 {statistics.median(lat):.1f} ms, p99 {pct(lat, 99):.1f} ms, max {max(lat):.1f} ms"
        )


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as fh:
        rest = fh.read().rsplit(b")", 1)[1].split()
    return int(rest[11]) + int(rest[12])


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def idle(n: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        spec, state = Path(tmp, "specs"), Path(tmp, "state")
        spec.mkdir()
        write_tasks(spec, n, never_due(), ["true"])
        t0 = time.monotonic()
        proc = start_controller(spec, state)
        ready = threading.Event()
        applied_at: list[float] = []

        def drain() -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                if b'"spec.applied"' in raw and not ready.is_set():
                    applied_at.append(time.monotonic())
                    ready.set()

        threading.Thread(target=drain, daemon=True).start()
        ready.wait(120)
        load_s = applied_at[0] - t0 if applied_at else float("nan")
        time.sleep(2)
        hz = os.sysconf("SC_CLK_TCK")
        c0, w0 = cpu_ticks(proc.pid), time.monotonic()
        time.sleep(seconds)
        c1, w1 = cpu_ticks(proc.pid), time.monotonic()
        cpu = (c1 - c0) / hz / (w1 - w0) * 100
        print(
            f"idle with {n} tasks: start to spec.applied {load_s:.2f} s (includes interpreter "
            f"start), CPU {cpu:.3f} % of a core over {seconds:.0f} s, RSS {rss_mb(proc.pid):.1f} MB"
        )
        proc.terminate()
        proc.wait(60)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["latency", "idle"])
    ap.add_argument("--tasks", type=int, nargs="+")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--idle", type=int, default=0, help="latency: also load this many never-due tasks")
    ap.add_argument("--seconds", type=float, default=60)
    args = ap.parse_args()
    if args.what == "latency":
        for n in args.tasks or [1, 100, 1000]:
            latency(n, args.rounds, args.idle)
    else:
        for n in args.tasks or [10000]:
            idle(n, args.seconds)


if __name__ == "__main__":
    main()
