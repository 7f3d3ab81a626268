"""Events the projector cannot apply are recorded in the audit trail, never dropped.

A message on the event stream may be unreadable (not JSON, not a known event, from a
foreign or broken publisher) or readable but impossible to store (a number past
``bigint``). Dead-lettering it would make it vanish from the one place auditors look, so
the projector writes an ``EventUnapplied`` audit row instead, chained like any other, with
the reason and the event's text (cleaned, redacted, bounded), and ``medic audit verify``
lists every such row. The row is a pure function of the message, so a replay writes the
same one and the views still compare equal.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import TypeAdapter, ValidationError

from medic.boundary import bounded_text
from medic.events import UPCASTERS, Event, EventDecodeError, decode_event
from medic.redact import redact
from medic.services.projector.projection import AuditEntry

UNAPPLIED_ACTION = "EventUnapplied"
UNREADABLE_TYPE = "Unreadable"
EVENT_TEXT_BYTES = 64 * 1024
REASON_BYTES = 2048
_UUID = re.compile(r"[0-9a-fA-F-]{32,36}")

PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    ValueError,
    TypeError,
    KeyError,
)
"""Errors that applying the same event again would raise again; anything else (a lost
connection, a server restarting) is transient and left to redelivery."""


@dataclass(frozen=True)
class Unreadable:
    """A message on the event stream that is not a ci-medic event."""

    data: bytes
    reason: str

    @property
    def text(self) -> str:
        return self.data.decode(errors="replace")

    def claimed(self, key: str) -> str | None:
        """A string field the bytes claim to have (event id, failure id), when they are JSON."""
        try:
            raw = json.loads(self.data)
        except (ValueError, RecursionError):
            return None
        value = raw.get(key) if isinstance(raw, dict) else None
        return value if isinstance(value, str) else None


_EVENTS: TypeAdapter[Event] = TypeAdapter(Event)
_VERSION_KEY = b'"schema_version":'


def _plainly_current(data: bytes) -> bool:
    """Whether ``decode_event`` would find exactly ``schema_version`` 1 and nothing to upcast.

    Only then may the bytes go straight to pydantic's JSON validator: ``decode_event`` first
    rejects versions pydantic alone would accept (``true``, ``1.0``), and a key spelled with a
    ``\\u`` escape could hide a second ``schema_version``. Anything unusual takes the slow path.
    """
    at = data.find(_VERSION_KEY)
    if at < 0 or UPCASTERS or b"\\u" in data:
        return False
    end = at + len(_VERSION_KEY)
    return data[end : end + 2] in (b"1,", b"1}") and data.find(_VERSION_KEY, end) < 0


def decode_or_unreadable(data: bytes) -> Event | Unreadable:
    """The projector's decoder: never raises, so nothing on the stream bypasses the audit trail.

    Events as ci-medic writes them are validated from the bytes in one pass (no dict in
    between); whatever that pass refuses is decoded again by ``decode_event``, which gives
    the same event or the reason an unapplied row records, exactly as before.
    """
    if _plainly_current(data):
        try:
            return _EVENTS.validate_json(data)
        except (ValidationError, ValueError, RecursionError):
            pass
    try:
        return decode_event(data)
    except EventDecodeError as exc:
        return Unreadable(data, str(exc))
    except RecursionError:
        return Unreadable(data, "nested too deeply to parse")


@dataclass(frozen=True)
class Unapplied:
    """What the audit row and the tracking row of an unapplied message say."""

    event_id: str
    event_type: str
    occurred_at: datetime
    failure_id: str
    repository: str | None
    stream_seq: int
    reason: str
    text: str

    def audit(self) -> AuditEntry:
        details: dict[str, Any] = {
            "reason": bounded_text(self.reason, REASON_BYTES),
            "event_type": self.event_type,
            "stream_seq": self.stream_seq,
            "event": bounded_text(redact(self.text), EVENT_TEXT_BYTES),
        }
        return AuditEntry(
            event_id=self.event_id,
            occurred_at=self.occurred_at,
            actor="projector",
            action=UNAPPLIED_ACTION,
            outcome="unapplied",
            failure_id=self.failure_id,
            repository=self.repository,
            details=details,
        )


def of_event(event: Event, stream_seq: int, error: BaseException) -> Unapplied:
    repository = getattr(event.payload, "repository", None)
    return Unapplied(
        event_id=event.event_id,
        event_type=event.event_type,
        occurred_at=event.occurred_at,
        failure_id=event.failure_id,
        repository=repository if isinstance(repository, str) and repository else None,
        stream_seq=stream_seq,
        reason=f"{type(error).__name__}: {error}",
        text=event.model_dump_json(),
    )


def of_unreadable(item: Unreadable, stream_seq: int, received_at: datetime) -> Unapplied:
    claimed_id = item.claimed("event_id")
    event_id = claimed_id if claimed_id and _UUID.fullmatch(claimed_id) else f"unreadable-{stream_seq}"
    failure_id = bounded_text(item.claimed("failure_id") or "", 200)
    return Unapplied(
        event_id=event_id,
        event_type=UNREADABLE_TYPE,
        occurred_at=received_at,
        failure_id=failure_id,
        repository=None,
        stream_seq=stream_seq,
        reason=item.reason,
        text=item.text,
    )
