"""A remediation counts as done only when CI is green again: one look at CI at a time.

Waiting for CI takes minutes on GitHub (a re-run is a whole job again), so nothing here waits:
each function looks once and says the verdict, or None for "not yet". The schedule of the
looks (:func:`pause_before_look`) is kept by the executor's verification work stream
(:mod:`.waiting`), which redelivers the order after each pause, so a remediation waiting for
CI holds no handler and no task between two looks; :class:`RunWatch` and :class:`ChecksWatch`
keep only each watched run's (or pull request head's) last ETag and state, a cache whose loss
costs one full read.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from medic.github.changes import ChecksSummary, RepositoryChanges
from medic.github.client import GitHubClient
from medic.github.errors import GitHubError
from medic.github.models import WorkflowRun

K = TypeVar("K")
V = TypeVar("V")

FIRST_PAUSE_SECONDS = 0.25
LONGEST_PAUSE_SECONDS = 10.0


@dataclass(frozen=True)
class Verdict:
    green: bool
    attempt: int | None
    detail: str


def pause_before_look(look: int) -> float:
    """Seconds before look number ``look + 1``: 0.25 s doubling to 10 s (a quick re-run is seen
    quickly, a long one costs a request every 10 s)."""
    doublings = min(max(0, look - 1), 16)  # past the cap already; a large power would overflow
    return min(FIRST_PAUSE_SECONDS * 2.0**doublings, LONGEST_PAUSE_SECONDS)


def looks_within(seconds: float) -> int:
    """How many looks the schedule takes to span ``seconds`` (the deliveries a wait needs)."""
    looks, waited = 1, 0.0
    while waited < seconds:
        waited += pause_before_look(looks)
        looks += 1
    return looks


class _LastSeen(Generic[K, V]):
    """Each watched thing's last ETag and the value read with it, oldest forgotten first past
    ``size``: a thing forgotten (or looked at by another replica) costs one full read."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._known: OrderedDict[K, tuple[str | None, V]] = OrderedDict()

    async def look(self, key: K, read: Callable[[str | None], Awaitable[tuple[V | None, str | None]]]) -> V:
        """``read`` with the ETag held for ``key``; its ``None`` (a 304) is the value held with it."""
        known = self._known.get(key)
        value, etag = await read(known[0] if known else None)
        if value is None:  # 304: unchanged since the look that stored the ETag it was asked with
            if known is None:  # the client refuses a 304 it did not ask for; never trust one here
                raise GitHubError(f"{key} answered 304 to a read without an ETag")
            value = known[1]
        self._known[key] = (etag, value)
        self._known.move_to_end(key)
        while len(self._known) > self.size:
            self._known.popitem(last=False)
        return value

    def forget(self, key: K) -> None:
        self._known.pop(key, None)


class RunWatch:
    """The runs waited on, each with its last ETag: a look at a run that has not changed is
    GitHub's 304, which costs no rate limit. A re-run changes its run a few times (queued, in
    progress, completed) while its wait looks up to 66 times in ten minutes; at one request a
    look, a few dozen waits would spend a token's 5,000 requests an hour. Bounded: a run
    forgotten (or looked at by another replica) costs one full read."""

    def __init__(self, github: GitHubClient, *, size: int = 10_000) -> None:
        self.github = github
        self._known: _LastSeen[tuple[str, int], WorkflowRun] = _LastSeen(size)

    async def run(self, repository: str, run_id: int) -> WorkflowRun:
        return await self._known.look(
            (repository.lower(), run_id),
            lambda etag: self.github.get_run_if_changed(repository, run_id, etag=etag),
        )

    def forget(self, repository: str, run_id: int) -> None:
        self._known.forget((repository.lower(), run_id))


class ChecksWatch:
    """The fix pull requests' heads waited on, each with its check runs' last ETag: as for
    :class:`RunWatch`, a look at check runs that have not changed is a 304 and costs no rate limit."""

    def __init__(self, changes: RepositoryChanges, *, size: int = 10_000) -> None:
        self.changes = changes
        self._known: _LastSeen[tuple[str, str], ChecksSummary] = _LastSeen(size)

    async def checks(self, repository: str, ref: str) -> ChecksSummary:
        async def read(etag: str | None) -> tuple[ChecksSummary | None, str | None]:
            checks = await self.changes.checks(repository, ref, etag=etag)
            return (None if checks.not_modified else checks), checks.etag

        return await self._known.look((repository.lower(), ref), read)

    def forget(self, repository: str, ref: str) -> None:
        self._known.forget((repository.lower(), ref))


async def look_for_new_attempt(
    runs: RunWatch, repository: str, run_id: int, *, after_attempt: int
) -> Verdict | None:
    """The verdict of the first attempt after ``after_attempt`` once it completed, else None."""
    run = await runs.run(repository, run_id)
    if run.run_attempt > after_attempt and run.status == "completed":
        green = run.conclusion == "success"
        return Verdict(green, run.run_attempt, f"attempt {run.run_attempt} concluded {run.conclusion}")
    return None


async def look_at_checks(watch: ChecksWatch, repository: str, ref: str) -> Verdict | None:
    """A fix counts when every check of its pull request's head concluded green."""
    checks = await watch.checks(repository, ref)
    if not checks.done:
        return None
    if checks.failed:
        return Verdict(False, None, f"checks failed on {ref[:12]}: {', '.join(checks.failed)}")
    return Verdict(True, None, f"all {checks.total} checks passed on {ref[:12]}")


def out_of_time(*, checks_ref: str | None, after_attempt: int, seconds: float, why: str = "") -> Verdict:
    """The verdict when CI did not conclude in time: failed, with what was waited for."""
    because = f" ({why})" if why else ""
    if checks_ref is not None:
        detail = f"unverified: the checks of {checks_ref[:12]} did not conclude within {seconds:.0f}s"
        return Verdict(False, None, detail + because)
    return Verdict(False, None, f"no finished attempt after {after_attempt} within {seconds:.0f}s{because}")
