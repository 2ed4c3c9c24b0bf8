"""Every panel query of deploy/grafana/reconciler-dashboard.json parses and returns data
in a real Prometheus scraping a live controller (runs, failures, skips, restarts, a spec
error). Needs Debian's `prometheus`; skipped without it."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from controller_harness import ControllerProc, write_task
from test_obs_prometheus import PROMETHEUS, api, free_port

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "reconciler-dashboard.json"
# Grafana's variables, as Grafana would fill them in.
VARIABLES = {"$__rate_interval": "1m", "$task": ".*", "${datasource}": "prometheus"}

pytestmark = [
    pytest.mark.skipif(PROMETHEUS is None, reason="prometheus server not installed"),
    pytest.mark.slow,
]


def queries() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    found = []
    for panel in dash["panels"]:
        assert panel["datasource"]["type"] == "prometheus"
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in VARIABLES.items():
                expr = expr.replace(name, value)
            assert "$" not in expr, f"{panel['title']}: unknown variable in {expr}"
            found.append((panel["title"], expr))
    return found


def test_the_dashboard_covers_what_the_contract_names() -> None:
    titles = " ".join(t.lower() for t, _ in queries())
    for word in ("runs", "failed", "duration", "skipped", "daemon restarts", "tick lag",
                 "spec errors"):
        assert word in titles


def test_every_panel_query_returns_data(dirs, controllers, tmp_path: Path) -> None:
    write_task(dirs[0], "ok", {"schedule": "* * * * * *", "command": ["true"]})
    write_task(dirs[0], "broken", {"schedule": "* * * * * *", "command": ["sh", "-c", "exit 2"]})
    write_task(dirs[0], "slow", {"schedule": "* * * * * *", "command": ["sleep", "3"]})
    write_task(dirs[0], "flaky", {"type": "daemon", "command": ["sh", "-c", "sleep 0.3; exit 1"]})
    (dirs[0] / "bad.yaml").write_text("apiVersion: reconciler/v1\nkind: Task\n")
    (dirs[0] / "bad.yaml").chmod(0o644)
    http_port = free_port()
    c = ControllerProc(dirs[0], dirs[1], ["--http", f"127.0.0.1:{http_port}"])
    controllers.append(c)
    c.wait_for("spec.applied")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: reconciler\n    static_configs: [{{targets: ['127.0.0.1:{http_port}']}}]\n"
    )
    port = free_port()
    log = tmp_path / "prometheus.log"
    with log.open("wb") as out:
        prom = subprocess.Popen(
            [str(PROMETHEUS), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    try:
        pending = dict((q, t) for t, q in queries())
        results: dict[str, Any] = {}
        deadline = time.monotonic() + 90
        while pending and time.monotonic() < deadline:
            time.sleep(1)
            for expr in list(pending):
                try:
                    body = api(port, "query", query=expr)
                except OSError:
                    continue  # Prometheus still starting
                assert body["status"] == "success", (pending[expr], body)
                if body["data"]["result"]:
                    results[expr] = body["data"]["result"]
                    del pending[expr]
        assert not pending, f"no data for: {sorted(pending.values())}\n{log.read_text()[-2000:]}"
    finally:
        prom.terminate()
        prom.wait(15)
    assert c.stop() == 0
