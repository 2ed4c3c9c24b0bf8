"""The output kept of one run: its head and its tail, within a byte limit.

Lines arrive from the supervisor's pump thread; a snapshot is taken by the writer
thread. Each line is encoded to its JSON form once, when it arrives, so a snapshot is a
join of ready-made fragments: the writer never holds the interpreter for long.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque

STDOUT, STDERR = 0, 1


def line_bytes(text: str) -> int:
    """What a line counts against the limit: its UTF-8 bytes and the newline."""
    return len(text.encode("utf-8", "surrogatepass")) + 1


class OutputBuffer:
    """The first quarter of `limit` bytes of a run's output and the last three quarters;
    the lines between are counted (`dropped` bytes), not kept."""

    def __init__(self, limit: int) -> None:
        self.limit = max(0, limit)
        self._head_budget = self.limit // 4
        self._tail_budget = self.limit - self._head_budget
        self._head: list[str] = []
        self._head_bytes = 0
        self._head_open = True
        self._head_last = 0  # seq of the last head line
        self._tail: deque[tuple[str, int]] = deque()
        self._tail_bytes = 0
        self.dropped = 0  # bytes between head and tail, not kept
        self.seq = 0  # lines seen
        self.total = 0  # bytes seen
        self._lock = threading.Lock()

    def append(self, stream: str, text: str, at: float | None = None) -> None:
        n = line_bytes(text)
        ms = int((time.time() if at is None else at) * 1000)
        with self._lock:
            self.seq += 1
            self.total += n
            frag = json.dumps([self.seq, ms, STDERR if stream == "stderr" else STDOUT, text])
            if self._head_open and self._head_bytes + n <= self._head_budget:
                self._head.append(frag)
                self._head_bytes += n
                self._head_last = self.seq
                return
            self._head_open = False
            self._tail.append((frag, n))
            self._tail_bytes += n
            while self._tail_bytes > self._tail_budget:
                _, m = self._tail.popleft()
                self._tail_bytes -= m
                self.dropped += m

    def to_json(self) -> tuple[str, int]:
        """The `output` object of a run file (see the package docstring), and the number
        of lines seen when it was taken."""
        with self._lock:
            lines = ",".join([*self._head, *(f for f, _ in self._tail)])
            cut = (
                f'{{"after":{self._head_last},"bytes":{self.dropped}}}' if self.dropped else "null"
            )
            seq, total = self.seq, self.total
        text = (
            f'{{"limit":{self.limit},"lines":[{lines}],"cut":{cut},'
            f'"count":{seq},"bytes":{total}}}'
        )
        return text, seq
