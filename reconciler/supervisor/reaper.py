"""Reaping children and becoming the reaper of orphaned grandchildren."""

from __future__ import annotations

import ctypes
import os
import signal

_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37


def set_subreaper(enabled: bool) -> bool:
    """Set or clear PR_SET_CHILD_SUBREAPER for this process; True on success."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, int(enabled), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def is_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        flag = ctypes.c_int(0)
        if int(libc.prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0)) != 0:
            return False
    except (OSError, AttributeError):
        return False
    return flag.value != 0


def become_subreaper() -> bool:
    """Have orphaned descendants reparented to us (so poll() reaps them); True on success."""
    return set_subreaper(True)


def reap_all() -> list[tuple[int, int]]:
    """Reap every child that has exited, without blocking: [(pid, wait status)]."""
    reaped: list[tuple[int, int]] = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for safety
            continue
        if pid == 0:
            break
        reaped.append((pid, status))
    return reaped


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"SIG{signum}"


def describe_status(status: int) -> tuple[int | None, str | None]:
    """(exit_code, signal name) of a wait status; exactly one of them is set."""
    if os.WIFSIGNALED(status):
        return None, signal_name(os.WTERMSIG(status))
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status), None
    return None, None  # pragma: no cover - stopped/continued are not requested
