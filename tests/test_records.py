"""What the controller writes down: outcomes, the ledger and its tolerance of damage."""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

import pytest

from reconciler.controller.records import Ledger, outcome_of, rfc3339
from reconciler.reconcile import DaemonState


@pytest.mark.parametrize(
    "reason, code, sig, adopted, outcome",
    [
        (None, 0, None, False, "succeeded"),
        (None, 3, None, False, "failed"),
        (None, None, "SIGKILL", False, "failed"),
        ("timeout", None, "SIGTERM", False, "timed-out"),
        ("replaced", None, "SIGTERM", False, "stopped"),
        ("shutdown", 0, None, False, "stopped"),
        (None, None, None, True, "unknown"),
        (None, 0, None, True, "succeeded"),
    ],
)
def test_outcomes(reason, code, sig, adopted, outcome) -> None:
    assert outcome_of(reason, code, sig, adopted) == outcome


def test_ledger_round_trip() -> None:
    ledger = Ledger(
        cursors={"a": 100},
        anchors={"e": {"schedule": "@every 10s", "at": 50}},
        daemons={"d": DaemonState(failures=2, not_before=12.5)},
        starting={"a": 101},
    )
    again = Ledger.from_json(json.loads(json.dumps(ledger.to_json())))
    assert again == ledger


@pytest.mark.parametrize(
    "damaged",
    [None, [], "x", {"cursors": {"a": "not a number"}, "daemons": {"d": {"bogus": 1}}}],
)
def test_damaged_ledger_gives_what_it_can(damaged) -> None:
    ledger = Ledger.from_json(damaged)
    assert ledger.cursors == {} and ledger.daemons == {}


def test_rfc3339_in_the_task_zone() -> None:
    t = 1_774_746_000  # 2026-03-29T01:00:00Z, just after Berlin's spring change
    assert rfc3339(t) == "2026-03-29T01:00:00Z"
    assert rfc3339(t, ZoneInfo("Europe/Berlin")) == "2026-03-29T03:00:00+02:00"
