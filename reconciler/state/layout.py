"""The names of the state directory's files, listed once.

Each format has its module in this package (ledger, runs, applied, status, history,
lock); the names are here because `StateDir.check_files` looks at all of them.
"""

from __future__ import annotations

LOCK_FILE = "controller.lock"
CONTROLLER_FILE = "controller.json"
LEDGER_FILE = "ledger.json"
LEDGER_DELTA = "ledger-delta.json"
RUNS_FILE = "runs.json"
HISTORY_FILE = "history.json"  # before 0.2: one file for all tasks; read, then removed
HISTORY_DIR = "history"  # one file per task: history/<task>.json, its last runs
APPLIED_FILE = "applied.json"
STATUS_FILE = "status.json"
CONTROL_SOCKET = "control.sock"

# The files the controller reads at start (besides history/<task>.json).
READ_AT_START = (
    LOCK_FILE, CONTROLLER_FILE, LEDGER_FILE, LEDGER_DELTA, RUNS_FILE, HISTORY_FILE,
    APPLIED_FILE, STATUS_FILE,
)
