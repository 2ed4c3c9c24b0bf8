"""Micro-benchmark of log_event: microseconds per line for the shapes the controller logs.

    .venv/bin/python bench/bench_logs.py [--lines N]

Writes to a real pipe drained by a thread (as stdout read by a log shipper would be), so
the figure includes the write and flush syscall; also to /dev/null and to a StringIO.
Not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from reconciler.obs import log_event, setup_logging


def _drained_pipe() -> tuple[TextIO, Callable[[], None]]:
    """A pipe read by another process, as a log shipper reads the controller's stdout."""
    reader = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert reader.stdin is not None
    stream = io.TextIOWrapper(reader.stdin, encoding="utf-8")

    def close() -> None:
        stream.close()
        reader.wait()

    return stream, close


CASES: dict[str, Callable[[int], None]] = {
    "run.started": lambda i: log_event(
        "run.started",
        "Run started.",
        task="rotate-logs",
        run_id=f"rotate-logs-{i}",
        pid=4242,
        type="cron",
        due="2026-11-25T11:46:22Z",
    ),
    "run.output (80 chars)": lambda i: log_event(
        "run.output",
        "x" * 72 + f"{i:08d}",
        task="flood",
        run_id="flood-1",
        stream="stdout",
    ),
    "run.output (escapes)": lambda i: log_event(
        "run.output",
        '\x1b[31mred\x1b[0m\tcol\r\\x80 {"event": "run.started"}',
        task="flood",
        run_id="flood-1",
        stream="stderr",
    ),
    "run.exited": lambda i: log_event(
        "run.exited",
        "Run failed with exit code 1.",
        level="warning",
        task="rotate-logs",
        run_id="rotate-logs-1",
        pid=4242,
        exit_code=1,
        signal=None,
        duration_s=1.234,
        outcome="failed",
    ),
}


def _flood(case: Callable[[int], None], n: int) -> None:
    for i in range(n):
        case(i)


def bench(n: int, fmt: str, target: str) -> None:
    if target == "pipe":
        stream, close = _drained_pipe()
    elif target == "devnull":
        stream = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
        close = stream.close
    else:
        stream = io.StringIO()
        close = stream.close
    setup_logging(fmt, stream)  # type: ignore[arg-type]
    for name, case in CASES.items():
        for i in range(min(n, 1000)):  # warm up
            case(i)
        start = time.perf_counter()
        for i in range(n):
            case(i)
        per = (time.perf_counter() - start) / n * 1e6
        print(f"{fmt:4} {target:8} {name:24} {per:6.2f} us/line")
    close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=20000)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {args.lines} lines per case")
    for fmt in ("json", "text"):
        for target in ("pipe", "devnull", "stringio"):
            bench(args.lines, fmt, target)
    # Several threads at once (the controller has two: loop and output pump).
    for nthreads in (2, 8):
        stream, close = _drained_pipe()
        setup_logging("json", stream)
        n = args.lines // nthreads
        threads = [
            threading.Thread(target=_flood, args=(CASES["run.output (80 chars)"], n))
            for _ in range(nthreads)
        ]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        print(
            f"json pipe     {nthreads} threads x {n}: "
            f"{elapsed / (nthreads * n) * 1e6:6.2f} us/line overall"
        )
        close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
