"""The state directory: modes whatever the umask, refusals, no symlink following, the lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.state import (
    CONTROLLER_FILE,
    LEDGER_FILE,
    StateDir,
    StateError,
    StateFileError,
    default_state_dir,
    process_start_ticks,
)


def test_created_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        sd = StateDir(tmp_path / "a" / "state")
        sd.ensure()
        sd.write_json(LEDGER_FILE, {"x": 1})
    finally:
        os.umask(old)
    assert (sd.path.stat().st_mode & 0o777) == 0o700
    assert ((sd.path / LEDGER_FILE).stat().st_mode & 0o777) == 0o600
    assert sd.read_json(LEDGER_FILE) == {"x": 1}


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o775])
def test_refuses_writable_by_others(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "state"
    path.mkdir()
    os.chmod(path, mode)
    with pytest.raises(StateError, match="group- or world-writable"):
        StateDir(path).ensure()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand the directory to another user")
def test_refuses_a_directory_owned_by_another_user(tmp_path: Path) -> None:
    path = tmp_path / "state"
    path.mkdir(mode=0o700)
    os.chown(path, 65534, 65534)
    with pytest.raises(StateError, match="owned by uid 65534"):
        StateDir(path).ensure()


def test_writes_replace_symlinks_instead_of_following_them(tmp_path: Path) -> None:
    sd = StateDir(tmp_path / "state")
    sd.ensure()
    victim = tmp_path / "victim"
    victim.write_text("precious")
    os.symlink(victim, sd.path / LEDGER_FILE)
    with pytest.raises(StateFileError, match="is a symbolic link"):
        sd.read_json(LEDGER_FILE)  # reads do not follow it either
    sd.write_json(LEDGER_FILE, {"cursors": {}})
    assert victim.read_text() == "precious"
    assert not (sd.path / LEDGER_FILE).is_symlink()
    assert json.loads((sd.path / LEDGER_FILE).read_text()) == {"cursors": {}}


def test_second_lock_refused_and_stale_pid_file_ignored(tmp_path: Path) -> None:
    a = StateDir(tmp_path / "state")
    a.ensure()
    a.acquire()
    a.write_json(CONTROLLER_FILE, {"pid": os.getpid(), "start_ticks": process_start_ticks(os.getpid())})
    # Another process sees the lock held and the pid verified.
    probe = subprocess.run(
        [sys.executable, "-c",
         "import sys; from reconciler.state import StateDir; "
         "r = StateDir(sys.argv[1]).find_controller(); print(r.pid if r else 'none')",
         str(a.path)],
        capture_output=True, text=True, check=True,
    )
    assert probe.stdout.strip() == str(os.getpid())
    b = StateDir(a.path)
    # flock is per open file description: a second acquire in this process is refused too.
    with pytest.raises(StateError, match=f"another controller \\(pid {os.getpid()}\\)"):
        b.acquire()
    a.release()
    assert not (a.path / CONTROLLER_FILE).exists()
    # A pid file naming a live process without the lock held is stale: no controller.
    a.write_json(CONTROLLER_FILE, {"pid": os.getpid(), "start_ticks": process_start_ticks(os.getpid())})
    assert StateDir(a.path).find_controller() is None


def test_reused_pid_is_not_the_controller(tmp_path: Path) -> None:
    sd = StateDir(tmp_path / "state")
    sd.ensure()
    sd.acquire()
    ticks = process_start_ticks(os.getpid())
    assert ticks is not None
    sd.write_json(CONTROLLER_FILE, {"pid": os.getpid(), "start_ticks": ticks + 1})
    probe = subprocess.run(
        [sys.executable, "-c",
         "import sys; from reconciler.state import StateDir; "
         "print(StateDir(sys.argv[1]).find_controller())", str(sd.path)],
        capture_output=True, text=True, check=True,
    )
    assert probe.stdout.strip() == "None"
    sd.release()


def test_default_state_dir(tmp_path: Path) -> None:
    assert default_state_dir({"RECONCILER_STATE_DIR": "/x/y"}) == Path("/x/y")
    if os.geteuid() == 0:
        assert default_state_dir({}) == Path("/var/lib/reconciler")
    else:
        assert default_state_dir({"XDG_STATE_HOME": "/s"}) == Path("/s/reconciler")



def test_a_prepared_temp_file_is_used_by_the_next_write(tmp_path) -> None:
    sd = StateDir(tmp_path / "state")
    sd.ensure()
    old = os.umask(0o077)
    try:
        sd.prepare("x.json")
    finally:
        os.umask(old)
    temps = [p.name for p in sd.path.iterdir() if p.name.endswith(".tmp")]
    assert temps == [f".x.json.{os.getpid()}.tmp"]
    sd.write_json("x.json", {"a": 1}, sync=False)
    assert json.loads((sd.path / "x.json").read_text()) == {"a": 1}
    assert oct((sd.path / "x.json").stat().st_mode & 0o777) == oct(0o600)
    assert not [p for p in sd.path.iterdir() if p.name.endswith(".tmp")]
    sd.prepare("x.json")
    sd.release()  # an unused prepared file goes with the controller
    assert not [p for p in sd.path.iterdir() if p.name.endswith(".tmp")]


def test_temp_files_of_a_crashed_controller_are_removed(tmp_path) -> None:
    sd = StateDir(tmp_path / "state")
    sd.ensure()
    (sd.path / "history").mkdir(mode=0o700)
    stale = [sd.path / ".ledger.json.99999.tmp", sd.path / "history" / ".a.json.99999.tmp"]
    for p in stale:
        p.write_text("{")
    keep = sd.path / "ledger.json"
    keep.write_text("{}")
    sd.remove_stale_temps()
    assert not any(p.exists() for p in stale)
    assert keep.exists()
