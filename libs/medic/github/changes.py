"""Changing a repository through GitHub's API, for fix pull requests: read files at a commit,
write a tree and a commit on top of it, point a branch at it, open and label the pull request,
and read the checks of its head.

Every write goes through the Git data API with the client's credentials (the App's installation
token in production): a push made with a workflow's own ``GITHUB_TOKEN`` would not start CI.
Nothing here can move an existing branch: refs are only ever created, under a name the caller
chooses, so a default or protected branch is never written.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pydantic import BaseModel, ConfigDict

from medic.github.client import GitHubClient, _split, etag_after
from medic.github.errors import GitHubError, NotFound


class PullRequestRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    number: int
    head_ref: str
    head_sha: str
    html_url: str


class ChecksSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    total: int
    completed: int
    failed: tuple[str, ...]
    """Names of checks that concluded anything but success, neutral or skipped."""
    etag: str | None = None
    not_modified: bool = False
    """True when GitHub answered 304 to ``If-None-Match``: the counts are empty, the check runs
    are as they were in the read that gave the ETag, and the read cost no budget."""

    @property
    def done(self) -> bool:
        return self.total > 0 and self.completed == self.total


PASSING = frozenset({"success", "neutral", "skipped"})


def _json(response: Any) -> Any:
    return response.raw_response.json()


class RepositoryChanges:
    def __init__(self, github: GitHubClient) -> None:
        self.github = github

    async def file_text(self, repository: str, path: str, *, ref: str) -> str | None:
        """The file's text at ``ref``; None when it does not exist (or is not a file)."""
        owner, repo = _split(repository)
        try:
            response = await self.github.call(
                "GET /repos/{owner}/{repo}/contents/{path}",
                lambda: self.github.rest.repos.async_get_content(owner, repo, path, ref=ref),
            )
        except NotFound:
            return None
        body = _json(response)
        if not isinstance(body, dict) or body.get("type") != "file" or body.get("encoding") != "base64":
            return None
        try:
            return base64.b64decode(str(body.get("content", ""))).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None  # binary or malformed: a text edit cannot apply to it

    async def commit_files(self, repository: str, *, parent: str, files: dict[str, str], message: str) -> str:
        """A new commit on top of ``parent`` with ``files`` replaced; returns its sha."""
        owner, repo = _split(repository)
        commit = _json(
            await self.github.call(
                "GET /repos/{owner}/{repo}/git/commits/{commit_sha}",
                lambda: self.github.rest.git.async_get_commit(owner, repo, parent),
            )
        )
        entries = [
            {"path": p, "mode": "100644", "type": "blob", "content": t} for p, t in sorted(files.items())
        ]
        tree = _json(
            await self.github.call(
                "POST /repos/{owner}/{repo}/git/trees",
                lambda: self.github.rest.git.async_create_tree(
                    owner, repo, data={"base_tree": commit["tree"]["sha"], "tree": entries}
                ),
            )
        )
        made = _json(
            await self.github.call(
                "POST /repos/{owner}/{repo}/git/commits",
                lambda: self.github.rest.git.async_create_commit(
                    owner, repo, data={"message": message, "tree": tree["sha"], "parents": [parent]}
                ),
            )
        )
        return str(made["sha"])

    async def branch_sha(self, repository: str, branch: str) -> str | None:
        owner, repo = _split(repository)
        try:
            ref = _json(
                await self.github.call(
                    "GET /repos/{owner}/{repo}/git/ref/{ref}",
                    lambda: self.github.rest.git.async_get_ref(owner, repo, f"heads/{branch}"),
                )
            )
        except NotFound:
            return None
        return str(ref["object"]["sha"])

    async def create_branch(self, repository: str, branch: str, sha: str) -> None:
        """Create ``refs/heads/<branch>``; never updates an existing ref."""
        owner, repo = _split(repository)
        await self.github.call(
            "POST /repos/{owner}/{repo}/git/refs",
            lambda: self.github.rest.git.async_create_ref(
                owner, repo, data={"ref": f"refs/heads/{branch}", "sha": sha}
            ),
        )

    async def find_pull(self, repository: str, branch: str) -> PullRequestRef | None:
        owner, repo = _split(repository)
        pulls = _json(
            await self.github.call(
                "GET /repos/{owner}/{repo}/pulls",
                lambda: self.github.rest.pulls.async_list(owner, repo, head=f"{owner}:{branch}", state="all"),
            )
        )
        for pull in pulls if isinstance(pulls, list) else []:
            if pull.get("head", {}).get("ref") == branch:
                return _pull_ref(pull)
        return None

    async def open_pull(
        self, repository: str, *, branch: str, base: str, title: str, body: str
    ) -> PullRequestRef:
        owner, repo = _split(repository)
        pull = _json(
            await self.github.call(
                "POST /repos/{owner}/{repo}/pulls",
                lambda: self.github.rest.pulls.async_create(
                    owner, repo, data={"title": title, "head": branch, "base": base, "body": body}
                ),
            )
        )
        return _pull_ref(pull)

    async def add_labels(self, repository: str, number: int, labels: list[str]) -> None:
        owner, repo = _split(repository)
        await self.github.call(
            "POST /repos/{owner}/{repo}/issues/{issue_number}/labels",
            lambda: self.github.rest.issues.async_add_labels(owner, repo, number, data={"labels": labels}),
        )

    async def checks(self, repository: str, ref: str, *, etag: str | None = None) -> ChecksSummary:
        """The check runs of ``ref``, summed up; with ``etag``, check runs unchanged since the read
        that gave it answer ``not_modified`` (GitHub's 304, which costs no rate limit)."""
        owner, repo = _split(repository)
        response = await self.github.read(
            "GET /repos/{owner}/{repo}/commits/{ref}/check-runs",
            f"/repos/{owner}/{repo}/commits/{ref}/check-runs",
            headers={"If-None-Match": etag} if etag else None,
        )
        new_etag = etag_after(response, etag, what=f"the check runs of {ref[:12]}")
        if response.status_code == 304:
            return ChecksSummary(total=0, completed=0, failed=(), etag=new_etag, not_modified=True)
        body = response.json()
        runs = body.get("check_runs", []) if isinstance(body, dict) else []
        completed = [r for r in runs if r.get("status") == "completed"]
        failed = tuple(str(r.get("name", "?")) for r in completed if r.get("conclusion") not in PASSING)
        return ChecksSummary(total=len(runs), completed=len(completed), failed=failed, etag=new_etag)


def _pull_ref(pull: Any) -> PullRequestRef:
    if not isinstance(pull, dict):
        raise GitHubError("a pull request answer that is not an object")
    head = pull.get("head", {})
    return PullRequestRef(
        number=int(pull["number"]),
        head_ref=str(head.get("ref", "")),
        head_sha=str(head.get("sha", "")),
        html_url=str(pull.get("html_url", "")),
    )
