"""`resources` of a task: what validation accepts, what the loaded task carries, and that
the JSON Schema and the models agree on it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.spec import load_paths
from reconciler.spec.models import TaskDocument
from reconciler.spec.schema import validator
from reconciler.spec.task import Resources

MiB = 1 << 20


def _doc(resources: Any) -> dict[str, Any]:
    return {
        "apiVersion": "reconciler/v1",
        "kind": "Task",
        "metadata": {"name": "w"},
        "spec": {"schedule": "@daily", "command": ["true"], "resources": resources},
    }


def _load(tmp_path: Path, resources: Any) -> tuple[list[str], Any]:
    path = tmp_path / "w.json"
    path.write_text(json.dumps(_doc(resources)))
    os.chmod(path, 0o644)
    result = load_paths([str(tmp_path)])
    errors = [f"{e.field}: {e.message}" for e in result.errors]
    tasks = [t for f in result.files.values() for t in f.tasks]
    return errors, tasks[0] if tasks else None


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"memoryMax": "512Mi"}, Resources(memory_max=512 * MiB)),
        ({"memoryMax": "2Gi"}, Resources(memory_max=2 << 30)),
        ({"memoryMax": 64 * MiB}, Resources(memory_max=64 * MiB)),
        ({"memoryMax": "1024Ki"}, Resources(memory_max=MiB)),
        ({"cpuMax": 0.5}, Resources(cpu_max=0.5)),
        ({"cpuMax": 2}, Resources(cpu_max=2.0)),
        ({"openFilesMax": 1024, "processesMax": 20}, Resources(None, None, 1024, 20)),
        ({}, None),
    ],
)
def test_resources_accepted_and_normalised(tmp_path: Path, given: Any, expected: Any) -> None:
    errors, task = _load(tmp_path, given)
    assert errors == []
    assert task.resources == expected
    if expected is not None:
        doc = task.document["spec"]["resources"]
        assert doc.get("memoryMax") == expected.memory_max  # bytes in the normalised form
        assert set(doc) == {k for k, v in given.items()}


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"memoryMax": "64M"}, "spec.resources.memoryMax"),
        ({"memoryMax": "0Mi"}, "spec.resources.memoryMax"),
        ({"memoryMax": "1Ki"}, "spec.resources.memoryMax"),  # below 1Mi
        ({"memoryMax": "2000Ti"}, "spec.resources.memoryMax"),  # past 1024Ti
        ({"memoryMax": 1000}, "spec.resources.memoryMax"),
        ({"memoryMax": True}, "spec.resources.memoryMax"),
        ({"cpuMax": 0}, "spec.resources.cpuMax"),
        ({"cpuMax": "0.5"}, "spec.resources.cpuMax"),
        ({"cpuMax": 2000}, "spec.resources.cpuMax"),
        ({"openFilesMax": 8}, "spec.resources.openFilesMax"),
        ({"openFilesMax": 1.5}, "spec.resources.openFilesMax"),
        ({"processesMax": 0}, "spec.resources.processesMax"),
        ({"memoryLimit": "1Gi"}, "spec.resources.memoryLimit"),
    ],
)
def test_bad_resources_refused_naming_the_field(tmp_path: Path, given: Any, field: str) -> None:
    errors, task = _load(tmp_path, given)
    assert task is None and errors and all(e.startswith(field + ": ") for e in errors), errors


def test_resources_must_be_an_object(tmp_path: Path) -> None:
    errors, _ = _load(tmp_path, "512Mi")
    assert len(errors) == 1 and errors[0].startswith("spec.resources: "), errors


@pytest.mark.parametrize(
    "resources",
    [
        {"memoryMax": "512Mi"},
        {"memoryMax": "0Mi"},
        {"memoryMax": "1Ki"},
        {"memoryMax": 1.0},
        {"memoryMax": float(MiB)},
        {"memoryMax": MiB - 1},
        {"memoryMax": 1 << 50},
        {"memoryMax": (1 << 50) + 1},
        {"memoryMax": None},
        {"cpuMax": 0.01},
        {"cpuMax": 0.009},
        {"cpuMax": 1024},
        {"cpuMax": 1024.5},
        {"cpuMax": False},
        {"openFilesMax": 16},
        {"openFilesMax": 16.0},
        {"openFilesMax": 1048577},
        {"processesMax": 4194304},
        {"processesMax": 4194305},
        {"processesMax": "3"},
        {},
        [],
        {"x": 1},
    ],
)
def test_schema_and_models_agree(resources: Any) -> None:
    doc = _doc(resources)
    by_schema = bool(validator().is_valid(doc))
    try:
        TaskDocument.model_validate(doc)
        by_models = True
    except ValidationError:
        by_models = False
    assert by_schema == by_models, resources


def test_resources_change_the_daemon_fingerprint_only_when_set(tmp_path: Path) -> None:
    _, plain = _load(tmp_path, {})
    _, limited = _load(tmp_path, {"memoryMax": "64Mi"})
    _, other = _load(tmp_path, {"memoryMax": "128Mi"})
    assert plain.resources is None
    assert (
        len(
            {
                plain.process_fingerprint(),
                limited.process_fingerprint(),
                other.process_fingerprint(),
            }
        )
        == 3
    )
