"""history/<task>.json (and history.json of versions before 0.2): each task's last runs.

A list of the task's last `HISTORY_PER_TASK` ended runs, oldest first, each the object
the controller's executor records at a run's end. Written by controller/statefiles.py;
read by it (lazily, per task) and by `status` (the last run).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.state.directory import StateDir
from reconciler.state.layout import HISTORY_DIR, HISTORY_FILE

HISTORY_PER_TASK = 20


def history_file(task: str) -> str:
    """The state file of one task's last runs (task names are safe file names)."""
    return f"{HISTORY_DIR}/{task}.json"


def task_of_history_file(name: str) -> str | None:
    prefix, suffix = f"{HISTORY_DIR}/", ".json"
    if name.startswith(prefix) and name.endswith(suffix):
        return name[len(prefix) : -len(suffix)]
    return None


def parse_history(data: Any) -> list[dict[str, Any]]:
    """The last runs a history file holds (anything but an object left out)."""
    items = [i for i in data if isinstance(i, dict)] if isinstance(data, list) else []
    return items[-HISTORY_PER_TASK:]


def load_task_history(state: StateDir, task: str) -> list[dict[str, Any]]:
    """One task's last runs; StateFileError (DamagedStateFile) when its file cannot be
    read safely or is not JSON."""
    return parse_history(state.load_json(history_file(task)))


def read_legacy(state: StateDir) -> Any:
    """history.json of a version before 0.2 as it was written (None: absent, damaged)."""
    return state.read_json(HISTORY_FILE)


def last_run(state: StateDir, task: str, legacy: Any = None) -> dict[str, Any] | None:
    """A task's last ended run, for `status`: from its file, else from `legacy` (what
    `read_legacy` gave); a damaged file shows none."""
    items = state.read_json(history_file(task))
    if not items and isinstance(legacy, Mapping):
        items = legacy.get(task)
    if isinstance(items, list) and items and isinstance(items[-1], Mapping):
        return dict(items[-1])
    return None
