"""A real Prometheus server scrapes our HttpServer and answers queries about it.

Needs Debian's `prometheus` package (the server binary); skipped without it.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.obs import HttpServer, Metrics

PROMETHEUS = shutil.which("prometheus")
ALERTS = Path(__file__).resolve().parents[1] / "deploy" / "alerts.yaml"
DEADLINE = 60.0  # a loaded CI machine: startup plus the first scrapes

pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="prometheus server not installed (Debian package: prometheus)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def api(port: int, path: str, **params: str) -> Any:
    url = f"http://127.0.0.1:{port}/api/v1/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.load(resp)


def wait_for(check: Any, what: str) -> Any:
    end = time.monotonic() + DEADLINE
    last: object = None
    while time.monotonic() < end:
        try:
            result = check()
        except (OSError, urllib.error.URLError, ValueError) as exc:
            result, last = None, exc
        if result:
            return result
        time.sleep(0.25)
    pytest.fail(f"timed out after {DEADLINE:.0f}s waiting for {what}; last: {last!r}")


@pytest.fixture()
def scraped(tmp_path: Path) -> Iterator[tuple[int, Metrics, Path]]:
    metrics = Metrics()
    metrics.run_started("backup")
    metrics.run_started("backup")
    metrics.run_started("backup", trigger="manual")
    metrics.tick(0.01, time.time())
    http = HttpServer("127.0.0.1:0", metrics, lambda: True, lambda: True)
    http.start()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  evaluation_interval: 1s\n"
        f"rule_files: ['{ALERTS}']\n"
        "scrape_configs:\n"
        "  - job_name: reconciler\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{http.port}']\n"
    )
    log = tmp_path / "prometheus.log"
    proc: subprocess.Popen[bytes] | None = None
    port = 0
    # The free port may be taken between probing and binding: try a few.
    for _ in range(3):
        port = free_port()
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    str(PROMETHEUS),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        time.sleep(0.2)
        if proc.poll() is None:
            break
    assert proc is not None
    try:
        if proc.poll() is not None:
            pytest.fail(f"prometheus exited at start:\n{log.read_text()}")
        yield port, metrics, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        http.stop()


def test_prometheus_scrapes_counters_with_task_label(
    scraped: tuple[int, Metrics, Path],
) -> None:
    port, metrics, log = scraped

    def started() -> dict[str, float] | None:
        body = api(port, "query", query="reconciler_runs_started_total")
        if body.get("status") != "success" or not body["data"]["result"]:
            return None
        return {
            f"{r['metric']['task']}/{r['metric']['trigger']}": float(r["value"][1])
            for r in body["data"]["result"]
        }

    values = wait_for(started, "reconciler_runs_started_total in Prometheus")
    assert values == {"backup/schedule": 2.0, "backup/manual": 1.0}, log.read_text()

    # the target is healthy and our text format parsed without errors
    targets = api(port, "targets")["data"]["activeTargets"]
    assert [t["health"] for t in targets] == ["up"], targets

    # a later increment shows up: counters are live, not a one-off snapshot
    metrics.run_started("backup")
    wait_for(lambda: started() == {"backup/schedule": 3.0, "backup/manual": 1.0}, "the increment")

    # the alerting rules loaded and evaluate without errors
    def rules_ok() -> list[dict[str, Any]] | None:
        groups = api(port, "rules")["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        if not rules or any(r.get("lastEvaluation", "").startswith("0001") for r in rules):
            return None
        return rules

    rules = wait_for(rules_ok, "the alerting rules to be evaluated")
    assert {r["health"] for r in rules} == {"ok"}, [r.get("lastError") for r in rules]
    assert "ReconcilerDown" in {r["name"] for r in rules}
