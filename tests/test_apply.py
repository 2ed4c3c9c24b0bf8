"""End-to-end: a real controller, real processes, real signals, in temp directories."""

from __future__ import annotations

import json
import os
import signal
import stat
from datetime import datetime
from pathlib import Path

import pytest
from controller_harness import (
    ControllerProc,
    pids_in_group,
    start,
    wait_until,
    write_task,
    zombies_of,
)


def test_per_second_task_runs_every_second(dirs, controllers, tmp_path: Path) -> None:
    out = tmp_path / "ticks"
    write_task(dirs[0], "tick", {"schedule": "* * * * * *", "command": ["sh", "-c", f"date +%s >> {out}"]})
    c = start(controllers, dirs)
    started = c.wait_for("run.started", task="tick", count=3)
    exited = c.wait_for("run.exited", task="tick", count=3)
    assert all(e["outcome"] == "succeeded" and e["exit_code"] == 0 for e in exited)
    dues = [datetime.fromisoformat(e["due"]).timestamp() for e in started]
    assert len(set(dues)) == len(dues), "a due second started twice"
    assert all(e["type"] == "cron" and isinstance(e["pid"], int) for e in started)
    assert c.stop() == 0
    assert len(out.read_text().split()) >= 3


def test_forbid_skips_while_a_slow_run_is_alive(dirs, controllers) -> None:
    write_task(dirs[0], "slow", {"schedule": "* * * * * *", "command": ["sleep", "4"]})
    c = start(controllers, dirs)
    skipped = c.wait_for("run.skipped", task="slow", reason="max-concurrency", count=2)
    assert all(e["due"] for e in skipped)
    assert len(c.find("run.started", task="slow")) == 1
    assert c.stop() == 0
    stopped = c.find("run.exited", task="slow")
    assert stopped and stopped[0]["outcome"] == "stopped"


def test_replace_stops_the_old_run(dirs, controllers) -> None:
    write_task(
        dirs[0],
        "repl",
        {"schedule": "*/2 * * * * *", "command": ["sleep", "100"], "concurrencyPolicy": "Replace",
         "terminationGracePeriodSeconds": 5},
    )
    c = start(controllers, dirs)
    first = c.wait_for("run.started", task="repl")[0]
    c.wait_for("run.started", task="repl", count=2, timeout=30)
    ex = c.wait_for("run.exited", task="repl", run_id=first["run_id"])[0]
    assert ex["outcome"] == "stopped"
    assert ex["signal"] == "SIGTERM"
    assert c.stop() == 0


def test_timeout_kills_the_whole_group(dirs, controllers, tmp_path: Path) -> None:
    write_task(
        dirs[0],
        "hang",
        {"schedule": "@every 1h", "command": "sleep 100 & sleep 100", "timeoutSeconds": 1,
         "terminationGracePeriodSeconds": 2},
    )
    c = start(controllers, dirs)
    c.signal(signal.SIGHUP)  # nothing to change; reload must not disturb anything
    import subprocess
    import sys

    # Start it now rather than waiting for the hour.
    res = subprocess.run(
        [sys.executable, "-m", "reconciler", "run", "hang", "--state-dir", str(dirs[1])],
        capture_output=True, text=True, timeout=30,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    started = c.wait_for("run.started", task="hang")[0]
    assert started["trigger"] == "manual" and started["due"] is None
    pgid = started["pid"]
    ex = c.wait_for("run.exited", task="hang", timeout=30)[0]
    assert ex["outcome"] == "timed-out"
    wait_until(lambda: not pids_in_group(pgid), 10, "no survivor of the run's group")
    assert c.stop() == 0


def test_daemon_restarted_with_growing_delays(dirs, controllers) -> None:
    write_task(dirs[0], "crashy", {"type": "daemon", "command": ["sh", "-c", "exit 3"]})
    c = start(controllers, dirs)
    starts = c.wait_for("run.started", task="crashy", count=4, timeout=40)
    times = [datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp() for e in starts]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert gaps[0] >= 0.9 and gaps[1] >= 1.9 and gaps[2] >= 3.9, gaps
    assert gaps[2] > gaps[0]
    assert all(e["type"] == "daemon" and e["due"] is None for e in starts)
    exits = c.find("run.exited", task="crashy")
    assert exits[0]["exit_code"] == 3 and exits[0]["outcome"] == "failed"
    assert c.stop() == 0


def test_sigterm_stops_everything_gracefully(dirs, controllers) -> None:
    write_task(dirs[0], "d1", {"type": "daemon", "command": "sleep 1000 & sleep 1000; wait"})
    write_task(
        dirs[0], "d2",
        {"type": "daemon", "command": ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"]},
    )
    c = start(controllers, dirs)
    s1 = c.wait_for("run.started", task="d1")[0]
    s2 = c.wait_for("run.started", task="d2")[0]
    groups = [s1["pid"], s2["pid"]]
    assert c.stop(timeout=60) == 0
    for pgid in groups:
        assert not pids_in_group(pgid), f"group {pgid} survived"
    assert zombies_of(c.pid) == []
    outcomes = {e["task"]: e["outcome"] for e in c.find("run.exited")}
    assert outcomes == {"d1": "stopped", "d2": "stopped"}
    assert c.find("controller.stopped")


def test_long_line_arrives_split_and_complete(dirs, controllers) -> None:
    size = 1_000_000
    write_task(
        dirs[0], "big",
        {"type": "daemon", "restartPolicy": "Never",
         "command": ["python3", "-c", f"import sys; sys.stdout.write('a' * {size} + '\\n')"]},
    )
    c = start(controllers, dirs)
    c.wait_for("run.exited", task="big")
    parts = c.find("run.output", task="big")
    assert len(parts) >= 2
    text = "".join(p["message"] for p in parts)
    assert text.count("a") == size
    assert all(p["stream"] == "stdout" for p in parts)
    assert c.stop() == 0


def test_non_utf8_output_is_escaped(dirs, controllers) -> None:
    write_task(
        dirs[0], "bytes",
        {"type": "daemon", "restartPolicy": "Never",
         "command": ["sh", "-c", "printf 'ok \\377\\376 end\\n'; printf 'err line\\n' >&2"]},
    )
    c = start(controllers, dirs)
    c.wait_for("run.exited", task="bytes")
    lines = {e["stream"]: e["message"] for e in c.find("run.output", task="bytes")}
    assert lines["stdout"] == "ok \\xff\\xfe end"
    assert lines["stderr"] == "err line"
    assert c.stop() == 0


def test_hosts_that_do_not_match_start_nothing(dirs, controllers) -> None:
    write_task(dirs[0], "elsewhere", {"schedule": "* * * * * *", "command": ["true"], "hosts": ["db-*", "10.1.0.0/16"]})
    write_task(dirs[0], "here", {"schedule": "* * * * * *", "command": ["true"], "hosts": ["test-*"]})
    c = start(controllers, dirs)
    c.wait_for("run.exited", task="here", count=2)
    assert not c.find("run.started", task="elsewhere")
    applied = c.find("spec.applied")[0]
    assert applied["added"] == ["here"]
    assert c.stop() == 0


def test_env_values_never_logged(dirs, controllers, tmp_path: Path) -> None:
    out = tmp_path / "env"
    write_task(
        dirs[0], "secret",
        {"schedule": "* * * * * *", "env": {"API_TOKEN": "hunter2-very-secret"},
         "command": ["sh", "-c", f"printf '%s' \"$API_TOKEN\" > {out}"]},
    )
    c = start(controllers, dirs)
    c.wait_for("run.exited", task="secret")
    assert out.read_text() == "hunter2-very-secret"
    assert c.stop() == 0
    assert not any("hunter2" in line for line in c.raw)
    for f in dirs[1].iterdir():
        if f.is_file():
            assert b"hunter2" not in f.read_bytes(), f


def test_suspended_task_does_not_run(dirs, controllers) -> None:
    write_task(dirs[0], "off", {"schedule": "* * * * * *", "command": ["true"], "suspend": True})
    write_task(dirs[0], "on", {"schedule": "* * * * * *", "command": ["true"]})
    c = start(controllers, dirs)
    c.wait_for("run.exited", task="on", count=3)
    assert not c.find("run.started", task="off")
    assert len(c.find("run.skipped", task="off", reason="suspended")) == 1  # logged once
    assert c.stop() == 0


def test_state_dir_is_private(dirs, controllers) -> None:
    old = os.umask(0)
    try:
        write_task(dirs[0], "t", {"schedule": "* * * * * *", "command": ["true"]})
        c = start(controllers, dirs)
        c.wait_for("run.exited", task="t")
    finally:
        os.umask(old)
    assert (dirs[1].stat().st_mode & 0o777) == 0o700
    for f in dirs[1].iterdir():
        try:
            st = f.lstat()
        except FileNotFoundError:
            continue  # a temp file renamed over its target since the listing
        if stat.S_ISREG(st.st_mode):
            assert (st.st_mode & 0o777) == 0o600, f
    assert c.stop() == 0


def test_refuses_a_group_writable_state_dir(dirs, tmp_path: Path) -> None:
    import subprocess
    import sys

    dirs[1].mkdir()
    os.chmod(dirs[1], 0o770)
    res = subprocess.run(
        [sys.executable, "-m", "reconciler", "apply", str(dirs[0]), "--state-dir", str(dirs[1])],
        capture_output=True, text=True, timeout=30,
    )
    assert res.returncode == 1
    assert "group- or world-writable" in res.stderr


def test_second_controller_on_same_state_dir_refused(dirs, controllers) -> None:
    import subprocess
    import sys

    c = start(controllers, dirs)
    res = subprocess.run(
        [sys.executable, "-m", "reconciler", "apply", str(dirs[0]), "--state-dir", str(dirs[1])],
        capture_output=True, text=True, timeout=30,
    )
    assert res.returncode == 1
    assert f"another controller (pid {c.pid})" in res.stderr
    assert c.stop() == 0


def test_http_without_host_is_a_usage_error(dirs) -> None:
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, "-m", "reconciler", "apply", str(dirs[0]), "--http", ":9100"],
        capture_output=True, text=True, timeout=30,
    )
    assert res.returncode == 2


def test_runs_json_records_live_runs(dirs, controllers) -> None:
    write_task(dirs[0], "d", {"type": "daemon", "command": ["sleep", "1000"]})
    c = start(controllers, dirs)
    s = c.wait_for("run.started", task="d")[0]

    def recorded() -> bool:
        try:
            runs = json.loads((dirs[1] / "runs.json").read_text())
        except (OSError, ValueError):
            return False
        return any(r["pid"] == s["pid"] and r["start_ticks"] for r in runs)

    wait_until(recorded, 10, "runs.json lists the daemon")
    assert c.stop() == 0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_metrics_and_health_of_a_running_controller(dirs, controllers) -> None:
    import urllib.error
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    port = _free_port()
    write_task(dirs[0], "ok", {"schedule": "* * * * * *", "command": ["true"]})
    write_task(dirs[0], "bad", {"schedule": "* * * * * *", "command": ["false"]})
    c = start(controllers, dirs, "--http", f"127.0.0.1:{port}")
    c.wait_for("run.exited", task="ok", count=2)
    c.wait_for("run.exited", task="bad", count=2)
    base = f"http://127.0.0.1:{port}"
    with urllib.request.urlopen(base + "/healthz", timeout=10) as r:
        assert r.status == 200
    with urllib.request.urlopen(base + "/readyz", timeout=10) as r:
        assert r.status == 200
    with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
        text = r.read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    finished = {
        (s.labels["task"], s.labels["outcome"]): s.value
        for s in families["reconciler_runs_finished"].samples
        if s.name == "reconciler_runs_finished_total"
    }
    assert finished[("ok", "succeeded")] >= 2
    assert finished[("bad", "failed")] >= 2
    assert families["reconciler_tasks_loaded"].samples[0].value == 2
    req = urllib.request.Request(base + "/metrics", method="POST", data=b"")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 405
    # Counters survive a reload that changes the task.
    before = finished[("ok", "succeeded")]
    write_task(dirs[0], "ok", {"schedule": "* * * * * *", "command": ["true"], "timeoutSeconds": 5})
    c.wait_for("spec.applied", where=lambda e: e["changed"] == ["ok"])
    with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
        again = r.read().decode()
    value = next(
        s.value
        for f in text_string_to_metric_families(again)
        for s in f.samples
        if s.name == "reconciler_runs_finished_total"
        and s.labels == {"task": "ok", "outcome": "succeeded"}
    )
    assert value >= before
    assert c.stop() == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a controller as nobody")
def test_non_root_controller_names_tasks_that_need_root(dirs, controllers, tmp_path: Path) -> None:
    import shutil

    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is not installed")
    import pwd
    import tempfile

    # pytest's temp folders are private to root: give nobody a tree it can reach.
    base = Path(tempfile.mkdtemp(prefix="reconciler-nobody-"))
    os.chmod(base, 0o755)
    spec = base / "specs"
    spec.mkdir(mode=0o755)
    state = base / "state"
    state.mkdir(mode=0o700)
    nobody = pwd.getpwnam("nobody")
    os.chown(state, nobody.pw_uid, nobody.pw_gid)
    write_task(spec, "as-root", {"schedule": "* * * * * *", "command": ["true"], "user": "root"})
    write_task(spec, "plain", {"schedule": "* * * * * *", "command": ["true"]})
    c = ControllerProc(
        spec, state,
        wrapper=["setpriv", "--reuid", "nobody", "--regid", str(nobody.pw_gid), "--clear-groups"],
        env={"HOME": "/nonexistent"},
    )
    controllers.append(c)
    err = c.wait_for("spec.invalid", task="as-root")[0]
    assert "spec.user" in err["error"] and "needs a root controller" in err["error"]
    c.wait_for("run.exited", task="plain")
    failed = c.wait_for("run.exited", task="as-root")[0]
    assert failed["outcome"] == "failed" and "root controller" in failed["error"]
    assert c.stop() == 0
    shutil.rmtree(base, ignore_errors=True)


def test_output_flood_does_not_delay_other_starts(dirs, controllers) -> None:
    write_task(dirs[0], "flood", {"type": "daemon", "restartPolicy": "Never",
                                  "command": "yes 'a line of output that floods the log' | head -c 200000000"})
    write_task(dirs[0], "tick", {"schedule": "* * * * * *", "command": ["true"]})
    c = ControllerProc(dirs[0], dirs[1], count_only_output_of="flood")
    controllers.append(c)
    wait_until(lambda: c.flood_lines > 10000, 30, "the flood to start")
    starts = c.wait_for("run.started", task="tick", count=4, timeout=30)
    late = [
        datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp()
        - datetime.fromisoformat(e["due"]).timestamp()
        for e in starts
    ]
    # Generous for a loaded 2-core machine; a stalled loop would be seconds late.
    assert max(late) < 0.5, late
    assert not c.find("run.skipped", task="tick")
    assert c.find("run.exited", task="flood") == []  # still flooding while the ticks ran
    assert c.stop() == 0


def test_control_socket_abuse_neither_stalls_nor_stops_the_loop(dirs, controllers) -> None:
    import socket
    import time

    write_task(dirs[0], "tick", {"schedule": "* * * * * *", "command": ["true"]})
    c = start(controllers, dirs)
    c.wait_for("run.started", task="tick")
    path = str(dirs[1] / "control.sock")
    idle = []
    for _ in range(5):  # connect and say nothing
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        idle.append(s)
    bomb = socket.socket(socket.AF_UNIX)
    bomb.connect(path)
    bomb.sendall(b"[" * 5000 + b"\n")  # nesting that a naive parser recurses on
    before = len(c.find("run.started", task="tick"))
    time.sleep(4)
    assert len(c.find("run.started", task="tick")) >= before + 3  # ticks went on
    bomb.settimeout(20)
    assert b"bad request" in bomb.recv(4096)
    for s in (*idle, bomb):
        s.close()
    assert c.proc.poll() is None
    assert not c.find("run.skipped", task="tick")
    assert c.stop() == 0


def test_suspension_is_logged_again_after_a_resume(dirs, controllers) -> None:
    spec = {"schedule": "* * * * * *", "command": ["true"]}
    write_task(dirs[0], "s", {**spec, "suspend": True})
    c = start(controllers, dirs)
    c.wait_for("run.skipped", task="s", reason="suspended")
    write_task(dirs[0], "s", spec)
    c.wait_for("run.started", task="s")
    write_task(dirs[0], "s", {**spec, "suspend": True})
    c.wait_for("run.skipped", task="s", reason="suspended", count=2)
    assert c.stop() == 0


def test_sigterm_while_starting_is_a_clean_stop(dirs, controllers) -> None:
    import time

    write_task(dirs[0], "boot", {"schedule": "@reboot", "command": ["true"]})
    c = ControllerProc(dirs[0], dirs[1])
    controllers.append(c)

    def catches_sigterm() -> bool:
        try:
            status = Path(f"/proc/{c.pid}/status").read_text()
        except OSError:
            return False
        caught = int(status.split("SigCgt:")[1].split()[0], 16)
        return bool(caught & (1 << (signal.SIGTERM - 1)))

    deadline = time.monotonic() + 20
    while not catches_sigterm() and time.monotonic() < deadline:
        time.sleep(0.001)
    c.signal(signal.SIGTERM)  # as early as the process can know of it
    assert c.proc.wait(30) == 0
    assert not c.find("run.started")


def test_a_runs_output_never_comes_before_its_start(dirs, controllers) -> None:
    """Thirty runs due the same second print at once: every run.output line follows its
    run's run.started line (output waits in the pipe until the start is logged)."""
    for i in range(30):
        write_task(dirs[0], f"say{i:02d}", {"schedule": "* * * * * *", "command": ["echo", "hi"]})
    c = start(controllers, dirs)
    c.wait_for("run.output", count=90)
    assert c.stop() == 0
    started: set[str] = set()
    for e in list(c.events):
        if e.get("event") == "run.started":
            started.add(e["run_id"])
        elif e.get("event") == "run.output":
            assert e["run_id"] in started, f"output of {e['run_id']} came before its start"
    assert len(started) >= 90
