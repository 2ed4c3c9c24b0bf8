"""The read-only HTTP endpoint: ``/metrics``, ``/healthz``, ``/readyz``.

Only GET and HEAD are served; any other method gets 405 with ``Allow: GET, HEAD`` and
any other path 404, so no request can change state. Access logs are off (a scrape every
few seconds is not news).

Bounded, whoever connects (any local user, or anyone when bound to a public address):

* One thread does all the socket work (accept, read, write, deadlines) with non-blocking
  sockets and a selector; a slow or silent client costs a buffer, never a thread. Two
  worker threads build the answers (metrics rendering, health callbacks), so a slow
  callback holds neither the sockets nor other requests. Nothing here is shared with
  the controller loop but the callbacks, which must be cheap, thread-safe reads.
* At most MAX_CONNECTIONS connections are open at once. A new one beyond that takes the
  place of the connection that has waited longest without a complete request (an idle
  keep-alive connection, or a slowloris); when all are being answered, the new one gets
  a 503 and is closed at once. A waiting client never holds a descriptor of ours.
* Each request, from the connection (or the end of the previous answer on a kept-alive
  connection) to the last byte of its answer, has REQUEST_DEADLINE_S; then the
  connection is closed, however busily the client trickles bytes.
* A request head (request line and headers) is at most MAX_HEAD bytes.
* A connection is never accepted into the last descriptors of the soft RLIMIT_NOFILE
  (FD_RESERVE of them): those stay for runs' pipes, state writes and the spec walk.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import resource
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reconciler.obs.httpaddr import parse_http_addr, resolve
from reconciler.obs.httpanswer import Endpoints, Handler, Routes
from reconciler.obs.metrics import Metrics

__all__ = [
    "FD_RESERVE",
    "MAX_CONNECTIONS",
    "MAX_HEAD",
    "REQUEST_DEADLINE_S",
    "HttpServer",
    "parse_http_addr",
    "serve_http",
]

MAX_CONNECTIONS = 64
REQUEST_DEADLINE_S = 10.0
MAX_HEAD = 16384
FD_RESERVE = 256  # at most a quarter of a small limit
WORKERS = 2
LISTEN_BACKLOG = 128
ACCEPT_BURST = 64  # accepts per wake-up before the other sockets get a turn
ACCEPT_PAUSE_S = 0.1  # out of descriptors: try again after this, do not spin

_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 1\r\n"
    b"Connection: close\r\n\r\n"
)
_TOO_BIG = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n"
    b"Connection: close\r\n\r\n"
)
_FAILED = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def _head_end(buf: bytearray) -> int:
    """Where the request head in `buf` ends (after its blank line), or -1."""
    ends = [i + n for i, n in ((buf.find(b"\r\n\r\n"), 4), (buf.find(b"\n\n"), 2)) if i >= 0]
    return min(ends) if ends else -1


@dataclass(eq=False)
class _Conn:
    sock: socket.socket
    addr: Any
    deadline: float
    inbuf: bytearray = field(default_factory=bytearray)
    out: bytes = b""
    busy: bool = False  # a worker is building the answer
    closing: bool = False  # close once `out` is written
    events: int = 0  # what the selector watches for
    closed: bool = False


_LISTENER = object()
_WAKE = object()


class HttpServer:
    """Serves metrics and health on ``addr`` from background threads."""

    def __init__(
        self,
        addr: str,
        metrics: Metrics,
        healthy: Callable[[], bool],
        ready: Callable[[], bool],
        routes: Routes | None = None,
    ) -> None:
        self.host, self._requested_port = parse_http_addr(addr)
        self.routes = routes
        self.metrics = metrics
        self.healthy = healthy
        self.ready = ready
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._workers: list[threading.Thread] = []
        self._jobs: queue.SimpleQueue[tuple[_Conn, bytes] | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[tuple[_Conn, bytes, bool]] = queue.SimpleQueue()
        self._conns: dict[int, _Conn] = {}
        self._sel: selectors.BaseSelector | None = None
        self._wake_r = self._wake_w = -1
        self._stopping = False
        self._accepting = True
        self._accept_resume = 0.0
        self._fd_ceiling: int | None = None

    @property
    def port(self) -> int:
        """The bound port (the real one when asked for port 0); before start, the
        requested one."""
        if self._sock is not None:
            return int(self._sock.getsockname()[1])
        return self._requested_port

    @property
    def address(self) -> tuple[Any, ...]:
        """The bound socket address (``getsockname()``); empty before start."""
        return tuple(self._sock.getsockname()) if self._sock is not None else ()

    @property
    def connections(self) -> int:
        """Connections open now (at most MAX_CONNECTIONS)."""
        return len(self._conns)

    def start(self) -> None:
        """Bind exactly the given address and serve on daemon threads. Raises OSError
        when the address cannot be bound (in use, not local, unknown name)."""
        if self._sock is not None:
            return
        family, sockaddr = resolve(self.host, self._requested_port)
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(sockaddr)
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft != resource.RLIM_INFINITY:
            self._fd_ceiling = soft - min(FD_RESERVE, soft // 4)
        self._sock = sock
        self._stopping = False
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._sel = selectors.DefaultSelector()
        self._sel.register(sock, selectors.EVENT_READ, _LISTENER)
        self._sel.register(self._wake_r, selectors.EVENT_READ, _WAKE)
        self._accepting = True
        endpoints = Endpoints(self.metrics, self.healthy, self.ready, self.routes)
        self._workers = [
            threading.Thread(
                target=self._work, args=(endpoints,), name=f"reconciler-http-{i}", daemon=True
            )
            for i in range(WORKERS)
        ]
        for w in self._workers:
            w.start()
        self._thread = threading.Thread(target=self._serve, name="reconciler-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        sock, thread = self._sock, self._thread
        if sock is None:
            return
        self._stopping = True
        self._poke()
        if thread is not None:
            thread.join(timeout=5)
        for _ in self._workers:
            self._jobs.put(None)
        for w in self._workers:
            w.join(timeout=1)  # a callback stuck for longer is left to its daemon thread
        for conn in list(self._conns.values()):
            self._close(conn)
        if self._sel is not None:
            self._sel.close()
        sock.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        self._sock = None
        self._thread = None
        self._sel = None
        self._workers = []

    def _poke(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    # --- workers: build answers --------------------------------------------------------

    def _work(self, endpoints: Endpoints) -> None:
        while (job := self._jobs.get()) is not None:
            conn, head = job
            try:
                handler = Handler(head, conn.addr, endpoints)
                result = (conn, handler.answer(), handler.close_connection)
            except Exception:
                result = (conn, _FAILED, True)
            self._done.put(result)
            self._poke()

    # --- the I/O thread ----------------------------------------------------------------

    def _serve(self) -> None:
        sel = self._sel
        assert sel is not None
        while not self._stopping:
            for key, mask in sel.select(self._timeout()):
                if key.data is _LISTENER:
                    self._accept()
                elif key.data is _WAKE:
                    with contextlib.suppress(OSError):
                        while os.read(self._wake_r, 4096):
                            pass
                    self._take_answers()
                else:
                    conn: _Conn = key.data
                    if mask & selectors.EVENT_READ and not conn.closed:
                        self._read(conn)
                    if mask & selectors.EVENT_WRITE and not conn.closed:
                        self._flush(conn)
            self._expire()
            if not self._accepting and time.monotonic() >= self._accept_resume:
                self._accepting = True
                sel.register(self._sock, selectors.EVENT_READ, _LISTENER)  # type: ignore[arg-type]

    def _timeout(self) -> float | None:
        wake: list[float] = [c.deadline for c in self._conns.values()]
        if not self._accepting:
            wake.append(self._accept_resume)
        if not wake:
            return None  # idle: no timer wakes this thread
        return max(0.0, min(wake) - time.monotonic())

    def _accept(self) -> None:
        assert self._sock is not None and self._sel is not None
        for _ in range(ACCEPT_BURST):
            try:
                sock, addr = self._sock.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.ECONNABORTED:
                    continue
                # EMFILE, ENFILE, ENOBUFS: stop watching the listener for a moment, or
                # a level-triggered selector would spin on it.
                self._accepting = False
                self._accept_resume = time.monotonic() + ACCEPT_PAUSE_S
                self._sel.unregister(self._sock)
                return
            sock.setblocking(False)
            if (self._fd_ceiling is not None and sock.fileno() >= self._fd_ceiling) or (
                len(self._conns) >= MAX_CONNECTIONS and not self._evict()
            ):
                # Descriptors are numbered lowest-free-first: this one's number says at
                # least that many are in use.
                _refuse(sock)
                continue
            conn = _Conn(sock=sock, addr=addr, deadline=time.monotonic() + REQUEST_DEADLINE_S)
            self._conns[sock.fileno()] = conn
            self._watch(conn)

    def _evict(self) -> bool:
        """Close the connection that has waited longest for a complete request, to make
        room; False when every connection is being answered."""
        waiting = [c for c in self._conns.values() if not c.busy and not c.out]
        if not waiting:
            return False
        self._close(min(waiting, key=lambda c: c.deadline))
        return True

    def _read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if not data:
            self._close(conn)
            return
        conn.inbuf += data
        self._dispatch(conn)

    def _dispatch(self, conn: _Conn) -> None:
        """Hand a complete request head to a worker; refuse one that is too big."""
        end = _head_end(conn.inbuf)
        if end < 0 or end > MAX_HEAD:
            if len(conn.inbuf) > MAX_HEAD or end > MAX_HEAD:
                conn.inbuf.clear()
                self._send(conn, _TOO_BIG, close=True)
            return
        head = bytes(conn.inbuf[:end])
        del conn.inbuf[:end]
        conn.busy = True
        self._watch(conn)
        self._jobs.put((conn, head))

    def _take_answers(self) -> None:
        while True:
            try:
                conn, answer, close = self._done.get_nowait()
            except queue.Empty:
                return
            if conn.closed:
                continue  # cut at its deadline while the answer was being built
            conn.busy = False
            self._send(conn, answer, close)

    def _send(self, conn: _Conn, data: bytes, close: bool) -> None:
        conn.out = data
        conn.closing = close
        self._flush(conn)

    def _flush(self, conn: _Conn) -> None:
        try:
            sent = conn.sock.send(conn.out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._close(conn)
            return
        conn.out = conn.out[sent:]
        if conn.out:
            self._watch(conn)
            return
        if conn.closing:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_WR)
            self._close(conn)
            return
        # Kept alive: the next request gets a deadline of its own.
        conn.deadline = time.monotonic() + REQUEST_DEADLINE_S
        self._watch(conn)
        self._dispatch(conn)  # pipelined: it may already be here

    def _watch(self, conn: _Conn) -> None:
        assert self._sel is not None
        events = 0
        if conn.out:
            events = selectors.EVENT_WRITE
        elif not conn.busy:
            events = selectors.EVENT_READ
        if events == conn.events:
            return
        if conn.events == 0:
            self._sel.register(conn.sock, events, conn)
        elif events == 0:
            self._sel.unregister(conn.sock)
        else:
            self._sel.modify(conn.sock, events, conn)
        conn.events = events

    def _expire(self) -> None:
        now = time.monotonic()
        for conn in [c for c in self._conns.values() if c.deadline <= now]:
            self._close(conn)

    def _close(self, conn: _Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        if conn.events and self._sel is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(conn.sock)
        conn.events = 0
        self._conns.pop(conn.sock.fileno(), None)
        conn.sock.close()


def _refuse(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.send(_BUSY)
    sock.close()


def serve_http(
    addr: str,
    metrics: Metrics,
    healthy: Callable[[], bool],
    ready: Callable[[], bool],
) -> HttpServer:
    """Create and start an :class:`HttpServer` (the design's one-call form)."""
    server = HttpServer(addr, metrics, healthy, ready)
    server.start()
    return server
