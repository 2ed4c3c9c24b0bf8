"""The delivery room: messages in from the loop without waiting, tries in worker threads.

``submit`` and ``ping`` only queue (a lock held for microseconds); worker threads make
the tries, each bounded by its transport's time-out, at most :data:`TRIES` per delivery
with back-off in between (a delivery waiting for its next try holds no worker).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from reconciler.notify.command import CommandFailed, run_command
from reconciler.notify.mask import mask_url
from reconciler.notify.message import Message, Phase
from reconciler.notify.queue import Delivery, DeliveryQueue
from reconciler.notify.send import DeliveryFailed, ping, post_json, send_apprise
from reconciler.notify.targets import Target

TRIES = 3
BACKOFF_S = (1.0, 5.0)  # before the 2nd and the 3rd try
TIMEOUT_S = 10.0
CAPACITY = 1000
WORKERS = 4
PER_TARGET = 2
APPRISE_LINES = 20  # output lines in an Apprise message's body


class MetricsLike(Protocol):
    def notification_failed(self, task: str, kind: str) -> None: ...
    def notification_dropped(self, kind: str) -> None: ...


LogEvent = Callable[..., None]


def _default_log(event: str, message: str, level: str = "info", **fields: object) -> None:
    from reconciler.obs import log_event

    log_event(event, message, level, **fields)


def command_env(message: Message) -> dict[str, str]:
    """The RECONCILER_* variables of a notify command."""
    rec = message.record

    def text(key: str) -> str:
        value = rec.get(key)
        return "" if value is None else str(value)

    return {
        "RECONCILER_TASK": message.task,
        "RECONCILER_RUN_ID": text("run_id"),
        "RECONCILER_EVENT": message.event,
        "RECONCILER_OUTCOME": text("outcome"),
        "RECONCILER_EXIT_CODE": text("exit_code"),
        "RECONCILER_REASON": text("reason"),
        "RECONCILER_ATTEMPT": text("attempt"),
        "RECONCILER_HOST": message.host,
    }


def apprise_text(message: Message) -> tuple[str, str]:
    """Title and body of an Apprise notification."""
    rec = message.record
    title = f"{message.task}: {message.event} on {message.host or 'unknown host'}"
    facts = [f"outcome {rec.get('outcome') or '-'}"]
    if rec.get("exit_code") is not None:
        facts.append(f"exit code {rec['exit_code']}")
    if rec.get("signal"):
        facts.append(f"signal {rec['signal']}")
    if rec.get("attempt"):
        facts.append(f"attempt {rec['attempt']}")
    body = ", ".join(facts)
    if rec.get("reason"):
        body += f"\n{rec['reason']}"
    lines = message.output_lines[-APPRISE_LINES:]
    if lines:
        body += "\n\nLast output:\n" + "\n".join(lines)
    return title, body


class Notifier:
    """Delivers notifications and dead-man pings off the loop (see the module docstring).

    ``metrics`` (reconciler.obs.Metrics or alike) counts failed and dropped deliveries;
    ``log`` is ``log_event``'s signature. Threads start with the first message.
    """

    def __init__(
        self,
        metrics: MetricsLike | None = None,
        *,
        workers: int = WORKERS,
        capacity: int = CAPACITY,
        per_target: int = PER_TARGET,
        timeout: float = TIMEOUT_S,
        backoff: tuple[float, ...] = BACKOFF_S,
        log: LogEvent | None = None,
    ) -> None:
        self._metrics = metrics
        self._log = log or _default_log
        self._timeout = timeout
        self._backoff = backoff
        self._queue = DeliveryQueue(capacity, per_target)
        self._workers = workers
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._failing: set[str] = set()  # targets whose last delivery failed (logged once)
        self._closed = False
        self.counts = {"delivered": 0, "failed": 0, "dropped": 0}

    # -- the loop's side: never blocks -----------------------------------------------

    def submit(self, message: Message) -> None:
        """Queue ``message`` for each of its targets; returns at once."""
        for target in message.targets:
            self._put(self._delivery(message, target))

    def ping(self, url: str, phase: Phase, *, task: str, body: bytes = b"") -> None:
        """Queue a dead-man ping: ``start`` (GET URL/start), ``success`` (POST URL) or
        ``fail`` (POST URL/fail); ``body`` is the run's last 10 KiB of output."""
        if phase not in ("start", "success", "fail"):
            raise ValueError(f"unknown ping phase {phase!r}")
        timeout = self._timeout
        self._put(
            Delivery(
                task=task,
                kind="healthcheck",
                key=f"healthcheck:{url}",
                target=mask_url(url),
                event=phase,
                send=lambda: ping(url, phase, body, timeout),
                ordered=True,
            )
        )

    def _delivery(self, message: Message, target: Target) -> Delivery:
        timeout = self._timeout
        send: Callable[[], None]
        if target.kind == "command":
            argv = list(target.value)
            stdin = "".join(f"{line}\n" for line in message.output_lines).encode(
                "utf-8", "backslashreplace"
            )
            env = command_env(message)
            send = lambda: run_command(argv, env, stdin, timeout)  # noqa: E731
            shown = str(argv[0])
        elif target.kind == "webhook":
            url = str(target.value)
            payload: Mapping[str, Any] = message.payload()
            send = lambda: post_json(url, payload, timeout)  # noqa: E731
            shown = mask_url(url)
        else:
            url = str(target.value)
            title, body = apprise_text(message)
            send = lambda: send_apprise(url, title, body, timeout)  # noqa: E731
            shown = mask_url(url)
        return Delivery(message.task, target.kind, target.key(), shown, message.event, send)

    def _put(self, delivery: Delivery) -> None:
        if self._closed:
            return
        self._start_workers()
        self._dropped(self._queue.put(delivery))

    def _dropped(self, delivery: Delivery | None) -> None:
        if delivery is None:
            return
        with self._lock:
            self.counts["dropped"] += 1
        if self._metrics is not None:
            self._metrics.notification_dropped(delivery.kind)

    def _start_workers(self) -> None:
        if len(self._threads) >= self._workers:
            return
        with self._lock:
            while len(self._threads) < self._workers:
                t = threading.Thread(
                    target=self._work, name=f"notify-{len(self._threads)}", daemon=True
                )
                t.start()
                self._threads.append(t)

    # -- workers ---------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            delivery = self._queue.take()
            if delivery is None:
                return
            error = self._try(delivery)
            delivery.tries += 1
            if error is None:
                self._queue.done(delivery)
                self._succeeded(delivery)
            elif delivery.tries < TRIES and not self._closed:
                delay = self._backoff[min(delivery.tries, len(self._backoff)) - 1]
                self._dropped(self._queue.done(delivery, time.monotonic() + delay))
            else:
                self._queue.done(delivery)
                self._failed(delivery, error)

    @staticmethod
    def _try(delivery: Delivery) -> str | None:
        try:
            delivery.send()
        except (DeliveryFailed, CommandFailed) as exc:
            return str(exc)
        except Exception as exc:  # a bug must not end the worker
            return f"{type(exc).__name__}: {str(exc)[:200]}"
        return None

    def _succeeded(self, delivery: Delivery) -> None:
        with self._lock:
            self.counts["delivered"] += 1
            self._failing.discard(delivery.key)

    def _failed(self, delivery: Delivery, error: str) -> None:
        with self._lock:
            self.counts["failed"] += 1
            first = delivery.key not in self._failing
            self._failing.add(delivery.key)
        if self._metrics is not None:
            self._metrics.notification_failed(delivery.task, delivery.kind)
        if first:
            self._log(
                "notify.failed",
                f"could not deliver the {delivery.event} {delivery.kind} notification of "
                f"{delivery.task} after {delivery.tries} tries: {error}",
                "warning",
                task=delivery.task,
                kind=delivery.kind,
                target=delivery.target,
                notification=delivery.event,
                tries=delivery.tries,
                error=error,
            )

    # -- shutdown --------------------------------------------------------------------

    def pending(self) -> int:
        """Deliveries waiting (for a worker or for their next try)."""
        return len(self._queue)

    def idle(self, timeout: float) -> bool:
        """Wait until nothing is waiting or in flight; False at ``timeout`` (for tests)."""
        return self._queue.wait_idle(timeout)

    def close(self, timeout: float = 2.0) -> None:
        """Deliver what is queued for up to ``timeout`` seconds, then stop; tries still
        in flight end on their own time-outs in daemon threads."""
        if self._threads:
            self._queue.wait_idle(timeout)
        self._closed = True
        for left in self._queue.close():
            self._dropped(left)
        deadline = time.monotonic() + 0.1
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
