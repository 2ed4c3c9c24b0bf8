"""The delivery room on its own: real HTTP and SMTP servers, real commands, no controller."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from notify_servers import http_server, refused_url, smtp_server

from reconciler.notify import (
    Notifier,
    OutputTail,
    Target,
    build_message,
    mask_url,
    secret_url_views,
    unavailable,
    url_problem,
)
from reconciler.notify import targets as targets_mod
from reconciler.obs.metrics import Metrics

RECORD = {
    "run_id": "job-1",
    "task": "job",
    "trigger": "schedule",
    "attempt": 1,
    "due": "2026-01-01T03:00:00Z",
    "started": "2026-01-01T03:00:00Z",
    "ended": "2026-01-01T03:00:02Z",
    "duration_s": 2.0,
    "pid": 123,
    "exit_code": 3,
    "signal": None,
    "outcome": "failed",
    "reason": "exited with code 3",
}


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, event: str, message: str, level: str = "info", **fields: Any) -> None:
        self.lines.append((event, fields))

    def events(self, name: str) -> list[dict[str, Any]]:
        return [f for e, f in self.lines if e == name]


@pytest.fixture
def log() -> Log:
    return Log()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def notifier(log: Log, metrics: Metrics) -> Iterator[Notifier]:
    n = Notifier(metrics, timeout=2.0, backoff=(0.05, 0.05), log=log)
    yield n
    n.close(0.5)


def target(kind: str, value: Any, *on: str) -> Target:
    return Target(frozenset(on or ("failure",)), kind, value)  # type: ignore[arg-type]


def message(targets: list[Target], event: str = "failure", lines: list[str] | None = None) -> Any:
    tail = OutputTail()
    for line in lines or []:
        tail.add(line)
    return build_message("job", event, RECORD, targets, tail, "web-1")  # type: ignore[arg-type]


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


# --- messages ------------------------------------------------------------------------


def test_only_subscribed_targets_get_a_message() -> None:
    a = target("webhook", "http://a.example/x", "failure", "recovery")
    b = target("webhook", "http://b.example/x", "success")
    msg = message([a, b], "recovery")
    assert msg is not None and msg.targets == (a,)
    assert message([a, b], "start") is None


def test_output_tail_keeps_100_lines_and_10_kib() -> None:
    tail = OutputTail()
    for i in range(1000):
        tail.add(f"line {i} " + "x" * 100)
    lines = tail.lines()
    assert len(lines) == 100 and lines[-1].startswith("line 999 ")
    data = tail.tail_bytes()
    assert len(data) == 10 * 1024 and data.endswith(b"x\n")


# --- webhooks and pings ----------------------------------------------------------------


def test_webhook_posts_the_run_record_as_json(notifier: Notifier) -> None:
    with http_server() as hooks:
        notifier.submit(message([target("webhook", hooks.url + "/hook")]))
        (seen,) = hooks.wait_for(1)
    assert seen.method == "POST" and seen.path == "/hook"
    body = json.loads(seen.body)
    assert {k: body[k] for k in RECORD} == RECORD
    assert body["event"] == "failure" and body["host"] == "web-1"


def test_pings_start_success_and_fail(notifier: Notifier) -> None:
    with http_server() as hooks:
        url = hooks.url + "/ping/abc?x=1"
        notifier.ping(url, "start", task="job")
        notifier.ping(url, "success", task="job", body=b"all good\n")
        notifier.ping(url, "fail", task="job", body=b"y" * 10240)
        seen = hooks.wait_for(3)
    assert [(s.method, s.path) for s in seen] == [
        ("GET", "/ping/abc/start?x=1"),
        ("POST", "/ping/abc?x=1"),
        ("POST", "/ping/abc/fail?x=1"),
    ]
    assert seen[1].body == b"all good\n" and seen[2].body == b"y" * 10240


def test_a_ping_that_fails_its_try_keeps_its_order(log: Log) -> None:
    n = Notifier(timeout=2.0, backoff=(0.3, 0.3), log=log)
    with http_server() as hooks:
        # The start ping answers 500 twice... then the later ping must not overtake it.
        url = hooks.url + "/status/500"
        n.ping(url, "start", task="job")
        n.ping(url, "fail", task="job")
        assert n.idle(10)
        paths = hooks.paths()
    n.close(0.1)
    assert paths == ["/status/500/start"] * 3 + ["/status/500/fail"] * 3


def test_500_is_tried_three_times_and_logged_once_per_target(
    notifier: Notifier, log: Log, metrics: Metrics
) -> None:
    with http_server() as hooks:
        url = hooks.url + "/status/500"
        notifier.submit(message([target("webhook", url)]))
        assert notifier.idle(10)
        notifier.submit(message([target("webhook", url)]))
        assert notifier.idle(10)
        assert hooks.paths() == ["/status/500"] * 6
    (failed,) = log.events("notify.failed")
    assert failed == {
        "task": "job",
        "kind": "webhook",
        "target": "http://127.0.0.1/***",
        "notification": "failure",
        "tries": 3,
        "error": "HTTP 500",
    }
    assert sample(metrics, "reconciler_notifications_failed_total", task="job", kind="webhook") == 2


def test_logged_again_after_a_success(notifier: Notifier, log: Log) -> None:
    with http_server() as hooks:
        hooks.failing.add("/flaky")
        flaky = target("webhook", hooks.url + "/flaky")
        for _ in range(2):
            notifier.submit(message([flaky]))
            assert notifier.idle(10)
        assert len(log.events("notify.failed")) == 1
        hooks.failing.clear()
        notifier.submit(message([flaky]))
        assert notifier.idle(10)
        hooks.failing.add("/flaky")
        notifier.submit(message([flaky]))
        assert notifier.idle(10)
    assert len(log.events("notify.failed")) == 2


def test_refused_and_hanging_targets_fail_without_quoting_the_url(log: Log) -> None:
    n = Notifier(timeout=0.5, backoff=(0.01, 0.01), log=log)
    with http_server() as hooks:
        refused = refused_url() + "/token-123"
        hang = hooks.url + "/hang/token-456"
        n.submit(message([target("webhook", refused), target("webhook", hang)]))
        assert n.idle(15)
    n.close(0.1)
    texts = [f["error"] for f in log.events("notify.failed")]
    assert sorted(texts) == ["connection refused", "timed out"]
    assert not any("token" in json.dumps(f) for f in log.events("notify.failed"))


def test_a_hanging_target_costs_other_targets_nothing(log: Log) -> None:
    n = Notifier(timeout=5.0, backoff=(0.01, 0.01), log=log)
    with http_server() as hooks:
        hang = target("webhook", hooks.url + "/hang")
        for _ in range(50):
            n.submit(message([hang]))
        t0 = time.monotonic()
        n.submit(message([target("webhook", hooks.url + "/fine")]))
        (seen,) = hooks.wait_for(1, prefix="/fine")
        delay = seen.at - t0
        n.close(0.1)
    # The hanging target holds its own two slots; the other one goes by at once (well
    # under the 5 s a try to the hanging one takes).
    assert delay < 2.0


def test_a_full_queue_drops_the_oldest_of_the_busiest_target(metrics: Metrics) -> None:
    n = Notifier(metrics, workers=1, capacity=10, timeout=3.0, log=Log())
    with http_server() as hooks:
        hang = target("webhook", hooks.url + "/hang")
        n.submit(message([hang]))  # in flight
        hooks.wait_for(1)
        n.submit(message([target("webhook", hooks.url + "/other")]))
        for _ in range(30):
            n.submit(message([hang]))
        assert n.counts["dropped"] == 21
        assert sample(metrics, "reconciler_notifications_dropped_total", kind="webhook") == 21
        hooks.release.set()  # the hung request answers nothing; the try times out
        hooks.wait_for(1, prefix="/other", timeout=10)
        n.close(0.1)


def test_submit_never_waits() -> None:
    n = Notifier(timeout=5.0, capacity=100, log=Log())
    with http_server() as hooks:
        hang = target("webhook", hooks.url + "/hang")
        for _ in range(2000):
            n.submit(message([hang]))
        assert n.pending() <= 100
        n.close(0.1)


# --- commands --------------------------------------------------------------------------


def test_command_gets_env_and_last_100_lines(notifier: Notifier, tmp_path: Path) -> None:
    out = tmp_path / "out"
    script = f"env | grep ^RECONCILER_ | sort > {out}.env; cat > {out}.stdin"
    notifier.submit(
        message([target("command", ("sh", "-c", script))], lines=[f"l{i}" for i in range(150)])
    )
    assert notifier.idle(10) and notifier.counts["delivered"] == 1
    env = dict(line.split("=", 1) for line in Path(f"{out}.env").read_text().splitlines())
    assert env == {
        "RECONCILER_ATTEMPT": "1",
        "RECONCILER_EVENT": "failure",
        "RECONCILER_EXIT_CODE": "3",
        "RECONCILER_HOST": "web-1",
        "RECONCILER_OUTCOME": "failed",
        "RECONCILER_REASON": "exited with code 3",
        "RECONCILER_RUN_ID": "job-1",
        "RECONCILER_TASK": "job",
    }
    assert Path(f"{out}.stdin").read_text() == "".join(f"l{i}\n" for i in range(50, 150))


def test_command_exit_status_survives_a_supervisor_reaping_everything(
    notifier: Notifier, log: Log
) -> None:
    from reconciler.supervisor import RunSpec, Supervisor

    sup = Supervisor(lambda *a: None)
    stop = threading.Event()

    def reap() -> None:
        while not stop.is_set():
            sup.poll()
            time.sleep(0.001)

    reaper = threading.Thread(target=reap, daemon=True)
    reaper.start()
    try:
        sup.start(RunSpec("r1", "other", ["sleep", "0.2"]))
        notifier.submit(message([target("command", ("sh", "-c", "sleep 0.1; exit 3"))]))
        notifier.submit(message([target("command", ("true",))]))
        assert notifier.idle(10)
    finally:
        stop.set()
        reaper.join()
        sup.close()
    (failed,) = log.events("notify.failed")
    assert failed["error"] == "exited with code 3" and failed["kind"] == "command"
    assert notifier.counts == {"delivered": 1, "failed": 1, "dropped": 0}


def test_command_killed_at_its_time_out(log: Log, tmp_path: Path) -> None:
    n = Notifier(timeout=0.5, backoff=(0.01, 0.01), log=log)
    pidfile = tmp_path / "pid"
    n.submit(message([target("command", ("sh", "-c", f"echo $$ >> {pidfile}; sleep 30"))]))
    assert n.idle(10)
    n.close(0.1)
    (failed,) = log.events("notify.failed")
    assert failed["error"] == "timed out after 0.5s; killed"
    pids = pidfile.read_text().split()
    assert len(pids) == 3  # one per try
    deadline = time.monotonic() + 5  # SIGKILL is sent; the exit itself takes a moment

    def gone(pid: str) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            return True

    while not all(gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(gone(p) for p in pids)


def test_command_that_does_not_read_stdin_and_is_missing(notifier: Notifier, log: Log) -> None:
    notifier.submit(message([target("command", ("true",))], lines=["x" * 60000] * 100))
    notifier.submit(message([target("command", ("/nonexistent/page-oncall",))]))
    assert notifier.idle(10)
    (failed,) = log.events("notify.failed")
    assert "127" in failed["error"] and failed["target"] == "/nonexistent/page-oncall"


# --- Apprise ----------------------------------------------------------------------------


def test_apprise_mail_to_a_real_smtp_server(notifier: Notifier, log: Log) -> None:
    pytest.importorskip("apprise")
    with smtp_server() as (port, received):
        url = f"mailto://ops:secret@127.0.0.1:{port}?from=cron@example.com&to=oncall@example.com"
        assert url_problem("apprise", url) is None
        notifier.submit(message([target("apprise", url)], lines=["boom"]))
        assert notifier.idle(20)
        assert len(received) == 1
        mail = received[0]
    assert mail["Subject"] == "job: failure on web-1"
    body = (
        mail.get_payload(decode=True)
        if not mail.is_multipart()
        else mail.get_payload(0).get_payload(decode=True)
    )
    assert b"exit code 3" in body and b"boom" in body
    assert log.events("notify.failed") == []


def test_apprise_failure_is_logged_masked(notifier: Notifier, log: Log) -> None:
    pytest.importorskip("apprise")
    with smtp_server() as (port, _):
        url = f"mailto://ops:wrongpass@127.0.0.1:{port}?from=cron@example.com&to=o@example.com"
        notifier.submit(message([target("apprise", url)]))
        assert notifier.idle(20)
    (failed,) = log.events("notify.failed")
    assert failed["target"] == "mailto://127.0.0.1/***" and failed["kind"] == "apprise"
    assert "wrongpass" not in json.dumps(failed)


# --- checks and masks ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://hooks.example.com/x", None),
        ("ftp://hooks.example.com/x", "must be an http:// or https:// URL (found ftp:)"),
        ("hooks.example.com/x", "must be an http:// or https:// URL (found no scheme)"),
        ("https:///x", "is not a valid URL (no host)"),
        ("https://a b/", "must not contain spaces or control characters"),
        ("https://host:99999/", "is not a valid URL (Port out of range 0-65535)"),
    ],
)
def test_http_urls(url: str, problem: str | None) -> None:
    assert url_problem("webhook", url) == problem


def test_apprise_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("apprise")
    assert url_problem("apprise", "mailto://ops:pw@mail.example.com") is None
    assert "unknown" in (url_problem("apprise", "nosuch://x") or "")
    monkeypatch.setattr(targets_mod, "apprise_installed", lambda: False)
    assert "not installed" in (url_problem("apprise", "mailto://a@b.c") or "")
    why = unavailable([target("webhook", "http://a/"), target("apprise", "mailto://a@b.c")])
    assert why is not None and why.startswith("notify[1].apprise: ")
    assert unavailable([target("webhook", "http://a/")]) is None


def test_masks() -> None:
    assert mask_url("https://hooks.example.com/T0/B1/secret?x=1") == "https://hooks.example.com/***"
    assert mask_url("mailto://ops:pass@mail.example.com:25") == "mailto://mail.example.com/***"
    assert mask_url("not a url") == "***"
    old = {"spec": {"notify": [{"on": ["failure"], "webhook": "https://a.example/x sha256:1"}]}}
    new = {
        "spec": {
            "notify": [{"on": ["failure"], "webhook": "https://a.example/x sha256:2"}],
            "healthcheck": {"url": "https://hc.example/abc"},
        }
    }
    secret_url_views(old, new)
    assert old["spec"]["notify"][0]["webhook"] == "https://a.example/***"
    assert new["spec"]["notify"][0]["webhook"] == "https://a.example/*** (changed)"
    assert new["spec"]["healthcheck"]["url"] == "https://hc.example/***"
