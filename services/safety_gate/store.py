"""The policy's state in the kernel's record store (JetStream key-value), changed only by
compare-and-set.

Two gate replicas read the same record, each computes its transition, and only one write
lands on a revision: the other re-reads and recomputes. So a budget is never exceeded
between replicas, and a restart forgets nothing. Keys hash names (repository names may
hold characters a key may not).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError

from medic.bus import Bucket, Topology
from medic.records import RecordStore, hashed_key
from medic.services.safety_gate.guards import Breaker, HourlyBudget, Incident, Record, Switches, hour_of

_R = TypeVar("_R", bound=Record)
_MAX_TRIES = 64
SWITCHES_KEY = "switches"

BUDGET_TTL_SECONDS = 3 * 3600.0
"""An hour's budget is read for that hour only; keeping it three hours is plenty."""


class PolicyConflict(RuntimeError):
    """Compare-and-set kept losing (a storm of writers); the event is retried later."""


class AutomaticGrant(Record):
    """A failure the gate let through on its own (the breaker counts only these)."""

    repository: str


class PolicyStore:
    def __init__(
        self,
        switches: RecordStore[Switches],
        breakers: RecordStore[Breaker],
        incidents: RecordStore[Incident],
        grants: RecordStore[AutomaticGrant],
        budgets: RecordStore[HourlyBudget],
    ) -> None:
        self._switches = switches
        self._breakers = breakers
        self._incidents = incidents
        self._grants = grants
        self._budgets = budgets

    @classmethod
    async def open(cls, js: JetStreamContext, topology: Topology) -> PolicyStore:
        bucket = topology.bucket(Bucket.POLICY)
        budgets = topology.bucket(Bucket.POLICY_BUDGETS)
        return cls(
            await RecordStore.open(js, bucket, Switches, history=5),
            await RecordStore.open(js, bucket, Breaker, history=5),
            await RecordStore.open(js, bucket, Incident, history=5),
            await RecordStore.open(js, bucket, AutomaticGrant, history=5),
            await RecordStore.open(js, budgets, HourlyBudget, ttl=BUDGET_TTL_SECONDS),
        )

    # --- reading -------------------------------------------------------------------------

    async def switches(self) -> Switches:
        found = await self._switches.get(SWITCHES_KEY)
        return found.record if found else Switches()

    async def breaker(self, repository: str) -> Breaker | None:
        found = await self._breakers.get(hashed_key("breaker", repository))
        return found.record if found else None

    async def incident(self, fingerprint: str) -> Incident | None:
        found = await self._incidents.get(hashed_key("incident", fingerprint))
        return found.record if found else None

    async def open_breakers(self) -> list[Breaker]:
        found = [await self._breakers.get(k) for k in await self._breakers.keys() if k.startswith("breaker.")]
        return [f.record for f in found if f is not None and f.record.open]

    async def incidents(self) -> list[Incident]:
        found = [
            await self._incidents.get(k) for k in await self._incidents.keys() if k.startswith("incident.")
        ]
        return [f.record for f in found if f is not None]

    # --- changing ------------------------------------------------------------------------

    async def set_switches(self, step: Callable[[Switches], Switches]) -> tuple[Switches, Switches]:
        before, after = await self._switches.change(SWITCHES_KEY, lambda s: step(s or Switches()))
        return before or Switches(), after or Switches()

    async def change_breaker(
        self, repository: str, step: Callable[[Breaker], Breaker]
    ) -> tuple[Breaker | None, Breaker | None]:
        key = hashed_key("breaker", repository)
        return await self._breakers.change(key, lambda b: step(b or Breaker(repository=repository)))

    async def change_incident(
        self, fingerprint: str, step: Callable[[Incident], Incident]
    ) -> tuple[Incident | None, Incident | None]:
        key = hashed_key("incident", fingerprint)
        return await self._incidents.change(key, lambda i: step(i or Incident(fingerprint=fingerprint)))

    async def change_budget(
        self, organisation: str, at: datetime, step: Callable[[HourlyBudget], HourlyBudget | None]
    ) -> tuple[HourlyBudget | None, HourlyBudget | None]:
        key = f"{hashed_key('budget', organisation)}.{hour_of(at)}"
        fresh = HourlyBudget(organisation=organisation.lower(), hour=hour_of(at))
        return await self._budgets.change(key, lambda b: step(b or fresh))

    # --- which failures the gate let through on its own ----------------------------------

    async def mark_automatic(self, failure_id: str, repository: str) -> None:
        await self._grants.put(f"auto.{failure_id}", AutomaticGrant(repository=repository))

    async def automatic_repository(self, failure_id: str) -> str | None:
        found = await self._grants.get(f"auto.{failure_id}")
        return found.record.repository if found else None

    async def forget_automatic(self, failure_id: str) -> None:
        with contextlib.suppress(KeyNotFoundError):
            await self._grants.kv.delete(f"auto.{failure_id}")
