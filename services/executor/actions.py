"""The typed actions the executor can take. There is no other way to touch a repository:
no shell, no free-form command, nothing a model or a log line can widen."""

from __future__ import annotations

from dataclasses import dataclass

from medic.events import ActionKind, ProposedAction
from medic.github.changes import RepositoryChanges
from medic.github.client import GitHubClient
from medic.services.executor.fix_pr import FixRefused, open_fix_pr


class ActionRefused(Exception):
    """The action cannot be carried out as asked; the failure goes back to people."""


@dataclass(frozen=True)
class Target:
    repository: str
    run_id: int
    failure_id: str = ""
    reasons: tuple[str, ...] = ()
    """The gate's reasons, for a fix pull request's body."""
    approved_by: str | None = None


@dataclass(frozen=True)
class Performed:
    detail: str
    checks_ref: str | None = None
    """For a fix pull request: the head commit whose checks decide the outcome."""


async def perform(action: ProposedAction, target: Target, github: GitHubClient) -> Performed:
    """Carry out one action; say what was done (and, for a fix, which commit's checks to wait for)."""
    match action.kind:
        case ActionKind.RERUN_FAILED_JOBS:
            await github.rerun_failed_jobs(target.repository, target.run_id)
            return Performed("re-ran the failed jobs")
        case ActionKind.RERUN_WORKFLOW:
            await github.rerun_workflow(target.repository, target.run_id)
            return Performed("re-ran the whole workflow")
        case ActionKind.CLEAR_CACHE:
            if not action.cache_key:
                raise ActionRefused("clear_cache needs a cache key")
            deleted = await github.delete_caches(target.repository, action.cache_key)
            await github.rerun_failed_jobs(target.repository, target.run_id)
            return Performed(
                f"deleted {deleted} cache(s) under {action.cache_key!r} and re-ran the failed jobs"
            )
        case ActionKind.OPEN_FIX_PR:
            return await _fix(action, target, github)
        case ActionKind.NONE:
            raise ActionRefused("no action was proposed")


async def _fix(action: ProposedAction, target: Target, github: GitHubClient) -> Performed:
    if not action.edits:
        raise ActionRefused("fix pull request refused: the fix proposes no edits")
    run = await github.get_run(target.repository, target.run_id)
    try:
        pull = await open_fix_pr(
            RepositoryChanges(github),
            failure_id=target.failure_id,
            repository=target.repository,
            head_sha=run.head_sha,
            base_branch=run.head_branch,
            edits=action.edits,
            reasons=target.reasons,
            approved_by=target.approved_by,
        )
    except FixRefused as exc:
        raise ActionRefused(f"fix pull request refused: {exc}") from exc
    return Performed(f"opened pull request #{pull.number} ({pull.html_url})", checks_ref=pull.head_sha)
