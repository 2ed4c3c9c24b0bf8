"""`reconciler reload`, `stop` and `run`: only the verified controller is ever signalled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from controller_harness import ControllerProc, cli, wait_until

from reconciler.state import CONTROLLER_FILE, LOCK_FILE, StateDir, process_start_ticks


def alive(proc: subprocess.Popen[bytes]) -> bool:
    return proc.poll() is None


# A stand-in controller: holds the lock, records itself in controller.json (or, with
# --record-pid/--record-ticks, whatever it is told to), and logs the signals it gets.
FAKE = textwrap.dedent(
    """\
    import fcntl, os, signal, sys, time
    from reconciler.state import CONTROLLER_FILE, LOCK_FILE, StateDir, process_start_ticks
    state, log, on_term = sys.argv[1], sys.argv[2], sys.argv[3]
    pid = int(sys.argv[4]) if len(sys.argv) > 4 else os.getpid()
    ticks = int(sys.argv[5]) if len(sys.argv) > 5 else process_start_ticks(os.getpid())
    sd = StateDir(state)
    sd.ensure()
    fd = os.open(os.path.join(state, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    sd.write_json(CONTROLLER_FILE, {"pid": pid, "start_ticks": ticks, "spec_dir": "/x"})
    def note(signum, frame):
        with open(log, "a") as fh:
            fh.write(signal.Signals(signum).name + "\\n")
        if signum == signal.SIGTERM and on_term == "exit":
            sys.exit(0)
    signal.signal(signal.SIGHUP, note)
    signal.signal(signal.SIGTERM, note)
    print("ready", flush=True)
    while True:
        time.sleep(0.05)
    """
)


class Fake:
    def __init__(self, tmp: Path, on_term: str = "exit", *record: int) -> None:
        self.state = tmp / "state"
        self.log = tmp / "signals.log"
        self.log.touch()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", FAKE, str(self.state), str(self.log), on_term,
             *map(str, record)],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == b"ready"

    def signals(self) -> list[str]:
        return self.log.read_text().split()

    def close(self) -> None:
        if alive(self.proc):
            self.proc.kill()
        self.proc.wait()


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


COMMANDS = [["reload"], ["stop", "--timeout", "1"], ["run", "job"]]


@pytest.mark.parametrize("command", COMMANDS)
def test_no_controller(tmp_path: Path, command: list[str]) -> None:
    r = cli(*command, "--state-dir", tmp_path / "state")
    assert r.returncode == 1
    assert f"no controller is running for state directory {tmp_path / 'state'}" in r.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_stale_pid_file_without_lock_is_never_signalled(
    tmp_path: Path, sleeper: subprocess.Popen[bytes], command: list[str]
) -> None:
    # The pid file names a live process with its true start time, but no lock is held:
    # the controller that wrote it is gone.
    sd = StateDir(tmp_path / "state")
    sd.ensure()
    (sd.path / LOCK_FILE).touch()
    sd.write_json(
        CONTROLLER_FILE, {"pid": sleeper.pid, "start_ticks": process_start_ticks(sleeper.pid)}
    )
    r = cli(*command, "--state-dir", sd.path)
    assert r.returncode == 1
    assert "no controller is running" in r.stderr
    time.sleep(0.2)
    assert alive(sleeper)


@pytest.mark.parametrize("command", COMMANDS)
def test_reused_pid_is_never_signalled(
    tmp_path: Path, sleeper: subprocess.Popen[bytes], command: list[str]
) -> None:
    # The lock is held (by some process), but the pid file names a process whose start
    # time does not match: the pid was reused.
    ticks = process_start_ticks(sleeper.pid)
    assert ticks is not None
    fake = Fake(tmp_path, "exit", sleeper.pid, ticks + 1)
    try:
        r = cli(*command, "--state-dir", fake.state)
        assert r.returncode == 1
        assert "no controller is running" in r.stderr
        time.sleep(0.2)
        assert alive(sleeper)
        assert alive(fake.proc) and fake.signals() == []
    finally:
        fake.close()


def test_lock_holder_with_wrong_start_time_is_never_signalled(tmp_path: Path) -> None:
    fake = Fake(tmp_path, "exit", 0, 0)
    try:
        # controller.json names pid 0: invalid. Then the lock holder's own pid, wrong ticks.
        assert cli("reload", "--state-dir", fake.state).returncode == 1
        sd = StateDir(fake.state)
        sd.write_json(CONTROLLER_FILE, {"pid": fake.proc.pid, "start_ticks": 1})
        assert cli("stop", "--timeout", "1", "--state-dir", fake.state).returncode == 1
        time.sleep(0.2)
        assert alive(fake.proc) and fake.signals() == []
    finally:
        fake.close()


def test_reload_sends_sighup(tmp_path: Path) -> None:
    fake = Fake(tmp_path)
    try:
        r = cli("reload", "--state-dir", fake.state)
        assert r.returncode == 0, r.stderr
        assert f"pid {fake.proc.pid}" in r.stdout
        deadline = time.monotonic() + 5
        while fake.signals() != ["SIGHUP"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fake.signals() == ["SIGHUP"]
        assert alive(fake.proc)
    finally:
        fake.close()


def test_stop_waits_for_exit(tmp_path: Path) -> None:
    fake = Fake(tmp_path, "exit")
    try:
        r = cli("stop", "--state-dir", fake.state)
        assert r.returncode == 0, r.stderr
        assert "has stopped" in r.stdout
        assert fake.proc.wait(5) == 0
        assert fake.signals() == ["SIGTERM"]
    finally:
        fake.close()


def test_stop_gives_up_after_timeout(tmp_path: Path) -> None:
    fake = Fake(tmp_path, "ignore")
    try:
        started = time.monotonic()
        r = cli("stop", "--timeout", "1", "--state-dir", fake.state)
        assert r.returncode == 1
        assert 1 <= time.monotonic() - started < 10
        assert "did not exit within 1s" in r.stderr
        assert fake.signals() == ["SIGTERM"] and alive(fake.proc)
    finally:
        fake.close()


def test_run_without_control_socket(tmp_path: Path) -> None:
    fake = Fake(tmp_path)
    try:
        r = cli("run", "job", "--state-dir", fake.state)
        assert r.returncode == 1
        assert "cannot reach the controller" in r.stderr
        assert fake.signals() == []
    finally:
        fake.close()


# --- a real controller -----------------------------------------------------------------

SPECS = """\
apiVersion: reconciler/v1
kind: Task
metadata: {name: job}
spec:
  schedule: "0 0 1 1 *"
  command: ["sleep", "30"]
  terminationGracePeriodSeconds: 1
---
apiVersion: reconciler/v1
kind: Task
metadata: {name: daemon}
spec:
  type: daemon
  command: ["sleep", "300"]
  terminationGracePeriodSeconds: 1
"""


def status(state: Path) -> dict[str, object] | None:
    r = cli("status", "--state-dir", state, "-o", "json")
    return json.loads(r.stdout) if r.returncode == 0 else None


def test_real_controller(tmp_path: Path) -> None:
    spec, state = tmp_path / "specs", tmp_path / "state"
    spec.mkdir()
    (spec / "tasks.yaml").write_text(SPECS)
    proc = ControllerProc(spec, state).proc  # the same flags as every controller test
    try:
        wait_until(lambda: (s := status(state)) is not None and bool(s["running"]))

        r = cli("run", "job", "--state-dir", state)
        assert r.returncode == 0, r.stderr
        assert "Started job: run job-" in r.stdout
        # maxConcurrency 1 still holds while that run is alive.
        r = cli("run", "job", "--state-dir", state)
        assert r.returncode == 1 and "max-concurrency" in r.stderr
        r = cli("run", "daemon", "--state-dir", state)
        assert r.returncode == 1 and "daemon" in r.stderr
        r = cli("run", "nope", "--state-dir", state)
        assert r.returncode == 1 and "nope not started" in r.stderr

        (spec / "more.yaml").write_text(
            "apiVersion: reconciler/v1\nkind: Task\nmetadata: {name: more}\n"
            "spec: {schedule: '@daily', command: ['true']}\n"
        )
        r = cli("reload", "--state-dir", state)
        assert r.returncode == 0, r.stderr

        def has_more() -> bool:
            s = status(state)
            return s is not None and any(t["name"] == "more" for t in s["tasks"])  # type: ignore[attr-defined]

        wait_until(has_more)

        r = cli("stop", "--state-dir", state, "--timeout", "20")
        assert r.returncode == 0, r.stderr
        assert proc.wait(5) == 0
        assert cli("status", "--state-dir", state).returncode == 1
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
