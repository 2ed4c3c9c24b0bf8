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

from reconciler.notify.mask import hash_secret_url, map_secret_urls, mask_url

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
    """A document with env values hashed as the controller's applied set keeps them, and
    target URLs (notify, healthcheck: secrets too) as their mask and hash."""
    doc = with_env(document, env_hash)
    _secret_urls(doc, lambda url: hash_secret_url(url, env_hash))
    return doc


def masked_document(document: Mapping[str, Any]) -> dict[str, Any]:
    """A task document fit for output: env values replaced by `***`, target URLs masked
    (`https://hooks.example.com/***`)."""
    doc = with_env(document, lambda _: MASK)
    _secret_urls(doc, mask_url)
    return doc


def _secret_urls(doc: dict[str, Any], replace: Callable[[str], str]) -> None:
    # Where a document keeps secret URLs is reconciler.notify's to know (notify/mask.py).
    spec = doc.get("spec")
    if isinstance(spec, dict):
        map_secret_urls(spec, replace)
