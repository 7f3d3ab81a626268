"""The policy's state in JetStream key-value, changed only by compare-and-set.

Two gate replicas read the same record, each computes its transition, and only one write
lands on a revision: the other re-reads and recomputes. So a budget is never exceeded
between replicas, and a restart forgets nothing. Keys hash names (repository names may
hold characters a key may not).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from medic.bus import open_key_value
from medic.services.safety_gate.guards import Breaker, HourlyBudget, Incident, Record, Switches, hour_of

_R = TypeVar("_R", bound=Record)
_MAX_TRIES = 64

BUDGET_TTL_SECONDS = 3 * 3600.0
"""An hour's budget is read for that hour only; keeping it three hours is plenty."""


class PolicyConflict(RuntimeError):
    """Compare-and-set kept losing (a storm of writers); the event is retried later."""


def _key(kind: str, name: str) -> str:
    return f"{kind}.{hashlib.sha256(name.lower().encode()).hexdigest()[:40]}"


class PolicyStore:
    def __init__(self, state: KeyValue, budgets: KeyValue) -> None:
        self.state = state
        self.budgets = budgets

    @classmethod
    async def open(cls, js: JetStreamContext, stream: str) -> PolicyStore:
        state = await open_key_value(js, f"{stream}_policy", history=5)
        budgets = await open_key_value(js, f"{stream}_policy_budgets", ttl=BUDGET_TTL_SECONDS)
        return cls(state, budgets)

    # --- reading -------------------------------------------------------------------------

    async def _read(self, kv: KeyValue, key: str, model: type[_R]) -> tuple[_R | None, int]:
        with contextlib.suppress(KeyNotFoundError):
            entry = await kv.get(key)
            if entry.value:
                return model.model_validate_json(entry.value), int(entry.revision or 0)
        return None, 0

    async def switches(self) -> Switches:
        found, _ = await self._read(self.state, "switches", Switches)
        return found or Switches()

    async def breaker(self, repository: str) -> Breaker | None:
        return (await self._read(self.state, _key("breaker", repository), Breaker))[0]

    async def incident(self, fingerprint: str) -> Incident | None:
        return (await self._read(self.state, _key("incident", fingerprint), Incident))[0]

    async def budget(self, organisation: str, at: datetime) -> HourlyBudget | None:
        return (await self._read(self.budgets, _budget_key(organisation, at), HourlyBudget))[0]

    async def open_breakers(self) -> list[Breaker]:
        found: list[Breaker] = []
        for key in await self._keys("breaker."):
            breaker, _ = await self._read(self.state, key, Breaker)
            if breaker is not None and breaker.open:
                found.append(breaker)
        return found

    async def incidents(self) -> list[Incident]:
        found: list[Incident] = []
        for key in await self._keys("incident."):
            incident, _ = await self._read(self.state, key, Incident)
            if incident is not None:
                found.append(incident)
        return found

    async def _keys(self, prefix: str) -> list[str]:
        try:
            keys = await self.state.keys()
        except Exception as exc:  # nats-py raises a bare NoKeysError subclass of its own
            if type(exc).__name__ == "NoKeysError":
                return []
            raise
        return [k for k in keys if k.startswith(prefix)]

    # --- changing ------------------------------------------------------------------------

    async def change(
        self, kv: KeyValue, key: str, model: type[_R], step: Callable[[_R | None], _R | None]
    ) -> tuple[_R | None, _R | None]:
        """Apply ``step`` under compare-and-set; return (before, after). ``None`` after: no write."""
        for _ in range(_MAX_TRIES):
            before, revision = await self._read(kv, key, model)
            after = step(before)
            if after is None or after == before:
                return before, before if after is None else after
            data = after.model_dump_json().encode()
            try:
                if revision == 0:
                    await kv.create(key, data)
                else:
                    await kv.update(key, data, last=revision)
            except KeyWrongLastSequenceError:
                continue
            return before, after
        raise PolicyConflict(f"{key}: too many concurrent writers")

    async def set_switches(self, step: Callable[[Switches], Switches]) -> tuple[Switches, Switches]:
        before, after = await self.change(self.state, "switches", Switches, lambda s: step(s or Switches()))
        return before or Switches(), after or Switches()

    async def change_breaker(
        self, repository: str, step: Callable[[Breaker], Breaker]
    ) -> tuple[Breaker | None, Breaker | None]:
        return await self.change(
            self.state,
            _key("breaker", repository),
            Breaker,
            lambda b: step(b or Breaker(repository=repository)),
        )

    async def change_incident(
        self, fingerprint: str, step: Callable[[Incident], Incident]
    ) -> tuple[Incident | None, Incident | None]:
        return await self.change(
            self.state,
            _key("incident", fingerprint),
            Incident,
            lambda i: step(i or Incident(fingerprint=fingerprint)),
        )

    async def change_budget(
        self, organisation: str, at: datetime, step: Callable[[HourlyBudget], HourlyBudget | None]
    ) -> tuple[HourlyBudget | None, HourlyBudget | None]:
        return await self.change(
            self.budgets,
            _budget_key(organisation, at),
            HourlyBudget,
            lambda b: step(b or HourlyBudget(organisation=organisation.lower(), hour=hour_of(at))),
        )

    # --- which failures the gate let through on its own ----------------------------------

    async def mark_automatic(self, failure_id: str, repository: str) -> None:
        await self.state.put(f"auto.{failure_id}", repository.encode())

    async def automatic_repository(self, failure_id: str) -> str | None:
        with contextlib.suppress(KeyNotFoundError):
            entry = await self.state.get(f"auto.{failure_id}")
            return entry.value.decode() if entry.value else None
        return None

    async def forget_automatic(self, failure_id: str) -> None:
        with contextlib.suppress(KeyNotFoundError):
            await self.state.delete(f"auto.{failure_id}")


def _budget_key(organisation: str, at: datetime) -> str:
    return f"{_key('budget', organisation)}.{hour_of(at)}"
