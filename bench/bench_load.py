"""Spec loading figures: load_paths over a generated fleet.

    python bench/bench_load.py [--tasks 10000] [--per-file 10] [--rounds 5] [--profile]

Writes N task documents, `--per-file` to a YAML file (with `--json`: one per JSON file),
in nested folders of a temporary directory, then times `load_paths` cold (first call in
the process: imports done, caches of schedules and zones empty) and warm. The target is
under 1 s for 10,000 tasks in 1,000 files.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

SCHEDULES = ["0 */5 * * * *", "*/10 * * * * *", "0 3 * * *", "@hourly", "30 2 * * mon-fri"]
ZONES = ["Europe/Berlin", "UTC", "America/New_York", None]
HOSTS = [None, ["web-*"], ["192.0.2.0/24", "198.51.100.7"], ["db-1", "db-2"]]


def document(i: int) -> dict[str, object]:
    spec: dict[str, object] = {}
    if i % 10 == 9:
        spec["type"] = "daemon"
        spec["command"] = f"while true; do echo task-{i}; sleep 5; done"
        spec["restartPolicy"] = "OnFailure"
    else:
        spec["schedule"] = SCHEDULES[i % len(SCHEDULES)]
        spec["command"] = ["/usr/local/bin/job", "--id", str(i)]
        spec["timeoutSeconds"] = 600
    zone = ZONES[i % len(ZONES)]
    if zone:
        spec["timezone"] = zone
    hosts = HOSTS[i % len(HOSTS)]
    if hosts is not None:
        spec["hosts"] = hosts
    spec["env"] = {"LANG": "C.UTF-8", "JOB_ID": str(i)}
    return {
        "apiVersion": "reconciler/v1",
        "kind": "Task",
        "metadata": {"name": f"task-{i}", "labels": {"team": f"team-{i % 7}"}},
        "spec": spec,
    }


def to_yaml(doc: dict[str, object]) -> str:
    # Written by hand, as people write them (block style, some flow lists).
    meta = doc["metadata"]
    spec = doc["spec"]
    assert isinstance(meta, dict) and isinstance(spec, dict)
    lines = [
        "apiVersion: reconciler/v1",
        "kind: Task",
        "metadata:",
        f"  name: {meta['name']}",
        "  labels:",
        f"    team: {meta['labels']['team']}",
        "spec:",
    ]
    for key, value in spec.items():
        if isinstance(value, dict):
            lines.append(f"  {key}:")
            lines.extend(f"    {k}: {json.dumps(v)}" for k, v in value.items())
        else:
            lines.append(f"  {key}: {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def write_fleet(root: Path, tasks: int, per_file: int, as_json: bool) -> int:
    files = 0
    for start in range(0, tasks, per_file):
        folder = root / f"team-{files % 7}" / f"group-{files % 13}"
        folder.mkdir(parents=True, exist_ok=True)
        if as_json:
            for i in range(start, min(start + per_file, tasks)):
                (folder / f"task-{i}.json").write_text(json.dumps(document(i), indent=2))
                files += 1
            continue
        docs = [to_yaml(document(i)) for i in range(start, min(start + per_file, tasks))]
        (folder / f"file-{files}.yaml").write_text("---\n".join(docs))
        files += 1
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--per-file", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="one task per JSON file")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    import reconciler.schedule  # noqa: F401  imports are not part of the figure
    from reconciler.spec import load_paths

    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        root = Path(tmp)
        files = write_fleet(root, args.tasks, args.per_file, args.json)
        size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        print(f"fleet: {args.tasks} tasks in {files} files, {size / 1e6:.1f} MB")
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            load_paths([root])
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
            return 0
        times = []
        cpu = []
        for n in range(args.rounds):
            t0, c0 = time.perf_counter(), time.process_time()
            result = load_paths([root])
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            if result.errors:
                print("\n".join(str(e) for e in result.errors[:5]), file=sys.stderr)
                return 1
            assert len(result.tasks) == args.tasks
            label = "cold" if n == 0 else "warm"
            print(
                f"load_paths {label}: {times[-1]:.3f} s wall, {cpu[-1]:.3f} s CPU "
                f"({times[-1] / args.tasks * 1e6:.0f} us/task)"
            )
        mid = len(times) // 2
        print(
            f"wall best {min(times):.3f} s, median {sorted(times)[mid]:.3f} s; "
            f"CPU best {min(cpu):.3f} s, median {sorted(cpu)[mid]:.3f} s; "
            f"load average {os.getloadavg()[0]:.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
