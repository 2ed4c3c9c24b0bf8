"""The read-only HTTP endpoint: ``/metrics``, ``/healthz``, ``/readyz``.

Only GET and HEAD are served; any other method gets 405 with ``Allow: GET, HEAD`` and
any other path 404, so no request can change state. Requests are handled on threads of
their own and never touch the controller loop: the health callbacks must be cheap,
thread-safe reads. Access logs are off (a scrape every few seconds is not news).
"""

from __future__ import annotations

import ipaddress
import socket
import socketserver
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from reconciler import __version__
from reconciler.obs.metrics import CONTENT_TYPE, Metrics

__all__ = ["HttpServer", "parse_http_addr", "serve_http"]

_ALLOWED = "GET, HEAD"


def parse_http_addr(text: str) -> tuple[str, int]:
    """``HOST:PORT`` -> ``(host, port)``; IPv6 as ``[::1]:9100``.

    Raises ValueError for a missing host (``:9100``: binding every interface must be
    asked for, as ``0.0.0.0:9100`` or ``[::]:9100``), a missing or bad port, or an
    IPv6 address without brackets.
    """
    text = text.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise ValueError(f"{text!r}: expected HOST:PORT, e.g. 127.0.0.1:9100")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{text!r}: {host!r} is not an IPv6 address") from None
    elif ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, e.g. [::1]:9100")
    if not host:
        raise ValueError(
            f"{text!r}: the host is missing; use 127.0.0.1:PORT, or 0.0.0.0:PORT for all"
        )
    if not port_text.isascii() or not port_text.isdigit():
        raise ValueError(f"{text!r}: the port must be a number")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"{text!r}: the port must be at most 65535")
    return host, port


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Set per instance before binding.
    metrics: Metrics
    healthy: Callable[[], bool]
    ready: Callable[[], bool]

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can hang on a broken
        # resolver; nothing here needs server_name.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-response is not worth a traceback on stderr.
        pass


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = f"reconciler/{__version__}"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    # A client that connects and sends nothing frees its thread after this.
    timeout = 10

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
        if path == "/metrics":
            try:
                body = self.server.metrics.render()
            except Exception:
                self._reply(500, b"metrics collection failed\n", head=head)
                return
            self._reply(200, body, head=head, content_type=CONTENT_TYPE)
        elif path == "/healthz":
            if _call(self.server.healthy):
                self._reply(200, b"ok\n", head=head)
            else:
                self._reply(503, b"unhealthy\n", head=head)
        elif path == "/readyz":
            if _call(self.server.ready):
                self._reply(200, b"ok\n", head=head)
            else:
                self._reply(503, b"not ready\n", head=head)
        else:
            self._reply(404, b"not found\n", head=head)

    def _method_not_allowed(self) -> None:
        # The request may carry a body we will not read: close after answering.
        self.close_connection = True
        self._reply(405, b"method not allowed\n", head=False, extra={"Allow": _ALLOWED}, close=True)

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


class HttpServer:
    """Serves metrics and health on ``addr`` from a background thread."""

    def __init__(
        self,
        addr: str,
        metrics: Metrics,
        healthy: Callable[[], bool],
        ready: Callable[[], bool],
    ) -> None:
        self.host, self._requested_port = parse_http_addr(addr)
        self.metrics = metrics
        self.healthy = healthy
        self.ready = ready
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the real one when asked for port 0); before start, the
        requested one."""
        if self._server is not None:
            return int(self._server.server_address[1])
        return self._requested_port

    def start(self) -> None:
        """Bind exactly the given address and serve on a daemon thread. Raises OSError
        when the address cannot be bound (in use, not local, unknown name)."""
        if self._server is not None:
            return
        family, sockaddr = _resolve(self.host, self._requested_port)
        server_cls = _Server6 if family == socket.AF_INET6 else _Server
        server = server_cls(sockaddr, _Handler, bind_and_activate=False)
        try:
            server.server_bind()
            server.server_activate()
        except BaseException:
            server.server_close()
            raise
        server.metrics = self.metrics
        server.healthy = self.healthy
        server.ready = self.ready
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.25},
            name="reconciler-http",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None


def _resolve(host: str, port: int) -> tuple[socket.AddressFamily, tuple[Any, ...]]:
    """The one address to bind: a literal as given, a name's first resolution."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        if not infos:
            raise OSError(f"cannot resolve {host!r}") from None
        family, _, _, _, sockaddr = infos[0]
        return family, sockaddr
    if ip.version == 6:
        return socket.AF_INET6, (host, port, 0, 0)
    return socket.AF_INET, (host, port)


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
