"""Reading /proc/<pid>/stat and probing process groups."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ProcStat:
    pid: int
    state: str  # 'R', 'S', 'Z', ...
    ppid: int
    pgid: int
    start_ticks: int


def read_stat(pid: int) -> ProcStat | None:
    """The interesting fields of /proc/<pid>/stat, or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno in (errno.ESRCH, errno.ENOENT):
            return None
        raise
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    end = raw.rfind(b")")
    if end < 0:
        return None
    rest = raw[end + 2 :].split()
    # rest[0] is field 3 (state), so field N is rest[N - 3].
    try:
        return ProcStat(
            pid=pid,
            state=rest[0].decode("ascii", "replace"),
            ppid=int(rest[1]),
            pgid=int(rest[2]),
            start_ticks=int(rest[19]),
        )
    except (IndexError, ValueError):
        return None


def process_start_ticks(pid: int) -> int | None:
    """Start time of pid in clock ticks since boot (field 22), None if it is gone."""
    st = read_stat(pid)
    return None if st is None else st.start_ticks


def group_exists(pgid: int) -> bool:
    """True while any process (zombies included) is still in process group pgid."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
