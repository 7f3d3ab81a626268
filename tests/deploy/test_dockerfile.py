"""The Dockerfile passes hadolint, and its final stage is the image the issue describes.

No Docker engine runs where the suite runs, so the image is not built here (the upstream
workflow builds it); what can be proved without one is proved: the linter, and the shape.
"""

from __future__ import annotations

import re
from pathlib import Path

from .tools import ROOT, run, tool

DOCKERFILE = ROOT / "Dockerfile"


def _stages(text: str) -> list[str]:
    return re.split(r"(?m)^FROM ", text)[1:]


def test_hadolint_finds_nothing() -> None:
    result = run(tool("hadolint"), "--no-color", DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint above can fail: an unpinned base and an apt install without pins are flagged."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y gcc\nCMD python\n")
    result = run(tool("hadolint"), "--no-color", bad)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # latest tag
    assert "DL3008" in result.stdout  # unpinned apt package


def test_final_stage_is_slim_non_root_and_checks_its_health() -> None:
    text = DOCKERFILE.read_text()
    stages = _stages(text)
    assert len(stages) >= 2, "multi-stage: build, then a runtime stage without the build tools"
    base = re.search(r"(?m)^ARG PYTHON_IMAGE=(\S+)$", text)
    assert base is not None
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base.group(1))
    final = stages[-1]
    user = re.search(r"(?m)^USER (\S+)$", final)
    assert user is not None and user.group(1).split(":")[0] not in {"0", "root"}
    assert re.search(r"(?m)^HEALTHCHECK .*\n?.*CMD", final)
    assert "/healthz" in final
    for compiler in ("gcc", "build-essential", "clang", "apt-get install"):
        assert compiler not in final
    assert re.search(r'(?m)^ENTRYPOINT \["medic"\]$', final)


def test_build_context_leaves_out_local_state_and_secrets() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    for entry in (".venv", ".medic", ".git", ".env", "tests"):
        assert entry in ignored


def test_the_images_install_step_packs_every_service_and_its_data(tmp_path: Path) -> None:
    """The build stage runs ``pip install .`` (not editable): the wheel it builds must hold the
    services, the CLI and the non-Python files they read (rules, migrations, dashboard assets)."""
    import sys
    import zipfile

    result = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path, ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = tmp_path.glob("ci_medic-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "medic/services/cli.py",
        "medic/services/launchers.py",
        "medic/services/monitor/service.py",
        "medic/services/analyzer/rules/default.yaml",
        "medic/services/projector/migrations/0001_init.sql",
        "medic/reload.py",
        "medic/telemetry.py",
    ):
        assert needed in names, needed
    assert any(n.startswith("medic/services/dashboard/static/") for n in names)
    assert not any(n.startswith(("tests/", ".venv/")) for n in names)
    assert any(line.startswith("medic = ") for line in _entry_points(wheel))


def _entry_points(wheel: Path) -> list[str]:
    import zipfile

    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt"))
        return archive.read(name).decode().splitlines()
