"""`reconciler import`: crontab and gotorch task files to task documents.

Each converter turns source text into drafts and problems (`crontab`, `gotorch`); drafts
get unique names (`names`), pass the spec loader (`check`) and are rendered (`emit`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

from reconciler.importer.check import check
from reconciler.importer.crontab import convert_crontab, is_system_crontab, user_column
from reconciler.importer.emit import render_document, render_stream, write_files
from reconciler.importer.gotorch import convert_gotorch
from reconciler.importer.model import Conversion, ImportedTask, ImportResult, Problem
from reconciler.importer.names import assign_names

Format = Literal["crontab", "gotorch"]

__all__ = [
    "Conversion",
    "Format",
    "ImportResult",
    "ImportedTask",
    "Problem",
    "convert",
    "convert_crontab",
    "convert_gotorch",
    "decode",
    "is_system_crontab",
    "render_document",
    "render_stream",
    "user_column",
    "write_files",
]


def decode(data: bytes, fmt: Format) -> str:
    """Source bytes as text. Crontab bytes that are not UTF-8 are kept (as surrogates) so
    that their line can be reported; Go's JSON decoder replaced them, and so do we."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    return data.decode("utf-8", "surrogateescape" if fmt == "crontab" else "replace")


def convert(
    fmt: Format,
    text: str,
    source: str,
    *,
    system: bool | None = False,
    hosts: Sequence[str] | None = None,
    run_as: str | None = None,
    reserved: Iterable[str] = (),
    validate: bool = True,
) -> ImportResult:
    """Convert a whole source; `reserved` names are in use already and not given out.

    `system=None` (crontabs): read as a system crontab when every entry carries a user
    column (`user_column`), with a note saying so.
    """
    notes: list[str] = []
    if fmt == "crontab":
        if system is None:
            users = user_column(text)
            system = users is not None
            if users is not None:
                notes.append(
                    f"note: read as a system crontab, as every entry names a user "
                    f"({', '.join(users)}) before its command; --no-system reads it "
                    "as a user crontab"
                )
        conversion = convert_crontab(text, source, system=system, hosts=hosts, run_as=run_as)
        if not system and run_as is None and conversion.drafts:
            notes.append(
                "warning: a user crontab imported without --run-as: its tasks will run as "
                "the controller's user (root, for a controller started as root); "
                "--run-as USER runs them as the crontab's owner did"
            )
    else:
        conversion = convert_gotorch(text, source)
        if hosts is not None or run_as is not None:
            _apply_overrides(conversion, hosts, run_as)
    tasks = assign_names(conversion.drafts, reserved)
    problems = list(conversion.problems)
    if validate:
        tasks, rejected = check(tasks)
        problems += rejected
    return ImportResult(
        tasks=tasks, problems=sorted(problems, key=lambda p: p.line), notes=notes
    )


def _apply_overrides(
    conversion: Conversion, hosts: Sequence[str] | None, run_as: str | None
) -> None:
    for draft in conversion.drafts:
        if hosts is not None and "hosts" not in draft.spec:
            draft.spec["hosts"] = list(hosts)
        if run_as is not None:
            draft.spec["user"] = run_as
