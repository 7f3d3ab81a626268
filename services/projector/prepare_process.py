"""A long replay's decoding and projection, done in a second process beside the writer.

In one process a replay is bound by one core: Python was busy 119.6 s of a 121 s replay of
1,000,000 events (reading, validating, projecting, encoding each audit row for the hash
chain, writing), with the second core left to PostgreSQL and NATS. So from
:data:`PARALLEL_FROM` messages the replay hands each batch's bytes to one worker process,
which returns the batch's entries, and the writer keeps only what must stay in one place
and in order: the dedup against the tracking table, the hash chain and the failures fold.

Entries cross the process boundary as plain tuples, which pickle writes in C: 8.7 us an
entry in the worker and 6.4 us to read and rebuild it in the writer, against 16.1 us to
pickle the entries as they are (their dataclasses go through ``__reduce__``). They are
rebuilt field by field, so what the writer gets is equal to what :func:`prepare` would have given it in
its own process (a test holds the two equal). A batch the worker cannot project (some
message would fail its projection) comes back as None and is prepared again in the
writer's process, where the row path isolates the message as it always did.

The worker is spawned (a fork would copy a process with an event loop and threads), so a
script that calls :func:`~medic.services.projector.replay.replay` on a long stream must
guard its main module (``if __name__ == "__main__":``) as multiprocessing requires; the
``medic`` command and the bench do.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import pickle
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import fields
from datetime import datetime
from operator import attrgetter
from typing import Any

from medic.services.projector.batch import Entry
from medic.services.projector.projection import FailureChange
from medic.services.projector.store import Received, prepare
from medic.services.projector.stream_reader import StreamMessage, stamp_time
from medic.services.projector.unapplied import Unapplied, Unreadable, decode_or_unreadable

PARALLEL_FROM = 20_000
"""Messages in the stream from which a replay prepares in a second process. Below it the
process's start (importing the event models, about a second) costs more than it saves."""

HEAP_GROWTH_OBJECTS = 2_000_000
"""Objects alive beyond the last collection before the cyclic collector runs, in a replay's
writer and in its worker (see ``replay._collect_on_growth``): about six times the growth
measured at the start of each batch's write in a 200,000-event replay (326,065 at most: the
queue's two batches and the one being read)."""

_UNAPPLIED = attrgetter(*(f.name for f in fields(Unapplied)))


def received_until(chunk: Sequence[StreamMessage], until: datetime | None) -> list[Received]:
    """The chunk's messages decoded, those that happened after ``until`` left out (an
    unreadable message counts from when the stream stored it)."""
    items: list[Received] = []
    for message in chunk:
        event = decode_or_unreadable(message.data)
        stamped = stamp_time(message.stamped_ns)
        at = event.occurred_at if not isinstance(event, Unreadable) else stamped
        if until is None or at <= until:
            items.append((event, message.seq, stamped))
    return items


def pack(entries: Sequence[Entry]) -> bytes:
    return pickle.dumps([_flat(e) for e in entries], protocol=pickle.HIGHEST_PROTOCOL)


def unpack(data: bytes) -> list[Entry]:
    return [_entry(flat) for flat in pickle.loads(data)]  # noqa: S301 - bytes from our own worker


def _flat(e: Entry) -> tuple[Any, ...]:
    change = None if e.change is None else tuple(e.change)
    unapplied = None if e.unapplied is None else _UNAPPLIED(e.unapplied)
    return (*e[:_LAST_PLAIN], change, unapplied)


def _entry(flat: tuple[Any, ...]) -> Entry:
    *plain, change, unapplied = flat
    return Entry._make(
        (
            *plain,
            None if change is None else FailureChange._make(change),
            None if unapplied is None else Unapplied(*unapplied),
        )
    )


_LAST_PLAIN = Entry._fields.index("change")
"""Entry's fields before this one are strings, numbers and datetimes; this one (a named
tuple) and the next (a dataclass) are sent as plain tuples of their fields."""


def prepare_packed(chunk: list[StreamMessage], until: datetime | None) -> tuple[int, bytes | None]:
    """In the worker: how many of the chunk's messages are wanted, and their entries packed,
    or None when some message cannot be projected (the writer's process then does it)."""
    prepared = prepare(received_until(chunk, until))
    count = len(prepared.items)
    return count, None if prepared.entries is None else pack(prepared.entries)


def _start_worker() -> None:
    gc.collect()
    gc.freeze()  # the imports: never garbage, no need to scan them again
    gc.set_threshold(HEAP_GROWTH_OBJECTS, 10, 10)


@contextlib.contextmanager
def worker() -> Iterator[ProcessPoolExecutor]:
    """One spawned worker process (no fork of a process with an event loop and threads),
    stopped with whatever it still had queued when the replay ends or fails."""
    pool = ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker
    )
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)  # not holding the event loop up: it exits
        raise
    pool.shutdown(wait=True)
