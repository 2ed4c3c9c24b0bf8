"""The interface the controller sees, and its one implementation on etcd.

`Coordination` is what the loop calls; every method returns at once. The etcd traffic
runs on other threads: claim workers (a few, so that a slow claim does not hold up the
others) and the keeper (keeper.py). A claim that gets no answer within CLAIM_TIMEOUT_S,
or is asked while etcd is known to be down, is `unavailable`. Results wake the loop.
"""

from __future__ import annotations

import queue
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from reconciler import __version__
from reconciler.coordination.etcd import EtcdEngine, Put, Unavailable
from reconciler.coordination.keeper import CLAIM_KEEP_S, MAX_CLAIM_KEEP_S, Keeper
from reconciler.coordination.model import ClaimResult, CoordView, EtcdConfig, Keys, RunSummary
from reconciler.coordination.publisher import HostInfo
from reconciler.reconcile import Action, SkipRun

# Skips worth a summary: those that leave a due time unrun here for a reason of this host
# (not `elsewhere`: the winner's record tells; not `suspended`: nothing was owed).
UNPUBLISHED_SKIPS = ("elsewhere", "suspended")

CLAIM_TIMEOUT_S = 1.5
CLAIM_WORKERS = 4


class Coordination(Protocol):
    """What the controller loop calls; never blocks."""

    host: str

    def start(self) -> None: ...

    def close(self) -> None: ...

    def observe(self) -> CoordView: ...

    def has_news(self) -> bool: ...

    def claim(self, claims: Sequence[tuple[str, int]]) -> None: ...

    def tasks_now(self, tasks: Mapping[str, Any], all_tasks: Mapping[str, Any],
                  spec_errors: int) -> None: ...

    def passed(self, actions: Sequence[Action], now: float, status: dict[str, Any]) -> bool:
        ...

    def publish(self, summary: RunSummary) -> None: ...

    def run_ended(self, end: Any, outcome: str) -> None: ...


class NoCoordination:
    """A controller without --etcd: placement: one is refused (see decision.py)."""

    host = ""

    def __init__(self) -> None:
        self._placed: dict[str, Any] = {}

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def observe(self) -> CoordView:
        return CoordView(enabled=False, mono=time.monotonic(), placed=self._placed)

    def has_news(self) -> bool:
        return False

    def claim(self, claims: Sequence[tuple[str, int]]) -> None:
        if claims:
            raise RuntimeError("no coordination")

    def tasks_now(self, tasks: Mapping[str, Any], all_tasks: Mapping[str, Any],
                  spec_errors: int) -> None:
        self._placed = placed_one(tasks)  # refused here: decide() starts none of them

    def passed(self, actions: Sequence[Action], now: float, status: dict[str, Any]) -> bool:
        return False

    def publish(self, summary: RunSummary) -> None:
        pass

    def run_ended(self, end: Any, outcome: str) -> None:
        pass


def connect(
    config: EtcdConfig | None,
    identity: Mapping[str, list[str]],
    hostname: str | None,
    spec_dir: Path,
    started: float,
    wake: Callable[[], None],
) -> Coordination:
    """The coordination of a controller: on etcd with --etcd, else none."""
    if config is None:
        return NoCoordination()
    names = identity.get("names") or [socket.gethostname()]
    host = hostname or min(names, key=lambda n: (n.count("."), n))
    info = HostInfo(host, tuple(identity.get("addresses") or ()), __version__, spec_dir, started)
    return EtcdCoordination(config, info, wake)


def placed_one(tasks: Mapping[str, Any]) -> dict[str, Any]:
    return {n: t for n, t in tasks.items() if getattr(t, "placement", "all") == "one"}


class EtcdCoordination:
    def __init__(
        self,
        config: EtcdConfig,
        info: HostInfo,
        wake: Callable[[], None],
        engine: Callable[[EtcdConfig], EtcdEngine] = EtcdEngine,
        workers: int = CLAIM_WORKERS,
    ) -> None:
        self.config = config
        self.host = info.host
        self.keys = Keys(config.fleet)
        self.wake = wake
        self._engine = engine
        self.keeper = Keeper(config, info, wake, engine)
        self._claims: queue.Queue[tuple[str, int, float] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._results: list[ClaimResult] = []
        self._pending: dict[tuple[str, int], float] = {}
        self._tokens: dict[tuple[str, int], int] = {}  # won claims, until their run ends
        self._placed: dict[str, Any] = {}
        self._no_coordination = 0  # due times skipped for want of etcd, since start
        self._status_key: tuple[Any, ...] | None = None
        self._status_since = 0.0
        self._status_part: dict[str, Any] | None = None
        # Marks this process's claims (another process of the same host is another claimant).
        self._claim_value = {"host": info.host, "claimant": secrets.token_hex(8)}
        self._workers = [
            threading.Thread(target=self._work, name=f"etcd-claim-{i}", daemon=True)
            for i in range(workers)
        ]
        self._started = False
        self._closed = False

    # --- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._started = True
        self.keeper.start()
        for worker in self._workers:
            worker.start()

    def close(self) -> None:
        """Stop the threads and revoke the lease: our locks and presence go at once."""
        if not self._started or self._closed:
            return  # never started (the controller failed before), or closed already
        self._closed = True
        for _ in self._workers:
            self._claims.put(None)
        for worker in self._workers:
            worker.join(timeout=CLAIM_TIMEOUT_S + 1)
        self.keeper.stop(revoke=True)

    # --- from the loop ------------------------------------------------------------------

    def observe(self) -> CoordView:
        mono = time.monotonic()
        with self._lock:
            results, self._results = tuple(self._results), []
            pending = tuple(self._pending)
        for r in results:
            if r.outcome == "won" and r.token is not None:
                self._tokens[(r.task, r.due)] = r.token
        locks, expires = self.keeper.lock_view(mono)
        return CoordView(
            enabled=True,
            mono=mono,
            results=results,
            pending=pending,
            locks=locks,
            lease_expires=expires,
            settled=self.keeper.settled,
            reachable=self.keeper.reachable,
            placed=self._placed,
        )

    def has_news(self) -> bool:
        return bool(self._results)

    def claim(self, claims: Sequence[tuple[str, int]]) -> None:
        """Race for these (task, due second)s; each result wakes the loop."""
        now = time.monotonic()
        for task, due in claims:
            with self._lock:
                if (task, due) in self._pending:
                    continue
                self._pending[(task, due)] = now
            self._claims.put((task, due, now))

    def tasks_now(self, tasks: Mapping[str, Any], all_tasks: Mapping[str, Any],
                  spec_errors: int) -> None:
        """A read of the spec directory was applied (on the loop: cheap bookkeeping only)."""
        info = self.keeper.info
        info.tasks, info.all_tasks, info.spec_errors = tasks, all_tasks, spec_errors
        one = self._placed = placed_one(tasks)
        deadlines = [int(t.starting_deadline_seconds) for t in one.values() if t.type == "cron"]
        self.keeper.claim_keep_s = min(MAX_CLAIM_KEEP_S, max([CLAIM_KEEP_S, *(
            d + 60 for d in deadlines)]))
        self.keeper.want_locks(
            frozenset(n for n, t in one.items() if t.type == "daemon" and not t.suspend)
        )
        self.keeper.spec_changed()

    def passed(self, actions: Sequence[Action], now: float, status: dict[str, Any]) -> bool:
        """A pass of the loop is over: its skips are published, `now` is the last tick,
        and status.json's `coordination` is brought up to date (True: it changed)."""
        self.keeper.info.last_tick = now
        self.record(actions)
        keeper = self.keeper
        key = (keeper.reachable, keeper.lease is not None, tuple(sorted(keeper.locks)),
               self._no_coordination)
        if key == self._status_key and status.get("coordination") is self._status_part:
            return False
        if key[:3] != (self._status_key or (None,) * 3)[:3]:
            self._status_since = now
        self._status_key = key
        self._status_part = {
            "fleet": self.config.fleet,
            "host": self.host,
            "endpoints": list(self.config.endpoints),
            "reachable": key[0],
            "lease": key[1],
            "since": self._status_since,  # when reachable, lease or locks last changed
            "locks": list(key[2]),
            "skipped_no_coordination": key[3],
        }
        status["coordination"] = self._status_part
        return True

    def publish(self, summary: RunSummary) -> None:
        self.keeper.publisher.summaries.append(summary)
        self.keeper.poke()

    def record(self, actions: Sequence[Action]) -> None:
        """Summaries of the due times this pass skipped (the loop's actions)."""
        for a in actions:
            if isinstance(a, SkipRun) and a.reason == "no-coordination":
                self._no_coordination += 1
            if isinstance(a, SkipRun) and a.due is not None and a.count == 1 \
                    and a.reason not in UNPUBLISHED_SKIPS:
                self.publish(RunSummary(task=a.task, due=a.due, host=self.host,
                                        outcome="skipped", reason=a.reason))

    def run_ended(self, end: Any, outcome: str) -> None:
        """A run's summary (an executor hook, given events.RunEnd)."""
        token = self._tokens.pop((end.task, end.due), None) if end.due is not None else None
        self.publish(RunSummary(
            task=end.task, due=end.due, host=self.host, outcome=outcome, run_id=end.run_id,
            reason=end.error or end.stop_reason, started=end.started_at, ended=end.ended_at,
            token=token,
        ))

    # --- claim workers ------------------------------------------------------------------

    def _work(self) -> None:
        engine = self._engine(self.config)
        try:
            while True:
                item = self._claims.get()
                if item is None:
                    return
                task, due, asked = item
                result = self._claim(engine, task, due, asked)
                with self._lock:
                    self._pending.pop((task, due), None)
                    self._results.append(result)
                self.wake()
        finally:
            engine.close()

    def _claim(self, engine: EtcdEngine, task: str, due: int, asked: float) -> ClaimResult:
        left = CLAIM_TIMEOUT_S - (time.monotonic() - asked)
        if left <= 0.05:
            return ClaimResult(task, due, "unavailable", why="no answer in time")
        if self._closed:
            return ClaimResult(task, due, "unavailable", why="the controller is stopping")
        keeper = self.keeper
        if time.monotonic() < keeper.down_until:
            return ClaimResult(task, due, "unavailable", why="etcd cannot be reached")
        lease = keeper.claims_lease()
        if lease is None or keeper.current_lease() is None:
            why = "no lease" if keeper.settled else "not connected yet"
            return ClaimResult(task, due, "unavailable", why=why)
        retention = keeper.retention_lease()
        record = RunSummary(task=task, due=due, host=self.host, outcome="claimed",
                            started=time.time())
        also = []
        if retention is not None:
            also.append(Put(self.keys.run(task, due, self.host), record.to_json(), retention))
        made = None
        for _ in self.config.endpoints:  # the next endpoint, while there is time
            try:
                made = engine.create(self.keys.claim(task, due), self._claim_value, lease,
                                     left, also)
                break
            except Unavailable as exc:
                why = str(exc)
                left = CLAIM_TIMEOUT_S - (time.monotonic() - asked)
                if left <= 0.05:
                    break
        if made is None:
            keeper.failed(why)
            return ClaimResult(task, due, "unavailable", why=why)
        keeper.answered()
        if made.created:
            return ClaimResult(task, due, "won", token=made.revision)
        existing = made.existing
        if existing is not None and existing.value == self._claim_value:
            # Our own claim, made by an attempt whose answer was lost.
            return ClaimResult(task, due, "won", token=existing.create_revision)
        winner = None
        if existing is not None and isinstance(existing.value, dict):
            winner = existing.value.get("host")
        return ClaimResult(task, due, "lost", winner=str(winner) if winner else "unknown")
