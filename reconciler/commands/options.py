"""Options shared by several commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from reconciler.state import StateDir, default_state_dir


def add_state_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help="state directory (default: /var/lib/reconciler as root, else "
        "$XDG_STATE_HOME/reconciler; env RECONCILER_STATE_DIR)",
    )


def add_identity(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host-ip", metavar="IP[,IP...]", help="this host's address(es), replacing detection "
        "(env RECONCILER_HOST_IP)"
    )
    parser.add_argument(
        "--hostname", metavar="NAME", help="this host's name, replacing detection "
        "(env RECONCILER_HOSTNAME)"
    )


def state_dir(args: argparse.Namespace) -> StateDir:
    path = Path(args.state_dir) if getattr(args, "state_dir", None) else default_state_dir()
    return StateDir(path)
