"""The control socket in the state directory: `reconciler run NAME` asks through it.

One JSON line in, one JSON line out. The socket lives in the 0700 state directory and is
itself 0600, so only the controller's user reaches it. The loop owns it: requests are
read without blocking and answered after the tick that acted on them.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_REQUEST = 4096
REQUEST_TIMEOUT_S = 2.0


@dataclass
class Pending:
    conn: socket.socket
    request: dict[str, Any]
    received_at: float


class ControlServer:
    def __init__(self, path: Path) -> None:
        self.path = path
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

    def fileno(self) -> int:
        return self.sock.fileno()

    def accept(self) -> list[Pending]:
        """Every request waiting on the socket (a client sends its line at once)."""
        out: list[Pending] = []
        while True:
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return out
            except OSError:
                return out
            conn.settimeout(0.5)
            try:
                data = b""
                while b"\n" not in data and len(data) < MAX_REQUEST:
                    chunk = conn.recv(MAX_REQUEST)
                    if not chunk:
                        break
                    data += chunk
                request = json.loads(data.split(b"\n", 1)[0] or b"null")
                if not isinstance(request, dict):
                    raise ValueError("request must be a JSON object")
            except (OSError, ValueError) as exc:
                self.reply(conn, {"ok": False, "reason": f"bad request: {exc}"})
                continue
            out.append(Pending(conn=conn, request=request, received_at=time.monotonic()))

    @staticmethod
    def reply(conn: socket.socket, answer: dict[str, Any]) -> None:
        try:
            conn.settimeout(REQUEST_TIMEOUT_S)
            conn.sendall(json.dumps(answer).encode() + b"\n")
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def request(path: Path, payload: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """Client side: send one request and wait for the answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(json.dumps(payload).encode() + b"\n")
        data = b""
        while b"\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    answer = json.loads(data.split(b"\n", 1)[0] or b"{}")
    if not isinstance(answer, dict):
        raise ValueError("bad answer from controller")
    return answer
