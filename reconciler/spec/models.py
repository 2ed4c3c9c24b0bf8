"""Typed models of a task document; they accept exactly what the JSON Schema accepts.

Strict throughout: no "1" for 1, no true for 1. JSON Schema counts 1.0 as an integer, so
integral floats are accepted here too and become ints. The schema's if/then/else on
`type` is the model validator at the end of `Spec`. tests/test_spec_agreement.py runs
both on the same documents.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    StringConstraints,
    model_validator,
)

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
MAX_SECONDS = 31_536_000  # a year: bounds arithmetic on times, far beyond any real need
MAX_UID = 4_294_967_294  # (uid_t)-1 is "no user"

CRON_ONLY = (
    "schedule", "concurrencyPolicy", "startingDeadlineSeconds", "maxConcurrency",
    "placementFallback",
    "retry",
    "jitterSeconds",
)
DAEMON_ONLY = ("restartPolicy", "replicas", "crashLoop")


def _integral(value: Any) -> Any:
    # JSON Schema: 1.0 is the integer 1. bool stays bool so that strict mode rejects it.
    if type(value) is float and value.is_integer():
        return int(value)
    return value


NonEmptyStr = Annotated[str, StringConstraints(strict=True, min_length=1)]
Seconds = Annotated[int, BeforeValidator(_integral), Field(strict=True, ge=0, le=MAX_SECONDS)]
PositiveSeconds = Annotated[
    int, BeforeValidator(_integral), Field(strict=True, ge=1, le=MAX_SECONDS)
]
Concurrency = Annotated[int, BeforeValidator(_integral), Field(strict=True, ge=1, le=1000)]
Uid = Annotated[int, BeforeValidator(_integral), Field(strict=True, ge=0, le=MAX_UID)]
HistoryLimit = Annotated[int, BeforeValidator(_integral), Field(strict=True, ge=0, le=1000)]
OutputLimit = Annotated[int, BeforeValidator(_integral), Field(strict=True, ge=0, le=8 * 1024 * 1024)]
Name = Annotated[str, StringConstraints(strict=True, pattern=NAME_PATTERN, max_length=63)]
EnvName = Annotated[str, StringConstraints(strict=True, pattern=ENV_NAME_PATTERN)]
MEMORY_PATTERN = r"^[1-9][0-9]{0,12}(Ki|Mi|Gi|Ti)$"
MIN_MEMORY = 1 << 20
MAX_MEMORY = 1 << 50
MemoryBytes = Annotated[
    int, BeforeValidator(_integral), Field(strict=True, ge=MIN_MEMORY, le=MAX_MEMORY)
]
MemoryText = Annotated[str, StringConstraints(strict=True, pattern=MEMORY_PATTERN)]
Cores = Annotated[float, Field(strict=True, ge=0.01, le=1024)]
OpenFiles = Annotated[int, BeforeValidator(_integral), Field(strict=True, ge=16, le=1_048_576)]
Processes = Annotated[int, BeforeValidator(_integral), Field(strict=True, ge=1, le=4_194_304)]
ExitCode = Annotated[int, BeforeValidator(_integral), Field(strict=True, ge=0, le=255)]
RetryLimit = Annotated[int, BeforeValidator(_integral), Field(strict=True, ge=1, le=100)]
Restarts = Annotated[int, BeforeValidator(_integral), Field(strict=True, ge=0, le=100_000)]
NotifyEvent = Literal["failure", "recovery", "success", "start", "gave-up"]
NOTIFY_TARGETS = ("webhook", "command", "apprise")


def _command(value: Any) -> Any:
    # prefixItems: only the program (the first item) must be non-empty.
    if type(value) is list and value and value[0] == "":
        raise ValueError("the program (first item) must not be empty")
    return value


Command = Annotated[
    Annotated[list[StrictStr], Field(min_length=1)] | NonEmptyStr,
    BeforeValidator(_command),
]

_STRICT = ConfigDict(strict=True, extra="forbid", populate_by_name=False)


def _no_nulls(data: Any) -> Any:
    # The schema has no null anywhere; an explicit null is not "unset".
    if isinstance(data, dict):
        for key, value in data.items():
            if value is None:
                raise ValueError(f"{key}: null is not allowed")
    return data


class _Strict(BaseModel):
    model_config = _STRICT

    @model_validator(mode="before")
    @classmethod
    def _reject_nulls(cls, data: Any) -> Any:
        return _no_nulls(data)


class Metadata(_Strict):
    name: Name
    labels: dict[NonEmptyStr, StrictStr] = Field(default_factory=dict)


class Resources(_Strict):
    # A memoryMax text outside 1Mi..1024Ti is refused by checks.py (as for the schema).
    memory_max: MemoryBytes | MemoryText | None = Field(default=None, alias="memoryMax")
    cpu_max: Cores | None = Field(default=None, alias="cpuMax")
    open_files_max: OpenFiles | None = Field(default=None, alias="openFilesMax")
    processes_max: Processes | None = Field(default=None, alias="processesMax")


class Retry(_Strict):
    limit: RetryLimit
    delay_seconds: Seconds = Field(default=10, alias="delaySeconds")
    max_delay_seconds: Seconds = Field(default=600, alias="maxDelaySeconds")


class CrashLoop(_Strict):
    max_restarts: Restarts = Field(default=10, alias="maxRestarts")
    window_seconds: PositiveSeconds = Field(default=600, alias="windowSeconds")


def _argv(value: Any) -> Any:
    return _command(value) if type(value) is list else value


class NotifyEntry(_Strict):
    # URLs are checked by checks.py (reconciler.notify.url_problem), as for the schema.
    on: Annotated[list[NotifyEvent], Field(min_length=1)]
    webhook: NonEmptyStr | None = None
    command: Annotated[list[StrictStr], Field(min_length=1), BeforeValidator(_argv)] | None = None
    apprise: NonEmptyStr | None = None

    @model_validator(mode="after")
    def _one_target(self) -> NotifyEntry:
        given = [k for k in NOTIFY_TARGETS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("exactly one of webhook, command, apprise is required")
        return self


class Healthcheck(_Strict):
    url: NonEmptyStr


class Spec(_Strict):
    type: Literal["cron", "daemon"] = "cron"
    schedule: NonEmptyStr | None = None
    timezone: NonEmptyStr | None = None
    command: Command
    hosts: list[NonEmptyStr] | None = None
    max_concurrency: Concurrency = Field(default=1, alias="maxConcurrency")
    concurrency_policy: Literal["Forbid", "Replace"] = Field(
        default="Forbid", alias="concurrencyPolicy"
    )
    starting_deadline_seconds: Seconds = Field(default=10, alias="startingDeadlineSeconds")
    jitter_seconds: Seconds = Field(default=0, alias="jitterSeconds")
    timeout_seconds: PositiveSeconds | None = Field(default=None, alias="timeoutSeconds")
    termination_grace_period_seconds: Seconds = Field(
        default=30, alias="terminationGracePeriodSeconds"
    )
    restart_policy: Literal["Always", "OnFailure", "Never"] = Field(
        default="Always", alias="restartPolicy"
    )
    replicas: Concurrency = 1
    env: dict[EnvName, StrictStr] = Field(default_factory=dict)
    working_dir: Annotated[str, StringConstraints(strict=True, pattern=r"^/")] | None = Field(
        default=None, alias="workingDir"
    )
    user: NonEmptyStr | Uid | None = None
    resources: Resources | None = None
    placement: Literal["all", "one"] = "all"
    placement_fallback: Literal["skip", "run"] = Field(default="skip", alias="placementFallback")
    suspend: StrictBool = False
    successful_runs_history_limit: HistoryLimit = Field(
        default=20, alias="successfulRunsHistoryLimit"
    )
    failed_runs_history_limit: HistoryLimit = Field(default=20, alias="failedRunsHistoryLimit")
    output_limit_bytes: OutputLimit = Field(default=1024 * 1024, alias="outputLimitBytes")
    success_exit_codes: Annotated[list[ExitCode], Field(min_length=1)] = Field(
        default_factory=lambda: [0], alias="successExitCodes"
    )
    retry: Retry | None = None
    crash_loop: CrashLoop | None = Field(default=None, alias="crashLoop")
    notify: Annotated[list[NotifyEntry], Field(max_length=50)] | None = None
    healthcheck: Healthcheck | None = None

    @model_validator(mode="after")
    def _type_rules(self) -> Spec:
        fields = type(self).model_fields
        given = {fields[f].alias or f for f in self.model_fields_set}
        if self.type == "daemon":
            wrong = [f for f in CRON_ONLY if f in given]
            if wrong:
                raise ValueError(f"{', '.join(wrong)}: not allowed for a daemon")
        else:
            if "schedule" not in given:
                raise ValueError("schedule: required for a cron task")
            wrong = [f for f in DAEMON_ONLY if f in given]
            if wrong:
                raise ValueError(f"{', '.join(wrong)}: only allowed for a daemon")
        return self


class TaskDocument(_Strict):
    api_version: Literal["reconciler/v1"] = Field(alias="apiVersion")
    kind: Literal["Task"]
    metadata: Metadata
    spec: Spec
