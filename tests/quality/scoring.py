"""Scoring the analyzer against labelled corpora, with the trivial baselines beside it.

One module for the quality tests and ``make bench``, so both measure the same way:
excerpt recall (labelled lines shown / labelled lines), hit rate (logs whose excerpt
shows at least one labelled line), category accuracy, a confusion matrix, per-category
precision, and the same figures for the "last N lines" and "most common category"
baselines computed on the same logs in the same run. An empty corpus raises: a broken
path must fail a test, never turn into a skip.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from medic.services.analyzer.analysis import LogAnalysis
from medic.services.analyzer.classify import analyze_log
from medic.services.analyzer.knowledge import default_knowledge_base
from medic.services.analyzer.logtext import iter_file_lines

DATA = Path(__file__).resolve().parents[1] / "data"
SYNTHETIC = DATA / "logs"
HOLDOUT = DATA / "logs-holdout"
REAL = DATA / "real-ci-logs"
PAIRS = REAL / "pairs"
MAX_LINES = 80
AUTOMATIC_CATEGORIES = ("infrastructure", "timeout", "flaky_test")


class EmptyCorpus(AssertionError):
    """A corpus path found no labelled log: a broken path, never a reason to skip."""


@dataclass(frozen=True)
class Case:
    """One labelled log: its path, category, labelled line numbers and (synthetic) action."""

    log: Path
    category: str
    lines: frozenset[int]
    action: str | None = None
    baseline: Path | None = None

    @property
    def name(self) -> str:
        return f"{self.log.parent.name}/{self.log.stem}"


def _expand(spec: Iterable[Any]) -> frozenset[int]:
    numbers: set[int] = set()
    for item in spec:
        if isinstance(item, list):
            numbers.update(range(int(item[0]), int(item[1]) + 1))
        else:
            numbers.add(int(item))
    return frozenset(numbers)


def _case(log: Path, label_file: Path, baseline: Path | None = None) -> Case:
    label = yaml.safe_load(label_file.read_text(encoding="utf-8"))
    action = label.get("action")
    return Case(log, str(label["category"]), _expand(label.get("lines") or ()), action, baseline)


def load_cases(corpus: Path) -> list[Case]:
    """Every ``*/*.log`` with a ``.yaml`` label beside it (pairs are loaded by ``load_pairs``)."""
    cases = [
        _case(log, log.with_suffix(".yaml"))
        for log in sorted(corpus.glob("*/*.log"))
        if log.with_suffix(".yaml").exists() and log.parent.name != "fail"
    ]
    if not cases:
        raise EmptyCorpus(f"no labelled logs under {corpus}")
    return cases


def load_pairs(corpus: Path = PAIRS) -> list[Case]:
    cases = [
        _case(folder / "fail.log", folder / "fail.yaml", folder / "pass.log")
        for folder in sorted(p for p in corpus.iterdir() if (p / "fail.yaml").exists())
    ]
    if not cases:
        raise EmptyCorpus(f"no fail/pass pairs under {corpus}")
    return cases


def split_half(cases: Sequence[Case], half: str) -> list[Case]:
    """A fixed split by a hash of the name: ``dev`` to develop on, ``check`` to check on."""
    wanted = 0 if half == "dev" else 1
    return [c for c in cases if hashlib.sha256(c.name.encode()).digest()[0] % 2 == wanted]


@dataclass
class Score:
    """Figures of one excerpt/category strategy over a set of cases."""

    cases: int = 0
    failing: int = 0
    labelled_lines: int = 0
    recalled_lines: int = 0
    hits: int = 0
    correct: int = 0
    action_cases: int = 0
    action_correct: int = 0
    excerpt_lines: int = 0
    longest_excerpt: int = 0
    verbatim_lines: int = 0
    """Labelled lines shown with the log's own text (ANSI aside), as a reader searching for them sees."""
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    misses: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.recalled_lines / self.labelled_lines if self.labelled_lines else 0.0

    @property
    def verbatim_recall(self) -> float:
        return self.verbatim_lines / self.labelled_lines if self.labelled_lines else 0.0

    @property
    def hit_rate(self) -> float:
        return self.hits / self.failing if self.failing else 0.0

    @property
    def accuracy(self) -> float:
        return self.correct / self.cases if self.cases else 0.0

    @property
    def action_accuracy(self) -> float:
        return self.action_correct / self.action_cases if self.action_cases else 0.0

    def precision(self, category: str) -> float | None:
        """Share of verdicts ``category`` that were right; None when never predicted."""
        said = sum(n for (_, got), n in self.confusion.items() if got == category)
        right = self.confusion[(category, category)]
        return right / said if said else None

    def predicted(self, category: str) -> int:
        return sum(n for (_, got), n in self.confusion.items() if got == category)

    def confusion_rows(self) -> dict[str, dict[str, int]]:
        rows: dict[str, dict[str, int]] = {}
        for (want, got), n in sorted(self.confusion.items()):
            rows.setdefault(want, {})[got] = n
        return rows

    def add(
        self,
        case: Case,
        shown: Iterable[int],
        category: str,
        action: str | None,
        texts: dict[int, str] | None = None,
    ) -> None:
        shown_set = set(shown)
        if texts is not None and case.lines:
            source = source_lines(case.log)
            self.verbatim_lines += sum(
                1 for n in case.lines if n in texts and n <= len(source) and texts[n] == source[n - 1]
            )
        self.cases += 1
        self.excerpt_lines += len(shown_set)
        self.longest_excerpt = max(self.longest_excerpt, len(shown_set))
        self.confusion[(case.category, category)] += 1
        if category == case.category:
            self.correct += 1
        else:
            self.misses.append(f"{case.name}: expected {case.category}, got {category}")
        if case.action is not None:
            self.action_cases += 1
            self.action_correct += int(action == case.action)
        if case.lines:
            self.failing += 1
            found = len(case.lines & shown_set)
            self.labelled_lines += len(case.lines)
            self.recalled_lines += found
            self.hits += int(found > 0)
            if found < len(case.lines):
                missing = sorted(case.lines - shown_set)
                self.misses.append(f"{case.name}: {found}/{len(case.lines)} lines, missing {missing[:8]}")


_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]")
_C0 = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def source_lines(path: Path) -> list[str]:
    """The log's own lines (split on \\n as the labels count them), ANSI and control bytes removed."""
    text = path.read_bytes().decode("utf-8", "replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # a final newline ends the last line; it does not start another
    return [_C0.sub("", _ANSI.sub("", line)) for line in lines]


Analyse = Callable[[Case], LogAnalysis]


def analyse_with_rules(case: Case, *, use_baseline: bool = False, max_lines: int = MAX_LINES) -> LogAnalysis:
    baseline = iter_file_lines(case.baseline) if use_baseline and case.baseline else None
    return analyze_log(
        iter_file_lines(case.log),
        knowledge_base=default_knowledge_base(),
        max_lines=max_lines,
        baseline=baseline,
    )


def score_analyzer(cases: Sequence[Case], *, use_baseline: bool = False) -> Score:
    score = Score()
    for case in cases:
        analysis = analyse_with_rules(case, use_baseline=use_baseline)
        score.add(
            case,
            (line.line for line in analysis.excerpt),
            "none" if analysis.job_passed else analysis.category.value,
            analysis.proposed_action.kind.value,
            {line.line: line.text for line in analysis.excerpt},
        )
    return score


def most_common(cases: Sequence[Case]) -> tuple[str, str | None]:
    """The constant guess: the most common category (and action) of these cases."""
    category = Counter(c.category for c in cases).most_common(1)[0][0]
    actions = Counter(c.action for c in cases if c.action is not None)
    return category, (actions.most_common(1)[0][0] if actions else None)


def score_tail(cases: Sequence[Case], tail: int) -> Score:
    """The trivial baseline: the last ``tail`` lines, and the most common category."""
    category, action = most_common(cases)
    score = Score()
    for case in cases:
        source = source_lines(case.log)
        shown = range(max(1, len(source) - tail + 1), len(source) + 1)
        score.add(case, shown, category, action, {n: source[n - 1] for n in shown})
    return score


def figures(score: Score) -> dict[str, Any]:
    """The figures of one score as a flat JSON-able mapping."""
    out: dict[str, Any] = {
        "cases": score.cases,
        "excerpt_recall": round(score.recall, 4),
        "verbatim_recall": round(score.verbatim_recall, 4),
        "hit_rate": round(score.hit_rate, 4),
        "category_accuracy": round(score.accuracy, 4),
        "mean_excerpt_lines": round(score.excerpt_lines / score.cases, 1) if score.cases else 0,
    }
    if score.action_cases:
        out["action_accuracy"] = round(score.action_accuracy, 4)
    return out
