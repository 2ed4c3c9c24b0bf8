"""docs/METRICS.md lists exactly what the Metrics class exports: names, types, labels."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from reconciler.obs import Metrics

DOC = Path(__file__).resolve().parents[1] / "docs" / "METRICS.md"
ROW = re.compile(r"^\| `(reconciler_[a-z_]+)` \| (\w+) \|([^|]*)\|")


def documented() -> dict[str, tuple[str, frozenset[str]]]:
    out = {}
    for line in DOC.read_text().splitlines():
        m = ROW.match(line)
        if m:
            labels = frozenset(re.findall(r"`(\w+)`", m.group(3)))
            out[m.group(1)] = (m.group(2), labels)
    return out


def exported() -> dict[str, tuple[str, frozenset[str]]]:
    """Every reconciler_* family a controller exports, with each labelled series made."""
    m = Metrics()
    m.declare_tasks(["t"])
    m.run_started("t", "schedule")
    m.run_finished("t", "succeeded", 1.0, 1.0)
    m.run_skipped("t", "deadline")
    m.daemon_restart("t")
    m.set_running({"t": 1})
    m.set_gave_up("t", True)
    m.set_retries_waiting(0)
    m.state_write_error("history")
    m.notification_failed("t", "webhook")
    m.notification_dropped("webhook")
    m.tick(0.001, 1.0)
    out = {}
    for family in text_string_to_metric_families(m.render().decode()):
        if not family.name.startswith("reconciler_"):
            continue
        labels: set[str] = set()
        for sample in family.samples:
            labels |= set(sample.labels)
        # As exposed: counters end in _total, an Info is a gauge named *_info.
        suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
        kind = "gauge" if family.type == "info" else family.type
        out[family.name + suffix] = (kind, frozenset(labels - {"le"}))
    return out


def test_the_metrics_table_is_what_is_exported() -> None:
    doc, live = documented(), exported()
    assert set(doc) == set(live), (
        f"documented only: {sorted(set(doc) - set(live))}; "
        f"exported only: {sorted(set(live) - set(doc))}"
    )
    for name, (kind, labels) in live.items():
        assert doc[name] == (kind, labels), f"{name}: doc says {doc[name]}, code {kind, labels}"
