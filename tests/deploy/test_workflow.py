"""The upstream GitHub workflow against GitHub's published workflow schema."""

from __future__ import annotations

from pathlib import Path

import yaml

from .tools import ROOT, run, tool

WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def test_workflow_meets_the_github_workflow_schema() -> None:
    result = run(tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_refuses_a_broken_workflow(tmp_path: Path) -> None:
    bad = tmp_path / "ci.yml"
    bad.write_text("name: x\non: push\njobs:\n  t:\n    runs-on: ubuntu-24.04\n    stepz: []\n")
    result = run(tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", bad)
    assert result.returncode == 1


def test_workflow_runs_what_a_fork_needs() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    commands = "\n".join(
        step.get("run", "") + str(step.get("uses", ""))
        for job in workflow["jobs"].values()
        for step in job["steps"]
    )
    for needed in ("make test", "helm lint --strict", "hadolint", "docker/build-push-action"):
        assert needed in commands
    assert workflow["permissions"] == {"contents": "read"}
