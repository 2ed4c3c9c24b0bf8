"""Target URLs are secrets, like env values: the one place that masks them.

A webhook, Apprise or healthcheck URL carries its token in the path, the query or the
user part, so only the scheme and host are shown: ``https://hooks.example.com/***``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

MASK = "***"
# Fields of a task's `spec` that hold a secret URL: notify[*].webhook, notify[*].apprise
# and healthcheck.url.
_NOTIFY_URL_KEYS = ("webhook", "apprise")


def mask_url(url: str) -> str:
    """``scheme://host/***`` (credentials, port, path and query left out), or ``***``."""
    try:
        parts = urlsplit(str(url))
        host = parts.hostname
    except ValueError:
        return MASK
    if not parts.scheme or not host or not parts.scheme.isascii():
        return MASK
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}/{MASK}"


def _secret_slots(spec: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str]]:
    notify = spec.get("notify")
    if isinstance(notify, list):
        for entry in notify:
            if isinstance(entry, dict):
                for key in _NOTIFY_URL_KEYS:
                    if isinstance(entry.get(key), str):
                        yield entry, key
    health = spec.get("healthcheck")
    if isinstance(health, dict) and isinstance(health.get("url"), str):
        yield health, "url"


def map_secret_urls(spec: dict[str, Any], fn: Callable[[str], str]) -> dict[str, Any]:
    """Replace, in place, every secret URL of a plain (JSON-shaped) spec by ``fn(url)``."""
    for holder, key in _secret_slots(spec):
        holder[key] = fn(holder[key])
    return spec


def mask_secret_urls(spec: dict[str, Any]) -> dict[str, Any]:
    """Every secret URL of a plain spec masked in place (see :func:`mask_url`)."""
    return map_secret_urls(spec, mask_url)


def hash_secret_url(url: str, digest: Callable[[str], str]) -> str:
    """How a stored document keeps a secret URL: its mask and a digest of the whole URL,
    ``https://hooks.example.com/*** sha256:...``, so a change can be told without the URL."""
    return f"{mask_url(url)} {digest(url)}"


def secret_url_views(old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
    """For `diff`: secret URLs (hashed as :func:`hash_secret_url` has them on both sides)
    become their mask (a URL in clear is masked too), ``(changed)`` added on the new side where the digest differs."""
    old_spec = (old or {}).get("spec") if old else None
    new_spec = (new or {}).get("spec") if new else None
    before: dict[tuple[int, str], str] = {}
    if isinstance(old_spec, dict):
        for i, (holder, key) in enumerate(_secret_slots(old_spec)):
            before[(i, key)] = holder[key]
            holder[key] = mask_url(holder[key].split(" ", 1)[0])
    if isinstance(new_spec, dict):
        for i, (holder, key) in enumerate(_secret_slots(new_spec)):
            value = holder[key]
            changed = (i, key) in before and before[(i, key)] != value
            holder[key] = mask_url(value.split(" ", 1)[0]) + (" (changed)" if changed else "")
