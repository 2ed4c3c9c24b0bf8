"""The bounded queue of deliveries, fair between targets.

One delivery is one message (or ping) for one target. Deliveries wait per target, in
order; a worker takes the oldest ready delivery of the next target in turn that has a
free slot (``per_target`` tries in flight, 1 for an ordered target such as a healthcheck,
whose start and end pings must arrive in order). So a target that hangs holds at most
its own slots, never every worker. When the queue is full, the oldest delivery of the
target with the most waiting is dropped: a flood towards one target loses its own oldest
messages, not other targets' ones.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(eq=False)
class Delivery:
    """One message for one target; ``send()`` is one try and raises on failure."""

    task: str
    kind: str  # webhook | command | apprise | healthcheck
    key: str  # the target's identity
    target: str  # the target as logs show it (masked)
    event: str
    send: Callable[[], None] = field(repr=False)
    ordered: bool = False
    tries: int = 0
    not_before: float = 0.0


class DeliveryQueue:
    def __init__(
        self, capacity: int, per_target: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity = capacity
        self.per_target = per_target
        self._clock = clock
        self._cond = threading.Condition()
        self._waiting: OrderedDict[str, deque[Delivery]] = OrderedDict()
        self._in_flight: dict[str, int] = {}
        self._size = 0
        self._closed = False

    def __len__(self) -> int:
        with self._cond:
            return self._size

    def busy(self) -> bool:
        """Anything waiting or in flight."""
        with self._cond:
            return self._size > 0 or any(self._in_flight.values())

    def put(self, delivery: Delivery) -> Delivery | None:
        """Queue ``delivery``; return the one dropped to make room, if any."""
        with self._cond:
            dropped = None
            if self._size >= self.capacity:
                dropped = self._drop_one()
            self._waiting.setdefault(delivery.key, deque()).append(delivery)
            self._size += 1
            self._cond.notify()
            return dropped

    def _drop_one(self) -> Delivery | None:
        if not self._waiting:
            return None
        key = max(self._waiting, key=lambda k: len(self._waiting[k]))
        queue = self._waiting[key]
        dropped = queue.popleft()
        self._size -= 1
        if not queue:
            del self._waiting[key]
        return dropped

    def take(self, timeout: float | None = None) -> Delivery | None:
        """The next ready delivery (marked in flight), or None at ``timeout`` or close."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while not self._closed:
                now = self._clock()
                found, wake_at = self._ready(now)
                if found is not None:
                    return found
                wait = None if wake_at is None else max(0.0, wake_at - now)
                if deadline is not None:
                    left = deadline - now
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                self._cond.wait(wait)
            return None

    def _ready(self, now: float) -> tuple[Delivery | None, float | None]:
        wake_at: float | None = None
        for key, queue in self._waiting.items():
            limit = 1 if queue[0].ordered else self.per_target
            if self._in_flight.get(key, 0) >= limit:
                continue
            candidates = [queue[0]] if queue[0].ordered else queue
            for delivery in candidates:
                if delivery.not_before <= now:
                    queue.remove(delivery)
                    self._size -= 1
                    if not queue:
                        del self._waiting[key]
                    else:
                        self._waiting.move_to_end(key)  # the other targets go first next
                    self._in_flight[key] = self._in_flight.get(key, 0) + 1
                    return delivery, None
                if wake_at is None or delivery.not_before < wake_at:
                    wake_at = delivery.not_before
        return None, wake_at

    def done(self, delivery: Delivery, retry_at: float | None = None) -> Delivery | None:
        """A try ended; with ``retry_at`` the delivery waits again (at the head of its
        target, keeping an ordered target's order). Returns a delivery dropped for room."""
        with self._cond:
            left = self._in_flight.get(delivery.key, 1) - 1
            if left > 0:
                self._in_flight[delivery.key] = left
            else:
                self._in_flight.pop(delivery.key, None)
            dropped = None
            if retry_at is not None:
                if self._size >= self.capacity:
                    dropped = self._drop_one()
                delivery.not_before = retry_at
                self._waiting.setdefault(delivery.key, deque()).appendleft(delivery)
                self._size += 1
            self._cond.notify_all()
            return dropped

    def close(self) -> list[Delivery]:
        """Wake every worker to exit; return what was still waiting."""
        with self._cond:
            self._closed = True
            left = [d for q in self._waiting.values() for d in q]
            self._waiting.clear()
            self._size = 0
            self._cond.notify_all()
            return left

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is waiting or in flight; False at ``timeout``."""
        deadline = self._clock() + timeout
        with self._cond:
            while self._size > 0 or any(self._in_flight.values()):
                left = deadline - self._clock()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
            return True
