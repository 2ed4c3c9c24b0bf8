"""Prometheus metrics: names, labels, counters across forget_task, exposition validity."""

from __future__ import annotations

import shutil
import subprocess
import threading

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from reconciler import __version__
from reconciler.obs import Metrics
from reconciler.obs.metrics import DURATION_BUCKETS, OUTCOMES, SKIP_REASONS

EXPECTED_FAMILIES = {
    # family name as the parser reports it (counters without _total) -> type
    "reconciler_runs_started": "counter",
    "reconciler_runs_finished": "counter",
    "reconciler_run_duration_seconds": "histogram",
    "reconciler_runs_skipped": "counter",
    "reconciler_running_processes": "gauge",
    "reconciler_last_success_timestamp_seconds": "gauge",
    "reconciler_spec_errors": "gauge",
    "reconciler_spec_invalid": "counter",
    "reconciler_tasks_loaded": "gauge",
    "reconciler_tick_lag_seconds": "histogram",
    "reconciler_last_tick_timestamp_seconds": "gauge",
    "reconciler_daemon_restarts": "counter",
    "reconciler_build_info": "gauge",
    "reconciler_log_lines_dropped": "counter",
    "reconciler_state_write_errors": "counter",
    "reconciler_retries_waiting": "gauge",
    "reconciler_daemon_gave_up": "gauge",
    "reconciler_notifications_failed": "counter",
    "reconciler_notifications_dropped": "counter",
}


def samples(m: Metrics) -> list[Sample]:
    return [s for fam in text_string_to_metric_families(m.render().decode()) for s in fam.samples]


def value(m: Metrics, name: str, **labels: str) -> float | None:
    for s in samples(m):
        if s.name == name and s.labels == labels:
            return s.value
    return None


def exercised() -> Metrics:
    m = Metrics()
    m.run_started("backup")
    m.run_started("backup", trigger="manual")
    m.run_finished("backup", "succeeded", 12.5, 1_800_000_000.0)
    m.run_started("web")
    m.run_finished("web", "failed", 0.05, 1_800_000_001.0)
    m.run_skipped("backup", "max-concurrency")
    m.set_running({"backup": 1, "web": 0})
    m.set_spec_errors(2)
    m.spec_error()
    m.set_tasks_loaded(7)
    m.tick(0.004, 1_800_000_002.0)
    m.daemon_restart("web")
    m.state_write_error("ledger.json")
    return m


def test_all_documented_families_with_types() -> None:
    families = {
        f.name: f.type
        for f in text_string_to_metric_families(exercised().render().decode())
        if f.name.startswith("reconciler_")
    }
    assert families == EXPECTED_FAMILIES


def test_counters_are_exposed_with_total_suffix() -> None:
    text = exercised().render().decode()
    for family, kind in EXPECTED_FAMILIES.items():
        if kind == "counter":
            assert f"# TYPE {family}_total counter" in text


def test_run_counters_by_task_and_label() -> None:
    m = exercised()
    assert value(m, "reconciler_runs_started_total", task="backup", trigger="schedule") == 1
    assert value(m, "reconciler_runs_started_total", task="backup", trigger="manual") == 1
    assert value(m, "reconciler_runs_started_total", task="web", trigger="schedule") == 1
    assert value(m, "reconciler_runs_finished_total", task="backup", outcome="succeeded") == 1
    assert value(m, "reconciler_runs_finished_total", task="web", outcome="failed") == 1
    assert value(m, "reconciler_runs_skipped_total", task="backup", reason="max-concurrency") == 1
    assert value(m, "reconciler_daemon_restarts_total", task="web") == 1
    assert value(m, "reconciler_spec_invalid_total") == 1
    m.run_started("backup")
    assert value(m, "reconciler_runs_started_total", task="backup", trigger="schedule") == 2


def test_series_of_a_task_start_at_zero() -> None:
    m = Metrics()
    m.run_started("fresh")
    for outcome in OUTCOMES:
        assert value(m, "reconciler_runs_finished_total", task="fresh", outcome=outcome) == 0
    for reason in SKIP_REASONS:
        assert value(m, "reconciler_runs_skipped_total", task="fresh", reason=reason) == 0
    assert value(m, "reconciler_daemon_restarts_total", task="fresh") == 0
    m.declare_tasks(["loaded"])
    assert value(m, "reconciler_runs_finished_total", task="loaded", outcome="failed") == 0


def test_last_success_only_on_success() -> None:
    m = Metrics()
    m.run_finished("t", "failed", 1.0, 100.0)
    assert value(m, "reconciler_last_success_timestamp_seconds", task="t") is None
    m.run_finished("t", "succeeded", 1.0, 200.0)
    m.run_finished("t", "timed-out", 1.0, 300.0)
    assert value(m, "reconciler_last_success_timestamp_seconds", task="t") == 200.0


def test_duration_histogram_buckets() -> None:
    m = exercised()
    assert DURATION_BUCKETS[0] == 0.1 and DURATION_BUCKETS[-1] == 86400.0
    assert value(m, "reconciler_run_duration_seconds_count", task="backup") == 1
    assert value(m, "reconciler_run_duration_seconds_sum", task="backup") == 12.5
    assert value(m, "reconciler_run_duration_seconds_bucket", task="backup", le="10.0") == 0
    assert value(m, "reconciler_run_duration_seconds_bucket", task="backup", le="30.0") == 1
    assert value(m, "reconciler_run_duration_seconds_bucket", task="web", le="0.1") == 1
    assert value(m, "reconciler_run_duration_seconds_bucket", task="web", le="86400.0") == 1


def test_set_running_zeroes_absent_tasks() -> None:
    m = Metrics()
    m.set_running({"a": 2, "b": 1})
    m.set_running({"b": 3})
    assert value(m, "reconciler_running_processes", task="a") == 0
    assert value(m, "reconciler_running_processes", task="b") == 3


def test_forget_task_drops_gauges_keeps_counters() -> None:
    m = exercised()
    m.forget_task("backup")
    assert value(m, "reconciler_running_processes", task="backup") is None
    assert value(m, "reconciler_last_success_timestamp_seconds", task="backup") is None
    assert value(m, "reconciler_running_processes", task="web") == 0
    assert value(m, "reconciler_runs_started_total", task="backup", trigger="schedule") == 1
    assert value(m, "reconciler_runs_finished_total", task="backup", outcome="succeeded") == 1
    # a later set_running without the task does not bring the series back
    m.set_running({"web": 1})
    assert value(m, "reconciler_running_processes", task="backup") is None
    m.forget_task("never-seen")  # harmless


def test_gauges_and_tick() -> None:
    m = exercised()
    assert value(m, "reconciler_spec_errors") == 2
    assert value(m, "reconciler_tasks_loaded") == 7
    assert value(m, "reconciler_last_tick_timestamp_seconds") == 1_800_000_002.0
    assert value(m, "reconciler_tick_lag_seconds_count") == 1
    assert value(m, "reconciler_tick_lag_seconds_bucket", le="0.005") == 1
    assert value(m, "reconciler_build_info", version=__version__) == 1
    m.set_spec_errors(0)
    assert value(m, "reconciler_spec_errors") == 0


def test_no_created_series_and_no_command_text() -> None:
    text = exercised().render().decode()
    assert "_created" not in text
    label_names = {k for s in samples(exercised()) for k in s.labels}
    # task names and fixed words only; python_info brings its own labels
    python_info = {"implementation", "major", "minor", "patchlevel"}
    fixed = {"task", "trigger", "outcome", "reason", "le", "version", "file"}
    assert label_names <= fixed | python_info


def test_instances_do_not_share_state() -> None:
    a, b = Metrics(), Metrics()
    a.run_started("x")
    assert value(b, "reconciler_runs_started_total", task="x", trigger="schedule") is None


def test_thread_safe_counting() -> None:
    m = Metrics()

    def work() -> None:
        for i in range(2000):
            m.run_started("t")
            m.set_running({"t": 1})
            if i % 500 == 0:
                m.render()  # scrapes interleave with updates

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert value(m, "reconciler_runs_started_total", task="t", trigger="schedule") == 16000


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool not installed (Debian: prometheus)"
)
def test_promtool_check_metrics() -> None:
    result = subprocess.run(
        ["promtool", "check", "metrics"],
        input=exercised().render(),
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


def test_state_write_errors_by_file() -> None:
    m = Metrics()
    m.state_write_error("ledger.json")
    m.state_write_error("ledger.json")
    m.state_write_error("runs.json")
    assert value(m, "reconciler_state_write_errors_total", file="ledger.json") == 2
    assert value(m, "reconciler_state_write_errors_total", file="runs.json") == 1
