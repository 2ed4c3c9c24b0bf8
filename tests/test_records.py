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


def test_journal_replay_moves_cursors_forward_only() -> None:
    ledger = Ledger(cursors={"a": 100, "b": 500}, generation=3)
    applied = ledger.replay([
        {"g": 3, "cursors": {"a": 110, "b": 400}, "starting": {"a": 110}},
        {"g": 3, "started": True},
        {"g": 3, "cursors": {"c": 7}, "starting": {}},
        {"g": 3, "started": True},
    ])
    assert applied
    assert ledger.cursors == {"a": 110, "b": 500, "c": 7}
    assert ledger.starting == {}


def test_journal_starting_without_started_is_left_for_the_interrupted_report() -> None:
    ledger = Ledger(cursors={"a": 100}, generation=1)
    ledger.replay([
        {"g": 1, "cursors": {"a": 101}, "starting": {"a": 101}},
        {"g": 1, "started": True},
        {"g": 1, "cursors": {"a": 102, "b": 102}, "starting": {"a": 102, "b": 102}},
    ])
    assert ledger.starting == {"a": 102, "b": 102}
    assert ledger.cursors == {"a": 102, "b": 102}


def test_journal_lines_of_another_generation_are_ignored() -> None:
    # Lines already folded into this snapshot (an older generation, left by a crash
    # between the snapshot and the journal's reset) must not apply a second time.
    ledger = Ledger(cursors={"a": 100}, generation=2)
    applied = ledger.replay([
        {"g": 1, "cursors": {"a": 999}, "starting": {"a": 999}},
        {"cursors": {"a": 998}},
        "garbage",
        {"g": 2, "cursors": {"a": "x"}, "starting": {"a": None}},
    ])
    assert applied  # the last line is of this generation, if useless
    assert ledger.cursors == {"a": 100} and ledger.starting == {}


def test_ledger_generation_round_trips() -> None:
    ledger = Ledger(cursors={"a": 1}, generation=7)
    assert Ledger.from_json(json.loads(json.dumps(ledger.to_json()))).generation == 7
    assert Ledger.from_json({"cursors": {}, "generation": True}).generation == 0
