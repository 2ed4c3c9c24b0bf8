"""A real etcd for the tests: loopback only, a temp data dir, free ports.

Tests that need it are skipped (with the reason) only when the etcd binary is missing;
CI installs Debian's etcd-server.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ETCD = shutil.which("etcd") or ("/usr/bin/etcd" if os.path.exists("/usr/bin/etcd") else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_certs(folder: Path) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate (openssl)."""
    folder.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
        "-keyout", "ca.key", "-out", "ca.crt")
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n"
                                    "extendedKeyUsage=serverAuth,clientAuth\n")
    for name in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.cnf", "-out", f"{name}.crt")
    return folder


class EtcdServer:
    def __init__(self, data_dir: Path, tls: Path | None = None) -> None:
        self.data_dir = data_dir
        self.tls = tls  # from make_certs: clients must show a certificate of its CA
        self.client_port = free_port()
        self.peer_port = free_port()
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.client_port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"etcd-{self.client_port}.log"

    def start(self, timeout: float = 20.0) -> None:
        peer = f"http://127.0.0.1:{self.peer_port}"
        assert ETCD is not None
        self.proc = subprocess.Popen(
            [
                ETCD, "--name", "test", "--data-dir", str(self.data_dir),
                "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"test={peer}", "--initial-cluster-state", "new",
                *self._tls_args(),
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.log, "ab"),  # noqa: SIM115 - kept open by the child
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited: {self.log.read_text()[-2000:]}")
            with (
                contextlib.suppress(OSError, ValueError),
                urllib.request.urlopen(self.url + "/health", timeout=0.5,
                                       context=self._context()) as resp,
            ):
                if json.loads(resp.read()).get("health") in ("true", True):
                    return
            time.sleep(0.1)
        raise RuntimeError("etcd did not become healthy")

    def _tls_args(self) -> list[str]:
        if self.tls is None:
            return []
        d = self.tls
        return ["--cert-file", str(d / "server.crt"), "--key-file", str(d / "server.key"),
                "--client-cert-auth", "--trusted-ca-file", str(d / "ca.crt")]

    def _context(self) -> ssl.SSLContext | None:
        if self.tls is None:
            return None
        ctx = ssl.create_default_context(cafile=str(self.tls / "ca.crt"))
        ctx.load_cert_chain(str(self.tls / "client.crt"), str(self.tls / "client.key"))
        return ctx

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


def etcd_server(tmp_path: Path) -> Iterator[EtcdServer]:
    if ETCD is None:
        pytest.skip("etcd is not installed (Debian: apt-get install etcd-server)")
    server = EtcdServer(tmp_path / "etcd-data")
    server.start()
    try:
        yield server
    finally:
        server.stop()
