"""What the controller keeps of a run while it lives, and how it words a run's end.

The state files themselves (the ledger, runs.json, the applied set) have their formats
in `reconciler.state`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reconciler.reconcile import RunView
from reconciler.state import runs
from reconciler.state.applied import applied_document as applied_document
from reconciler.supervisor import RunHandle


def rfc3339_zulu(t: float, tz: Any = UTC) -> str:
    """A due second as RFC 3339 for the logs: `Z` for UTC, else the zone's offset
    (`2026-03-29T03:00:00+02:00`). The CLI's form is render.rfc3339_offset."""
    if tz is UTC:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return datetime.fromtimestamp(t, tz).isoformat(timespec="seconds")


@dataclass
class Run:
    view: RunView
    handle: RunHandle | None
    trigger: str

    def record(self) -> dict[str, Any]:
        """Its record in runs.json (state/runs.py)."""
        h = self.handle
        return runs.encode(
            self.view, self.trigger, h.pgid if h else None, h.start_ticks if h else None
        )


def outcome_of(
    stop_reason: str | None,
    exit_code: int | None,
    signal: str | None,
    adopted: bool,
    success_codes: frozenset[int] = frozenset({0}),
    oom_killed: bool = False,
) -> str:
    """The `outcome` of `run.exited`: why a run ended, as far as the controller knows."""
    if stop_reason == "timeout":
        return "timed-out"
    if stop_reason is not None:
        return "stopped"
    if oom_killed and exit_code != 0:
        # A shell whose child the kernel killed may still exit 0: then it succeeded.
        return "oom-killed"
    if adopted and exit_code is None and signal is None:
        return "unknown"  # not our child: its exit status is nobody's to read
    return "succeeded" if exit_code in success_codes and signal is None else "failed"
