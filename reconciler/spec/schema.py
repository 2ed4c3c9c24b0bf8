"""The published JSON Schema, its validator, and readable messages for its errors."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator
from functools import cache, lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any, NamedTuple

from reconciler.spec.models import CRON_ONLY, DAEMON_ONLY
from reconciler.spec.safeyaml import Path, quote

if TYPE_CHECKING:  # jsonschema is imported only when a document fails (0.1-0.2 s)
    from jsonschema import ValidationError


def schema_text() -> str:
    """The schema exactly as shipped (schemas/task.schema.json is a byte-identical copy)."""
    return resources.files("reconciler").joinpath("data/task.schema.json").read_text("utf-8")


def schema() -> dict[str, Any]:
    return json.loads(schema_text())  # a fresh copy: callers may change it


@cache
def _ecma(pattern: str) -> re.Pattern[str]:
    # ECMA-262 `$` (what editors and the typed models use) matches only at the very end;
    # Python's also matches before a final newline, which would let "name\n" through.
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    from jsonschema import ValidationError

    if validator.is_type(instance, "string") and not _ecma(patrn).search(instance):
        yield ValidationError(f"{instance!r} does not match {patrn!r}")


@lru_cache(maxsize=1)
def validator() -> Any:
    from jsonschema import Draft202012Validator
    from jsonschema.validators import extend

    return extend(Draft202012Validator, {"pattern": _pattern})(schema())


class Issue(NamedTuple):
    path: Path
    message: str


_ENV = ("spec", "env")
_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
}
_PATTERN_HELP = {
    "metadata.name": (
        "is not a valid name: lower-case letters, digits and '-', starting and ending "
        "with a letter or digit"
    ),
    "spec.workingDir": "must be an absolute path",
    "spec.env": "is not a valid environment variable name",
}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bytes):
        return "binary data"
    return "a date or time"  # YAML reads 2024-01-01 unquoted as a date


def _dotted(path: Path) -> str:
    return ".".join(str(p) for p in path if isinstance(p, str))


def _is_env_value(path: Path) -> bool:
    return len(path) >= 3 and path[:2] == _ENV


def _keys_of(schema: Any) -> list[str]:
    props = schema.get("properties", {}) if isinstance(schema, dict) else {}
    return sorted(props)


def suggest(word: str, choices: list[str]) -> str:
    found = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not found:
        lowered = {c.lower(): c for c in choices}
        hit = lowered.get(word.lower())
        found = [hit] if hit else []
    return f"; did you mean {found[0]}?" if found else ""


def check_document(data: Any) -> list[Issue]:
    """All schema errors of one document, as (path, message), sorted by path."""
    issues: list[Issue] = []
    type_invalid = _spec_type_invalid(data)
    for error in validator().iter_errors(data):
        branch = {"then", "else"} & set(error.absolute_schema_path)
        if type_invalid and branch:
            continue  # `type` itself is wrong: what follows from it would only confuse
        if error.validator is None and branch:
            issues.extend(_type_rule(data, "then" in branch))
            continue
        issues.extend(_convert(error))
    seen: set[Issue] = set()
    unique = [i for i in issues if not (i in seen or seen.add(i))]  # type: ignore[func-returns-value]
    return unique


def _type_rule(data: Any, daemon: bool) -> list[Issue]:
    # A `false` subschema loses the property from the error's path (jsonschema returns
    # before adding it), so the offending fields are found in the document itself.
    spec = data["spec"]
    if daemon:
        return [
            Issue(("spec", k), "not allowed for a daemon (cron tasks only)")
            for k in CRON_ONLY
            if k in spec
        ]
    return [
        Issue(("spec", k), "only allowed for a daemon (type: daemon)")
        for k in DAEMON_ONLY
        if k in spec
    ]


def _spec_type_invalid(data: Any) -> bool:
    spec = data.get("spec") if isinstance(data, dict) else None
    return isinstance(spec, dict) and "type" in spec and spec["type"] not in ("cron", "daemon")


def _convert(error: ValidationError) -> list[Issue]:
    path: Path = tuple(error.absolute_path)
    kind = error.validator
    value = error.instance
    env_value = _is_env_value(path)
    if "propertyNames" in error.absolute_schema_path:
        key_path = path + (str(value),)
        if kind == "minLength":
            return [Issue(path, "keys must not be empty")]
        help_text = _PATTERN_HELP.get(_dotted(path), f"does not match {error.validator_value}")
        return [Issue(key_path, help_text.removeprefix("is "))]
    if kind == "type":
        expected = error.validator_value
        names = [expected] if isinstance(expected, str) else list(expected)
        want = " or ".join(_TYPE_NAMES.get(n, n) for n in names)
        if env_value:
            return [Issue(path, f"value must be {want}")]
        hint = ""
        if "string" in names and not isinstance(value, dict | list | str):
            hint = " (quote it if it is meant as text)"
        return [Issue(path, _wrong_type(value, want, hint))]
    if kind == "additionalProperties":
        extras = sorted(k for k in value if k not in error.schema.get("properties", {}))
        choices = _keys_of(error.schema)
        return [Issue(path + (k,), "unknown field" + suggest(k, choices)) for k in extras]
    if kind == "required":
        missing = str(error.message).split("'")[1] if "'" in error.message else "?"
        for candidate in error.validator_value:
            if isinstance(value, dict) and candidate not in value:
                missing = candidate
                break
        if path == ("spec",) and missing == "schedule":
            return [Issue(path + (missing,), "required for a cron task (or set type: daemon)")]
        return [Issue(path + (missing,), "required field is missing")]
    if kind == "minimum":
        return [Issue(path, f"{quote(value)} is less than the minimum of {error.validator_value}")]
    if kind == "maximum":
        return [
            Issue(path, f"{quote(value)} is greater than the maximum of {error.validator_value}")
        ]
    if kind == "minLength":
        return [Issue(path, "must not be empty")]
    if kind == "maxLength":
        return [Issue(path, f"{quote(value)} is longer than {error.validator_value} characters")]
    if kind == "minItems":
        return [Issue(path, "must not be an empty list")]
    if kind == "pattern":
        help_text = _PATTERN_HELP.get(_dotted(path), f"does not match {error.validator_value}")
        return [Issue(path, f"{quote(value)} {help_text}")]
    if kind == "const":
        return [Issue(path, f"{quote(value)} is not supported; expected {error.validator_value}")]
    if kind == "enum":
        choices = [str(c) for c in error.validator_value]
        hint = suggest(value, choices) if isinstance(value, str) else ""
        return [Issue(path, f"{quote(value)} is not one of {', '.join(choices)}{hint}")]
    if kind == "anyOf":
        return _any_of(error, path)
    if kind == "oneOf" and path[-2:-1] == ("notify",) and isinstance(value, dict):
        given = [k for k in ("webhook", "command", "apprise") if k in value]
        found = f" (found {', '.join(given)})" if given else ""
        return [Issue(path, f"needs exactly one of webhook, command, apprise{found}")]
    text = "invalid value" if env_value else error.message[:200]
    return [Issue(path, text)]


def _any_of(error: ValidationError, path: Path) -> list[Issue]:
    """command and user: report the branch that matches the value's own type."""
    value = error.instance
    branch_type = (
        "array"
        if isinstance(value, list)
        else "string"
        if isinstance(value, str)
        else ("integer" if isinstance(value, int | float) and not isinstance(value, bool) else None)
    )
    if branch_type is not None:
        found: list[Issue] = []
        for sub in error.context or ():
            branch = error.validator_value[sub.schema_path[0]]
            if branch.get("type") != branch_type:
                continue
            if sub.validator == "type" and not sub.relative_path:
                continue  # the branch's own type: already known to match
            found.extend(_convert(sub))
        if found:
            return found
    wanted = " or ".join(_TYPE_NAMES.get(b.get("type", ""), "?") for b in error.validator_value)
    if path[-1:] == ("command",):
        wanted = "a list of strings or a string"
    elif path[-1:] == ("user",):
        wanted = "a user name or a uid"
    return [Issue(path, _wrong_type(value, wanted, ""))]


def _wrong_type(value: Any, want: str, hint: str) -> str:
    if value is None or isinstance(value, str | int | float):
        return f"{quote(value)} is {_kind(value)}, expected {want}{hint}"
    return f"expected {want}, got {_kind(value)}{hint}"
