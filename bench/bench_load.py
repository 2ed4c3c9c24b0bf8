"""Spec loading figures: load_paths over a generated fleet, and a controller's start.

    python bench/bench_load.py [shared] [--tasks 10000] [--per-file 10] [--rounds 5] [--profile]
    python bench/bench_load.py distinct [--tasks 10000] [--per-file 100] [--rounds 3] [--profile]
    python bench/bench_load.py start [--tasks 10000 100000] [--per-file 100] [--rounds 3]

shared: N task documents over a few shared schedules, zones and hosts entries,
`--per-file` to a YAML file (with `--json`: one per JSON file), in nested folders of a
temporary directory; `load_paths` timed cold (first call in the process: imports done,
caches of schedules and zones empty) and warm. The target is under 1 s for 10,000 tasks
in 1,000 files.

distinct: the fleet of issue 12, as other cron daemons were measured with it: N tasks
with N distinct never-due schedules such as `17 4 1 6 *`, 100 documents a file, one
command each. `load_paths` timed cold and warm, with the time of each phase of the load
(read, YAML, semantic checks, models, Task) and the memory held per task (tracemalloc).

start: the distinct fleet plus one `@reboot` task as the ready signal; `reconciler apply`
is started as systemd would, and the figure is process start to the `run.started` of the
`@reboot` task, with the controller's own events in between (`controller.starting`
after its imports, `spec.applied` after the first load) and its RSS once ready. Then,
for the loop on time once loaded, an every-second task's due-to-start lateness. The
package's bytecode is compiled first, as an install has it (bench/installed_bytecode.py).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

SCHEDULES = ["0 */5 * * * *", "*/10 * * * * *", "0 3 * * *", "@hourly", "30 2 * * mon-fri"]
ZONES = ["Europe/Berlin", "UTC", "America/New_York", None]
HOSTS = [None, ["web-*"], ["192.0.2.0/24", "198.51.100.7"], ["db-1", "db-2"]]
DIM = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


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


# --- the distinct fleet ---------------------------------------------------------------


def distinct_schedule(i: int, skip_month: int) -> str:
    """The i-th of up to 8,600,000 distinct five-field schedules, none in `skip_month`
    (so that none is due while measured): minute, hour, day (1-28), month."""
    minute, rest = i % 60, i // 60
    hour, rest = rest % 24, rest // 24
    day, rest = rest % 28 + 1, rest // 28
    months = [m for m in range(1, 13) if m != skip_month]
    month = months[rest % len(months)]
    return f"{minute} {hour} {day} {month} *"


def write_distinct(root: Path, tasks: int, per_file: int, reboot: bool) -> int:
    this_month = datetime.now().month
    files = 0
    for start in range(0, tasks, per_file):
        docs = []
        for i in range(start, min(start + per_file, tasks)):
            docs.append(
                "apiVersion: reconciler/v1\nkind: Task\nmetadata:\n"
                f"  name: job-{i:06d}\nspec:\n"
                f"  schedule: \"{distinct_schedule(i, this_month)}\"\n"
                f"  command: [\"/usr/bin/true\"]\n"
            )
        (root / f"jobs-{files:05d}.yaml").write_text("---\n".join(docs))
        files += 1
    if reboot:
        (root / "zz-ready.yaml").write_text(
            "apiVersion: reconciler/v1\nkind: Task\nmetadata:\n  name: ready\nspec:\n"
            "  schedule: \"@reboot\"\n  command: [\"/bin/true\"]\n"
        )
        (root / "zz-tick.yaml").write_text(
            "apiVersion: reconciler/v1\nkind: Task\nmetadata:\n  name: tick\nspec:\n"
            "  schedule: \"* * * * * *\"\n  command: [\"/bin/true\"]\n"
        )
        files += 2
    return files


# --- in-process load ------------------------------------------------------------------


class Phases:
    """Wall time spent in the loader's steps, by wrapping the names the loader calls."""

    STEPS = {
        "read": "_read",
        "yaml/json": ("parse_yaml", "parse_json"),
        "checks": "check_semantics",
        "task": "_task",
    }

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self._undo: list[Callable[[], None]] = []

    def _wrap(self, owner: Any, attr: str, label: str) -> None:
        original = getattr(owner, attr)
        spent = self.spent

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent[label] = spent.get(label, 0.0) + time.perf_counter() - t0

        setattr(owner, attr, timed)
        self._undo.append(lambda: setattr(owner, attr, original))

    def __enter__(self) -> Phases:
        from reconciler.spec import loader

        for label, attrs in self.STEPS.items():
            for attr in (attrs,) if isinstance(attrs, str) else attrs:
                self._wrap(loader, attr, label)
        model = loader.TaskDocument
        original = model.model_validate
        spent = self.spent

        def validate(data: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return original(data)
            finally:
                spent["models"] = spent.get("models", 0.0) + time.perf_counter() - t0

        self._undo.append(lambda: setattr(loader, "TaskDocument", model))

        class Timed:
            model_validate = staticmethod(validate)

        loader.TaskDocument = Timed  # type: ignore[misc,assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        for undo in reversed(self._undo):
            undo()

    def text(self, total: float) -> str:
        parts = [f"{k} {v:.3f}" for k, v in self.spent.items()]
        rest = total - sum(self.spent.values())
        return ", ".join(parts) + f", other {rest:.3f} s"


def in_process(args: argparse.Namespace, write: Callable[[Path], int]) -> int:
    import reconciler.schedule  # noqa: F401  imports are not part of the figure
    from reconciler.spec import load_paths

    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        root = Path(tmp)
        files = write(root)
        size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        print(f"fleet: {args.tasks} tasks in {files} files, {size / 1e6:.1f} MB")
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            load_paths([root])
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(30)
            return 0
        times = []
        cpu = []
        for n in range(args.rounds):
            phases = Phases()
            t0, c0 = time.perf_counter(), time.process_time()
            with phases:
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
                f"({times[-1] / args.tasks * 1e6:.0f} us/task); {phases.text(times[-1])}"
            )
            del result
        mid = len(times) // 2
        print(
            f"wall best {min(times):.3f} s, median {sorted(times)[mid]:.3f} s; "
            f"CPU best {min(cpu):.3f} s, median {sorted(cpu)[mid]:.3f} s; "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        memory(root, args.tasks)
    return 0


def memory(root: Path, tasks: int) -> None:
    """Bytes held per loaded task, the process's own caches warmed first."""
    from reconciler.spec import load_paths

    gc.collect()
    tracemalloc.start(1)
    base = tracemalloc.take_snapshot()
    result = load_paths([root])
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    held = sum(s.size_diff for s in after.compare_to(base, "filename"))
    print(f"held by one load: {held / 1e6:.1f} MB, {held / tasks:.0f} bytes/task; top sources:")
    for stat in after.compare_to(base, "lineno")[:8]:
        frame = stat.traceback[0]
        name = frame.filename.split("/reconciler/")[-1].split("/site-packages/")[-1]
        print(f"  {stat.size_diff / tasks:7.0f} B/task  {name}:{frame.lineno}")
    del result


# --- a controller's start -------------------------------------------------------------


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def start_once(spec: Path, tick_seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-start-state-") as state:
        cmd = [sys.executable, "-m", "reconciler", "apply", str(spec), "--state-dir", state]
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        seen: dict[str, float] = {}
        late: list[float] = []
        ready = threading.Event()
        done = threading.Event()

        def drain() -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                now = time.monotonic()
                if done.is_set():
                    continue
                ev = json.loads(raw)
                name = ev.get("event")
                if name in ("controller.starting", "spec.applied") and name not in seen:
                    seen[name] = now - t0
                elif name == "run.started" and ev.get("task") == "ready":
                    seen["ready"] = now - t0
                    seen["ready_at"] = datetime.fromisoformat(ev["due"]).timestamp()
                    seen["rss_mb"] = rss_mb(proc.pid)
                    ready.set()
                elif name == "run.started" and ev.get("task") == "tick" and ready.is_set():
                    due = datetime.fromisoformat(ev["due"]).timestamp()
                    if due <= seen["ready_at"]:
                        continue  # due while the controller was still loading (its second began then)
                    started = datetime.fromisoformat(ev["timestamp"]).timestamp() if "timestamp" in ev else 0
                    if started:
                        late.append((started - due) * 1000)

        threading.Thread(target=drain, daemon=True).start()
        if not ready.wait(300):
            proc.kill()
            raise SystemExit("no run.started of the @reboot task within 300 s")
        time.sleep(tick_seconds)
        done.set()
        seen["rss_after_mb"] = rss_mb(proc.pid)
        if late:
            seen["tick_p50_ms"] = sorted(late)[len(late) // 2]
            seen["tick_max_ms"] = max(late)
        proc.terminate()
        proc.wait(120)
        return seen


def start(args: argparse.Namespace) -> int:
    if not args.from_source:
        from installed_bytecode import ensure_bytecode

        print(ensure_bytecode())
    for n in args.tasks_list:
        with tempfile.TemporaryDirectory(prefix="bench-start-") as tmp:
            spec = Path(tmp)
            files = write_distinct(spec, n, args.per_file, reboot=True)
            print(f"fleet: {n} distinct schedules in {files} files (+ @reboot, + every second)")
            for _ in range(args.rounds):
                s = start_once(spec, args.tick_seconds)
                tick = ""
                if "tick_p50_ms" in s:
                    tick = (
                        f"; every-second task started p50 {s['tick_p50_ms']:.0f} ms, "
                        f"max {s['tick_max_ms']:.0f} ms after its due second"
                    )
                print(
                    f"  start to @reboot run.started {s['ready']:.2f} s "
                    f"(controller.starting {s.get('controller.starting', float('nan')):.2f} s, "
                    f"spec.applied {s.get('spec.applied', float('nan')):.2f} s); RSS "
                    f"{s['rss_mb']:.0f} MB at ready, {s['rss_after_mb']:.0f} MB "
                    f"{args.tick_seconds:.0f} s later{tick}; load average "
                    f"{os.getloadavg()[0]:.1f}"
                )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", nargs="?", choices=["shared", "distinct", "start"],
                        default="shared")
    parser.add_argument("--tasks", type=int, nargs="+", dest="tasks_list")
    parser.add_argument("--per-file", type=int)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--json", action="store_true", help="shared: one task per JSON file")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--from-source", action="store_true",
                        help="start: leave the bytecode alone (a checkout under "
                        "PYTHONDONTWRITEBYTECODE)")
    parser.add_argument("--tick-seconds", type=float, default=5,
                        help="start: how long to watch the every-second task once ready")
    args = parser.parse_args()
    args.tasks_list = args.tasks_list or [10_000]
    args.tasks = args.tasks_list[0]
    if args.workload == "shared":
        args.per_file = args.per_file or 10
        args.rounds = args.rounds or 5
        return in_process(
            args, lambda root: write_fleet(root, args.tasks, args.per_file, args.json)
        )
    args.per_file = args.per_file or 100
    args.rounds = args.rounds or 3
    if args.workload == "distinct":
        return in_process(
            args, lambda root: write_distinct(root, args.tasks, args.per_file, reboot=False)
        )
    return start(args)


if __name__ == "__main__":
    sys.exit(main())
