"""Run history in the state directory: one small file per task, written when it ran."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys

from controller_harness import ControllerProc, start, wait_until, write_task


def old_item(n: int) -> dict:
    return {"run_id": f"old-{n}", "due": n, "trigger": "schedule", "started_at": n,
            "ended_at": n + 1, "exit_code": 0, "signal": None, "outcome": "succeeded",
            "duration_s": 1.0}


def test_each_task_has_its_own_private_history_file(dirs, controllers) -> None:
    write_task(dirs[0], "tick", {"schedule": "* * * * * *", "command": ["true"]})
    c = start(controllers, dirs)
    c.wait_for("run.exited", task="tick", count=2)
    assert c.stop() == 0
    folder = dirs[1] / "history"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    path = folder / "tick.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    runs = json.loads(path.read_text())
    exited = c.find("run.exited", task="tick")
    assert [r["run_id"] for r in runs] == [e["run_id"] for e in exited]
    assert all(r["outcome"] == "succeeded" for r in runs)
    assert not (dirs[1] / "history.json").exists()


def test_only_the_tasks_that_ran_are_written_again(dirs, controllers) -> None:
    """A fleet's cost is its runs: the file of a task that did not run is not rewritten."""
    write_task(dirs[0], "tick", {"schedule": "* * * * * *", "command": ["true"]})
    write_task(dirs[0], "yearly", {"schedule": "0 0 0 1 1 *", "command": ["true"]})
    dirs[1].mkdir(mode=0o700)
    (dirs[1] / "history").mkdir(mode=0o700)
    idle = dirs[1] / "history" / "yearly.json"
    idle.write_text(json.dumps([old_item(1)]))
    idle.chmod(0o600)
    before = idle.stat()
    c = start(controllers, dirs)
    first = c.wait_for("run.exited", task="tick")[0]
    tick = dirs[1] / "history" / "tick.json"
    wait_until(lambda: tick.exists() and first["run_id"] in tick.read_text(), timeout=15)
    c.wait_for("run.exited", task="tick", count=4)
    assert c.stop() == 0
    after = idle.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert len(json.loads(tick.read_text())) >= 4


def test_one_history_file_of_an_older_controller_is_split(dirs, controllers) -> None:
    """history.json (all tasks in one) is read once: its runs move to per-task files,
    capped at 20 with the newest last; tasks no longer in the directory are dropped."""
    write_task(dirs[0], "tick", {"schedule": "* * * * * *", "command": ["true"]})
    write_task(dirs[0], "yearly", {"schedule": "0 0 0 1 1 *", "command": ["true"]})
    dirs[1].mkdir(mode=0o700)
    legacy = {"tick": [old_item(n) for n in range(20)], "yearly": [old_item(7)],
              "gone": [old_item(9)]}
    (dirs[1] / "history.json").write_text(json.dumps(legacy))
    c = start(controllers, dirs)
    c.wait_for("run.exited", task="tick", count=2)
    assert c.stop() == 0
    assert not (dirs[1] / "history.json").exists()
    folder = dirs[1] / "history"
    assert sorted(p.name for p in folder.iterdir()) == ["tick.json", "yearly.json"]
    tick = json.loads((folder / "tick.json").read_text())
    new = [e["run_id"] for e in c.find("run.exited", task="tick")]
    assert len(tick) == 20
    assert [r["run_id"] for r in tick] == [f"old-{n}" for n in range(len(new), 20)] + new
    assert json.loads((folder / "yearly.json").read_text()) == [old_item(7)]

    # `status` of the next controller shows the last run from the task's file.
    c2 = start(controllers, dirs)
    out = subprocess.run(
        [sys.executable, "-m", "reconciler", "status", "--state-dir", str(dirs[1]), "-o", "json"],
        capture_output=True, text=True, check=True,
    )
    tasks = {t["name"]: t for t in json.loads(out.stdout)["tasks"]}
    assert tasks["yearly"]["lastRun"]["runId"] == "old-7"
    assert c2.stop() == 0


def test_a_history_folder_that_is_a_symlink_is_refused(dirs, tmp_path) -> None:
    write_task(dirs[0], "tick", {"schedule": "* * * * * *", "command": ["true"]})
    dirs[1].mkdir(mode=0o700)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (dirs[1] / "history").symlink_to(elsewhere)
    c = ControllerProc(dirs[0], dirs[1])
    assert c.proc.wait(30) == 1
    assert "history is a symbolic link, not a directory" in c.stderr + "\n".join(c.raw)
    assert list(elsewhere.iterdir()) == []


def test_history_files_that_cannot_be_written_are_reported_once(dirs, controllers) -> None:
    """Three tasks' history files fail to write: one state.write-failed for the history
    folder (not one per task), runs go on, and the files come once writing works."""
    for name in ("a", "b", "c"):
        write_task(dirs[0], name, {"schedule": "* * * * * *", "command": ["true"]})
    c = start(controllers, dirs)
    folder = dirs[1] / "history"
    shutil.rmtree(folder)
    folder.write_text("")  # in the way: every write below it fails (ENOTDIR)
    failed = c.wait_for("state.write-failed", timeout=30)
    for name in ("a", "b", "c"):
        c.wait_for("run.exited", task=name, count=len(c.find("run.exited", task=name)) + 3)
    assert [e["file"] for e in c.find("state.write-failed")] == [str(folder)]
    assert failed[0]["error"]
    folder.unlink()
    folder.mkdir(mode=0o700)
    c.wait_for("state.written", where=lambda e: e["file"] == str(folder), timeout=30)
    wait_until(lambda: sorted(p.name for p in folder.iterdir()) == ["a.json", "b.json", "c.json"],
               timeout=15)
    assert c.stop() == 0
