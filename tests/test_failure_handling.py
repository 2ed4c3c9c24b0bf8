"""Failure handling end to end: retries, success codes, crash-loop give-up, notifications
and dead-man pings, with real controllers, real processes and a real local HTTP server."""

from __future__ import annotations

import json
import os
import signal
import time

from controller_harness import ControllerProc, cli, start, write_task
from notify_servers import http_server


def test_a_failed_run_is_retried_then_notified_once(dirs, controllers) -> None:
    """Three attempts of one due time (attempt 1, 2, 3, trigger retry), delays doubling,
    and one `failure` notification after the last attempt, not one per attempt."""
    with http_server() as hooks:
        write_task(dirs[0], "boot", {
            "schedule": "@reboot",
            "command": ["false"],
            "retry": {"limit": 2, "delaySeconds": 1, "maxDelaySeconds": 60},
            "notify": [{"on": ["failure"], "webhook": f"{hooks.url}/hook"}],
        })
        # @reboot runs are not retried: the retried task is a scheduled one.
        write_task(dirs[0], "every", {
            "schedule": "*/30 * * * * *",
            "command": ["sh", "-c", "exit 4"],
            "retry": {"limit": 2, "delaySeconds": 1, "maxDelaySeconds": 60},
            "notify": [{"on": ["failure", "success"], "webhook": f"{hooks.url}/every"}],
        })
        c = start(controllers, dirs)
        exits = c.wait_for("run.exited", task="every", count=3, timeout=70)
        assert [e["attempt"] for e in exits] == [1, 2, 3]
        assert len({e["due"] for e in exits}) == 1, "every attempt is of the same due time"
        starts = c.find("run.started", task="every")
        assert [s.get("trigger", "schedule") for s in starts[:3]] == ["schedule", "retry", "retry"]
        retrying = c.find("run.retrying", task="every")
        assert [r["delay_s"] for r in retrying[:2]] == [1.0, 2.0]
        hooks.wait_for(1, prefix="/every", timeout=15)
        time.sleep(1.5)
        posts = [json.loads(s.body) for s in hooks.seen if s.path == "/every"]
        assert len(posts) == 1 and posts[0]["event"] == "failure"
        assert posts[0]["attempt"] == 3 and posts[0]["reason"] == "exit code 4"
        assert posts[0]["outcome"] == "failed" and posts[0]["task"] == "every"
        # @reboot failed once, not retried, and notified.
        assert len(c.find("run.exited", task="boot")) == 1
        assert not c.find("run.retrying", task="boot")
        hooks.wait_for(1, prefix="/hook", timeout=15)
        assert c.stop() == 0


def test_success_exit_codes(dirs, controllers) -> None:
    write_task(dirs[0], "three", {
        "schedule": "@reboot", "command": ["sh", "-c", "exit 3"], "successExitCodes": [0, 3],
    })
    write_task(dirs[0], "two", {
        "schedule": "@reboot", "command": ["sh", "-c", "exit 2"], "successExitCodes": [0, 3],
    })
    c = start(controllers, dirs)
    assert c.wait_for("run.exited", task="three")[0]["outcome"] == "succeeded"
    assert c.wait_for("run.exited", task="two")[0]["outcome"] == "failed"
    assert c.stop() == 0


def test_recovery_is_the_first_success_after_failures(dirs, controllers, tmp_path) -> None:
    flag = tmp_path / "fail"
    flag.write_text("x")
    with http_server() as hooks:
        write_task(dirs[0], "job", {
            "schedule": "* * * * * *",
            "command": ["sh", "-c", f"test ! -e {flag}"],
            "notify": [{"on": ["failure", "recovery"], "webhook": f"{hooks.url}/n"}],
        })
        c = start(controllers, dirs)
        c.wait_for("run.exited", task="job", count=2, where=lambda e: e["outcome"] == "failed")
        flag.unlink()
        c.wait_for("run.exited", task="job", count=2, where=lambda e: e["outcome"] == "succeeded")
        hooks.wait_for(3, prefix="/n", timeout=15)
        time.sleep(1.0)
        kinds = [json.loads(s.body)["event"] for s in hooks.seen if s.path == "/n"]
        assert "recovery" in kinds
        assert kinds.count("recovery") == 1, kinds
        assert kinds.index("recovery") > kinds.index("failure")
        assert c.stop() == 0


def test_healthcheck_pings_start_and_fail_never_success_on_failure(dirs, controllers) -> None:
    with http_server() as hooks:
        write_task(dirs[0], "ok", {
            "schedule": "@reboot", "command": ["echo", "fine"],
            "healthcheck": {"url": f"{hooks.url}/ok"},
        })
        write_task(dirs[0], "bad", {
            "schedule": "@reboot", "command": ["sh", "-c", "echo broken; exit 1"],
            "healthcheck": {"url": f"{hooks.url}/bad"},
        })
        c = start(controllers, dirs)
        hooks.wait_for(2, prefix="/ok", timeout=15)
        hooks.wait_for(2, prefix="/bad", timeout=15)
        seen = {(s.method, s.path): s.body for s in hooks.seen}
        assert ("GET", "/ok/start") in seen and ("POST", "/ok") in seen
        assert ("GET", "/bad/start") in seen and ("POST", "/bad/fail") in seen
        assert ("POST", "/bad") not in seen, "the success URL is never pinged for a failure"
        assert b"broken" in seen[("POST", "/bad/fail")]
        assert c.stop() == 0


def metric(c: ControllerProc, port: int, name: str) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return "\n".join(line for line in text.splitlines() if line.startswith(name))


def test_a_crash_looping_daemon_gives_up_until_run_again(dirs, controllers) -> None:
    write_task(dirs[0], "crashy", {
        "type": "daemon", "command": ["false"],
        "crashLoop": {"maxRestarts": 2, "windowSeconds": 600},
    })
    port = _free_port()
    c = start(controllers, dirs, "--http", f"127.0.0.1:{port}")
    gave_up = c.wait_for("daemon.gave-up", task="crashy", timeout=30)
    assert gave_up[0]["level"] == "error"
    time.sleep(3)
    assert len(c.find("run.started", task="crashy")) == 3, "maxRestarts + 1 starts"
    assert 'reconciler_daemon_gave_up{task="crashy"} 1.0' in metric(c, port, "reconciler_daemon_gave_up")
    shown = cli("status", "--state-dir", dirs[1])
    assert shown.returncode == 0 and "crash-loop" in shown.stdout, shown.stdout
    # `reconciler run NAME` starts it again.
    out = cli("run", "crashy", "--state-dir", dirs[1])
    assert out.returncode == 0, out.stderr
    c.wait_for("run.started", task="crashy", count=4, timeout=10)
    assert c.stop() == 0


def test_a_waiting_retry_survives_a_restart(dirs, controllers) -> None:
    write_task(dirs[0], "later", {
        "schedule": "*/30 * * * * *",
        "command": ["false"],
        "retry": {"limit": 1, "delaySeconds": 6, "maxDelaySeconds": 60},
    })
    c = start(controllers, dirs)
    retrying = c.wait_for("run.retrying", task="later", timeout=40)[0]
    shown = json.loads(cli("status", "-o", "json", "--state-dir", dirs[1]).stdout)
    later = [t for t in shown["tasks"] if t["name"] == "later"][0]
    assert later["retry"]["attempt"] == 2
    assert c.stop() == 0
    c2 = ControllerProc(dirs[0], dirs[1])
    controllers.append(c2)
    second = c2.wait_for("run.started", task="later", timeout=20)[0]
    assert second["attempt"] == 2 and second["trigger"] == "retry"
    assert second["due"] == retrying["due"]
    c2.wait_for("run.exited", task="later", timeout=10)
    assert c2.stop() == 0
    # The attempt ran once: a third controller does not start it again.
    c3 = ControllerProc(dirs[0], dirs[1])
    controllers.append(c3)
    c3.wait_for("spec.applied")
    time.sleep(2)
    assert not c3.find("run.started", task="later", trigger="retry")
    assert c3.stop() == 0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])



def test_status_counts_notifications_that_failed(dirs, controllers) -> None:
    with http_server() as hooks:
        write_task(dirs[0], "noisy", {
            "schedule": "@reboot", "command": ["false"],
            "notify": [{"on": ["failure"], "webhook": f"{hooks.url}/status/500"}],
        })
        c = start(controllers, dirs)
        c.wait_for("notify.failed", task="noisy", timeout=30)
        failed = c.find("notify.failed", task="noisy")[0]
        assert "/status/500" not in json.dumps(failed), "the target URL is masked"

        def shown() -> dict:
            out = cli("status", "-o", "json", "--state-dir", dirs[1])
            return json.loads(out.stdout)["notifications"]

        deadline = time.monotonic() + 10
        while shown().get("failed", 0) < 1:
            assert time.monotonic() < deadline, shown()
            time.sleep(0.2)
        assert "Notifications:" in cli("status", "--state-dir", dirs[1]).stdout
        assert c.stop() == 0


def test_daemon_replicas_each_get_their_index(dirs, controllers, tmp_path) -> None:
    """replicas: 3 keeps three processes, RECONCILER_REPLICA 0, 1 and 2; one that dies is
    restarted as the same replica; scaling down stops the extra ones."""
    marks = tmp_path / "replicas"
    marks.mkdir()
    write_task(dirs[0], "worker", {
        "type": "daemon", "replicas": 3,
        "command": ["sh", "-c", f"echo $$ > {marks}/$RECONCILER_REPLICA; exec sleep 300"],
    })
    c = start(controllers, dirs)
    c.wait_for("run.started", task="worker", count=3)
    deadline = time.monotonic() + 10
    while len(list(marks.iterdir())) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert sorted(p.name for p in marks.iterdir()) == ["0", "1", "2"]
    pid1 = int((marks / "1").read_text())
    (marks / "1").unlink()
    os.kill(pid1, signal.SIGKILL)
    c.wait_for("run.started", task="worker", count=4, timeout=20)
    deadline = time.monotonic() + 10
    while not (marks / "1").exists():
        assert time.monotonic() < deadline, "replica 1 came back as replica 1"
        time.sleep(0.1)
    write_task(dirs[0], "worker", {
        "type": "daemon", "replicas": 1,
        "command": ["sh", "-c", f"echo $$ > {marks}/$RECONCILER_REPLICA; exec sleep 300"],
    })
    stopping = c.wait_for("run.stopping", task="worker", count=2, timeout=20)
    assert {e["reason"] for e in stopping} == {"scaled-down"}
    assert c.stop() == 0
