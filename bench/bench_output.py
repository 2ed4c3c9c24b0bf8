"""Supervisor figures: spawn latency, and output throughput under a flooding run.

    python bench/bench_output.py [--spawns 200] [--flood-mb 100] [--sink count|json]

(a) Spawn latency over N sequential spawns. Each child is `sh -c 'date +%s.%N'`: it
    prints the moment `date` runs, i.e. after fork, exec of sh, and exec of date (so the
    figure includes two execs and two dynamic loads; the supervisor's own share is the
    start() call time, also shown). Runs without `user` (vfork fast path) and, as root,
    with `user: nobody` (fork + setgroups/setregid/setreuid).
(b) One run writes M MB to stdout as fast as it can while another run is started every
    100 ms: the pump's throughput and the other runs' spawn latency under that load.
    Two shapes: 100-byte lines (`yes | head -c`), and a single endless line
    (`tr` of /dev/zero: 64 KiB pieces).

`--sink json` makes on_output serialise every line to JSON and write it to /dev/null,
roughly what the controller's logger does; `count` only counts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reconciler.supervisor import RunSpec, Supervisor, become_subreaper  # noqa: E402

ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C"}
DATE = ["/bin/sh", "-c", "date +%s.%N"]


class Sink:
    def __init__(self, kind: str) -> None:
        self.lock = threading.Lock()
        self.lines = 0
        self.bytes = 0
        self.dates: dict[str, float] = {}
        self.kind = kind
        self.devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the bench

    def __call__(self, run_id: str, task: str, stream: str, line: str) -> None:
        if self.kind == "json":
            self.devnull.write(
                json.dumps(
                    {
                        "timestamp": time.time(),
                        "level": "info",
                        "event": "run.output",
                        "task": task,
                        "run_id": run_id,
                        "stream": stream,
                        "message": line,
                    }
                )
                + "\n"
            )
        if task == "date":
            with self.lock:
                self.dates[run_id] = float(line)
            return
        self.lines += 1  # only the pump thread writes these
        self.bytes += len(line) + 1


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def fmt_ms(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"p50 {pct(ms, 50):6.2f} ms  p99 {pct(ms, 99):6.2f} ms  "
        f"max {max(ms):6.2f} ms  mean {statistics.fmean(ms):6.2f} ms  (n={len(ms)})"
    )


def drive(sup: Supervisor, done: set[str], until: Callable[[], bool], timeout: float) -> None:
    end = time.monotonic() + timeout
    while not until():
        for ex in sup.poll():
            done.add(ex.run_id)
        if time.monotonic() > end:
            raise SystemExit("bench timed out")
        time.sleep(0.002)


def spawn_latency(sink: Sink, sup: Supervisor, n: int, user: str | None) -> None:
    done: set[str] = set()
    calls: list[float] = []
    lat: list[float] = []
    for i in range(n):
        run_id = f"lat-{user}-{i}"
        t0 = time.time()
        p0 = time.perf_counter()
        sup.start(RunSpec(run_id, "date", DATE, ENV, user=user))
        calls.append(time.perf_counter() - p0)
        drive(sup, done, lambda r=run_id: r in done, 10)  # type: ignore[misc]
        lat.append(sink.dates[run_id] - t0)
    label = f"user={user}" if user else "no user"
    print(f"  start() call      [{label}]: {fmt_ms(calls)}")
    print(f"  call -> date runs [{label}]: {fmt_ms(lat)}")


def flood(sink: Sink, sup: Supervisor, mb: int, shape: str) -> None:
    size = mb * 1_000_000
    if shape == "lines":
        cmd = f"yes {'x' * 99} | head -c {size}"
    else:
        cmd = f"head -c {size} /dev/zero | tr '\\0' x"
    sink.lines = sink.bytes = 0
    done: set[str] = set()
    t0 = time.monotonic()
    sup.start(RunSpec(f"flood-{shape}", "flood", ["/bin/sh", "-c", cmd], ENV))
    lat: list[float] = []
    started: list[tuple[str, float]] = []
    next_spawn = time.monotonic()
    i = 0
    while f"flood-{shape}" not in done:
        now = time.monotonic()
        if now >= next_spawn:
            run_id = f"side-{shape}-{i}"
            i += 1
            started.append((run_id, time.time()))
            sup.start(RunSpec(run_id, "date", DATE, ENV))
            next_spawn = now + 0.1
        for ex in sup.poll():
            done.add(ex.run_id)
        if now - t0 > 600:
            raise SystemExit("flood timed out")
        time.sleep(0.002)
    elapsed = time.monotonic() - t0
    drive(sup, done, lambda: all(r in done for r, _ in started), 30)
    lat = [sink.dates[r] - t for r, t in started]
    print(
        f"  flood [{shape}]: {sink.bytes / 1e6:7.1f} MB, {sink.lines} lines in {elapsed:5.2f} s"
        f" = {sink.bytes / 1e6 / elapsed:6.1f} MB/s, {sink.lines / elapsed:9.0f} lines/s"
    )
    print(f"  side spawns during flood [{shape}]: call -> date runs {fmt_ms(lat)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--spawns", type=int, default=200)
    ap.add_argument("--flood-mb", type=int, default=100)
    ap.add_argument("--sink", choices=["count", "json"], default="count")
    args = ap.parse_args()
    become_subreaper()
    sink = Sink(args.sink)
    sup = Supervisor(sink)
    try:
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, sink={args.sink}")
        print("(a) spawn latency")
        spawn_latency(sink, sup, args.spawns, None)
        if os.geteuid() == 0:
            spawn_latency(sink, sup, args.spawns, "nobody")
        print(f"(b) {args.flood_mb} MB flood with a spawn every 100 ms")
        flood(sink, sup, args.flood_mb, "lines")
        flood(sink, sup, args.flood_mb, "long")
    finally:
        sup.stop_all("bench", lambda _h: 0.0)
        end = time.monotonic() + 10
        while sup.running() and time.monotonic() < end:
            sup.poll()
            time.sleep(0.01)
        sup.close()


if __name__ == "__main__":
    main()
