"""Env values never leave the controller in clear: the one place that knows where a task
document keeps its env (`spec.env`) and how its values are replaced.

- `hashed_document`: as the applied set keeps it (state/applied.py): each value a short
  SHA-256, so a change can be told without the value being stored.
- `masked_document`: for output users see (`get -o json`, `diff`): each value `***`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

MASK = "***"


def env_hash(value: Any) -> str:
    """How the controller stores an env value in its applied set (never in clear)."""
    return "sha256:" + hashlib.sha256(str(value).encode()).hexdigest()[:16]


def plain(document: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy as JSON has it (tuples become lists), comparable with what was read back."""
    out = json.loads(json.dumps(document))
    assert isinstance(out, dict)
    return out


def with_env(document: Mapping[str, Any], replace: Callable[[Any], Any]) -> dict[str, Any]:
    """A plain copy of the document with each env value replaced."""
    doc = plain(document)
    spec = doc.get("spec")
    if isinstance(spec, dict) and isinstance(spec.get("env"), dict):
        spec["env"] = {str(k): replace(v) for k, v in spec["env"].items()}
    return doc


def hashed_document(document: Mapping[str, Any]) -> dict[str, Any]:
    """A document with env values hashed as the controller's applied set keeps them."""
    return with_env(document, env_hash)


def masked_document(document: Mapping[str, Any]) -> dict[str, Any]:
    """A task document fit for output: env values replaced by `***`."""
    return with_env(document, lambda _: MASK)
