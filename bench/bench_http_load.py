"""An every-second task's due-to-exec latency while slow HTTP clients flood `--http`.

    python bench/bench_http_load.py [--connections 1000] [--seconds 20] [--nofile 4096]

One controller, one task due every second whose child is `date +%s.%N` (it prints the
moment it runs; compared with the due second of its `run.started`, as
bench/bench_apply.py measures). Three phases on the same controller:

1. unloaded: nothing talks to the HTTP port;
2. flood: N connections to 127.0.0.1 that send nothing, or one byte of a never-ending
   request head each second; with --reconnect every connection the server closes is
   opened again at once, so N stay attempted throughout (a slowloris that comes back);
3. close-all: the whole flood is closed at once; the runs due in the next 3 s.

Also printed: the controller's most open descriptors and threads during the flood, and
how many /healthz probes (one each 0.5 s, 1 s timeout) answered 200.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Controller:
    def __init__(self, spec: Path, state: Path, port: int, nofile: int | None) -> None:
        wrapper = ["prlimit", f"--nofile={nofile}:{nofile}"] if nofile else []
        self.proc = subprocess.Popen(
            [*wrapper, sys.executable, "-m", "reconciler", "apply", str(spec),
             "--state-dir", str(state), "--http", f"127.0.0.1:{port}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.due: dict[str, float] = {}
        self.ran: dict[str, float] = {}
        self.failed: list[str] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            ev = json.loads(raw)
            with self.lock:
                if ev.get("event") == "run.started":
                    self.due[ev["run_id"]] = datetime.fromisoformat(ev["due"]).timestamp()
                elif ev.get("event") == "run.output":
                    with contextlib.suppress(ValueError):
                        self.ran[ev["run_id"]] = float(ev["message"])
                elif ev.get("event") == "run.exited" and ev.get("outcome") != "succeeded":
                    self.failed.append(str(ev.get("reason") or ev.get("outcome")))

    def latencies_ms(self, since: float, until: float) -> list[float]:
        with self.lock:
            return [
                (self.ran[r] - d) * 1000
                for r, d in self.due.items()
                if since <= d < until and r in self.ran
            ]

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def threads(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/task"))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


class Flood:
    """`n` slow connections; with `reconnect`, whatever the server closes is opened
    again at once, so `n` stay attempted (a slowloris that keeps coming back)."""

    def __init__(self, port: int, n: int, reconnect: bool) -> None:
        self.port, self.n, self.reconnect = port, n, reconnect
        self.sel = selectors.DefaultSelector()
        self.socks: dict[socket.socket, int] = {}  # socket -> bytes of the head sent
        self.stop = threading.Event()
        self.closed = 0
        self.max_established = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _open(self) -> None:
        # Connects are not waited for: the kernel retries a SYN that a full listen
        # backlog dropped (after 1, 3, 7, 15... s), as a patient attacker would.
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", self.port))
        self.socks[s] = -1  # not yet connected
        self.sel.register(s, selectors.EVENT_WRITE)

    def _drop(self, s: socket.socket) -> None:
        self.sel.unregister(s)
        del self.socks[s]
        s.close()

    @property
    def established(self) -> int:
        return sum(1 for sent in self.socks.values() if sent >= 0)

    def _run(self) -> None:
        head = b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 10000
        for _ in range(self.n):
            self._open()
        next_byte = time.monotonic() + 1
        while not self.stop.is_set():
            for key, _ in self.sel.select(0.1):
                s = key.fileobj
                assert isinstance(s, socket.socket)
                if self.socks[s] < 0:  # the connect finished, one way or the other
                    if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                        self.socks[s] = 0
                        self.sel.modify(s, selectors.EVENT_READ)
                        self.max_established = max(self.max_established, self.established)
                        continue
                    data = b""
                else:
                    try:
                        data = s.recv(4096)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                if not data:  # closed by the server (or refused)
                    self._drop(s)
                    self.closed += 1
                    if self.reconnect:
                        self._open()
            if time.monotonic() >= next_byte:  # half of them trickle one byte a second
                next_byte += 1
                for i, (s, sent) in enumerate(list(self.socks.items())):
                    if i % 2 == 0 and 0 <= sent < len(head):
                        with contextlib.suppress(OSError):
                            s.send(head[sent : sent + 1])
                            self.socks[s] += 1

    def close_all(self) -> None:
        self.stop.set()
        self.thread.join(10)
        for s in list(self.socks):
            s.close()
        self.sel.close()


def healthz(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/healthz")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except (OSError, http.client.HTTPException):
        return False


def line(name: str, lat: list[float]) -> str:
    if not lat:
        return f"{name:<10} no runs measured"
    return (
        f"{name:<10} {len(lat):>3} runs, due-to-exec p50 {statistics.median(lat):7.1f} ms, "
        f"p99 {pct(lat, 99):7.1f} ms, max {max(lat):7.1f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--reconnect", action="store_true",
                    help="reopen every connection the server closes, at once")
    ap.add_argument("--nofile", type=int, help="start the controller under prlimit N:N")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        spec, state = Path(tmp, "specs"), Path(tmp, "state")
        spec.mkdir()
        doc = {"apiVersion": "reconciler/v1", "kind": "Task", "metadata": {"name": "tick"},
               "spec": {"schedule": "* * * * * *", "command": ["date", "+%s.%N"]}}  # fmt: skip
        (spec / "tick.json").write_text(json.dumps(doc))
        port = free_port()
        c = Controller(spec, state, port, args.nofile)
        try:
            time.sleep(3)  # start, first load, first runs
            t0 = time.time()
            time.sleep(args.seconds)
            t1 = time.time()
            flood = Flood(port, args.connections, args.reconnect)
            max_fds = max_threads = probes = answered = 0
            while time.time() < t1 + args.seconds:
                max_fds, max_threads = max(max_fds, c.fds()), max(max_threads, c.threads())
                probes += 1
                answered += healthz(port)
                time.sleep(0.5)
            t2 = time.time()
            open_at_close = flood.established
            flood.close_all()
            t3 = time.time()
            time.sleep(4)
            print(
                f"every-second task; flood: {args.connections} slow connections"
                + (", reopened as closed" if args.reconnect else "")
                + (f", controller under prlimit --nofile={args.nofile}" if args.nofile else "")
            )
            print(line("unloaded", c.latencies_ms(t0, t1)))
            print(line("flood", c.latencies_ms(t1, t2)))
            print(line("close-all", c.latencies_ms(t3 - 1, t3 + 3)))
            print(
                f"during the flood: at most {flood.max_established} of the client's "
                f"connections established at once, {open_at_close} when all were closed; "
                f"at most {max_fds} open descriptors and {max_threads} "
                f"threads in the controller; /healthz answered {answered}/{probes}; "
                f"{flood.closed} connections closed by the server"
                + (" (each reopened)" if args.reconnect else "")
            )
            if c.failed:
                print(f"runs that did not succeed: {len(c.failed)}, e.g. {c.failed[0]!r}")
        finally:
            c.stop()


if __name__ == "__main__":
    main()
