"""The control socket in the state directory: `reconciler run NAME` asks through it.

One JSON line in, one JSON line out. The socket lives in the 0700 state directory and is
itself 0600, so only the controller's user reaches it. Requests are read on a thread of
their own and answered by the loop after the tick that acted on them.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import queue
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_REQUEST = 4096
MAX_ANSWER = 65536
MAX_CLIENTS = 16  # read at once; more wait in the listen backlog, holding nothing of ours
REQUEST_TIMEOUT_S = 2.0  # for a whole request: a slow client cannot hold anything up
LISTEN_BACKLOG = 64
ACCEPT_PAUSE_S = 0.1  # out of descriptors: try again after this, do not spin


@dataclass
class Pending:
    conn: socket.socket
    request: dict[str, Any]


@dataclass(eq=False)
class _Client:
    conn: socket.socket
    deadline: float
    data: bytearray = field(default_factory=bytearray)


class ControlServer:
    """Accepts and reads requests on its own thread; the loop only takes complete ones.

    Up to MAX_CLIENTS clients are read at once, with non-blocking sockets and a selector,
    each with REQUEST_TIMEOUT_S to send its whole request line; further clients wait in
    the kernel's listen backlog until one of those is done. A client that connects and
    sends nothing, or trickles bytes, or sends garbage, costs one of those slots for at
    most REQUEST_TIMEOUT_S and never the loop a moment: the loop takes complete requests
    from a queue and answers with a send that never waits.
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
        self.sock.listen(LISTEN_BACKLOG)
        self.sock.setblocking(False)
        # The thread sleeps until a client connects or close() writes here: no timer
        # wakes it while idle (each wake-up costs a VM ~0.2 ms of CPU).
        self._stop_r, self._stop_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.sock, selectors.EVENT_READ)
        self._sel.register(self._stop_r, selectors.EVENT_READ)
        self._listening = True
        self._resume_at = 0.0
        self._clients: dict[int, _Client] = {}
        self._ready: queue.SimpleQueue[Pending] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="reconciler-control", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._closed:
            for key, _ in self._sel.select(self._timeout()):
                if self._closed:
                    return
                if key.fileobj is self.sock:
                    self._accept()
                elif isinstance(key.data, _Client):
                    self._read(key.data)
            now = time.monotonic()
            for client in [c for c in self._clients.values() if c.deadline <= now]:
                self._refuse(client, "request not received in time")
            want = len(self._clients) < MAX_CLIENTS and now >= self._resume_at
            if want != self._listening:
                self._listening = want
                if want:
                    self._sel.register(self.sock, selectors.EVENT_READ)
                else:
                    self._sel.unregister(self.sock)

    def _timeout(self) -> float | None:
        wake = [c.deadline for c in self._clients.values()]
        if not self._listening and len(self._clients) < MAX_CLIENTS:
            wake.append(self._resume_at)
        if not wake:
            return None
        return max(0.0, min(wake) - time.monotonic())

    def _accept(self) -> None:
        while len(self._clients) < MAX_CLIENTS:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.ECONNABORTED:
                    continue
                self._resume_at = time.monotonic() + ACCEPT_PAUSE_S  # e.g. out of descriptors
                return
            conn.setblocking(False)
            client = _Client(conn, time.monotonic() + REQUEST_TIMEOUT_S)
            self._clients[conn.fileno()] = client
            self._sel.register(conn, selectors.EVENT_READ, client)

    def _read(self, client: _Client) -> None:
        try:
            chunk = client.conn.recv(MAX_REQUEST)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(client)
            client.conn.close()
            return
        client.data += chunk
        if chunk and b"\n" not in client.data and len(client.data) < MAX_REQUEST:
            return
        self._drop(client)
        try:
            request = parse_object(bytes(client.data), MAX_REQUEST, "request")
        except ValueError as exc:  # anything a client sends is answered, never fatal
            self.reply(client.conn, {"ok": False, "reason": f"bad request: {str(exc)[:200]}"})
            return
        self._ready.put(Pending(conn=client.conn, request=request))
        self._wake()

    def _drop(self, client: _Client) -> None:
        """Stop reading `client` (the caller answers or closes it)."""
        self._clients.pop(client.conn.fileno(), None)
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(client.conn)

    def _refuse(self, client: _Client, reason: str) -> None:
        self._drop(client)
        self.reply(client.conn, {"ok": False, "reason": f"bad request: {reason}"})

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
        """Answer and close; never waits (the loop calls this). An answer is far smaller
        than a socket buffer; a client that has not read its last one gets none."""
        try:
            conn.setblocking(False)
            conn.send(json.dumps(answer).encode() + b"\n")
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
        for client in list(self._clients.values()):
            client.conn.close()
        self._clients.clear()
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
    return parse_object(data, limit, what)


def parse_object(data: bytes, limit: int, what: str) -> dict[str, Any]:
    """The JSON object on the first line of `data`; ValueError for anything else."""
    line, newline, _ = data.partition(b"\n")
    if not newline and len(data) >= limit:
        raise ValueError(f"{what} longer than {limit} bytes")
    obj = json.loads(line or b"null")
    if not isinstance(obj, dict):
        raise ValueError(f"{what} must be a JSON object")
    return obj
