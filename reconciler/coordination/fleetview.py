"""Reading the fleet back from etcd for `reconciler fleet hosts|runs` and `get --etcd`.

`read_*` do the (bounded, timed-out) reads; `host_rows` and `run_rows` are pure and say
what the records mean: a host is alive while its lease-backed record exists, its spec
revision drifts when it differs from the most common one among live hosts; a due time
is `missed` when hosts recorded it (skipped, for a reason of their own) and no host
recorded running it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.coordination.etcd import EtcdEngine
from reconciler.coordination.model import EtcdConfig, Keys, RunSummary

READ_TIMEOUT_S = 5.0
MAX_TASKS = 100_000
RAN = "ran"


@dataclass(frozen=True)
class HostRow:
    host: str
    addresses: tuple[str, ...]
    alive: bool
    spec_revision: str | None
    drift: bool
    tasks: int
    errors: int
    last_seen: float | None
    version: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "addresses": list(self.addresses),
            "state": "alive" if self.alive else "gone",
            "specRevision": self.spec_revision,
            "drift": self.drift,
            "tasks": self.tasks,
            "errors": self.errors,
            "lastSeen": self.last_seen,
            "version": self.version,
        }


@dataclass(frozen=True)
class RunRow:
    """One due time of one task: a host's run, or `missed` (host None)."""

    task: str
    due: int
    host: str | None
    outcome: str
    reason: str | None = None
    run_id: str | None = None
    token: int | None = None
    started: float | None = None
    ended: float | None = None

    @property
    def missed(self) -> bool:
        return self.outcome == "missed"


def host_rows(members: Iterable[dict[str, Any]], alive: set[str]) -> list[HostRow]:
    records = {str(m.get("host")): m for m in members if m.get("host")}
    revisions = Counter(
        m.get("specRevision") for h, m in records.items() if h in alive and m.get("specRevision")
    )
    common = revisions.most_common(1)[0][0] if revisions else None
    rows = []
    for host in sorted(records):
        m = records[host]
        rev = m.get("specRevision")
        rows.append(HostRow(
            host=host,
            addresses=tuple(str(a) for a in m.get("addresses") or ()),
            alive=host in alive,
            spec_revision=rev,
            drift=host in alive and common is not None and rev != common,
            tasks=int(m.get("tasks") or 0),
            errors=int(m.get("specErrors") or 0),
            last_seen=m.get("lastTick") or None,
            version=m.get("version"),
        ))
    return rows


def run_rows(summaries: Iterable[RunSummary], alive: set[str]) -> list[RunRow]:
    """Each due time with the hosts that ran it, or one `missed` row."""
    groups: dict[tuple[str, int], list[RunSummary]] = {}
    for s in summaries:
        if s.due is None:
            continue  # daemons and manual runs: not due times
        groups.setdefault((s.task, int(s.due)), []).append(s)
    rows: list[RunRow] = []
    for (task, due), records in sorted(groups.items()):
        ran = [s for s in records if s.outcome != "skipped"]
        if not ran:
            why = "; ".join(sorted({f"{s.reason} on {s.host}" for s in records}))
            rows.append(RunRow(task, due, None, "missed", reason=why))
            continue
        for s in sorted(ran, key=lambda s: s.host):
            outcome = s.outcome
            if outcome == "claimed":  # started; its end not published (yet)
                outcome = "running" if s.host in alive else "unknown"
            rows.append(RunRow(task, due, s.host, outcome, s.reason, s.run_id, s.token,
                               s.started, s.ended))
    return rows


class FleetReader:
    """The reads of the fleet commands, one engine, every call timed out."""

    def __init__(self, config: EtcdConfig, engine: type[EtcdEngine] = EtcdEngine) -> None:
        self.keys = Keys(config.fleet)
        self.engine = engine(config)

    def close(self) -> None:
        self.engine.close()

    def alive(self) -> set[str]:
        prefix = self.keys.alive()
        return {kv.key[len(prefix):] for kv in self.engine.get_prefix(prefix, READ_TIMEOUT_S)}

    def members(self) -> list[dict[str, Any]]:
        kvs = self.engine.get_prefix(self.keys.member(), READ_TIMEOUT_S)
        return [kv.value for kv in kvs if isinstance(kv.value, dict)]

    def alive_records(self) -> list[dict[str, Any]]:
        kvs = self.engine.get_prefix(self.keys.alive(), READ_TIMEOUT_S)
        return [kv.value for kv in kvs if isinstance(kv.value, dict)]

    def task_names(self) -> list[str]:
        """The tasks with summaries: one key read per task (skipping past each task's
        keys), not every key of a week of runs."""
        root = self.keys.runs()
        end = root[:-1] + "0"
        names: list[str] = []
        start = root
        while len(names) < MAX_TASKS:
            found = self.engine.get_range(start, end, READ_TIMEOUT_S, limit=1, keys_only=True)
            if not found:
                break
            name = found[0].key[len(root):].split("/", 1)[0]
            names.append(name)
            start = f"{root}{name}0"  # past "runs/NAME/..." ('0' follows '/')
        return names

    def summaries(self, tasks: Sequence[str] | None, since: int) -> list[RunSummary]:
        """Summaries of due times from `since` on (of `tasks`, or of every task)."""
        if tasks is None:
            tasks = self.task_names()
        out: list[RunSummary] = []
        for task in tasks:
            start = f"{self.keys.runs(task)}{since:012d}"
            end = self.keys.runs(task)[:-1] + "0"  # '/' + 1
            for kv in self.engine.get_range(start, end, READ_TIMEOUT_S):
                if isinstance(kv.value, dict):
                    out.append(RunSummary.from_json(kv.value))
        return out
