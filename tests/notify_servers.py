"""Real local servers for the notify tests: HTTP on 127.0.0.1 and SMTP (aiosmtpd)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Seen:
    method: str
    path: str
    body: bytes
    at: float


@dataclass
class Hooks:
    """What the HTTP server received; paths starting /hang never answer, /status/N
    answers N, /slow/S answers 200 after S seconds, a path in ``failing`` 500, anything
    else 200."""

    url: str
    seen: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    failing: set[str] = field(default_factory=set)

    def paths(self) -> list[str]:
        with self.lock:
            return [s.path for s in self.seen]

    def wait_for(self, n: int, timeout: float = 10.0, prefix: str = "") -> list[Seen]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                got = [s for s in self.seen if s.path.startswith(prefix)]
            if len(got) >= n:
                return got
            time.sleep(0.01)
        raise AssertionError(f"{len(got)} requests to {prefix!r}, wanted {n}")


@contextmanager
def http_server() -> Iterator[Hooks]:
    hooks: Hooks

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with hooks.lock:
                hooks.seen.append(Seen(self.command, self.path, body, time.monotonic()))
            if self.path.startswith("/hang"):
                hooks.release.wait(30)
                return
            status = 200
            if self.path.startswith("/status/"):
                status = int(self.path.split("/")[2])
            elif self.path in hooks.failing:
                status = 500
            elif self.path.startswith("/slow/"):
                time.sleep(float(self.path.split("/")[2]))
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        do_GET = do_POST = _answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    hooks = Hooks(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hooks
    finally:
        hooks.release.set()
        server.shutdown()
        server.server_close()


def refused_url() -> str:
    """An http URL on a port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


@contextmanager
def smtp_server() -> Iterator[tuple[int, list[Any]]]:
    """A real SMTP server (login ops / secret, without TLS); yields its port and the
    messages it received."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    received: list[Any] = []

    class Keep(Message):  # type: ignore[misc]
        def handle_message(self, message: Any) -> None:
            received.append(message)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def accept(server: Any, session: Any, envelope: Any, mechanism: Any, data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult

        return AuthResult(success=data.login == b"ops" and data.password == b"secret")

    controller = Controller(
        Keep(), hostname="127.0.0.1", port=port, authenticator=accept, auth_require_tls=False
    )
    controller.start()
    try:
        yield port, received
    finally:
        controller.stop()
