"""What the keeper thread writes besides the lease and the locks: the presence record,
the run summaries (kept a week by the leases they are written with). Runs on the keeper's
thread only."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.coordination.etcd import EtcdEngine, Put, Unavailable
from reconciler.coordination.model import Keys, Presence, RunSummary
from reconciler.coordination.revision import spec_revision

PRESENCE_EVERY_S = 5.0
SUMMARY_QUEUE = 10_000  # beyond it (etcd away for long), the oldest summaries are dropped
SUMMARY_BATCH = 100  # puts per transaction (etcd allows 128 by default)


@dataclass
class HostInfo:
    """What the loop tells about itself; read here for the presence record."""

    host: str
    addresses: tuple[str, ...]
    version: str
    spec_dir: Path
    started: float
    tasks: Mapping[str, object] = field(default_factory=dict)  # this host's tasks
    all_tasks: Mapping[str, object] = field(default_factory=dict)
    spec_errors: int = 0
    last_tick: float = 0.0


class Publisher:
    def __init__(self, keys: Keys, info: HostInfo, timeout: float) -> None:
        self.keys = keys
        self.info = info
        self.timeout = timeout
        self.summaries: deque[RunSummary] = deque(maxlen=SUMMARY_QUEUE)
        self.presence_key: tuple[object, ...] | None = None  # None: write at the next round
        self.revision_dirty = True
        self._presence_at = -1e9
        self._revision: str | None = None

    def record(self) -> Presence:
        info = self.info
        if self.revision_dirty:
            self.revision_dirty = False
            self._revision = spec_revision(info.spec_dir, info.all_tasks)  # type: ignore[arg-type]
        return Presence(
            host=info.host,
            addresses=info.addresses,
            version=info.version,
            spec_revision=self._revision,
            spec_errors=info.spec_errors,
            tasks=len(info.tasks),
            last_tick=info.last_tick,
            started=info.started,
        )

    def presence(self, engine: EtcdEngine, lease: int | None, retention: int | None) -> None:
        """alive/HOST on the lease (gone with it), members/HOST kept a week: when it
        changed, and every PRESENCE_EVERY_S for the last tick."""
        if lease is None or retention is None:
            return
        presence = self.record()
        key = (lease, presence.spec_revision, presence.spec_errors, presence.tasks)
        if key == self.presence_key and time.monotonic() - self._presence_at < PRESENCE_EVERY_S:
            return
        value = presence.to_json()
        engine.put_all(
            [Put(self.keys.alive(self.info.host), value, lease),
             Put(self.keys.member(self.info.host), value, retention)],
            self.timeout,
        )
        self.presence_key, self._presence_at = key, time.monotonic()

    def summaries_out(self, engine: EtcdEngine, retention: int | None) -> None:
        while self.summaries and retention is not None:
            n = min(SUMMARY_BATCH, len(self.summaries))
            batch = [self.summaries.popleft() for _ in range(n)]
            puts = [
                Put(self.keys.run(s.task, s.due if s.due is not None else int(s.started or 0),
                                  s.host), s.to_json(), retention)
                for s in batch
            ]
            try:
                engine.put_all(puts, self.timeout)
            except Unavailable:
                self.summaries.extendleft(reversed(batch))
                raise
