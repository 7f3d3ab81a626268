"""Analyzer throughput: the rules matcher on Hyperscan, on RE2, and on Python ``re``.

All three scan the same synthetic job log (GitHub-style timestamps, colour, build and
test output, a sprinkle of real failure lines) in the same run, so the figures compare
engines, not machines. Python ``re`` is the naive baseline: one big alternation of
every pattern, ``finditer`` over each batch. Two more baselines on the same text in the
same run: GNU ``grep -E -i -c -f`` with the same patterns (in a UTF-8 and in the C locale),
and Hyperscan's own scan of the same blocks with the same database and no match callback,
the ceiling for the matcher. Rates are MB of text per CPU second (the process's, or grep's
from ``getrusage``): the machine is shared, and CPU time is what contention changes least.
Corpus accuracy and excerpt recall (rules alone) come last.

    python -m tests.bench.analyzer_bench        # BENCH_ANALYZER_MB=32 for a bigger log
"""

from __future__ import annotations

import json
import os
import random
import re
import resource
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from time import perf_counter, process_time
from typing import Any

from medic.services.analyzer.classify import analyze_log
from medic.services.analyzer.knowledge import KnowledgeBase, default_knowledge_base
from medic.services.analyzer.logtext import clean_line
from medic.services.analyzer.matcher import hyperscan_available

_BATCH = 4096
_ORDINARY = (
    "{ts} \x1b[32mPASSED\x1b[0m tests/unit/test_module_{n}.py::test_case_{m} [ {p}%]",
    "{ts}   Downloading package-{n}.{m}.0-py3-none-any.whl ({p} kB)",
    "{ts} [INFO] Compiling {n} source files to /home/runner/work/app/app/target/classes",
    "{ts} ok  \tgithub.com/acme/app/internal/pkg{n}\t0.{m}s",
    "{ts} npm http fetch GET 200 https://registry.npmjs.org/pkg-{n} {m}ms (cache hit)",
    "{ts}    Compiling crate-{n} v0.{m}.{p}",
    "{ts} [command]/usr/bin/git -c protocol.version=2 fetch --no-tags --depth=1 origin {n}",
    "{ts} ##[group]Run actions/setup-node@v4 step {n}",
    "{ts} ##[endgroup]",
)
_FAILURES = (
    "{ts} FAILED tests/test_orders.py::test_total_{n} - assert {m} == {p}",
    "{ts} npm ERR! code ECONNRESET",
    "{ts} src/main.c:{n}:{m}: error: 'x' undeclared (first use in this function)",
    "{ts} ##[error]Process completed with exit code 1.",
)


def synthetic_log(megabytes: float, *, seed: int = 7) -> list[str]:
    """Raw lines summing to about ``megabytes`` MiB; one line in a hundred is a failure."""
    rng = random.Random(seed)
    lines: list[str] = []
    size = 0
    target = int(megabytes * 1024 * 1024)
    while size < target:
        template = rng.choice(_FAILURES if rng.random() < 0.01 else _ORDINARY)
        line = template.format(
            ts=f"2025-10-11T22:{rng.randrange(60):02d}:{rng.randrange(60):02d}.{rng.randrange(10**7):07d}Z",
            n=rng.randrange(1000),
            m=rng.randrange(1000),
            p=rng.randrange(100),
        )
        lines.append(line)
        size += len(line) + 1
    return lines


def _batches(lines: Sequence[str]) -> list[list[str]]:
    return [list(lines[i : i + _BATCH]) for i in range(0, len(lines), _BATCH)]


def _python_re_scanner(knowledge_base: KnowledgeBase) -> tuple[Callable[[list[str]], int], int]:
    """One alternation of every pattern Python's ``re`` accepts; returns (scan, skipped)."""
    parts, skipped = [], 0
    for rule in knowledge_base.rules:
        for pattern in rule.patterns:
            try:
                re.compile(pattern)
            except re.error:
                skipped += 1
                continue
            parts.append(f"(?:{pattern})")
    combined = re.compile("|".join(parts), re.IGNORECASE | re.MULTILINE)

    def scan(batch: list[str]) -> int:
        return sum(1 for _ in combined.finditer("\n".join(batch)))

    return scan, skipped


def _throughput(scan: Callable[[list[str]], Any], batches: list[list[str]], size: int) -> float:
    """MB per CPU second of this process."""
    started = process_time()
    for batch in batches:
        scan(batch)
    return size / (1024 * 1024) / (process_time() - started)


def _grep_pattern(pattern: str) -> str | None:
    """The RE2 pattern in GNU ERE (``\\d`` spelt out), or None where ERE has no equivalent."""
    if re.search(r"\(\?(?!:)|\\[pPQEzAC]", pattern):
        return None
    return pattern.replace("(?:", "(").replace(r"\d", "[0-9]").replace(r"\D", "[^0-9]")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def grep_figures(
    cleaned: list[str], knowledge_base: KnowledgeBase, matcher_lines: int
) -> list[dict[str, Any]]:
    """GNU grep over the same text with the same patterns; lines it counted beside the matcher's."""
    grep = shutil.which("grep")
    if grep is None:
        return [{"figure": "analyzer_matcher_grep", "value": None, "note": "grep is not installed"}]
    translated = [_grep_pattern(p) for rule in knowledge_base.rules for p in rule.patterns]
    usable = [p for p in translated if p is not None]
    figures = []
    with tempfile.TemporaryDirectory(prefix="medic-grep-bench-") as tmp:
        text, patterns = Path(tmp) / "log.txt", Path(tmp) / "patterns.txt"
        text.write_bytes(("\n".join(cleaned) + "\n").encode("utf-8", "replace"))
        patterns.write_text("\n".join(usable) + "\n", encoding="utf-8")
        size = text.stat().st_size / (1024 * 1024)
        for locale in ("C.UTF-8", "C"):
            cpu = _children_cpu()
            done = subprocess.run(  # noqa: S603 - fixed argv
                [grep, "-E", "-i", "-c", "-f", str(patterns), str(text)],
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, "LC_ALL": locale},
            )
            seconds = _children_cpu() - cpu
            figures.append(
                {
                    "figure": f"analyzer_matcher_grep_{'utf8' if locale != 'C' else 'c_locale'}",
                    "value": round(size / seconds, 2) if seconds > 0 else None,
                    "unit": "MB/s",
                    "lines_matched": int(done.stdout.strip() or 0),
                    "matcher_lines_matched": matcher_lines,
                    "note": f"baseline: GNU grep -E -i -c -f, LC_ALL={locale}, {len(usable)} of "
                    f"{len(translated)} patterns (the rest have no ERE spelling), same text, grep's CPU time",
                }
            )
    return figures


def raw_hyperscan_figure(batches: list[list[str]], size: int, matcher: Any) -> dict[str, Any]:
    """Hyperscan alone on the same blocks with the matcher's database: no callback, no Python per match."""
    database = matcher._databases[0]
    blocks = [("\n".join(batch)).encode("utf-8", "replace") for batch in batches]
    scratch = database._scratch()
    started = process_time()
    for block in blocks:
        database._db.scan(block, scratch=scratch)
    rate = size / (1024 * 1024) / (process_time() - started)
    return {
        "figure": "analyzer_matcher_hyperscan_raw",
        "value": round(rate, 2),
        "unit": "MB/s",
        "note": "ceiling: the same database scanning the same pre-encoded blocks without a match callback",
    }


def matcher_figures(megabytes: float) -> list[dict[str, Any]]:
    raw = synthetic_log(megabytes)
    cleaned = [clean_line(line)[0] for line in raw]
    size = sum(len(line.encode()) + 1 for line in cleaned)
    batches = _batches(cleaned)
    figures: list[dict[str, Any]] = []
    engines = ("hyperscan", "re2") if hyperscan_available() else ("re2",)
    for engine in engines:
        knowledge_base = default_knowledge_base(engine)
        rate = _throughput(knowledge_base.matcher.scan_lines, batches, size)
        patterns = sum(len(rule.patterns) for rule in knowledge_base.rules)
        note = f"{len(knowledge_base.rules)} rules, {patterns} patterns, CPU time"
        figures.append(
            {"figure": f"analyzer_matcher_{engine}", "value": round(rate, 2), "unit": "MB/s", "note": note}
        )
    if hyperscan_available():
        matcher = default_knowledge_base("hyperscan").matcher
        figures.append(raw_hyperscan_figure(batches, size, matcher))
        hit_lines = sum(len({line for line, _ in matcher.scan_lines(batch)}) for batch in batches)
        figures += grep_figures(cleaned, default_knowledge_base(), hit_lines)
    python_scan, skipped = _python_re_scanner(default_knowledge_base("re2"))
    sample = batches[: max(1, len(batches) // 16)]  # it is ~100x slower; the rate is per MB anyway
    rate = _throughput(python_scan, sample, sum(len(line.encode()) + 1 for b in sample for line in b))
    figures.append(
        {
            "figure": "analyzer_matcher_python_re",
            "value": round(rate, 2),
            "unit": "MB/s",
            "note": f"baseline: one re alternation, finditer per batch, on 1/16 of the log "
            f"({skipped} patterns re refused)",
        }
    )
    started = perf_counter()
    analyze_log(raw, knowledge_base=default_knowledge_base())
    whole = len("\n".join(raw).encode()) / (1024 * 1024) / (perf_counter() - started)
    figures.append(
        {
            "figure": "analyzer_analyze_log",
            "value": round(whole, 2),
            "unit": "MB/s",
            "note": f"end to end on the raw {megabytes:g} MiB log: clean, match, excerpt, classify",
        }
    )
    return figures


def _quality_rows(corpus: str, cases: list[Any], *, use_baseline: bool | None = None) -> list[dict[str, Any]]:
    """Analyzer, last-80 and last-200 side by side on the same logs, in this run."""
    from tests.quality import scoring

    rows = []
    strategies: list[tuple[str, scoring.Score]] = []
    if use_baseline is None:
        strategies.append(("analyzer", scoring.score_analyzer(cases)))
    else:
        strategies.append(("analyzer", scoring.score_analyzer(cases, use_baseline=False)))
        strategies.append(("analyzer+baseline", scoring.score_analyzer(cases, use_baseline=True)))
    strategies += [("last_80", scoring.score_tail(cases, 80)), ("last_200", scoring.score_tail(cases, 200))]
    for name, score in strategies:
        row: dict[str, Any] = {
            "figure": f"analyzer_quality_{corpus}",
            "strategy": name,
            **scoring.figures(score),
        }
        row["precision"] = {
            category: None if (p := score.precision(category)) is None else round(p, 4)
            for category in sorted({got for _, got in score.confusion})
        }
        row["automatic_precision"] = {
            category: {
                "precision": None if (p := score.precision(category)) is None else round(p, 4),
                "said": score.predicted(category),
            }
            for category in scoring.AUTOMATIC_CATEGORIES
        }
        if name.startswith("analyzer"):
            row["confusion"] = score.confusion_rows()
        rows.append(row)
    return rows


def corpus_figures() -> list[dict[str, Any]]:
    """Excerpt recall, hit rate, category accuracy, confusion and precision on every corpus."""
    from tests.quality import scoring

    real = scoring.load_cases(scoring.REAL)
    failing = [case for case in real if case.category != "none"]
    rows: list[dict[str, Any]] = []
    rows += _quality_rows("real", failing)
    rows += _quality_rows("real_with_passing_jobs", real)
    rows += _quality_rows("real_dev_half", scoring.split_half(failing, "dev"))
    rows += _quality_rows("real_check_half", scoring.split_half(failing, "check"))
    rows += _quality_rows("real_pairs", scoring.load_pairs(), use_baseline=True)
    rows += _quality_rows("synthetic_in_sample", scoring.load_cases(scoring.SYNTHETIC))
    rows += _quality_rows("synthetic_holdout", scoring.load_cases(scoring.HOLDOUT))
    passing = [case for case in real if case.category == "none"]
    said = scoring.score_analyzer(passing).confusion_rows().get("none", {})
    rows.append({"figure": "analyzer_quality_real_passing_jobs", "cases": len(passing), "said": said})
    return rows


def run() -> list[dict[str, Any]]:
    megabytes = float(os.environ.get("BENCH_ANALYZER_MB", "16"))
    return matcher_figures(megabytes) + corpus_figures()


if __name__ == "__main__":
    for figure in run():
        print(json.dumps(figure), flush=True)
