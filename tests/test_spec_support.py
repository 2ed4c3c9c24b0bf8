"""Helpers shared by the spec tests (no tests here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reconciler.spec import LoadResult, load_paths

HEADER = "apiVersion: reconciler/v1\nkind: Task\n"


def task_yaml(name: str = "t1", **spec: Any) -> str:
    """A task document in block YAML; values are written as JSON (valid YAML flow)."""
    spec.setdefault("command", ["true"])
    if spec.get("type") != "daemon":
        spec.setdefault("schedule", "@daily")
    lines = [HEADER.rstrip("\n"), "metadata:", f"  name: {name}", "spec:"]
    lines += [f"  {key}: {json.dumps(value)}" for key, value in spec.items()]
    return "\n".join(lines) + "\n"


def task_dict(name: str = "t1", **spec: Any) -> dict[str, Any]:
    spec.setdefault("command", ["true"])
    if spec.get("type") != "daemon":
        spec.setdefault("schedule", "@daily")
    return {"apiVersion": "reconciler/v1", "kind": "Task", "metadata": {"name": name}, "spec": spec}


def write(path: Path, text: str | bytes, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def load(*paths: Path | str, check_permissions: bool = False) -> LoadResult:
    return load_paths([str(p) for p in paths], check_permissions=check_permissions)


def messages(result: LoadResult) -> list[str]:
    return [str(e) for e in result.errors]
