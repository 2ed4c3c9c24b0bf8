"""Turning a byte stream into output lines: split on b'\\n', bounded length, escaped."""

from __future__ import annotations

MAX_LINE_BYTES = 64 * 1024
# Appended to every piece of an over-long line except its last one.
CONTINUATION_MARKER = " [...continued]"


def _decode(data: bytes | bytearray) -> str:
    return bytes(data).decode("utf-8", "backslashreplace")


def _cut(data: bytes, start: int, end: int) -> int:
    """End of a piece at or just before `end`, not inside a UTF-8 sequence."""
    if end >= len(data):
        return end
    i = end
    while i > start + 1 and i > end - 3 and (data[i] & 0xC0) == 0x80:
        i -= 1
    if (data[i] & 0xC0) == 0x80:  # not UTF-8 anyway: cut where we are
        return end
    return i


class LineSplitter:
    """Feed it chunks, get complete lines back; flush() returns the unterminated rest."""

    def __init__(self, limit: int = MAX_LINE_BYTES) -> None:
        self._limit = limit
        self._rest = b""

    def _pieces(self, data: bytes, out: list[str], final: bool) -> bytes:
        # Emits marked pieces while more than `limit` bytes remain; returns the remainder.
        start = 0
        while len(data) - start > self._limit:
            cut = _cut(data, start, start + self._limit)
            out.append(_decode(data[start:cut]) + CONTINUATION_MARKER)
            start = cut
        rest = data[start:]
        if final:
            out.append(_decode(rest))
            return b""
        return rest

    def feed(self, chunk: bytes) -> list[str]:
        data = self._rest + chunk if self._rest else chunk
        parts = data.split(b"\n")
        tail = parts.pop()
        out: list[str] = []
        for line in parts:
            if len(line) <= self._limit:
                out.append(_decode(line))
            else:
                self._pieces(line, out, final=True)
        self._rest = self._pieces(tail, out, final=False) if len(tail) > self._limit else tail
        return out

    def flush(self) -> list[str]:
        if not self._rest:
            return []
        out = [_decode(self._rest)]
        self._rest = b""
        return out
