"""Event contracts: the envelope and every event ci-medic publishes.

Events are immutable facts. A change that would break a reader gets a new
``schema_version`` plus an upcaster in :data:`UPCASTERS`; published versions are
never edited in place (``tests/unit/test_event_compat.py`` holds them to that).
Readers ignore unknown fields, so adding an optional field is not a breaking change.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

import uuid_utils
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from medic.boundary import clean_text

FAILURE_NAMESPACE = uuid.UUID("6f1c1d3e-9a51-4f3c-8a43-2f0b6d1e7c55")
"""Namespace of the derived failure ids; changing it would split every known failure in two."""


def derive_failure_id(repository: str, run_id: int, run_attempt: int) -> str:
    """The same GitHub run attempt always gives the same failure id (webhook and poll agree)."""
    return str(uuid.uuid5(FAILURE_NAMESPACE, f"{repository.lower()}#{run_id}#{run_attempt}"))


def new_event_id() -> str:
    return str(uuid_utils.uuid7())


def derive_event_id(causation_id: str, event_type: str, at: datetime) -> str:
    """A UUIDv7-shaped id that is the same every time a handler answers the same event.

    A redelivered event makes the handler publish again; the same id lets JetStream
    (``Nats-Msg-Id``) and the projector drop the repeat.
    """
    digest = uuid.uuid5(FAILURE_NAMESPACE, f"{causation_id}/{event_type}").int
    millis = int(at.timestamp() * 1000) & ((1 << 48) - 1)
    value = (millis << 80) | (0x7 << 76) | (digest & ((1 << 76) - 1))
    value = (value & ~(0b11 << 62)) | (0b10 << 62)  # RFC 9562 variant
    return str(uuid.UUID(int=value))


CleanText = Annotated[str, AfterValidator(clean_text)]
"""Free text in an event: never a NUL or a lone surrogate, whoever built it (see :mod:`medic.boundary`)."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class Frozen(BaseModel):
    """Base of every contract model: immutable, unknown fields ignored on read.

    Validators are built on a model's first use (``defer_build``), not at import: a process
    imports all thirty contracts to use a few (``medic analyze`` uses two), and building them
    all was the largest part of its start-up.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)


class Category(StrEnum):
    TIMEOUT = "timeout"
    DEPENDENCY = "dependency"
    CONFIG = "config"
    FLAKY_TEST = "flaky_test"
    INFRASTRUCTURE = "infrastructure"
    TEST_FAILURE = "test_failure"
    COMPILE = "compile"
    LINT = "lint"
    OOM = "oom"
    PERMISSION = "permission"
    UNKNOWN = "unknown"


class ActionKind(StrEnum):
    """The only things the executor can ever do: a closed set of typed actions."""

    RERUN_FAILED_JOBS = "rerun_failed_jobs"
    RERUN_WORKFLOW = "rerun_workflow"
    CLEAR_CACHE = "clear_cache"
    OPEN_FIX_PR = "open_fix_pr"
    NONE = "none"


class FileEdit(Frozen):
    """One exact replacement in one file of the failing commit (for ``open_fix_pr``)."""

    path: str = Field(min_length=1, max_length=1024)
    old_text: str = Field(min_length=1)
    """Must occur exactly once in the file at the failing commit, or the fix is refused."""
    new_text: str


class ProposedAction(Frozen):
    kind: ActionKind
    cache_key: CleanText | None = None
    """For ``clear_cache``: the cache key prefix to delete."""
    edits: tuple[FileEdit, ...] = ()
    """For ``open_fix_pr``: the typed change; the gate checks its paths, the executor its content."""


class AnalysisMethod(StrEnum):
    RULES = "rules"
    MODEL = "model"
    CACHE = "cache"


class GateOutcome(StrEnum):
    AUTO_REMEDIATE = "auto_remediate"
    REQUIRE_APPROVAL = "require_approval"
    NO_ACTION = "no_action"


class RemediationOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    """The action ran and the next CI run was green."""
    FAILED = "failed"
    """The action ran but CI stayed red, or the action itself was refused."""


# --- payloads ---------------------------------------------------------------------------


class FailedJob(Frozen):
    model_config = ConfigDict(
        frozen=True, extra="ignore", serialize_by_alias=True, validate_by_alias=True, validate_by_name=True
    )

    job_id: int
    name: CleanText
    failed_steps: tuple[CleanText, ...] = ()
    log_tail: CleanText = Field(default="", alias="log_excerpt")
    """A bounded tail of the job log (never the whole log), not the analyzer's excerpt. On the wire
    it keeps its published name ``log_excerpt``, so services of either version read each other."""
    log_ref: CleanText | None = None
    """Where the whole tail was stored when it was too large to travel inline."""
    log_truncated: bool = False
    log_unavailable_reason: CleanText | None = None


class RunHistory(Frozen):
    """What the monitor learned of the failing run's past, from one page of the branch's runs.

    The ``last_green_*`` fields were added in place (optional, version 1 unchanged): readers
    ignore unknown fields, and a bump would make every reader of the previous release
    dead-letter the new events as "newer than this reader"."""

    earlier_attempts_passed: int = 0
    earlier_attempts_failed: int = 0
    parent_commit_conclusion: CleanText | None = None
    branch_runs_read: bool = False
    """The monitor read the branch's newest completed runs: only then does a missing
    ``last_green_run_id`` mean that page held no green run of this workflow. False in events
    written before the field existed, so their readers search GitHub as before."""
    last_green_run_id: int | None = Field(default=None, ge=1)
    """The newest successful run of the same workflow on the branch in that page (not this run):
    the analyzer's green baseline, found without a search of its own."""
    last_green_run_attempt: int | None = Field(default=None, ge=1)


class WorkflowRunFacts(Frozen):
    """What GitHub tells of one failed run attempt: the monitor's intake record and
    FailureDetected both carry exactly these, so they are written once, here."""

    repository: CleanText
    run_id: int
    run_attempt: int = Field(ge=1)
    workflow_name: CleanText
    workflow_path: CleanText = ""
    event: CleanText = ""
    branch: CleanText = ""
    head_sha: CleanText = ""
    commit_message: CleanText = ""
    actor: CleanText = ""
    pull_requests: tuple[int, ...] = ()
    html_url: CleanText = ""
    conclusion: CleanText = "failure"
    run_started_at: datetime | None = None
    source: Literal["webhook", "poll"] = "webhook"

    def run_facts(self) -> dict[str, Any]:
        """The shared fields only, to build one model from the other."""
        return {name: getattr(self, name) for name in WorkflowRunFacts.model_fields}

    @field_validator("repository")
    @classmethod
    def _repository_is_owner_slash_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", value):
            raise ValueError("repository must look like 'owner/name'")
        return value


class FailureDetectedPayload(WorkflowRunFacts):
    detected_at: datetime
    failed_jobs: tuple[FailedJob, ...] = ()
    history: RunHistory | None = None


class ExcerptLine(Frozen):
    line: int = Field(ge=1)
    text: CleanText


class AnalysisCompletedPayload(Frozen):
    repository: CleanText
    run_id: int
    run_attempt: int = Field(ge=1)
    """Carried from FailureDetected so the gate decides from this event alone."""
    category: Category
    risk: int = Field(ge=0, le=10)
    confidence: float = Field(ge=0.0, le=1.0)
    proposed_action: ProposedAction
    method: AnalysisMethod
    fingerprint: CleanText
    summary: CleanText = ""
    retryable: bool = False
    matched_rules: tuple[CleanText, ...] = ()
    excerpt: tuple[ExcerptLine, ...] = ()
    branch: str = ""
    """Carried from FailureDetected: protected and release branches can need a person."""
    head_sha: str = ""
    """The failing commit, which a fix pull request starts from."""
    baseline_run_id: int | None = None
    """The last green run of the same job that the failing log was compared with, if any."""


class GateDecidedPayload(Frozen):
    outcome: GateOutcome
    reasons: tuple[CleanText, ...]
    """Every decision says why, in words a reviewer can check."""
    risk: int = Field(ge=0, le=10)
    risk_threshold: int = Field(ge=0, le=10)
    action: ProposedAction
    repository: CleanText
    run_id: int
    run_attempt: int = Field(ge=1)
    dry_run: bool = False
    """Decided and recorded as usual, but nothing is executed (the executor only records it)."""


class ApprovalRequestedPayload(Frozen):
    approval_id: CleanText
    action: ProposedAction
    repository: CleanText
    run_id: int
    reasons: tuple[CleanText, ...] = ()
    expires_at: datetime
    approvals_needed: int = Field(default=1, ge=1, le=2)
    """2 for critical risk (four-eyes): two distinct approvers before the action runs."""


class ApprovalGrantedPayload(Frozen):
    approval_id: CleanText
    approver: CleanText
    action: ProposedAction
    """What was approved, so the executor needs nothing but this event."""
    repository: CleanText
    run_id: int
    comment: CleanText = ""


class ApprovalRejectedPayload(Frozen):
    approval_id: CleanText
    approver: CleanText
    reason: CleanText = ""
    repository: CleanText = ""


class ApprovalExpiredPayload(Frozen):
    approval_id: CleanText
    expired_at: datetime
    repository: CleanText = ""


class ApprovalPartiallyGrantedPayload(Frozen):
    """Four-eyes: one approver said yes; one more, different approver is needed."""

    approval_id: CleanText
    approver: CleanText
    approvals: tuple[CleanText, ...]
    """Everyone who has approved so far, in order."""
    approvals_needed: int = Field(ge=2)
    repository: CleanText = ""


class ApprovalAttemptRefusedPayload(Frozen):
    """Someone who may not decide this approval tried to; nothing was decided."""

    approval_id: CleanText
    who: CleanText
    """The identity that tried (``slack:U…`` for a Slack user, else the name given)."""
    via: Literal["slack", "web", "cli"]
    decision: Literal["approve", "reject"]
    reason: CleanText
    repository: CleanText = ""


class RemediationStartedPayload(Frozen):
    action: ProposedAction
    repository: CleanText
    run_id: int
    approved_by: CleanText | None = None


class RemediationFinishedPayload(Frozen):
    action: ProposedAction
    repository: CleanText
    run_id: int
    outcome: RemediationOutcome
    detail: CleanText = ""
    verified_run_attempt: int | None = None
    """The run attempt whose conclusion decided the outcome (the proof CI went green, or not)."""


CONFIG_FAILURE_ID = "config"
"""The correlation key of configuration events: ``/api/audit?failure_id=config`` lists them all."""


class ConfigKeyChange(Frozen):
    """One key of an applied configuration change; a secret's values are masked, never sent."""

    key: str
    old: Any = None
    new: Any = None
    secret: bool = False


class ConfigReloadedPayload(Frozen):
    source: str
    """The file that was read (a ConfigMap mount in Kubernetes)."""
    trigger: Literal["watch", "sighup"]
    host: str
    """Which process applied it (each replica reloads; the derived event id keeps one fact)."""
    changes: tuple[ConfigKeyChange, ...] = ()
    """Keys applied to new decisions without a restart."""
    restart_needed: tuple[str, ...] = ()
    """Keys that changed in the file but only take effect at the next start (bus, ports, ...)."""


class PolicyChange(StrEnum):
    """Decisions about the policy itself, not about one failure."""

    KILL_SWITCH_ON = "kill_switch_on"
    KILL_SWITCH_OFF = "kill_switch_off"
    DRY_RUN_ON = "dry_run_on"
    DRY_RUN_OFF = "dry_run_off"
    BREAKER_OPENED = "breaker_opened"
    BREAKER_RESET = "breaker_reset"
    HOLD_STARTED = "hold_started"
    HOLD_LIFTED = "hold_lifted"


POLICY_FAILURE_ID = "policy"
"""The correlation key of policy events: ``/api/audit?failure_id=policy`` lists them all."""


class PolicyChangedPayload(Frozen):
    change: PolicyChange
    scope: str = "global"
    """``global``, a repository (breaker) or an infrastructure fingerprint (hold)."""
    reason: str = ""
    changed_by: str
    """A person (API, CLI) or the safety gate itself (breaker opened, hold started)."""
    repositories: tuple[str, ...] = ()
    """For a hold: the repositories the incident was seen in."""
    until: datetime | None = None
    """For a hold: when it lifts by itself."""


# --- envelope ---------------------------------------------------------------------------


class Envelope(Frozen):
    event_id: str = Field(default_factory=new_event_id)
    occurred_at: datetime = Field(default_factory=utc_now)
    failure_id: str
    causation_id: str | None = None
    actor: CleanText

    @classmethod
    def answering(cls, cause: Envelope, **fields: Any) -> Self:
        """This event as the answer to ``cause``: same failure, caused by it, with an id that
        is the same every time the cause is handled (so a redelivery publishes a duplicate
        JetStream drops, not a second fact)."""
        event_type = cls.model_fields["event_type"].default
        return cls(
            event_id=derive_event_id(cause.event_id, event_type, cause.occurred_at),
            failure_id=cause.failure_id,
            causation_id=cause.event_id,
            **fields,
        )

    @property
    def subject_token(self) -> str:
        return subject_token(self.event_type)  # type: ignore[attr-defined]


class FailureDetected(Envelope):
    event_type: Literal["FailureDetected"] = "FailureDetected"
    schema_version: Literal[1] = 1
    payload: FailureDetectedPayload


class AnalysisCompleted(Envelope):
    event_type: Literal["AnalysisCompleted"] = "AnalysisCompleted"
    schema_version: Literal[1] = 1
    payload: AnalysisCompletedPayload


class GateDecided(Envelope):
    event_type: Literal["GateDecided"] = "GateDecided"
    schema_version: Literal[1] = 1
    payload: GateDecidedPayload


class ApprovalRequested(Envelope):
    event_type: Literal["ApprovalRequested"] = "ApprovalRequested"
    schema_version: Literal[1] = 1
    payload: ApprovalRequestedPayload


class ApprovalGranted(Envelope):
    event_type: Literal["ApprovalGranted"] = "ApprovalGranted"
    schema_version: Literal[1] = 1
    payload: ApprovalGrantedPayload


class ApprovalRejected(Envelope):
    event_type: Literal["ApprovalRejected"] = "ApprovalRejected"
    schema_version: Literal[1] = 1
    payload: ApprovalRejectedPayload


class ApprovalExpired(Envelope):
    event_type: Literal["ApprovalExpired"] = "ApprovalExpired"
    schema_version: Literal[1] = 1
    payload: ApprovalExpiredPayload


class RemediationStarted(Envelope):
    event_type: Literal["RemediationStarted"] = "RemediationStarted"
    schema_version: Literal[1] = 1
    payload: RemediationStartedPayload


class RemediationFinished(Envelope):
    event_type: Literal["RemediationFinished"] = "RemediationFinished"
    schema_version: Literal[1] = 1
    payload: RemediationFinishedPayload


class ConfigReloaded(Envelope):
    event_type: Literal["ConfigReloaded"] = "ConfigReloaded"
    schema_version: Literal[1] = 1
    payload: ConfigReloadedPayload


class ApprovalPartiallyGranted(Envelope):
    event_type: Literal["ApprovalPartiallyGranted"] = "ApprovalPartiallyGranted"
    schema_version: Literal[1] = 1
    payload: ApprovalPartiallyGrantedPayload


class ApprovalAttemptRefused(Envelope):
    event_type: Literal["ApprovalAttemptRefused"] = "ApprovalAttemptRefused"
    schema_version: Literal[1] = 1
    payload: ApprovalAttemptRefusedPayload


class PolicyChanged(Envelope):
    event_type: Literal["PolicyChanged"] = "PolicyChanged"
    schema_version: Literal[1] = 1
    payload: PolicyChangedPayload


Event = Annotated[
    FailureDetected
    | AnalysisCompleted
    | GateDecided
    | ApprovalRequested
    | ApprovalGranted
    | ApprovalRejected
    | ApprovalExpired
    | RemediationStarted
    | RemediationFinished
    | ConfigReloaded
    | PolicyChanged
    | ApprovalPartiallyGranted
    | ApprovalAttemptRefused,
    Field(discriminator="event_type"),
]

EVENT_TYPES: tuple[type[Envelope], ...] = (
    FailureDetected,
    AnalysisCompleted,
    GateDecided,
    ApprovalRequested,
    ApprovalGranted,
    ApprovalRejected,
    ApprovalExpired,
    RemediationStarted,
    RemediationFinished,
    ConfigReloaded,
    PolicyChanged,
    ApprovalPartiallyGranted,
    ApprovalAttemptRefused,
)
EVENT_TYPE_NAMES: tuple[str, ...] = tuple(t.model_fields["event_type"].default for t in EVENT_TYPES)

_event_adapter: TypeAdapter[Event] = TypeAdapter(Event, config=ConfigDict(defer_build=True))

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
UPCASTERS: dict[tuple[str, int], Upcaster] = {}
"""``(event_type, from_version) -> function`` lifting a raw event one version up.

Empty while every event is at version 1; the first breaking change adds
``upcast_<type>_v1_v2`` here and a test beside it.
"""


class EventDecodeError(ValueError):
    """Raised for bytes that are not a valid ci-medic event; the message says why."""


def subject_token(event_type: str) -> str:
    """``FailureDetected`` -> ``failure_detected``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", event_type).lower()


CURRENT_VERSIONS: dict[str, int] = {
    t.model_fields["event_type"].default: t.model_fields["schema_version"].default for t in EVENT_TYPES
}
"""The newest ``schema_version`` this reader knows, per event type."""


def schema_version_of(raw: dict[str, Any]) -> int:
    """The event's version, or :class:`EventDecodeError` saying why it is not one we can read.

    JSON gives anything here (``null``, ``"2"``, ``[1]``, ``true``); each must become the
    decode error, which dead-letters the message at once, never a ``TypeError`` that the
    consumer would retry. A version newer than this reader knows comes from a newer writer:
    retrying cannot help either. A missing version is version 1 (written before versions).
    """
    version = raw.get("schema_version", 1)
    if isinstance(version, bool) or not isinstance(version, int):
        raise EventDecodeError(f"schema_version must be a whole number, not {version!r:.40}")
    if version < 0:
        raise EventDecodeError(f"schema_version must not be negative, not {version}")
    newest = CURRENT_VERSIONS.get(str(raw.get("event_type")))
    if newest is not None and version > newest:
        raise EventDecodeError(
            f"{raw.get('event_type')} schema_version {version} is newer than this reader "
            f"(it knows up to {newest}); a newer service wrote it"
        )
    return version


def upcast(raw: dict[str, Any]) -> dict[str, Any]:
    while True:
        step = UPCASTERS.get((str(raw.get("event_type")), schema_version_of(raw)))
        if step is None:
            return raw
        raw = step(raw)


def decode_event(data: bytes | str) -> Event:
    """Parse an event from its JSON form, lifting older versions first.

    Every way the bytes can be wrong ends in :class:`EventDecodeError`, which the consumer
    dead-letters at once with the reason.
    """
    import json

    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EventDecodeError(f"not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise EventDecodeError("an event must be a JSON object")
    try:
        return _event_adapter.validate_python(upcast(raw))
    except EventDecodeError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise EventDecodeError(str(exc)) from exc


def encode_event(event: Envelope) -> bytes:
    return event.model_dump_json().encode()
