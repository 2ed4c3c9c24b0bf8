"""What a converter hands to naming, checking and emitting."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The order fields are written in: what runs when, then what, where and how.
SPEC_ORDER = (
    "type", "schedule", "timezone", "command", "hosts", "user", "env", "maxConcurrency",
    "replicas",
)


@dataclass(frozen=True)
class Problem:
    """Something in the source that did not make it into the output unchanged.

    ``fatal``: the entry was not written at all; otherwise it was written and only the
    part named in ``message`` was left out.
    """

    line: int
    message: str
    fatal: bool = True

    def render(self, source: str) -> str:
        kind = "cannot convert" if self.fatal else "warning"
        return f"{source}:{self.line}: {kind}: {self.message}"


@dataclass
class Draft:
    """A converted entry before it has its final, unique name."""

    line: int
    name_hint: str
    spec: dict[str, Any]
    # Full comment lines, each starting with "#", emitted above the document.
    comments: list[str] = field(default_factory=list)
    explicit_name: str | None = None


@dataclass
class ImportedTask:
    name: str
    line: int
    spec: dict[str, Any]
    comments: list[str] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        order = {key: i for i, key in enumerate(SPEC_ORDER)}
        spec = dict(sorted(self.spec.items(), key=lambda kv: order.get(kv[0], len(order))))
        return {
            "apiVersion": "reconciler/v1",
            "kind": "Task",
            "metadata": {"name": self.name},
            "spec": spec,
        }


@dataclass
class Conversion:
    """A converter's result: drafts in source order and everything it had to report."""

    drafts: list[Draft] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


@dataclass
class ImportResult:
    tasks: list[ImportedTask] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # About the whole file, each starting with "note: " or "warning: ": how it was read.
    notes: list[str] = field(default_factory=list)
