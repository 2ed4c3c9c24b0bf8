"""The pure decision, driven with hand-made tasks, runs and instants: no processes, no sleeping."""

from __future__ import annotations

from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from reconciler.reconcile import (
    BACKOFF_MAX_S,
    MAX_ENUMERATED_DUE,
    Action,
    CrashLoop,
    DaemonExit,
    DaemonPolicy,
    DaemonState,
    DueQueue,
    DueSet,
    Inputs,
    ManualRequest,
    RefuseRun,
    RetryPolicy,
    RunView,
    SkipRun,
    StartRun,
    StopRun,
    WaitingRetry,
    after_daemon_exit,
    collect_due,
    daemon_key,
    reconcile,
    retry_at,
)

UTC = ZoneInfo("UTC")
T0 = 1_800_000_000  # an arbitrary whole second


@dataclass(frozen=True)
class Every:
    """A schedule due every `step` seconds from 0 (a stand-in for the cron evaluator)."""

    step: int = 1
    kind: str = "cron"
    text: str = "every"

    def next_after(self, t: int, tz: ZoneInfo, anchor: int | None = None) -> int | None:
        return (t // self.step + 1) * self.step


@dataclass(frozen=True)
class FakeTask:
    name: str
    type: str = "cron"
    schedule: Every | None = field(default_factory=Every)
    timezone: ZoneInfo = UTC
    max_concurrency: int = 1
    concurrency_policy: str = "Forbid"
    starting_deadline_seconds: int = 10
    restart_policy: str = "Always"
    suspend: bool = False
    fingerprint: str = "fp1"
    replicas: int = 1

    def process_fingerprint(self) -> str:
        return self.fingerprint

    def spec_fingerprint(self) -> str:
        return f"doc-{self.fingerprint}"


def daemon_exit(
    state: DaemonState,
    *,
    restart_policy: str = "Always",
    crash_loop: CrashLoop | None = None,
    **ended: object,
) -> DaemonState:
    """after_daemon_exit with the exit and the policy spelled as keywords."""
    policy = DaemonPolicy(restart_policy=restart_policy, crash_loop=crash_loop, document="doc-fp1")
    return after_daemon_exit(state, DaemonExit(**ended), policy)  # type: ignore[arg-type]


def decide(
    now: float,
    tasks: dict[str, FakeTask],
    due: list[DueSet],
    observed: list[RunView],
    daemons: dict[str, DaemonState],
    manual: list[ManualRequest] | tuple[()] = (),
    reboot: list[str] | tuple[()] = (),
    **kw: object,
) -> list[Action]:
    return reconcile(
        Inputs(now=now, tasks=tasks, due=due, observed=observed, daemons=daemons,
               manual=manual, reboot=reboot, **kw)  # type: ignore[arg-type]
    )


def sync(
    q: DueQueue,
    tasks: dict[str, FakeTask],
    cursors: dict[str, int],
    now: int,
    schedules: dict[str, str] | None = None,
) -> None:
    """DueQueue.sync, keeping the moves it returns (as the journal does)."""
    moves = q.sync(tasks, cursors, {}, now, schedules=schedules)
    cursors.update(moves.cursors)
    if schedules is not None:
        schedules.update(moves.schedules)


def pop(q: DueQueue, now: int, tasks: dict[str, FakeTask], cursors: dict[str, int]) -> list[DueSet]:
    """DueQueue.pop_due, recording each due set's new cursor (as the journal does)."""
    got = q.pop_due(now, tasks, cursors, {})
    cursors.update({d.task: d.last for d in got if d.last is not None})
    return got


def run(task: str, run_id: str, started: float, kind: str = "cron", **kw: object) -> RunView:
    base: dict[str, object] = dict(
        run_id=run_id,
        task=task,
        kind=kind,
        pid=1000,
        started_at=started,
        due=None,
        fingerprint="fp1",
        timeout_s=None,
        grace_s=30.0,
    )
    base.update(kw)
    return RunView(**base)  # type: ignore[arg-type]


def test_collect_due_runs_latest_and_coalesces_the_rest() -> None:
    due, nxt = collect_due("t", Every(), UTC, T0, T0 + 5, deadline_s=10)
    assert due.run == T0 + 5
    assert due.coalesced == (T0 + 1, T0 + 2, T0 + 3, T0 + 4)
    assert due.deadline == ()
    assert due.last == T0 + 5
    assert nxt == T0 + 6


def test_collect_due_past_deadline_is_skipped_not_run() -> None:
    # Stalled 35 s with a 15 s deadline: the latest is still within, older ones are past.
    due, _ = collect_due("t", Every(10), UTC, T0 - 10, T0 + 35, deadline_s=15)
    assert due.run == T0 + 30
    assert due.deadline == (T0, T0 + 10)
    assert due.coalesced == (T0 + 20,)


def test_collect_due_latest_past_deadline_runs_nothing() -> None:
    due, _ = collect_due("t", Every(60), UTC, T0 - 60, T0 + 20, deadline_s=10)
    assert due.run is None
    assert due.deadline == (T0,)


def test_collect_due_bounded_after_a_huge_clock_jump() -> None:
    year = 365 * 86400
    due, nxt = collect_due("t", Every(), UTC, T0, T0 + year, deadline_s=10)
    assert due.run == T0 + year
    assert len(due.deadline) + len(due.coalesced) <= MAX_ENUMERATED_DUE + 20
    assert due.elided is not None and due.elided[0] < due.elided[1] < T0 + year - 10
    # The summarised range ends right where the enumerated skips take over.
    assert due.elided[1] == T0 + year - 11
    assert nxt == T0 + year + 1
    sparse, _ = collect_due("t", Every(7), UTC, T0, T0 + year, deadline_s=10)
    assert sparse.elided is not None
    assert T0 + year - 11 - 7 < sparse.elided[1] <= T0 + year - 11
    assert sparse.elided[1] % 7 == 0


def test_due_queue_due_at_most_once_per_second_and_clock_back() -> None:
    tasks = {"a": FakeTask("a")}
    q = DueQueue()
    cursors: dict[str, int] = {}
    sync(q, tasks, cursors, T0)
    assert pop(q, T0, tasks, cursors) == []  # first seen at T0: T0 itself is not due
    got = pop(q, T0 + 1, tasks, cursors)
    assert [d.run for d in got] == [T0 + 1]
    assert pop(q, T0 + 1, tasks, cursors) == []
    # Clock steps back: nothing handled is due again.
    assert pop(q, T0 - 100, tasks, cursors) == []
    assert pop(q, T0 + 1, tasks, cursors) == []
    assert [d.run for d in pop(q, T0 + 2, tasks, cursors)] == [T0 + 2]


def test_due_queue_restart_resumes_from_ledger() -> None:
    tasks = {"a": FakeTask("a")}
    cursors = {"a": T0 + 3}  # the previous controller handled up to T0+3
    q = DueQueue()
    sync(q, tasks, cursors, T0 + 6)
    got = pop(q, T0 + 6, tasks, cursors)
    assert got[0].run == T0 + 6
    assert got[0].coalesced == (T0 + 4, T0 + 5)


def test_due_queue_reschedule_does_not_backfill() -> None:
    q = DueQueue()
    cursors: dict[str, int] = {}
    tasks = {"a": FakeTask("a", schedule=Every(3600, text="hourly"))}
    sync(q, tasks, cursors, T0)
    tasks = {"a": FakeTask("a", schedule=Every(1, text="secondly"))}
    sync(q, tasks, cursors, T0 + 1800)
    got = pop(q, T0 + 1801, tasks, cursors)
    assert [d.run for d in got] == [T0 + 1801]
    assert got[0].deadline == () and got[0].coalesced == ()


def test_due_queue_forgets_removed_tasks() -> None:
    q = DueQueue()
    cursors: dict[str, int] = {}
    sync(q, {"a": FakeTask("a")}, cursors, T0)
    sync(q, {}, cursors, T0)
    assert pop(q, T0 + 5, {}, cursors) == []
    assert len(q) == 0


def test_forbid_skips_at_the_limit() -> None:
    task = FakeTask("a")
    due, _ = collect_due("a", Every(), UTC, T0, T0 + 1, 10)
    actions = decide(T0 + 1, {"a": task}, [due], [run("a", "r1", T0 - 5)], {})
    assert actions == [SkipRun("a", T0 + 1, "max-concurrency")]


def test_forbid_counts_runs_being_stopped() -> None:
    task = FakeTask("a")
    due, _ = collect_due("a", Every(), UTC, T0, T0 + 1, 10)
    actions = decide(T0 + 1, {"a": task}, [due], [run("a", "r1", T0 - 5, stopping="timeout")], {})
    assert actions == [SkipRun("a", T0 + 1, "max-concurrency")]


def test_max_concurrency_two_allows_a_second() -> None:
    task = FakeTask("a", max_concurrency=2)
    due, _ = collect_due("a", Every(), UTC, T0, T0 + 1, 10)
    actions = decide(T0 + 1, {"a": task}, [due], [run("a", "r1", T0 - 5)], {})
    assert actions == [StartRun("a", T0 + 1, "schedule")]


def test_replace_stops_oldest_and_starts_at_once() -> None:
    task = FakeTask("a", concurrency_policy="Replace", max_concurrency=2)
    due, _ = collect_due("a", Every(), UTC, T0, T0 + 1, 10)
    live = [run("a", "new", T0 - 1), run("a", "old", T0 - 9)]
    actions = decide(T0 + 1, {"a": task}, [due], live, {})
    assert actions == [StopRun("old", "replaced", 30.0), StartRun("a", T0 + 1, "schedule")]


def test_timeout_uses_the_limits_the_run_started_with() -> None:
    live = [run("gone", "r1", T0 - 100, timeout_s=50), run("gone", "r2", T0 - 10, timeout_s=50)]
    actions = decide(T0, {}, [], live, {})
    assert actions == [StopRun("r1", "timeout", 30.0)]


def test_removed_task_leaves_cron_runs_alone() -> None:
    actions = decide(T0, {}, [], [run("gone", "r1", T0 - 100)], {})
    assert actions == []


def test_suspended_skips_and_stops_daemons() -> None:
    cron = FakeTask("c", suspend=True)
    daemon = FakeTask("d", type="daemon", schedule=None, suspend=True)
    due, _ = collect_due("c", Every(), UTC, T0, T0 + 1, 10)
    actions = decide(
        T0 + 1,
        {"c": cron, "d": daemon},
        [due],
        [run("d", "dr", T0 - 50, kind="daemon"), run("c", "cr", T0 - 1)],
        {},
    )
    assert SkipRun("c", T0 + 1, "suspended") in actions
    assert StopRun("dr", "suspended", 30.0) in actions
    assert not any(isinstance(a, StopRun) and a.run_id == "cr" for a in actions)


def test_daemon_started_when_absent_and_left_when_running() -> None:
    d = FakeTask("d", type="daemon", schedule=None)
    assert decide(T0, {"d": d}, [], [], {}) == [StartRun("d", None, "daemon")]
    assert decide(T0, {"d": d}, [], [run("d", "r", T0 - 5, kind="daemon")], {}) == []


def test_daemon_changed_is_restarted_after_the_old_one_is_gone() -> None:
    d = FakeTask("d", type="daemon", schedule=None, fingerprint="fp2")
    old = run("d", "r", T0 - 5, kind="daemon")
    assert decide(T0, {"d": d}, [], [old], {}) == [StopRun("r", "changed", 30.0)]
    stopping = run("d", "r", T0 - 5, kind="daemon", stopping="changed")
    assert decide(T0, {"d": d}, [], [stopping], {}) == []
    assert decide(T0, {"d": d}, [], [], {}) == [StartRun("d", None, "daemon")]


def test_daemon_removed_is_stopped() -> None:
    assert decide(T0, {}, [], [run("d", "r", T0 - 5, kind="daemon")], {}) == [
        StopRun("r", "removed", 30.0)
    ]


def test_daemon_backoff_grows_and_caps_and_resets() -> None:
    state = DaemonState()
    delays = []
    t = float(T0)
    for _ in range(12):
        state = daemon_exit(
            state, restart_policy="Always", fingerprint="fp1", exit_code=1, signal=None,
            started_at=t, ended_at=t + 1, stop_reason=None,
        )
        delays.append(state.not_before - (t + 1))
        t = state.not_before
    assert delays[:5] == [1, 2, 4, 8, 16]
    assert max(delays) == BACKOFF_MAX_S
    # Ten minutes of healthy running resets the back-off.
    state = daemon_exit(
        state, restart_policy="Always", fingerprint="fp1", exit_code=1, signal=None,
        started_at=t, ended_at=t + 601, stop_reason=None,
    )
    assert state.not_before - (t + 601) == 1
    d = FakeTask("d", type="daemon", schedule=None)
    assert decide(state.not_before - 0.5, {"d": d}, [], [], {"d": state}) == []
    assert decide(state.not_before, {"d": d}, [], [], {"d": state}) == [StartRun("d", None, "daemon")]


def test_restart_policies() -> None:
    kw = dict(fingerprint="fp1", started_at=T0, ended_at=T0 + 5, stop_reason=None, signal=None)
    never = daemon_exit(DaemonState(), restart_policy="Never", exit_code=1, **kw)  # type: ignore[arg-type]
    assert never.finished_fingerprint == "fp1"
    ok = daemon_exit(DaemonState(), restart_policy="OnFailure", exit_code=0, **kw)  # type: ignore[arg-type]
    assert ok.finished_fingerprint == "fp1"
    bad = daemon_exit(DaemonState(), restart_policy="OnFailure", exit_code=2, **kw)  # type: ignore[arg-type]
    assert bad.finished_fingerprint is None and bad.not_before == T0 + 6
    d = FakeTask("d", type="daemon", schedule=None, restart_policy="Never")
    assert decide(T0 + 100, {"d": d}, [], [], {"d": never}) == []
    changed = FakeTask("d", type="daemon", schedule=None, restart_policy="Never", fingerprint="fp2")
    assert decide(T0 + 100, {"d": changed}, [], [], {"d": never}) == [StartRun("d", None, "daemon")]
    stopped = daemon_exit(DaemonState(failures=3, not_before=1), restart_policy="Always",
                                exit_code=None, **{**kw, "stop_reason": "changed"})  # type: ignore[arg-type]
    assert stopped.not_before == 0.0


def test_manual_runs_respect_concurrency() -> None:
    task = FakeTask("a")
    req = ManualRequest("q1", "a")
    assert decide(T0, {"a": task}, [], [], {}, [req]) == [StartRun("a", None, "manual", "q1")]
    assert decide(T0, {"a": task}, [], [run("a", "r", T0 - 1)], {}, [req]) == [
        RefuseRun("a", "q1", "max-concurrency")
    ]
    assert decide(T0, {}, [], [], {}, [req]) == [RefuseRun("a", "q1", "no such task on this host")]


def test_two_starts_in_one_tick_count_against_the_limit() -> None:
    task = FakeTask("a")
    due, _ = collect_due("a", Every(), UTC, T0, T0 + 1, 10)
    actions = decide(T0 + 1, {"a": task}, [due], [], {}, [ManualRequest("q", "a")])
    assert actions == [StartRun("a", T0 + 1, "schedule"), RefuseRun("a", "q", "max-concurrency")]


def test_reboot_runs_once_at_start() -> None:
    task = FakeTask("boot", schedule=None)
    assert decide(T0, {"boot": task}, [], [], {}, reboot=["boot"]) == [
        StartRun("boot", T0, "reboot")
    ]


def test_due_queue_removed_then_readded_does_not_catch_up() -> None:
    q = DueQueue()
    cursors: dict[str, int] = {}
    tasks = {"a": FakeTask("a")}
    sync(q, tasks, cursors, T0)
    assert [d.run for d in pop(q, T0 + 1, tasks, cursors)] == [T0 + 1]
    sync(q, {}, cursors, T0 + 2)
    sync(q, tasks, cursors, T0 + 6)  # back four seconds later
    got = pop(q, T0 + 7, tasks, cursors)
    assert [d.run for d in got] == [T0 + 7]
    assert got[0].coalesced == () and got[0].deadline == ()


def test_due_queue_cursor_of_another_schedule_is_not_caught_up_from() -> None:
    """A schedule changed while no controller ran: the old cursor bars repeats, no more."""
    tasks = {"a": FakeTask("a", schedule=Every(1, text="secondly"))}
    cursors = {"a": T0}
    schedules = {"a": "hourly|UTC"}  # what the previous controller ran it under
    q = DueQueue()
    sync(q, tasks, cursors, T0 + 5, schedules=schedules)
    got = pop(q, T0 + 6, tasks, cursors)
    assert [d.run for d in got] == [T0 + 6] and got[0].coalesced == ()
    assert schedules == {"a": "secondly|UTC"}
    # The same schedule as recorded: caught up within the deadline, as after a crash.
    cursors2, schedules2 = {"a": T0}, {"a": "secondly|UTC"}
    q2 = DueQueue()
    sync(q2, tasks, cursors2, T0 + 5, schedules=schedules2)
    assert q2.pop_due(T0 + 5, tasks, cursors2, {})[0].coalesced == (T0 + 1, T0 + 2, T0 + 3, T0 + 4)


def test_due_queue_changes_no_cursor_it_is_handed() -> None:
    """The queue reports moves; keeping them is the journal's job (one home for the
    at-most-once protocol)."""
    tasks = {"a": FakeTask("a")}
    cursors: dict[str, int] = {}
    schedules: dict[str, str] = {}
    q = DueQueue()
    moves = q.sync(tasks, cursors, {}, T0, schedules=schedules)
    assert cursors == {} and schedules == {}
    assert moves.cursors == {"a": T0} and moves.schedules == {"a": "every|UTC"}
    cursors.update(moves.cursors)
    got = q.pop_due(T0 + 3, tasks, cursors, {})
    assert cursors == {"a": T0}
    assert [(d.run, d.last, d.coalesced) for d in got] == [(T0 + 3, T0 + 3, (T0 + 1, T0 + 2))]


def test_crash_loop_gives_up_after_max_restarts_in_the_window() -> None:
    """maxRestarts restarts within windowSeconds: no more (at most maxRestarts + 1 starts)."""
    loop = CrashLoop(max_restarts=3, window_s=600)
    d = FakeTask("d", type="daemon", schedule=None)
    state, t, starts = DaemonState(), float(T0), 1
    while True:
        state = daemon_exit(state, crash_loop=loop, fingerprint="fp1", exit_code=1, signal=None,
                            started_at=t, ended_at=t + 1, stop_reason=None)
        if state.gave_up:
            break
        t = state.not_before
        assert decide(t, {"d": d}, [], [], {"d": state}) == [StartRun("d", None, "daemon")]
        starts += 1
    assert starts == 4 and state.gave_up == "doc-fp1"
    assert decide(t + 10_000, {"d": d}, [], [], {"d": state}) == [], "given up stays given up"
    # A changed document starts it again; so does a manual run.
    edited = FakeTask("d", type="daemon", schedule=None, fingerprint="fp2")
    assert decide(t + 5, {"d": edited}, [], [], {"d": state}) == [StartRun("d", None, "daemon")]
    manual = [ManualRequest("r1", "d")]
    assert decide(t + 5, {"d": d}, [], [], {"d": state}, manual=manual) == [
        StartRun("d", None, "manual", "r1")
    ]


def test_crash_loop_counts_only_restarts_within_the_window() -> None:
    loop = CrashLoop(max_restarts=2, window_s=60)
    state, t = DaemonState(), float(T0)
    for _ in range(10):  # one crash every 100 s: never two within a minute
        state = daemon_exit(state, crash_loop=loop, fingerprint="fp1", exit_code=1, signal=None,
                            started_at=t, ended_at=t + 1, stop_reason=None)
        assert state.gave_up is None
        t += 100


def test_retry_waits_doubles_and_ends() -> None:
    policy = RetryPolicy(limit=3, delay_s=10, max_delay_s=25)
    assert retry_at(policy, 1, T0) == T0 + 10
    assert retry_at(policy, 2, T0) == T0 + 20
    assert retry_at(policy, 3, T0) == T0 + 25  # capped
    assert retry_at(policy, 4, T0) is None  # three retries after the first attempt
    assert retry_at(None, 1, T0) is None


def test_waiting_retry_starts_when_due_and_a_place_is_free() -> None:
    task = FakeTask("a", schedule=Every(3600))
    waiting = {"a": WaitingRetry(due=T0, attempt=2, not_before=T0 + 10)}
    assert decide(T0 + 9, {"a": task}, [], [], {}, retries=waiting) == []
    assert decide(T0 + 10, {"a": task}, [], [], {}, retries=waiting) == [
        StartRun("a", T0, "retry", None, 2)
    ]
    # At the concurrency limit it keeps waiting: no skip, no start.
    busy = [run("a", "r9", T0 + 5)]
    assert decide(T0 + 10, {"a": task}, [], busy, {}, retries=waiting) == []


def test_waiting_retry_is_superseded_by_the_next_due_time() -> None:
    task = FakeTask("a")
    waiting = {"a": WaitingRetry(due=T0, attempt=2, not_before=T0 + 10)}
    due, _ = collect_due("a", Every(), UTC, T0 + 4, T0 + 5, 10)
    actions = decide(T0 + 5, {"a": task}, [due], [], {}, retries=waiting)
    assert SkipRun("a", T0, "superseded", attempt=2) in actions
    assert StartRun("a", T0 + 5, "schedule") in actions
    assert not [a for a in actions if isinstance(a, StartRun) and a.trigger == "retry"]


def test_waiting_retry_of_a_removed_or_suspended_task_is_dropped() -> None:
    waiting = {"a": WaitingRetry(due=T0, attempt=2, not_before=T0)}
    assert decide(T0 + 1, {}, [], [], {}, retries=waiting) == [
        SkipRun("a", T0, "removed", attempt=2)
    ]
    paused = FakeTask("a", suspend=True)
    assert decide(T0 + 1, {"a": paused}, [], [], {}, retries=waiting) == [
        SkipRun("a", T0, "suspended", attempt=2)
    ]


def test_daemon_replicas_each_run_once_and_scale_down() -> None:
    d = FakeTask("d", type="daemon", schedule=None, replicas=3)
    assert decide(T0, {"d": d}, [], [], {}) == [
        StartRun("d", None, "daemon", replica=0),
        StartRun("d", None, "daemon", replica=1),
        StartRun("d", None, "daemon", replica=2),
    ]
    live = [run("d", f"r{i}", T0 - 5, kind="daemon", replica=i) for i in range(3)]
    assert decide(T0, {"d": d}, [], live, {}) == []
    # Replica 1 crashed and backs off; the others are left alone.
    backing = {daemon_key("d", 1): DaemonState(failures=1, not_before=T0 + 2, failed_fingerprint="fp1")}
    others = [live[0], live[2]]
    assert decide(T0, {"d": d}, [], others, backing) == []
    assert decide(T0 + 2, {"d": d}, [], others, backing) == [StartRun("d", None, "daemon", replica=1)]
    # Scaled down to one: the others stop.
    one = FakeTask("d", type="daemon", schedule=None, replicas=1)
    assert decide(T0, {"d": one}, [], live, {}) == [
        StopRun("r1", "scaled-down", 30.0),
        StopRun("r2", "scaled-down", 30.0),
    ]
