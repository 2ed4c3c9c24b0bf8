"""What one HTTP request gets: GET and HEAD of the read-only endpoints, 405 and 404.

Built on a worker thread of the HTTP server from the request head it read; never on the
controller loop.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from reconciler import __version__
from reconciler.obs.metrics import CONTENT_TYPE, Metrics

ALLOWED = "GET, HEAD"


# More read-only pages (the run history): path with query -> (status, type, body), or
# None for 404. Called on a worker thread, never on the controller loop.
Routes = Callable[[str], tuple[int, str, bytes] | None]


@dataclass(frozen=True)
class Endpoints:
    metrics: Metrics
    healthy: Callable[[], bool]
    ready: Callable[[], bool]
    routes: Routes | None = None


class Handler(BaseHTTPRequestHandler):
    """Answers one complete request head, read from and written to memory: the socket
    stays with the I/O thread."""

    server_version = f"reconciler/{__version__}"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def __init__(self, head: bytes, client_address: Any, endpoints: Endpoints) -> None:
        # BaseRequestHandler.__init__ would run handle() on a socket; there is none here.
        self.endpoints = endpoints
        self.client_address = client_address
        self._out = io.BytesIO()
        self.rfile = io.BytesIO(head)
        self.wfile = self._out
        self.close_connection = True
        self.handle_one_request()
        headers = getattr(self, "headers", None)
        if headers is not None and (
            headers.get("Content-Length", "0").strip() not in ("", "0")
            or "Transfer-Encoding" in headers
        ):
            # A body we do not read would be taken for the next request.
            self.close_connection = True

    def answer(self) -> bytes:
        return self._out.getvalue()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        # BaseHTTPRequestHandler answers 501 for a method without `do_<METHOD>`; every
        # method but GET and HEAD is "not allowed" here, so answer 405 for all of them.
        if name.startswith("do_"):
            return self._method_not_allowed
        raise AttributeError(name)

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _serve(self, head: bool) -> None:
        path = self.path.partition("?")[0]
        ep = self.endpoints
        if path == "/metrics":
            try:
                body = ep.metrics.render()
            except Exception:
                self._reply(500, b"metrics collection failed\n", head=head)
                return
            self._reply(200, body, head=head, content_type=CONTENT_TYPE)
        elif path == "/healthz":
            if _call(ep.healthy):
                self._reply(200, b"ok\n", head=head)
            else:
                self._reply(503, b"unhealthy\n", head=head)
        elif path == "/readyz":
            if _call(ep.ready):
                self._reply(200, b"ok\n", head=head)
            else:
                self._reply(503, b"not ready\n", head=head)
        elif ep.routes is not None and (found := ep.routes(self.path)) is not None:
            self._reply(found[0], found[2], head=head, content_type=found[1])
        else:
            self._reply(404, b"not found\n", head=head)

    def _method_not_allowed(self) -> None:
        # The request may carry a body we will not read: close after answering.
        self.close_connection = True
        self._reply(405, b"method not allowed\n", head=False, extra={"Allow": ALLOWED}, close=True)

    def _reply(
        self,
        code: int,
        body: bytes,
        head: bool,
        content_type: str = "text/plain; charset=utf-8",
        extra: dict[str, str] | None = None,
        close: bool = False,
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        if not head:
            self.wfile.write(body)


def _call(check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception:
        return False
