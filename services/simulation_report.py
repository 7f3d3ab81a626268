"""``medic simulate``'s side for people: a progress bar while failures are delivered, then a
short table of kinds and outcomes (``--json`` keeps every failure's details for scripts).

Exit codes: 0 done, 1 the sandbox could not be reached.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from medic.sandbox.simulate import (
    NOT_SEEN,
    failure_id_of,
    simulate_in_batches,
    summarize,
    wait_for_outcomes,
)

OUTCOME_ORDER = (
    "remediated",
    "awaiting_approval",
    "no_action",
    "remediation_failed",
    "rejected",
    "expired",
    "remediating",
    "analyzed",
    "detected",
    NOT_SEEN,
)


def run_simulation(url: str, api: str, failures: int, *, wait: float, as_json: bool) -> int:
    out, err = Console(), Console(stderr=True)
    try:
        created, states = asyncio.run(_drive(url, api, failures, wait=wait, err=err))
    except httpx.HTTPError as exc:
        err.print(f"[red]could not reach the sandbox at {url}:[/red] {exc}", highlight=False, soft_wrap=True)
        return 1
    if as_json:
        details = [
            {**run, "failure_id": failure_id_of(run), "state": (states or {}).get(failure_id_of(run))}
            for run in created
        ]
        print(json.dumps({"failures": details}, indent=2))
        return 0
    out.print(_table(created, states))
    if states is None:
        err.print(f"outcomes unknown: ci-medic's API at {api} did not answer", highlight=False)
    return 0


async def _drive(
    url: str, api: str, failures: int, *, wait: float, err: Console
) -> tuple[list[dict[str, Any]], dict[str, str] | None]:
    columns = (
        TextColumn("simulating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=False) as progress:
        task = progress.add_task("failures", total=failures)
        created = await simulate_in_batches(url, failures, progress=lambda n: progress.advance(task, n))
    try:
        states: dict[str, str] | None = await wait_for_outcomes(api, created, within=wait)
    except httpx.HTTPError:
        states = None
    return created, states


def _table(created: list[dict[str, Any]], states: dict[str, str] | None) -> Table:
    rows = summarize(created, states)
    seen = {state for row in rows for state in row.states}
    outcomes = [s for s in OUTCOME_ORDER if s in seen] + sorted(seen - set(OUTCOME_ORDER))
    table = Table("kind", "failures", *outcomes, title=f"{len(created)} simulated failures")
    for row in rows:
        table.add_row(row.kind, str(row.failures), *(str(row.states.get(s, 0) or "") for s in outcomes))
    totals = [str(sum(row.states.get(s, 0) for row in rows)) for s in outcomes]
    table.add_row("[bold]total[/bold]", f"[bold]{len(created)}[/bold]", *totals, end_section=True)
    return table
