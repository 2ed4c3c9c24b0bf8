"""Fleet coordination: what one host cannot decide alone, decided in etcd v3.

An observer/decider pair behind one interface whose only engine is etcd:

- `Coordination` (coordinator.py) is what the controller loop calls; every method
  returns at once. `claim(task, due)` races for a cron run of a `placement: one` task:
  an etcd transaction creates claims/TASK/DUE only if absent, attached to this
  controller's lease; the result (`ClaimResult`: won with the claim's revision as
  fencing token, lost with the winner, or unavailable) arrives later through
  `observe()`, which also tells the daemon locks held (`LockHold`) and the lease.
  `publish(RunSummary)` and `tick`/`tasks_now` feed run summaries and the presence record.
  `EtcdCoordination` implements it; `NoCoordination` stands in without --etcd.
- `decide(inputs, view, placed)` (decision.py) is pure: reconcile's decision, with
  placement: one runs claimed, claim results turned into starts and skips, and
  placement: one daemons kept to the host that holds their lock.
- keeper.py: the lease (judged on the local monotonic clock) and the daemon locks;
  publisher.py: the presence record, run summaries, pruning of old claims.
- etcd.py: the engine, etcd's v3 JSON gateway through `etcd3gw` (`reconciler[etcd]`).
- fleetview.py: reading the fleet back for `reconciler fleet hosts|runs` and `get`.

Every etcd call has a time-out and runs on a thread of this room, never the loop's.
"""

import importlib
from typing import TYPE_CHECKING, Any

# Imported on first use (PEP 562): `reconciler get` and `validate` read the option
# defaults in model.py without paying for the threads, the engine or the decision.
_WHERE = {
    "CLAIM_TIMEOUT_S": "coordinator",
    "Coordination": "coordinator",
    "EtcdCoordination": "coordinator",
    "NoCoordination": "coordinator",
    "connect": "coordinator",
    "placed_one": "coordinator",
    "Decision": "decision",
    "decide": "decision",
    "HostInfo": "publisher",
    "DEFAULT_FLEET": "model",
    "DEFAULT_LEASE_TTL_S": "model",
    "MAX_LEASE_TTL_S": "model",
    "MIN_LEASE_TTL_S": "model",
    "ClaimResult": "model",
    "CoordView": "model",
    "EtcdConfig": "model",
    "Keys": "model",
    "LockHold": "model",
    "Presence": "model",
    "RunSummary": "model",
}

__all__ = [
    "CLAIM_TIMEOUT_S",
    "ClaimResult",
    "CoordView",
    "Coordination",
    "DEFAULT_FLEET",
    "DEFAULT_LEASE_TTL_S",
    "Decision",
    "EtcdConfig",
    "EtcdCoordination",
    "HostInfo",
    "Keys",
    "LockHold",
    "MAX_LEASE_TTL_S",
    "MIN_LEASE_TTL_S",
    "NoCoordination",
    "Presence",
    "RunSummary",
    "connect",
    "decide",
    "placed_one",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


if TYPE_CHECKING:
    from reconciler.coordination.coordinator import (
        CLAIM_TIMEOUT_S,
        Coordination,
        EtcdCoordination,
        NoCoordination,
        connect,
        placed_one,
    )
    from reconciler.coordination.decision import Decision, decide
    from reconciler.coordination.model import (
        DEFAULT_FLEET,
        DEFAULT_LEASE_TTL_S,
        MAX_LEASE_TTL_S,
        MIN_LEASE_TTL_S,
        ClaimResult,
        CoordView,
        EtcdConfig,
        Keys,
        LockHold,
        Presence,
        RunSummary,
    )
    from reconciler.coordination.publisher import HostInfo
