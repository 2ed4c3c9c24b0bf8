"""The transports: a webhook POST, a healthcheck ping, an Apprise notification.

HTTP goes through the standard library (urllib with a socket time-out per try): one POST
or GET per message needs no connection pool, and the base install stays free of extra
dependencies. Every function raises :class:`DeliveryFailed` with a message that never
quotes the URL (it is a secret).
"""

from __future__ import annotations

import json
import logging
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from reconciler import __version__

TIMEOUT_S = 10.0
_USER_AGENT = f"reconciler/{__version__}"


class DeliveryFailed(Exception):
    """One try that did not deliver; the message is safe to log."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect would turn a POST into a GET to wherever the answer points: refuse it.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect())


def _request(
    url: str, method: str, body: bytes | None, headers: Mapping[str, str], timeout: float
) -> None:
    request = urllib.request.Request(url, data=body, method=method)
    request.add_header("User-Agent", _USER_AGENT)
    for key, value in headers.items():
        request.add_header(key, value)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read(65536)
            status = response.status
    except urllib.error.HTTPError as exc:
        raise DeliveryFailed(f"HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        raise DeliveryFailed(_reason(exc.reason)) from None
    except (OSError, ValueError) as exc:
        raise DeliveryFailed(_reason(exc)) from None
    if not 200 <= status < 300:
        raise DeliveryFailed(f"HTTP {status}")


def _reason(reason: object) -> str:
    if isinstance(reason, TimeoutError) or str(reason) == "timed out":
        return "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return type(reason).__name__ if not str(reason) else str(reason)[:200]


def post_json(url: str, payload: Mapping[str, Any], timeout: float = TIMEOUT_S) -> None:
    """POST ``payload`` as JSON; a 2xx answer is a delivery."""
    body = json.dumps(payload, default=str).encode("utf-8")
    _request(url, "POST", body, {"Content-Type": "application/json"}, timeout)


def ping_url(url: str, suffix: str) -> str:
    """``url`` with ``/suffix`` added to its path (its query kept): URL/start, URL/fail."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/") + "/" + suffix
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


def ping(url: str, phase: str, body: bytes = b"", timeout: float = TIMEOUT_S) -> None:
    """A dead-man ping: ``start`` GETs URL/start, ``success`` POSTs URL, ``fail`` POSTs
    URL/fail; ``body`` (the last 10 KiB of output) goes with the POSTs."""
    if phase == "start":
        _request(ping_url(url, "start"), "GET", None, {}, timeout)
    elif phase == "success":
        _request(url, "POST", body, {"Content-Type": "text/plain; charset=utf-8"}, timeout)
    elif phase == "fail":
        _request(
            ping_url(url, "fail"),
            "POST",
            body,
            {"Content-Type": "text/plain; charset=utf-8"},
            timeout,
        )
    else:
        raise ValueError(f"unknown ping phase {phase!r}")


def _scrub(text: str, url: str) -> str:
    parts = urlsplit(url)
    for secret in (url, parts.password, parts.username, parts.path.strip("/")):
        if secret and len(secret) > 2:
            text = text.replace(secret, "***")
    return re.sub(r"\s+", " ", text).strip()[:200]


def send_apprise(url: str, title: str, body: str, timeout: float = TIMEOUT_S) -> None:
    """Send through Apprise (``reconciler[notify]``); its own time-outs (connect and read,
    each under ``timeout``) bound a try."""
    try:
        import apprise
    except ImportError:
        raise DeliveryFailed("the Apprise library is not installed on this host") from None
    sender = apprise.Apprise()
    if not sender.add(url):
        raise DeliveryFailed("Apprise does not accept the URL")
    for server in sender:
        for attr in ("socket_connect_timeout", "socket_read_timeout"):
            if getattr(server, attr, None) is None or getattr(server, attr) > timeout:
                setattr(server, attr, timeout)
    with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
        ok = sender.notify(title=title, body=body)
        log = captured.getvalue()
    if not ok:
        last = [line for line in log.splitlines() if line.strip()]
        why = _scrub(last[-1], url) if last else "no detail"
        raise DeliveryFailed(f"Apprise could not send: {why}")
