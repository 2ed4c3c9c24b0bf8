"""A task's normalised document, built from its fields when asked.

What `get` prints, what the applied set keeps and what the spec fingerprint hashes. It is
not kept with each loaded task (640 of the 1,800 bytes a task held): the few things the
fields alone do not say are kept instead: which optional fields the document gave
(`Task.given`), the order of each `notify` entry's events (`Task.notify_on`) and the
`hosts` entries as written (`Task.host_entries`).

Defaults are filled in; a field added after the first release is in the document only
when given (or, for `jitterSeconds`, when not 0), so that the fingerprints of documents
of before stay as they were. tests/test_fingerprint_stable.py pins them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reconciler.spec.task import FrozenDict

if TYPE_CHECKING:
    from reconciler.spec.task import Resources, Task

# Optional fields in the document only when given, with the attribute holding each (the
# same name on the validated model and on Task). The loader records which were given.
GIVEN_ONLY = {
    "placement": "placement",
    "placementFallback": "placement_fallback",
    "successfulRunsHistoryLimit": "successful_runs_history_limit",
    "failedRunsHistoryLimit": "failed_runs_history_limit",
    "outputLimitBytes": "output_limit_bytes",
    "successExitCodes": "success_exit_codes",
    "replicas": "replicas",
}
SUCCESS_CODES = "successExitCodes"


def resources_document(resources: Resources) -> FrozenDict:
    return FrozenDict(
        {
            key: value
            for key, value in (
                ("memoryMax", resources.memory_max),
                ("cpuMax", resources.cpu_max),
                ("openFilesMax", resources.open_files_max),
                ("processesMax", resources.processes_max),
            )
            if value is not None
        }
    )


def normalised_document(task: Task) -> FrozenDict:
    daemon = task.type == "daemon"
    norm: dict[str, Any] = {"type": task.type}
    if not daemon:
        norm["schedule"] = task.schedule_text
    if task.timezone_name is not None:
        norm["timezone"] = task.timezone_name
    norm["command"] = task.command
    if task.host_entries is not None:
        norm["hosts"] = task.host_entries
    if not daemon:
        norm["maxConcurrency"] = task.max_concurrency
        norm["concurrencyPolicy"] = task.concurrency_policy
        norm["startingDeadlineSeconds"] = task.starting_deadline_seconds
        if task.jitter_seconds:
            norm["jitterSeconds"] = task.jitter_seconds
    if task.timeout_seconds is not None:
        norm["timeoutSeconds"] = task.timeout_seconds
    norm["terminationGracePeriodSeconds"] = task.termination_grace_period_seconds
    if daemon:
        norm["restartPolicy"] = task.restart_policy
        if "replicas" in task.given:  # restarts follow the process fingerprint, not this
            norm["replicas"] = task.replicas
    norm["env"] = task.env
    if task.working_dir is not None:
        norm["workingDir"] = task.working_dir
    if task.user is not None:
        norm["user"] = task.user
    if task.resources is not None:
        norm["resources"] = resources_document(task.resources)
    given = task.given
    for key in ("placement", "placementFallback"):
        if key in given:
            norm[key] = getattr(task, GIVEN_ONLY[key])
    norm["suspend"] = task.suspend
    for key in ("successfulRunsHistoryLimit", "failedRunsHistoryLimit", "outputLimitBytes"):
        if key in given:
            norm[key] = getattr(task, GIVEN_ONLY[key])
    norm.update(_failure_document(task))
    return FrozenDict(
        {
            "apiVersion": "reconciler/v1",
            "kind": "Task",
            "metadata": FrozenDict({"name": task.name, "labels": task.labels}),
            "spec": FrozenDict(norm),
        }
    )


def _failure_document(task: Task) -> dict[str, Any]:
    """successExitCodes, retry, crashLoop, notify, healthcheck: each only when given."""
    norm: dict[str, Any] = {}
    if SUCCESS_CODES in task.given:
        norm[SUCCESS_CODES] = tuple(sorted(task.success_exit_codes))
    if task.retry is not None:
        r = task.retry
        norm["retry"] = FrozenDict(
            {"limit": r.limit, "delaySeconds": r.delay_seconds, "maxDelaySeconds": r.max_delay_seconds}
        )
    if task.crash_loop is not None:
        c = task.crash_loop
        norm["crashLoop"] = FrozenDict(
            {"maxRestarts": c.max_restarts, "windowSeconds": c.window_seconds}
        )
    if task.notify:
        norm["notify"] = tuple(
            FrozenDict({"on": on, target.kind: target.value})
            for target, on in zip(task.notify, task.notify_on, strict=True)
        )
    if task.healthcheck_url is not None:
        norm["healthcheck"] = FrozenDict({"url": task.healthcheck_url})
    return norm
