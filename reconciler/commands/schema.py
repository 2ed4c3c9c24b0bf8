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
    # The shipped file itself, as reconciler.spec.schema_text() reads it, without
    # importing the loader (pydantic, YAML, jsonschema: 0.2 s) for a copy of a file.
    from importlib import resources

    sys.stdout.write(
        resources.files("reconciler").joinpath("data/task.schema.json").read_text("utf-8")
    )
    return 0
