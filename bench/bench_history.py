"""Run history figures: what keeping history costs the loop, the CLI and the disk.

    python bench/bench_history.py latency [--seconds 30]
    python bench/bench_history.py cli [--tasks 10000] [--runs 20]
    python bench/bench_history.py disk

latency: due-to-exec of an every-second task (its child prints `date +%s.%N`, compared
with its due second), with history on (as always), first alone, then while a daemon
floods its output as fast as the pump reads it (`yes` of 100-byte lines; the history
keeps its 1 MiB head and tail and rewrites the live run's file once a second). The
flood's rate is read from its run record at the end.
cli: `reconciler runs`, `runs --limit 0`, `runs TASK`, `logs TASK` over a state
directory holding N tasks x R runs (files written as the writer writes them).
disk: bytes on disk of one task at the default limits (20 succeeded + 20 failed runs
kept, each printing 2 MiB, so each keeps its 1 MiB).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

FLOOD = "yes " + "x" * 99


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def write_task(spec: Path, name: str, body: dict[str, object]) -> None:
    doc = {"apiVersion": "reconciler/v1", "kind": "Task", "metadata": {"name": name}, "spec": body}
    (spec / f"{name}.json").write_text(json.dumps(doc))


def latency_case(flood: bool, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        spec, state, marks = Path(tmp, "specs"), Path(tmp, "state"), Path(tmp, "ticks")
        spec.mkdir()
        os.chmod(spec, 0o755)
        write_task(spec, "tick", {"schedule": "* * * * * *",
                                  "command": f"echo $$ $(date +%s.%N) >> {marks}"})
        if flood:
            write_task(spec, "flood", {"type": "daemon", "command": FLOOD})
        proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "apply", str(spec), "--state-dir", str(state)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )
        due: dict[int, float] = {}

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:  # every line read at once: the sink is not the brake
                if b'"run.started"' in line and b'"task":"tick"' in line:
                    e = json.loads(line)
                    due[e["pid"]] = datetime.fromisoformat(e["due"]).timestamp()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        deadline = time.monotonic() + 60
        while not marks.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2)
        t0 = time.time()
        time.sleep(seconds)
        t1 = time.time()
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
        reader.join(30)
        ran = {int(p): float(w) for p, w in (x.split() for x in marks.read_text().splitlines())}
        window = {p: w for p, w in ran.items() if t0 <= w < t1}
        lat = [(w - due[p]) * 1000 for p, w in window.items() if p in due]
        rate = ""
        if flood:
            recs = [json.loads(f.read_bytes())["record"] | {"b": json.loads(f.read_bytes())["output"]["bytes"]}
                    for f in (state / "runs" / "flood").glob("flood-*.json")]
            if recs:
                r = max(recs, key=lambda r: r["b"])
                took = (r["ended"] or t1) - r["started"]
                rate = f"; flood {r['b'] / took / 1e6:.0f} MB/s of output read"
        name = "flood on" if flood else "flood off"
        print(f"{name:9} {seconds:.0f} s: {len(lat)} runs, due-to-exec p50 "
              f"{statistics.median(lat):.1f} ms, p99 {pct(lat, 99):.1f} ms, "
              f"max {max(lat):.1f} ms{rate}")


def synth(state: Path, tasks: int, runs: int) -> None:
    """N tasks x R runs, each of 10 short lines, in the writer's format."""
    root = state / "runs"
    root.mkdir(parents=True, mode=0o700)
    now = time.time() - tasks * runs
    for t in range(tasks):
        name = f"t{t:05d}"
        folder = root / name
        folder.mkdir(mode=0o700)
        index = []
        for r in range(runs):
            started = now + t * runs + r
            stamp = datetime.utcfromtimestamp(started).strftime("%Y%m%dT%H%M%SZ")
            run_id = f"{name}-{stamp}-{r:06x}"
            ok = r % 3 != 0
            rec = {"run_id": run_id, "task": name, "type": "cron", "trigger": "schedule",
                   "attempt": 1, "due": int(started), "started": started,
                   "ended": started + 0.5, "duration_s": 0.5, "pid": 1000 + r,
                   "exit_code": 0 if ok else 1, "signal": None,
                   "outcome": "succeeded" if ok else "failed",
                   "reason": "exit code 0" if ok else "exit code 1"}
            lines = [[i + 1, int(started * 1000), 0, f"line {i} of {run_id}"] for i in range(10)]
            out = {"limit": 1048576, "lines": lines, "cut": None, "count": 10, "bytes": 400}
            (folder / f"{run_id}.json").write_text(
                json.dumps({"format": 1, "record": rec, "output": out}))
            index.append(rec)
        (folder / "index.json").write_text(json.dumps({"format": 1, "runs": index,
                                                       "removed_at": None}))
        last = index[-1]["ended"]  # as the writer leaves it: written at the last end
        os.utime(folder / "index.json", (last, last))
        if t % 1000 == 999:
            print(f"  wrote {t + 1} tasks", file=sys.stderr)


def timed(*args: str, repeat: int = 3) -> str:
    best = float("inf")
    lines = 0
    for _ in range(repeat):
        t = time.perf_counter()
        res = subprocess.run([sys.executable, "-m", "reconciler", *args],
                             capture_output=True, text=True, check=True)
        best = min(best, time.perf_counter() - t)
        lines = len(res.stdout.splitlines())
    return f"{best * 1000:.0f} ms ({lines} lines)"


def cli(tasks: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp, "state")
        state.mkdir(mode=0o700)
        t = time.perf_counter()
        synth(state, tasks, runs)
        print(f"history of {tasks} tasks x {runs} runs written in {time.perf_counter() - t:.0f} s")
        sd = ["--state-dir", str(state)]
        print(f"python -m reconciler --version:   {timed('--version')}")
        print(f"runs (newest 100 of all tasks):   {timed('runs', *sd)}")
        print(f"runs --limit 0 (every run):       {timed('runs', '--limit', '0', *sd, repeat=1)}")
        print(f"runs t05000:                      {timed('runs', 't05000', *sd)}")
        print(f"logs t05000 (latest run):         {timed('logs', 't05000', *sd)}")


def disk() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from reconciler.history import HistoryWriter, RunFinish, RunStart

    with tempfile.TemporaryDirectory() as tmp:
        w = HistoryWriter(Path(tmp))
        w.start()
        out = w.tee(lambda *a: None)
        line = "y" * 99
        for i in range(45):
            start = RunStart(run_id=f"big-20260101T0000{i:02d}Z-{i:06x}", task="big", type="cron",
                             trigger="schedule", attempt=1, due=None, started=time.time() + i,
                             pid=1, output_limit=1024 * 1024)
            w.started(start)
            for _ in range(2 * 1024 * 1024 // 100):
                out(start.run_id, "big", "stdout", line)
            ok = i % 2 == 0
            w.finished(RunFinish(start=start, ended=start.started + 1, exit_code=0 if ok else 1,
                                 signal=None, outcome="succeeded" if ok else "failed",
                                 reason="exit code 0" if ok else "exit code 1"))
        w.close(120)
        folder = Path(tmp, "runs", "big")
        size = sum(f.stat().st_blocks * 512 for f in folder.iterdir())
        n = len(list(folder.glob("big-*.json")))
        print(f"one task at the default limits: {n} runs kept, {size / 2**20:.1f} MiB on disk "
              f"({size / n / 2**20:.2f} MiB per run of 1 MiB output kept)")
        shutil.rmtree(folder)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["latency", "cli", "disk"])
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--tasks", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    if args.what == "latency":
        latency_case(False, args.seconds)
        latency_case(True, args.seconds)
    elif args.what == "cli":
        cli(args.tasks, args.runs)
    else:
        disk()


if __name__ == "__main__":
    main()
