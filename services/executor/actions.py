"""The typed actions the executor can take. There is no other way to touch a repository:
no shell, no free-form command, nothing a model or a log line can widen."""

from __future__ import annotations

from dataclasses import dataclass

from medic.events import ActionKind, ProposedAction
from medic.github.client import GitHubClient


class ActionRefused(Exception):
    """The action cannot be carried out as asked; the failure goes back to people."""


@dataclass(frozen=True)
class Target:
    repository: str
    run_id: int


async def perform(action: ProposedAction, target: Target, github: GitHubClient) -> str:
    """Carry out one action; return a short description of what was done."""
    match action.kind:
        case ActionKind.RERUN_FAILED_JOBS:
            await github.rerun_failed_jobs(target.repository, target.run_id)
            return "re-ran the failed jobs"
        case ActionKind.RERUN_WORKFLOW:
            await github.rerun_workflow(target.repository, target.run_id)
            return "re-ran the whole workflow"
        case ActionKind.CLEAR_CACHE:
            if not action.cache_key:
                raise ActionRefused("clear_cache needs a cache key")
            deleted = await github.delete_caches(target.repository, action.cache_key)
            await github.rerun_failed_jobs(target.repository, target.run_id)
            return f"deleted {deleted} cache(s) under {action.cache_key!r} and re-ran the failed jobs"
        case ActionKind.OPEN_FIX_PR:
            raise ActionRefused("opening a fix pull request is not available yet: a person must fix this")
        case ActionKind.NONE:
            raise ActionRefused("no action was proposed")
