"""Render store records as the full JSON objects GitHub sends (REST bodies and webhooks).

Full rather than minimal objects: clients written against the sandbox must also survive the
real API, and the contract tests validate every body against GitHub's own schemas. REST URLs
point back at the sandbox (``api``) so a client can follow them; ``html_url`` looks like github.com.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from medic.sandbox.github_store import Attempt, Job, Repository, Run, stable_id

JSON = dict[str, Any]

HTML_BASE = "https://github.com"


@dataclass(frozen=True)
class Links:
    api: str
    """Base of the REST API as the caller sees it (scheme, host and any mount prefix), no trailing slash."""
    html: str = HTML_BASE


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def node_id(kind: str, number: int) -> str:
    return base64.b64encode(f"0{len(kind)}:{kind}{number}".encode()).decode().rstrip("=")


def user(login: str, links: Links, *, kind: str = "User") -> JSON:
    api = f"{links.api}/users/{login}"
    uid = stable_id(f"user:{login}", digits=8)
    return {
        "login": login,
        "id": uid,
        "node_id": node_id(kind, uid),
        "avatar_url": f"https://avatars.githubusercontent.com/u/{uid}?v=4",
        "gravatar_id": "",
        "url": api,
        "html_url": f"{links.html}/{login}",
        "followers_url": f"{api}/followers",
        "following_url": f"{api}/following{{/other_user}}",
        "gists_url": f"{api}/gists{{/gist_id}}",
        "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{api}/subscriptions",
        "organizations_url": f"{api}/orgs",
        "repos_url": f"{api}/repos",
        "events_url": f"{api}/events{{/privacy}}",
        "received_events_url": f"{api}/received_events",
        "type": kind,
        "site_admin": False,
    }


def repository_lite(repo: Repository, links: Links) -> JSON:
    api = f"{links.api}/repos/{repo.full_name}"
    templated = {
        "archive_url": "{archive_format}{/ref}",
        "assignees_url": "assignees{/user}",
        "blobs_url": "git/blobs{/sha}",
        "branches_url": "branches{/branch}",
        "collaborators_url": "collaborators{/collaborator}",
        "comments_url": "comments{/number}",
        "commits_url": "commits{/sha}",
        "compare_url": "compare/{base}...{head}",
        "contents_url": "contents/{+path}",
        "git_commits_url": "git/commits{/sha}",
        "git_refs_url": "git/refs{/sha}",
        "git_tags_url": "git/tags{/sha}",
        "issue_comment_url": "issues/comments{/number}",
        "issue_events_url": "issues/events{/number}",
        "issues_url": "issues{/number}",
        "keys_url": "keys{/key_id}",
        "labels_url": "labels{/name}",
        "milestones_url": "milestones{/number}",
        "notifications_url": "notifications{?since,all,participating}",
        "pulls_url": "pulls{/number}",
        "releases_url": "releases{/id}",
        "statuses_url": "statuses/{sha}",
        "trees_url": "git/trees{/sha}",
    }
    plain = [
        "contributors",
        "deployments",
        "downloads",
        "events",
        "forks",
        "hooks",
        "languages",
        "merges",
        "stargazers",
        "subscribers",
        "subscription",
        "tags",
        "teams",
    ]
    body: JSON = {
        "id": repo.id,
        "node_id": node_id("Repository", repo.id),
        "name": repo.name,
        "full_name": repo.full_name,
        "owner": user(repo.owner, links, kind="Organization"),
        "private": repo.private,
        "html_url": f"{links.html}/{repo.full_name}",
        "description": f"{repo.name}: a service watched by ci-medic",
        "fork": False,
        "url": api,
    }
    body.update({key: f"{api}/{suffix}" for key, suffix in templated.items()})
    body["archive_url"] = f"{api}/{{archive_format}}{{/ref}}"
    body.update({f"{name}_url": f"{api}/{name}" for name in plain})
    return body


def _repository_details(repo: Repository, links: Links) -> JSON:
    created = "2024-03-14T09:26:53Z"
    return {
        "git_url": f"git://github.com/{repo.full_name}.git",
        "ssh_url": f"git@github.com:{repo.full_name}.git",
        "clone_url": f"{links.html}/{repo.full_name}.git",
        "svn_url": f"{links.html}/{repo.full_name}",
        "mirror_url": None,
        "homepage": None,
        "language": "Python",
        "forks_count": 0,
        "stargazers_count": 7,
        "watchers_count": 7,
        "size": 2048,
        "default_branch": repo.default_branch,
        "open_issues_count": 3,
        "is_template": False,
        "topics": ["ci", "github-actions"],
        "has_issues": True,
        "has_projects": False,
        "has_wiki": False,
        "has_pages": False,
        "has_downloads": True,
        "archived": False,
        "disabled": False,
        "visibility": "private" if repo.private else "public",
        "pushed_at": created,
        "created_at": created,
        "updated_at": created,
        "license": None,
        "forks": 0,
        "open_issues": 3,
        "watchers": 7,
        "web_commit_signoff_required": False,
        "custom_properties": {},
    }


def minimal_repository(repo: Repository, links: Links) -> JSON:
    """The REST ``minimal-repository`` object embedded in workflow runs."""
    return repository_lite(repo, links) | _repository_details(repo, links)


def full_repository(repo: Repository, links: Links) -> JSON:
    """The webhook ``repository`` object (octokit ``common/repository.schema.json``)."""
    return minimal_repository(repo, links)


def _head_commit(run: Run) -> JSON:
    return {
        "id": run.head_sha,
        "tree_id": run.head_sha[::-1],
        "message": run.commit_message,
        "timestamp": iso(run.attempts[0].created_at),
        "author": {"name": "Mona Lisa Octocat", "email": "mona@example.com"},
        "committer": {"name": "GitHub", "email": "noreply@github.com"},
    }


def _pull_requests(run: Run, links: Links) -> list[JSON]:
    repo_ref = {
        "id": run.repository.id,
        "url": f"{links.api}/repos/{run.repository.full_name}",
        "name": run.repository.name,
    }
    return [
        {
            "url": f"{links.api}/repos/{run.repository.full_name}/pulls/{number}",
            "id": stable_id(f"pr:{run.repository.full_name}#{number}"),
            "number": number,
            "head": {"ref": run.head_branch, "sha": run.head_sha, "repo": repo_ref},
            "base": {"ref": run.repository.default_branch, "sha": run.head_sha[::-1], "repo": repo_ref},
        }
        for number in run.pull_request_numbers
    ]


def _run_core(run: Run, attempt: Attempt, links: Links) -> JSON:
    """Fields shared by the REST and webhook shapes of a workflow run."""
    api = f"{links.api}/repos/{run.repository.full_name}/actions/runs/{run.id}"
    check_suite_id = stable_id(f"suite:{run.id}:{attempt.number}", digits=10)
    actor = user(run.actor_login, links)
    previous = None if attempt.number == 1 else f"{api}/attempts/{attempt.number - 1}"
    return {
        "id": run.id,
        "name": run.workflow_name,
        "node_id": node_id("WorkflowRun", run.id),
        "check_suite_id": check_suite_id,
        "check_suite_node_id": node_id("CheckSuite", check_suite_id),
        "head_branch": run.head_branch,
        "head_sha": run.head_sha,
        "path": run.workflow_path,
        "display_title": run.commit_message.splitlines()[0] if run.commit_message else run.workflow_name,
        "run_number": run.run_number,
        "run_attempt": attempt.number,
        "event": run.event,
        "status": attempt.status,
        "conclusion": attempt.conclusion,
        "workflow_id": run.workflow_id,
        "url": api,
        "html_url": f"{links.html}/{run.repository.full_name}/actions/runs/{run.id}",
        "pull_requests": _pull_requests(run, links),
        "created_at": iso(attempt.created_at),
        "updated_at": iso(attempt.updated_at),
        "actor": actor,
        "triggering_actor": actor,
        "run_started_at": iso(attempt.run_started_at),
        "jobs_url": f"{api}/jobs",
        "logs_url": f"{api}/logs",
        "check_suite_url": f"{links.api}/repos/{run.repository.full_name}/check-suites/{check_suite_id}",
        "artifacts_url": f"{api}/artifacts",
        "cancel_url": f"{api}/cancel",
        "rerun_url": f"{api}/rerun",
        "previous_attempt_url": previous,
        "workflow_url": f"{links.api}/repos/{run.repository.full_name}/actions/workflows/{run.workflow_id}",
        "head_commit": _head_commit(run),
        "referenced_workflows": [],
    }


def workflow_run(run: Run, attempt: Attempt, links: Links) -> JSON:
    """REST ``workflow-run``."""
    return _run_core(run, attempt, links) | {
        "repository": minimal_repository(run.repository, links),
        "head_repository": minimal_repository(run.repository, links),
        "head_repository_id": run.repository.id,
    }


def workflow_run_for_webhook(run: Run, attempt: Attempt, links: Links) -> JSON:
    """Webhook ``workflow_run`` (octokit ``common/workflow-run.schema.json``: no extra keys allowed)."""
    return _run_core(run, attempt, links) | {
        "repository": repository_lite(run.repository, links),
        "head_repository": repository_lite(run.repository, links),
    }


def job(job: Job, run: Run, links: Links) -> JSON:
    """REST ``job``."""
    api = f"{links.api}/repos/{run.repository.full_name}"
    return {
        "id": job.id,
        "run_id": job.run_id,
        "run_url": f"{api}/actions/runs/{job.run_id}",
        "run_attempt": job.run_attempt,
        "node_id": node_id("CheckRun", job.id),
        "head_sha": run.head_sha,
        "url": f"{api}/actions/jobs/{job.id}",
        "html_url": f"{links.html}/{run.repository.full_name}/actions/runs/{job.run_id}/job/{job.id}",
        "status": job.status,
        "conclusion": job.conclusion,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "completed_at": iso(job.completed_at),
        "name": job.name,
        "steps": [
            {
                "name": step.name,
                "status": "completed" if job.status == "completed" else "queued",
                "conclusion": step.conclusion if job.status == "completed" else None,
                "number": step.number,
                "started_at": iso(step.started_at),
                "completed_at": iso(step.completed_at),
            }
            for step in job.steps
        ],
        "check_run_url": f"{api}/check-runs/{job.id}",
        "labels": ["ubuntu-latest"],
        "runner_id": job.runner_id,
        "runner_name": job.runner_name,
        "runner_group_id": 0 if job.runner_id else None,
        "runner_group_name": "GitHub Actions" if job.runner_id else None,
        "workflow_name": run.workflow_name,
        "head_branch": run.head_branch,
    }


def workflow(run: Run, links: Links) -> JSON:
    created = "2024-03-14T09:30:00Z"
    api = f"{links.api}/repos/{run.repository.full_name}/actions/workflows/{run.workflow_id}"
    html = f"{links.html}/{run.repository.full_name}"
    return {
        "badge_url": f"{html}/workflows/{run.workflow_name}/badge.svg",
        "created_at": created,
        "html_url": f"{html}/blob/{run.repository.default_branch}/{run.workflow_path}",
        "id": run.workflow_id,
        "name": run.workflow_name,
        "node_id": node_id("Workflow", run.workflow_id),
        "path": run.workflow_path,
        "state": "active",
        "updated_at": created,
        "url": api,
    }


def workflow_run_event(action: str, run: Run, attempt: Attempt, links: Links) -> JSON:
    """The body of a ``workflow_run`` webhook delivery."""
    return {
        "action": action,
        "repository": full_repository(run.repository, links),
        "sender": user(run.actor_login, links),
        "workflow": workflow(run, links),
        "workflow_run": workflow_run_for_webhook(run, attempt, links),
    }


def not_found() -> JSON:
    return {"message": "Not Found", "documentation_url": "https://docs.github.com/rest", "status": "404"}
