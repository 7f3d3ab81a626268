"""``make bench``: one JSON object per figure on stdout, baselines measured in the same run.

BENCH_PROFILE=0 leaves out the pipeline's pyinstrument profile (its CPU split by service).
Sizes can be changed with BENCH_FAILURES (pipeline burst), BENCH_RAW_MESSAGES (JetStream
baseline), BENCH_SLACK_FAILURES / BENCH_SLACK_CLICKS (Slack notices and clicks) and
BENCH_REPLAY_EVENTS (projector replay; the issue asks for 1,000,000, which
takes several minutes on two cores).
The pipeline runs in each deployment shape of BENCH_SHAPES (default
``one_process,process_per_service``: every service in one process as ``medic run``, or each in
its own as the Helm chart); the steady-rate latency run sends BENCH_STEADY_RATE webhooks a
second (default 20) for BENCH_STEADY_SECONDS (default 30; 0 skips it), after the same path for
10 s at BENCH_STEADY_LOW_RATE (default 2 a second; 0 skips it), its no-backlog baseline; each
run's first 2 s are its warm-up, whose latencies are printed apart from the steady state's.
BENCH_ONLY=pipeline,cli (any of pipeline, monitor, cli, analyzer, slack, replay) runs only
those sections.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medic.embedded import EmbeddedNats, EmbeddedPostgres


def _postmaster_pid(pgdata: Path) -> int | None:
    """PostgreSQL's own record of its postmaster (first line of ``postmaster.pid``)."""
    try:
        return int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@contextlib.contextmanager
def servers() -> Iterator[tuple[str, str, int | None, int | None]]:
    with tempfile.TemporaryDirectory(prefix="medic-bench-") as tmp:
        nats = None if os.environ.get("NATS_URL") else EmbeddedNats.start(Path(tmp) / "nats")
        pg = (
            None
            if os.environ.get("DATABASE_URL")
            else EmbeddedPostgres.start(Path(tmp) / "pg", delete_on_stop=True)
        )
        try:
            yield (
                os.environ.get("NATS_URL") or nats.url,  # type: ignore[union-attr]
                os.environ.get("DATABASE_URL") or pg.url,  # type: ignore[union-attr]
                nats.process.pid if nats is not None else None,
                _postmaster_pid(pg.pgdata) if pg is not None else None,
            )
        finally:
            if pg is not None:
                pg.stop()
            if nats is not None:
                nats.stop()


def _as_baseline(one_process: dict[str, Any]) -> dict[str, Any]:
    """The one-process run's figures as the per-service shape's baselines, figure by figure."""
    figures = one_process.get("one_process_figures", {})

    def pick(name: str) -> dict[str, Any] | None:
        return {"figure": name, "value": figures[name]} if name in figures else None

    return {
        "rate": pick("pipeline_failures_per_second"),
        "latency_p50": pick("pipeline_latency_p50"),
        "latency_p99": pick("pipeline_latency_p99"),
        "cpu": pick("pipeline_cpu_ms_per_failure"),
    }


def emit(figures: list[dict[str, Any]]) -> None:
    for figure in figures:
        if "figure" not in figure and "name" in figure:
            figure = {"figure": figure["name"], **{k: v for k, v in figure.items() if k != "name"}}
        print(json.dumps(figure), flush=True)


async def pipeline_section(
    nats_url: str, database_url: str, nats_pid: int | None, postgres_pid: int | None
) -> None:
    from tests.bench import pipeline_bench

    failures = int(os.environ.get("BENCH_FAILURES", "500"))
    raw_messages = int(os.environ.get("BENCH_RAW_MESSAGES", "20000"))
    shapes = [s for s in os.environ.get("BENCH_SHAPES", ",".join(pipeline_bench.SHAPES)).split(",") if s]
    unknown = set(shapes) - set(pipeline_bench.SHAPES)
    if unknown:
        raise SystemExit(f"BENCH_SHAPES: unknown {sorted(unknown)}; known: {pipeline_bench.SHAPES}")
    steady_rate = float(os.environ.get("BENCH_STEADY_RATE", "20"))
    steady_seconds = float(os.environ.get("BENCH_STEADY_SECONDS", "30"))
    low_rate = float(os.environ.get("BENCH_STEADY_LOW_RATE", "2"))

    raw = await pipeline_bench.raw_jetstream_figures(nats_url, messages=raw_messages, size=2048)
    emit(raw)
    raw_rates = {
        "figure": "raw_jetstream publish and consume",
        "publish": raw[0]["value"],
        "consume": raw[1]["value"],
        "unit": "msg/s",
    }
    one_process: dict[str, Any] = {"rate": raw_rates}
    rate = None
    for shape in shapes:
        run = await pipeline_bench.run_pipeline(
            nats_url,
            database_url,
            shape=shape,
            failures=failures,
            mode="burst",
            value=16,
            nats_pid=nats_pid,
            postgres_pid=postgres_pid,
        )
        figures = pipeline_bench.burst_figures(
            run, one_process if shape == "one_process" else _as_baseline(one_process)
        )
        emit(figures)
        if shape == "one_process":
            rate = figures[0]["value"]
            one_process = {"one_process_figures": {f["figure"]: f["value"] for f in figures}}
    if os.environ.get("BENCH_PROFILE", "1") != "0":
        run = await pipeline_bench.run_pipeline(
            nats_url,
            database_url,
            shape="one_process",
            failures=min(failures, 200),
            mode="burst",
            value=16,
            nats_pid=nats_pid,
            postgres_pid=postgres_pid,
            profile=True,
        )
        emit([pipeline_bench.profile_figure(run)])
    if steady_seconds > 0:
        floor = await pipeline_bench.raw_jetstream_latency(
            nats_url, rate=steady_rate, messages=max(1, int(min(steady_seconds, 10) * steady_rate)), size=2048
        )
        for shape in shapes:
            quiet = None
            if low_rate > 0:
                run = await pipeline_bench.run_pipeline(
                    nats_url,
                    database_url,
                    shape=shape,
                    failures=max(1, int(low_rate * (10 + pipeline_bench.WARM_UP_SECONDS))),
                    mode="steady",
                    value=low_rate,
                    nats_pid=nats_pid,
                    postgres_pid=postgres_pid,
                )
                quiet = pipeline_bench.low_rate_latencies(run, low_rate)
            run = await pipeline_bench.run_pipeline(
                nats_url,
                database_url,
                shape=shape,
                failures=max(1, int(steady_rate * steady_seconds)),
                mode="steady",
                value=steady_rate,
                nats_pid=nats_pid,
                postgres_pid=postgres_pid,
            )
            emit(pipeline_bench.steady_figures(run, steady_rate, floor, quiet))
    if rate is not None:
        baseline = min(raw[0]["value"], raw[1]["value"])
        emit(
            [
                {
                    "figure": "pipeline_vs_raw_jetstream",
                    "value": round(rate / baseline, 4),
                    "unit": "ratio",
                    "note": "failures/s through the services in one process / slower of raw publish and "
                    "consume msg/s",
                }
            ]
        )


SECTIONS = ("pipeline", "monitor", "cli", "analyzer", "slack", "replay")


async def main(
    nats_url: str, database_url: str, nats_pid: int | None = None, postgres_pid: int | None = None
) -> None:
    only = set(os.environ.get("BENCH_ONLY", ",".join(SECTIONS)).split(",")) - {""}
    if only - set(SECTIONS):
        raise SystemExit(f"BENCH_ONLY: unknown {sorted(only - set(SECTIONS))}; known: {SECTIONS}")
    if "pipeline" in only:
        await pipeline_section(nats_url, database_url, nats_pid, postgres_pid)
    if "monitor" in only:
        from tests.bench import monitor_bench

        emit(await monitor_bench.run(nats_url))
    if "cli" in only:
        from tests.bench import cli_bench

        emit(cli_bench.run())
    if "analyzer" in only:
        from tests.bench import analyzer_bench

        emit(analyzer_bench.run())
    if "slack" in only:
        from tests.bench import slack_bench

        emit(
            await slack_bench.run(
                nats_url,
                failures=int(os.environ.get("BENCH_SLACK_FAILURES", "24")),
                clicks=int(os.environ.get("BENCH_SLACK_CLICKS", "100")),
            )
        )
    if "replay" in only:
        from tests.bench import projector_bench

        events = int(os.environ.get("BENCH_REPLAY_EVENTS", "1000000"))
        emit(await projector_bench.run(nats_url, database_url, events=events, postgres_pid=postgres_pid))


if __name__ == "__main__":
    from medic.telemetry import configure

    configure("ci-medic-bench", level="WARNING")  # logs to stderr; stdout carries only figures
    with servers() as (nats_url, database_url, nats_pid, postgres_pid):
        asyncio.run(main(nats_url, database_url, nats_pid, postgres_pid))
