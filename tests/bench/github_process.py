"""The sandbox GitHub in a process of its own, for the pipeline bench.

In the same process as the services it would take its share of their event loop and CPU
(every log, job list and history query), and the figure would not be the system's own.
Here it prepares the failed runs and their signed-to-be webhook bodies, writes them to a
file, says ``ready`` on stdout, serves until its stdin closes, and then prints the CPU
seconds it used (``getrusage``) and the GitHub requests it counted, as one JSON line. The
sandbox model (the analyzer's second opinion) is served here too, on MODEL_PORT, so that
neither sandbox is counted in a measured process whatever the services' deployment shape.

    python -m tests.bench.github_process PORT MODEL_PORT WEBHOOK_URL FAILURES OUT_FILE
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
from pathlib import Path

from medic.events import derive_failure_id
from medic.runtime import HttpServer
from medic.sandbox.github import create_sandbox_github
from medic.sandbox.github_payloads import Links, workflow_run_event
from medic.sandbox.github_scenarios import scenario_mix
from medic.sandbox.openai import create_sandbox_model
from tests.pipeline import WEBHOOK_SECRET


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def serve(port: int, model_port: int, webhook_url: str, failures: int, out: Path) -> None:
    sandbox = create_sandbox_github(
        webhook_url=webhook_url, webhook_secret=WEBHOOK_SECRET, rerun_delay_seconds=0.2
    )
    server = HttpServer(sandbox.app, port=port)
    await server.start()
    model_server = HttpServer(create_sandbox_model().app, port=model_port)
    await model_server.start()
    links = Links(api=server.url)
    with out.open("w", encoding="utf-8") as handle:
        for index, scenario in enumerate(scenario_mix(failures, start=0)):
            run = sandbox.store.add_failed_run(f"bench-org/repo-{index % 5}", scenario)
            delivery = sandbox.webhooks.prepare(
                "workflow_run", workflow_run_event("completed", run, run.latest, links)
            )
            failure_id = derive_failure_id(run.repository.full_name, run.id, 1)
            line = {"failure_id": failure_id, "guid": delivery.guid, "body": delivery.body.decode()}
            handle.write(json.dumps(line) + "\n")
    prepared = _cpu_seconds()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await sandbox.drain()
    requests = sum(window.used for window in sandbox.budget.windows.values())
    print(
        json.dumps({"cpu_s": _cpu_seconds(), "cpu_preparing_s": prepared, "requests": requests}), flush=True
    )
    await server.stop()
    await model_server.stop()


if __name__ == "__main__":
    port, model_port, webhook_url, failures, out = sys.argv[1:6]
    asyncio.run(serve(int(port), int(model_port), webhook_url, int(failures), Path(out)))
