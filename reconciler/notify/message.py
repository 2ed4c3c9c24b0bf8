"""What is delivered: a message per run event, and the output kept for it."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from reconciler.notify.targets import Event, Target

OUTPUT_LINES = 100  # the last lines of output on a notify command's stdin
PING_BYTES = 10 * 1024  # the last bytes of output in a healthcheck /fail ping's body
Phase = Literal["start", "success", "fail"]

# The run record's fields, as the JSON log has them (snake_case).
RECORD_FIELDS = (
    "run_id", "task", "trigger", "attempt", "due", "started", "ended", "duration_s",
    "pid", "exit_code", "signal", "outcome", "reason",
)  # fmt: skip


@dataclass(frozen=True)
class Message:
    """One event of one run, for the targets that subscribed to it.

    ``record`` is the run record (:data:`RECORD_FIELDS`; missing ones are sent as null),
    ``output_lines`` the run's last :data:`OUTPUT_LINES` lines, ``host`` this host's name.
    """

    task: str
    event: Event
    record: Mapping[str, Any]
    targets: tuple[Target, ...]
    output_lines: tuple[str, ...] = ()
    host: str = ""

    def payload(self) -> dict[str, Any]:
        """The JSON body of a webhook: the run record plus event and host."""
        body = {k: self.record.get(k) for k in RECORD_FIELDS}
        body.update({k: v for k, v in self.record.items() if k not in body})
        body["task"] = self.task
        body["event"] = self.event
        body["host"] = self.host
        return body


def subscribed(targets: Iterable[Target], event: str) -> tuple[Target, ...]:
    """The targets whose `on` list holds ``event``."""
    return tuple(t for t in targets if event in t.on)


def build_message(
    task: str,
    event: Event,
    record: Mapping[str, Any],
    targets: Iterable[Target],
    output: OutputTail | None = None,
    host: str = "",
) -> Message | None:
    """The message of ``event`` for the subscribed ones of ``targets``; None if none."""
    chosen = subscribed(targets, event)
    if not chosen:
        return None
    lines = output.lines() if output is not None else ()
    return Message(task, event, dict(record), chosen, lines, host)


@dataclass
class OutputTail:
    """The end of one run's output: the last 100 lines and the last 10 KiB.

    Fed from the output callback (any thread), read once the run ended. Bounded: at most
    100 lines are held, each counted in full for the byte tail.
    """

    max_lines: int = OUTPUT_LINES
    max_bytes: int = PING_BYTES
    _lines: deque[str] = field(default_factory=deque, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _bytes: deque[bytes] = field(default_factory=deque, repr=False)
    _size: int = 0

    def add(self, line: str) -> None:
        data = (line + "\n").encode("utf-8", "backslashreplace")
        with self._lock:
            self._lines.append(line)
            if len(self._lines) > self.max_lines:
                self._lines.popleft()
            self._bytes.append(data)
            self._size += len(data)
            while self._bytes and self._size - len(self._bytes[0]) >= self.max_bytes:
                self._size -= len(self._bytes.popleft())

    def lines(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._lines)

    def tail_bytes(self) -> bytes:
        """The last :data:`PING_BYTES` bytes of output (lines end with ``\\n``)."""
        with self._lock:
            data = b"".join(self._bytes)
        return data[-self.max_bytes :]
