"""Which repositories the monitor watches: ``owner/name`` or ``owner/*`` entries, case-insensitive.

A GitHub App or an organisation webhook delivers for every repository it can see; the
allowlist keeps the rest out before anything is recorded. An empty list watches everything.
"""

from __future__ import annotations

from collections.abc import Iterable


class RepositoryAllowlist:
    def __init__(self, entries: Iterable[str]) -> None:
        self._exact: set[str] = set()
        self._owners: set[str] = set()
        given = [entry for entry in entries if entry.strip()]
        self._configured = bool(given)  # only malformed entries: allow nothing, never everything
        for entry in given:
            owner, _, name = entry.strip().lower().partition("/")
            if not owner or not name:
                continue  # an entry without a slash names nothing; never widen to "all"
            if name == "*":
                self._owners.add(owner)
            else:
                self._exact.add(f"{owner}/{name}")

    def allows(self, repository: str) -> bool:
        if not self._configured:
            return True
        wanted = repository.strip().lower()
        owner, _, _ = wanted.partition("/")
        return wanted in self._exact or owner in self._owners
