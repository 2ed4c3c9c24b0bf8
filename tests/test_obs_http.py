"""The read-only HTTP endpoint: routes, methods, health, binding, quietness."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import select
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.obs import HttpServer, Metrics, parse_http_addr, serve_http
from reconciler.obs.http import MAX_CONNECTIONS, REQUEST_DEADLINE_S


class Flags:
    def __init__(self) -> None:
        self.healthy = True
        self.ready = True

    def is_healthy(self) -> bool:
        return self.healthy

    def is_ready(self) -> bool:
        return self.ready


# One server for the module: each stop() waits for the serve loop's poll interval.
@pytest.fixture(scope="module")
def _shared_flags() -> Flags:
    return Flags()


@pytest.fixture()
def flags(_shared_flags: Flags) -> Flags:
    _shared_flags.healthy = _shared_flags.ready = True
    return _shared_flags


@pytest.fixture(scope="module")
def metrics() -> Metrics:
    m = Metrics()
    m.run_started("backup")
    return m


@pytest.fixture(scope="module")
def server(metrics: Metrics, _shared_flags: Flags) -> Iterator[HttpServer]:
    srv = HttpServer("127.0.0.1:0", metrics, _shared_flags.is_healthy, _shared_flags.is_ready)
    srv.start()
    yield srv
    srv.stop()


def request(
    srv: HttpServer, method: str, path: str, body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


# --- parse_http_addr ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9100", ("127.0.0.1", 9100)),
        ("0.0.0.0:9100", ("0.0.0.0", 9100)),
        ("[::1]:9100", ("::1", 9100)),
        ("[::]:0", ("::", 0)),
        ("localhost:65535", ("localhost", 65535)),
        ("host.example:80", ("host.example", 80)),
    ],
)
def test_parse_http_addr(text: str, expected: tuple[str, int]) -> None:
    assert parse_http_addr(text) == expected


@pytest.mark.parametrize(
    "text",
    [":9100", "9100", "127.0.0.1", "127.0.0.1:", "host:abc", "host:70000", "host:-1",
     "::1:9100", "[::1]", "[nope]:9100", "[]:9100", "", "host:٣"],
)  # fmt: skip
def test_parse_http_addr_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_http_addr(text)


def test_missing_host_message_says_what_to_do() -> None:
    with pytest.raises(ValueError, match="host is missing"):
        parse_http_addr(":9100")


def test_constructor_rejects_missing_host(metrics: Metrics) -> None:
    with pytest.raises(ValueError):
        HttpServer(":9100", metrics, lambda: True, lambda: True)


# --- routes -------------------------------------------------------------------------------


def test_metrics_scrape(server: HttpServer, flags: Flags) -> None:
    status, headers, body = request(server, "GET", "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    assert int(headers["content-length"]) == len(body)
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    started = families["reconciler_runs_started"]
    assert [(s.labels, s.value) for s in started.samples] == [
        ({"task": "backup", "trigger": "schedule"}, 1.0)
    ]


def test_metrics_with_query_string(server: HttpServer) -> None:
    assert request(server, "GET", "/metrics?debug=1")[0] == 200


def test_head_has_headers_but_no_body(server: HttpServer) -> None:
    for path in ("/metrics", "/healthz", "/readyz"):
        status, headers, body = request(server, "HEAD", path)
        assert status == 200
        assert body == b""
        assert int(headers["content-length"]) > 0


def test_health_and_ready(server: HttpServer, flags: Flags) -> None:
    assert request(server, "GET", "/healthz")[::2] == (200, b"ok\n")
    assert request(server, "GET", "/readyz")[::2] == (200, b"ok\n")
    flags.healthy = False
    assert request(server, "GET", "/healthz")[0] == 503
    assert request(server, "HEAD", "/healthz")[0] == 503
    assert request(server, "GET", "/readyz")[0] == 200
    flags.ready = False
    assert request(server, "GET", "/readyz")[0] == 503
    flags.healthy = flags.ready = True
    assert request(server, "GET", "/healthz")[0] == 200


def test_failing_health_callback_is_unhealthy(metrics: Metrics) -> None:
    def boom() -> bool:
        raise RuntimeError("no")

    srv = HttpServer("127.0.0.1:0", metrics, boom, boom)
    srv.start()
    try:
        assert request(srv, "GET", "/healthz")[0] == 503
        assert request(srv, "GET", "/readyz")[0] == 503
    finally:
        srv.stop()


@pytest.mark.parametrize(
    "path", ["/", "/metrics/", "/metric", "/healthz/x", "/../metrics", "/favicon.ico"]
)
def test_other_paths_404(server: HttpServer, path: str) -> None:
    assert request(server, "GET", path)[0] == 404
    assert request(server, "HEAD", path)[0] == 404


@pytest.mark.parametrize(
    "method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "PROPFIND", "FOO"]
)
def test_other_methods_405_with_allow(server: HttpServer, metrics: Metrics, method: str) -> None:
    before = metrics.render()
    for path in ("/metrics", "/healthz", "/nowhere"):
        status, headers, _ = request(server, method, path, body=b"x=1")
        assert status == 405
        assert headers["allow"] == "GET, HEAD"
    assert metrics.render().replace(b"\n", b"").count(b"reconciler_runs") == before.replace(
        b"\n", b""
    ).count(b"reconciler_runs")


def test_keep_alive_serves_several_requests(server: HttpServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for path in ("/healthz", "/metrics", "/readyz"):
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200
    finally:
        conn.close()


# --- server behaviour ---------------------------------------------------------------------


def test_binds_exactly_the_given_address(server: HttpServer) -> None:
    assert server.address == ("127.0.0.1", server.port)
    assert server.port != 0


def test_ipv6_loopback(metrics: Metrics) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 support")
    srv = HttpServer("[::1]:0", metrics, lambda: True, lambda: True)
    try:
        srv.start()
    except OSError as exc:
        pytest.skip(f"cannot bind [::1]: {exc}")
    try:
        assert srv.address[0] == "::1"
        conn = http.client.HTTPConnection("::1", srv.port, timeout=10)
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        srv.stop()


def test_port_in_use_raises(server: HttpServer, metrics: Metrics) -> None:
    other = HttpServer(f"127.0.0.1:{server.port}", metrics, lambda: True, lambda: True)
    with pytest.raises(OSError):
        other.start()


def test_stop_frees_the_port_and_start_is_idempotent(metrics: Metrics) -> None:
    srv = HttpServer("127.0.0.1:0", metrics, lambda: True, lambda: True)
    srv.start()
    srv.start()
    port = srv.port
    srv.stop()
    srv.stop()
    with socket.create_server(("127.0.0.1", port)):
        pass


def test_serve_http_helper(metrics: Metrics) -> None:
    srv = serve_http("127.0.0.1:0", metrics, lambda: True, lambda: False)
    try:
        assert request(srv, "GET", "/readyz")[0] == 503
    finally:
        srv.stop()


def test_slow_request_does_not_block_others(metrics: Metrics) -> None:
    gate = threading.Event()

    def slow_health() -> bool:
        gate.wait(10)
        return True

    srv = HttpServer("127.0.0.1:0", metrics, slow_health, lambda: True)
    srv.start()
    try:
        result: list[int] = []
        stuck = threading.Thread(target=lambda: result.append(request(srv, "GET", "/healthz")[0]))
        stuck.start()
        time.sleep(0.1)
        started = time.monotonic()
        assert request(srv, "GET", "/metrics")[0] == 200
        assert time.monotonic() - started < 5
        gate.set()
        stuck.join(10)
        assert result == [200]
    finally:
        gate.set()
        srv.stop()


def test_quiet_on_stderr(server: HttpServer, capfd: pytest.CaptureFixture[str]) -> None:
    request(server, "GET", "/metrics")
    request(server, "GET", "/nope")
    request(server, "POST", "/metrics", body=b"x")
    # garbage, and a client that hangs up mid-request
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"\x16\x03\x01 not http\r\n\r\n")
        sock.recv(1024)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /metr")
    time.sleep(0.2)
    out, err = capfd.readouterr()
    assert err == "" and out == ""


# --- bounds: connections, deadlines -------------------------------------------------------


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """True when the server closes (EOF or reset) within `within` seconds."""
    sock.settimeout(within)
    try:
        return sock.recv(4096) == b""
    except ConnectionError:
        return True
    except TimeoutError:
        return False


def socket_fds() -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            n += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return n


def test_at_most_64_connections_and_a_new_request_still_answers(server: HttpServer) -> None:
    base = socket_fds()
    started = time.monotonic()
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(100)]
    try:
        # A fresh request is answered at once: the server makes room by dropping the
        # connections that have waited longest without sending a whole request.
        assert request(server, "GET", "/healthz")[0] == 200
        time.sleep(0.5)
        # The server (same process) holds at most 64 of them, well before any deadline.
        assert socket_fds() - base - len(idle) <= MAX_CONNECTIONS
        readable = select.select(idle, [], [], 0)[0]
        closed = sum(closed_by_server(s, 0.1) for s in readable)
        assert closed >= 100 - MAX_CONNECTIONS + 1, closed
        assert time.monotonic() - started < 5
    finally:
        for s in idle:
            s.close()


def test_a_request_trickled_byte_by_byte_is_cut_at_the_deadline(server: HttpServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        started = time.monotonic()
        msg = b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 100
        cut_after: float | None = None
        for i in range(len(msg)):  # one byte each 0.25 s: ~30 s if never cut
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
    assert REQUEST_DEADLINE_S - 0.5 <= cut_after <= REQUEST_DEADLINE_S + 1.5, cut_after


def test_an_idle_keep_alive_connection_is_closed_after_the_deadline(server: HttpServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert closed_by_server(s, REQUEST_DEADLINE_S + 3)
        assert time.monotonic() - started >= REQUEST_DEADLINE_S - 0.5


def test_pipelined_requests_are_answered_in_order(server: HttpServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", data)
    assert statuses == [b"200", b"404", b"200"]


def test_oversized_request_head_is_refused(server: HttpServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        with contextlib.suppress(OSError):
            s.sendall(b"GET /healthz HTTP/1.1\r\n" + b"X-Big: " + b"a" * 70000 + b"\r\n\r\n")
        answer = b""
        with contextlib.suppress(OSError):
            answer = s.recv(4096)
    assert answer == b"" or answer.split(b"\r\n")[0].split()[1] in (b"400", b"431"), answer
