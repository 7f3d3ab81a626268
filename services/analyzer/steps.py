"""Find the failing step of a CI job log from the CI system's own markers.

A job keeps writing after the command that failed (after-script steps, cache uploads,
cleanup), so "the end of the log" is often hundreds of lines past the error. Every CI
system marks where a step starts and how it ended: GitHub Actions ``##[group]Run …`` and
``##[error]Process completed with exit code N``, Travis ``$ command`` and ``The command
"…" exited with N.``, Jenkins ``[Pipeline] { (stage)`` and ``script returned exit code``,
GitLab ``section_start``/``ERROR: Job failed``. The failing step is the search window for
anchors and rules; without any marker the whole log is the window.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from medic.events import Category
from medic.services.analyzer.logtext import CleanLine, Marker

# Cleaned text (timestamps, ANSI and ##[...] prefixes removed); each pattern is anchored or
# literal-led and has no nested quantifier, so matching stays linear on hostile lines.
_GHA_EXIT = re.compile(r"^Process completed with exit code [1-9]\d*")
_GHA_JOB_END = re.compile(
    r"^(?:The operation was canceled"
    r"|The job (?:running on runner .* )?has exceeded the maximum execution time"
    r"|The runner has received a shutdown signal)"
)
_TRAVIS_COMMAND = re.compile(r"^\$ (\S.*)")
_TRAVIS_EXIT = re.compile(r'^The command "(.*)" (?:failed and )?exited with (\d+)')
_TRAVIS_STOP = re.compile(
    r"^(?:No output has been received in the last|The job exceeded the maximum time limit"
    r"|Your build has been stopped\.)"
)
_JENKINS_STAGE = re.compile(r"^\[Pipeline\] \{ \((.*)\)$")
_JENKINS_SH = re.compile(r"^\+ (\S.*)")
_JENKINS_EXIT = re.compile(r"^ERROR: script returned exit code [1-9]|^Finished: FAILURE")
_GITLAB_SECTION = re.compile(r"^section_start:\d+:([\w.-]+)")
_GITLAB_EXIT = re.compile(r"^ERROR: Job failed")
_TASK_END = re.compile(
    r"^\[taskcluster(?: [\d:.TZ-]+)?\]\s+Exit Code: [1-9]|^\[taskcluster:error\] Task aborted"
)


@dataclass(frozen=True, slots=True)
class FailingStep:
    """Where to look: indices ``start``..``end`` (inclusive) into the line list.

    ``end`` is the line that reported the failure (or the last line); ``name`` is the
    step's command or name when a marker gave one; ``marked`` says a CI marker was found.
    """

    start: int
    end: int
    name: str = ""
    marked: bool = False
    system: str = ""


def find_failing_step(lines: Sequence[CleanLine]) -> FailingStep:
    """The first step that reported a failure, or the whole log when none did."""
    starts: list[tuple[int, str, str]] = []
    last = len(lines) - 1
    for index, line in enumerate(lines):
        text = line.text
        if line.marker is Marker.GROUP:
            if text.startswith("Run "):
                starts.append((index, text[4:].strip(), "github"))
            continue
        if line.marker is Marker.ERROR:
            if _GHA_EXIT.match(text) or _GHA_JOB_END.match(text):
                return _step(starts, index, "github", text)
            continue
        head = text[:1]
        if head == "$":
            command = _TRAVIS_COMMAND.match(text)
            if command:
                starts.append((index, command.group(1), "travis"))
        elif head == "T":
            exited = _TRAVIS_EXIT.match(text)
            if exited and exited.group(2) != "0":
                return _travis_step(starts, index, exited.group(1))
            if _TRAVIS_STOP.match(text) or _GHA_JOB_END.match(text):
                return _step(starts, index, "travis", "timeout")
        elif head == "N" and _TRAVIS_STOP.match(text):
            return _step(starts, index, "travis", "timeout")
        elif head == "Y" and _TRAVIS_STOP.match(text):
            return _step(starts, index, "travis", "stopped")
        elif head == "[":
            stage = _JENKINS_STAGE.match(text)
            if stage:
                starts.append((index, stage.group(1), "jenkins"))
            elif _TASK_END.match(text):
                return _step(starts, index, "taskcluster", "")
        elif head == "+":
            command = _JENKINS_SH.match(text)
            if command and starts and starts[-1][2] == "jenkins":
                starts.append((index, command.group(1), "jenkins"))
        elif head == "E":
            if _JENKINS_EXIT.match(text):
                return _step(starts, index, "jenkins", "")
            if _GITLAB_EXIT.match(text):
                return _step(starts, index, "gitlab", "")
        elif head == "F" and _JENKINS_EXIT.match(text):
            return _step(starts, index, "jenkins", "")
        elif head == "s":
            section = _GITLAB_SECTION.match(text)
            if section:
                starts.append((index, section.group(1), "gitlab"))
    return FailingStep(0, last)  # steps but no failed one (a killed job, an unknown marker): the whole log


def _step(starts: list[tuple[int, str, str]], end: int, system: str, fallback: str) -> FailingStep:
    if starts:
        index, name, _ = starts[-1]
        return FailingStep(index, end, name, True, system)
    return FailingStep(0, end, fallback, True, system)


def _travis_step(starts: list[tuple[int, str, str]], end: int, command: str) -> FailingStep:
    """The ``$ command`` line that the exit line quotes (the latest one), else the latest step."""
    for index, name, system in reversed(starts):
        if system == "travis" and name == command:
            return FailingStep(index, end, command, True, "travis")
    return _step(starts, end, "travis", command)


# A step's identity (its command, task or name) says what kind of failure it can produce.
# Checked in this order: a "test" step that also builds is still a test step.
_STEP_PRIORS: tuple[tuple[re.Pattern[str], Category], ...] = (
    (
        re.compile(
            r"\b(?:lint|linters?|check[-_ ]?style|checkstyle|spotless|fmt|format|formatting|tidy|clippy|"
            r"flake8|pylint|pep8|pycodestyle|ruff|black|isort|mypy|eslint|tslint|prettier|rubocop|"
            r"golangci|gofmt|vet|ktlint|detekt|scalafmt|scalastyle|stylelint|shellcheck|hadolint|"
            r"markdownlint|codespell|pre-commit|typecheck|type-check|api-?compat\w*|japicmp|revapi)\b",
            re.IGNORECASE,
        ),
        Category.LINT,
    ),
    (
        re.compile(
            r"\b(?:test|tests|testing|pytest|tox|nox|jest|mocha|karma|vitest|ava|tap|rspec|minitest|"
            r"phpunit|ctest|junit|surefire|failsafe|spec|specs|e2e|integration|unittest|nosetests|"
            r"verify|check|connectedCheck|testDebugUnitTest)\b",
            re.IGNORECASE,
        ),
        Category.TEST_FAILURE,
    ),
    (
        re.compile(
            r"\b(?:build|compile|compileJava|compileKotlin|compileScala|assemble|make|cmake|javac|tsc|"
            r"cargo build|go build|msbuild|xcodebuild|package|jar|bundle exec rake compile)\b",
            re.IGNORECASE,
        ),
        Category.COMPILE,
    ),
    (
        re.compile(
            r"\b(?:install|restore|resolve|dependencies|deps|bootstrap|pip|npm ci|yarn|pnpm|bundle|"
            r"composer|setup|get|download|fetch|mod download)\b",
            re.IGNORECASE,
        ),
        Category.DEPENDENCY,
    ),
)


def step_prior(name: str) -> Category | None:
    """The category a failing step's identity suggests, or None when it says nothing."""
    if not name:
        return None
    head = name[:300]
    for pattern, category in _STEP_PRIORS:
        if pattern.search(head):
            return category
    return None


_PASSED_END = re.compile(r"^(?:Done\. Your build exited with 0\.|Finished: SUCCESS|Job succeeded)$")
_GHA_JOB_DONE = "Cleaning up orphan processes"
_TAIL_LINES = 40


def job_passed(lines: Sequence[CleanLine], step: FailingStep) -> bool:
    """Whether the log is of a job that passed: its CI system said so, and no step failed.

    GitHub Actions: the runner finished the job (``Cleaning up orphan processes``), steps ran
    (``##[group]Run …``) and nothing was flagged ``##[error]``. Travis, Jenkins and GitLab print
    a success line at the end. ``medic analyze`` reports such a log as ``none``.
    """
    if step.marked or not lines:
        return False
    tail = [line.text for line in lines[-_TAIL_LINES:]]
    if any(_PASSED_END.match(text) for text in tail):
        return True
    if not any(text.startswith(_GHA_JOB_DONE) for text in tail):
        return False
    ran_steps = any(line.marker is Marker.GROUP and line.text.startswith("Run ") for line in lines)
    return ran_steps and not any(line.marker is Marker.ERROR for line in lines)
