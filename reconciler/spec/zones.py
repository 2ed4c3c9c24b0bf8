"""Time zones by IANA name, and the host's own zone without extra dependencies."""

from __future__ import annotations

import difflib
import os
import re
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

# IANA names are letters, digits, '_', '+', '-' in '/'-separated parts: never a path.
_KEY = re.compile(r"^[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*$")
_MAX_KEY = 255


class ZoneError(ValueError):
    pass


@lru_cache(maxsize=1024)
def _lookup(name: str) -> ZoneInfo | str:
    """A zone, or the error message for the name (failures are cached too)."""
    if len(name) > _MAX_KEY or not _KEY.match(name):
        return "is not a time zone name (IANA names look like Europe/Berlin)"
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError):
        hint = _closest(name)
        return "is not a known time zone" + (f"; did you mean {hint}?" if hint else "")


def get_zone(name: str) -> ZoneInfo:
    found = _lookup(name)
    if isinstance(found, str):
        raise ZoneError(found)
    return found


@lru_cache(maxsize=1)
def _all_zones() -> tuple[str, ...]:
    return tuple(sorted(available_timezones()))


def _closest(name: str) -> str | None:
    zones = _all_zones()
    lowered = {z.lower(): z for z in zones}
    if name.lower() in lowered:
        return lowered[name.lower()]
    found = difflib.get_close_matches(name, zones, n=1, cutoff=0.75)
    return found[0] if found else None


def _key_from_path(path: str) -> str | None:
    marker = "/zoneinfo/"
    pos = path.rfind(marker)
    if pos < 0:
        return None
    key = path[pos + len(marker) :]
    for prefix in ("posix/", "right/"):
        if key.startswith(prefix):
            key = key[len(prefix) :]
    return key


def _try(key: str | None) -> ZoneInfo | None:
    if not key:
        return None
    found = _lookup(key)
    return None if isinstance(found, str) else found


def host_zone() -> ZoneInfo:
    """The zone a task without `timezone` is read in: TZ, then /etc/localtime, else UTC."""
    tz = os.environ.get("TZ")
    if tz:
        key = tz[1:] if tz.startswith(":") else tz
        zone = _try(_key_from_path(key)) if key.startswith("/") else _try(key)
        if zone is not None:
            return zone
    try:
        zone = _try(_key_from_path(os.path.realpath("/etc/localtime")))
        if zone is not None:
            return zone
    except OSError:
        pass
    try:
        with open("/etc/timezone", encoding="utf-8") as fh:
            zone = _try(fh.read(256).strip())
        if zone is not None:
            return zone
    except (OSError, UnicodeDecodeError):
        pass
    try:
        with open("/etc/localtime", "rb") as fh:
            return ZoneInfo.from_file(fh, key="localtime")
    except (OSError, ValueError):
        return ZoneInfo("UTC")
