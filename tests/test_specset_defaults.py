"""TaskDefaults in the controller's SpecSet: applied to every task, re-applied when they
change, last good kept when they break; real files in a temp directory."""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.controller.specset import SpecSet

DEFAULTS = """apiVersion: reconciler/v1
kind: TaskDefaults
metadata: {{name: house-rules}}
spec:
  env: {{REGION: {region}, SHARED: "from-defaults"}}
  retry: {{limit: 2}}
"""

TASK = """apiVersion: reconciler/v1
kind: Task
metadata: {name: job}
spec:
  schedule: "0 0 3 * * *"
  command: [/bin/true]
  env: {SHARED: "from-task"}
"""


def write(path: Path, text: str) -> None:
    tmp = path.with_name("." + path.name + ".new")
    tmp.write_text(text)
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)


def spec_dir(tmp_path: Path) -> Path:
    d = tmp_path / "specs"
    d.mkdir()
    os.chmod(d, 0o755)
    return d


def test_defaults_apply_merge_env_and_reapply_on_change(tmp_path: Path) -> None:
    d = spec_dir(tmp_path)
    write(d / "00-defaults.yaml", DEFAULTS.format(region="eu"))
    write(d / "job.yaml", TASK)
    specs = SpecSet(d)
    job = specs.refresh().tasks["job"]
    assert dict(job.env) == {"REGION": "eu", "SHARED": "from-task"}, "the task's keys win"
    assert job.retry is not None and job.retry.limit == 2
    write(d / "00-defaults.yaml", DEFAULTS.format(region="us"))
    again = specs.refresh()
    assert not again.errors
    assert dict(again.tasks["job"].env)["REGION"] == "us", "a defaults change reaches the task"


def test_a_broken_defaults_document_keeps_the_last_good_defaults(tmp_path: Path) -> None:
    d = spec_dir(tmp_path)
    write(d / "00-defaults.yaml", DEFAULTS.format(region="eu"))
    write(d / "job.yaml", TASK)
    specs = SpecSet(d)
    specs.refresh()
    write(d / "00-defaults.yaml", DEFAULTS.format(region="eu").replace("limit: 2", "limit: -1"))
    result = specs.refresh()
    assert [e.file for e in result.errors] == [str(d / "00-defaults.yaml")]
    assert dict(result.tasks["job"].env)["REGION"] == "eu"
    assert result.tasks["job"].retry is not None


def test_defaults_removed_leave_tasks_as_written(tmp_path: Path) -> None:
    d = spec_dir(tmp_path)
    write(d / "00-defaults.yaml", DEFAULTS.format(region="eu"))
    write(d / "job.yaml", TASK)
    specs = SpecSet(d)
    specs.refresh()
    (d / "00-defaults.yaml").unlink()
    job = specs.refresh().tasks["job"]
    assert dict(job.env) == {"SHARED": "from-task"} and job.retry is None


def test_a_second_defaults_document_is_an_error(tmp_path: Path) -> None:
    d = spec_dir(tmp_path)
    write(d / "00-defaults.yaml", DEFAULTS.format(region="eu"))
    write(d / "01-more.yaml", DEFAULTS.format(region="us").replace("house-rules", "more"))
    write(d / "job.yaml", TASK)
    result = SpecSet(d).refresh()
    assert [(e.file, e.field) for e in result.errors] == [(str(d / "01-more.yaml"), "kind")]
    assert dict(result.tasks["job"].env)["REGION"] == "eu", "the first one stays in force"
