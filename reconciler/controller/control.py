"""The control socket in the state directory: `reconciler run NAME` asks through it.

One JSON line in, one JSON line out. The socket lives in the 0700 state directory and is
itself 0600, so only the controller's user reaches it. Requests are read on a thread of
their own and answered by the loop after the tick that acted on them.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_REQUEST = 4096
MAX_ANSWER = 65536
REQUEST_TIMEOUT_S = 2.0  # for a whole request: a slow client cannot hold anything up


@dataclass
class Pending:
    conn: socket.socket
    request: dict[str, Any]


class ControlServer:
    """Accepts and reads requests on its own thread; the loop only takes complete ones.

    A client that connects and sends nothing, or trickles bytes, or sends garbage, costs
    this thread at most REQUEST_TIMEOUT_S and never the loop a moment.
    """

    def __init__(self, path: Path, wake: Callable[[], None]) -> None:
        self.path = path
        self._wake = wake
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            self.sock.bind(str(path))
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        self.sock.listen(16)
        self.sock.setblocking(False)
        # The thread sleeps until a client connects or close() writes here: no timer
        # wakes it while idle (each wake-up costs a VM ~0.2 ms of CPU).
        self._stop_r, self._stop_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.sock, selectors.EVENT_READ)
        self._sel.register(self._stop_r, selectors.EVENT_READ)
        self._ready: queue.SimpleQueue[Pending] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="reconciler-control", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._closed:
            self._sel.select()
            if self._closed:
                return
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                continue
            except OSError:
                if self._closed:
                    return
                time.sleep(0.1)  # e.g. out of descriptors: do not spin
                continue
            conn.setblocking(True)
            try:
                request = self._read(conn)
            except Exception as exc:  # anything a client sends is answered, never fatal
                self.reply(conn, {"ok": False, "reason": f"bad request: {str(exc)[:200]}"})
                continue
            self._ready.put(Pending(conn=conn, request=request))
            self._wake()

    @staticmethod
    def _read(conn: socket.socket) -> dict[str, Any]:
        return read_object(conn, time.monotonic() + REQUEST_TIMEOUT_S, MAX_REQUEST, "request")

    def take(self) -> list[Pending]:
        """Every complete request received so far (the loop's side)."""
        out: list[Pending] = []
        while True:
            try:
                out.append(self._ready.get_nowait())
            except queue.Empty:
                return out

    @staticmethod
    def reply(conn: socket.socket, answer: dict[str, Any]) -> None:
        try:
            conn.settimeout(0.5)
            conn.sendall(json.dumps(answer).encode() + b"\n")
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            os.write(self._stop_w, b"x")
        self._thread.join(timeout=2)
        with contextlib.suppress(OSError):
            self.sock.close()
        self._sel.close()
        os.close(self._stop_r)
        os.close(self._stop_w)
        for pending in self.take():
            self.reply(pending.conn, {"ok": False, "reason": "controller is stopping"})
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def request(path: Path, payload: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """Client side: send one request and wait for the answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(json.dumps(payload).encode() + b"\n")
        return read_object(s, time.monotonic() + timeout, MAX_ANSWER, "answer")


def read_object(sock: socket.socket, deadline: float, limit: int, what: str) -> dict[str, Any]:
    """One JSON object on one line, complete by `deadline` (monotonic), read from at most
    `limit` bytes; ValueError otherwise."""
    data = b""
    while b"\n" not in data and len(data) < limit:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ValueError(f"{what} not received in time")
        sock.settimeout(left)
        chunk = sock.recv(limit)
        if not chunk:
            break
        data += chunk
    obj = json.loads(data.split(b"\n", 1)[0] or b"null")
    if not isinstance(obj, dict):
        raise ValueError(f"{what} must be a JSON object")
    return obj
