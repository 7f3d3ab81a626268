"""What counts as failed, in GitHub's words: the one definition every service reads.

Two sets because GitHub uses ``cancelled`` for two things. A *run* that was cancelled was
stopped by a person or a concurrency group: nothing to diagnose. Inside a failed run, a *job
or step* marked cancelled is usually where it broke (a job that hits ``timeout-minutes`` is
reported as cancelled), so its log is fetched and read.
"""

from __future__ import annotations

FAILED_RUN_CONCLUSIONS = frozenset({"failure", "timed_out", "startup_failure"})
"""A workflow run with one of these conclusions is a failure ci-medic acts on."""

FAILED_JOB_CONCLUSIONS = FAILED_RUN_CONCLUSIONS | {"cancelled"}
"""Within a failed run: the jobs whose logs are read and the steps named as failing."""


def run_failed(conclusion: str | None) -> bool:
    return conclusion in FAILED_RUN_CONCLUSIONS


def job_failed(conclusion: str | None) -> bool:
    return conclusion in FAILED_JOB_CONCLUSIONS
