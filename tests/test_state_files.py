"""State files that are not what they should be: a FIFO, a symlink, a huge or damaged file.

Nothing may hang on them (every command here runs with a timeout, so a regression fails
instead of hanging), and what is wrong is said, naming the file.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from controller_harness import ControllerProc, cli, write_task

from reconciler.state import (
    APPLIED_FILE,
    CONTROLLER_FILE,
    HISTORY_DIR,
    LEDGER_DELTA,
    LEDGER_FILE,
    LOCK_FILE,
    RUNS_FILE,
    STATUS_FILE,
    DamagedStateFile,
    StateDir,
    StateFileError,
)

# Holds the lock of a state directory and records itself there, as a controller does.
HOLDER = textwrap.dedent(
    """\
    import fcntl, os, sys, time
    from reconciler.state import CONTROLLER_FILE, LOCK_FILE, StateDir, process_start_ticks
    sd = StateDir(sys.argv[1])
    sd.ensure()
    fd = os.open(os.path.join(sys.argv[1], LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    sd.write_json(CONTROLLER_FILE, {"pid": os.getpid(),
                                    "start_ticks": process_start_ticks(os.getpid()),
                                    "spec_dir": "/x"})
    sd.write_json("status.json", {"errors": []})
    sd.write_json("applied.json", {})
    print("ready", flush=True)
    time.sleep(120)
    """
)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[Path]:
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(state)], stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        yield state
    finally:
        proc.kill()
        proc.wait()


# --- reading one file ----------------------------------------------------------------------


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    sd = StateDir(tmp_path / "state")
    sd.ensure()
    os.mkfifo(sd.path / LEDGER_FILE, 0o600)
    # In a child with a timeout: a blocking open of a FIFO without a writer never returns.
    probe = subprocess.run(
        [sys.executable, "-c",
         "import sys\nfrom reconciler.state import StateDir, StateFileError\n"
         "try:\n    StateDir(sys.argv[1]).read_json('ledger.json')\n"
         "except StateFileError as exc:\n    print(exc)\n",
         str(sd.path)],
        capture_output=True, text=True, timeout=20,
    )
    assert probe.stdout.strip() == (
        f"state file {sd.path / LEDGER_FILE} is a FIFO, not a regular file; remove it"
    )


def test_a_symlink_is_not_read(tmp_path: Path) -> None:
    sd = StateDir(tmp_path / "state")
    sd.ensure()
    (tmp_path / "elsewhere").write_text('{"cursors": {"a": 1}}')
    os.symlink(tmp_path / "elsewhere", sd.path / RUNS_FILE)
    with pytest.raises(StateFileError, match=f"{sd.path / RUNS_FILE} is a symbolic link"):
        sd.read_json(RUNS_FILE)


def test_a_directory_or_a_device_is_not_read(tmp_path: Path) -> None:
    sd = StateDir(tmp_path / "state")
    sd.ensure()
    os.mkdir(sd.path / STATUS_FILE)
    with pytest.raises(StateFileError, match="is a directory, not a regular file"):
        sd.read_json(STATUS_FILE)
    os.mknod(sd.path / APPLIED_FILE, 0o600 | 0o020000, os.makedev(1, 5))  # /dev/zero
    with pytest.raises(StateFileError, match="is a character device, not a regular file"):
        sd.read_json(APPLIED_FILE)


def test_size_is_bounded(tmp_path: Path) -> None:
    sd = StateDir(tmp_path / "state")
    sd.ensure()
    with open(sd.path / RUNS_FILE, "wb") as fh:
        fh.truncate(200 * 1024 * 1024)  # sparse: costs no disk
    with pytest.raises(StateFileError, match=r"is 209715200 bytes, more than the 67108864"):
        sd.read_json(RUNS_FILE)


def test_damage_is_told_apart_from_absence(tmp_path: Path) -> None:
    sd = StateDir(tmp_path / "state")
    sd.ensure()
    assert sd.load_json(LEDGER_FILE) is None
    (sd.path / LEDGER_FILE).write_text('{"cursors": ')
    with pytest.raises(DamagedStateFile, match=f"state file {sd.path / LEDGER_FILE} is damaged"):
        sd.load_json(LEDGER_FILE)
    assert sd.read_json(LEDGER_FILE) is None  # the lenient reader: as good as absent
    (sd.path / LEDGER_FILE).write_text("[" * 100_000)  # deeper than the parser goes
    with pytest.raises(DamagedStateFile):
        sd.load_json(LEDGER_FILE)


# --- the commands --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", [LEDGER_FILE, LEDGER_DELTA, RUNS_FILE, STATUS_FILE, APPLIED_FILE, CONTROLLER_FILE]
)
def test_status_says_what_is_wrong_instead_of_hanging(holder: Path, name: str) -> None:
    os.unlink(holder / name) if (holder / name).exists() else None
    os.mkfifo(holder / name, 0o600)
    r = cli("status", "--state-dir", holder, timeout=20)
    assert r.returncode == 1
    assert f"state file {holder / name} is a FIFO, not a regular file" in r.stderr


def test_a_fifo_lock_file_does_not_hang_status(tmp_path: Path) -> None:
    sd = StateDir(tmp_path / "state")
    sd.ensure()
    os.mkfifo(sd.path / LOCK_FILE, 0o600)
    r = cli("status", "--state-dir", sd.path, timeout=20)
    assert r.returncode == 1
    assert f"state file {sd.path / LOCK_FILE} is a FIFO" in r.stderr


@pytest.mark.parametrize("name", [APPLIED_FILE, RUNS_FILE, LEDGER_FILE])
def test_diff_says_what_is_wrong_instead_of_hanging(
    holder: Path, tmp_path: Path, name: str
) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    write_task(specs, "job", {"schedule": "@daily", "command": ["true"]})
    os.unlink(holder / name) if (holder / name).exists() else None
    os.mkfifo(holder / name, 0o600)
    r = cli("diff", specs, "--state-dir", holder, timeout=20)
    assert r.returncode == 2
    assert f"state file {holder / name} is a FIFO" in r.stderr


@pytest.mark.parametrize("name", [LEDGER_FILE, LEDGER_DELTA, RUNS_FILE, f"{HISTORY_DIR}/job.json"])
def test_apply_refuses_a_fifo_in_the_state_directory(tmp_path: Path, name: str) -> None:
    specs, state = tmp_path / "specs", tmp_path / "state"
    specs.mkdir()
    write_task(specs, "job", {"schedule": "@daily", "command": ["true"]})
    StateDir(state).ensure()
    (state / HISTORY_DIR).mkdir(mode=0o700)
    os.mkfifo(state / name, 0o600)
    c = ControllerProc(specs, state)
    try:
        code = c.proc.wait(20)
    finally:
        c.kill()
    assert code == 1
    assert f"state file {state / name} is a FIFO, not a regular file; remove it" in c.stderr
    assert c.find("controller.failed")
    assert not c.find("spec.applied")  # nothing was started
    assert not (state / CONTROLLER_FILE).exists()
    # The lock was let go: a controller can start once the FIFO is gone.
    fd = os.open(state / LOCK_FILE, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)


def test_apply_refuses_a_symlinked_ledger(tmp_path: Path) -> None:
    specs, state = tmp_path / "specs", tmp_path / "state"
    specs.mkdir()
    StateDir(state).ensure()
    (tmp_path / "other.json").write_text("{}")
    os.symlink(tmp_path / "other.json", state / LEDGER_FILE)
    c = ControllerProc(specs, state)
    try:
        code = c.proc.wait(20)
    finally:
        c.kill()
    assert code == 1
    assert f"state file {state / LEDGER_FILE} is a symbolic link" in c.stderr


# --- a damaged ledger ------------------------------------------------------------------------


def _controller(specs: Path, state: Path) -> ControllerProc:
    c = ControllerProc(specs, state)
    c.wait_for("spec.applied")
    return c


def test_a_damaged_ledger_is_reported_once_and_kept(tmp_path: Path) -> None:
    specs, state = tmp_path / "specs", tmp_path / "state"
    specs.mkdir()
    write_task(specs, "job", {"schedule": "@daily", "command": ["true"]})
    c = _controller(specs, state)
    assert c.stop(30) == 0
    (state / LEDGER_FILE).write_text('{"cursors": {"job": 17')
    c = _controller(specs, state)
    try:
        found = c.wait_for("state.damaged")
        assert found[0]["level"] == "error"
        assert found[0]["file"] == str(state / LEDGER_FILE)
        assert "damaged" in found[0]["message"]
        # The damaged bytes are kept for a look, and a sound ledger replaces them.
        assert (state / f"{LEDGER_FILE}.damaged").read_text() == '{"cursors": {"job": 17'
    finally:
        assert c.stop(30) == 0
    assert len(c.find("state.damaged")) == 1
    json.loads((state / LEDGER_FILE).read_text())
    c = _controller(specs, state)  # the next start has nothing to report
    try:
        time.sleep(0.5)
        assert c.find("state.damaged") == []
    finally:
        assert c.stop(30) == 0


def test_a_damaged_ledger_never_makes_a_due_time_due_again(tmp_path: Path) -> None:
    # A controller ran `tick` every second; then its ledger was damaged and the clock went
    # back 30 s. The due times it handled (up to the ledger's last write) must not run
    # again; from an empty ledger they would.
    specs, state = tmp_path / "specs", tmp_path / "state"
    specs.mkdir()
    write_task(specs, "tick", {"schedule": "* * * * * *", "command": ["true"]})
    c = _controller(specs, state)
    c.wait_for("run.started", task="tick")
    assert c.stop(30) == 0
    (state / LEDGER_FILE).write_text("not json")
    (state / LEDGER_DELTA).unlink(missing_ok=True)
    ahead = time.time() + 30  # as if written before the clock stepped back 30 s
    os.utime(state / LEDGER_FILE, (ahead, ahead))
    c = _controller(specs, state)
    try:
        c.wait_for("state.damaged")
        time.sleep(3)
        assert c.find("run.started", task="tick") == []
    finally:
        assert c.stop(30) == 0


def test_a_damaged_ledger_delta_is_reported_too(tmp_path: Path) -> None:
    sd = StateDir(tmp_path / "state")
    sd.ensure()
    (sd.path / LEDGER_DELTA).write_text("{")
    with pytest.raises(DamagedStateFile, match="ledger-delta.json is damaged"):
        sd.load_json(LEDGER_DELTA)

