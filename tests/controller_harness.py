"""Start a real `reconciler apply` in temp directories and follow its JSON log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

Event = dict[str, Any]


class ControllerProc:
    def __init__(
        self,
        spec_dir: Path,
        state_dir: Path,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
        wrapper: list[str] | None = None,
        count_only_output_of: str | None = None,
    ) -> None:
        self.spec_dir = spec_dir
        # A flooding task's lines are counted, not kept: millions of them would fill memory.
        self._flood_marker = (
            f'"event":"run.output","task":"{count_only_output_of}"'.encode()
            if count_only_output_of
            else None
        )
        self.flood_lines = 0
        self.state_dir = state_dir
        self.events: list[Event] = []
        self.raw: list[str] = []
        self._cond = threading.Condition()
        args = [
            sys.executable,
            "-m",
            "reconciler",
            "apply",
            str(spec_dir),
            "--state-dir",
            str(state_dir),
            "--log-format",
            "json",
            "--hostname",
            "test-host",
            "--host-ip",
            "10.99.0.1",
            *(extra_args or []),
        ]
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [*(wrapper or []), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=full_env,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._err: list[str] = []
        self._err_reader = threading.Thread(target=self._read_err, daemon=True)
        self._err_reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if self._flood_marker is not None and self._flood_marker in line:
                self.flood_lines += 1
                continue
            text = line.decode("utf-8", "replace").rstrip("\n")
            with self._cond:
                self.raw.append(text)
                try:
                    obj = json.loads(text)
                except ValueError:
                    obj = {"event": "<not json>", "message": text}
                self.events.append(obj)
                self._cond.notify_all()

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._err.append(line.decode("utf-8", "replace"))

    @property
    def stderr(self) -> str:
        return "".join(self._err)

    def find(self, event: str, **match: Any) -> list[Event]:
        with self._cond:
            return [
                e
                for e in self.events
                if e.get("event") == event and all(e.get(k) == v for k, v in match.items())
            ]

    def wait_for(
        self,
        event: str,
        timeout: float = 20.0,
        count: int = 1,
        where: Callable[[Event], bool] | None = None,
        **match: Any,
    ) -> list[Event]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [
                    e
                    for e in self.events
                    if e.get("event") == event
                    and all(e.get(k) == v for k, v in match.items())
                    and (where is None or where(e))
                ]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(
                        f"timed out waiting for {count} x {event} {match}; got {len(found)}.\n"
                        f"exit={self.proc.poll()}\nlast events:\n"
                        + "\n".join(self.raw[-30:])
                        + f"\nstderr:\n{self.stderr[-3000:]}"
                    )
                self._cond.wait(min(left, 0.2))

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._reader.join(5)


def start(
    started: list[ControllerProc], dirs: tuple[Path, Path], *args: str
) -> ControllerProc:
    """Start a controller on `dirs`, remember it for cleanup, wait for its first apply."""
    c = ControllerProc(dirs[0], dirs[1], list(args))
    started.append(c)
    c.wait_for("spec.applied")
    return c


def write_task(
    spec_dir: Path, name: str, spec: dict[str, Any], filename: str | None = None
) -> Path:
    doc = {"apiVersion": "reconciler/v1", "kind": "Task", "metadata": {"name": name}, "spec": spec}
    path = spec_dir / (filename or f"{name}.json")
    tmp = path.with_name("." + path.name + ".new")
    tmp.write_text(json.dumps(doc, indent=2))
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)  # as editors and config managers do: never a half-written file
    return path


def cli(*args: str | Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run one `reconciler` command and capture what it prints."""
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def wait_until(check: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _live_stats() -> Iterator[tuple[int, bytes, int, int]]:
    """(pid, state, ppid, pgid) of every process, from /proc."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                data = fh.read()
        except OSError:
            continue
        rest = data[data.rfind(b")") + 2 :].split()
        yield int(entry), rest[0], int(rest[1]), int(rest[2])


def pids_in_group(pgid: int) -> list[int]:
    return [pid for pid, state, _, group in _live_stats() if state != b"Z" and group == pgid]


def zombies_of(ppid: int) -> list[int]:
    return [pid for pid, state, parent, _ in _live_stats() if state == b"Z" and parent == ppid]
