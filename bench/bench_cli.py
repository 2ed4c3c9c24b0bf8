"""Command latency: wall time of the commands an operator runs all day.

    python bench/bench_cli.py [--rounds 10] [--importtime]

Each command runs as a fresh process (`python -m reconciler ...`, interpreter start
included), `--rounds` times; the figures are best / median / worst wall time and the
median CPU time (user + system: steadier than wall time on a shared machine). `status`
runs against an empty state directory (no controller: it says so and exits 1);
`validate` on the bundled specs/. The targets (issue 12): `--help`, `schema` and `status`
under 100 ms, `validate specs/` under 250 ms. `--importtime` also prints each command's
slowest imports (`python -X importtime`), to see what a command pays for. The package's
bytecode is compiled first, as an install has it (`--from-source`: not).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def commands(state: str) -> list[tuple[str, list[str]]]:
    return [
        ("python -c pass (floor)", ["-c", "pass"]),
        ("reconciler --help", ["-m", "reconciler", "--help"]),
        ("reconciler --version", ["-m", "reconciler", "--version"]),
        ("reconciler schema", ["-m", "reconciler", "schema"]),
        ("reconciler status (no controller)", ["-m", "reconciler", "status", "--state-dir", state]),
        ("reconciler validate specs/", ["-m", "reconciler", "validate", str(ROOT / "specs")]),
        ("reconciler get specs/", ["-m", "reconciler", "get", str(ROOT / "specs")]),
        ("reconciler apply --help", ["-m", "reconciler", "apply", "--help"]),
    ]


def timed(argv: list[str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of one run."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *argv], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, cwd=ROOT, check=False)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def slowest_imports(argv: list[str], top: int) -> list[str]:
    run = subprocess.run([sys.executable, "-X", "importtime", *argv], capture_output=True,
                         text=True, cwd=ROOT, check=False)
    rows = []
    for line in run.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self_us, cumulative, name = line.removeprefix("import time:").split("|")
        rows.append((int(cumulative), name.rstrip()))
    rows.sort(reverse=True)
    return [f"{c / 1000:7.1f} ms  {n.strip()}" for c, n in rows[:top]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--importtime", action="store_true")
    parser.add_argument("--from-source", action="store_true",
                        help="leave the bytecode alone (a checkout under PYTHONDONTWRITEBYTECODE)")
    args = parser.parse_args()
    if not args.from_source:
        from installed_bytecode import ensure_bytecode

        print(ensure_bytecode())
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as state:
        for label, argv in commands(state):
            timed(argv)  # warm the page cache
            runs = [timed(argv) for _ in range(args.rounds)]
            times = sorted(w * 1000 for w, _ in runs)
            cpu = sorted(c * 1000 for _, c in runs)
            print(f"{label:<36} wall best {times[0]:4.0f} ms, median "
                  f"{statistics.median(times):4.0f} ms, worst {times[-1]:4.0f} ms; CPU median "
                  f"{statistics.median(cpu):4.0f} ms")
            if args.importtime and argv[0] == "-m":
                for row in slowest_imports(argv, 6):
                    print(f"    {row}")
    print(f"load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
