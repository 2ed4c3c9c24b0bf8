"""Value types exchanged between the supervisor and the controller."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.supervisor.procinfo import process_start_ticks

# Every process of a run carries the run's id in its environment (last, over the task's
# env): the mark by which the supervisor finds descendants that left the run's process
# group and tree (see descendants.py). As systemd's INVOCATION_ID.
RUN_ID_ENV = "RECONCILER_RUN_ID"


class SpawnError(Exception):
    """A run could not be started. The message is meant for users (logs, status)."""


@dataclass(frozen=True)
class Limits:
    """Kernel-enforced limits of one run (None: no limit). memory_max, cpu_max and
    processes_max need a cgroup per run (cgroups.py); open_files_max is RLIMIT_NOFILE."""

    memory_max: int | None = None  # bytes, all processes of the run together
    cpu_max: float | None = None  # cores
    open_files_max: int | None = None  # soft and hard RLIMIT_NOFILE
    processes_max: int | None = None  # processes of the run together

    @classmethod
    def of(cls, given: object) -> Limits | None:
        """From anything with these four attributes (a task's resources); None for None."""
        if given is None:
            return None
        return cls(
            memory_max=getattr(given, "memory_max", None),
            cpu_max=getattr(given, "cpu_max", None),
            open_files_max=getattr(given, "open_files_max", None),
            processes_max=getattr(given, "processes_max", None),
        )

    def any(self) -> bool:
        return any(
            v is not None
            for v in (self.memory_max, self.cpu_max, self.open_files_max, self.processes_max)
        )

    def cgroup(self) -> bool:
        return any(v is not None for v in (self.memory_max, self.cpu_max, self.processes_max))


@dataclass(frozen=True)
class RunSpec:
    """Everything needed to start one run; no knowledge of tasks or schedules."""

    run_id: str
    task: str
    # Exec'd as is; a shell command arrives as ['/bin/sh', '-c', cmd].
    argv: list[str]
    # The task's own variables (and any per-run ones the controller adds), put on top of
    # the base environment the supervisor chooses: the controller's own for a run without
    # `user`, a clean one for a run with `user`. Values are secrets: never log them.
    task_env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    user: str | int | None = None
    limits: Limits | None = None


class RunHandle:
    """A live run. Owned by the supervisor: treat as read-only.

    run_id, task, pid, pgid, start_ticks (field 22 of /proc/<pid>/stat, guards against
    pid reuse), started_at (epoch seconds), adopted.
    """

    __slots__ = ("run_id", "task", "pid", "pgid", "_start_ticks", "started_at", "adopted")

    def __init__(
        self,
        run_id: str,
        task: str,
        pid: int,
        pgid: int,
        start_ticks: int | None,
        started_at: float,
        adopted: bool = False,
    ) -> None:
        self.run_id = run_id
        self.task = task
        self.pid = pid
        self.pgid = pgid
        # None: read from /proc on first use. Right after exec that read can wait for
        # the child's dynamic loader (~0.6 ms), so start() does not pay it; poll()
        # fills it in before reaping, while /proc/<pid> still exists.
        self._start_ticks = start_ticks
        self.started_at = started_at
        self.adopted = adopted

    @property
    def start_ticks(self) -> int:
        if self._start_ticks is None:
            ticks = process_start_ticks(self.pid)
            if self._start_ticks is None:  # poll() may have set it meanwhile
                self._start_ticks = ticks if ticks is not None else 0
        return self._start_ticks

    def resolved(self) -> bool:
        return self._start_ticks is not None

    def _key(self) -> tuple[object, ...]:
        return (
            self.run_id,
            self.task,
            self.pid,
            self.pgid,
            self.start_ticks,
            self.started_at,
            self.adopted,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RunHandle):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]  # mutable, like a non-frozen dataclass

    def __repr__(self) -> str:
        return (
            f"RunHandle(run_id={self.run_id!r}, task={self.task!r}, pid={self.pid}, "
            f"pgid={self.pgid}, start_ticks={self._start_ticks}, "
            f"started_at={self.started_at}, adopted={self.adopted})"
        )


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
    # The kernel killed a process of the run for its memoryMax (read from the run's
    # cgroup before its removal); only runs with a memory limit can have it.
    oom_killed: bool = False
