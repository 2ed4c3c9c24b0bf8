"""`reconciler apply DIR`: run the controller in the foreground."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from reconciler.commands.common import add_identity, add_state_dir, state_dir
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
    p.add_argument("--log-format", choices=["json", "text"], default="json")
    p.add_argument("--http", metavar="HOST:PORT", help="serve /metrics, /healthz, /readyz here")
    p.add_argument("--watch", choices=["inotify", "poll"], default="inotify")
    p.set_defaults(func=run, _parser=p)


_EARLY_SIGNALS: list[int] = []


def catch_early_signals() -> None:
    """From the first moment: a SIGTERM while still starting (imports, identity lookup,
    the first load) means a clean stop right after start, not death by the default action.
    The controller takes these over when it installs its own handlers."""
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR2):
        signal.signal(signum, lambda n, _f: _EARLY_SIGNALS.append(n))


def run(args: argparse.Namespace) -> int:
    catch_early_signals()
    parser: argparse.ArgumentParser = args._parser
    if args.http:
        try:
            parse_http_addr(args.http)
        except ValueError as exc:
            parser.error(f"--http: {exc}")
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
