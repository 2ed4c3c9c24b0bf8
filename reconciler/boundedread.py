"""Reading an open file without trusting its size: one place for the state files, the
run history and the task documents."""

from __future__ import annotations

import os

_CHUNK = 1 << 20


def read_at_most(fd: int, limit: int) -> bytes:
    """The file's bytes, at most `limit` + 1 of them: a file that grows while it is read
    (its size was checked before) still costs bounded memory, and the caller sees it is
    over the limit."""
    chunks: list[bytes] = []
    left = limit + 1
    while left > 0:
        chunk = os.read(fd, min(left, _CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
