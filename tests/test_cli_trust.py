"""`reload`, `stop` and `run` trust a state directory only when nobody else could have
forged it, and signal a pid only when that pid holds the controller lock.

The "controller" here is a real `sleep`: a process that took the lock of the state
directory and then exec'd `sleep` (keeping its pid, its start time and the lock), recorded
in controller.json as a controller records itself. In a trusted directory `reload` kills it
(SIGHUP); every refusal below must leave it alive.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from controller_harness import cli

from reconciler.state import CONTROLLER_FILE, StateDir, process_start_ticks

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (another user)")

# Lock the state directory, record this pid, then become `sleep 60` with the lock held.
LOCKED_SLEEP = textwrap.dedent(
    """\
    import fcntl, os, sys
    from reconciler.state import CONTROLLER_FILE, LOCK_FILE, StateDir, process_start_ticks
    state = sys.argv[1]
    fd = os.open(os.path.join(state, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.set_inheritable(fd, True)
    StateDir(state).write_json(CONTROLLER_FILE, {
        "pid": os.getpid(), "start_ticks": process_start_ticks(os.getpid()), "spec_dir": "/x"})
    os.execvp("sleep", ["sleep", "60"])
    """
)

COMMANDS = [["reload"], ["stop", "--timeout", "1"], ["run", "job"]]


def _wait(check, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


class Controller:
    """A `sleep` that holds the lock of `state` and is recorded there."""

    def __init__(self, state: Path) -> None:
        self.state = state
        StateDir(state).ensure()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LOCKED_SLEEP, str(state)], stdin=subprocess.DEVNULL
        )
        assert _wait(lambda: self._recorded() and self._slept()), "the sleep did not start"

    def _recorded(self) -> bool:
        return (self.state / CONTROLLER_FILE).exists()

    def _slept(self) -> bool:
        try:
            return Path(f"/proc/{self.proc.pid}/comm").read_text().strip() == "sleep"
        except OSError:
            return False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.alive():
            self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="module")
def other_user() -> Iterator[int]:
    name = f"rtrust{os.getpid() % 100000}"
    subprocess.run(["useradd", "-M", "-d", "/nonexistent", "-s", "/bin/false", name],
                   check=True, timeout=30)
    try:
        import pwd

        yield pwd.getpwnam(name).pw_uid
    finally:
        subprocess.run(["userdel", name], check=False, timeout=30)


@pytest.fixture
def base() -> Iterator[Path]:
    # Below /tmp itself (sticky, root's): its own parents are then trusted.
    path = Path(tempfile.mkdtemp(prefix="rtrust-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path)


@pytest.fixture
def make() -> Iterator[list[Controller]]:
    made: list[Controller] = []
    yield made
    for c in made:
        c.close()


def _refused(state: Path, command: list[str], c: Controller, why: str) -> None:
    r = cli(*command, "--state-dir", state, timeout=30)
    assert r.returncode == 1, r.stdout
    assert why in r.stderr
    time.sleep(0.3)
    assert c.alive(), "the recorded process was signalled"


def test_a_trusted_directory_is_signalled(base: Path, make: list[Controller]) -> None:
    # The positive control: everything below holds, so the refusals are the checks'.
    make.append(c := Controller(base / "state"))
    r = cli("reload", "--state-dir", c.state, timeout=30)
    assert r.returncode == 0, r.stderr
    assert _wait(lambda: not c.alive())  # sleep dies of SIGHUP


def test_a_sticky_world_writable_parent_of_root_is_fine(base: Path, make: list[Controller]) -> None:
    os.chmod(base, 0o1777)
    make.append(c := Controller(base / "state"))
    assert cli("reload", "--state-dir", c.state, timeout=30).returncode == 0
    assert _wait(lambda: not c.alive())


@pytest.mark.parametrize("command", COMMANDS)
def test_a_state_dir_owned_by_another_user_is_refused(
    base: Path, make: list[Controller], other_user: int, command: list[str]
) -> None:
    make.append(c := Controller(base / "state"))
    os.chown(c.state, other_user, -1)
    _refused(c.state, command, c, f"is owned by uid {other_user}")


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777])
def test_a_writable_state_dir_is_refused(
    base: Path, make: list[Controller], command: list[str], mode: int
) -> None:
    make.append(c := Controller(base / "state"))
    os.chmod(c.state, mode)
    _refused(c.state, command, c, "group- or world-writable")


@pytest.mark.parametrize("command", COMMANDS)
def test_a_world_writable_parent_without_sticky_bit_is_refused(
    base: Path, make: list[Controller], command: list[str]
) -> None:
    make.append(c := Controller(base / "open" / "state"))
    os.chmod(base / "open", 0o777)
    _refused(c.state, command, c, f"{base / 'open'} lets other users rename")


@pytest.mark.parametrize("command", COMMANDS)
def test_a_parent_owned_by_another_user_is_refused(
    base: Path, make: list[Controller], other_user: int, command: list[str]
) -> None:
    # Its owner can rename the state directory away and put a forged one in its place,
    # even with the sticky bit.
    make.append(c := Controller(base / "theirs" / "state"))
    os.chown(base / "theirs", other_user, -1)
    os.chmod(base / "theirs", 0o1777)
    _refused(c.state, command, c, f"{base / 'theirs'} lets other users rename")


def test_a_grandparent_counts_too(base: Path, make: list[Controller]) -> None:
    make.append(c := Controller(base / "open" / "deep" / "state"))
    os.chmod(base / "open", 0o777)
    _refused(c.state, ["reload"], c, f"{base / 'open'} lets other users rename")


def test_a_symlink_in_an_open_folder_is_refused(base: Path, make: list[Controller]) -> None:
    # The state directory itself is fine, but the link that names it lies where anyone
    # could point it elsewhere.
    make.append(c := Controller(base / "state"))
    (base / "open").mkdir(mode=0o777)
    os.chmod(base / "open", 0o777)
    os.symlink(c.state, base / "open" / "link")
    _refused(base / "open" / "link", ["reload"], c, f"{base / 'open'} lets other users rename")


@pytest.mark.parametrize("command", COMMANDS)
def test_a_recorded_pid_that_does_not_hold_the_lock_is_never_signalled(
    base: Path, make: list[Controller], command: list[str]
) -> None:
    # The lock is held (by the real holder) and controller.json names a live `sleep`
    # with its true start time: only the lock holder may be signalled, so nobody is.
    make.append(holder := Controller(base / "state"))
    other = subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL)
    try:
        StateDir(holder.state).write_json(
            CONTROLLER_FILE,
            {"pid": other.pid, "start_ticks": process_start_ticks(other.pid), "spec_dir": "/x"},
        )
        r = cli(*command, "--state-dir", holder.state, timeout=30)
        assert r.returncode == 1
        assert "no controller is running" in r.stderr
        time.sleep(0.3)
        assert other.poll() is None, "a pid that does not hold the lock was signalled"
        assert holder.alive()
    finally:
        other.kill()
        other.wait()
