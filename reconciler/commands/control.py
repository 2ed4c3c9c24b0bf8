"""`reconciler reload`, `stop` and `run NAME`: talk to the running controller.

A pid is signalled only when it is the controller recorded in a trusted state directory:
the directory is this user's or root's, writable by nobody else, in folders nobody else can
rename it from (`StateDir.untrusted`); the recorded pid holds its lock and has the
recorded start time (`StateDir.find_controller`). The pid is pinned with a pidfd and
checked once more before the signal, so a pid reused in between is never hit.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable

from reconciler.commands import output as render
from reconciler.commands.options import add_state_dir, state_dir
from reconciler.commands.status import find
from reconciler.state import (
    CONTROL_SOCKET,
    ControllerRef,
    StateDir,
    StateError,
    process_start_ticks,
)

STOP_TIMEOUT_S = 60.0
POLL_S = 0.1


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "reload",
        help="make the running controller re-read its spec directory now (SIGHUP)",
        description="Send SIGHUP to the controller of the state directory: it re-reads "
        "its spec directory at once. Exit 1 when no controller runs.",
    )
    add_state_dir(p)
    p.set_defaults(func=run_reload)

    p = sub.add_parser(
        "stop",
        help="stop the running controller (SIGTERM) and wait for it to exit",
        description="Send SIGTERM to the controller of the state directory and wait until "
        "it has stopped its runs and exited. Exit 1 when no controller runs or it did not "
        "exit within --timeout.",
    )
    add_state_dir(p)
    p.add_argument("--timeout", type=float, default=STOP_TIMEOUT_S, metavar="SECONDS",
                   help=f"how long to wait for the exit (default {STOP_TIMEOUT_S:g}; 0: do not wait)")
    p.set_defaults(func=run_stop)

    p = sub.add_parser(
        "run",
        help="start one run of a cron task now",
        description="Ask the running controller to start one run of task NAME now "
        "(maxConcurrency still holds). Exit 0 when started, 1 when refused or no "
        "controller runs.",
    )
    p.add_argument("name", metavar="NAME", help="the task")
    p.add_argument(
        "--wait", action="store_true",
        help="stream the run's output (as logs -f) and exit with its exit code (128 + signal "
        "when killed, 1 when it could not start); Ctrl-C stops waiting, not the run",
    )
    add_state_dir(p)
    p.set_defaults(func=run_run)


def _alive(ref: ControllerRef) -> bool:
    return process_start_ticks(ref.pid) == ref.info.get("start_ticks")


def send(ref: ControllerRef, signum: int) -> bool:
    """Signal the verified controller; False when it is gone (never another process)."""
    try:
        fd = os.pidfd_open(ref.pid)
    except ProcessLookupError:
        return False
    except (OSError, AttributeError):
        fd = None  # no pidfd on this kernel: the start-time check just before must do
    try:
        if not _alive(ref):
            return False  # the pid now names another process (or none)
        if fd is not None:
            signal.pidfd_send_signal(fd, signum)
        else:
            os.kill(ref.pid, signum)
        return True
    except ProcessLookupError:
        return False
    finally:
        if fd is not None:
            os.close(fd)


def _signal_command(
    args: argparse.Namespace, command: str, signum: int
) -> tuple[StateDir, ControllerRef] | None:
    sd = state_dir(args)
    ref = find(sd, command)
    if ref is None:
        return None
    try:
        sent = send(ref, signum)
    except PermissionError:
        render.error(
            command, f"not permitted to signal the controller (pid {ref.pid}); "
            "run as the controller's user"
        )
        return None
    if not sent:
        render.error(command, f"no controller is running for state directory {sd.path}")
        return None
    return sd, ref


def run_reload(args: argparse.Namespace) -> int:
    found = _signal_command(args, "reload", signal.SIGHUP)
    if found is None:
        return 1
    sd, ref = found
    print(f"Asked the controller (pid {ref.pid}) to re-read {ref.info.get('spec_dir') or 'its specs'}.")
    return 0


def wait_for(gone: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if gone():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)


def run_stop(args: argparse.Namespace) -> int:
    found = _signal_command(args, "stop", signal.SIGTERM)
    if found is None:
        return 1
    sd, ref = found
    if args.timeout <= 0:
        print(f"Sent SIGTERM to the controller (pid {ref.pid}).")
        return 0
    print(f"Stopping the controller (pid {ref.pid}); its runs get their grace period...",
          file=sys.stderr)

    def gone() -> bool:
        try:
            current = sd.find_controller()
        except StateError:
            return not _alive(ref)
        return not _alive(ref) or current is None or current.pid != ref.pid

    if wait_for(gone, args.timeout):
        print(f"The controller (pid {ref.pid}) has stopped.")
        return 0
    render.error(
        "stop", f"the controller (pid {ref.pid}) did not exit within {args.timeout:g}s; "
        "it may still be stopping runs with long grace periods"
    )
    return 1


def run_run(args: argparse.Namespace) -> int:
    from reconciler.controller.control import request

    sd = state_dir(args)
    ref = find(sd, "run")
    if ref is None:
        return 1
    try:
        answer = request(sd.path / CONTROL_SOCKET, {"op": "run", "task": args.name})
    except (OSError, ValueError) as exc:
        render.error("run", f"cannot reach the controller (pid {ref.pid}): {exc}")
        return 1
    if answer.get("ok"):
        started = f"Started {args.name}: run {answer.get('run_id')} (pid {answer.get('pid')})."
        if getattr(args, "wait", False):
            from reconciler.commands.logs import wait_for_run

            print(started, file=sys.stderr)
            return wait_for_run(sd.path, str(answer.get("run_id")))
        print(started)
        return 0
    reason = render.safe(str(answer.get("reason") or "refused"))
    render.error("run", f"{args.name} not started: {reason}")
    return 1


