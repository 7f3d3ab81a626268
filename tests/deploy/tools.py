"""Where the deployment tools live: the venv's ``bin/``, put there by ``make install`` / ``make test``.

A missing tool fails the test with the command that installs it: these checks are part of
``make test``, so a silent skip would hide a chart or an image nobody checked.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CHART = ROOT / "deploy" / "helm" / "ci-medic"
PRODUCTION_VALUES = ROOT / "deploy" / "helm" / "values-production.yaml"
KUBERNETES_VERSION = "1.35.0"


def tool(name: str) -> Path:
    path = BIN / name
    if not path.is_file():
        how = "make kube-tools" if name in {"helm", "kubectl"} else "make install"
        pytest.fail(f"{name} is not in {BIN}: run `{how}` (make test does it)")
    return path


def run(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run a tool; the caller asserts on the exit code and the output."""
    return subprocess.run(  # noqa: S603 - our own tools, fixed arguments
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
