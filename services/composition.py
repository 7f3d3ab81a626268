"""The composition root: the one place that knows every service and builds them from settings.

``medic run`` (everything in one process, embedded servers and sandboxes when nothing is
configured) and ``medic service <name>`` (one service, as Kubernetes runs it) both come here.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the clients, the bus and the servers load only when a command needs them
    from medic.bus import Bus
    from medic.config import Settings
    from medic.contracts import ServiceRole
    from medic.embedded import EmbeddedNats, EmbeddedPostgres
    from medic.github.client import GitHubClient
    from medic.llm.client import ModelClient
    from medic.runtime import Service, ServiceHost
    from medic.slack.client import SlackClient

SANDBOX_GITHUB_PREFIX = "/sandbox/github"
SANDBOX_MODEL_PREFIX = "/sandbox/openai"
SANDBOX_SLACK_PREFIX = "/sandbox/slack"


@dataclass
class Infrastructure:
    """Where NATS and PostgreSQL are, and the embedded servers to stop when we leave."""

    nats_url: str
    database_url: str
    started: list[EmbeddedNats | EmbeddedPostgres] = field(default_factory=list)

    def stop(self) -> None:
        for server in reversed(self.started):
            with contextlib.suppress(Exception):
                server.stop()


def start_infrastructure(settings: Settings, data_dir: Path) -> Infrastructure:
    """Use ``NATS_URL`` / ``DATABASE_URL`` when set, else start the real servers from PyPI."""
    from medic.embedded import EmbeddedNats, EmbeddedPostgres, free_port
    from medic.local_servers import record_nats_url

    started: list[EmbeddedNats | EmbeddedPostgres] = []
    try:
        nats_url = settings.nats_url
        if nats_url is None:
            port = 4222 if _port_free(4222) else free_port()
            nats = EmbeddedNats.start(data_dir.resolve() / "nats", port=port)
            started.append(nats)
            nats_url = nats.url
            record_nats_url(data_dir, nats_url)  # `medic audit replay --data-dir` finds it here
        database_url = settings.database_url
        if database_url is None:
            pg = EmbeddedPostgres.start(data_dir.resolve() / "postgres")
            started.append(pg)
            database_url = pg.url
    except Exception:
        Infrastructure("", "", started).stop()
        raise
    return Infrastructure(nats_url, database_url, started)


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def webhook_secret(settings: Settings, data_dir: Path) -> str:
    """The configured secret, or one generated once for the sandbox and kept in the data dir."""
    configured = settings.webhook_secrets()
    if configured:
        return configured[0]
    path = data_dir / "webhook-secret"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(24)
    path.write_text(secret)
    path.chmod(0o600)
    return secret


@dataclass
class Parts:
    """Shared clients handed to the services; closed together."""

    bus: Bus
    github: GitHubClient
    model: ModelClient | None
    closers: list[Callable[[], Any]] = field(default_factory=list)
    slack: SlackClient | None = None

    async def close(self) -> None:
        for close in reversed(self.closers):
            with contextlib.suppress(Exception):
                result = close()
                if asyncio.iscoroutine(result):
                    await result


@contextlib.asynccontextmanager
async def open_parts(settings: Settings) -> AsyncIterator[Parts]:
    from medic.bus import Bus, Topology
    from medic.github.client import GitHubClient
    from medic.llm.client import ModelClient

    if settings.nats_url is None:
        raise RuntimeError("NATS_URL is not set")
    bus = await Bus.connect(settings.nats_url, Topology.from_settings(settings))
    github = GitHubClient.from_settings(settings)
    model = None
    if settings.model_base_url and settings.model_api_key:
        model = ModelClient(
            base_url=settings.model_base_url,
            api_key=settings.model_api_key.get_secret_value(),
            model=settings.model_name,
        )
    slack = None
    if settings.slack_bot_token is not None:
        from medic.slack.client import SlackClient
        from medic.slack.pacing import ChannelPacer

        slack = SlackClient(
            token=settings.slack_bot_token.get_secret_value(),
            base_url=settings.slack_api_url,
            pacer=ChannelPacer(per_second=settings.slack_messages_per_second),
        )
    parts = Parts(bus, github, model, closers=[bus.close, github.aclose], slack=slack)
    if model is not None:
        parts.closers.append(model.aclose)
    try:
        yield parts
    finally:
        await parts.close()


def _monitor(settings: Settings, parts: Parts) -> Service:
    from medic.services.monitor.service import MonitorService

    return MonitorService(settings=settings, bus=parts.bus, github=parts.github)


def _analyzer(settings: Settings, parts: Parts) -> Service:
    from medic.services.analyzer.knowledge import knowledge_for_settings
    from medic.services.analyzer.service import AnalyzerService

    return AnalyzerService(
        bus=parts.bus, knowledge_for=knowledge_for_settings(settings), model=parts.model, github=parts.github
    )


def _safety_gate(settings: Settings, parts: Parts) -> Service:
    from medic.services.safety_gate.service import SafetyGateService

    return SafetyGateService(settings=settings, bus=parts.bus)


def _executor(settings: Settings, parts: Parts) -> Service:
    from medic.services.executor.service import ExecutorService

    return ExecutorService(settings=settings, bus=parts.bus, github=parts.github)


def _approval(settings: Settings, parts: Parts) -> Service:
    from medic.services.approval.service import ApprovalService

    return ApprovalService(settings=settings, bus=parts.bus, slack=parts.slack)


def _notifier(settings: Settings, parts: Parts) -> Service:
    from medic.services.notifier.service import NotifierService
    from medic.services.notifier.webhook import WebhookSink

    webhook = None
    if settings.notify_webhook_urls and settings.notify_webhook_secret is not None:
        webhook = WebhookSink(
            urls=settings.notify_webhook_urls, secret=settings.notify_webhook_secret.get_secret_value()
        )
    return NotifierService(settings=settings, bus=parts.bus, slack=parts.slack, webhook=webhook)


def _projector(settings: Settings, parts: Parts) -> Service:
    from medic.services.projector.service import ProjectorService

    if settings.database_url is None:
        raise RuntimeError("the projector needs DATABASE_URL")
    return ProjectorService.from_settings(settings)


def _dashboard(settings: Settings, parts: Parts) -> Service:
    from medic.services.dashboard.service import DashboardService

    return DashboardService(api_url=settings.dashboard_api_url)


BUILDERS: dict[str, Callable[[Settings, Parts], Service]] = {
    "monitor": _monitor,
    "analyzer": _analyzer,
    "safety-gate": _safety_gate,
    "executor": _executor,
    "approval": _approval,
    "notifier": _notifier,
    "projector": _projector,
    "dashboard": _dashboard,
}
"""Every deployable service by name; imports are local so a pod loads only what it runs."""

SERVICE_NAMES = tuple(BUILDERS)


def build_service(name: str, settings: Settings, parts: Parts) -> Service:
    try:
        builder = BUILDERS[name]
    except KeyError:
        raise ValueError(f"unknown service {name!r}; known: {', '.join(SERVICE_NAMES)}") from None
    return builder(settings, parts)


def build_host(
    settings: Settings, parts: Parts, names: tuple[str, ...], mounts: dict[str, Any]
) -> ServiceHost:
    from medic.runtime import ServiceHost

    services = [build_service(name, settings, parts) for name in names]
    return ServiceHost(settings=settings, bus=parts.bus, services=services, mounts=mounts)


def service_classes() -> dict[str, type[Service]]:
    """Every service's class (imports them all: for contracts and tests, not for a pod)."""
    from medic.services.analyzer.service import AnalyzerService
    from medic.services.approval.service import ApprovalService
    from medic.services.dashboard.service import DashboardService
    from medic.services.executor.service import ExecutorService
    from medic.services.monitor.service import MonitorService
    from medic.services.notifier.service import NotifierService
    from medic.services.projector.service import ProjectorService
    from medic.services.safety_gate.service import SafetyGateService

    classes: list[type[Service]] = [
        MonitorService,
        AnalyzerService,
        SafetyGateService,
        ExecutorService,
        ApprovalService,
        NotifierService,
        ProjectorService,
        DashboardService,
    ]
    return {cls.name: cls for cls in classes}


def service_roles() -> dict[str, ServiceRole]:
    """What each service consumes and produces, by event type name, as the AsyncAPI document shows it."""
    from medic.contracts import ServiceRole
    from medic.runtime import HOST_PRODUCES, event_type_name

    roles = {
        name: ServiceRole(
            consumes=tuple(event_type_name(t) for t in cls.consumes or ()),
            produces=tuple(event_type_name(t) for t in cls.produces),
        )
        for name, cls in service_classes().items()
    }
    roles[HOST_ROLE] = ServiceRole(consumes=(), produces=tuple(event_type_name(t) for t in HOST_PRODUCES))
    return roles


HOST_ROLE = "host"
"""The role of what every service host publishes itself (:data:`medic.runtime.HOST_PRODUCES`)."""
