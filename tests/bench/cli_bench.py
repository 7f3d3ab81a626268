"""Start-up of the ``medic`` command, as a whole process, against ``python -c pass`` in the same run.

Each figure is the median of several cold runs (``BENCH_CLI_RUNS``, default 7); the baseline
is the interpreter alone, so what the figure adds is ci-medic's own import cost.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
LOG = ROOT / "tests" / "data" / "real-ci-logs" / "bugswarm"


def _seconds(argv: list[str], runs: int) -> list[float]:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=False, timeout=120)  # noqa: S603 - fixed argv
        timings.append(time.perf_counter() - started)
    return timings


def _figure(name: str, timings: list[float], baseline: list[float], note: str) -> dict[str, Any]:
    return {
        "figure": name,
        "value": round(statistics.median(timings), 3),
        "unit": "s",
        "min": round(min(timings), 3),
        "max": round(max(timings), 3),
        "baseline_python_s": round(statistics.median(baseline), 3),
        "note": note,
    }


def run() -> list[dict[str, Any]]:
    runs = int(os.environ.get("BENCH_CLI_RUNS", "7"))
    medic = str(Path(sys.executable).with_name("medic"))
    baseline = _seconds([sys.executable, "-c", "pass"], runs)
    figures = [
        _figure("cli_help_seconds", _seconds([medic, "--help"], runs), baseline, "medic --help, cold process")
    ]
    logs = sorted(LOG.glob("*.log"), key=lambda p: abs(p.stat().st_size - 100_000))
    if logs:
        log = logs[0]
        timings = _seconds([medic, "analyze", str(log), "--json"], runs)
        note = f"medic analyze --json on {log.name} ({log.stat().st_size} bytes), cold process"
        figures.append(_figure("cli_analyze_seconds", timings, baseline, note))
    return figures
