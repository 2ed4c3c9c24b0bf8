"""The one form every validation problem takes, in the CLI, the logs and `status`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _escape(text: str) -> str:
    # A file name or value with a newline must not be able to forge a second error line.
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


@dataclass(frozen=True)
class SpecError:
    """`specs/web.yaml:12: rotate-logs: spec.maxConcurrency: -1 is less than the minimum of 1`.

    `task` is the task's name, `<document N>` when the document has no valid name, or
    None for problems of the file as a whole. `line` is None where no line is known.
    """

    file: str
    line: int | None
    task: str | None
    field: str | None
    message: str

    def __str__(self) -> str:
        parts = [_escape(self.file) if self.line is None else f"{_escape(self.file)}:{self.line}"]
        if self.task is not None:
            parts.append(_escape(self.task))
        if self.field:
            parts.append(_escape(self.field))
        parts.append(_escape(self.message))
        return ": ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "task": self.task,
            "field": self.field,
            "message": self.message,
            "error": str(self),
        }


def document_label(index: int) -> str:
    return f"<document {index}>"
