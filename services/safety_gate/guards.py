"""The safety policy's state and its pure transitions: switches, budgets, breakers, holds.

Each record is a value: a transition returns a new record, never mutates one, so the store
can apply it under compare-and-set and retry it on a conflict (two gate replicas, one truth).
Every transition is idempotent by failure id: a redelivered event changes nothing twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from medic.config import GuardPolicy
from medic.events import Category

HOLD_CATEGORIES = frozenset({Category.INFRASTRUCTURE, Category.DEPENDENCY})
"""Causes outside the repository (a runner, a registry): the same one in many repositories is
an incident, and re-running into it only hammers the broken dependency."""

_REMEMBERED = 256
"""How many counted failure ids a breaker keeps to stay idempotent under redelivery."""


class Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class Switches(Record):
    """The run-time switches (API, CLI); the configuration's values are OR-ed on top."""

    kill_switch: bool = False
    dry_run: bool = False
    changed_at: datetime | None = None
    changed_by: str = ""


class Breaker(Record):
    """Automatic remediations in one repository that left CI red, in a row."""

    repository: str
    failed_in_a_row: int = 0
    open: bool = False
    opened_by: str | None = None
    """The failure whose red verification opened it (to republish the event after a crash)."""
    counted: tuple[str, ...] = ()
    reset_at: datetime | None = None
    reset_by: str = ""

    def after(self, failure_id: str, *, green: bool, threshold: int) -> Breaker:
        if failure_id in self.counted:
            return self
        counted = (*self.counted, failure_id)[-_REMEMBERED:]
        if self.open:
            return self.model_copy(update={"counted": counted})
        if green:
            return self.model_copy(update={"failed_in_a_row": 0, "counted": counted})
        failed = self.failed_in_a_row + 1
        opens = failed >= threshold
        return self.model_copy(
            update={
                "failed_in_a_row": failed,
                "open": opens,
                "opened_by": failure_id if opens else None,
                "counted": counted,
            }
        )

    def reset(self, *, by: str, at: datetime) -> Breaker:
        if not self.open and self.failed_in_a_row == 0:
            return self
        return self.model_copy(
            update={"failed_in_a_row": 0, "open": False, "opened_by": None, "reset_at": at, "reset_by": by}
        )


class HourlyBudget(Record):
    """Automatic remediations granted in one organisation in one clock hour, by failure."""

    organisation: str
    hour: str
    grants: dict[str, str] = Field(default_factory=dict)
    """failure id -> repository"""

    def used_by(self, repository: str) -> int:
        wanted = repository.lower()
        return sum(1 for repo in self.grants.values() if repo.lower() == wanted)

    @property
    def used(self) -> int:
        return len(self.grants)

    def granted(self, failure_id: str) -> bool:
        return failure_id in self.grants

    def reserve(self, failure_id: str, guard: GuardPolicy) -> HourlyBudget | None:
        """The budget with this failure counted, or None when either limit is reached."""
        if failure_id in self.grants:
            return self
        if self.used_by(guard.repository) >= guard.repository_hourly_budget:
            return None
        if self.used >= guard.organisation_hourly_budget:
            return None
        return self.model_copy(update={"grants": {**self.grants, failure_id: guard.repository}})


def hour_of(at: datetime) -> str:
    return at.strftime("%Y%m%d%H")


class Incident(Record):
    """Where one infrastructure fingerprint was seen recently, and whether re-runs are held."""

    fingerprint: str
    sightings: dict[str, datetime] = Field(default_factory=dict)
    """repository (lower case) -> last seen"""
    held_until: datetime | None = None
    held_repositories: tuple[str, ...] = ()
    started_by: str | None = None
    """The analysis event that started the hold (to republish the event after a crash)."""
    lifted_at: datetime | None = None
    lifted_by: str = ""

    def holding(self, at: datetime) -> bool:
        return self.held_until is not None and at < self.held_until

    def seen(self, repository: str, at: datetime, *, cause: str, guard: GuardPolicy) -> Incident:
        window = timedelta(minutes=guard.incident_window_minutes)
        recent = {repo: when for repo, when in self.sightings.items() if at - when <= window}
        recent[repository.lower()] = max(at, recent.get(repository.lower(), at))
        update: dict[str, object] = {"sightings": recent}
        if not self.holding(at) and len(recent) >= guard.incident_repositories:
            update |= {
                "held_until": at + timedelta(minutes=guard.incident_hold_minutes),
                "held_repositories": tuple(sorted(recent)),
                "started_by": cause,
            }
        return self.model_copy(update=update)

    def lift(self, *, by: str, at: datetime) -> Incident:
        if not self.holding(at):
            return self
        return self.model_copy(
            update={"held_until": None, "sightings": {}, "started_by": None, "lifted_at": at, "lifted_by": by}
        )
