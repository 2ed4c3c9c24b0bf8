"""Daemon restart bookkeeping: back-off, restart policies, crash-loop give-up. Pure.

After a daemon's process ends, `after_daemon_exit` works out its new DaemonState: when it
may start again (exponential back-off, 1 s doubling to 5 min, reset after 10 min of
healthy running), whether it is finished for good (Never; OnFailure after a success), and
whether it has crash-looped (`crashLoop`: restarted maxRestarts times within
windowSeconds: given up until its document changes or a manual run starts it again).
`daemon_phase` says where a daemon stands: the rule `reconcile` starts daemons by, and
what `status` and `diff` show.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal, Protocol

# Back-off of crash-looping daemons, as systemd/Kubernetes users expect.
BACKOFF_INITIAL_S = 1.0
BACKOFF_MAX_S = 300.0
BACKOFF_RESET_AFTER_S = 600.0


@dataclass(frozen=True)
class DaemonState:
    """Restart bookkeeping of one daemon task."""

    failures: int = 0
    not_before: float = 0.0
    # A daemon that ended for good (Never, or OnFailure with success) is not restarted
    # until its process-relevant fields change.
    finished_fingerprint: str | None = None
    # The process-relevant fields the failures were counted for: a changed daemon starts
    # afresh, without the back-off of its previous version (as Kubernetes does).
    failed_fingerprint: str | None = None
    # When it was restarted (ends that a restart followed), within the crash-loop window.
    restarts: tuple[float, ...] = ()
    # Given up after a crash loop: the document fingerprint it was given up on. A changed
    # document (or a manual run) starts it again.
    gave_up: str | None = None


@dataclass(frozen=True)
class CrashLoop:
    max_restarts: int
    window_s: float


@dataclass(frozen=True)
class DaemonPolicy:
    """What the task document says about restarts."""

    restart_policy: str = "Always"
    success_codes: frozenset[int] = frozenset({0})
    crash_loop: CrashLoop | None = None
    document: str = ""  # the task's document fingerprint, kept when it is given up on


@dataclass(frozen=True)
class DaemonExit:
    """How one daemon process ended."""

    fingerprint: str  # the process-relevant fields it ran with
    exit_code: int | None
    signal: str | None
    started_at: float
    ended_at: float
    stop_reason: str | None = None  # set when the controller stopped it


def after_daemon_exit(state: DaemonState, ended: DaemonExit, policy: DaemonPolicy) -> DaemonState:
    """Restart bookkeeping once a daemon's process ended."""
    if ended.stop_reason is not None and ended.stop_reason != "timeout":
        # We stopped it (change, removal, shutdown): no back-off, no verdict.
        return replace(state, not_before=0.0)
    exit_code, signal = ended.exit_code, ended.signal
    if ended.stop_reason == "timeout":
        signal, exit_code = signal or "SIGTERM", None  # a daemon past timeoutSeconds failed
    succeeded = exit_code in policy.success_codes and signal is None
    fingerprint = ended.fingerprint
    if policy.restart_policy == "Never" or (policy.restart_policy == "OnFailure" and succeeded):
        return replace(state, finished_fingerprint=fingerprint)
    same_version = state.failed_fingerprint in (None, fingerprint)
    failures = state.failures if same_version else 0
    if ended.ended_at - ended.started_at >= BACKOFF_RESET_AFTER_S:
        failures = 0
    restarts = state.restarts if same_version else ()
    loop = policy.crash_loop
    if loop is not None:
        restarts = tuple(t for t in restarts if t > ended.ended_at - loop.window_s)
        if len(restarts) >= loop.max_restarts:
            return DaemonState(
                failures=failures,
                failed_fingerprint=fingerprint,
                restarts=restarts,
                gave_up=policy.document,
            )
        restarts = (*restarts, ended.ended_at)
    delay = min(BACKOFF_MAX_S, BACKOFF_INITIAL_S * (2**failures))
    return DaemonState(
        failures=failures + 1,
        not_before=ended.ended_at + delay,
        failed_fingerprint=fingerprint,
        restarts=restarts if loop is not None else (),
    )


class LiveProcess(Protocol):
    """What the phase needs of a live process (reconcile.RunView)."""

    @property
    def stopping(self) -> str | None: ...


DaemonPhase = Literal["suspended", "stopping", "running", "finished", "crash-loop", "back-off", "starting"]


def daemon_phase(
    *,
    fingerprint: str | None,
    state: DaemonState,
    now: float,
    runs: Sequence[LiveProcess] = (),
    suspend: bool = False,
    gave_up: bool | None = None,
) -> DaemonPhase:
    """Where a daemon (replica) stands: the one rule `reconcile` starts daemons by, and
    what `status` and `diff` show. Only "starting" means a run is started now.

    `runs`: its live processes. `fingerprint`: the process fingerprint of the version in
    force; `gave_up`: whether it crash-looped under the document in force. None for
    either when the caller cannot know (`status` reads the applied set, whose env is
    hashed): the ledger's verdicts are then taken as being about the version in force.
    """
    if suspend:
        return "stopping" if runs else "suspended"
    if runs:  # one is running, or an old one is still on its way out
        return "stopping" if all(r.stopping for r in runs) else "running"
    if state.finished_fingerprint is not None and fingerprint in (
        None, state.finished_fingerprint
    ):
        return "finished"  # Never, or OnFailure after a success: until it changes
    if state.gave_up is not None if gave_up is None else gave_up:
        return "crash-loop"  # gave up: until its document changes or a manual run
    # Waiting out a back-off: only for the version that failed, and never longer than
    # the longest back-off (the clock may have been stepped back since).
    if (
        fingerprint is None or state.failed_fingerprint in (None, fingerprint)
    ) and now < state.not_before <= now + BACKOFF_MAX_S:
        return "back-off"
    return "starting"
