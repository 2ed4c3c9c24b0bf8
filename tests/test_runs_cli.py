"""`reconciler runs` and `reconciler logs` against real controllers, real runs, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from controller_harness import ControllerProc, cli, start, wait_until, write_task


def logs_proc(state: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", "logs", *args, "--state-dir", str(state)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )


def runs_json(state: Path, *args: str) -> list[dict]:
    res = cli("runs", *args, "-o", "json", "--state-dir", state)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_a_failed_run_is_listed_with_its_reason_and_its_output(dirs, controllers) -> None:
    write_task(dirs[0], "backup", {
        "schedule": "@every 1s",
        "command": "echo copied; echo 'disk full' >&2; echo '<script>x</script>'; exit 3",
    })
    write_task(dirs[0], "typo", {"schedule": "@every 1s", "command": ["/usr/bin/bakup"]})
    c = start(controllers, dirs)
    c.wait_for("run.exited", task="backup")
    c.wait_for("run.exited", task="typo")
    started = c.find("run.started", task="backup")[0]
    assert started["attempt"] == 1 and c.find("run.exited", task="backup")[0]["attempt"] == 1
    wait_until(lambda: any(r["endedAt"] for r in runs_json(dirs[1], "backup")), what="record")
    assert c.stop() == 0  # works without a controller, too

    rec = next(r for r in runs_json(dirs[1], "backup") if r["endedAt"])
    assert rec["outcome"] == "failed" and rec["exitCode"] == 3 and rec["reason"] == "exit code 3"
    assert rec["trigger"] == "schedule" and rec["attempt"] == 1 and rec["durationSeconds"] >= 0
    typo = runs_json(dirs[1], "typo")[0]
    assert typo["reason"] == "command not found: /usr/bin/bakup"
    assert typo["exitCode"] is None and typo["outcome"] == "failed"

    table = cli("runs", "--state-dir", dirs[1])
    assert table.returncode == 0
    assert table.stdout.split("\n")[0].split() == [
        "RUN", "TASK", "TRIGGER", "DUE", "STARTED", "DURATION", "OUTCOME", "REASON"]
    assert "exit code 3" in table.stdout and "command not found: /usr/bin/bakup" in table.stdout

    out = cli("logs", "backup", "--run", rec["runId"], "--state-dir", dirs[1])
    assert out.returncode == 0
    assert out.stdout == "copied\n<script>x</script>\n" and out.stderr == "disk full\n"
    only = cli("logs", "backup", "--run", rec["runId"], "--stream", "stderr", "--timestamps",
               "--state-dir", dirs[1])
    assert only.stdout == "" and only.stderr.endswith("Z disk full\n")

    assert cli("runs", "nosuch", "--state-dir", dirs[1]).returncode == 1
    assert cli("logs", "nosuch", "--state-dir", dirs[1]).returncode == 1
    assert cli("logs", "backup", "--run", "backup-20000101T000000Z-abcdef",
               "--state-dir", dirs[1]).returncode == 1


def test_timeouts_stops_and_retention(dirs, controllers) -> None:
    write_task(dirs[0], "slow", {"schedule": "@every 1s", "command": ["sleep", "30"],
                                 "timeoutSeconds": 1, "terminationGracePeriodSeconds": 0})
    write_task(dirs[0], "keeper", {"type": "daemon", "command": ["sleep", "300"]})
    write_task(dirs[0], "often", {"schedule": "* * * * * *", "command": ["true"],
                                  "successfulRunsHistoryLimit": 2})
    c = start(controllers, dirs)
    c.wait_for("run.exited", task="slow")
    c.wait_for("run.exited", task="often", count=5)
    c.wait_for("run.started", task="keeper")
    (dirs[0] / "keeper.json").unlink()
    c.wait_for("run.exited", task="keeper")
    assert c.stop() == 0
    slow = [r for r in runs_json(dirs[1], "slow") if r["endedAt"]]
    assert slow[0]["outcome"] == "timed-out" and slow[0]["reason"] == "timed out after 1 s"
    keeper = runs_json(dirs[1], "keeper")
    assert keeper[0]["outcome"] == "stopped" and keeper[0]["reason"] == "stopped: task removed"
    often = runs_json(dirs[1], "often")
    assert len([r for r in often if r["outcome"] == "succeeded"]) == 2
    files = [p.name for p in (dirs[1] / "runs" / "often").iterdir()]
    assert len([n for n in files if n != "index.json"]) == 2
    for p in (dirs[1] / "runs").rglob("*"):
        assert (p.stat().st_mode & 0o777) == (0o700 if p.is_dir() else 0o600), p


def test_logs_follow_ends_with_the_run_and_loses_no_line(dirs, controllers) -> None:
    write_task(dirs[0], "count", {
        "schedule": "@every 3600s",
        "command": "for i in $(seq 1 30); do echo line-$i; echo err-$i >&2; sleep 0.1; done",
    })
    c = start(controllers, dirs)
    assert cli("run", "count", "--state-dir", dirs[1]).returncode == 0
    c.wait_for("run.started", task="count")
    p = logs_proc(dirs[1], "count", "-f")
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert out.decode().split() == [f"line-{i}" for i in range(1, 31)]
    assert err.decode().split() == [f"err-{i}" for i in range(1, 31)]


def test_logs_follow_ends_when_the_controller_stops(dirs, controllers) -> None:
    write_task(dirs[0], "forever", {"type": "daemon",
                                    "command": "echo up; exec sleep 300"})
    c = start(controllers, dirs)
    c.wait_for("run.output", task="forever")
    p = logs_proc(dirs[1], "forever", "-f")
    wait_until(lambda: (dirs[1] / "runs" / "forever").is_dir(), what="history folder")
    assert c.stop() == 0
    out, err = p.communicate(timeout=20)
    assert p.returncode == 0 and out == b"up\n", err
    rec = runs_json(dirs[1], "forever")[0]
    assert rec["reason"] == "stopped: controller shut down"


def test_logs_follow_a_flood_prints_every_kept_line(dirs, controllers) -> None:
    write_task(dirs[0], "flood", {
        "schedule": "@every 3600s", "outputLimitBytes": 65536,
        "command": "seq 1 400000; echo done",
    })
    c = ControllerProc(dirs[0], dirs[1], count_only_output_of="flood")
    controllers.append(c)
    c.wait_for("spec.applied")
    assert cli("run", "flood", "--state-dir", dirs[1]).returncode == 0
    c.wait_for("run.started", task="flood")
    p = logs_proc(dirs[1], "flood", "-f")
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    printed = out.decode().splitlines()
    c.wait_for("run.exited", task="flood")
    final = cli("logs", "flood", "--state-dir", dirs[1]).stdout.splitlines()
    kept = [x for x in final if not x.startswith("[...")]
    assert kept[-1] == "done" and len(kept) > 1000
    # Every line the record kept was printed by the follower, in the same order.
    shown = [x for x in printed if not x.startswith("[...")]
    it = iter(shown)
    assert all(any(x == y for y in it) for x in kept)
    assert len(shown) == len(set(shown))


def test_run_wait_streams_the_output_and_exits_with_the_runs_code(dirs, controllers) -> None:
    write_task(dirs[0], "three", {"schedule": "@every 3600s",
                                  "command": "echo hello; echo oops >&2; sleep 0.5; exit 3"})
    write_task(dirs[0], "killed", {"schedule": "@every 3600s", "command": "kill -9 $$"})
    write_task(dirs[0], "nope", {"schedule": "@every 3600s", "command": ["/no/such/cmd"]})
    start(controllers, dirs)
    res = cli("run", "three", "--wait", "--state-dir", dirs[1])
    assert res.returncode == 3 and res.stdout == "hello\n", res.stderr
    assert "oops\n" in res.stderr and "exit code 3" in res.stderr
    assert cli("run", "killed", "--wait", "--state-dir", dirs[1]).returncode == 128 + 9
    nope = cli("run", "nope", "--wait", "--state-dir", dirs[1])
    assert nope.returncode == 1 and "command not found" in nope.stderr


def test_a_damaged_history_file_is_reported_and_skipped(dirs, controllers) -> None:
    write_task(dirs[0], "ok", {"schedule": "* * * * * *", "command": ["echo", "hi"]})
    c = start(controllers, dirs)
    c.wait_for("run.exited", task="ok", count=3)
    assert c.stop() == 0
    folder = dirs[1] / "runs" / "ok"
    victim = sorted(folder.glob("ok-*.json"))[0]
    victim.write_text("{not json")
    (folder / "index.json").write_text("[1, 2")
    res = cli("runs", "ok", "--state-dir", dirs[1])
    assert res.returncode == 0 and "index.json is damaged" in res.stderr
    assert f"{victim.name} is damaged" in res.stderr
    assert len(res.stdout.splitlines()) >= 3  # the header and the sound runs
    assert victim.stem not in res.stdout
    bad = cli("logs", "ok", "--run", victim.stem, "--state-dir", dirs[1])
    assert bad.returncode == 1 and "damaged" in bad.stderr
    assert cli("logs", "ok", "--state-dir", dirs[1]).stdout == "hi\n"
    c2 = start(controllers, dirs)  # the loop reports it once and goes on
    n = len(c2.wait_for("run.exited", task="ok"))
    c2.wait_for("run.exited", task="ok", count=n + 2)
    damaged = c2.wait_for("state.damaged")
    assert len({e["error"] for e in damaged}) == len(damaged)
    assert c2.stop() == 0
    assert cli("runs", "ok", "--state-dir", dirs[1]).stderr.count("index.json") == 0


@pytest.mark.slow
def test_a_full_disk_loses_history_never_runs(dirs, controllers, tmp_path) -> None:
    out = tmp_path / "ticks"
    write_task(dirs[0], "tick", {"schedule": "* * * * * *",
                                 "command": ["sh", "-c", f"echo . >> {out}; seq 1 3000"]})
    c = ControllerProc(dirs[0], dirs[1], wrapper=["prlimit", "--fsize=8000:unlimited", "--"])
    controllers.append(c)
    c.wait_for("state.write-failed", where=lambda e: e["file"].endswith("runs"))
    n = len(c.wait_for("run.exited", task="tick"))
    c.wait_for("run.exited", task="tick", count=n + 3)
    assert all(e["outcome"] == "succeeded" for e in c.find("run.exited", task="tick"))
    history_fails = [e for e in c.find("state.write-failed") if e["file"].endswith("runs")]
    assert len(history_fails) == 1, "logged once while it persists"
    folder = dirs[1] / "runs" / "tick"
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    subprocess.run(["prlimit", f"--pid={c.pid}", "--fsize=unlimited:"], check=True)
    c.wait_for("state.written", where=lambda e: e["file"].endswith("runs"), timeout=40)
    assert c.stop() == 0
    assert len(out.read_text().split()) >= n + 3
    assert os.path.exists(folder / "index.json")
