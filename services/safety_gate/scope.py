"""Globs for branches and for the paths a fix pull request may touch.

The paths come from the proposed change itself (its typed edits), never from words in a log.
Matching fails closed: a path that is not a plain relative path is outside every scope,
and deny globs ignore case (``.GitHub/Workflows`` must not slip past ``.github/workflows``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from medic.config import GuardPolicy

WORKFLOW_GLOB = ".github/workflows/**"
"""Workflow files run with the repository's secrets: denied unless the repository allows it."""


@lru_cache(maxsize=512)
def _compiled(glob: str, *, ignore_case: bool) -> re.Pattern[str]:
    """``**`` crosses ``/``, ``*`` and ``?`` do not; everything else is literal."""
    out: list[str] = []
    i = 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def matches(name: str, glob: str, *, ignore_case: bool = False) -> bool:
    return _compiled(glob, ignore_case=ignore_case).fullmatch(name) is not None


def first_match(name: str, globs: Iterable[str], *, ignore_case: bool = False) -> str | None:
    return next((g for g in globs if matches(name, g, ignore_case=ignore_case)), None)


def plain_relative(path: str) -> bool:
    """No absolute paths, ``..``, empty or dot segments, backslashes or control characters."""
    if not path or path.startswith("/") or "\\" in path:
        return False
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


def scope_problems(paths: Iterable[str], guard: GuardPolicy) -> list[str]:
    """Why these paths may not be changed by a fix (empty when every path is in scope)."""
    denied = list(guard.fix_denied_paths)
    if not guard.allow_workflow_edits:
        denied.append(WORKFLOW_GLOB)
    problems: list[str] = []
    for path in paths:
        shown = path.encode("unicode_escape").decode()[:200]
        if not plain_relative(path):
            problems.append(f"change scope: {shown!r} is not a plain relative path")
            continue
        deny = first_match(path, denied, ignore_case=True)
        if deny is not None:
            problems.append(f"change scope: {shown} is denied by {deny!r} in {guard.repository}")
        elif first_match(path, guard.fix_allowed_paths) is None:
            problems.append(f"change scope: {shown} is outside the allowed paths of {guard.repository}")
    return problems
