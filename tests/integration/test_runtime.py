"""ServiceHost over real HTTP and a real bus: health, readiness, metrics, and draining on stop."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest

from medic.bus import Bus, Delivery
from medic.config import load_settings
from medic.events import Event, FailureDetected, FailureDetectedPayload, utc_now
from medic.runtime import HttpServer, Service, ServiceHost


class SlowRecorder(Service):
    """Records each FailureDetected; sleeps in the handler while ``hold`` is set."""

    consumes = (FailureDetected,)

    def __init__(self, name: str, *, hold_seconds: float = 0.0) -> None:
        self.name = name  # type: ignore[misc]  # a fresh durable per test
        self.hold_seconds = hold_seconds
        self.entered = asyncio.Event()
        self.finished: list[str] = []
        self.stopped = False

    async def handle(self, event: Event, delivery: Delivery) -> None:
        self.entered.set()
        await asyncio.sleep(self.hold_seconds)
        self.finished.append(event.event_id)

    async def stop(self) -> None:
        self.stopped = True


@dataclass
class Running:
    host: ServiceHost
    service: SlowRecorder
    url: str
    http: httpx.AsyncClient
    bus: Bus


def failure(run_id: int = 1) -> FailureDetected:
    return FailureDetected(
        failure_id=str(uuid.uuid4()),
        actor="test",
        payload=FailureDetectedPayload(
            repository="octo-org/octo-repo",
            run_id=run_id,
            run_attempt=1,
            workflow_name="CI",
            detected_at=utc_now(),
        ),
    )


@pytest.fixture
async def running(bus: Bus, request: pytest.FixtureRequest) -> AsyncIterator[Running]:
    hold = getattr(request, "param", 0.0)
    service = SlowRecorder(f"recorder-{uuid.uuid4().hex[:8]}", hold_seconds=hold)
    host = ServiceHost(settings=load_settings(), bus=bus, services=[service])
    server = HttpServer(host.app())
    await server.start()
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        yield Running(host, service, server.url, http, bus)
    await host.stop()
    await server.stop()


async def wait_until(check: Callable[[], bool | Awaitable[bool]], *, within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        result = check()
        if await result if inspect.isawaitable(result) else result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_healthz_is_ok_before_and_after_start(running: Running) -> None:
    assert (await running.http.get("/healthz")).json() == {"status": "ok"}
    await running.host.start()
    response = await running.http.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_readyz_is_503_before_start_and_200_after(running: Running) -> None:
    before = await running.http.get("/readyz")
    assert before.status_code == 503
    assert before.json()["ready"] is False
    assert before.json()["checks"]["started"] is False

    await running.host.start()
    after = await running.http.get("/readyz")
    assert after.status_code == 200, after.text
    checks = after.json()["checks"]
    assert checks["nats"] is True and checks["started"] is True
    assert checks[f"consumer:{running.service.name}"] is True
    assert checks[f"service:{running.service.name}"] is True


async def test_readyz_is_503_again_after_stop(running: Running) -> None:
    await running.host.start()
    await running.host.stop()
    assert (await running.http.get("/readyz")).status_code == 503
    assert running.service.stopped


async def test_metrics_count_a_handled_event(running: Running) -> None:
    await running.host.start()
    await running.bus.publish(failure())
    await wait_until(lambda: bool(running.service.finished))
    name = running.service.name

    async def counted() -> bool:
        text = (await running.http.get("/metrics")).text
        return any(
            line.startswith("medic_events_handled_total{")
            and f'service="{name}"' in line
            and 'outcome="ok"' in line
            and float(line.rsplit(" ", 1)[1]) >= 1
            for line in text.splitlines()
        )

    await wait_until(counted)
    response = await running.http.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("running", [1.5], indirect=True)
async def test_stop_drains_an_in_flight_handler_and_acks_it(running: Running) -> None:
    await running.host.start()
    event = failure()
    await running.bus.publish(event)
    await asyncio.wait_for(running.service.entered.wait(), timeout=10)
    assert running.service.finished == []  # the handler is asleep when stop() is called

    await running.host.stop()

    assert running.service.finished == [event.event_id]
    assert running.service.stopped
    assert await running.bus.pending(running.service.name) == 0


async def test_consumer_lag_is_exported_per_durable_consumer(bus: Bus) -> None:
    from prometheus_client import REGISTRY

    release = asyncio.Event()

    class Stuck(Service):
        name = "lagging"
        consumes = (FailureDetected,)
        concurrency = 1

        async def handle(self, event: Event, delivery: Delivery) -> None:
            await release.wait()  # the backlog stays until the test lets go

    host = ServiceHost(settings=load_settings(), bus=bus, services=[Stuck()])
    host.lag_interval_seconds = 0.1
    await bus.publish_many([failure(i) for i in range(1, 6)])
    await host.start()
    value = None
    try:
        for _ in range(50):
            value = REGISTRY.get_sample_value("medic_consumer_pending", {"consumer": "lagging"})
            if value == 5:
                break
            await asyncio.sleep(0.1)
    finally:
        release.set()
        await host.stop()
    assert value == 5


async def test_serve_says_ready_only_once_started_and_ctrl_c_is_its_own(bus: Bus) -> None:
    """``medic run`` prints "Ctrl-C stops everything" from ``ready``: by then every service has
    started and SIGINT/SIGTERM set the host's stop, instead of meeting asyncio's handler, which
    cancels start-up half-way (a Ctrl-C lost that way left ``medic run`` running)."""
    import gc
    import signal

    from medic.embedded import free_port

    service = SlowRecorder(f"recorder-{uuid.uuid4().hex[:8]}")
    host = ServiceHost(settings=load_settings(), bus=bus, services=[service])
    stop = asyncio.Event()
    seen: dict[str, object] = {}
    before = signal.getsignal(signal.SIGINT)

    def ready() -> None:
        seen["sigint"] = signal.getsignal(signal.SIGINT)
        seen["sigterm"] = signal.getsignal(signal.SIGTERM)
        stop.set()

    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(host.serve(host="127.0.0.1", port=free_port(), stop=stop, ready=ready), 30)
    finally:
        gc.unfreeze()  # serve() froze the test process's heap: its later garbage must stay collectable
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        signal.signal(signal.SIGINT, before)
    assert seen["sigint"] is not before and seen["sigint"] is not signal.default_int_handler
    assert seen["sigterm"] is not signal.SIG_DFL
    assert service.stopped  # drained after the stop


async def test_serve_freezes_what_start_up_built(bus: Bus) -> None:
    """Once serving, start-up's objects are out of the cyclic collector's reach: a full
    collection no longer re-scans them (120 ms with the loop held, in the steady-rate bench)."""
    import gc

    from medic.embedded import free_port

    service = SlowRecorder(f"recorder-{uuid.uuid4().hex[:8]}")
    host = ServiceHost(settings=load_settings(), bus=bus, services=[service])
    stop = asyncio.Event()
    frozen: list[int] = []
    built_at_start_up = [[n] for n in range(5_000)]  # lives through the serve, as modules do

    def ready() -> None:
        frozen.append(gc.get_freeze_count())
        tracked = {id(o) for o in gc.get_objects()}
        frozen.append(sum(1 for o in built_at_start_up if id(o) in tracked))
        stop.set()

    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(host.serve(host="127.0.0.1", port=free_port(), stop=stop, ready=ready), 30)
    finally:
        gc.unfreeze()  # the test process goes on: its later garbage must stay collectable
        import signal

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    count, still_scanned = frozen
    assert count >= len(built_at_start_up)
    assert still_scanned == 0
