"""The control socket serves several clients at once: slow ones cannot lock out `run`."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from controller_harness import ControllerProc, cli, write_task

from reconciler.controller.control import MAX_CLIENTS, REQUEST_TIMEOUT_S, ControlServer, request
from reconciler.state import CONTROL_SOCKET


def slow_clients(path: Path, n: int) -> list[socket.socket]:
    """n clients that connect and send nothing (connect never waits: a full backlog
    leaves the client unconnected, which is as slow as it gets)."""
    out = []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            s.connect(str(path))
        out.append(s)
    return out


def test_run_succeeds_while_20_slow_clients_hold_the_socket(
    dirs: tuple[Path, Path], controllers: list[ControllerProc]
) -> None:
    spec, state = dirs
    write_task(spec, "manual", {"schedule": "0 0 0 1 1 *", "command": ["true"]})
    c = ControllerProc(spec, state)
    controllers.append(c)
    c.wait_for("spec.applied")
    socks = slow_clients(state / CONTROL_SOCKET, 20)
    try:
        started = time.monotonic()
        res = cli("run", "manual", "--state-dir", state, timeout=30)
        took = time.monotonic() - started
        assert res.returncode == 0, res.stderr
        assert took < 2 * REQUEST_TIMEOUT_S + 3, took
        c.wait_for("run.exited", task="manual", outcome="succeeded")
    finally:
        for s in socks:
            s.close()
    assert c.stop() == 0


# --- the server on its own, with a stand-in for the loop ------------------------------------


class Loop:
    """Takes requests when woken and answers each at once, as the controller's loop does
    after its tick."""

    def __init__(self, path: Path) -> None:
        self.woken = threading.Event()
        self.server = ControlServer(path, self.woken.set)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            self.woken.wait(0.2)
            self.woken.clear()
            for p in self.server.take():
                ControlServer.reply(p.conn, {"ok": True, "echo": p.request})


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[Loop]:
    lp = Loop(tmp_path / "c.sock")
    yield lp
    lp.stop.set()
    lp.thread.join(5)
    lp.server.close()


def test_a_request_is_answered_at_once_among_slow_clients(loop: Loop) -> None:
    socks = slow_clients(loop.server.path, MAX_CLIENTS - 1)
    try:
        started = time.monotonic()
        assert request(loop.server.path, {"op": "ping"}, timeout=5)["echo"] == {"op": "ping"}
        assert time.monotonic() - started < 0.5
    finally:
        for s in socks:
            s.close()


def test_slow_clients_are_cut_at_the_deadline(loop: Loop) -> None:
    socks = slow_clients(loop.server.path, 5)
    try:
        started = time.monotonic()
        for s in socks:
            s.setblocking(True)
            s.settimeout(REQUEST_TIMEOUT_S + 3)
            s.send(b'{"op":')  # a start, never finished
        answers = [s.recv(4096) for s in socks]
        took = time.monotonic() - started
        assert all(b"not received in time" in a for a in answers), answers
        assert REQUEST_TIMEOUT_S - 0.2 <= took <= REQUEST_TIMEOUT_S + 1.5, took
    finally:
        for s in socks:
            s.close()


def test_garbage_and_oversized_requests_are_refused(loop: Loop) -> None:
    for payload in (b"not json\n", b"[1, 2]\n", b"x" * 10000):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(str(loop.server.path))
            with contextlib.suppress(OSError):
                s.sendall(payload)
            answer = s.recv(4096)
        assert b'"ok": false' in answer and b"bad request" in answer, answer
