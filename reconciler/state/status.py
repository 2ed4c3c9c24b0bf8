"""status.json: the spec part of `status`, as the controller last wrote it.

Written by the controller after each read of the spec directory (the document is built
by controller/desired.py `DesiredState.status`); read by `status`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.state.directory import StateDir
from reconciler.state.layout import STATUS_FILE


@dataclass(frozen=True)
class SpecStatus:
    loaded: bool = False  # False: the controller has not read its specs yet
    updated_at: float | None = None
    dir_error: Any = None
    spec_errors: list[Any] = field(default_factory=list)
    tasks_total: int | None = None
    tasks_for_host: int | None = None
    # Notifications and pings so far: delivered, failed (after their last try), dropped.
    notifications: dict[str, int] = field(default_factory=dict)
    # Fleet coordination (apply --etcd): fleet, reachable, since, locks, skipped...
    coordination: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any) -> SpecStatus:
        if not isinstance(data, Mapping) or not data:
            return cls()
        updated = data.get("updated_at")
        errors = data.get("spec_errors")
        total, here = data.get("tasks_total"), data.get("tasks_for_host")
        sent = data.get("notifications")
        return cls(
            coordination=dict(data["coordination"])
            if isinstance(data.get("coordination"), Mapping) else {},
            notifications={
                str(k): v for k, v in sent.items() if isinstance(v, int)
            } if isinstance(sent, Mapping) else {},
            loaded=True,
            updated_at=float(updated) if isinstance(updated, int | float) else None,
            dir_error=data.get("dir_error"),
            spec_errors=list(errors) if isinstance(errors, list) else [],
            tasks_total=total if isinstance(total, int) else None,
            tasks_for_host=here if isinstance(here, int) else None,
        )


def read_status(state: StateDir) -> SpecStatus:
    """status.json; an absent or damaged file reads as not loaded yet."""
    return SpecStatus.from_json(state.read_json(STATUS_FILE))
