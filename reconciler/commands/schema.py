"""`reconciler schema`: print the JSON Schema of task documents."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "schema",
        help="print the JSON Schema of task documents",
        description="Print the JSON Schema (draft 2020-12) of task documents, as shipped in "
        "schemas/task.schema.json, for editors and the CI of spec repositories.",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from reconciler.spec import schema_text  # here: the other commands need not pay for it

    sys.stdout.write(schema_text())
    return 0
