"""Compiled bytecode for the reconciler package, as `pip install` leaves it.

An installed package (wheel, the container image) has its `.pyc` files; a checkout run
with PYTHONDONTWRITEBYTECODE=1 (as CI and this machine set it) compiles every module
from source at each start, 0.15 s more for `apply`. The start-up benchmarks measure what
an installed controller does, so they compile first and say so.
"""

from __future__ import annotations

import compileall
import os
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "reconciler"


def ensure_bytecode() -> str:
    """Compile the package's modules (kept in __pycache__, ignored by git); a line saying
    how the figures were taken."""
    ok = compileall.compile_dir(str(PACKAGE), quiet=1, workers=1)
    how = "bytecode compiled as an install does" if ok else "bytecode NOT compiled"
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        how += " (PYTHONDONTWRITEBYTECODE is set: nothing else would be)"
    return f"{how}; Python {sys.version.split()[0]}"
