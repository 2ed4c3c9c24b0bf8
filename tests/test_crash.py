"""Crash safety: kill -9 at random moments, stalls, adoption of runs left behind."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

from controller_harness import ControllerProc, pids_in_group, wait_until, write_task


def ts(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def later_sightings(c: ControllerProc) -> list[int]:
    """Due times of runs a controller took over from its predecessor."""
    adopted = c.find("run.adopted", task="tick")
    unwatched = [e for e in c.find("run.exited", task="tick") if "no controller" in e["message"]]
    return [ts(e["due"]) for e in adopted + unwatched if e.get("due")]


def test_kill_9_cycles_never_double_nor_silently_lose_a_run(dirs, controllers) -> None:
    """50 controllers killed at random moments: each due second ran at most once, and every
    second within the deadline either ran or was logged as skipped.

    Log lines are written by a writer thread, so a kill -9 may lose the last lines queued
    (a run.started among them). Such a run is still in the log: its successor finds it
    in runs.json and logs it as adopted or as ended unwatched, with its due time."""
    write_task(dirs[0], "tick", {"schedule": "* * * * * *", "startingDeadlineSeconds": 30,
                                 "command": ["true"]})
    rng = random.Random(1234)
    started: list[int] = []
    skipped: list[int] = []
    seen: list[int] = []  # adopted, or ended while no controller watched
    first_due: int | None = None
    for cycle in range(50):
        c = ControllerProc(dirs[0], dirs[1])
        controllers.append(c)
        c.wait_for("spec.applied", timeout=30)
        if cycle == 0:
            first_due = ts(c.wait_for("run.started", task="tick", timeout=20)[0]["due"])
        time.sleep(rng.uniform(0.05, 1.5))
        c.kill()
        started += [ts(e["due"]) for e in c.find("run.started", task="tick")]
        skipped += [ts(e["due"]) for e in c.find("run.skipped", task="tick")]
        seen += later_sightings(c)
    # A last, clean controller catches up on what the last kill left within the deadline.
    c = ControllerProc(dirs[0], dirs[1])
    controllers.append(c)
    c.wait_for("run.started", task="tick", timeout=30)
    time.sleep(1.5)
    assert c.stop() == 0
    started += [ts(e["due"]) for e in c.find("run.started", task="tick")]
    skipped += [ts(e["due"]) for e in c.find("run.skipped", task="tick")]
    seen += later_sightings(c)
    dupes = sorted({s for s in started if started.count(s) > 1})
    assert not dupes, f"due seconds started twice: {dupes}"
    assert first_due is not None
    last = max(started)
    accounted = set(started) | set(skipped) | set(seen)
    missing = [s for s in range(first_due, last + 1) if s not in accounted]
    assert not missing, f"{len(missing)} due seconds neither ran nor were logged: {missing[:10]}"


def test_stall_within_deadline_coalesces(dirs, controllers) -> None:
    write_task(dirs[0], "tick", {"schedule": "* * * * * *", "startingDeadlineSeconds": 10,
                                 "command": ["true"]})
    c = ControllerProc(dirs[0], dirs[1])
    controllers.append(c)
    c.wait_for("run.exited", task="tick")
    c.signal(signal.SIGSTOP)
    time.sleep(4)
    stalled_at = len(c.find("run.started", task="tick"))
    c.signal(signal.SIGCONT)
    coalesced = c.wait_for("run.skipped", task="tick", reason="coalesced", count=2, timeout=20)
    starts = c.wait_for("run.started", task="tick", count=stalled_at + 1)
    late = starts[stalled_at]
    # One run for the latest missed second; the earlier ones are logged, not run.
    assert all(ts(e["due"]) < ts(late["due"]) for e in coalesced)
    assert len({e["due"] for e in starts}) == len(starts)
    assert c.stop() == 0


def test_stall_past_deadline_skips_with_reason_deadline(dirs, controllers) -> None:
    write_task(dirs[0], "tick", {"schedule": "* * * * * *", "startingDeadlineSeconds": 1,
                                 "command": ["true"]})
    c = ControllerProc(dirs[0], dirs[1])
    controllers.append(c)
    c.wait_for("run.exited", task="tick")
    c.signal(signal.SIGSTOP)
    time.sleep(4)
    c.signal(signal.SIGCONT)
    c.wait_for("run.skipped", task="tick", reason="deadline", count=2, timeout=20)
    assert c.stop() == 0


def test_restart_adopts_runs_left_alive(dirs, controllers, tmp_path: Path) -> None:
    write_task(dirs[0], "d", {"type": "daemon", "command": ["sleep", "1000"],
                              "terminationGracePeriodSeconds": 3})
    write_task(dirs[0], "slow", {"schedule": "* * * * * *", "command": ["sleep", "1000"]})
    c1 = ControllerProc(dirs[0], dirs[1])
    controllers.append(c1)
    d_run = c1.wait_for("run.started", task="d")[0]
    slow_run = c1.wait_for("run.started", task="slow")[0]

    def recorded() -> bool:
        try:
            runs = json.loads((dirs[1] / "runs.json").read_text())
        except (OSError, ValueError):
            return False
        return {r["run_id"] for r in runs} >= {d_run["run_id"], slow_run["run_id"]}

    wait_until(recorded, 10, "both runs recorded")
    c1.kill()
    assert os.path.exists(f"/proc/{d_run['pid']}")
    c2 = ControllerProc(dirs[0], dirs[1])
    controllers.append(c2)
    adopted = c2.wait_for("run.adopted", count=2, timeout=20)
    assert {e["run_id"] for e in adopted} == {d_run["run_id"], slow_run["run_id"]}
    # Observed state: no second daemon, and the slow run still holds maxConcurrency.
    c2.wait_for("run.skipped", task="slow", reason="max-concurrency", timeout=10)
    assert not c2.find("run.started", task="d")
    assert not c2.find("run.started", task="slow")
    assert c2.stop() == 0
    exits = {e["run_id"]: e for e in c2.find("run.exited")}
    assert exits[d_run["run_id"]]["outcome"] == "stopped"
    assert exits[slow_run["run_id"]]["outcome"] == "stopped"
    for pgid in (d_run["pid"], slow_run["pid"]):
        wait_until(lambda pgid=pgid: not pids_in_group(pgid), 10, f"group {pgid} gone")


def test_run_ended_while_no_controller_watched(dirs, controllers) -> None:
    write_task(dirs[0], "d", {"type": "daemon", "command": ["sleep", "1000"]})
    c1 = ControllerProc(dirs[0], dirs[1])
    controllers.append(c1)
    run = c1.wait_for("run.started", task="d")[0]
    runs = dirs[1] / "runs.json"
    wait_until(lambda: runs.exists() and run["run_id"] in runs.read_text(), 10)
    c1.kill()
    os.killpg(run["pid"], signal.SIGKILL)
    wait_until(lambda: not pids_in_group(run["pid"]), 10)
    c2 = ControllerProc(dirs[0], dirs[1])
    controllers.append(c2)
    ended = c2.wait_for("run.exited", run_id=run["run_id"], timeout=20)[0]
    assert ended["exit_code"] is None
    c2.wait_for("run.started", task="d", timeout=20)  # and the daemon is started again
    assert c2.stop() == 0


def test_stale_pid_file_is_taken_over(dirs, controllers) -> None:
    c1 = ControllerProc(dirs[0], dirs[1])
    controllers.append(c1)
    c1.wait_for("spec.applied")
    c1.kill()
    assert (dirs[1] / "controller.json").exists()
    c2 = ControllerProc(dirs[0], dirs[1])
    controllers.append(c2)
    c2.wait_for("spec.applied")
    info = json.loads((dirs[1] / "controller.json").read_text())
    assert info["pid"] == c2.pid
    assert c2.stop() == 0


def test_reboot_runs_once_per_start_not_per_reload(dirs, controllers) -> None:
    write_task(dirs[0], "boot", {"schedule": "@reboot", "command": ["true"]})
    c = ControllerProc(dirs[0], dirs[1])
    controllers.append(c)
    c.wait_for("run.exited", task="boot")
    c.signal(signal.SIGHUP)
    write_task(dirs[0], "other", {"schedule": "@every 1h", "command": ["true"]})
    c.wait_for("spec.applied", where=lambda e: e["added"] == ["other"])
    time.sleep(1.5)
    assert len(c.find("run.started", task="boot")) == 1
    assert c.stop() == 0
    c2 = ControllerProc(dirs[0], dirs[1])
    controllers.append(c2)
    c2.wait_for("run.exited", task="boot")
    assert c2.stop() == 0


def test_damaged_state_files_do_not_stop_the_controller(dirs, controllers) -> None:
    state = dirs[1]
    state.mkdir(mode=0o700)
    (state / "ledger.json").write_text(
        json.dumps({"cursors": [1, 2], "daemons": {"d": {"failures": "x", "not_before": "soon"}},
                    "anchors": {"e": "nope"}, "starting": {"tick": "x"}})
    )
    (state / "runs.json").write_text(json.dumps([
        {"run_id": "r1", "task": "d", "pid": 1, "start_ticks": 1, "started_at": 0, "grace_s": "abc"},
        {"run_id": "r2", "task": "d", "pid": 1, "start_ticks": 1, "started_at": 0, "timeout_s": "5"},
        {"run_id": "r3", "task": "d", "pid": 1, "start_ticks": 1, "started_at": 0, "due": "x"},
        "garbage",
    ]))
    write_task(dirs[0], "d", {"type": "daemon", "command": ["sleep", "1000"]})
    write_task(dirs[0], "tick", {"schedule": "* * * * * *", "command": ["true"]})
    c = ControllerProc(dirs[0], state)
    controllers.append(c)
    c.wait_for("run.started", task="d")
    c.wait_for("run.exited", task="tick", count=2)
    assert c.stop() == 0


def test_reboot_runs_when_the_spec_dir_appears_after_start(tmp_path, controllers) -> None:
    root = tmp_path / "root"
    root.mkdir(mode=0o755)
    link = root / "current"
    c = ControllerProc(link, tmp_path / "state")
    controllers.append(c)
    c.wait_for("spec.invalid")  # not there yet
    rev = root / "rev1"
    rev.mkdir(mode=0o755)
    write_task(rev, "boot", {"schedule": "@reboot", "command": ["true"]})
    os.symlink(rev, link)
    c.wait_for("run.exited", task="boot", timeout=20)
    assert c.stop() == 0


def test_start_cut_short_by_a_crash_is_reported_from_the_delta(dirs, controllers) -> None:
    """A delta file still announcing a start: the successor logs that run as interrupted
    and never starts it again; a delta of an older snapshot is ignored."""
    write_task(dirs[0], "tick", {"schedule": "* * * * * *", "startingDeadlineSeconds": 30,
                                 "command": ["true"]})
    state = dirs[1]
    state.mkdir(mode=0o700)
    t0 = int(time.time())
    (state / "ledger.json").write_text(json.dumps({"cursors": {"tick": t0 - 5}, "generation": 4}))
    delta = {"generation": 4, "cursors": {"tick": t0 - 2}, "starting": {"tick": t0 - 2}}
    (state / "ledger-delta.json").write_text(json.dumps(delta))
    c = ControllerProc(dirs[0], state)
    controllers.append(c)
    skipped = c.wait_for("run.skipped", task="tick", where=lambda e: e["reason"] == "interrupted")
    assert [ts(e["due"]) for e in skipped] == [t0 - 2]
    c.wait_for("run.started", task="tick", count=2)
    assert c.stop() == 0
    assert all(ts(e["due"]) > t0 - 2 for e in c.find("run.started", task="tick"))
    assert [e["reason"] for e in c.find("run.skipped")].count("interrupted") == 1
    # A clean stop folds the delta into a new snapshot...
    ledger = json.loads((state / "ledger.json").read_text())
    assert ledger["generation"] > 4 and ledger["starting"] == {}
    assert ledger["cursors"]["tick"] >= t0

    # ...and a delta of an older generation is not applied again: were this one's
    # far-away cursor taken, nothing would run.
    stale = {"generation": ledger["generation"] - 1, "cursors": {"tick": t0 + 10_000},
             "starting": {"tick": t0 + 10_000}}
    (state / "ledger-delta.json").write_text(json.dumps(stale))
    c2 = ControllerProc(dirs[0], state)
    controllers.append(c2)
    c2.wait_for("run.started", task="tick")
    assert c2.stop() == 0
    assert not [e for e in c2.find("run.skipped") if e["reason"] == "interrupted"]


def test_a_state_file_that_cannot_be_written_stops_nothing(dirs, controllers, tmp_path) -> None:
    """A full disk, as the file size limit makes it: runs go on, each failing file is
    logged once (not every second), no temp file is left, and once writes work again
    the file is written."""
    out = tmp_path / "ticks"
    write_task(dirs[0], "tick", {"schedule": "* * * * * *",
                                 "command": ["sh", "-c", f"echo . >> {out}"]})
    for i in range(40):  # applied.json grows past the limit; the small files stay under it
        write_task(dirs[0], f"parked-task-with-a-long-name-{i:02d}",
                   {"schedule": "0 0 0 1 1 *", "command": ["true", "x" * 100]})
    c = ControllerProc(dirs[0], dirs[1], wrapper=["prlimit", "--fsize=2000:unlimited", "--"])
    controllers.append(c)
    failed = c.wait_for("state.write-failed", where=lambda e: e["file"].endswith("applied.json"))
    assert failed[0]["level"] == "error" and failed[0]["error"]
    runs_before = len(c.wait_for("run.exited", task="tick", count=1))
    c.wait_for("run.exited", task="tick", count=runs_before + 3)
    assert all(e["outcome"] == "succeeded" for e in c.find("run.exited", task="tick"))
    files = [e["file"] for e in c.find("state.write-failed")]
    assert len(files) == len(set(files)), f"logged again while it persists: {files}"
    assert not (dirs[1] / "applied.json").exists()
    # The failed write left no temp file. Writes of applied.json are tried again (on a
    # thread of their own) and their temp file exists while one is under way: a leftover
    # is one seen in every look.
    def temps() -> list[str]:
        return [p.name for p in dirs[1].iterdir() if p.name.startswith(".applied.json.")]

    looks = []
    for _ in range(20):
        looks.append(temps())
        if not looks[-1]:
            break
        time.sleep(0.1)
    assert not looks[-1], f"a temp file stays: {looks}"

    subprocess.run(["prlimit", f"--pid={c.pid}", "--fsize=unlimited:"], check=True)
    c.wait_for("state.written", where=lambda e: e["file"].endswith("applied.json"))
    assert c.stop() == 0
    assert len(json.loads((dirs[1] / "applied.json").read_text())) == 41
    assert len(out.read_text().split()) >= runs_before + 3
