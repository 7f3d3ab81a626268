"""How well the rules alone explain the labelled corpus (tests/data/logs).

Prints category accuracy and excerpt recall (share of labelled lines that land in the
excerpt), and holds them above floors set from what was measured, so a rule change
that makes the analyzer worse fails here, with the misses listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from medic.services.analyzer.classify import analyze_log
from medic.services.analyzer.knowledge import default_knowledge_base

CORPUS = Path(__file__).resolve().parents[1] / "data" / "logs"
MAX_LINES = 80
ACCURACY_FLOOR = 0.90
RECALL_FLOOR = 0.95


@dataclass(frozen=True)
class CorpusScore:
    cases: int
    correct: int
    labelled_lines: int
    recalled_lines: int
    misses: tuple[str, ...]

    @property
    def accuracy(self) -> float:
        return self.correct / self.cases if self.cases else 0.0

    @property
    def recall(self) -> float:
        return self.recalled_lines / self.labelled_lines if self.labelled_lines else 0.0


def labelled_cases(corpus: Path = CORPUS) -> list[tuple[Path, dict[str, object]]]:
    cases = []
    for log in sorted(corpus.glob("*/*.log")):
        label_file = log.with_suffix(".yaml")
        if label_file.exists():
            cases.append((log, yaml.safe_load(label_file.read_text(encoding="utf-8"))))
    return cases


def score_corpus(*, engine: str = "auto", max_lines: int = MAX_LINES, corpus: Path = CORPUS) -> CorpusScore:
    knowledge_base = default_knowledge_base(engine)  # type: ignore[arg-type]
    cases = labelled_cases(corpus)
    correct = labelled = recalled = 0
    misses: list[str] = []
    for log, label in cases:
        text = log.read_text(encoding="utf-8", errors="replace")
        analysis = analyze_log(text, knowledge_base=knowledge_base, max_lines=max_lines)
        wanted = [int(n) for n in label.get("lines", [])]  # type: ignore[attr-defined]
        shown = {line.line for line in analysis.excerpt}
        missing = [n for n in wanted if n not in shown]
        labelled += len(wanted)
        recalled += len(wanted) - len(missing)
        name = f"{log.parent.name}/{log.stem}"
        if analysis.category.value == label["category"]:
            correct += 1
        else:
            misses.append(
                f"{name}: expected {label['category']}, got {analysis.category.value} "
                f"{analysis.matched_rules[:4]}"
            )
        if missing:
            misses.append(f"{name}: lines not in excerpt {missing}")
    return CorpusScore(len(cases), correct, labelled, recalled, tuple(misses))


def test_corpus_quality_with_rules_alone() -> None:
    score = score_corpus()
    if not score.cases:
        pytest.skip("no labelled corpus yet")
    print(
        f"\ncorpus: {score.cases} logs; category accuracy {score.accuracy:.1%}; "
        f"excerpt recall {score.recall:.1%} ({score.recalled_lines}/{score.labelled_lines} lines, "
        f"<= {MAX_LINES}-line excerpts)"
    )
    for miss in score.misses:
        print("  miss:", miss)
    assert score.accuracy >= ACCURACY_FLOOR, "\n".join(score.misses)
    assert score.recall >= RECALL_FLOOR, "\n".join(score.misses)
