"""``medic analyze LOGFILE [--baseline PASS.log] [--json]``: the analyzer on a log file, offline.

Useful to try a rule change against a real log, or to see why ci-medic classified a
failure as it did. The log is read in bounded chunks, so a huge log is fine. With
``--baseline`` (the last green log of the same job) the lines new in the failing log rank
first. Secrets are redacted on every output path, as they are before an excerpt leaves the
service. Log text is printed as plain text, never as markup, and ``--json`` is written as
is (no markup, no emoji codes such as ``:end:``): a log cannot restyle or forge the output.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from medic.redact import redact
from medic.services.analyzer.analysis import LogAnalysis
from medic.services.analyzer.classify import analyze_log
from medic.services.analyzer.knowledge import KnowledgeBase, default_knowledge_base
from medic.services.analyzer.logtext import iter_file_lines
from medic.services.analyzer.redaction import redact_excerpt

if TYPE_CHECKING:  # rich is loaded only to print a report or an error, not for ``--json``
    from rich.console import Console

PASSED = "none"
"""What ``medic analyze`` calls the category of a log whose job passed (the corpora's label)."""
EXIT_OK = 0
EXIT_UNREADABLE = 2


def analysis_document(analysis: LogAnalysis) -> dict[str, Any]:
    """The ``--json`` shape: one object, stable keys."""
    return {
        "category": PASSED if analysis.job_passed else analysis.category.value,
        "job_passed": analysis.job_passed,
        "risk": analysis.risk,
        "confidence": analysis.confidence,
        "action": analysis.proposed_action.model_dump(mode="json"),
        "fingerprint": analysis.fingerprint,
        "method": analysis.method.value,
        "matched_rules": list(analysis.matched_rules),
        "summary": analysis.summary,
        "baseline_used": any(note.startswith("baseline:") for note in analysis.notes),
        "notes": list(analysis.notes),
        "excerpt": [{"line": line.line, "text": line.text} for line in analysis.excerpt],
    }


def redacted(analysis: LogAnalysis) -> LogAnalysis:
    """The analysis with every log-derived text passed through ``redact``."""
    return analysis.model_copy(
        update={
            "summary": redact(analysis.summary),
            "notes": tuple(redact(note) for note in analysis.notes),
            "excerpt": redact_excerpt(analysis.excerpt),
        }
    )


def analyze_file(
    path: Path,
    *,
    as_json: bool,
    console: Console | None = None,
    knowledge_base: KnowledgeBase | None = None,
    max_lines: int = 80,
    baseline: Path | None = None,
    stdout: TextIO | None = None,
) -> int:
    """Print the analysis of one log file; 0 on success, 2 if a file cannot be read.

    ``--json`` goes to ``stdout`` as written by ``json.dumps`` (rich would turn ``:end:`` in
    log text into an emoji); the report and errors go through ``console`` (default: a rich
    console on stdout, made only when there is something to print) as plain ``Text``.
    """
    for candidate in (path, baseline):
        if candidate is not None and not candidate.is_file():
            reason = "no such file" if not candidate.exists() else "not a regular file"
            _error(console, f"error: cannot read {candidate}: {reason}")
            return EXIT_UNREADABLE
    try:
        analysis = analyze_log(
            iter_file_lines(path),
            knowledge_base=knowledge_base or default_knowledge_base(),
            max_lines=max_lines,
            baseline=iter_file_lines(baseline) if baseline is not None else None,
        )
    except OSError as exc:
        _error(console, f"error: cannot read {exc.filename or path}: {exc.strerror or exc}")
        return EXIT_UNREADABLE
    analysis = redacted(analysis)
    if as_json:
        out = stdout if stdout is not None else sys.stdout
        out.write(json.dumps(analysis_document(analysis), ensure_ascii=False) + "\n")
        out.flush()
    else:
        _print_report(analysis, console or _stdout_console())
    return EXIT_OK


def _stdout_console() -> Console:
    from rich.console import Console

    return Console()


def _error(console: Console | None, message: str) -> None:
    from rich.text import Text

    (console or _stdout_console()).print(Text(message), style="red")


def _print_report(analysis: LogAnalysis, console: Console) -> None:
    from rich.text import Text

    action = analysis.proposed_action
    action_text = action.kind.value + (f" (cache key {action.cache_key})" if action.cache_key else "")
    for label, value in (
        ("category", PASSED + " (the job passed)" if analysis.job_passed else analysis.category.value),
        ("risk", f"{analysis.risk}/10"),
        ("confidence", f"{analysis.confidence:.2f}"),
        ("action", action_text),
        ("fingerprint", analysis.fingerprint),
        ("method", analysis.method.value),
        ("rules", ", ".join(analysis.matched_rules) or "-"),
        ("summary", analysis.summary),
    ):
        console.print(Text.assemble((f"{label:>12}: ", "bold"), value))
    console.print(Text(f"excerpt ({len(analysis.excerpt)} lines):", style="bold"))
    width = len(str(analysis.excerpt[-1].line)) if analysis.excerpt else 1
    previous = 0
    for line in analysis.excerpt:
        if previous and line.line != previous + 1:
            console.print(Text(" " * width + "  …", style="dim"))
        console.print(Text.assemble((f"{line.line:>{width}} │ ", "dim"), line.text), soft_wrap=True)
        previous = line.line
