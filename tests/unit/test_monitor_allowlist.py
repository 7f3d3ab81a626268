"""The allowlist and the poll cursor: pure rules, no bus, no HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from medic.github.models import RunsPage, WorkflowRun
from medic.services.monitor.allowlist import RepositoryAllowlist
from medic.services.monitor.polling import advance, valid_repository

T0 = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("entries", "repository", "allowed"),
    [
        ((), "anyone/anything", True),
        (("acme/*",), "ACME/api", True),
        (("acme/*",), "acmex/api", False),
        (("acme/api",), "acme/api", True),
        (("acme/api",), "acme/api-2", False),
        (("acme/api",), "acme/ap", False),
        (("nonsense",), "nonsense/x", False),  # only malformed entries: nothing, never everything
        ((" Acme/API ",), "acme/api", True),
        (("*/*",), "acme/api", False),
    ],
)
def test_allowlist(entries: tuple[str, ...], repository: str, allowed: bool) -> None:
    assert RepositoryAllowlist(entries).allows(repository) is allowed


@pytest.mark.parametrize(
    ("name", "valid"),
    [("acme/api", True), ("acme/.github", True), ("../etc", False), ("a b/c", False), ("acme/", False)],
)
def test_repository_names(name: str, valid: bool) -> None:
    assert valid_repository(name) is valid


def run(run_id: int, updated: datetime, conclusion: str = "failure", attempt: int = 1) -> WorkflowRun:
    return WorkflowRun(
        id=run_id, run_attempt=attempt, name="CI", path=".github/workflows/ci.yml", event="push",
        status="completed", conclusion=conclusion, head_branch="main", head_sha="a" * 40,
        head_commit_message="", actor_login="octocat", pull_request_numbers=(), html_url="",
        run_started_at=updated, created_at=updated, updated_at=updated, repository="acme/api",
    )  # fmt: skip


def test_first_poll_reports_failures_within_the_lookback_only() -> None:
    page = RunsPage(runs=(run(3, T0), run(2, T0 - timedelta(hours=2)), run(1, T0, "success")), etag='"e"')
    cursor, found = advance(None, page, repository="acme/api", now=T0, lookback=timedelta(hours=1))
    assert [r.id for r in found] == [3]
    assert cursor.updated_at == T0 and cursor.etag == '"e"' and cursor.last_run_id == 3


def test_runs_stamped_with_the_cursor_second_are_not_lost_nor_repeated() -> None:
    first = RunsPage(runs=(run(1, T0),), etag=None)
    cursor, found = advance(None, first, repository="acme/api", now=T0, lookback=timedelta(hours=1))
    assert [r.id for r in found] == [1]
    second = RunsPage(runs=(run(2, T0), run(1, T0)), etag=None)  # another run, same second
    cursor, found = advance(cursor, second, repository="acme/api", now=T0, lookback=timedelta(hours=1))
    assert [r.id for r in found] == [2]
    cursor, found = advance(cursor, second, repository="acme/api", now=T0, lookback=timedelta(hours=1))
    assert found == []
    rerun = RunsPage(runs=(run(2, T0 + timedelta(seconds=5), attempt=2), run(1, T0)), etag=None)
    cursor, found = advance(cursor, rerun, repository="acme/api", now=T0, lookback=timedelta(hours=1))
    assert [(r.id, r.run_attempt) for r in found] == [(2, 2)]
    assert cursor.seen_at_boundary == ("2#2",)


def test_a_run_that_shows_up_stamped_before_the_cursor_is_found_once() -> None:
    """Listing is not instantaneous: a run created a moment before one already seen can appear
    only in a later listing, stamped before the cursor (the fault suite lost such runs)."""
    lookback = timedelta(hours=1)
    cursor, found = advance(None, RunsPage(runs=(run(2, T0),), etag=None), repository="acme/api",
                            now=T0, lookback=lookback)  # fmt: skip
    assert [r.id for r in found] == [2]
    late = RunsPage(runs=(run(2, T0), run(1, T0 - timedelta(seconds=3))), etag=None)
    cursor, found = advance(cursor, late, repository="acme/api", now=T0, lookback=lookback)
    assert [r.id for r in found] == [1]
    cursor, found = advance(cursor, late, repository="acme/api", now=T0, lookback=lookback)
    assert found == []  # once, not every poll
    stale = RunsPage(runs=(run(2, T0), run(9, T0 - timedelta(minutes=10))), etag=None)
    cursor, found = advance(cursor, stale, repository="acme/api", now=T0, lookback=lookback)
    assert found == []  # far older than the cursor: not a late arrival, not reported again
