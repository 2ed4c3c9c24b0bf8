"""The failure-handling fields of a task: successExitCodes, retry, crashLoop, notify,
healthcheck; from the validated model to Task's fields.

Each field is in the normalised document only when given (so the fingerprints of tasks
without them stay as they were), with its defaults filled in.
"""

from __future__ import annotations

from typing import Any

from reconciler.notify.targets import Target
from reconciler.spec.models import NOTIFY_TARGETS
from reconciler.spec.models import Spec as SpecModel
from reconciler.spec.schema import Issue
from reconciler.spec.task import CrashLoop, Retry


def failure_fields(spec: SpecModel) -> dict[str, Any]:
    """Task keyword arguments of the fields above (their normalised document entries are
    made from them: spec/normalised.py)."""
    kwargs: dict[str, Any] = {}
    if "success_exit_codes" in spec.model_fields_set:
        kwargs["success_exit_codes"] = frozenset(spec.success_exit_codes)
    if spec.retry is not None:
        r = spec.retry
        kwargs["retry"] = Retry(r.limit, r.delay_seconds, r.max_delay_seconds)
    if spec.crash_loop is not None:
        c = spec.crash_loop
        kwargs["crash_loop"] = CrashLoop(c.max_restarts, c.window_seconds)
    if spec.notify is not None:
        targets: list[Target] = []
        events: list[tuple[str, ...]] = []
        for entry in spec.notify:
            on = tuple(dict.fromkeys(entry.on))  # order kept, repeats dropped
            kind = next(k for k in NOTIFY_TARGETS if getattr(entry, k) is not None)
            value = getattr(entry, kind)
            value = tuple(value) if isinstance(value, list) else value
            targets.append(Target(frozenset(on), kind, value))  # type: ignore[arg-type]
            events.append(on)
        kwargs["notify"] = tuple(targets)
        kwargs["notify_on"] = tuple(events)
    if spec.healthcheck is not None:
        kwargs["healthcheck_url"] = spec.healthcheck.url
    return kwargs


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
