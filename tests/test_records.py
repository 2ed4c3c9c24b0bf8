"""What the controller writes down: outcomes, the ledger and its tolerance of damage."""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

import pytest

from reconciler.controller.runs import outcome_of, rfc3339_zulu
from reconciler.reconcile import DaemonState
from reconciler.state.ledger import Ledger


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
    assert rfc3339_zulu(t) == "2026-03-29T01:00:00Z"
    assert rfc3339_zulu(t, ZoneInfo("Europe/Berlin")) == "2026-03-29T03:00:00+02:00"



def test_delta_moves_cursors_forward_only() -> None:
    ledger = Ledger(cursors={"a": 100, "b": 500}, generation=3)
    assert ledger.replay({"generation": 3, "cursors": {"a": 110, "b": 400, "c": 7},
                          "starting": {}})
    assert ledger.cursors == {"a": 110, "b": 500, "c": 7}
    assert ledger.starting == {}


def test_delta_starting_is_left_for_the_interrupted_report() -> None:
    ledger = Ledger(cursors={"a": 100}, generation=1)
    ledger.replay({"generation": 1, "cursors": {"a": 102, "b": 102},
                   "starting": {"a": 102, "b": 102}})
    assert ledger.starting == {"a": 102, "b": 102}
    assert ledger.cursors == {"a": 102, "b": 102}


@pytest.mark.parametrize(
    "delta",
    [
        # Already folded into this snapshot (a crash after the snapshot was written).
        {"generation": 1, "cursors": {"a": 999}, "starting": {"a": 999}},
        {"cursors": {"a": 999}},
        "garbage",
        None,
        {"generation": 2, "cursors": {"a": "x"}, "starting": {"a": None}},
    ],
)
def test_a_delta_of_another_generation_or_damaged_changes_nothing(delta) -> None:
    ledger = Ledger(cursors={"a": 100}, generation=2)
    ledger.replay(delta)
    assert ledger.cursors == {"a": 100} and ledger.starting == {}


def test_ledger_generation_round_trips() -> None:
    ledger = Ledger(cursors={"a": 1}, generation=7)
    again = Ledger.from_json(json.loads(json.dumps(ledger.to_json())))
    assert again.generation == 7
    assert Ledger.from_json({"cursors": {}, "generation": True}).generation == 0
    assert ledger.delta({"a": 1}) == {"generation": 7, "cursors": {}, "starting": {"a": 1}}


def test_a_damaged_ledger_bars_due_times_up_to_its_last_write(tmp_path) -> None:
    import os

    from reconciler.state import APPLIED_FILE, LEDGER_FILE, StateDir
    from reconciler.state.ledger import load_ledger, read_ledger

    sd = StateDir(tmp_path / "state")
    sd.ensure()
    sd.write_json(APPLIED_FILE, {"a": {}, "b": {}})
    (sd.path / LEDGER_FILE).write_text('{"cursors": {"a": 5')
    os.utime(sd.path / LEDGER_FILE, (2_000_000_000, 2_000_000_000))
    found = load_ledger(sd)
    assert [str(e.path) for e in found.damaged] == [str(sd.path / LEDGER_FILE)]
    # Every applied task's cursor is the ledger's last write: nothing before it is due.
    assert found.ledger.cursors == {"a": 2_000_000_000, "b": 2_000_000_000}
    assert read_ledger(sd)[0].cursors == found.ledger.cursors
    sd.write_json(LEDGER_FILE, [1, 2])  # JSON, but not a ledger
    assert load_ledger(sd).damaged
    sd.write_json(LEDGER_FILE, {"cursors": {"a": 5}})
    found = load_ledger(sd)
    assert not found.damaged and found.ledger.cursors == {"a": 5}
