"""`reconciler apply DIR`: run the controller in the foreground."""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import signal
import sys
from pathlib import Path

from reconciler.commands.etcd_opts import add_etcd, etcd_config
from reconciler.commands.options import add_identity, add_state_dir, state_dir
from reconciler.hosts import HostEntryError, detect_identity
from reconciler.obs import log_event, parse_http_addr, setup_logging
from reconciler.state import StateError


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "apply",
        help="run the controller on a spec directory (foreground, until SIGTERM)",
        description="Run the controller: keep this host's processes in line with the task "
        "documents in DIR until SIGTERM or SIGINT.",
    )
    p.add_argument("spec_dir", metavar="DIR", help="directory of task documents")
    add_state_dir(p)
    add_identity(p)
    p.add_argument("--log-format", choices=["json", "text"], default="json",
                   help="log lines on stdout: one JSON object each, or text for a terminal (default json)")
    p.add_argument("--http", metavar="HOST:PORT", help="serve /metrics, /healthz, /readyz here")
    p.add_argument("--watch", choices=["inotify", "poll"], default="inotify",
                   help="how spec changes are noticed: inotify events, or polling (default inotify; falls back to polling when inotify is unavailable)")
    add_etcd(p, lease=True)
    p.set_defaults(func=run, _parser=p)


_EARLY_SIGNALS: list[int] = []


def catch_early_signals() -> None:
    """From the first moment: a SIGTERM while still starting (imports, identity lookup,
    the first load) means a clean stop right after start, not death by the default action.
    The controller takes these over when it installs its own handlers."""
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR2):
        signal.signal(signum, lambda n, _f: _EARLY_SIGNALS.append(n))


# The soft and hard RLIMIT_NOFILE the process was started with, before
# raise_open_file_limit(): runs should get this soft limit back (see docs/SECURITY.md).
OPEN_FILES_AT_START: tuple[int, int] = resource.getrlimit(resource.RLIMIT_NOFILE)


def raise_open_file_limit() -> None:
    """Raise the soft RLIMIT_NOFILE to the hard limit: runs' pipes, the spec walk, state
    writes and up to 64 HTTP connections must fit, and a distribution's default soft
    limit (1024) is small for thousands of tasks. Best effort: a limit that cannot be
    raised stays as it is."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:
        try:  # the kernel refuses more than fs.nr_open
            with open("/proc/sys/fs/nr_open") as fh:
                target = int(fh.read())
        except (OSError, ValueError):
            return
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


# The loop shares the interpreter with threads that build big files (the applied set of
# 100,000 tasks: seconds of work). Each time the loop comes back from a system call it
# waits for such a thread to hand the lock over, up to the switch interval: the default
# 5 ms made a tick with one spawn 75 ms late; 1 ms caps it.
LOOP_SWITCH_INTERVAL_S = 0.001


def run(args: argparse.Namespace) -> int:
    catch_early_signals()
    raise_open_file_limit()
    sys.setswitchinterval(LOOP_SWITCH_INTERVAL_S)
    parser: argparse.ArgumentParser = args._parser
    if args.http:
        try:
            parse_http_addr(args.http)
        except ValueError as exc:
            parser.error(f"--http: {exc}")
    etcd = etcd_config(args, parser)
    setup_logging(args.log_format)
    try:
        identity = detect_identity(args.host_ip, args.hostname)
    except HostEntryError as exc:
        parser.error(f"--host-ip: {exc}")
    # Imported here so `reconciler validate` never pays for the controller's imports.
    from reconciler.controller import Controller, Options

    opts = Options(
        spec_dir=Path(args.spec_dir),
        state=state_dir(args),
        identity=identity,
        watch=args.watch,
        http=args.http,
        etcd=etcd,
        hostname=args.hostname or os.environ.get("RECONCILER_HOSTNAME") or None,
    )
    log_event(
        "controller.starting",
        f"Starting controller on {args.spec_dir} (state in {opts.state.path}).",
        spec_dir=str(args.spec_dir),
        state_dir=str(opts.state.path),
        host=identity.describe(),
    )
    try:
        return Controller(opts, early_signals=_EARLY_SIGNALS).run()
    except StateError as exc:
        log_event("controller.failed", str(exc), level="error", error=str(exc))
        print(f"reconciler: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        log_event("controller.failed", f"Fatal: {exc}", level="error", error=str(exc))
        print(f"reconciler: {exc}", file=sys.stderr)
        return 1
