"""How a service lives: start, serve health and metrics over HTTP, drain on SIGTERM, stop.

A :class:`Service` is domain wiring: the events it consumes, the handler, an optional
HTTP router, and start/stop hooks for background work. :class:`ServiceHost` runs one
service (``medic service <name>``, one per Kubernetes pod) or all of them in one process
(``medic run``) behind one HTTP port, with ``/healthz``, ``/readyz`` and ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import uvicorn
from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from medic.access_http import AccessGuard, sign_in_router
from medic.bus import Bus, Delivery, Subscription
from medic.config import Settings
from medic.events import EVENT_TYPES, ConfigReloaded, Envelope, Event, decode_event
from medic.heap import freeze_start_up
from medic.http_guard import HostileInputGuard
from medic.http_head import BoundedHeadHttpToolsProtocol
from medic.telemetry import instrument_app, logger

log = logger(__name__)


EVERY_EVENT: tuple[type[Envelope], ...] = EVENT_TYPES
"""``consumes = EVERY_EVENT``: a reader of the whole log (projector, notifier)."""

HOST_PRODUCES: tuple[type[Envelope], ...] = (ConfigReloaded,)
"""Published by every service host itself, whatever services it runs (a configuration reload)."""


class Service:
    """Base for the services. Subclasses declare ``name``, ``consumes`` and ``produces``.

    The declarations are the service's contract on the bus: the host subscribes to what it
    consumes, ``medic proto`` writes both into the AsyncAPI document, and a test checks that
    every consumed event has a producer and that each service publishes only what it declares.
    """

    name: ClassVar[str]
    consumes: ClassVar[tuple[type[Envelope], ...] | None] = None
    """Event types this service's durable consumer reads; ``None``: it has no consumer."""
    produces: ClassVar[tuple[type[Envelope], ...]] = ()
    """Event types this service publishes."""
    concurrency: ClassVar[int] = 16
    max_deferrals: ClassVar[int] = 0
    """Deliveries beyond ``max_deliver`` that only a :class:`~medic.consumer.Deferred` may spend."""

    def router(self) -> APIRouter | None:
        return None

    def decoder(self) -> Callable[[bytes], Any] | None:
        """How the consumer reads a message; ``None`` is :func:`medic.events.decode_event` (bad
        bytes go to the dead letters). The projector reads leniently and records what it cannot."""
        return None

    async def handle(self, event: Event, delivery: Delivery) -> None:
        raise NotImplementedError(f"{self.name} consumes events but has no handler")

    handle_batch: Callable[[list[tuple[Event, Delivery]]], Awaitable[None]] | None = None
    """Optional: a backlog in one call (the projector: many events, one transaction)."""

    async def start(self) -> None:
        """Start background work (timers, pollers). Called before the consumer starts."""

    async def stop(self) -> None:
        """Stop background work. Called after the consumer has drained."""

    def ready(self) -> bool:
        return True


def consumed_type_names(consumes: tuple[type[Envelope], ...]) -> tuple[str, ...]:
    """Subject filters for a consumer: ``()`` (the wildcard) for a reader of every event."""
    if set(consumes) == set(EVERY_EVENT):
        return ()
    return tuple(event_type_name(t) for t in consumes)


def event_type_name(event_type: type[Envelope]) -> str:
    return str(event_type.model_fields["event_type"].default)


@dataclass
class ServiceHost:
    settings: Settings
    bus: Bus
    services: Sequence[Service]
    mounts: dict[str, Any] = field(default_factory=dict)
    """Extra ASGI apps by path prefix (the sandboxes under ``medic run``)."""
    _subscriptions: list[Subscription] = field(default_factory=list)
    _started: bool = False
    _lag_task: asyncio.Task[None] | None = None
    _lag_stop: asyncio.Event = field(default_factory=asyncio.Event)
    lag_interval_seconds: float = 15.0

    def app(self) -> FastAPI:
        app = FastAPI(title="ci-medic", version="0.1.0")
        instrument_app(app)
        for service in self.services:
            router = service.router()
            if router is not None:
                app.include_router(router)

        @app.get("/healthz", tags=["operations"])
        async def healthz() -> dict[str, str]:
            return {"status": "ok"}

        @app.get("/readyz", tags=["operations"])
        async def readyz() -> JSONResponse:
            checks = self.readiness()
            status = 200 if all(checks.values()) else 503
            return JSONResponse({"ready": status == 200, "checks": checks}, status_code=status)

        @app.get("/metrics", tags=["operations"], include_in_schema=False)
        async def metrics() -> Response:
            return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

        for prefix, sub_app in self.mounts.items():
            app.mount(prefix, sub_app)
        policy = self.settings.access_policy()
        if policy.enforced:
            app.include_router(sign_in_router(policy))
        app.add_middleware(AccessGuard, policy=policy)
        app.add_middleware(HostileInputGuard)  # added last: runs first, before anything reads input
        return app

    def readiness(self) -> dict[str, bool]:
        checks = {"nats": self.bus.nc.is_connected, "started": self._started}
        for sub in self._subscriptions:
            checks[f"consumer:{sub.service}"] = sub.running
        for service in self.services:
            checks[f"service:{service.name}"] = service.ready()
        return checks

    async def start(self) -> None:
        """Start every service, then its consumers; ready after that."""
        for service in self.services:
            await service.start()
        for service in self.services:
            if service.consumes is None:
                continue
            sub = self.bus.subscribe(
                service.name,
                service.handle,
                event_types=consumed_type_names(service.consumes),
                max_deliver=self.settings.max_deliver,
                concurrency=service.concurrency,
                batch_handler=service.handle_batch,
                decode=service.decoder() or decode_event,
                max_deferrals=service.max_deferrals,
            )
            await sub.start()
            self._subscriptions.append(sub)
        self._started = True
        self._lag_stop.clear()
        self._lag_task = asyncio.create_task(self._sample_lag(), name="consumer-lag")
        log.info("services_started", services=[s.name for s in self.services])

    async def _sample_lag(self) -> None:
        """Keep ``medic_consumer_pending`` current for each durable consumer this host runs."""
        while self._started:
            for sub in list(self._subscriptions):
                with contextlib.suppress(Exception):  # a lag sample is never worth a crash
                    await self.bus.pending(sub.durable, stream=sub.stream)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lag_stop.wait(), self.lag_interval_seconds)

    async def stop(self) -> None:
        """Drain every consumer (in-flight handlers finish and ack), then stop the services."""
        self._started = False
        if self._lag_task is not None:
            # a flag, not cancel(): a client library that swallows CancelledError mid-request
            # would otherwise leave the sampler looping and this stop waiting forever
            self._lag_stop.set()
            await self._lag_task
        await asyncio.gather(*(sub.stop() for sub in self._subscriptions), return_exceptions=True)
        self._subscriptions.clear()
        for service in reversed(self.services):
            with contextlib.suppress(Exception):
                await service.stop()
        log.info("services_stopped")

    async def serve(
        self,
        *,
        host: str,
        port: int,
        stop: asyncio.Event | None = None,
        ready: Callable[[], None] | None = None,
    ) -> None:
        """Serve HTTP until SIGTERM/SIGINT (or ``stop``), then drain and stop: the process's life.

        First, what start-up built (clients, the rule base, the app) is frozen out of the cyclic
        collector's reach (:mod:`medic.heap`): full collections then take milliseconds, not a
        tenth of a second. Before anything is served or consumed, so the collection that goes
        with it delays no request and freezes no request's objects.

        ``ready`` is called once everything is started and the signals are ours: what it
        prints (``medic run``'s banner says Ctrl-C stops everything) is true by then. A
        Ctrl-C that came earlier, while services were starting, would have met asyncio's own
        handler, which cancels the main task mid-start-up and can be lost there."""
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        app = self.app()
        log.info("start_up_heap_frozen", objects=freeze_start_up())
        server = HttpServer(app, host=host, port=port)
        await server.start()
        await self.start()
        if ready is not None:
            ready()
        try:
            await stop.wait()
        finally:
            log.info("draining")
            await self.stop()
            await server.stop()


HTTP_PROTOCOL = BoundedHeadHttpToolsProtocol
"""uvicorn's protocol on httptools, the C parser (llhttp), with a bound on each request's head
(:mod:`medic.http_head`). Named, not left to uvicorn's default ("auto"), which falls back to the
pure-Python h11 without a word when httptools is missing. At a steady 20 failures/s, three runs
of 600 each in turn, h11 cost the services 4% more CPU (19.75 against 18.98 s) and the sandbox
GitHub 13% more (6.16 against 5.43 s)."""


def uvicorn_config(app: Any, *, host: str = "127.0.0.1", port: int = 0) -> uvicorn.Config:
    """How ci-medic serves HTTP everywhere: its services, and the sandboxes in tests and benches."""
    return uvicorn.Config(
        app, host=host, port=port, http=HTTP_PROTOCOL, log_level="warning", lifespan="off", access_log=False
    )


class _QuietServer(uvicorn.Server):
    """Uvicorn without its own signal handling: the host decides when to stop and drains first."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class HttpServer:
    """Uvicorn serving an ASGI app on a port, started and stopped from async code."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = _QuietServer(uvicorn_config(app, host=host, port=port))
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("HTTP server stopped during start-up")
            await asyncio.sleep(0.01)

    @property
    def port(self) -> int:
        sockets = self._server.servers[0].sockets
        return int(sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
