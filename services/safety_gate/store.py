"""The policy's state in the kernel's record store (JetStream key-value), changed only by compare-and-set.

Two gate replicas read the same record, each computes its transition, and only one write
lands on a revision: the other re-reads and recomputes. So a budget is never exceeded
between replicas, and a restart forgets nothing. Keys hash names (repository names may
hold characters a key may not).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from nats.js import JetStreamContext
from pydantic import BaseModel, ConfigDict

from medic.bus import Bucket, Topology
from medic.records import RecordConflict, RecordStore, hashed_key
from medic.services.safety_gate.guards import Breaker, HourlyBudget, Incident, Switches, hour_of

BUDGET_TTL_SECONDS = 3 * 3600.0
"""An hour's budget is read for that hour only; keeping it three hours is plenty."""

PolicyConflict = RecordConflict
"""Compare-and-set kept losing (a storm of writers); the event is retried later."""


class AutomaticMark(BaseModel):
    """The gate let this failure through on its own: its outcome counts for the breaker."""

    model_config = ConfigDict(frozen=True)

    repository: str


class PolicyStore:
    def __init__(
        self,
        *,
        switches: RecordStore[Switches],
        breakers: RecordStore[Breaker],
        incidents: RecordStore[Incident],
        budgets: RecordStore[HourlyBudget],
        automatic: RecordStore[AutomaticMark],
    ) -> None:
        self._switches = switches
        self._breakers = breakers
        self._incidents = incidents
        self._budgets = budgets
        self._automatic = automatic

    @classmethod
    async def open(cls, js: JetStreamContext, topology: Topology) -> PolicyStore:
        state = topology.bucket(Bucket.POLICY)
        budgets = topology.bucket(Bucket.POLICY_BUDGETS)
        return cls(
            switches=await RecordStore.open(js, state, Switches, history=5),
            breakers=await RecordStore.open(js, state, Breaker, history=5),
            incidents=await RecordStore.open(js, state, Incident, history=5),
            budgets=await RecordStore.open(js, budgets, HourlyBudget, ttl=BUDGET_TTL_SECONDS),
            automatic=await RecordStore.open(js, state, AutomaticMark, history=5),
        )

    # --- reading -------------------------------------------------------------------------

    async def switches(self) -> Switches:
        found = await self._switches.get("switches")
        return found.record if found else Switches()

    async def breaker(self, repository: str) -> Breaker | None:
        found = await self._breakers.get(hashed_key("breaker", repository))
        return found.record if found else None

    async def incident(self, fingerprint: str) -> Incident | None:
        found = await self._incidents.get(hashed_key("incident", fingerprint))
        return found.record if found else None

    async def budget(self, organisation: str, at: datetime) -> HourlyBudget | None:
        found = await self._budgets.get(_budget_key(organisation, at))
        return found.record if found else None

    async def open_breakers(self) -> list[Breaker]:
        return [v.record async for _, v in self._breakers.items("breaker.") if v.record.open]

    async def incidents(self) -> list[Incident]:
        return [v.record async for _, v in self._incidents.items("incident.")]

    # --- changing ------------------------------------------------------------------------

    async def set_switches(self, step: Callable[[Switches], Switches]) -> tuple[Switches, Switches]:
        before, after = await self._switches.change("switches", lambda s: step(s or Switches()))
        return before or Switches(), after or Switches()

    async def change_breaker(
        self, repository: str, step: Callable[[Breaker], Breaker]
    ) -> tuple[Breaker | None, Breaker | None]:
        return await self._breakers.change(
            hashed_key("breaker", repository), lambda b: step(b or Breaker(repository=repository))
        )

    async def change_incident(
        self, fingerprint: str, step: Callable[[Incident], Incident]
    ) -> tuple[Incident | None, Incident | None]:
        return await self._incidents.change(
            hashed_key("incident", fingerprint), lambda i: step(i or Incident(fingerprint=fingerprint))
        )

    async def change_budget(
        self, organisation: str, at: datetime, step: Callable[[HourlyBudget], HourlyBudget | None]
    ) -> tuple[HourlyBudget | None, HourlyBudget | None]:
        return await self._budgets.change(
            _budget_key(organisation, at),
            lambda b: step(b or HourlyBudget(organisation=organisation.lower(), hour=hour_of(at))),
        )

    # --- which failures the gate let through on its own ----------------------------------

    async def mark_automatic(self, failure_id: str, repository: str) -> None:
        await self._automatic.put(f"auto.{failure_id}", AutomaticMark(repository=repository))

    async def automatic_repository(self, failure_id: str) -> str | None:
        found = await self._automatic.get(f"auto.{failure_id}")
        return found.record.repository if found else None

    async def forget_automatic(self, failure_id: str) -> None:
        await self._automatic.delete(f"auto.{failure_id}")


def _budget_key(organisation: str, at: datetime) -> str:
    return f"{hashed_key('budget', organisation)}.{hour_of(at)}"
