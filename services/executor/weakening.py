"""Does a proposed fix make the checks weaker? A deterministic reading of the edits themselves.

A fix pull request exists to make CI green by fixing the cause, never by asking less of CI.
Each rule reads what an edit removes and what it adds (old text against new text), so the
verdict depends on the change alone, not on words in a log or a model's explanation. The
refusal names the rule, so a reviewer sees which line of defence held.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from medic.events import FileEdit

TIMEOUT_FACTOR = 2.0
"""A timeout may grow, up to this factor (the seed's 30 s -> 60 s passes; 30 s -> 61 s does not)."""

_SKIP_MARKERS = re.compile(
    r"@(?:pytest\.mark\.)?skip(?:if|Unless|If)?\b|@unittest\.skip|@Disabled\b|@Ignore\b"
    r"|\b(?:xit|xdescribe|xtest|xcontext)\s*\(|\b(?:it|test|describe)\.(?:skip|todo)\s*\("
    r"|\bt\.Skip(?:Now|f)?\s*\(|\bpytest\.skip\s*\(|#\[ignore\]|\bskip:\s*true\b",
    re.IGNORECASE,
)
_FOCUS = re.compile(r"\b(?:it|test|describe|context)\.only\s*\(|\bf(?:it|describe)\s*\(")
_TESTS = re.compile(
    r"(?:^|\s)(?:async\s+)?def\s+test_\w+|\b(?:it|test)\s*\(\s*['\"`]|@Test\b|\bfunc\s+Test\w+\s*\(|#\[test\]"
)
_CI_ESCAPES = (
    ("continue-on-error", re.compile(r"continue-on-error\s*:\s*(?:true|\$\{\{)", re.IGNORECASE)),
    ("|| true", re.compile(r"\|\|\s*(?:true|:|exit\s+0)\b")),
    ("set +e", re.compile(r"\bset\s+\+[a-zA-Z]*e")),
)
_COVERAGE = re.compile(
    r"(?:fail[_-]under|coverage[_-]?threshold|min(?:imum)?[_-]?coverage|cov[_-]fail[_-]under"
    r"|\b(?:lines|branches|functions|statements)\b)\s*[\"']?\s*[:=]?\s*[\"']?\s*(\d+(?:\.\d+)?)",
    re.IGNORECASE,
)
_TIMEOUT = re.compile(
    r"(?:timeout|time[_-]?limit|timeout[_-]minutes|testTimeout|jest\.setTimeout)\w*\s*[\"']?\s*[:=(]?\s*"
    r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|seconds|minutes)?",
    re.IGNORECASE,
)
_UNIT_SECONDS = {None: 1.0, "ms": 0.001, "s": 1.0, "seconds": 1.0, "m": 60.0, "minutes": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class Weakening:
    rule: str
    path: str
    detail: str

    def __str__(self) -> str:
        return f"refused by rule {self.rule!r} in {self.path}: {self.detail}"


def is_test_file(path: str) -> bool:
    name = path.rsplit("/", 1)[-1].lower()
    return (
        name.startswith("test_")
        or name.endswith(("_test.py", "_test.go", "_spec.rb"))
        or re.search(r"\.(?:test|spec)\.[cm]?[jt]sx?$", name) is not None
        or any(part in {"tests", "test", "__tests__", "spec"} for part in path.lower().split("/")[:-1])
    )


def is_ci_file(path: str) -> bool:
    lowered = path.lower()
    return (
        lowered.startswith(".github/workflows/")
        or lowered.endswith((".gitlab-ci.yml", "makefile", ".sh", "tox.ini", "noxfile.py", "justfile"))
        or lowered.rsplit("/", 1)[-1] in {"makefile", "justfile"}
    )


def _count(pattern: re.Pattern[str], text: str) -> int:
    return len(pattern.findall(text))


def _numbers(pattern: re.Pattern[str], text: str, *, scale: Callable[[re.Match[str]], float]) -> list[float]:
    return [float(m.group(1)) * scale(m) for m in pattern.finditer(text)]


def _seconds(match: re.Match[str]) -> float:
    unit = match.group(2).lower() if match.group(2) else None
    return _UNIT_SECONDS.get(unit, 1.0)


def weakenings(edits: Iterable[FileEdit], *, timeout_factor: float = TIMEOUT_FACTOR) -> list[Weakening]:
    """Every rule the change breaks (empty: it does not weaken the checks)."""
    found: list[Weakening] = []
    for edit in edits:
        old, new, path = edit.old_text, edit.new_text, edit.path
        if _count(_SKIP_MARKERS, new) > _count(_SKIP_MARKERS, old):
            found.append(Weakening("skip-added", path, "adds a skip marker to a test"))
        if _count(_FOCUS, new) > _count(_FOCUS, old):
            found.append(
                Weakening("focus-added", path, "adds .only/fit, which silently skips every other test")
            )
        if _count(_FOCUS, new) < _count(_FOCUS, old) and is_test_file(path):
            found.append(Weakening("only-removed", path, "changes which tests run by removing .only"))
        if _count(_TESTS, new) < _count(_TESTS, old):
            found.append(Weakening("test-deleted", path, "removes a test"))
        if is_test_file(path) and old.strip() and not new.strip():
            found.append(Weakening("test-deleted", path, "empties test code"))
        for name, pattern in _CI_ESCAPES:
            if _count(pattern, new) > _count(pattern, old):
                found.append(Weakening(name, path, f"adds {name}, which hides a failing step"))
        old_cov = _numbers(_COVERAGE, old, scale=lambda _: 1.0)
        new_cov = _numbers(_COVERAGE, new, scale=lambda _: 1.0)
        if old_cov and (not new_cov or min(new_cov) < min(old_cov)):
            found.append(Weakening("coverage-lowered", path, f"coverage threshold {min(old_cov):g} lowered"))
        old_t = _numbers(_TIMEOUT, old, scale=_seconds)
        new_t = _numbers(_TIMEOUT, new, scale=_seconds)
        if old_t and new_t and max(new_t) > max(old_t) * timeout_factor:
            found.append(
                Weakening(
                    "timeout-raised",
                    path,
                    f"timeout {max(old_t):g}s -> {max(new_t):g}s is more than {timeout_factor:g}x",
                )
            )
    return found
