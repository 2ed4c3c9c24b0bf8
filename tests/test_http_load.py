"""A real controller under a flood of slow HTTP clients, and its open-file limit.

Every test here talks to 127.0.0.1 only. The flood is 1,000 TCP connections that send
nothing or one byte a second (slowloris); the controller runs under a small `prlimit`
so that a server spending one descriptor per client would run out of them.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import select
import socket
import threading
import time
from datetime import datetime
from pathlib import Path

from controller_harness import ControllerProc, write_task

FLOOD = 1000
# 64 HTTP connections, 16 control clients, and the controller's own files and pipes.
FD_BOUND = 64 + 16 + 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def get(port: int, path: str, timeout: float = 2.0) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def open_flood(port: int, n: int) -> list[socket.socket]:
    """n connections, one at a time, each connect waited for at most 0.2 s (parallel ones
    would overflow a small listen backlog and back off in SYN retries for seconds)."""
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(0.2)
        with contextlib.suppress(OSError):
            s.connect(("127.0.0.1", port))
        s.setblocking(False)
        socks.append(s)
    return socks


class Trickler:
    """Sends one byte a second on every other flood socket (a request that never ends)."""

    def __init__(self, socks: list[socket.socket]) -> None:
        self.socks = socks[::2]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        msg = b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 100
        i = 0
        while not self.stop.wait(1.0) and i < len(msg):
            for s in self.socks:
                with contextlib.suppress(OSError):
                    s.send(msg[i : i + 1])
            i += 1


def latencies(c: ControllerProc, since: float) -> list[float]:
    """Due-to-exec seconds of the runs due at or after `since` (the child prints the
    moment it ran, as bench/bench_apply.py measures it)."""
    due = {
        e["run_id"]: datetime.fromisoformat(e["due"]).timestamp()
        for e in c.find("run.started", task="tick")
    }
    out = []
    for e in c.find("run.output", task="tick"):
        d = due.get(e["run_id"])
        if d is not None and d >= since:
            out.append(float(e["message"]) - d)
    return out


def test_slow_http_flood_never_starves_runs_or_health(
    dirs: tuple[Path, Path], controllers: list[ControllerProc]
) -> None:
    spec, state = dirs
    write_task(spec, "tick", {"schedule": "* * * * * *", "command": ["date", "+%s.%N"]})
    port = free_port()
    c = ControllerProc(
        spec, state, ["--http", f"127.0.0.1:{port}"], wrapper=["prlimit", "--nofile=512:512"]
    )
    controllers.append(c)
    c.wait_for("run.exited", task="tick", outcome="succeeded")
    assert get(port, "/healthz") == 200

    flood_at = time.time()
    socks = open_flood(port, FLOOD)
    trickler = Trickler(socks)
    try:
        # Health answers while the flood is on, at the latest once the slow ones have
        # used up their 10 s.
        healthy_after: float | None = None
        max_fds = 0
        deadline = time.monotonic() + 13
        while time.monotonic() < deadline:
            max_fds = max(max_fds, open_fds(c.pid))
            if healthy_after is None:
                with contextlib.suppress(OSError, http.client.HTTPException):
                    if get(port, "/healthz", timeout=1.0) == 200:
                        healthy_after = time.time() - flood_at
            time.sleep(0.25)
        assert healthy_after is not None and healthy_after < 12, healthy_after
        assert max_fds <= FD_BOUND, f"{max_fds} descriptors open during the flood"
        assert "cannot create output pipes" not in "\n".join(c.raw)
        during = [e for e in c.find("run.started", task="tick")
                  if datetime.fromisoformat(e["due"]).timestamp() > flood_at]  # fmt: skip
        assert len(during) >= 9, f"only {len(during)} runs started in 13 s"
        # Every run due during the flood has ended (the last may still be running) and
        # succeeded.
        ended = {e["run_id"]: e for e in c.find("run.exited", task="tick")}
        done = [ended[e["run_id"]] for e in during if e["run_id"] in ended]
        assert len(done) >= len(during) - 2
        assert all(e["outcome"] == "succeeded" for e in done), done
    finally:
        trickler.stop.set()
        trickler.thread.join(5)

    # Close the whole flood at once: the loop does not stall (the old server took 3.4 s
    # tearing down 700 threads).
    closed_at = time.time()
    for s in socks:
        s.close()
    c.wait_for("run.exited", task="tick", count=len(c.find("run.exited", task="tick")) + 3)
    late = latencies(c, closed_at - 1)
    assert late and max(late) < 1.0, late
    assert get(port, "/healthz") == 200
    assert c.stop() == 0


def test_controller_raises_its_soft_open_file_limit(
    dirs: tuple[Path, Path], controllers: list[ControllerProc]
) -> None:
    spec, state = dirs
    write_task(spec, "idle", {"schedule": "0 0 0 1 1 *", "command": ["true"]})
    c = ControllerProc(spec, state, wrapper=["prlimit", "--nofile=256:2048"])
    controllers.append(c)
    c.wait_for("spec.applied")
    with open(f"/proc/{c.pid}/limits") as fh:
        line = next(x for x in fh if x.startswith("Max open files"))
    soft, hard = line.split()[3:5]
    assert (soft, hard) == ("2048", "2048"), line
    assert c.stop() == 0


def test_a_trickled_request_is_cut_at_the_deadline(
    dirs: tuple[Path, Path], controllers: list[ControllerProc]
) -> None:
    spec, state = dirs
    write_task(spec, "idle", {"schedule": "0 0 0 1 1 *", "command": ["true"]})
    port = free_port()
    c = ControllerProc(spec, state, ["--http", f"127.0.0.1:{port}"])
    controllers.append(c)
    c.wait_for("spec.applied")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        started = time.monotonic()
        msg = b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 100
        cut_after: float | None = None
        for i in range(len(msg)):  # one byte each 0.25 s: ~26 s if never cut
            try:
                s.send(msg[i : i + 1])
            except OSError:
                cut_after = time.monotonic() - started
                break
            if select.select([s], [], [], 0.25)[0]:
                with contextlib.suppress(OSError):
                    s.recv(4096)
                cut_after = time.monotonic() - started
                break
    assert cut_after is not None, "the trickled request was never cut"
    assert 9.0 <= cut_after <= 12.0, cut_after
    assert c.stop() == 0
