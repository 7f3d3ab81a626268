"""A running ``medic service safety-gate`` picks up an edited config file without a restart:
the next decision uses the new threshold, the change is a ConfigReloaded event on the bus,
and a bad edit is refused (the key named in the log) while the last good settings stay."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from medic.bus import Bus, Delivery, Topology
from medic.embedded import free_port
from medic.events import (
    ActionKind,
    AnalysisCompleted,
    AnalysisCompletedPayload,
    AnalysisMethod,
    Category,
    ConfigReloaded,
    Event,
    GateDecided,
    ProposedAction,
)

pytestmark = pytest.mark.e2e
MEDIC = str(Path(sys.executable).parent / "medic")


class Seen:
    def __init__(self) -> None:
        self.decisions: dict[int, GateDecided] = {}
        self.reloads: list[ConfigReloaded] = []
        self.changed = asyncio.Event()

    async def handle(self, event: Event, delivery: Delivery) -> None:
        if isinstance(event, GateDecided):
            self.decisions[event.payload.run_id] = event
        elif isinstance(event, ConfigReloaded):
            self.reloads.append(event)
        self.changed.set()

    async def until(self, check: object, what: str) -> None:
        deadline = asyncio.get_running_loop().time() + 60
        while not check():  # type: ignore[operator]
            remaining = deadline - asyncio.get_running_loop().time()
            assert remaining > 0, f"waited in vain for {what}"
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(remaining, 0.5))


def analysis(run_id: int) -> AnalysisCompleted:
    return AnalysisCompleted(
        failure_id=f"reload-{run_id}",
        actor="analyzer",
        payload=AnalysisCompletedPayload(
            repository="acme/web",
            run_id=run_id,
            run_attempt=1,
            category=Category.INFRASTRUCTURE,
            risk=3,
            confidence=0.95,
            proposed_action=ProposedAction(kind=ActionKind.RERUN_FAILED_JOBS),
            method=AnalysisMethod.RULES,
            fingerprint="f",
            retryable=True,
        ),
    )


@pytest.fixture
async def gate_process(
    tmp_path: Path, nats_url: str, topology: Topology
) -> AsyncIterator[tuple[Path, subprocess.Popen[str], Path]]:
    config = tmp_path / "medic.toml"
    config.write_text("risk_threshold = 4\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIC_") and k != "DATABASE_URL"}
    env |= {
        "NATS_URL": nats_url,
        "MEDIC_STREAM_NAME": topology.stream,
        "MEDIC_SUBJECT_PREFIX": topology.prefix,
    }
    log = tmp_path / "gate.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(  # noqa: S603, ASYNC220 - our own command; Popen returns at once
            [MEDIC, "service", "safety-gate", "--config", str(config), "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            async with httpx.AsyncClient() as http:
                for _ in range(600):
                    try:
                        if (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    assert proc.poll() is None, log.read_text()
                    await asyncio.sleep(0.1)
                else:
                    pytest.fail("the gate never became ready:\n" + log.read_text())
            yield config, proc, log
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)


async def test_a_running_gate_decides_with_the_edited_file(
    gate_process: tuple[Path, subprocess.Popen[str], Path], bus: Bus
) -> None:
    config, _, log = gate_process
    seen = Seen()
    watcher = bus.subscribe("watcher", seen.handle, event_types=["GateDecided", "ConfigReloaded"])
    await watcher.start()
    try:
        await bus.publish(analysis(1))
        await seen.until(lambda: 1 in seen.decisions, "the first decision")
        assert seen.decisions[1].payload.risk_threshold == 4

        partial = config.with_suffix(".new")
        partial.write_text("risk_threshold = 2\n")
        partial.replace(config)
        await seen.until(lambda: seen.reloads, "the ConfigReloaded event")
        (change,) = seen.reloads[0].payload.changes
        assert (change.key, change.old, change.new) == ("risk_threshold", 4, 2)

        await bus.publish(analysis(2))
        await seen.until(lambda: 2 in seen.decisions, "the second decision")
        assert seen.decisions[2].payload.risk_threshold == 2  # no restart in between

        partial.write_text("risk_threshold = 42\n")
        partial.replace(config)
        for _ in range(100):
            if "config_reload_refused" in log.read_text():
                break
            await asyncio.sleep(0.1)
        refused = [line for line in log.read_text().splitlines() if "config_reload_refused" in line]
        assert refused and "risk_threshold" in refused[0]
        await bus.publish(analysis(3))
        await seen.until(lambda: 3 in seen.decisions, "the third decision")
        assert seen.decisions[3].payload.risk_threshold == 2  # the last good settings stayed
        assert len(seen.reloads) == 1
    finally:
        await watcher.stop()
