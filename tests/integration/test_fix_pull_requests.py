"""Fix pull requests against the sandbox GitHub over HTTP and a real bus: branch, commit, pull
request and label from typed edits; verified by the pull request's checks, green and red; every
weakening refused by its rule before GitHub is touched; one side effect across crashes."""

# ruff: noqa: F401, F811 - pytest hands each test the imported `executor` fixture by name
from __future__ import annotations

import asyncio

import pytest

from medic.events import ActionKind, FileEdit, ProposedAction, RemediationOutcome
from medic.github.changes import RepositoryChanges
from medic.services.executor.edits import fix_branch
from medic.services.executor.fix_pr import LABEL, open_fix_pr
from medic.services.executor.store import RemediationIntent, open_intents
from tests.integration.test_executor import (
    REPO,
    Executor,
    auto_order,
    count,
    executor,  # the fixture, shared with the executor's own tests
    finished,
    handle_again,
)
from tests.waiting import wait_until_caught_up

JEST = "module.exports = {\n  testTimeout: 30000,\n  coverageThreshold: { global: { lines: 80 } },\n};\n"


def fix(*edits: FileEdit) -> ProposedAction:
    return ProposedAction(kind=ActionKind.OPEN_FIX_PR, edits=edits)


SEED_FIX = fix(FileEdit(path="jest.config.js", old_text="testTimeout: 30000", new_text="testTimeout: 60000"))


def failing_run(executor: Executor) -> tuple[int, str]:
    sha = executor.sandbox.git.seed(
        REPO, {"jest.config.js": JEST, "src/app.test.js": "it('adds', () => {});\n"}
    )
    run = executor.sandbox.add_failed_run(REPO, "job_timeout", head_sha=sha)
    return run.id, sha


def branches(executor: Executor) -> list[str]:
    return [ref for (repo, ref) in executor.sandbox.git.refs if repo == REPO.lower() and "medic/" in ref]


async def test_a_fix_pull_request_is_opened_labelled_and_verified_green(executor: Executor) -> None:
    run_id, sha = failing_run(executor)
    order = auto_order(REPO, run_id, SEED_FIX)
    await executor.bus.publish(order)
    done = await finished(executor.bus)

    assert done.payload.outcome is RemediationOutcome.SUCCEEDED, done.payload.detail
    assert "opened pull request #1" in done.payload.detail and "checks passed" in done.payload.detail
    git = executor.sandbox.git
    branch = fix_branch(order.failure_id)
    assert branches(executor) == [f"refs/heads/{branch}"]
    head = git.refs[(REPO.lower(), f"refs/heads/{branch}")]
    assert git.commits[head].parents == (sha,)
    assert git.file_at(head, "jest.config.js") == JEST.replace("30000", "60000")
    assert git.file_at(head, "src/app.test.js") == "it('adds', () => {});\n"  # the rest of the tree kept
    [pull] = git.pulls_of(REPO)
    assert (pull.head, pull.base, pull.labels) == (branch, "main", [LABEL])
    assert "risk 1 &lt;= threshold 4" in pull.body  # quoted as data, not markup
    assert git.refs[(REPO.lower(), "refs/heads/main")] == sha  # the base branch never moves


async def test_red_checks_on_the_pull_request_make_the_remediation_failed(executor: Executor) -> None:
    executor.sandbox.git.check_outcome = "failure"
    run_id, _ = failing_run(executor)
    await executor.bus.publish(auto_order(REPO, run_id, SEED_FIX))
    done = await finished(executor.bus)
    assert done.payload.outcome is RemediationOutcome.FAILED
    assert "checks failed" in done.payload.detail


@pytest.mark.parametrize(
    ("edit", "rule"),
    [
        (
            FileEdit(path="jest.config.js", old_text="testTimeout: 30000", new_text="testTimeout: 90000"),
            "timeout-raised",
        ),
        (FileEdit(path="jest.config.js", old_text="lines: 80", new_text="lines: 40"), "coverage-lowered"),
        (FileEdit(path="src/app.test.js", old_text="it('adds'", new_text="xit('adds'"), "skip-added"),
        (FileEdit(path="src/app.test.js", old_text="it('adds', () => {});\n", new_text=""), "test-deleted"),
        (
            FileEdit(
                path=".github/workflows/ci.yml", old_text="run: npm test", new_text="run: npm test || true"
            ),
            "|| true",
        ),
    ],
)
async def test_each_weakening_is_refused_with_its_rule_and_touches_nothing(
    executor: Executor, edit: FileEdit, rule: str
) -> None:
    run_id, _ = failing_run(executor)
    await executor.bus.publish(auto_order(REPO, run_id, fix(edit)))
    done = await finished(executor.bus)
    assert done.payload.outcome is RemediationOutcome.FAILED
    assert f"refused by rule {rule!r}" in done.payload.detail
    assert branches(executor) == [] and executor.sandbox.git.pulls_of(REPO) == []


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (
            FileEdit(path="jest.config.js", old_text="testTimeout: 12345", new_text="x"),
            "is not in jest.config.js",
        ),
        (FileEdit(path="jest.config.js", old_text="0", new_text="1"), "occurs"),
        (FileEdit(path="missing.js", old_text="a", new_text="b"), "does not exist"),
    ],
)
async def test_edits_that_do_not_apply_exactly_once_are_refused_with_the_reason(
    executor: Executor, edit: FileEdit, reason: str
) -> None:
    run_id, _ = failing_run(executor)
    await executor.bus.publish(auto_order(REPO, run_id, fix(edit)))
    done = await finished(executor.bus)
    assert done.payload.outcome is RemediationOutcome.FAILED and reason in done.payload.detail
    assert branches(executor) == []


async def test_a_crash_before_the_call_and_one_after_it_give_exactly_one_pull_request(
    executor: Executor,
) -> None:
    # after: the branch and pull request were made, then the process died before recording it
    run_id, sha = failing_run(executor)
    order = auto_order(REPO, run_id, SEED_FIX)
    store = await open_intents(executor.bus.js, executor.bus.topology)
    intent = RemediationIntent(
        failure_id=order.failure_id, repository=REPO, run_id=run_id, action=SEED_FIX, baseline_attempt=1
    )
    await store.put(order.failure_id, intent)
    await open_fix_pr(
        RepositoryChanges(executor.github),
        failure_id=order.failure_id,
        repository=REPO,
        head_sha=sha,
        base_branch="main",
        edits=SEED_FIX.edits,
    )
    commits_before = len(executor.sandbox.git.commits)
    await executor.bus.publish(order)
    done = await finished(executor.bus)
    assert done.payload.outcome is RemediationOutcome.SUCCEEDED
    await handle_again(executor, "GateDecided")  # and a redelivery on top
    await wait_until_caught_up(executor.bus, "executor")
    assert len(executor.sandbox.git.pulls_of(REPO)) == 1
    assert len(branches(executor)) == 1
    assert len(executor.sandbox.git.commits) == commits_before  # no second commit either
    assert await count(executor.bus, "RemediationFinished") == 1


async def test_a_crash_between_started_and_the_call_opens_one_pull_request_on_redelivery(
    executor: Executor,
) -> None:
    run_id, _ = failing_run(executor)
    order = auto_order(REPO, run_id, SEED_FIX)
    store = await open_intents(executor.bus.js, executor.bus.topology)
    await store.put(
        order.failure_id,
        RemediationIntent(
            failure_id=order.failure_id, repository=REPO, run_id=run_id, action=SEED_FIX, baseline_attempt=1
        ),
    )
    await executor.bus.publish(order)
    done = await finished(executor.bus)
    assert done.payload.outcome is RemediationOutcome.SUCCEEDED
    assert len(executor.sandbox.git.pulls_of(REPO)) == 1 and len(branches(executor)) == 1
