"""Whose module is missing: the project's own code, or a third-party package?

``ModuleNotFoundError`` reads like a dependency problem, but when the module is the
project's own (a renamed file, a bad import in a test) it is a code failure, and a
missing third-party package in a test run is a dependency failure even though the test
runner reports it. The project's own names are the path components of files the log
prints inside the CI workspace (``/home/runner/work/<repo>/<repo>/…``,
``/home/travis/build/<owner>/<repo>/…``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_WORKSPACE_PATH = re.compile(
    r"(?:/home/runner/work|/home/travis/build|/__w|/github/workspace|/builds|/var/lib/jenkins/workspace"
    r"|[A-Za-z]:\\a)[/\\]([^\s'\"():,]{1,300})"
)
_MISSING = re.compile(r"No module named '?([\w.]+)|cannot import name '?\w+'? from '?([\w.]+)")
_MAX_NAMES = 5000
_INSTALLED = frozenset(
    {
        "site-packages",
        "dist-packages",
        "node_modules",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        "env",
        "lib",
        "vendor",
    }
)


def _normal(name: str) -> str:
    return name.lower().replace("-", "_")


def project_names(texts: Iterable[str]) -> set[str]:
    """Directory and module names seen under the CI workspace in these lines."""
    names: set[str] = set()
    for text in texts:
        for match in _WORKSPACE_PATH.finditer(text):
            for part in re.split(r"[/\\]", match.group(1)):
                if part in _INSTALLED or part.startswith("python"):
                    break  # a virtualenv inside the workspace holds third-party code
                stem = part.rsplit(".", 1)[0] if part.endswith((".py", ".pyi")) else part
                if stem:
                    names.add(_normal(stem))
            if len(names) > _MAX_NAMES:
                return names
    return names


def missing_module(text: str) -> str | None:
    """The top-level package a ``ModuleNotFoundError``/``ImportError`` line names."""
    match = _MISSING.search(text)
    if match is None:
        return None
    module = match.group(1) or match.group(2)
    return _normal(module.split(".")[0]) if module else None


def is_own_module(text: str, names: set[str]) -> bool | None:
    """True when the missing module is the project's own, False when third-party, None if unsure."""
    module = missing_module(text)
    if module is None:
        return None
    return module in names
