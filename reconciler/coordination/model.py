"""The data the coordination room hands out and takes in, and where it lives in etcd.

Nothing here talks to etcd or to processes: plain frozen values and the key layout.
Times: `due`, `started`, `ended` are epoch seconds; `*_mono` are time.monotonic() values
of this process (leases are judged on the local monotonic clock, never the wall clock).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

ClaimOutcome = Literal["won", "lost", "unavailable"]

DEFAULT_FLEET = "default"
DEFAULT_LEASE_TTL_S = 10
MIN_LEASE_TTL_S = 2  # etcd raises shorter leases to its own minimum anyway
MAX_LEASE_TTL_S = 3600
RUN_RETENTION_S = 7 * 86400  # run summaries: a week, by the leases they are written with


@dataclass(frozen=True)
class EtcdConfig:
    """How to reach the cluster: `endpoints` as URLs (http://host:2379, https://...)."""

    endpoints: tuple[str, ...]
    fleet: str = DEFAULT_FLEET
    lease_ttl_s: int = DEFAULT_LEASE_TTL_S
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class ClaimResult:
    """How the race for one (task, due second) went for this host.

    won: `token` is the claim's etcd revision (RECONCILER_FENCING_TOKEN), larger for each
    later claim in the cluster. lost: `winner` is the host that holds it. unavailable:
    etcd could not be asked in time (`why`); the claim may or may not exist."""

    task: str
    due: int
    outcome: ClaimOutcome
    token: int | None = None
    winner: str | None = None
    why: str | None = None


@dataclass(frozen=True)
class LockHold:
    """A daemon's lock held by this host: trust it until `held_until` (monotonic), which
    lies a safety margin before `expires` (when the lease may expire in etcd at the
    earliest, judged from when the last renewal was sent)."""

    token: int
    held_until: float
    expires: float


@dataclass(frozen=True)
class CoordView:
    """What the loop observes of the fleet at one instant (see decision.py)."""

    enabled: bool  # a controller with --etcd
    mono: float = 0.0
    results: tuple[ClaimResult, ...] = ()  # claims decided since the last look
    pending: tuple[tuple[str, int], ...] = ()  # claims still in flight
    locks: Mapping[str, LockHold] = field(default_factory=dict)
    lease_expires: float | None = None  # None: no lease (yet, or lost)
    settled: bool = False  # the first attempt to reach etcd is over (won or failed)
    reachable: bool = False
    placed: Mapping[str, Any] = field(default_factory=dict)  # this host's placement: one tasks


@dataclass(frozen=True)
class RunSummary:
    """One run (or skipped due time) as published for `fleet runs`."""

    task: str
    due: int | None
    host: str
    outcome: str  # succeeded, failed, ..., "claimed" (started, end not yet known), "skipped"
    run_id: str | None = None
    reason: str | None = None
    started: float | None = None
    ended: float | None = None
    token: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "due": self.due,
            "runId": self.run_id,
            "host": self.host,
            "outcome": self.outcome,
            "reason": self.reason,
            "started": self.started,
            "ended": self.ended,
            "token": self.token,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunSummary:
        return cls(
            task=str(data.get("task", "")),
            due=data.get("due"),
            host=str(data.get("host", "")),
            outcome=str(data.get("outcome", "unknown")),
            run_id=data.get("runId"),
            reason=data.get("reason"),
            started=data.get("started"),
            ended=data.get("ended"),
            token=data.get("token"),
        )


@dataclass(frozen=True)
class Presence:
    """A controller's record of itself."""

    host: str
    addresses: tuple[str, ...]
    version: str
    spec_revision: str | None
    spec_errors: int
    tasks: int
    last_tick: float
    started: float

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "addresses": list(self.addresses),
            "version": self.version,
            "specRevision": self.spec_revision,
            "specErrors": self.spec_errors,
            "tasks": self.tasks,
            "lastTick": self.last_tick,
            "started": self.started,
        }


class Keys:
    """The key layout under /reconciler/FLEET/.

    alive/HOST               presence, on the controller's lease (gone with it)
    members/HOST             the last presence, kept a week (a host that went is "gone")
    claims/TASK/DUE          the claim of a cron run, on a claims lease of the winner's
                             that is never renewed: it outlives the winner (10 min+)
    locks/TASK               a placement: one daemon's lock, on the holder's lease
    runs/TASK/DUE/HOST       run summaries, kept a week
    Due seconds are zero-padded so that key order is time order.
    """

    def __init__(self, fleet: str) -> None:
        self.root = f"/reconciler/{fleet}/"

    def alive(self, host: str = "") -> str:
        return f"{self.root}alive/{host}"

    def member(self, host: str = "") -> str:
        return f"{self.root}members/{host}"

    def claims(self, task: str) -> str:
        return f"{self.root}claims/{task}/"

    def claim(self, task: str, due: int) -> str:
        return f"{self.claims(task)}{due:012d}"

    def lock(self, task: str = "") -> str:
        return f"{self.root}locks/{task}"

    def runs(self, task: str | None = None) -> str:
        return f"{self.root}runs/" if task is None else f"{self.root}runs/{task}/"

    def run(self, task: str, due: int, host: str) -> str:
        return f"{self.runs(task)}{due:012d}/{host}"
