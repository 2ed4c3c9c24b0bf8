"""Figures for `resources`: due-to-exec with and without limits, and the cgroup per run.

    python bench/bench_limits.py latency [--seconds 60]
    python bench/bench_limits.py cgroups [--runs 500]

Latency: one controller, two tasks due every second in the same second, both
`date +%s.%N` (it prints the moment it runs, after exec and the dynamic loader): `plain`
sets no limit (Popen's vfork() fast path), `limited` sets memoryMax, cpuMax,
processesMax and openFilesMax (its cgroups made before the spawn, joined by the child
before exec). Both are due in the same seconds, started one after the other: the
second one's figure includes the first one's spawn.
Cgroups: the supervisor's cost of making a run's cgroups with their limits and of
removing them, per run, on this host (v1 or v2, whichever it has).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_apply import pct, start_controller  # noqa: E402

from reconciler.supervisor import Limits  # noqa: E402
from reconciler.supervisor import cgroups as cg  # noqa: E402

LIMITS = {"memoryMax": "256Mi", "cpuMax": 1, "processesMax": 100, "openFilesMax": 1024}


def latency(seconds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        spec, state = Path(tmp, "specs"), Path(tmp, "state")
        spec.mkdir()
        for name, res in (("plain", None), ("limited", LIMITS)):
            doc = {
                "apiVersion": "reconciler/v1",
                "kind": "Task",
                "metadata": {"name": name},
                "spec": {"schedule": "* * * * * *", "command": ["date", "+%s.%N"]},
            }
            if res:
                doc["spec"]["resources"] = res
            (spec / f"{name}.yaml").write_text(json.dumps(doc) + "\n")
        proc = start_controller(spec, state)
        assert proc.stdout is not None
        due: dict[str, tuple[str, float]] = {}
        ran: dict[str, float] = {}
        end = time.monotonic() + seconds + 5
        for raw in proc.stdout:
            ev = json.loads(raw)
            if ev.get("event") == "run.started":
                due[ev["run_id"]] = (ev["task"], datetime.fromisoformat(ev["due"]).timestamp())
            elif ev.get("event") == "run.output":
                ran[ev["run_id"]] = float(ev["message"])
            elif ev.get("event") == "spec.invalid":
                print("spec.invalid:", ev.get("error"))
            if time.monotonic() > end:
                break
        threading.Thread(target=lambda: proc.stdout.read() if proc.stdout else None, daemon=True).start()
        proc.terminate()
        proc.wait(60)
        for task in ("plain", "limited"):
            lat = [(ran[r] - d) * 1000 for r, (t, d) in due.items() if t == task and r in ran]
            if not lat:
                print(f"{task:>8}: no runs measured")
                continue
            print(
                f"{task:>8}: {len(lat)} runs, due-to-exec p50 {statistics.median(lat):.2f} ms, "
                f"p99 {pct(lat, 99):.2f} ms, max {max(lat):.2f} ms"
            )


def cgroups(runs: int) -> None:
    limits = Limits(memory_max=256 << 20, cpu_max=1.0, processes_max=100)
    missing = cg.unenforceable(limits)
    if missing:
        print("cannot measure here:", missing)
        return
    groups = cg.Cgroups()
    made: list[float] = []
    gone: list[float] = []
    for i in range(runs):
        t0 = time.perf_counter()
        rc = groups.create(f"bench-{i}", limits)
        t1 = time.perf_counter()
        assert rc is not None and rc.remove()
        t2 = time.perf_counter()
        made.append((t1 - t0) * 1000)
        gone.append((t2 - t1) * 1000)
    where = {n: f"v{h.version}" for n, h in cg.support().where.items()}
    print(f"cgroups {where}, {runs} runs, pid {os.getpid()}")
    for what, values in (("create + limits", made), ("remove", gone)):
        print(
            f"{what:>16}: p50 {statistics.median(values):.3f} ms, "
            f"p99 {pct(values, 99):.3f} ms, max {max(values):.3f} ms"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    lat = sub.add_parser("latency")
    lat.add_argument("--seconds", type=int, default=60)
    cgs = sub.add_parser("cgroups")
    cgs.add_argument("--runs", type=int, default=500)
    args = ap.parse_args()
    if args.cmd == "latency":
        latency(args.seconds)
    else:
        cgroups(args.runs)


if __name__ == "__main__":
    main()
