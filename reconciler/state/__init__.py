"""The state directory: lock, pid file, applied task set, due ledger, runs, history.

Everything a restarted controller (or `status`, `diff`, `reload`, `stop`, `run`) needs to
know about the one before it. One module per file format, each with its reader (and,
where the controller's encoding is not inline, its writer):

    layout.py     the file names
    safe.py       the read rules: regular files only (O_NOFOLLOW|O_NONBLOCK, checked
                  before and after the open), a size bound, DamagedStateFile for non-JSON
    directory.py  StateDir: created 0700, atomic writes (fsynced temp file + rename)
    lock.py       controller.lock + controller.json: who holds the directory, trust checks
    ledger.py     ledger.json + ledger-delta.json: Ledger
    runs.py       runs.json: RunRecord, the one parser of live runs
    applied.py    applied.json: AppliedTask, documents with env hashed
    status.py     status.json: SpecStatus
    history.py    history/<task>.json (and the older history.json): last runs
"""

from __future__ import annotations

from reconciler.state.directory import StateDir, default_state_dir
from reconciler.state.history import HISTORY_PER_TASK, history_file, task_of_history_file
from reconciler.state.layout import (
    APPLIED_FILE,
    CONTROL_SOCKET,
    CONTROLLER_FILE,
    HISTORY_DIR,
    HISTORY_FILE,
    LEDGER_DELTA,
    LEDGER_FILE,
    LOCK_FILE,
    RUNS_FILE,
    STATUS_FILE,
)
from reconciler.state.lock import ControllerRef, flock_holders
from reconciler.state.safe import (
    MAX_STATE_FILE_BYTES,
    DamagedStateFile,
    StateError,
    StateFileError,
    open_regular,
)

# Re-exported: the commands that verify a controller's pid read start times from here.
from reconciler.supervisor.procinfo import process_start_ticks as process_start_ticks

__all__ = [
    "APPLIED_FILE",
    "CONTROLLER_FILE",
    "CONTROL_SOCKET",
    "HISTORY_DIR",
    "HISTORY_FILE",
    "HISTORY_PER_TASK",
    "LEDGER_DELTA",
    "LEDGER_FILE",
    "LOCK_FILE",
    "MAX_STATE_FILE_BYTES",
    "RUNS_FILE",
    "STATUS_FILE",
    "ControllerRef",
    "DamagedStateFile",
    "StateDir",
    "StateError",
    "StateFileError",
    "default_state_dir",
    "flock_holders",
    "history_file",
    "open_regular",
    "process_start_ticks",
    "task_of_history_file",
]
