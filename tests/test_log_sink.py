"""A slow or stopped reader of the controller's stdout never stops the clock.

Real controllers (`python -m reconciler apply`) whose stdout is a real pipe, read by a
thread of this test that can be paused (the reader is "stopped") or throttled to a rate.
Every-second tasks append `PID EPOCH` to a file, so their runs are seen without the log.
"""

from __future__ import annotations

import fcntl
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.controller_harness import write_task, zombies_of

REPO = Path(__file__).resolve().parents[1]


class PacedReader:
    """Reads a pipe at `rate` bytes/s (None: as fast as possible; 0: not at all)."""

    def __init__(self, fd: int, rate: float | None) -> None:
        self.fd = fd
        self.rate = rate
        self.data = bytearray()
        self.lock = threading.Lock()
        self.eof = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            rate = self.rate
            if rate == 0:
                time.sleep(0.05)
                continue
            chunk = os.read(self.fd, 4096 if rate is not None else 1 << 16)
            if not chunk:
                self.eof.set()
                return
            with self.lock:
                self.data.extend(chunk)
            if rate is not None:
                time.sleep(len(chunk) / rate)

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            text = bytes(self.data).decode("utf-8", "replace")
        lines = text.split("\n")[:-1]  # the last piece may be a partial line
        return [json.loads(line) for line in lines]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(
    tmp_path: Path, rate: float | None, pipe_size: int | None = None, http: int | None = None
) -> tuple[subprocess.Popen[bytes], PacedReader]:
    r, w = os.pipe()
    if pipe_size is not None:
        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, pipe_size)
    args = [sys.executable, "-m", "reconciler", "apply", str(tmp_path / "specs")]
    args += ["--state-dir", str(tmp_path / "state"), "--hostname", "test-host"]
    if http is not None:
        args += ["--http", f"127.0.0.1:{http}"]
    proc = subprocess.Popen(args, stdout=w, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    os.close(w)
    return proc, PacedReader(r, rate)


def ticker(spec: Path, name: str, out: Path) -> None:
    """An every-second task that appends `PID EPOCH` (its own pid is the run's pid)."""
    write_task(
        spec, name, {"schedule": "* * * * * *", "command": f"echo $$ $(date +%s.%N) >> {out}"}
    )


def stamps(path: Path) -> list[tuple[int, float]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        pid, when = line.split()
        rows.append((int(pid), float(when)))
    return rows


def stop(proc: subprocess.Popen[bytes], reader: PacedReader) -> str:
    reader.rate = None
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    assert reader.eof.wait(30)
    assert proc.stderr is not None
    return proc.stderr.read().decode()


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    d = tmp_path / "specs"
    d.mkdir()
    os.chmod(d, 0o755)
    return d


@pytest.mark.slow
def test_stopped_reader_does_not_stop_the_clock(tmp_path: Path, spec: Path) -> None:
    """As `reconciler apply | cat` with the `cat` stopped for 20 s."""
    marks = tmp_path / "ticks"
    ticker(spec, "tick", marks)
    # Some output every second, so the (small) pipe is full within a few seconds.
    # 2,000 lines a second: past the queue's share for output (16,384 lines) within 20 s.
    chatty = "seq -f chatter-line-%g-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx 1 2000"
    write_task(spec, "chatty", {"schedule": "* * * * * *", "command": chatty})
    proc, reader = start(tmp_path, rate=None, pipe_size=4096)
    try:
        deadline = time.monotonic() + 30
        while not stamps(marks) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert stamps(marks), "the ticker never ran"
        reader.rate = 0  # the reader stops
        time.sleep(3)  # the pipe fills
        t0 = time.time()
        zombie_counts = []
        while time.time() - t0 < 20:
            time.sleep(1)
            zombie_counts.append(len(zombies_of(proc.pid)))
        t1 = time.time()
        during = [when for _, when in stamps(marks) if t0 <= when < t1]
        # 20 seconds: an every-second task runs ~20 times; generous for a busy machine.
        assert len(during) >= 15, f"only {len(during)} runs in 20 s with stdout's reader stopped"
        # Finished runs are reaped while nobody reads the log.
        assert max(zombie_counts) <= 3, zombie_counts
        assert proc.poll() is None
    finally:
        err = stop(proc, reader)
    events = reader.events()
    names = [e["event"] for e in events]
    assert names[-1] == "controller.stopped", (names[-5:], err)
    # The lifecycle of every tick run that started is in the log.
    started = {e["run_id"] for e in events if e["event"] == "run.started" and e["task"] == "tick"}
    exited = {e["run_id"] for e in events if e["event"] == "run.exited" and e["task"] == "tick"}
    assert len(started) >= 15 and started == exited
    assert "log.dropped" in names


FLOOD = "while :; do head -c 200000 /dev/zero | tr '\\0' x | fold -w 200; sleep 0.05; done"


@pytest.mark.slow
def test_flood_into_slow_reader_misses_no_seconds(tmp_path: Path, spec: Path) -> None:
    """One task floods output into a 40 KB/s reader; other tasks keep every second."""
    port = free_port()
    marks = tmp_path / "ticks"
    ticker(spec, "tick", marks)
    write_task(spec, "flood", {"type": "daemon", "command": FLOOD})
    proc, reader = start(tmp_path, rate=40_000, http=port)
    try:
        deadline = time.monotonic() + 30
        while not stamps(marks) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert stamps(marks), "the ticker never ran"
        t0 = time.time()
        time.sleep(15)
        t1 = time.time()
        seconds = {int(when) for _, when in stamps(marks) if t0 <= when < t1}
        assert len(seconds) >= 13, f"runs in only {len(seconds)} of 15 seconds"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            metrics = resp.read().decode()
        assert proc.poll() is None
    finally:
        err = stop(proc, reader)
    dropped = [
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("reconciler_log_lines_dropped_total")
    ]
    assert sum(dropped) > 0, metrics
    events = reader.events()
    names = [e["event"] for e in events]
    reports = [e for e in events if e["event"] == "log.dropped"]
    assert reports and all(r["dropped"] > 0 for r in reports), err
    assert not [e for e in events if e["event"] == "run.skipped" and e["task"] == "tick"]
    # Output was dropped, lifecycle events were not: every tick run has both ends.
    ticks = {pid for pid, _ in stamps(marks)}
    started = {e["run_id"]: e["pid"] for e in events if e["event"] == "run.started"}
    tick_started = {r for r, pid in started.items() if pid in ticks}
    exited = {e["run_id"] for e in events if e["event"] == "run.exited"}
    assert len(tick_started) == len(ticks)
    assert tick_started <= exited
    assert names[-1] == "controller.stopped"


# --- the sink in one process: a real pipe nobody reads -------------------------------------


@pytest.fixture
def restore_logger() -> Iterator[None]:
    logger = logging.getLogger("reconciler")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)
    logger.propagate = propagate


def test_unread_pipe_never_blocks_and_output_goes_first(restore_logger: None) -> None:
    from reconciler.obs import logs

    r, w = os.pipe()
    stream = os.fdopen(w, "w", encoding="utf-8")
    logs.setup_logging("json", stream)
    before = logs.dropped_lines_by_kind()
    start = time.monotonic()
    for i in range(40_000):  # ~6 MB, 40,000 lines: far past the pipe and the output share
        logs.log_event("run.output", f"{i:06d} " + "x" * 150, task="flood", stream="stdout")
        if i % 100 == 0:
            logs.log_event("run.started", "Run started.", task="tick", run_id=f"tick-{i}")
    elapsed = time.monotonic() - start
    assert elapsed < 10, f"producers waited on the pipe: {elapsed:.1f} s"
    after = logs.dropped_lines_by_kind()
    assert after["output"] - before["output"] > 10_000
    assert after["event"] == before["event"]  # lifecycle events all queued
    # The reader wakes up: everything queued comes out, in order, and the gap is told.
    reader = PacedReader(r, None)
    assert logs.flush_logs(30)
    logs.setup_logging("json", io.StringIO())
    stream.close()
    assert reader.eof.wait(30)
    events = reader.events()
    started = [e["run_id"] for e in events if e["event"] == "run.started"]
    assert started == [f"tick-{i}" for i in range(0, 40_000, 100)]
    outputs = [int(e["message"].split()[0]) for e in events if e["event"] == "run.output"]
    assert outputs == sorted(outputs)
    reports = [e for e in events if e["event"] == "log.dropped"]
    assert len(reports) == 1 and reports[0]["level"] == "warning"
    assert reports[0]["output"] == after["output"] - before["output"]
    assert reports[0]["events"] == 0 and reports[0]["dropped"] == reports[0]["output"]
    assert len(outputs) + reports[0]["output"] == 40_000
    os.close(r)


def test_text_format_through_the_writer(restore_logger: None) -> None:
    from reconciler.obs import logs

    r, w = os.pipe()
    stream = os.fdopen(w, "w", encoding="ascii")
    logs.setup_logging("text", stream)
    logs.log_event("run.output", "gr\u00fc\u00df\nzwei", task="t", run_id="r", stream="stdout")
    logs.log_event("run.exited", "Run succeeded.", task="t", run_id="r", exit_code=0)
    assert logs.flush_logs(10)
    logs.setup_logging("json", io.StringIO())
    stream.close()
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    first, second, end = data.decode("ascii").split("\n")
    assert end == ""
    assert " info  run.output task=t run_id=r stream=stdout gr\\xfc\\xdf\\nzwei" in first
    assert " info  run.exited task=t run_id=r exit_code=0 Run succeeded." in second


def test_exit_flushes_pending_lines_and_is_bounded_with_a_stopped_reader() -> None:
    code = (
        "from reconciler.obs import log_event, setup_logging\n"
        "setup_logging()\n"
        "for i in range(3000):\n"
        "    log_event('run.started', 'Run started.', task='t', run_id=f'r{i}')\n"
        "log_event('controller.stopped', 'Controller stopped.', runs_left=0)\n"
    )
    # A reader: every line arrives although nobody flushed before the exit.
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, timeout=60, cwd=REPO, check=True
    )
    lines = done.stdout.decode().splitlines()
    assert len(lines) == 3001 and json.loads(lines[-1])["event"] == "controller.stopped"
    # No reader at all (the pipe is never read): the exit waits ~2 s, not forever.
    r, w = os.pipe()
    try:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=w, cwd=REPO)
        os.close(w)
        start = time.monotonic()
        assert proc.wait(30) == 0
        assert time.monotonic() - start < 15
    finally:
        os.close(r)
