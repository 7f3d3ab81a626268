"""Where the pipeline process spends its CPU, by service, from a pyinstrument profile.

All seven services share one process and one event loop in the bench, so the operating
system cannot say which service used the CPU. A sampling profile can: each sample's time
goes to the innermost frame of a service package (``medic/services/<name>/``) on its stack,
so a service's share includes the libraries it called (pydantic, asyncpg, nats). Samples
with no service frame go to the kernel (``medic/*``: bus, consumer, runtime) or to
``loop_and_libraries`` (the event loop, uvicorn, the NATS client's reader); samples waiting
in the selector are idle, not CPU, and are left out.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

_SERVICE = re.compile(r"/medic/services/([a-z_]+)/")
_KERNEL = re.compile(r"/medic/(?!services/)")


def _owner(stack: list[Any]) -> str:
    for frame in reversed(stack):
        path = frame.file_path or ""
        found = _SERVICE.search(path)
        if found:
            return found.group(1)
    for frame in reversed(stack):
        if _KERNEL.search(frame.file_path or ""):
            return "kernel"
    return "loop_and_libraries"


def _is_idle(stack: list[Any]) -> bool:
    """Waiting in the selector (``epoll.poll`` under ``selectors``): the loop had nothing to run."""
    return any(
        frame.function in {"select", "poll"}
        and ("selectors" in (frame.file_path or "") or frame.file_path == "<built-in>")
        for frame in stack[-3:]
    )


def split(session: Any) -> dict[str, float]:
    """Seconds of sampled busy time per owner (idle samples in the selector left out)."""
    totals: dict[str, float] = defaultdict(float)
    root = session.root_frame()
    if root is None:
        return {}
    pending: list[tuple[Any, list[Any]]] = [(root, [root])]
    while pending:
        frame, stack = pending.pop()
        own = frame.time - sum(child.time for child in frame.children)
        if own > 0 and not _is_idle(stack):
            totals[_owner(stack)] += own
        pending.extend((child, [*stack, child]) for child in frame.children)
    return dict(totals)


def shares(totals: dict[str, float]) -> dict[str, float]:
    busy = sum(totals.values()) or 1.0
    return {name: round(seconds / busy, 3) for name, seconds in sorted(totals.items(), key=lambda kv: -kv[1])}
