"""Notifications and dead-man pings, delivered off the loop; knows nothing of schedules.

API
---
``Target(on, kind, value)``
    One entry of a task's ``notify`` list (``Task.notify``): ``on`` the events it
    subscribed to (``EVENTS``: failure, recovery, success, start, gave-up), ``kind``
    ``webhook`` | ``command`` | ``apprise``, ``value`` the URL or the argv tuple.

``build_message(task, event, record, targets, output=None, host='') -> Message | None``
    The message of one run event for the targets subscribed to it (None: nobody is).
    ``record`` is the run record (run_id, task, trigger, attempt, due, started, ended,
    duration_s, pid, exit_code, signal, outcome, reason). ``output`` an ``OutputTail``.

``OutputTail()``
    Fed line by line (``add(line)``, any thread) with a run's output; keeps the last 100
    lines (``lines()``, a command's stdin, an Apprise body) and the last 10 KiB
    (``tail_bytes()``, the body of a healthcheck ping).

``Notifier(metrics=None, *, workers=4, capacity=1000, per_target=2, timeout=10.0,
backoff=(1.0, 5.0), log=None)``
    - ``submit(message)``: queue it for each of its targets; never blocks.
    - ``ping(url, phase, *, task, body=b'')``: a dead-man ping; ``phase`` ``start``
      (GET URL/start), ``success`` (POST URL, body) or ``fail`` (POST URL/fail, body).
      Never the success URL for a failure: the caller picks the phase from the outcome.
    - ``close(timeout=2.0)``: delivers what is queued for up to ``timeout``, then stops.
    - ``pending()``, ``idle(timeout)``, ``counts`` (delivered, failed, dropped).

``unavailable(targets) -> str | None``
    Why a task with these targets cannot run on this host (``apprise:`` without the
    Apprise library), naming the field: for ``spec.invalid``.

``url_problem(kind, url) -> str | None``
    Why a webhook / apprise / healthcheck URL is refused (the spec room's validation).

``mask_url(url)``, ``mask_secret_urls(spec)``, ``map_secret_urls(spec, fn)``,
``hash_secret_url(url, digest)``, ``secret_url_views(old, new)``
    The one place that masks target URLs (secrets, like env values):
    ``https://hooks.example.com/***``.

Behaviour
---------
- One delivery is one message for one target. Deliveries wait in one bounded queue
  (``capacity``), fair between targets: workers take targets in turn, at most
  ``per_target`` tries in flight per target (1 for a healthcheck URL, whose pings stay in
  order), so a target that hangs holds its own slots, not every worker. A full queue
  drops the oldest delivery of the target with the most waiting, counted in
  ``reconciler_notifications_dropped_total``.
- At most 3 tries per delivery, 1 s then 5 s apart (a delivery waiting to try again holds
  no worker), each bounded by a 10 s time-out. A delivery that fails its last try is
  counted in ``reconciler_notifications_failed_total{task,kind}`` and logged as
  ``notify.failed`` (task, kind, target masked, notification: the event,
  tries, error) the first time for
  its target, then not again until a delivery to that target succeeds.
- ``webhook``: POST of the run record (plus event, host) as JSON; 2xx is delivered,
  redirects are refused. ``apprise``: title ``TASK: EVENT on HOST``, body with outcome,
  exit code, reason and the last 20 output lines; Apprise's own connect and read
  time-outs are capped at the try's time-out.
- ``command``: argv run with the controller's environment plus ``RECONCILER_TASK``,
  ``RECONCILER_RUN_ID``, ``RECONCILER_EVENT``, ``RECONCILER_OUTCOME``,
  ``RECONCILER_EXIT_CODE``, ``RECONCILER_REASON``, ``RECONCILER_ATTEMPT``,
  ``RECONCILER_HOST`` (empty when unknown), the last 100 output lines on stdin, its own
  output discarded; exit 0 is delivered; at the time-out its process group is killed.
  It runs under ``/bin/sh``, which reports the exit status over a pipe, so the
  Supervisor's ``waitpid(-1)`` reaping every child takes nothing from us (see
  ``command.py``). As it carries ``RECONCILER_RUN_ID``, a notify command still alive
  while that run is stopped counts as one of the run's strays.
- Error texts never quote a URL.
"""

from typing import TYPE_CHECKING

from reconciler.notify.mask import (
    MASK,
    hash_secret_url,
    map_secret_urls,
    mask_secret_urls,
    mask_url,
    secret_url_views,
)
from reconciler.notify.message import (
    OUTPUT_LINES,
    PING_BYTES,
    Message,
    OutputTail,
    Phase,
    build_message,
    subscribed,
)
from reconciler.notify.targets import (
    EVENTS,
    TARGET_KINDS,
    Event,
    Target,
    apprise_installed,
    unavailable,
    url_problem,
)

__all__ = [
    "EVENTS",
    "MASK",
    "OUTPUT_LINES",
    "PING_BYTES",
    "TARGET_KINDS",
    "Event",
    "Message",
    "Notifier",
    "OutputTail",
    "Phase",
    "Target",
    "apprise_installed",
    "build_message",
    "hash_secret_url",
    "map_secret_urls",
    "mask_secret_urls",
    "mask_url",
    "secret_url_views",
    "subscribed",
    "unavailable",
    "url_problem",
]

if TYPE_CHECKING:
    from reconciler.notify.notifier import Notifier


def __getattr__(name: str) -> object:
    # The Notifier (threads, urllib, subprocess) is imported on first use: the spec room
    # imports this package for Target and the masks, and the CLI should not pay for it.
    if name == "Notifier":
        from reconciler.notify.notifier import Notifier

        return Notifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
