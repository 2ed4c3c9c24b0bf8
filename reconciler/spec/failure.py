"""The failure-handling fields of a task: successExitCodes, retry, crashLoop, notify,
healthcheck; from the validated model to the normalised document and Task's fields.

Each field is in the normalised document only when given (so the fingerprints of tasks
without them stay as they were), with its defaults filled in.
"""

from __future__ import annotations

from typing import Any

from reconciler.notify.targets import Target
from reconciler.spec.models import NOTIFY_TARGETS
from reconciler.spec.models import Spec as SpecModel
from reconciler.spec.schema import Issue
from reconciler.spec.task import CrashLoop, FrozenDict, Retry


def failure_fields(spec: SpecModel) -> tuple[dict[str, Any], dict[str, Any]]:
    """(normalised document entries, Task keyword arguments) of the fields above."""
    norm: dict[str, Any] = {}
    kwargs: dict[str, Any] = {}
    given = spec.model_fields_set
    if "success_exit_codes" in given:
        codes = tuple(sorted(set(spec.success_exit_codes)))
        norm["successExitCodes"] = codes
        kwargs["success_exit_codes"] = frozenset(codes)
    if spec.retry is not None:
        r = spec.retry
        kwargs["retry"] = Retry(r.limit, r.delay_seconds, r.max_delay_seconds)
        norm["retry"] = FrozenDict(
            {
                "limit": r.limit,
                "delaySeconds": r.delay_seconds,
                "maxDelaySeconds": r.max_delay_seconds,
            }
        )
    if spec.crash_loop is not None:
        c = spec.crash_loop
        kwargs["crash_loop"] = CrashLoop(c.max_restarts, c.window_seconds)
        norm["crashLoop"] = FrozenDict(
            {"maxRestarts": c.max_restarts, "windowSeconds": c.window_seconds}
        )
    if spec.notify is not None:
        targets: list[Target] = []
        entries: list[FrozenDict] = []
        for entry in spec.notify:
            on = tuple(dict.fromkeys(entry.on))  # order kept, repeats dropped
            kind = next(k for k in NOTIFY_TARGETS if getattr(entry, k) is not None)
            value = getattr(entry, kind)
            value = tuple(value) if isinstance(value, list) else value
            targets.append(Target(frozenset(on), kind, value))  # type: ignore[arg-type]
            entries.append(FrozenDict({"on": on, kind: value}))
        kwargs["notify"] = tuple(targets)
        norm["notify"] = tuple(entries)
    if spec.healthcheck is not None:
        kwargs["healthcheck_url"] = spec.healthcheck.url
        norm["healthcheck"] = FrozenDict({"url": spec.healthcheck.url})
    return norm, kwargs


def notify_issues(spec: dict[str, Any]) -> list[Issue]:
    """Target URLs that cannot be delivered to, and NULs in a notify command: validation
    errors naming the field, never failures at delivery time. URLs are not quoted."""
    from reconciler.notify.targets import url_problem

    issues: list[Issue] = []
    notify = spec.get("notify")
    for i, entry in enumerate(notify if isinstance(notify, list) else []):
        if not isinstance(entry, dict):
            continue
        for kind in ("webhook", "apprise"):
            url = entry.get(kind)
            if isinstance(url, str) and url:
                problem = url_problem(kind, url)
                if problem:
                    issues.append(Issue(("spec", "notify", i, kind), problem))
        command = entry.get("command")
        if isinstance(command, list):
            for j, item in enumerate(command):
                if isinstance(item, str) and "\x00" in item:
                    issues.append(
                        Issue(
                            ("spec", "notify", i, "command", j), "must not contain NUL characters"
                        )
                    )
    health = spec.get("healthcheck")
    url = health.get("url") if isinstance(health, dict) else None
    if isinstance(url, str) and url:
        problem = url_problem("healthcheck", url)
        if problem:
            issues.append(Issue(("spec", "healthcheck", "url"), problem))
    return issues
