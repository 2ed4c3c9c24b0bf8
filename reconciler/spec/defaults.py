"""`kind: TaskDefaults`: defaults for every task of a spec directory.

At most one per spec directory (any ``metadata.name``); its fields sit under ``spec``
with a task's names: timezone, env, retry, notify, successfulRunsHistoryLimit,
failedRunsHistoryLimit, outputLimitBytes. They are put into each task document before
it is validated: a task's own field replaces the default whole, except ``env``, merged
(the task's keys win); ``retry`` is left out for daemons (it is for cron runs only).
Tasks are then shown (``get -o json``, ``diff``) and fingerprinted with them applied,
so a change of the defaults is a change of every task it reaches.

The defaults document is validated alone (file, line, field), so an error never lands
on a task that merely inherits it. Where tasks are loaded file by file, the defaults of
the directory must be known first: :func:`load_with_defaults` loads the files, finds
the one document, and loads again the files it applies to.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, StrictStr, ValidationError

from reconciler.spec.errors import SpecError
from reconciler.spec.failure import notify_issues
from reconciler.spec.models import (
    EnvName,
    HistoryLimit,
    Metadata,
    NonEmptyStr,
    NotifyEntry,
    OutputLimit,
    Retry,
    _Strict,
)
from reconciler.spec.safeyaml import RawDocument
from reconciler.spec.schema import Issue

KIND = "TaskDefaults"
FIELDS = (
    "timezone", "env", "retry", "notify",
    "successfulRunsHistoryLimit", "failedRunsHistoryLimit", "outputLimitBytes",
)  # fmt: skip


class DefaultsSpec(_Strict):
    timezone: NonEmptyStr | None = None
    env: dict[EnvName, StrictStr] | None = None
    retry: Retry | None = None
    notify: list[NotifyEntry] | None = Field(default=None, max_length=50)
    successful_runs_history_limit: HistoryLimit | None = Field(
        default=None, alias="successfulRunsHistoryLimit"
    )
    failed_runs_history_limit: HistoryLimit | None = Field(
        default=None, alias="failedRunsHistoryLimit"
    )
    output_limit_bytes: OutputLimit | None = Field(default=None, alias="outputLimitBytes")


class DefaultsDocument(_Strict):
    api_version: Literal["reconciler/v1"] = Field(alias="apiVersion")
    kind: Literal["TaskDefaults"]
    metadata: Metadata
    spec: DefaultsSpec


@dataclass(frozen=True)
class Defaults:
    """The TaskDefaults in force for a directory: its plain ``spec`` and where it is."""

    file: str
    line: int
    name: str
    spec: Mapping[str, Any]

    @property
    def fingerprint(self) -> str:
        text = json.dumps(self.spec, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def is_defaults(doc: RawDocument) -> bool:
    return isinstance(doc.data, dict) and doc.data.get("kind") == KIND


def read(doc: RawDocument, display: str, errors: list[SpecError]) -> Defaults | None:
    """The defaults of one ``kind: TaskDefaults`` document, or None (errors appended)."""
    from reconciler.spec.loader import _pydantic_issues, field_name

    data = doc.data
    meta = data.get("metadata")
    label = meta.get("name") if isinstance(meta, dict) else None
    label = label if isinstance(label, str) and len(label) <= 63 else KIND
    issues: list[Issue] = []
    try:
        model = DefaultsDocument.model_validate(data)
    except ValidationError as exc:
        issues = _pydantic_issues(exc)
    spec = data.get("spec")
    if isinstance(spec, dict):
        issues += notify_issues(spec)
        zone = spec.get("timezone")
        if isinstance(zone, str) and zone:
            from reconciler.spec.zones import ZoneError, get_zone

            try:
                get_zone(zone)
            except ZoneError as exc:
                issues.append(Issue(("spec", "timezone"), f"{zone!r} {exc}"))
    if issues:
        for path, message in issues:
            errors.append(SpecError(display, doc.line_of(path), label, field_name(path), message))
        return None
    plain = json.loads(json.dumps(spec))
    return Defaults(display, doc.line, model.metadata.name, plain)


def apply(data: dict[str, Any], defaults: Defaults | None) -> dict[str, Any]:
    """A task document with the defaults put into its ``spec`` (a copy; ``data`` kept)."""
    spec = data.get("spec") if defaults is not None else None
    if defaults is None or not isinstance(spec, dict):
        return data
    merged = dict(spec)
    daemon = spec.get("type") == "daemon"
    for key, value in defaults.spec.items():
        if key == "env" and isinstance(spec.get("env"), dict):
            merged["env"] = {**value, **spec["env"]}
        elif key == "retry" and daemon:
            continue
        elif key not in spec:
            merged[key] = json.loads(json.dumps(value))
    return {**data, "spec": merged}


Load = Callable[[str, "str | None", "Defaults | None"], Any]  # -> loader.FileLoad


def load_with_defaults(found: Sequence[tuple[Any, str | None]], load: Load) -> dict[str, Any]:
    """Every file loaded (``load(path, root, defaults)``), with its directory's defaults.

    Files are loaded once without defaults; where a directory holds a TaskDefaults, its
    files are loaded again with it (only then is a directory's defaults known).
    """
    files = {str(path): load(str(path), root, None) for path, root in found}
    by_root: dict[str, list[str]] = {}  # a file given itself is a directory of its own
    for path, root in found:
        by_root.setdefault(root if root is not None else str(path), []).append(str(path))
    roots = {str(path): root for path, root in found}
    for paths in by_root.values():
        chosen, errors = pick_defaults([d for p in paths for d in files[p].defaults])
        if chosen is not None:
            for path in paths:
                files[path] = load(path, roots.get(path), chosen)
        for err in errors:
            files[err.file].errors.append(err)
            files[err.file].tasks = []
    return files


def pick_defaults(found: Sequence[Defaults]) -> tuple[Defaults | None, list[SpecError]]:
    """The one defaults document of a directory; every further one is an error."""
    ordered = sorted(found, key=lambda d: (d.file, d.line))
    if not ordered:
        return None, []
    first = ordered[0]
    errors = [
        SpecError(
            d.file,
            d.line,
            d.name,
            "kind",
            f"a second TaskDefaults in the spec directory; the first is at {first.file}:{first.line}",
        )
        for d in ordered[1:]
    ]
    return first, errors
