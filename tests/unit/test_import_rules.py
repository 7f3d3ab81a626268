"""The import rules of docs/DESIGN.md, stated in ``.importlinter`` and checked by import-linter.

The kernel never imports a service; services never import each other; only the CLI, the
composition root and tests reach the sandboxes. The second test shows the contract can fail:
a copy of the tree where one service imports another is refused.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run(  # noqa: S603 - our own venv's tool, fixed arguments
        [str(LINT_IMPORTS), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_tree_keeps_every_import_contract() -> None:
    result = lint_imports(ROOT, ROOT / "libs")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


def test_a_service_importing_another_breaks_the_contract(tmp_path: Path) -> None:
    tree = tmp_path / "medic"
    shutil.copytree(ROOT / "libs" / "medic", tree, ignore=shutil.ignore_patterns("__pycache__"))
    (tree / "services" / "analyzer" / "shortcut.py").write_text(
        "from medic.services.executor.orders import order_from\n"
    )
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")

    result = lint_imports(tmp_path, tmp_path)

    assert result.returncode != 0
    assert "Services never import each other (they talk through events) BROKEN" in result.stdout
    assert "medic.services.analyzer.shortcut -> medic.services.executor.orders" in result.stdout
