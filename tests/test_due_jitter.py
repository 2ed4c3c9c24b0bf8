"""DueQueue with jitterSeconds: pure logic, injected times."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from reconciler.due import DueQueue, jitter_host, jitter_offset
from reconciler.hosts import HostIdentity
from reconciler.schedule import Schedule, parse_schedule

UTC = ZoneInfo("UTC")
T0 = 1_780_000_000 - 1_780_000_000 % 60  # a whole minute


@dataclass
class Task:
    name: str
    schedule: Schedule
    jitter_seconds: int = 0
    type: str = "cron"
    timezone: ZoneInfo = UTC
    starting_deadline_seconds: int = 10


def test_offset_is_the_documented_hash() -> None:
    digest = hashlib.sha256(b"backup\nweb-1").digest()
    assert jitter_offset("backup", "web-1", 600) == int.from_bytes(digest[:8], "big") % 600
    assert jitter_offset("backup", "web-1", 0) == 0
    spread = {jitter_offset(f"t{i}", "web-1", 3600) for i in range(100)}
    assert len(spread) > 90  # a hundred tasks spread over the hour


def test_host_name_for_jitter() -> None:
    names = HostIdentity(names=frozenset({"web-1.example.com", "web-1"}))
    assert jitter_host(names) == "web-1"
    addrs = HostIdentity(addresses=frozenset(map(ipaddress.ip_address, ["10.0.0.9", "10.0.0.10"])))
    assert jitter_host(addrs) == "10.0.0.10"  # the lowest as text
    assert jitter_host(HostIdentity()) == ""


def _name_with(delay: int, seconds: int, host: str = "h") -> str:
    return next(f"t{i}" for i in range(1000) if jitter_offset(f"t{i}", host, seconds) == delay)


def test_run_is_taken_late_but_keeps_its_due_time() -> None:
    name = _name_with(7, 30)
    task = Task(name, parse_schedule("0 * * * * *"), jitter_seconds=30)
    q = DueQueue("h")
    cursors: dict[str, int] = {}
    cursors.update(q.sync({name: task}, cursors, {}, T0 - 5).cursors)
    assert q.next_due(name) == T0 and q.earliest() == T0 + 7
    assert q.pop_due(T0 + 6, {name: task}, cursors, {}) == []
    got = q.pop_due(T0 + 7, {name: task}, cursors, {})
    assert [(d.run, d.last) for d in got] == [(T0, T0)]
    cursors[name] = T0
    assert q.earliest() == T0 + 67 and q.next_due(name) == T0 + 60


def test_jitter_longer_than_the_interval_shifts_every_run() -> None:
    name = _name_with(5, 10)
    task = Task(name, parse_schedule("* * * * * *"), jitter_seconds=10)
    q = DueQueue("h")
    cursors = dict(q.sync({name: task}, {}, {}, T0).cursors)
    runs = []
    for now in range(T0, T0 + 12):
        for d in q.pop_due(now, {name: task}, cursors, {}):
            runs.append((now, d.run))
            assert d.last is not None
            cursors[name] = d.last
    assert runs == [(T0 + 1 + i + 5, T0 + 1 + i) for i in range(6)]


def test_deadline_counts_from_the_jittered_start() -> None:
    name = _name_with(20, 60)
    task = Task(name, parse_schedule("0 * * * * *"), jitter_seconds=60,
                starting_deadline_seconds=0)
    q = DueQueue("h")
    cursors = dict(q.sync({name: task}, {}, {}, T0 - 1).cursors)
    (d,) = q.pop_due(T0 + 20, {name: task}, cursors, {})
    assert d.run == T0 and d.deadline == ()  # 20 s after due, on time for its start
    late = DueQueue("h")
    cursors = dict(late.sync({name: task}, {}, {}, T0 - 1).cursors)
    (d,) = late.pop_due(T0 + 21, {name: task}, cursors, {})
    assert d.run is None and d.deadline == (T0,)


def test_changing_jitter_moves_no_cursor() -> None:
    name = _name_with(3, 10)
    task = Task(name, parse_schedule("0 * * * * *"), jitter_seconds=10)
    q = DueQueue("h")
    cursors = dict(q.sync({name: task}, {}, {}, T0 - 30).cursors)
    assert q.earliest() == T0 + 3
    task2 = Task(name, task.schedule, jitter_seconds=0)
    moves = q.sync({name: task2}, cursors, {}, T0 - 20)
    assert moves.cursors == {} and q.earliest() == T0 and q.next_due(name) == T0
