"""Value types exchanged between the supervisor and the controller."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


class SpawnError(Exception):
    """A run could not be started. The message is meant for users (logs, status)."""


@dataclass(frozen=True)
class RunSpec:
    """Everything needed to start one run; no knowledge of tasks or schedules."""

    run_id: str
    task: str
    # Exec'd as is; a shell command arrives as ['/bin/sh', '-c', cmd].
    argv: list[str]
    # The complete environment of the child. Values are secrets: never log them.
    env: Mapping[str, str]
    cwd: str | None = None
    user: str | int | None = None


@dataclass
class RunHandle:
    """A live run. Owned by the supervisor: treat as read-only."""

    run_id: str
    task: str
    pid: int
    pgid: int
    start_ticks: int  # field 22 of /proc/<pid>/stat, guards against pid reuse
    started_at: float  # epoch seconds
    adopted: bool = False


@dataclass(frozen=True)
class Exited:
    """A run that is over: its process was reaped (or vanished) and its output drained."""

    run_id: str
    task: str
    pid: int
    exit_code: int | None  # None when killed by a signal or when unknown (adopted run)
    signal: str | None  # e.g. 'SIGTERM'
    started_at: float
    ended_at: float
    stop_reason: str | None  # the reason given to stop() while the run was alive
