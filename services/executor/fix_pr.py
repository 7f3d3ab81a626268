"""Opening a fix pull request from a failure's typed edits, safely and once.

Order of checks: the weakening rules read the edits alone (no GitHub call is spent on a change
that would be refused); then each edit must apply exactly at the failing commit. The branch is
``medic/fix-<short failure id>``, created from a new commit whose parent is the failing commit;
an existing branch or pull request for the failure is found and reused, so a crash at any
point and a redelivery give one branch, one commit and one pull request.
"""

from __future__ import annotations

from medic.events import FileEdit
from medic.github.changes import PullRequestRef, RepositoryChanges
from medic.github.errors import GitHubError
from medic.services.executor.edits import EditRefused, apply_edits, fix_branch
from medic.services.executor.weakening import weakenings

LABEL = "ci-medic"


class FixRefused(Exception):
    """The fix cannot be opened as proposed; the message says which rule or which edit."""


def pull_body(reasons: tuple[str, ...], edits: tuple[FileEdit, ...], approved_by: str | None) -> str:
    """The analysis and the gate's reasons, for the reviewer (all of it is data, not markup)."""
    lines = ["ci-medic proposes this change to fix a failed CI run.", "", "Why it was allowed:"]
    lines += [f"- {_plain(reason)}" for reason in reasons] or ["- (no reasons recorded)"]
    if approved_by:
        lines += ["", f"Approved by {_plain(approved_by)}."]
    lines += ["", "Files changed:"] + [f"- `{_plain(edit.path)}`" for edit in edits]
    return "\n".join(lines)


def _plain(text: str) -> str:
    """No HTML, mentions or links sneak in from a log or a commit message."""
    return text.replace("<", "&lt;").replace("@", "@\u200b").replace("\n", " ")[:500]


async def open_fix_pr(
    changes: RepositoryChanges,
    *,
    failure_id: str,
    repository: str,
    head_sha: str,
    base_branch: str,
    edits: tuple[FileEdit, ...],
    reasons: tuple[str, ...] = (),
    approved_by: str | None = None,
) -> PullRequestRef:
    found = weakenings(edits)
    if found:
        raise FixRefused("; ".join(str(w) for w in found))
    if not edits:
        raise FixRefused("the fix proposes no edits")
    if not head_sha or not base_branch:
        raise FixRefused("the failing run has no commit or branch to start a fix from")
    branch = fix_branch(failure_id)
    existing = await changes.find_pull(repository, branch)
    if existing is None:
        if await changes.branch_sha(repository, branch) is None:
            commit = await _commit(changes, repository, head_sha, edits, failure_id)
            try:
                await changes.create_branch(repository, branch, commit)
            except GitHubError:
                if await changes.branch_sha(repository, branch) is None:
                    raise  # not a lost race: a real refusal
        title = f"ci-medic: fix for failure {failure_id[:8]}"
        body = pull_body(reasons, edits, approved_by)
        try:
            existing = await changes.open_pull(
                repository, branch=branch, base=base_branch, title=title, body=body
            )
        except GitHubError:
            existing = await changes.find_pull(repository, branch)
            if existing is None:
                raise
    await changes.add_labels(repository, existing.number, [LABEL])
    return existing


async def _commit(
    changes: RepositoryChanges, repository: str, head_sha: str, edits: tuple[FileEdit, ...], failure_id: str
) -> str:
    paths = sorted({edit.path for edit in edits})
    files: dict[str, str] = {}
    for path in paths:
        text = await changes.file_text(repository, path, ref=head_sha)
        if text is not None:
            files[path] = text
    try:
        changed = apply_edits(files, edits)
    except EditRefused as exc:
        raise FixRefused(str(exc)) from exc
    message = f"ci-medic: fix for failure {failure_id[:8]}\n\nEdits {', '.join(paths)}."
    return await changes.commit_files(repository, parent=head_sha, files=changed, message=message)
