"""A writer for job logs that look like the ones GitHub Actions serves.

The analyzer is tuned on real logs, so the sandbox has to reproduce their texture: a
7-digit fractional timestamp on every line, ``##[group]`` folding, ``##[error]``
annotations, runner preamble before the interesting part and cleanup noise after it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass
class JobLogWriter:
    """Accumulates timestamped log lines while advancing a fake clock."""

    started_at: datetime
    lines: list[str] = field(default_factory=list)
    _tick: int = 0

    @property
    def now(self) -> datetime:
        return self.started_at + timedelta(microseconds=self._tick)

    def advance(self, seconds: float) -> None:
        self._tick += int(seconds * 1_000_000)

    def line(self, text: str = "", *, step: float = 0.013) -> None:
        self._tick += int(step * 1_000_000) + 137
        stamp = self.now.strftime("%Y-%m-%dT%H:%M:%S")
        fraction = f"{self.now.microsecond:06d}{self._tick % 10}"
        self.lines.append(f"{stamp}.{fraction}Z {text}")

    def many(self, texts: Iterable[str], *, step: float = 0.011) -> None:
        for text in texts:
            self.line(text, step=step)

    def group(self, title: str, texts: Iterable[str] = ()) -> None:
        self.line(f"##[group]{title}")
        self.many(texts)
        self.line("##[endgroup]")

    def error(self, text: str) -> None:
        self.line(f"##[error]{text}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def runner_preamble(log: JobLogWriter, *, repository: str, workflow_path: str, branch: str) -> None:
    """What every hosted-runner job prints before the first user step."""
    log.line("Requested labels: ubuntu-latest")
    log.line(f"Job defined at: {repository}/{workflow_path}@refs/heads/{branch}")
    log.line("Waiting for a runner to pick up this job...")
    log.advance(2.4)
    log.line("Job is about to start running on the hosted runner: GitHub Actions 1000012345 (hosted)")
    log.line("Current runner version: '2.321.0'")
    log.group("Operating System", ["Ubuntu", "24.04.1", "LTS"])
    log.group(
        "Runner Image",
        [
            "Image: ubuntu-24.04",
            "Version: 20261117.1.0",
            "Included Software: https://github.com/actions/runner-images/blob/ubuntu24/20261117.1/images/ubuntu/Ubuntu2404-Readme.md",
        ],
    )
    log.group(
        "GITHUB_TOKEN Permissions",
        ["Actions: read", "Contents: read", "Metadata: read", "Packages: read"],
    )
    log.line("Secret source: Actions")
    log.line("Prepare workflow directory")
    log.line("Prepare all required actions")
    log.line("Getting action download info")
    log.line(
        "Download action repository 'actions/checkout@v4' (SHA:11bd71901bbe5b1630ceea73d27597364c9af683)"
    )
    log.line("Complete job name: build")
    log.group(
        "Run actions/checkout@v4",
        ["with:", f"  repository: {repository}", "  token: ***", "  ssh-strict: true", "  fetch-depth: 1"],
    )
    log.line(f"Syncing repository: {repository}")
    log.group("Getting Git version info", ["Working directory is '/home/runner/work'", "git version 2.47.1"])
    log.line(
        "Temporarily overriding HOME='/home/runner/work/_temp/8f4c' before making global git config changes"
    )
    log.group(
        "Fetching the repository", ["[command]/usr/bin/git -c protocol.version=2 fetch --no-tags --depth=1"]
    )
    log.line("Checking out the ref", step=0.8)


def runner_epilogue(log: JobLogWriter, *, exit_code: int | None) -> None:
    """Cleanup that follows a failed step, so the error is never the last line."""
    if exit_code is not None:
        log.error(f"Process completed with exit code {exit_code}.")
    log.line("Post job cleanup.", step=0.4)
    log.line("[command]/usr/bin/git version")
    log.line("git version 2.47.1")
    log.line("Copying '/home/runner/.gitconfig' to '/home/runner/work/_temp/8f4c/.gitconfig'")
    log.line("[command]/usr/bin/git config --local --name-only --get-regexp core\\.sshCommand")
    log.line("[command]/usr/bin/git config --local --unset-all http.https://github.com/.extraheader")
    log.line("Cleaning up orphan processes")


def success_log(*, started_at: datetime, repository: str, workflow_path: str, branch: str) -> str:
    """The log of a job that passed (re-runs of transient failures end here)."""
    log = JobLogWriter(started_at)
    runner_preamble(log, repository=repository, workflow_path=workflow_path, branch=branch)
    log.group("Run make check", ["make check", "shell: /usr/bin/bash -e {0}"])
    log.many(["ok: all checks passed", "Done in 41.27s."])
    runner_epilogue(log, exit_code=None)
    return log.text()
