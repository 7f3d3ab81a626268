"""The sandbox GitHub's repository contents: commits, trees, refs, pull requests, labels, checks.

Enough of GitHub's Git data, contents, pulls, labels and check-runs APIs for a fix pull request:
read a file at the failing commit, write a tree on top of it, commit, point a branch at the
commit, open the pull request, label it, and see the checks of its head conclude. Trees are
kept flat (path -> text): the API shapes are GitHub's, the storage is the simplest that works.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import Body, FastAPI, Request, Response
from fastapi.responses import JSONResponse

from medic.sandbox import github_payloads as payloads
from medic.sandbox.github_http import conditional, github_error, links_for
from medic.sandbox.github_store import Repository, stable_id

if TYPE_CHECKING:
    from medic.sandbox.github import SandboxGitHub

JSON = dict[str, Any]
CheckOutcome = Literal["success", "failure", "pending"]


def _sha(kind: str, content: str) -> str:
    return hashlib.sha1(f"{kind}\0{content}".encode(), usedforsecurity=False).hexdigest()


@dataclass
class Commit:
    sha: str
    tree: str
    parents: tuple[str, ...]
    message: str
    at: datetime


@dataclass
class PullRequest:
    number: int
    repository: str
    title: str
    body: str
    head: str
    base: str
    head_sha: str
    created_at: datetime
    labels: list[str] = field(default_factory=list)


@dataclass
class CheckRun:
    id: int
    head_sha: str
    name: str
    status: str = "queued"
    conclusion: str | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    completed_at: datetime | None = None


@dataclass
class GitStore:
    trees: dict[str, dict[str, str]] = field(default_factory=dict)
    """tree sha -> {path: text}"""
    commits: dict[str, Commit] = field(default_factory=dict)
    refs: dict[tuple[str, str], str] = field(default_factory=dict)
    """(repository lower case, ``refs/heads/x``) -> commit sha"""
    pulls: dict[str, list[PullRequest]] = field(default_factory=dict)
    checks: dict[str, list[CheckRun]] = field(default_factory=dict)
    check_outcome: CheckOutcome = "success"
    """How the checks of a pull request's head conclude (tests set it per scenario)."""
    _numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _check_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(7_000_001))

    def tree(self, files: dict[str, str]) -> str:
        sha = _sha("tree", repr(sorted(files.items())))
        self.trees[sha] = dict(files)
        return sha

    def commit(self, tree: str, parents: tuple[str, ...], message: str) -> Commit:
        sha = _sha("commit", f"{tree}|{parents}|{message}|{len(self.commits)}")
        made = Commit(sha, tree, parents, message, datetime.now(UTC).replace(microsecond=0))
        self.commits[sha] = made
        return made

    def seed(self, repository: str, files: dict[str, str], *, branch: str = "main") -> str:
        """A commit holding ``files`` at the tip of ``branch``; returns its sha (use as head_sha)."""
        made = self.commit(self.tree(files), (), "seed")
        self.refs[(repository.lower(), f"refs/heads/{branch}")] = made.sha
        return made.sha

    def file_at(self, commit_sha: str, path: str) -> str | None:
        found = self.commits.get(commit_sha)
        return None if found is None else self.trees[found.tree].get(path)

    def pulls_of(self, repository: str) -> list[PullRequest]:
        return self.pulls.setdefault(repository.lower(), [])


def _blob_sha(text: str) -> str:
    return hashlib.sha1(f"blob {len(text.encode())}\0{text}".encode(), usedforsecurity=False).hexdigest()


def _resolve(git: GitStore, repository: str, ref: str | None) -> str | None:
    """A commit sha from a sha, a branch name or ``refs/heads/...``."""
    if ref is None:
        ref = "main"
    if ref in git.commits:
        return ref
    for name in (ref, f"refs/heads/{ref}"):
        if (repository.lower(), name) in git.refs:
            return git.refs[(repository.lower(), name)]
    return None


def register_git_routes(app: FastAPI, sandbox: SandboxGitHub) -> None:
    git: GitStore = sandbox.git

    def repo_of(owner: str, name: str) -> Repository | None:
        return sandbox.store.find_repository(owner, name)

    @app.get("/repos/{owner}/{repo}/contents/{path:path}")
    async def get_content(
        request: Request, owner: str, repo: str, path: str, ref: str | None = None
    ) -> Response:
        found = repo_of(owner, repo)
        sha = None if found is None else _resolve(git, found.full_name, ref)
        text = None if sha is None else git.file_at(sha, path)
        if found is None or text is None:
            return github_error(404, "Not Found")
        api = f"{links_for(request).api}/repos/{found.full_name}/contents/{path}"
        html = f"https://github.com/{found.full_name}/blob/{ref or 'main'}/{path}"
        git_url = f"{links_for(request).api}/repos/{found.full_name}/git/blobs/{_blob_sha(text)}"
        body = {
            "type": "file",
            "encoding": "base64",
            "size": len(text.encode()),
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "content": base64.b64encode(text.encode()).decode(),
            "sha": _blob_sha(text),
            "url": api,
            "git_url": git_url,
            "html_url": html,
            "download_url": None,
            "_links": {"self": api, "git": git_url, "html": html},
        }
        return JSONResponse(body)

    @app.post("/repos/{owner}/{repo}/git/trees", status_code=201)
    async def create_tree(owner: str, repo: str, spec: Annotated[JSON, Body()]) -> Response:
        found = repo_of(owner, repo)
        if found is None:
            return github_error(404, "Not Found")
        base: dict[str, str] = {}
        if (base_tree := spec.get("base_tree")) is not None:
            if base_tree not in git.trees:
                return github_error(422, "Validation Failed")
            base = dict(git.trees[base_tree])
        entries = spec.get("tree")
        if not isinstance(entries, list) or not entries:
            return github_error(422, "Validation Failed")
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
                return github_error(422, "Validation Failed")
            if entry.get("sha", "") is None:
                base.pop(entry["path"], None)
            elif isinstance(entry.get("content"), str):
                base[entry["path"]] = entry["content"]
            else:
                return github_error(422, "Validation Failed")
        sha = git.tree(base)
        tree = [
            {"path": p, "mode": "100644", "type": "blob", "sha": _blob_sha(t), "size": len(t.encode())}
            for p, t in sorted(base.items())
        ]
        return JSONResponse({"sha": sha, "url": f"/git/trees/{sha}", "tree": tree, "truncated": False}, 201)

    @app.post("/repos/{owner}/{repo}/git/commits", status_code=201)
    async def create_commit(
        request: Request, owner: str, repo: str, spec: Annotated[JSON, Body()]
    ) -> Response:
        found = repo_of(owner, repo)
        if found is None:
            return github_error(404, "Not Found")
        tree, message, parents = spec.get("tree"), spec.get("message"), spec.get("parents", [])
        if (
            tree not in git.trees
            or not isinstance(message, str)
            or not isinstance(parents, list)
            or any(p not in git.commits for p in parents)
        ):
            return github_error(422, "Validation Failed")
        made = git.commit(str(tree), tuple(parents), message)
        return JSONResponse(_commit_json(made, found, request), status_code=201)

    @app.get("/repos/{owner}/{repo}/git/ref/{ref:path}")
    async def get_ref(request: Request, owner: str, repo: str, ref: str) -> Response:
        found = repo_of(owner, repo)
        sha = None if found is None else git.refs.get((found.full_name.lower(), f"refs/{ref}"))
        if found is None or sha is None:
            return github_error(404, "Not Found")
        return JSONResponse(_ref_json(f"refs/{ref}", sha, found, request))

    @app.post("/repos/{owner}/{repo}/git/refs", status_code=201)
    async def create_ref(request: Request, owner: str, repo: str, spec: Annotated[JSON, Body()]) -> Response:
        found = repo_of(owner, repo)
        if found is None:
            return github_error(404, "Not Found")
        ref, sha = spec.get("ref"), spec.get("sha")
        if (
            not isinstance(ref, str)
            or not ref.startswith("refs/")
            or ref.count("/") < 2
            or sha not in git.commits
        ):
            return github_error(422, "Validation Failed")
        key = (found.full_name.lower(), ref)
        if key in git.refs:
            return github_error(422, "Reference already exists")
        git.refs[key] = str(sha)
        return JSONResponse(_ref_json(ref, str(sha), found, request), status_code=201)

    @app.get("/repos/{owner}/{repo}/pulls")
    async def list_pulls(
        request: Request, owner: str, repo: str, head: str | None = None, state: str = "open"
    ) -> Response:
        found = repo_of(owner, repo)
        if found is None:
            return github_error(404, "Not Found")
        wanted = None if head is None else head.split(":", 1)[-1]
        pulls = [p for p in git.pulls_of(found.full_name) if wanted in (None, p.head)]
        return JSONResponse([_pull_json(p, found, request, simple=True) for p in pulls])

    @app.post("/repos/{owner}/{repo}/pulls", status_code=201)
    async def create_pull(request: Request, owner: str, repo: str, spec: Annotated[JSON, Body()]) -> Response:
        found = repo_of(owner, repo)
        if found is None:
            return github_error(404, "Not Found")
        head, base, title = spec.get("head"), spec.get("base"), spec.get("title")
        if not all(isinstance(v, str) and v for v in (head, base, title)):
            return github_error(422, "Validation Failed")
        head_sha = _resolve(git, found.full_name, str(head).split(":", 1)[-1])
        if head_sha is None or _resolve(git, found.full_name, str(base)) is None:
            return github_error(422, "Validation Failed")
        if any(p.head == head for p in git.pulls_of(found.full_name)):
            return github_error(422, f"A pull request already exists for {head}.")
        pull = PullRequest(
            number=next(git._numbers),
            repository=found.full_name,
            title=str(title),
            body=str(spec.get("body") or ""),
            head=str(head),
            base=str(base),
            head_sha=head_sha,
            created_at=datetime.now(UTC).replace(microsecond=0),
        )
        git.pulls_of(found.full_name).append(pull)
        _start_checks(sandbox, head_sha)
        return JSONResponse(_pull_json(pull, found, request, simple=False), status_code=201)

    @app.post("/repos/{owner}/{repo}/issues/{issue_number}/labels")
    async def add_labels(
        request: Request, owner: str, repo: str, issue_number: int, spec: Annotated[JSON, Body()]
    ) -> Response:
        found = repo_of(owner, repo)
        pull = (
            None
            if found is None
            else next((p for p in git.pulls_of(found.full_name) if p.number == issue_number), None)
        )
        labels = spec.get("labels")
        if found is None or pull is None:
            return github_error(404, "Not Found")
        if not isinstance(labels, list) or not all(isinstance(n, str) and n for n in labels):
            return github_error(422, "Validation Failed")
        pull.labels += [n for n in labels if n not in pull.labels]
        return JSONResponse([_label_json(n, found, request) for n in pull.labels])

    @app.get("/repos/{owner}/{repo}/commits/{ref}/check-runs")
    async def check_runs(request: Request, owner: str, repo: str, ref: str) -> Response:
        found = repo_of(owner, repo)
        sha = None if found is None else _resolve(git, found.full_name, ref)
        if found is None or sha is None:
            return github_error(404, "Not Found")
        runs = git.checks.get(sha, [])
        body = {"total_count": len(runs), "check_runs": [_check_json(c, request) for c in runs]}
        # the ETag is the body's: any change of a check run of the ref (status, conclusion) changes it
        return conditional(request, json.dumps(body).encode(), {})


def register_git_beyond_contract(app: FastAPI, sandbox: SandboxGitHub) -> None:
    """``GET .../git/commits/{sha}`` (a commit's tree): documented by GitHub, not in the copied subset."""
    git: GitStore = sandbox.git

    def repo_of(owner: str, name: str) -> Repository | None:
        return sandbox.store.find_repository(owner, name)

    @app.get("/repos/{owner}/{repo}/git/commits/{commit_sha}")
    async def get_commit(request: Request, owner: str, repo: str, commit_sha: str) -> Response:
        found = repo_of(owner, repo)
        made = git.commits.get(commit_sha)
        if found is None or made is None:
            return github_error(404, "Not Found")
        return JSONResponse(_commit_json(made, found, request))


def _start_checks(sandbox: SandboxGitHub, head_sha: str) -> None:
    """CI starts on the pull request's head and concludes after the sandbox's re-run delay."""
    git = sandbox.git
    check = CheckRun(id=next(git._check_ids), head_sha=head_sha, name="test")
    git.checks.setdefault(head_sha, []).append(check)
    outcome = git.check_outcome

    async def conclude() -> None:
        await asyncio.sleep(sandbox.rerun_delay_seconds / 3)
        check.status = "in_progress"
        await asyncio.sleep(sandbox.rerun_delay_seconds * 2 / 3)
        if outcome != "pending":
            check.status, check.conclusion = "completed", outcome
            check.completed_at = datetime.now(UTC)

    sandbox.spawn(conclude())


def _commit_json(made: Commit, repo: Repository, request: Request) -> JSON:
    api = f"{links_for(request).api}/repos/{repo.full_name}/git/commits/{made.sha}"
    person = {
        "name": "ci-medic[bot]",
        "email": "ci-medic@users.noreply.github.com",
        "date": payloads.iso(made.at),
    }
    return {
        "sha": made.sha,
        "node_id": payloads.node_id("Commit", stable_id(made.sha)),
        "url": api,
        "html_url": f"https://github.com/{repo.full_name}/commit/{made.sha}",
        "author": person,
        "committer": person,
        "message": made.message,
        "tree": {
            "sha": made.tree,
            "url": f"{links_for(request).api}/repos/{repo.full_name}/git/trees/{made.tree}",
        },
        "parents": [
            {
                "sha": p,
                "url": f"{links_for(request).api}/repos/{repo.full_name}/git/commits/{p}",
                "html_url": f"https://github.com/{repo.full_name}/commit/{p}",
            }
            for p in made.parents
        ],
        "verification": {
            "verified": False,
            "reason": "unsigned",
            "signature": None,
            "payload": None,
            "verified_at": None,
        },
    }


def _ref_json(ref: str, sha: str, repo: Repository, request: Request) -> JSON:
    api = f"{links_for(request).api}/repos/{repo.full_name}"
    return {
        "ref": ref,
        "node_id": payloads.node_id("Ref", stable_id(ref + sha)),
        "url": f"{api}/git/{ref}",
        "object": {"type": "commit", "sha": sha, "url": f"{api}/git/commits/{sha}"},
    }


def _label_json(name: str, repo: Repository, request: Request) -> JSON:
    number = stable_id(f"label:{repo.full_name}:{name}")
    return {
        "id": number,
        "node_id": payloads.node_id("Label", number),
        "url": f"{links_for(request).api}/repos/{repo.full_name}/labels/{name}",
        "name": name,
        "description": None,
        "color": "0e8a16",
        "default": False,
    }


def _check_json(check: CheckRun, request: Request) -> JSON:
    return {
        "id": check.id,
        "node_id": payloads.node_id("CheckRun", check.id),
        "head_sha": check.head_sha,
        "external_id": "",
        "name": check.name,
        "url": f"{links_for(request).api}/check-runs/{check.id}",
        "html_url": f"https://github.com/checks/{check.id}",
        "details_url": None,
        "status": check.status,
        "conclusion": check.conclusion,
        "started_at": payloads.iso(check.started_at),
        "completed_at": payloads.iso(check.completed_at),
        "output": {
            "title": None,
            "summary": None,
            "text": None,
            "annotations_count": 0,
            "annotations_url": f"{links_for(request).api}/check-runs/{check.id}/annotations",
        },
        "check_suite": {"id": check.id + 1},
        "app": None,
        "pull_requests": [],
    }


def _pull_json(pull: PullRequest, repo: Repository, request: Request, *, simple: bool) -> JSON:
    links = links_for(request)
    api = f"{links.api}/repos/{repo.full_name}"
    html = f"https://github.com/{repo.full_name}/pull/{pull.number}"
    number_id = stable_id(f"pull:{repo.full_name}:{pull.number}")
    owner = payloads.user(repo.owner, links, kind="Organization")
    bot = payloads.user("ci-medic[bot]", links, kind="Bot")
    repository = payloads.full_repository(repo, links)
    when = payloads.iso(pull.created_at)
    body: JSON = {
        "url": f"{api}/pulls/{pull.number}",
        "id": number_id,
        "node_id": payloads.node_id("PullRequest", number_id),
        "html_url": html,
        "diff_url": f"{html}.diff",
        "patch_url": f"{html}.patch",
        "issue_url": f"{api}/issues/{pull.number}",
        "commits_url": f"{api}/pulls/{pull.number}/commits",
        "review_comments_url": f"{api}/pulls/{pull.number}/comments",
        "review_comment_url": f"{api}/pulls/comments{{/number}}",
        "comments_url": f"{api}/issues/{pull.number}/comments",
        "statuses_url": f"{api}/statuses/{pull.head_sha}",
        "number": pull.number,
        "state": "open",
        "locked": False,
        "title": pull.title,
        "user": bot,
        "body": pull.body,
        "labels": [_label_json(n, repo, request) for n in pull.labels],
        "milestone": None,
        "active_lock_reason": None,
        "created_at": when,
        "updated_at": when,
        "closed_at": None,
        "merged_at": None,
        "merge_commit_sha": None,
        "assignee": None,
        "assignees": [],
        "requested_reviewers": [],
        "requested_teams": [],
        "head": {
            "label": f"{repo.owner}:{pull.head}",
            "ref": pull.head,
            "sha": pull.head_sha,
            "user": owner,
            "repo": repository,
        },
        "base": {
            "label": f"{repo.owner}:{pull.base}",
            "ref": pull.base,
            "sha": pull.head_sha,
            "user": owner,
            "repo": repository,
        },
        "_links": {
            name: {"href": href}
            for name, href in {
                "self": f"{api}/pulls/{pull.number}",
                "html": html,
                "issue": f"{api}/issues/{pull.number}",
                "comments": f"{api}/issues/{pull.number}/comments",
                "review_comments": f"{api}/pulls/{pull.number}/comments",
                "review_comment": f"{api}/pulls/comments{{/number}}",
                "commits": f"{api}/pulls/{pull.number}/commits",
                "statuses": f"{api}/statuses/{pull.head_sha}",
            }.items()
        },
        "author_association": "NONE",
        "auto_merge": None,
        "draft": False,
    }
    if not simple:
        body |= {
            "merged": False,
            "mergeable": None,
            "rebaseable": None,
            "mergeable_state": "unknown",
            "merged_by": None,
            "comments": 0,
            "review_comments": 0,
            "maintainer_can_modify": False,
            "commits": 1,
            "additions": 1,
            "deletions": 1,
            "changed_files": 1,
        }
    return body
