"""An every-second task's due-to-exec latency while 100 tasks fail every second and
notify a webhook that takes 5 s to answer, against the same with notifications off.

    python bench/bench_notify.py [--tasks 100] [--seconds 30] [--answer-after 5]

Two controllers in turn, each on a fresh spec and state directory: one task `probe`
(`* * * * * *`, child `date +%s.%N`: it prints the moment it runs, compared with the due
second of its `run.started`, as bench/bench_http_load.py does) and N tasks `fail-I` that
`exit 1` every second. With notifications on, each failing task has
`notify: [{on: [failure], webhook: http://127.0.0.1:PORT/hook}]`, served here by a
threaded HTTP server that answers after --answer-after seconds. Printed per phase:
due-to-exec p50/p99/max of `probe`, failures, webhook requests received, and the
controller's notifications dropped / failed (from --http /metrics).

Needs the controller hooks that hand run events to reconciler.notify.Notifier; a phase
"on" where the webhook receives nothing says so and exits 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PROBE = """\
apiVersion: reconciler/v1
kind: Task
metadata: {name: probe}
spec:
  schedule: "* * * * * *"
  command: ["date", "+%s.%N"]
"""

FAILING = """\
---
apiVersion: reconciler/v1
kind: Task
metadata: {{name: fail-{i}}}
spec:
  schedule: "* * * * * *"
  command: ["sh", "-c", "exit 1"]
{notify}"""

NOTIFY = """\
  notify:
    - on: [failure]
      webhook: {url}
"""


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SlowHook:
    """A webhook that answers 200 after `delay` seconds; counts what it received."""

    def __init__(self, delay: float) -> None:
        self.received = 0
        lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    hook.received += 1
                time.sleep(delay)
                with contextlib.suppress(OSError):
                    self.send_response(200)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Controller:
    def __init__(self, spec: Path, state: Path, port: int) -> None:
        self.port = port
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "apply", str(spec),
             "--state-dir", str(state), "--http", f"127.0.0.1:{port}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.due: dict[str, float] = {}
        self.ran: dict[str, float] = {}
        self.failures = 0
        self.notify_failed = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with contextlib.suppress(ValueError):
                ev = json.loads(raw)
            event, task = ev.get("event"), ev.get("task")
            with self.lock:
                if event == "run.started" and task == "probe":
                    self.due[ev["run_id"]] = datetime.fromisoformat(ev["due"]).timestamp()
                elif event == "run.output" and task == "probe":
                    with contextlib.suppress(ValueError):
                        self.ran[ev["run_id"]] = float(ev["message"])
                elif event == "run.exited" and task != "probe" and ev.get("outcome") == "failed":
                    self.failures += 1
                elif event == "notify.failed":
                    self.notify_failed += 1

    def latencies_ms(self, since: float, until: float) -> list[float]:
        with self.lock:
            return [
                (self.ran[r] - d) * 1000
                for r, d in self.due.items()
                if since <= d < until and r in self.ran
            ]

    def metric(self, name: str) -> float:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return float("nan")
        found = re.findall(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M)
        return sum(float(v) for v in found)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


def phase(name: str, tasks: int, seconds: float, hook: SlowHook | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        spec, state = Path(tmp) / "spec", Path(tmp) / "state"
        spec.mkdir()
        notify = NOTIFY.format(url=hook.url) if hook is not None else ""
        text = PROBE + "".join(FAILING.format(i=i, notify=notify) for i in range(tasks))
        (spec / "tasks.yaml").write_text(text)
        before = hook.received if hook is not None else 0
        ctl = Controller(spec, state, free_port())
        try:
            time.sleep(3)  # start-up and first load
            t0 = time.time()
            time.sleep(seconds)
            t1 = time.time()
            lat = ctl.latencies_ms(t0, t1 - 1)
            out = {
                "phase": name,
                "runs": len(lat),
                "p50_ms": statistics.median(lat) if lat else None,
                "p99_ms": pct(lat, 99) if lat else None,
                "max_ms": max(lat) if lat else None,
                "failures": ctl.failures,
                "webhook_requests": (hook.received - before) if hook is not None else 0,
                "notify_failed_lines": ctl.notify_failed,
                "dropped": ctl.metric("reconciler_notifications_dropped_total"),
                "failed": ctl.metric("reconciler_notifications_failed_total"),
            }
        finally:
            ctl.stop()
    return out


def show(r: dict[str, Any]) -> str:
    if not r["runs"]:
        return f"{r['phase']:<4} no probe runs measured"
    return (
        f"{r['phase']:<4} {r['runs']:>3} runs, due-to-exec p50 {r['p50_ms']:6.1f} ms, "
        f"p99 {r['p99_ms']:6.1f} ms, max {r['max_ms']:6.1f} ms; {r['failures']} failed runs, "
        f"{r['webhook_requests']} webhook requests, dropped {r['dropped']:g}, "
        f"failed {r['failed']:g} ({r['notify_failed_lines']} notify.failed lines)"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--answer-after", type=float, default=5.0)
    ap.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = ap.parse_args()
    off = phase("off", args.tasks, args.seconds, None)
    print(show(off), flush=True)
    hook = SlowHook(args.answer_after)
    try:
        on = phase("on", args.tasks, args.seconds, hook)
    finally:
        hook.close()
    print(show(on), flush=True)
    if args.json:
        print(json.dumps([off, on]))
    if on["webhook_requests"] == 0:
        print("the webhook received nothing: this controller does not deliver notifications "
              "yet (the notify hooks in reconciler/controller have not landed)")  # fmt: skip
        sys.exit(2)


if __name__ == "__main__":
    main()
