"""Applying a fix's typed edits to the files of the failing commit, exactly or not at all.

An edit names the exact text it replaces. If that text is not in the file exactly once at
the failing commit, the fix was written against something else and is refused with the
reason: a guess at where it "probably" goes could change code nobody reviewed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from medic.events import FileEdit


class EditRefused(Exception):
    """The edits do not apply to the failing commit as written."""


def apply_edits(files: Mapping[str, str], edits: Iterable[FileEdit]) -> dict[str, str]:
    """New contents by path; several edits to one file apply in order, each checked afresh."""
    changed: dict[str, str] = {}
    for edit in edits:
        if edit.path not in files and edit.path not in changed:
            raise EditRefused(f"{edit.path} does not exist at the failing commit")
        text = changed.get(edit.path, files.get(edit.path, ""))
        found = text.count(edit.old_text)
        if found != 1:
            where = "is not in" if found == 0 else f"occurs {found} times in"
            raise EditRefused(f"the text to replace {where} {edit.path}; it must occur exactly once")
        changed[edit.path] = text.replace(edit.old_text, edit.new_text, 1)
    return changed


def fix_branch(failure_id: str) -> str:
    """``medic/fix-<short failure id>``: one branch per failure, found again after a crash."""
    return f"medic/fix-{failure_id.replace('-', '')[:12]}"
