"""Fleet coordination figures on a loopback etcd (Debian's etcd-server).

    python bench/bench_etcd.py [--seconds 30] [--hosts 3] [--claims 2000]

1. Due-to-exec of a `placement: one` task (every second, claimed in etcd by each of
   --hosts controllers, run by the winner) against a `placement: all` task in the same
   controllers and seconds. Each child is `date +%s.%N`: the moment it runs (after exec)
   is compared with its due second (as bench_apply.py does).
2. etcd writes per run: puts and put bytes from etcd's own metrics over the window,
   divided by the runs (background included: presence every 5 s, renewals), and the keys
   and bytes one placement: one run leaves in etcd (its claim and its summary).
3. The claim's own cost: --claims transactions (create-if-absent with the summary, on a
   lease) from one client, one at a time, p50/p99/max.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from etcd_harness import ETCD, EtcdServer  # noqa: E402

from reconciler.coordination.etcd import EtcdEngine, Put  # noqa: E402
from reconciler.coordination.model import EtcdConfig, Keys  # noqa: E402


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def write_task(spec: Path, name: str, extra: dict[str, Any]) -> None:
    doc = {"apiVersion": "reconciler/v1", "kind": "Task", "metadata": {"name": name},
           "spec": {"schedule": "* * * * * *", "command": ["date", "+%s.%N"], **extra}}
    (spec / f"{name}.json").write_text(json.dumps(doc))


class Controller:
    def __init__(self, spec: Path, state: Path, url: str, i: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "apply", str(spec), "--state-dir", str(state),
             "--etcd", url, "--hostname", f"bench{i}", "--host-ip", f"10.98.0.{i + 1}"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
        self.started: dict[str, tuple[str, float]] = {}  # run_id -> (task, due)
        self.ran: dict[str, float] = {}
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            ev = json.loads(raw)
            kind = ev.get("event")
            if kind == "coordination.available":
                self.ready.set()
            elif kind == "run.started" and ev.get("due"):
                self.started[ev["run_id"]] = (ev["task"],
                                              datetime.fromisoformat(ev["due"]).timestamp())
            elif kind == "run.output":
                self.ran[ev["run_id"]] = float(ev["message"])

    def latencies(self, task: str, window: tuple[float, float]) -> list[float]:
        out = []
        for run_id, at in list(self.ran.items()):
            got = self.started.get(run_id)
            if got and got[0] == task and window[0] <= got[1] < window[1]:
                out.append((at - got[1]) * 1000)
        return out

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


def fleet(url: str, hosts: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp, "specs")
        spec.mkdir()
        write_task(spec, "one", {"placement": "one"})
        write_task(spec, "all", {})
        cs = [Controller(spec, Path(tmp, f"state{i}"), url, i) for i in range(hosts)]
        try:
            for c in cs:
                c.ready.wait(60)
            time.sleep(3)
            puts0 = metric(url, "etcd_mvcc_put_total")
            bytes0 = metric(url, "etcd_debugging_mvcc_total_put_size_in_bytes")
            txn0 = metric(url, "etcd_mvcc_txn_total")
            start = time.time()
            time.sleep(seconds)
            end = time.time()
            time.sleep(2)  # the last runs' output and summaries
            puts = metric(url, "etcd_mvcc_put_total") - puts0
            put_bytes = metric(url, "etcd_debugging_mvcc_total_put_size_in_bytes") - bytes0
            txns = metric(url, "etcd_mvcc_txn_total") - txn0
        finally:
            for c in cs:
                c.stop()
        window = (start, end - 1)
        one = [lat for c in cs for lat in c.latencies("one", window)]
        every = [lat for c in cs for lat in c.latencies("all", window)]
        for name, lat in (("placement: one", one), ("placement: all", every)):
            print(f"{name:>15}: {len(lat)} runs, due-to-exec p50 {statistics.median(lat):.1f} ms,"
                  f" p99 {pct(lat, 99):.1f} ms, max {max(lat):.1f} ms")
        dues = {d for c in cs for t, d in c.started.values() if t == "one"
                and window[0] <= d < window[1]}
        runs = len(one) + len(every)
        print(f"  {len(dues)} due seconds of 'one' in the window, each run on "
              f"{len(one) / max(1, len(dues)):.2f} host(s); {hosts} controllers")
        print(f"  etcd over the window: {puts:.0f} puts in {txns:.0f} txns, "
              f"{put_bytes / 1024:.1f} KiB put; per run of either task: "
              f"{puts / max(1, runs):.2f} puts, {put_bytes / max(1, runs):.0f} bytes "
              f"(presence and renewals included)")
        engine = EtcdEngine(EtcdConfig((url,)))
        keys = Keys("default")
        due = int(sorted(dues)[len(dues) // 2])
        left = [kv for kv in engine.get_prefix(keys.claim("one", due), 5)]
        left += engine.get_prefix(keys.run("one", due, ""), 5)
        size = sum(len(kv.key) + len(json.dumps(kv.value, separators=(",", ":"))) for kv in left)
        print(f"  one placement: one run leaves {len(left)} keys, {size} bytes "
              f"(its claim and its summary)")
        engine.close()


def claim_cost(url: str, n: int) -> None:
    engine = EtcdEngine(EtcdConfig((url,)))
    keys = Keys("bench")
    lease, _ = engine.grant(600, 5)
    retention, _ = engine.grant(600, 5)
    times = []
    for i in range(n):
        summary = {"task": "t", "due": i, "host": "bench", "outcome": "claimed"}
        t0 = time.perf_counter()
        made = engine.create(keys.claim("t", i), {"host": "bench", "claimant": "x"}, lease, 2.0,
                             [Put(keys.run("t", i, "bench"), summary, retention)])
        times.append((time.perf_counter() - t0) * 1000)
        assert made.created
    lost = []
    for i in range(min(n, 500)):
        t0 = time.perf_counter()
        made = engine.create(keys.claim("t", i), {"host": "other"}, lease, 2.0)
        lost.append((time.perf_counter() - t0) * 1000)
        assert not made.created
    engine.close()
    print(f"claim (won, 2 keys written): {n} one at a time, p50 {statistics.median(times):.2f} ms,"
          f" p99 {pct(times, 99):.2f} ms, max {max(times):.2f} ms")
    print(f"claim (lost, nothing written): {len(lost)}, p50 {statistics.median(lost):.2f} ms, "
          f"p99 {pct(lost, 99):.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--hosts", type=int, default=3)
    ap.add_argument("--claims", type=int, default=2000)
    ap.add_argument("--etcd", help="use this etcd instead of starting one (loopback only)")
    args = ap.parse_args()
    if args.etcd:
        fleet(args.etcd, args.hosts, args.seconds)
        claim_cost(args.etcd, args.claims)
        return
    if ETCD is None:
        sys.exit("etcd is not installed (Debian: apt-get install etcd-server)")
    with tempfile.TemporaryDirectory() as tmp:
        server = EtcdServer(Path(tmp) / "data")
        server.start()
        try:
            print(f"etcd {ETCD} on {server.url}, data in a temp dir")
            fleet(server.url, args.hosts, args.seconds)
            claim_cost(server.url, args.claims)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
