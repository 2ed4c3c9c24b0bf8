"""Requests on the control socket, as the loop sees them: taken, decided on, answered.

`ping` is answered at once; `run` becomes a ManualRequest for the next decision and is
answered after the tick that acted on it. The socket itself (reading clients off the
loop) is control.py's.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from typing import Any

from reconciler.controller.control import ControlServer, Pending
from reconciler.reconcile import ManualRequest

STOPPING = {"ok": False, "reason": "controller is stopping"}


class Requests:
    def __init__(self) -> None:
        self.server: ControlServer | None = None
        self._pending: list[tuple[ManualRequest, Pending]] = []

    def __bool__(self) -> bool:
        """Whether a run request waits for a decision."""
        return bool(self._pending)

    def accept(self, stopping: bool) -> None:
        """Take what clients sent; queue run requests for the next decision."""
        if self.server is None:
            return
        for pending in self.server.take():
            op = pending.request.get("op")
            if op == "run" and isinstance(pending.request.get("task"), str):
                if stopping:
                    ControlServer.reply(pending.conn, STOPPING)
                    continue
                req = ManualRequest(request_id=secrets.token_hex(4), task=pending.request["task"])
                self._pending.append((req, pending))
            elif op == "ping":
                ControlServer.reply(pending.conn, {"ok": True, "pid": os.getpid()})
            else:
                ControlServer.reply(pending.conn, {"ok": False, "reason": f"unknown request {op!r}"})

    def manual(self) -> list[ManualRequest]:
        return [req for req, _ in self._pending]

    def answer(self, answers: Mapping[str, dict[str, Any]]) -> None:
        """Reply to every request the last decision saw."""
        for req, pending in self._pending:
            ControlServer.reply(
                pending.conn, answers.get(req.request_id, {"ok": False, "reason": "not handled"})
            )
        self._pending = []

    def refuse_all(self) -> None:
        for _req, pending in self._pending:
            ControlServer.reply(pending.conn, STOPPING)
        self._pending = []
