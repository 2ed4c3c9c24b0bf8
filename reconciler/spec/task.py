"""The validated, immutable form of one task document, shared by every room."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NoReturn
from zoneinfo import ZoneInfo

from reconciler.notify.targets import Target

if TYPE_CHECKING:
    from reconciler.hosts import HostPattern
    from reconciler.schedule import Schedule


class FrozenDict(dict[str, Any]):
    """A dict that refuses changes: still a dict for json.dumps, safe to share across threads."""

    __slots__ = ()

    def _readonly(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("this mapping is read-only")

    __setitem__ = __delitem__ = _readonly
    clear = pop = popitem = setdefault = update = _readonly  # type: ignore[assignment]
    __ior__ = _readonly  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(json.dumps(self, sort_keys=True, default=str))

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))


EMPTY = FrozenDict()  # shared by every task without labels or env (most of them)


def frozen(mapping: Mapping[str, Any]) -> FrozenDict:
    """A read-only copy; the shared EMPTY for an empty mapping."""
    return FrozenDict(mapping) if mapping else EMPTY


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_UNITS = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}


def memory_bytes(value: int | str) -> int:
    """memoryMax in bytes: an int as is, '512Mi' as 512 * 2**20 (the schema's pattern)."""
    if isinstance(value, int):
        return value
    return int(value[:-2]) * _UNITS[value[-2:]]


@dataclass(frozen=True)
class Resources:
    """`resources` of a task: None where no limit is set. memory_max in bytes, cpu_max in
    cores. The supervisor enforces them (supervisor.Limits)."""

    memory_max: int | None = None
    cpu_max: float | None = None
    open_files_max: int | None = None
    processes_max: int | None = None


@dataclass(frozen=True)
class Retry:
    """`retry` of a cron task: retries after the first attempt, the first delay (doubling)
    and the longest one, in seconds."""

    limit: int
    delay_seconds: int = 10
    max_delay_seconds: int = 600


@dataclass(frozen=True)
class CrashLoop:
    """`crashLoop` of a daemon: give up after max_restarts restarts within window_seconds."""

    max_restarts: int = 10
    window_seconds: int = 600


# slots: 10,000 tasks without an instance dict each (~1.5 KB a task, issue 12).
@dataclass(frozen=True, slots=True)
class Task:
    name: str
    file: str
    line: int
    labels: Mapping[str, str]
    type: Literal["cron", "daemon"]
    schedule: Schedule | None
    schedule_text: str | None
    timezone: ZoneInfo
    timezone_name: str | None  # None: the host's zone at load time
    command: tuple[str, ...] | str
    hosts: tuple[HostPattern, ...] | None
    max_concurrency: int
    concurrency_policy: str
    starting_deadline_seconds: int
    timeout_seconds: int | None
    termination_grace_period_seconds: int
    restart_policy: str
    env: Mapping[str, str]
    working_dir: str | None
    user: str | int | None
    suspend: bool
    source: str  # the document's own text in its file
    # Run history (reconciler.history): runs kept per outcome, output bytes kept per run.
    successful_runs_history_limit: int = 20
    failed_runs_history_limit: int = 20
    output_limit_bytes: int = 1024 * 1024
    resources: Resources | None = None
    # Fleet coordination (reconciler.coordination): "all" | "one", and "skip" | "run".
    placement: str = "all"
    placement_fallback: str = "skip"
    replicas: int = 1  # daemons: processes kept, each with RECONCILER_REPLICA = 0..N-1
    jitter_seconds: int = 0  # cron: runs start a stable per-host delay in [0, N) late
    # Failure handling and notifications (reconciler.notify delivers them).
    success_exit_codes: frozenset[int] = frozenset({0})
    retry: Retry | None = None
    crash_loop: CrashLoop | None = None
    notify: tuple[Target, ...] = ()
    healthcheck_url: str | None = None  # a secret, like env values
    # What the normalised document needs beyond the fields above (spec/normalised.py):
    # the optional fields the document gave, each notify entry's events in their order,
    # the hosts entries as written.
    given: frozenset[str] = frozenset()
    notify_on: tuple[tuple[str, ...], ...] = ()
    host_entries: tuple[str, ...] | None = None  # `hosts` as written (patterns strip them)
    _cache: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def document(self) -> FrozenDict:
        """The normalised document (defaults filled, JSON-serialisable), built when asked:
        kept with every task it was a third of what a loaded task held."""
        from reconciler.spec.normalised import normalised_document

        return normalised_document(self)

    def argv(self) -> list[str]:
        """A list command is executed as is; a string one by /bin/sh -c."""
        if isinstance(self.command, str):
            return ["/bin/sh", "-c", self.command]
        return list(self.command)

    def process_fingerprint(self) -> str:
        """Hash of what a daemon restart depends on: command, env, user, workingDir, and
        resources when set (absent, the hash is the one of before resources existed)."""
        found = self._cache.get("process")
        if found is None:
            what: dict[str, Any] = {
                "command": self.command,
                "env": self.env,
                "user": self.user,
                "workingDir": self.working_dir,
            }
            if self.resources is not None:
                from reconciler.spec.normalised import resources_document

                what["resources"] = resources_document(self.resources)
            found = _digest(what)
            self._cache["process"] = found
        return found

    def spec_fingerprint(self) -> str:
        """Hash of the whole normalised document."""
        found = self._cache.get("spec")
        if found is None:
            found = _digest(self.document)
            self._cache["spec"] = found
        return found

    def __hash__(self) -> int:
        return hash((self.name, self.file, self.spec_fingerprint()))
