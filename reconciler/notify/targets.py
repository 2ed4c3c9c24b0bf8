"""Notify targets as the spec gives them, and what makes a target URL acceptable.

Pure: no I/O, no imports of other rooms. The spec room calls :func:`url_problem` while it
validates a document, so a bad target is a validation error naming its field, never a
failure at delivery time.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

Event = Literal["failure", "recovery", "success", "start", "gave-up"]
EVENTS: tuple[Event, ...] = ("failure", "recovery", "success", "start", "gave-up")
# The kinds of a `notify` entry; `healthcheck` is the kind of a dead-man ping.
TARGET_KINDS = ("webhook", "command", "apprise")
Kind = Literal["webhook", "command", "apprise", "healthcheck"]

_CONTROL = re.compile(r"[\x00-\x20\x7f]")


@dataclass(frozen=True)
class Target:
    """One entry of a task's `notify` list: the events it subscribed to and where it goes.

    ``value`` is the URL of a webhook or Apprise target, the argv of a command.
    """

    on: frozenset[str]
    kind: Literal["webhook", "command", "apprise"]
    value: str | tuple[str, ...]

    def key(self) -> str:
        """Identity for per-target bookkeeping (failures logged once, fairness)."""
        if isinstance(self.value, tuple):
            return f"{self.kind}:" + "\x00".join(self.value)
        return f"{self.kind}:{self.value}"


def apprise_installed() -> bool:
    """Whether the optional Apprise library (``reconciler[notify]``) can be imported."""
    return importlib.util.find_spec("apprise") is not None


def http_url_problem(url: str) -> str | None:
    """Why ``url`` is not an http(s) URL a webhook or ping can reach, or None."""
    if _CONTROL.search(url):
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.scheme not in ("http", "https"):
        shown = f"{parts.scheme}:" if parts.scheme else "no scheme"
        return f"must be an http:// or https:// URL (found {shown})"
    if not parts.hostname:
        return "is not a valid URL (no host)"
    if port == 0:
        return "is not a valid URL (port 0)"
    return None


def apprise_url_problem(url: str) -> str | None:
    """Why Apprise cannot send to ``url`` on this host, or None."""
    if _CONTROL.search(url):
        return "must not contain spaces or control characters"
    if "://" not in url:
        return "is not an Apprise URL (scheme://...)"
    if not apprise_installed():
        return (
            "needs the Apprise library, which is not installed on this host "
            "(pip install 'reconciler[notify]')"
        )
    import apprise

    try:
        plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    except Exception:  # Apprise plugins raise anything on odd input
        plugin = None
    if not plugin:
        scheme = url.split("://", 1)[0]
        return f"is not a URL Apprise can send to (scheme {scheme}:// unknown or URL malformed)"
    return None


def url_problem(kind: str, url: str) -> str | None:
    """Why the URL of a ``webhook``, ``apprise`` or ``healthcheck`` target is refused."""
    if kind == "apprise":
        return apprise_url_problem(url)
    return http_url_problem(url)


def unavailable(targets: Iterable[Target]) -> str | None:
    """Why a task with these targets cannot run on this host (Apprise missing), or None.

    The message names the field: ``notify[1].apprise: needs the Apprise library...``.
    """
    for i, target in enumerate(targets):
        if target.kind == "apprise" and not apprise_installed():
            return (
                f"notify[{i}].apprise: needs the Apprise library, which is not installed on "
                "this host (pip install 'reconciler[notify]')"
            )
    return None
