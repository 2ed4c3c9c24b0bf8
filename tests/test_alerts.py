"""deploy/alerts.yaml: promtool checks and unit tests, and consistency with the metrics."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from reconciler.obs import Metrics

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
RULES = DEPLOY / "alerts.yaml"
RULE_TESTS = DEPLOY / "alerts.test.yaml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package: prometheus)"
)


def alerting_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def run_promtool(*args: str) -> None:
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, *args], capture_output=True, text=True, timeout=60, cwd=DEPLOY
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_check_rules() -> None:
    run_promtool("check", "rules", str(RULES))


@needs_promtool
def test_promtool_unit_tests() -> None:
    run_promtool("test", "rules", str(RULE_TESTS))


def test_every_alert_has_severity_and_annotations() -> None:
    rules = alerting_rules()
    assert len(rules) >= 8
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert rule["annotations"]["description"].strip(), rule["alert"]


def test_every_alert_is_tested_firing_and_quiet() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {r["alert"] for r in alerting_rules()}
    assert names <= firing, f"never tested firing: {names - firing}"
    assert names <= quiet, f"never tested quiet: {names - quiet}"


def test_rules_only_use_metrics_we_export() -> None:
    """A renamed metric must not silently turn an alert into one that never fires."""
    m = Metrics()
    m.run_started("t")
    m.run_finished("t", "succeeded", 1.0, 1.0)
    m.set_running({"t": 1})
    m.tick(0.0, 1.0)
    m.state_write_error("ledger.json")
    exported = {
        s.name for fam in text_string_to_metric_families(m.render().decode()) for s in fam.samples
    }
    used: set[str] = set()
    for rule in alerting_rules():
        # `reconciler:...` names are recording rules the operator defines (opt-in)
        used |= set(re.findall(r"(?<![:\w])reconciler_[a-z_]+", rule["expr"]))
    assert used, "no reconciler metric referenced"
    assert used <= exported, f"not exported: {used - exported}"
