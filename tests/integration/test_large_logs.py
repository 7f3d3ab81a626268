"""A log tail too large for an event travels by reference and is analysed whole."""

from __future__ import annotations

from medic.bus import Bus
from medic.config import load_settings
from medic.events import AnalysisCompleted, Category
from medic.logstore import inline_budget
from medic.runtime import ServiceHost
from medic.sandbox.github_store import bytes_source
from medic.services.analyzer.knowledge import default_knowledge_base
from medic.services.analyzer.service import AnalyzerService
from tests.integration.monitor_support import (
    monitor_world,
    post_webhook,
    run_completed_payload,
    wait_for_detected,
)
from tests.waiting import wait_for_events

NOISE = "2026-11-25T10:00:00.0000000Z building module {n}: ok " + "x" * 60 + "\n"
CAUSE = "2026-11-25T10:10:00.0000000Z npm ERR! code ECONNRESET\n"


async def test_a_large_log_goes_by_reference_and_the_analyzer_reads_it_whole(bus: Bus) -> None:
    # the cause sits 1.7 MB before the end: outside the inline tail, inside the stored 2 MiB one
    head = "".join(NOISE.format(n=n) for n in range(1_000))
    tail = "".join(NOISE.format(n=n) for n in range(1_000, 16_000))
    log = (head + CAUSE + tail).encode()
    assert len(log) > 1024 * 1024
    analyzer = AnalyzerService(bus=bus, knowledge_for=lambda _: default_knowledge_base("re2"), model=None)
    host = ServiceHost(settings=load_settings(), bus=bus, services=[analyzer])
    async with monitor_world(bus) as world:
        await host.start()
        try:
            run = world.sandbox.add_failed_run("acme/big", "network_error", log=bytes_source(log))
            url = await world.serve(await world.monitor())
            response = await post_webhook(url, "workflow_run", run_completed_payload(world, run))
            assert response.status_code == 202
            [event] = await wait_for_detected(bus, 1)
            [analysis] = await wait_for_events(bus, "AnalysisCompleted", 1)
        finally:
            await host.stop()

    [job] = event.payload.failed_jobs
    assert job.log_ref is not None
    assert job.log_truncated
    assert len(job.log_tail.encode()) <= inline_budget(1)
    assert "ECONNRESET" not in job.log_tail
    # the analyzer, fed through the bus, read the stored tail: the reset is in what it matched
    assert isinstance(analysis, AnalysisCompleted) and analysis.causation_id == event.event_id
    assert "network-transient" in analysis.payload.matched_rules
    assert any("ECONNRESET" in line.text for line in analysis.payload.excerpt)
    # 15,000 clean lines follow the reset, so it is not the failure's last word: no automatic category
    assert analysis.payload.category is not Category.INFRASTRUCTURE


def test_the_inline_budget_keeps_up_to_256_jobs_under_the_max_payload() -> None:
    for jobs in (1, 2, 10, 100, 256):
        assert inline_budget(jobs) * jobs <= 512 * 1024
    assert inline_budget(1) == 512 * 1024
