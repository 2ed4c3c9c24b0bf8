"""The pure half of placement: decide() from hand-made views; no etcd, no processes."""

from __future__ import annotations

from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from reconciler.coordination import ClaimResult, CoordView, LockHold, decide
from reconciler.coordination.decision import STOP_SAFETY_S
from reconciler.coordination.revision import documents_hash, git_commit
from reconciler.reconcile import DueSet, Inputs, ManualRequest, RunView, SkipRun, StartRun, StopRun

UTC = ZoneInfo("UTC")
T0 = 1_800_000_000


@dataclass(frozen=True)
class Every:
    kind: str = "cron"
    text: str = "every"

    def next_after(self, t: int, tz: ZoneInfo, anchor: int | None = None) -> int | None:
        return t + 1


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
    replicas: int = 1
    placement: str = "all"
    placement_fallback: str = "skip"

    def process_fingerprint(self) -> str:
        return "fp"

    def spec_fingerprint(self) -> str:
        return f"doc-{self.name}-{self.placement}"


ON = CoordView(enabled=True, mono=100.0, settled=True, reachable=True, lease_expires=110.0)


def inputs(tasks: dict[str, FakeTask], **kw: object) -> Inputs:
    return Inputs(now=float(T0), tasks=tasks, mono=100.0, **kw)  # type: ignore[arg-type]


def placed(view: CoordView, tasks: dict[str, FakeTask]) -> CoordView:
    """The view as the coordination hands it out: with this host's placement: one tasks."""
    one = {n: t for n, t in tasks.items() if t.placement == "one"}
    return CoordView(**{**view.__dict__, "placed": one})


def daemon_run(task: str, grace: float = 30.0) -> RunView:
    return RunView(run_id=f"{task}-1", task=task, kind="daemon", pid=42, started_at=T0 - 50,
                   due=None, fingerprint="fp", timeout_s=None, grace_s=grace)


def test_placement_all_is_plain_reconcile() -> None:
    tasks = {"a": FakeTask("a")}
    d = decide(inputs(tasks, due=[DueSet("a", run=T0, last=T0)]), placed(ON, tasks))
    assert d.actions == [StartRun("a", T0, "schedule")] and d.claims == []


def test_due_run_of_placement_one_is_claimed_not_started() -> None:
    tasks = {"a": FakeTask("a", placement="one"), "b": FakeTask("b")}
    due = [DueSet("a", run=T0, last=T0), DueSet("b", run=T0, last=T0)]
    d = decide(inputs(tasks, due=due), placed(ON, tasks))
    assert d.claims == [("a", T0)]
    assert d.actions == [StartRun("b", T0, "schedule")]


def test_claim_results_become_start_with_token_skip_elsewhere_or_fallback() -> None:
    tasks = {
        "won": FakeTask("won", placement="one"),
        "lost": FakeTask("lost", placement="one"),
        "down": FakeTask("down", placement="one"),
        "downrun": FakeTask("downrun", placement="one", placement_fallback="run"),
    }
    view = CoordView(**{**ON.__dict__, "results": (
        ClaimResult("won", T0, "won", token=41),
        ClaimResult("lost", T0, "lost", winner="web-2"),
        ClaimResult("down", T0, "unavailable", why="timed out"),
        ClaimResult("downrun", T0, "unavailable", why="timed out"),
        ClaimResult("gone", T0, "won", token=42),  # removed meanwhile: nothing
    )})
    d = decide(inputs(tasks), placed(view, tasks))
    assert d.actions == [
        StartRun("won", T0, "schedule", fencing_token=41),
        SkipRun("lost", T0, "elsewhere", host="web-2"),
        SkipRun("down", T0, "no-coordination"),
        StartRun("downrun", T0, "schedule"),
    ]


def test_a_pending_claim_holds_its_place() -> None:
    tasks = {"a": FakeTask("a", placement="one")}
    view = CoordView(**{**ON.__dict__, "pending": (("a", T0),)})
    d = decide(inputs(tasks, due=[DueSet("a", run=T0 + 1, last=T0 + 1)]), placed(view, tasks))
    assert d.claims == []
    assert d.actions == [SkipRun("a", T0 + 1, "max-concurrency")]


def test_manual_runs_are_not_claimed() -> None:
    tasks = {"a": FakeTask("a", placement="one")}
    d = decide(inputs(tasks, manual=[ManualRequest("r1", "a")]), placed(ON, tasks))
    assert d.claims == [] and d.actions == [StartRun("a", None, "manual", "r1")]


def test_without_etcd_placement_one_never_runs() -> None:
    tasks = {"a": FakeTask("a", placement="one"), "d": FakeTask("d", type="daemon",
                                                                 schedule=None, placement="one")}
    off = CoordView(enabled=False, mono=100.0)
    d = decide(inputs(tasks, due=[DueSet("a", run=T0, last=T0)], daemon_tasks={"d": tasks["d"]}),
               placed(off, tasks))
    assert d.claims == []
    assert d.actions == [SkipRun("a", T0, "no-coordination")]


def test_daemon_runs_only_under_its_lock_with_its_token() -> None:
    d_task = FakeTask("d", type="daemon", schedule=None, placement="one")
    tasks = {"d": d_task}
    held = CoordView(**{**ON.__dict__, "locks": {"d": LockHold(7, 105.0, 110.0)}})
    d = decide(inputs(tasks, daemon_tasks=tasks), placed(held, tasks))
    assert d.actions == [StartRun("d", None, "daemon", fencing_token=7)]
    d = decide(inputs(tasks, daemon_tasks=tasks), placed(ON, tasks))
    assert d.actions == []


def test_daemon_stopped_before_the_lease_can_expire() -> None:
    d_task = FakeTask("d", type="daemon", schedule=None, placement="one")
    tasks = {"d": d_task}
    # Past held_until (renewals failing), 10 - 0 s of lease left: grace cut to fit.
    late = CoordView(**{**ON.__dict__, "mono": 106.0,
                        "locks": {"d": LockHold(7, 105.0, 110.0)}})
    d = decide(inputs(tasks, daemon_tasks=tasks, observed=[daemon_run("d")]), placed(late, tasks))
    assert d.actions == [StopRun("d-1", "placement", 110.0 - 106.0 - STOP_SAFETY_S)]
    # A short grace of its own is kept.
    d = decide(inputs(tasks, daemon_tasks=tasks, observed=[daemon_run("d", grace=1.0)]),
               placed(late, tasks))
    assert d.actions == [StopRun("d-1", "placement", 1.0)]
    # No lease at all: killed at once.
    none = CoordView(enabled=True, mono=106.0, settled=True)
    d = decide(inputs(tasks, daemon_tasks=tasks, observed=[daemon_run("d")]), placed(none, tasks))
    assert d.actions == [StopRun("d-1", "placement", 0.0)]


def test_daemon_left_alone_until_etcd_was_tried() -> None:
    d_task = FakeTask("d", type="daemon", schedule=None, placement="one")
    tasks = {"d": d_task}
    early = CoordView(enabled=True, mono=100.0)
    d = decide(inputs(tasks, daemon_tasks=tasks, observed=[daemon_run("d")]),
               placed(early, tasks))
    assert d.actions == []


def test_suspended_daemon_is_stopped_as_suspended() -> None:
    d_task = FakeTask("d", type="daemon", schedule=None, placement="one", suspend=True)
    tasks = {"d": d_task}
    d = decide(inputs(tasks, daemon_tasks=tasks, observed=[daemon_run("d")]), placed(ON, tasks))
    assert [(type(a), getattr(a, "reason", None)) for a in d.actions] == [(StopRun, "suspended")]


def test_spec_revision_from_git_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    git = tmp_path / "repo" / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    sha = "a" * 40
    (git / "refs" / "heads" / "main").write_text(sha + "\n")
    specs = tmp_path / "repo" / "specs"
    specs.mkdir()
    assert git_commit(specs) == sha
    (git / "refs" / "heads" / "main").unlink()
    (git / "packed-refs").write_text(f"# pack-refs\n{'b' * 40} refs/heads/main\n")
    assert git_commit(specs) == "b" * 40
    assert git_commit(tmp_path) is None
    one = documents_hash({"a": FakeTask("a")})
    assert one != documents_hash({"a": FakeTask("a", placement="one")})
    assert one == documents_hash({"a": FakeTask("a")})
