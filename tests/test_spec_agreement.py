"""The JSON Schema and the typed models accept exactly the same documents.

A corpus of hand-picked cases, then documents made by mutating valid ones (wrong types,
extra and missing keys, numbers at and past the bounds, bad names), each judged by both.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from reconciler.spec import schema, schema_text
from reconciler.spec.models import TaskDocument
from reconciler.spec.schema import check_document, validator

REPO = Path(__file__).resolve().parent.parent


def by_schema(doc: Any) -> bool:
    return bool(validator().is_valid(doc))


def by_models(doc: Any) -> bool:
    try:
        TaskDocument.model_validate(doc)
    except ValidationError:
        return False
    return True


def agree(doc: Any) -> bool:
    verdict = by_schema(doc)
    assert by_models(doc) == verdict, json.dumps(doc, default=repr)
    if not verdict:
        assert check_document(doc), "the schema refused it, so there must be a message"
    return verdict


CRON_MIN: dict[str, Any] = {
    "apiVersion": "reconciler/v1",
    "kind": "Task",
    "metadata": {"name": "a"},
    "spec": {"schedule": "@daily", "command": ["true"]},
}
CRON_FULL: dict[str, Any] = {
    "apiVersion": "reconciler/v1",
    "kind": "Task",
    "metadata": {"name": "rotate-logs", "labels": {"team": "infra"}},
    "spec": {
        "type": "cron",
        "schedule": "0 */5 * * * *",
        "timezone": "Europe/Berlin",
        "command": ["/usr/sbin/logrotate", "/etc/logrotate.conf"],
        "hosts": ["10.0.0.5", "10.0.1.0/24", "web-*"],
        "maxConcurrency": 1,
        "concurrencyPolicy": "Forbid",
        "startingDeadlineSeconds": 10,
        "timeoutSeconds": 3600,
        "terminationGracePeriodSeconds": 30,
        "env": {"LANG": "C.UTF-8"},
        "workingDir": "/srv/app",
        "user": "deploy",
        "suspend": False,
        "successfulRunsHistoryLimit": 5,
        "failedRunsHistoryLimit": 0,
        "outputLimitBytes": 65536,
    },
}
DAEMON_FULL: dict[str, Any] = {
    "apiVersion": "reconciler/v1",
    "kind": "Task",
    "metadata": {"name": "heartbeat", "labels": {"team": "demo"}},
    "spec": {
        "type": "daemon",
        "command": "while true; do echo hi; sleep 5; done",
        "hosts": [],
        "timeoutSeconds": 86400,
        "terminationGracePeriodSeconds": 0,
        "restartPolicy": "OnFailure",
        "replicas": 2,
        "env": {},
        "user": 0,
        "suspend": True,
    },
}
BASES = [CRON_MIN, CRON_FULL, DAEMON_FULL]


def with_spec(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(CRON_MIN)
    for key, value in changes.items():
        if value is _DELETE:
            doc["spec"].pop(key, None)
        else:
            doc["spec"][key] = value
    return doc


_DELETE = object()

VALID = [
    CRON_MIN,
    CRON_FULL,
    DAEMON_FULL,
    with_spec(maxConcurrency=1.0),  # JSON Schema: 1.0 is an integer
    with_spec(maxConcurrency=1000, startingDeadlineSeconds=0, timeoutSeconds=31536000),
    with_spec(user=4294967294),
    with_spec(user=1.0),
    with_spec(jitterSeconds=0),
    with_spec(jitterSeconds=31536000, schedule="H H(0-5) * * 1-5"),
    with_spec(schedule="0 0 0 L-3,15W * 5#3,friL"),
    with_spec(command="x"),
    with_spec(command=["x", ""]),  # only the program must be non-empty
    with_spec(env={"_A1": "", "a": "x"}),
    with_spec(concurrencyPolicy="Replace"),
    with_spec(type="cron"),
    with_spec(terminationGracePeriodSeconds=-0.0),
    {**CRON_MIN, "metadata": {"name": "a" * 63, "labels": {"x": ""}}},
    {**CRON_MIN, "metadata": {"name": "0-9"}},
]

INVALID = [
    {},
    [],
    "x",
    None,
    {**CRON_MIN, "apiVersion": "reconciler/v2"},
    {**CRON_MIN, "kind": "task"},
    {**CRON_MIN, "extra": 1},
    {k: v for k, v in CRON_MIN.items() if k != "spec"},
    {**CRON_MIN, "metadata": {"name": "a\n"}},  # ECMA `$` ends the string; Python's would not
    {**CRON_MIN, "metadata": {"name": "a" * 64}},
    {**CRON_MIN, "metadata": {"name": "a", "labels": {"": "x"}}},
    {**CRON_MIN, "metadata": {"name": "a", "labels": {"x": 1}}},
    {**CRON_MIN, "metadata": {"name": "a", "labels": None}},
    {**CRON_MIN, "metadata": {"name": "a", "annotations": {}}},
    with_spec(maxConcurrency=0),
    with_spec(maxConcurrency=1001),
    with_spec(maxConcurrency=True),
    with_spec(maxConcurrency="1"),
    with_spec(maxConcurrency=1.5),
    with_spec(maxConcurrency=None),
    with_spec(timeoutSeconds=0),
    with_spec(timeoutSeconds=None),
    with_spec(startingDeadlineSeconds=-1),
    with_spec(startingDeadlineSeconds=31536001),
    with_spec(jitterSeconds=-1),
    with_spec(jitterSeconds=31536001),
    with_spec(jitterSeconds="5"),
    with_spec(jitterSeconds=True),
    with_spec(user=-1),
    with_spec(user=4294967295),
    with_spec(user=""),
    with_spec(user=False),
    with_spec(command=[]),
    with_spec(command=""),
    with_spec(command=[""]),
    with_spec(command=["x", 1]),
    with_spec(command=None),
    with_spec(command=_DELETE),
    with_spec(schedule=_DELETE),
    with_spec(schedule=""),
    with_spec(restartPolicy="Always"),
    with_spec(type="daemon"),  # schedule is cron only
    with_spec(type="daemon", schedule=_DELETE, maxConcurrency=1),
    with_spec(type="daemon", schedule=_DELETE, concurrencyPolicy="Forbid"),
    with_spec(type="daemon", schedule=_DELETE, startingDeadlineSeconds=1),
    with_spec(type="daemon", schedule=_DELETE, jitterSeconds=0),
    with_spec(type="Daemon"),
    with_spec(concurrencyPolicy="Allow"),
    with_spec(env={"1A": "x"}),
    with_spec(env={"A-B": "x"}),
    with_spec(env={"A\n": "x"}),
    with_spec(env={"A": 1}),
    with_spec(env={"A": None}),
    with_spec(workingDir="relative"),
    with_spec(workingDir=""),
    with_spec(hosts=[""]),
    with_spec(hosts="web-*"),
    with_spec(hosts=[1]),
    with_spec(suspend=0),
    with_spec(suspend="false"),
    with_spec(timezone=""),
    with_spec(timezone=None),
    with_spec(Schedule="@daily"),
]


@pytest.mark.parametrize("doc", VALID, ids=range(len(VALID)))
def test_valid_corpus(doc: Any) -> None:
    assert agree(doc) is True


@pytest.mark.parametrize("doc", INVALID, ids=range(len(INVALID)))
def test_invalid_corpus(doc: Any) -> None:
    assert agree(doc) is False


# --- generated documents ----------------------------------------------------------------

NAMES = st.sampled_from(
    ["a", "web-1", "a-", "-a", "A", "a_b", "a\n", "a" * 63, "a" * 64, "", "0", "é"]
)
INTS = st.one_of(
    st.sampled_from(
        [
            -1,
            0,
            1,
            2,
            10,
            999,
            1000,
            1001,
            31536000,
            31536001,
            4294967294,
            4294967295,
            2**63,
            2**70,
            -(2**70),
        ]
    ),
    st.integers(),
)
FLOATS = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, 1.5, 1000.0, 1e300, -1.0, 31536000.0, 4294967294.0]),
    st.floats(allow_nan=False, allow_infinity=False),
)
STRINGS = st.one_of(
    st.sampled_from(
        [
            "",
            "x",
            "/",
            "/srv",
            "Forbid",
            "Replace",
            "Always",
            "OnFailure",
            "Never",
            "cron",
            "daemon",
            "reconciler/v1",
            "Task",
            "A_1",
            "1A",
            "web-*",
            "a\n",
            "\n",
            "\x00",
        ]
    ),
    st.text(max_size=8),
)
SCALARS = st.one_of(st.none(), st.booleans(), INTS, FLOATS, STRINGS, NAMES)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(STRINGS, inner, max_size=3)
    ),
    max_leaves=6,
)
SPEC_KEYS = list(CRON_FULL["spec"]) + ["restartPolicy", "schedul", "Type"]
NUMBERS = st.one_of(INTS, FLOATS, st.booleans())
# Values near the edge of what each field accepts, valid and not.
BORDERLINE: dict[str, st.SearchStrategy[Any]] = {
    "type": st.sampled_from(["cron", "daemon", "Cron", ""]),
    "schedule": st.sampled_from(["@daily", "", "* * * * *"]),
    "timezone": st.sampled_from(["UTC", ""]),
    "command": st.one_of(
        STRINGS, st.lists(STRINGS, max_size=3), st.lists(st.one_of(STRINGS, INTS), max_size=2)
    ),
    "hosts": st.lists(STRINGS, max_size=2),
    "maxConcurrency": NUMBERS,
    "concurrencyPolicy": st.sampled_from(["Forbid", "Replace", "forbid"]),
    "startingDeadlineSeconds": NUMBERS,
    "jitterSeconds": NUMBERS,
    "timeoutSeconds": NUMBERS,
    "terminationGracePeriodSeconds": NUMBERS,
    "restartPolicy": st.sampled_from(["Always", "OnFailure", "Never", "always"]),
    "env": st.dictionaries(STRINGS, st.one_of(STRINGS, INTS), max_size=2),
    "workingDir": STRINGS,
    "user": st.one_of(STRINGS, NUMBERS),
    "suspend": st.one_of(st.booleans(), INTS),
    "successfulRunsHistoryLimit": NUMBERS,
    "failedRunsHistoryLimit": NUMBERS,
    "outputLimitBytes": st.one_of(NUMBERS, st.sampled_from([8388608, 8388609])),
    "successExitCodes": st.one_of(
        st.lists(st.one_of(NUMBERS, st.sampled_from([255, 256])), max_size=3), NUMBERS
    ),
    "retry": st.one_of(
        st.fixed_dictionaries(
            {"limit": NUMBERS}, optional={"delaySeconds": NUMBERS, "maxDelaySeconds": NUMBERS}
        ),
        JSON,
    ),
    "crashLoop": st.fixed_dictionaries(
        {}, optional={"maxRestarts": NUMBERS, "windowSeconds": NUMBERS}
    ),
    "notify": st.lists(
        st.fixed_dictionaries(
            {"on": st.lists(st.sampled_from(["failure", "gave-up", "Failure"]), max_size=2)},
            optional={
                "webhook": st.sampled_from(["https://h.example/x", ""]),
                "command": st.one_of(st.lists(STRINGS, max_size=2), STRINGS),
                "apprise": st.sampled_from(["mailto://a@b.example", 1]),
            },
        ),
        max_size=2,
    ),
    "healthcheck": st.one_of(st.fixed_dictionaries({"url": st.one_of(STRINGS, INTS)}), JSON),
}


def paths_of(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += paths_of(value, prefix + (key,))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += paths_of(value, prefix + (i,))
    return out


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    doc = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in paths_of(doc) if p]
        op = draw(st.sampled_from(["set", "delete", "add", "add-spec", "field", "field", "name"]))
        if op == "add-spec" and isinstance(doc.get("spec"), dict):
            doc["spec"][draw(st.sampled_from(SPEC_KEYS))] = draw(JSON)
            continue
        if op == "field" and isinstance(doc.get("spec"), dict):
            key = draw(st.sampled_from(sorted(BORDERLINE)))
            doc["spec"][key] = draw(BORDERLINE[key])
            continue
        if op == "name" and isinstance(doc.get("metadata"), dict):
            doc["metadata"]["name"] = draw(NAMES)
            continue
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for part in path[:-1]:
            parent = parent[part]
        last = path[-1]
        if op == "set":
            parent[last] = draw(JSON)
        elif op == "delete":
            del parent[last]
        elif isinstance(parent, dict):
            parent[draw(STRINGS)] = draw(JSON)
        else:
            parent.append(draw(JSON))
    return doc


@settings(
    max_examples=1500,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated())
def test_schema_and_models_agree_on_mutated_documents(doc: Any) -> None:
    agree(doc)


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.fixed_dictionaries(
        {"maxConcurrency": st.one_of(INTS, FLOATS, st.booleans())},
        optional={
            "user": st.one_of(INTS, FLOATS, STRINGS),
            "timeoutSeconds": st.one_of(INTS, FLOATS),
            "startingDeadlineSeconds": st.one_of(INTS, FLOATS),
        },
    )
)
def test_schema_and_models_agree_on_numbers(numbers: dict[str, Any]) -> None:
    agree(with_spec(**numbers))


# --- the shipped schema ------------------------------------------------------------------


def test_package_schema_is_the_published_file_byte_for_byte() -> None:
    assert (REPO / "schemas" / "task.schema.json").read_bytes() == schema_text().encode("utf-8")
    data = (REPO / "reconciler" / "data" / "task.schema.json").read_bytes()
    assert data == (REPO / "schemas" / "task.schema.json").read_bytes()


def test_schema_is_draft_2020_12_with_descriptions_everywhere() -> None:
    from jsonschema import Draft202012Validator

    doc = schema()
    Draft202012Validator.check_schema(doc)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["$id"]

    def objects(node: Any, path: str) -> None:
        if not isinstance(node, dict) or node.get("type") != "object":
            return
        assert node.get("additionalProperties") is not True, path
        if "properties" in node:
            assert node["additionalProperties"] is False, path
        for name, sub in node.get("properties", {}).items():
            assert sub.get("description"), f"{path}.{name} has no description"
            objects(sub, f"{path}.{name}")

    objects(doc, "")
    spec = doc["properties"]["spec"]["properties"]
    expected = {
        "type",
        "schedule",
        "timezone",
        "command",
        "hosts",
        "maxConcurrency",
        "concurrencyPolicy",
        "startingDeadlineSeconds",
        "jitterSeconds",
        "timeoutSeconds",
        "terminationGracePeriodSeconds",
        "restartPolicy",
        "replicas",
        "env",
        "workingDir",
        "user",
        "resources",
        "placement",
        "placementFallback",
        "suspend",
        "successfulRunsHistoryLimit",
        "failedRunsHistoryLimit",
        "outputLimitBytes",
        "successExitCodes",
        "retry",
        "crashLoop",
        "notify",
        "healthcheck",
    }
    assert set(spec) == expected
    defaults = {k: v["default"] for k, v in spec.items() if "default" in v}
    assert defaults == {
        "type": "cron",
        "maxConcurrency": 1,
        "concurrencyPolicy": "Forbid",
        "startingDeadlineSeconds": 10,
        "jitterSeconds": 0,
        "terminationGracePeriodSeconds": 30,
        "restartPolicy": "Always",
        "replicas": 1,
        "env": {},
        "placement": "all",
        "placementFallback": "skip",
        "suspend": False,
        "successfulRunsHistoryLimit": 20,
        "failedRunsHistoryLimit": 20,
        "outputLimitBytes": 1048576,
        "successExitCodes": [0],
    }
