"""What the controller remembers: its runs, its ledger, and how they are written down."""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from reconciler.fleet import hashed_document
from reconciler.reconcile import DaemonState, RunView
from reconciler.spec import Task
from reconciler.supervisor import RunHandle


def rfc3339(t: float, tz: Any = UTC) -> str:
    """A due second as RFC 3339, with the offset of the task's zone (`Z` for UTC)."""
    if tz is UTC:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return datetime.fromtimestamp(t, tz).isoformat(timespec="seconds")


def applied_document(task: Task) -> dict[str, Any]:
    """The document as the applied set keeps it: env values hashed, never in clear."""
    return hashed_document(task.document)


@dataclass
class Run:
    view: RunView
    handle: RunHandle | None
    trigger: str
    due: int | None

    def record(self) -> dict[str, Any]:
        h = self.handle
        return {
            **asdict(self.view),
            "trigger": self.trigger,
            "pgid": h.pgid if h else None,
            "start_ticks": h.start_ticks if h else None,
        }


@dataclass
class Ledger:
    cursors: dict[str, int] = field(default_factory=dict)
    anchors: dict[str, dict[str, Any]] = field(default_factory=dict)
    daemons: dict[str, DaemonState] = field(default_factory=dict)
    # Due runs being started right now: if the controller dies before they are recorded
    # as runs, its successor logs them as skipped ("interrupted") instead of losing them.
    starting: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "cursors": self.cursors,
            "anchors": self.anchors,
            "daemons": {k: asdict(v) for k, v in self.daemons.items()},
            "starting": self.starting,
        }

    @classmethod
    def from_json(cls, data: Any) -> Ledger:
        if not isinstance(data, dict):
            return cls()
        cursors = {
            str(k): int(v)
            for k, v in (data.get("cursors") or {}).items()
            if isinstance(v, int)
        }
        anchors = {
            str(k): v
            for k, v in (data.get("anchors") or {}).items()
            if isinstance(v, dict) and isinstance(v.get("at"), int)
        }
        daemons: dict[str, DaemonState] = {}
        for k, v in (data.get("daemons") or {}).items():
            with contextlib.suppress(TypeError, ValueError):
                daemons[str(k)] = DaemonState(**v)
        starting = {
            str(k): int(v)
            for k, v in (data.get("starting") or {}).items()
            if isinstance(v, int)
        }
        return cls(cursors=cursors, anchors=anchors, daemons=daemons, starting=starting)


def outcome_of(
    stop_reason: str | None, exit_code: int | None, signal: str | None, adopted: bool
) -> str:
    """The `outcome` of `run.exited`: why a run ended, as far as the controller knows."""
    if stop_reason == "timeout":
        return "timed-out"
    if stop_reason is not None:
        return "stopped"
    if adopted and exit_code is None and signal is None:
        return "unknown"  # not our child: its exit status is nobody's to read
    return "succeeded" if exit_code == 0 else "failed"
