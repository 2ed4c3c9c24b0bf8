"""Fixtures shared by the end-to-end tests of the controller."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from controller_harness import ControllerProc


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    """A spec directory (0755, as a root controller requires) and a state directory path."""
    spec = tmp_path / "specs"
    spec.mkdir()
    os.chmod(spec, 0o755)
    return spec, tmp_path / "state"


@pytest.fixture
def controllers() -> Iterator[list[ControllerProc]]:
    """Controllers a test starts; whatever is still running at the end is killed."""
    started: list[ControllerProc] = []
    yield started
    for c in started:
        if c.proc.poll() is None:
            c.kill()
