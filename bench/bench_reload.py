"""Edit-to-apply latency: one file of a 10,000-task fleet changes; how long until `spec.applied`?

    python bench/bench_reload.py [--tasks 10000] [--edits 20] [--watch inotify|poll]

The clock starts when the edited file is renamed into place (as editors and config
managers do) and stops when the controller's `spec.applied` line is read from its stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_apply import write_tasks  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=10000)
    ap.add_argument("--edits", type=int, default=20)
    ap.add_argument("--watch", default="inotify")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        spec, state = Path(tmp, "specs"), Path(tmp, "state")
        spec.mkdir()
        write_tasks(spec, args.tasks, "0 0 0 1 1 *", ["true"])
        proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "apply", str(spec), "--state-dir", str(state),
             "--watch", args.watch],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        applied: queue.Queue[float] = queue.Queue()

        def read() -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                if b'"spec.applied"' in raw:
                    applied.put(time.monotonic())

        threading.Thread(target=read, daemon=True).start()
        applied.get(timeout=120)
        time.sleep(1)
        lat = []
        target = spec / "f0000.yaml"
        for i in range(args.edits):
            doc = {
                "apiVersion": "reconciler/v1",
                "kind": "Task",
                "metadata": {"name": "t00000"},
                "spec": {"schedule": f"0 {i % 60} 0 1 1 *", "command": ["true"]},
            }
            text = json.dumps(doc) + "\n"
            tmpf = spec / ".edit.tmp"
            tmpf.write_text(text)
            t0 = time.monotonic()
            os.rename(tmpf, target)
            t1 = applied.get(timeout=30)
            lat.append((t1 - t0) * 1000)
            time.sleep(0.3)
        proc.terminate()
        proc.wait(60)
        lat.sort()
        print(
            f"edit to spec.applied with {args.tasks} tasks ({args.watch}): "
            f"p50 {statistics.median(lat):.0f} ms, max {lat[-1]:.0f} ms over {len(lat)} edits"
        )


if __name__ == "__main__":
    main()
