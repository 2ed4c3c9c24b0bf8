"""The keeper thread: this controller's lease, its daemons' locks, its presence record and
its run summaries, kept in etcd off the loop.

The lease is judged on the local monotonic clock: it is trusted until `sent + TTL`, where
`sent` is when the last renewal that etcd acknowledged was sent (etcd's expiry can only
be later). Past that instant it is dropped here whatever etcd says, with every lock held
on it. A lock is reported held only until half a TTL before that instant, so a holder
that cannot renew stops its daemon (SIGTERM, SIGKILL after the grace that is left) before
the lease can expire and another host take over.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from reconciler.coordination.etcd import EtcdEngine, Unavailable
from reconciler.coordination.model import RUN_RETENTION_S, EtcdConfig, Keys, LockHold
from reconciler.coordination.publisher import HostInfo, Publisher
from reconciler.obs import log_event

RETENTION_ROTATE_S = 3600.0  # summaries of one hour share a lease of a week and an hour
CLAIMS_ROTATE_S = 300.0  # claims of five minutes share a lease (never renewed)
CLAIM_KEEP_S = 600  # a claim outlives its due second by at least this, and the deadline
MAX_CLAIM_KEEP_S = 86400
RETRY_S = 0.25


@dataclass
class _Lease:
    id: int
    ttl: int
    valid_until: float  # monotonic
    renewed: float  # monotonic, when the last acknowledged renewal was sent


class Keeper:
    def __init__(
        self,
        config: EtcdConfig,
        info: HostInfo,
        wake: Callable[[], None],
        engine: Callable[[EtcdConfig], EtcdEngine] = EtcdEngine,
    ) -> None:
        self.config = config
        self.keys = Keys(config.fleet)
        self.info = info
        self.wake = wake
        self._engine_factory = engine
        self.ttl = config.lease_ttl_s
        self.timeout = min(2.0, self.ttl / 4)
        self.margin = self.ttl / 2
        self.lock = threading.Lock()
        self.lease: _Lease | None = None
        self.retention: tuple[int, float] | None = None  # (lease id, granted monotonic)
        self.claims: tuple[int, float, int] | None = None  # (lease id, granted, TTL)
        self.claim_keep_s = CLAIM_KEEP_S  # from the tasks' startingDeadlineSeconds
        self.locks: dict[str, int] = {}  # task -> lock token (create revision), on `lease`
        self.wanted: frozenset[str] = frozenset()
        self.settled = False
        self.reachable = False
        self._answered_before = False
        self._told_down = False
        self.down_until = 0.0  # claims fail fast until then (monotonic)
        self.publisher = Publisher(self.keys, info, self.timeout)
        self._stale: list[int] = []  # leases dropped here, to revoke when etcd answers
        self._locks_checked = -1e9
        self._stop = threading.Event()
        self._poke = threading.Event()
        self._thread = threading.Thread(target=self._run, name="etcd-keeper", daemon=True)

    # --- from the loop ------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def poke(self) -> None:
        self._poke.set()

    def spec_changed(self) -> None:
        self.publisher.revision_dirty = True
        self._poke.set()

    def want_locks(self, names: frozenset[str]) -> None:
        if names != self.wanted:
            self.wanted = names
            self._locks_checked = -1e9
            self._poke.set()

    def lock_view(self, mono: float) -> tuple[dict[str, LockHold], float | None]:
        with self.lock:
            lease = self.lease
            if lease is None:
                return {}, None
            held_until = lease.valid_until - self.margin
            holds = {t: LockHold(tok, held_until, lease.valid_until) for t, tok in self.locks.items()}
            return holds, lease.valid_until

    def current_lease(self) -> int | None:
        with self.lock:
            lease = self.lease
            if lease is None or time.monotonic() >= lease.valid_until:
                return None
            return lease.id

    def retention_lease(self) -> int | None:
        with self.lock:
            return self.retention[0] if self.retention is not None else None

    def claims_lease(self) -> int | None:
        """The lease new claims are put on: not renewed, it outlives any due second's
        claim by claim_keep_s, whether its claimant lives or not."""
        with self.lock:
            return self.claims[0] if self.claims is not None else None

    def stop(self, revoke: bool) -> None:
        self._stop.set()
        self._poke.set()
        self._thread.join(timeout=self.timeout * 2 + 1)
        if revoke and self.lease is not None:
            engine = self._engine_factory(self.config)
            try:  # claims, locks and presence go at once: another host takes over now
                engine.revoke(self.lease.id, self.timeout)
            except Unavailable:
                pass
            finally:
                engine.close()

    # --- reachability, shared with the claim workers -------------------------------------

    def failed(self, why: str) -> None:
        with self.lock:
            was = self.reachable or not self._told_down  # the first failure is told too
            self.reachable = False
            self._told_down = True
            self.down_until = time.monotonic() + 1.0
        if was:
            log_event(
                "coordination.unavailable",
                f"etcd cannot be reached: {why}; placement: one runs follow placementFallback.",
                level="warning",
                error=why,
            )
            self.wake()

    def answered(self) -> None:
        with self.lock:
            was = self.reachable
            self.reachable = True
            self.down_until = 0.0
        if not was:
            again = " again" if self._answered_before else ""
            self._answered_before = True
            log_event("coordination.available", f"etcd answers{again}.",
                      endpoints=list(self.config.endpoints), fleet=self.config.fleet)
            self.wake()

    # --- the thread ---------------------------------------------------------------------

    def _run(self) -> None:
        engine = self._engine_factory(self.config)
        try:
            while not self._stop.is_set():
                ok = self._round(engine)
                if not self.settled:
                    self.settled = True
                    self.wake()
                self._poke.wait(self._next_wait(ok))
                self._poke.clear()
        finally:
            engine.close()

    def _next_wait(self, ok: bool) -> float:
        if not ok:
            return RETRY_S
        wait = self.ttl / 4
        with self.lock:
            lease = self.lease
        if lease is not None:
            now = time.monotonic()
            wait = min(wait, max(0.0, lease.renewed + self.ttl / 4 - now))
            stop_at = lease.valid_until - self.margin
            if stop_at > now:  # wake the loop when its locks stop being trusted
                wait = min(wait, stop_at - now + 0.01)
            elif self.locks:
                self.wake()
        if self.publisher.summaries:
            wait = min(wait, 0.2)
        return max(0.01, wait)

    def _round(self, engine: EtcdEngine) -> bool:
        try:
            self._keep_lease(engine)
            self._keep_retention(engine)
            self._keep_claims_lease(engine)
            self._keep_locks(engine)
            lease, retention = self.current_lease(), self.retention_lease()
            self.publisher.presence(engine, lease, retention)
            self.publisher.summaries_out(engine, retention)
            self._revoke_stale(engine)
        except Unavailable as exc:
            self.failed(str(exc))
            self._check_expiry()
            return False
        except Exception as exc:  # a bug here must not end the thread that keeps the lease
            log_event("coordination.failed", f"Unexpected error: {exc!r}"[:500],
                      level="error", error=repr(exc)[:500])
            self._check_expiry()
            return False
        self.answered()
        return True

    def _check_expiry(self) -> None:
        with self.lock:
            lease = self.lease
        if lease is not None and time.monotonic() >= lease.valid_until:
            self._drop("its renewal did not get through within its TTL")

    def _drop(self, why: str) -> None:
        with self.lock:
            lease, self.lease = self.lease, None
            held, self.locks = self.locks, {}
        if lease is None:
            return
        self._stale.append(lease.id)
        self.publisher.presence_key = None
        log_event(
            "coordination.lease_lost",
            f"Lease {lease.id:x} given up: {why}.",
            level="warning",
            lease=f"{lease.id:x}",
            locks=sorted(held),
        )
        self.wake()

    def _keep_lease(self, engine: EtcdEngine) -> None:
        self._check_expiry()
        with self.lock:
            lease = self.lease
        if lease is None:
            sent = time.monotonic()
            lease_id, ttl = engine.grant(self.ttl, self.timeout)
            with self.lock:
                self.lease = _Lease(lease_id, ttl, sent + ttl, sent)
            self._locks_checked = -1e9
            return
        if time.monotonic() - lease.renewed < self.ttl / 4:
            return
        sent = time.monotonic()
        left = engine.keepalive(lease.id, self.timeout)
        if left <= 0:
            self._drop("etcd no longer knows it")
            self._keep_lease(engine)
            return
        with self.lock:
            if self.lease is lease:
                lease.valid_until = sent + left
                lease.renewed = sent

    def _keep_retention(self, engine: EtcdEngine) -> None:
        now = time.monotonic()
        if self.retention is not None and now - self.retention[1] < RETENTION_ROTATE_S:
            return
        lease_id, _ = engine.grant(RUN_RETENTION_S + int(RETENTION_ROTATE_S), self.timeout)
        with self.lock:
            self.retention = (lease_id, now)

    def _keep_claims_lease(self, engine: EtcdEngine) -> None:
        now, keep = time.monotonic(), self.claim_keep_s
        if self.claims is not None and now - self.claims[1] < CLAIMS_ROTATE_S \
                and self.claims[2] >= keep + CLAIMS_ROTATE_S:
            return
        ttl = keep + int(CLAIMS_ROTATE_S)
        lease_id, _ = engine.grant(ttl, self.timeout)
        with self.lock:
            self.claims = (lease_id, now, ttl)

    def _keep_locks(self, engine: EtcdEngine) -> None:
        lease_id = self.current_lease()
        wanted = self.wanted
        if lease_id is None or (not wanted and not self.locks):
            return
        if time.monotonic() - self._locks_checked < self.ttl / 4:
            return
        prefix = self.keys.lock()
        found = {kv.key[len(prefix):]: kv for kv in engine.get_prefix(prefix, self.timeout)}
        held: dict[str, int] = {}
        for task in sorted(wanted):
            kv = found.get(task)
            if kv is not None and kv.lease == lease_id:
                held[task] = kv.create_revision
            elif kv is None:
                made = engine.create(self.keys.lock(task), {"host": self.info.host}, lease_id,
                                     self.timeout)
                if made.created:
                    held[task] = made.revision
                elif made.existing is not None and made.existing.lease == lease_id:
                    held[task] = made.existing.create_revision
        for task, kv in found.items():
            if task not in wanted and kv.lease == lease_id:
                engine.delete_if(kv.key, kv.create_revision, self.timeout)
        self._locks_checked = time.monotonic()
        with self.lock:
            if self.lease is None or self.lease.id != lease_id:
                return
            before, self.locks = self.locks, held
        for task in sorted(held.keys() - before.keys()):
            log_event("lock.acquired", f"Holding the lock of {task}.", task=task,
                      token=held[task])
        for task in sorted(before.keys() - held.keys()):
            log_event("lock.released", f"No longer holding the lock of {task}.", task=task)
        if held != before:
            self.wake()

    def _revoke_stale(self, engine: EtcdEngine) -> None:
        while self._stale:  # best effort: a lease etcd no longer knows is an error too
            lease_id = self._stale.pop(0)
            with contextlib.suppress(Unavailable):
                engine.revoke(lease_id, self.timeout)
