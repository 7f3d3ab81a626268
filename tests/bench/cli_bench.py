"""Start-up of the ``medic`` command, as a whole process, against ``python -c pass`` in the same run.

Each figure is the median of several runs (``BENCH_CLI_RUNS``, default 7) with the wall time
and the CPU time (user + system, from ``getrusage`` of the child): the machine is shared, so
wall time is noisy and CPU time is the steadier figure. The baseline is the interpreter alone,
so what a figure adds is ci-medic's own cost. ``medic analyze`` is measured with an empty
rules cache (the process parses the rule file, compiles the rule base into Hyperscan and stores
both) and with the cache the previous run left (the usual case: the rules rarely change), as
``--json`` and as the text report (which loads rich). Each figure gives the 1-minute load
average before and after its runs: a figure measured under load says so.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
LOG = ROOT / "tests" / "data" / "real-ci-logs" / "bugswarm"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _measure(
    argv: list[str], runs: int, *, fresh_cache: bool = False, primed: bool = False
) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of ``runs`` runs; a fresh XDG cache directory per run if asked, or
    (``primed``) one shared directory filled by an untimed run first."""
    walls, cpus = [], []
    with tempfile.TemporaryDirectory(prefix="medic-cli-bench-") as shared:
        if primed:
            env = {**os.environ, "XDG_CACHE_HOME": str(Path(shared) / "warm")}
            subprocess.run(argv, capture_output=True, check=False, timeout=300, env=env)  # noqa: S603 - fixed argv
        for run in range(runs):
            cache = Path(shared) / (str(run) if fresh_cache else "warm")
            env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
            cpu = _children_cpu()
            started = time.perf_counter()
            subprocess.run(argv, capture_output=True, check=False, timeout=300, env=env)  # noqa: S603 - fixed argv
            walls.append(time.perf_counter() - started)
            cpus.append(_children_cpu() - cpu)
    return walls, cpus


def _figure(
    name: str,
    measure: Callable[[], tuple[list[float], list[float]]],
    baseline: tuple[list[float], list[float]],
    note: str,
) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    walls, cpus = measure()
    return {
        "figure": name,
        "value": round(statistics.median(walls), 3),
        "unit": "s",
        "min": round(min(walls), 3),
        "max": round(max(walls), 3),
        "cpu_s": round(statistics.median(cpus), 3),
        "cpu_min_s": round(min(cpus), 3),
        "cpu_max_s": round(max(cpus), 3),
        "runs": len(walls),
        "baseline_python_s": round(statistics.median(baseline[0]), 3),
        "baseline_python_cpu_s": round(statistics.median(baseline[1]), 3),
        "load_average_1m_before": round(load_before, 2),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "note": note,
    }


def run() -> list[dict[str, Any]]:
    runs = int(os.environ.get("BENCH_CLI_RUNS", "7"))
    medic = str(Path(sys.executable).with_name("medic"))
    baseline = _measure([sys.executable, "-c", "pass"], runs)
    figures = [
        _figure(
            "cli_help_seconds",
            lambda: _measure([medic, "--help"], runs),
            baseline,
            "medic --help, cold process",
        )
    ]
    logs = sorted(LOG.glob("*.log"), key=lambda p: abs(p.stat().st_size - 100_000))
    if logs:
        log = logs[0]
        argv = [medic, "analyze", str(log), "--json"]
        what = f"medic analyze --json on {log.name} ({log.stat().st_size} bytes), cold process"
        figures.append(
            _figure(
                "cli_analyze_seconds_empty_cache",
                lambda: _measure(argv, runs, fresh_cache=True),
                baseline,
                f"{what}, empty rules cache",
            )
        )
        figures.append(
            _figure(
                "cli_analyze_seconds",
                lambda: _measure(argv, runs, primed=True),
                baseline,
                f"{what}, parsed and compiled rules cached",
            )
        )
        figures.append(
            _figure(
                "cli_analyze_text_seconds",
                lambda: _measure(argv[:-1], runs, primed=True),
                baseline,
                f"medic analyze (text report) on {log.name}, cold process, rules cached",
            )
        )
    return figures
