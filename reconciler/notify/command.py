"""A notify command: run with the run record in its environment, output lines on stdin.

The controller's Supervisor reaps every child of the process (``waitpid(-1)``), so a
command's exit status cannot come from waiting for it: the reaper may take it first.
Instead the command runs under ``/bin/sh``, its parent, which waits for it and writes its
exit status to a pipe we read; whoever reaps the shell, the status has already arrived.
We never wait by pid number (a pid the Supervisor reaped may be reused by one of its
runs): the shell is reaped, if nobody did yet, through a pidfd opened before the shell
may exit (it first reads one line of stdin, which we write only once the pidfd is open).
No change to the Supervisor was needed; its rule "no other code waits for children" holds.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence

# Wait for the gate line, run "$@" with stdin left to it, output discarded, report $?.
_SCRIPT = 'read -r _ || exit 125; "$@" >/dev/null 2>&1; echo "$?"'
TIMEOUT_S = 10.0


class CommandFailed(Exception):
    """A command that could not run, exited non-zero or was killed at its time-out."""


def run_command(
    argv: Sequence[str],
    env: Mapping[str, str],
    stdin: bytes = b"",
    timeout: float = TIMEOUT_S,
) -> None:
    """Run ``argv`` with ``env`` added to the controller's environment and ``stdin`` on its
    standard input; raise :class:`CommandFailed` unless it exits 0 within ``timeout``
    (then its process group is killed)."""
    full_env = dict(os.environ)
    full_env.update(env)
    try:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", _SCRIPT, "reconciler-notify", *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=full_env,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        raise CommandFailed(f"cannot start /bin/sh: {exc.strerror or exc}") from exc
    pidfd = os.pidfd_open(proc.pid)  # the shell cannot have exited: it waits for the gate
    try:
        status = _talk(proc, pidfd, b"\n" + stdin, time.monotonic() + timeout)
    finally:
        _reap(proc, pidfd)
    if status is None:
        raise CommandFailed(f"timed out after {timeout:g}s; killed")
    if status != 0:
        if status == 127:
            raise CommandFailed("exited with code 127 (command not found?)")
        if status > 128:
            raise CommandFailed(f"exited with code {status} (killed by signal {status - 128}?)")
        raise CommandFailed(f"exited with code {status}")


def _talk(proc: subprocess.Popen[bytes], pidfd: int, data: bytes, deadline: float) -> int | None:
    """Write ``data`` to stdin and read the status line; None at the deadline (killed)."""
    assert proc.stdin is not None and proc.stdout is not None
    out_fd = proc.stdout.fileno()
    stdin_fd = proc.stdin.fileno()
    os.set_blocking(stdin_fd, False)
    in_fd: int | None = stdin_fd
    got = b""
    with selectors.DefaultSelector() as sel:
        sel.register(out_fd, selectors.EVENT_READ)
        sel.register(stdin_fd, selectors.EVENT_WRITE)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                _kill(proc, pidfd)
                return None
            for key, _ in sel.select(left):
                if key.fd == out_fd:
                    chunk = os.read(out_fd, 4096)
                    if not chunk:
                        text = got.decode("ascii", "replace").strip().splitlines()
                        return int(text[-1]) if text and text[-1].isdigit() else 126
                    got = (got + chunk)[-64:]
                elif in_fd is not None:
                    try:
                        sent = os.write(in_fd, data[:65536])
                        data = data[sent:]
                    except (BrokenPipeError, ConnectionResetError):
                        data = b""  # the command does not read its stdin: fine
                    except BlockingIOError:
                        continue
                    if not data:
                        sel.unregister(in_fd)
                        proc.stdin.close()
                        in_fd = None


def _alive(pidfd: int) -> bool:
    with selectors.DefaultSelector() as sel:
        sel.register(pidfd, selectors.EVENT_READ)
        return not sel.select(0)


def _kill(proc: subprocess.Popen[bytes], pidfd: int) -> None:
    # While the shell lives its pid is its group's id, so killpg cannot hit a stranger.
    if _alive(pidfd):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)


def _reap(proc: subprocess.Popen[bytes], pidfd: int) -> None:
    """Collect the shell unless the Supervisor did; never wait by pid number."""
    try:
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        with selectors.DefaultSelector() as sel:
            sel.register(pidfd, selectors.EVENT_READ)
            if not sel.select(2.0):
                _kill(proc, pidfd)
                sel.select(1.0)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)
    finally:
        os.close(pidfd)
        proc.returncode = -1  # keeps Popen from ever waiting for this pid (see the top)
