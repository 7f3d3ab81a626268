"""The process's long-lived heap, set aside once start-up is over.

A service process holds a few hundred thousand objects from start-up (modules, pydantic
schemas, the API clients' type trees) that live as long as it does. CPython's cyclic
collector re-scans every one of them in each full (generation 2) collection: 120 to 130 ms
with the event loop held, every few seconds under load, which every failure in flight
waits out (the steady-rate bench's webhook-to-FailureDetected tail). :func:`freeze_start_up`
moves what start-up built into the permanent generation, so later full collections scan only
what the work allocates. Reference counting still frees start-up objects that die later; one
that dies in a reference cycle is kept for the process's life. That is bounded by what
start-up built, once (it is collected just before the freeze), not something that grows with
the work; it is not measured beyond that.
"""

from __future__ import annotations

import gc


def freeze_start_up() -> int:
    """Collect start-up's garbage once, then freeze what is left; return how many objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
