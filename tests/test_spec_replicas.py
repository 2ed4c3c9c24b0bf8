"""`replicas` (daemons only, integer >= 1): what validation accepts today; the controller's
handling of it (RECONCILER_REPLICA) comes with the daemon work."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reconciler.spec import load_paths


def _load(tmp_path: Path, spec: dict) -> list[str]:
    doc = {"apiVersion": "reconciler/v1", "kind": "Task", "metadata": {"name": "w"},
           "spec": {"command": ["true"], **spec}}
    path = tmp_path / "w.json"
    path.write_text(json.dumps(doc))
    os.chmod(path, 0o644)
    result = load_paths([str(tmp_path)])
    return [f"{e.field}: {e.message}" for e in result.errors]


@pytest.mark.parametrize("value", [1, 3, 1000])
def test_a_daemon_takes_replicas(tmp_path: Path, value: int) -> None:
    assert _load(tmp_path, {"type": "daemon", "replicas": value}) == []


@pytest.mark.parametrize("value", [0, -1, 1001, "2", True, 1.5])
def test_replicas_is_a_whole_number_from_1(tmp_path: Path, value: object) -> None:
    errors = _load(tmp_path, {"type": "daemon", "replicas": value})
    assert len(errors) == 1 and errors[0].startswith("spec.replicas: "), errors


def test_replicas_is_for_daemons_only(tmp_path: Path) -> None:
    errors = _load(tmp_path, {"schedule": "@daily", "replicas": 2})
    assert errors == ["spec.replicas: only allowed for a daemon (type: daemon)"]


def _task(tmp_path: Path, spec: dict):  # type: ignore[no-untyped-def]
    doc = {"apiVersion": "reconciler/v1", "kind": "Task", "metadata": {"name": "w"},
           "spec": {"type": "daemon", "command": ["true"], **spec}}
    folder = tmp_path / str(len(list(tmp_path.iterdir())))
    folder.mkdir()
    (folder / "w.json").write_text(json.dumps(doc))
    result = load_paths([str(folder)])
    assert not result.errors, result.errors
    return result.tasks["w"]


def test_replicas_given_is_in_the_document_and_its_fingerprint(tmp_path: Path) -> None:
    # `get` did not show replicas, and scaling alone was not listed as changed.
    three = _task(tmp_path, {"replicas": 3})
    five = _task(tmp_path, {"replicas": 5})
    assert three.document["spec"]["replicas"] == 3
    assert three.spec_fingerprint() != five.spec_fingerprint()
    # Scaling keeps the running replicas: what restarts a daemon is unchanged.
    assert three.process_fingerprint() == five.process_fingerprint()


def test_replicas_not_given_is_not_in_the_document(tmp_path: Path) -> None:
    # Documents without it keep the fingerprint they had (tests/test_fingerprint_stable.py).
    assert "replicas" not in _task(tmp_path, {}).document["spec"]
