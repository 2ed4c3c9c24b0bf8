"""What the schema cannot say: schedules that parse, zones that exist, valid hosts entries.

These run on the raw document next to the schema check, so that one run reports a bad
schedule and a bad number together. Each check looks only at values of the right type;
wrong types are the schema's to report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from reconciler.schedule import ScheduleError, parse_schedule
from reconciler.spec.failure import notify_issues
from reconciler.spec.models import MAX_MEMORY, MEMORY_PATTERN, MIN_MEMORY
from reconciler.spec.schema import Issue
from reconciler.spec.task import memory_bytes
from reconciler.spec.zones import ZoneError, get_zone

if TYPE_CHECKING:
    from reconciler.hosts import HostPattern
    from reconciler.schedule import Schedule


@dataclass
class Checked:
    issues: list[Issue] = field(default_factory=list)
    schedule: Schedule | None = None
    zone: ZoneInfo | None = None
    hosts: tuple[HostPattern, ...] | None = None


def _schedule(text: str, name: str | None = None) -> Schedule | str:
    # parse_schedule keeps the schedules in use by their text: no cache of its own here
    # (a second one, bounded, only churned when a fleet has 10,000 distinct schedules).
    try:
        return parse_schedule(text, name)
    except ScheduleError as exc:
        return str(exc)


# Fleets repeat the same few hosts entries.
@lru_cache(maxsize=4096)
def _host(text: str) -> HostPattern | str:
    from reconciler.hosts import HostEntryError, parse_host_entry

    try:
        return parse_host_entry(text)
    except HostEntryError as exc:
        return str(exc)


def _task_name(data: dict[str, Any]) -> str:
    meta = data.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return name if isinstance(name, str) else ""  # a bad name is the schema's to report


def _has_nul(value: Any) -> bool:
    return isinstance(value, str) and "\x00" in value


def check_semantics(data: Any) -> Checked:
    out = Checked()
    spec = data.get("spec") if isinstance(data, dict) else None
    if not isinstance(spec, dict):
        return out
    issues = out.issues
    schedule = spec.get("schedule")
    if isinstance(schedule, str) and schedule and spec.get("type", "cron") == "cron":
        # `H` hashes the task's name: only such texts are keyed (and cached) by it.
        parsed = _schedule(schedule, _task_name(data) if "H" in schedule else None)
        if isinstance(parsed, str):
            issues.append(Issue(("spec", "schedule"), parsed))
        else:
            out.schedule = parsed
    zone = spec.get("timezone")
    if isinstance(zone, str) and zone:
        try:
            out.zone = get_zone(zone)
        except ZoneError as exc:
            from reconciler.spec.safeyaml import quote

            issues.append(Issue(("spec", "timezone"), f"{quote(zone)} {exc}"))
    hosts = spec.get("hosts")
    if isinstance(hosts, list):
        patterns: list[HostPattern] = []
        for i, entry in enumerate(hosts):
            if not isinstance(entry, str) or not entry:
                continue
            found = _host(entry)
            if isinstance(found, str):
                issues.append(Issue(("spec", "hosts", i), found))
            else:
                patterns.append(found)
        out.hosts = tuple(patterns)
    # A NUL cannot pass through exec(); refuse it here rather than at the first run.
    command = spec.get("command")
    items = command if isinstance(command, list) else [command]
    for i, item in enumerate(items):
        if _has_nul(item):
            where: tuple[str | int, ...] = (
                ("spec", "command", i) if command is items else ("spec", "command")
            )
            issues.append(Issue(where, "must not contain NUL characters"))
    env = spec.get("env")
    if isinstance(env, dict):
        for key, value in env.items():
            if _has_nul(value):
                issues.append(Issue(("spec", "env", key), "value must not contain NUL characters"))
    resources = spec.get("resources")
    memory = resources.get("memoryMax") if isinstance(resources, dict) else None
    if isinstance(memory, str) and re.fullmatch(MEMORY_PATTERN, memory):
        size = memory_bytes(memory)
        if not MIN_MEMORY <= size <= MAX_MEMORY:
            issues.append(
                Issue(("spec", "resources", "memoryMax"), f"{memory} is not within 1Mi and 1024Ti")
            )
    issues.extend(notify_issues(spec))
    for name, key in (("workingDir", "workingDir"), ("user", "user")):
        if _has_nul(spec.get(key)):
            issues.append(Issue(("spec", name), "must not contain NUL characters"))
    return out
