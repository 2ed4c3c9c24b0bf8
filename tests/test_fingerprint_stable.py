"""A task's fingerprints and normalised document do not change between versions.

The spec fingerprint decides whether a task changed (and a daemon is restarted); the
process fingerprint whether a daemon's process must be replaced. Both were computed, with
the normalised document (keys in their order, as `get` prints it), by the code of before
the document was built on demand, and are pinned in tests/data/fingerprint_fleet.json: a
change here would restart every daemon of a fleet at an upgrade.

One change was made on purpose since: `replicas`, when given, is in the document (it was
missing from `get`, and scaling alone was not listed as changed). Only the spec
fingerprint of such a daemon moved; its process fingerprint, which decides restarts, did
not.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.spec import load_paths
from reconciler.spec.task import Task

DATA = Path(__file__).parent / "data"
PINNED = json.loads((DATA / "fingerprint_fleet.json").read_text())


@pytest.fixture(scope="module")
def tasks() -> dict[str, Task]:
    result = load_paths([DATA / "fingerprint_fleet.yaml"])
    assert not result.errors, result.errors
    return dict(result.tasks)


@pytest.mark.parametrize("name", sorted(PINNED))
def test_fingerprints_and_document_as_pinned(tasks: dict[str, Task], name: str) -> None:
    task = tasks[name]
    pinned = PINNED[name]
    # The document first: it says which field moved when a fingerprint does.
    assert json.loads(json.dumps(task.document, default=list)) == pinned["document"]
    assert list(task.document) == list(pinned["document"])
    assert list(task.document["spec"]) == list(pinned["document"]["spec"])
    assert task.spec_fingerprint() == pinned["spec"]
    assert task.process_fingerprint() == pinned["process"]


def test_every_task_of_the_fleet_is_pinned(tasks: dict[str, Task]) -> None:
    assert sorted(tasks) == sorted(PINNED)
