"""Configuration that changes without a restart: watch the file (or take SIGHUP), validate, apply.

A platform team edits policy (thresholds, protected repositories, per-repository overrides)
in the config file, a ConfigMap in Kubernetes. Each process polls the file's content (a
ConfigMap edit is an atomic symlink swap that inotify on the file would miss) and reloads on
SIGHUP. A new file goes through the same validation as start-up: a bad one is refused with
the message naming the key, and the running settings stay as they were. An accepted one is
applied to new decisions (the services read ``self.settings`` per decision) and published as
a :class:`~medic.events.ConfigReloaded` event, which the projector writes to the audit trail.

Only :data:`RELOADABLE_KEYS` change live. Keys that shape connections (the bus, the database,
ports) are reported in ``restart_needed`` instead of being half-applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, SecretStr

from medic.config import ConfigError, Settings, load_settings
from medic.events import (
    CONFIG_FAILURE_ID,
    ConfigKeyChange,
    ConfigReloaded,
    ConfigReloadedPayload,
    derive_event_id,
    utc_now,
)
from medic.telemetry import logger

RELOAD_ACTOR = "config-reload"
"""The actor of ConfigReloaded: the service host, not any one service."""

log = logger(__name__)

RELOADABLE_KEYS: tuple[str, ...] = (
    "risk_threshold",
    "protected_repositories",
    "repository_configs",
    "slack_channels",
    "approval_timeout_hours",
    "max_auto_attempts",
    "verify_timeout_seconds",
    "api_token",
    "kill_switch",
    "dry_run",
    "repository_hourly_budget",
    "organisation_hourly_budget",
    "breaker_threshold",
    "incident_hold",
    "incident_repositories",
    "incident_window_minutes",
    "incident_hold_minutes",
    "protected_branches",
    "fix_allowed_paths",
    "fix_denied_paths",
    "allow_workflow_edits",
    "organisation_configs",
)
"""Settings every service reads per decision or per request, so a new value is safe to swap in."""

MASK = "********"
Trigger = Literal["watch", "sighup"]


def _plain(value: Any) -> Any:
    """A JSON-friendly form of a setting's value, for comparison and for the audit diff."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _comparable(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else _plain(value)


def diff_settings(old: Settings, new: Settings, keys: Iterable[str]) -> tuple[ConfigKeyChange, ...]:
    """The keys whose value differs; a secret shows that it changed, never what it was or became."""
    changes: list[ConfigKeyChange] = []
    for key in keys:
        before, after = getattr(old, key), getattr(new, key)
        if _comparable(before) == _comparable(after):
            continue
        if isinstance(before, SecretStr) or isinstance(after, SecretStr):
            changes.append(
                ConfigKeyChange(
                    key=key,
                    old=None if before is None else MASK,
                    new=None if after is None else MASK,
                    secret=True,
                )
            )
        else:
            changes.append(ConfigKeyChange(key=key, old=_plain(before), new=_plain(after)))
    return tuple(changes)


@dataclass(frozen=True)
class ReloadResult:
    """What one reload attempt did: applied keys, keys needing a restart, or why it was refused."""

    changes: tuple[ConfigKeyChange, ...] = ()
    restart_needed: tuple[str, ...] = ()
    error: str | None = None
    event: ConfigReloaded | None = None

    @property
    def refused(self) -> bool:
        return self.error is not None


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


@dataclass
class ConfigReloader:
    """Owns the live :class:`Settings` of one process and swaps them when the file changes.

    ``apply`` receives every accepted new settings object (the composition root hands it to
    the running services); ``publish`` sends the audit event (the bus in a real process).
    """

    settings: Settings
    path: Path
    apply: Callable[[Settings], None]
    publish: Callable[[ConfigReloaded], Awaitable[Any]] | None = None
    poll_seconds: float = 2.0
    host: str = field(default_factory=socket.gethostname)
    _loaded: Settings | None = None
    _seen_digest: str | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _sighup: bool = False
    _hup: bool = False

    def __post_init__(self) -> None:
        self._seen_digest = _digest(self.path)
        try:
            self._loaded = load_settings(self.path)
        except ConfigError:
            self._loaded = None  # started from other sources; the first good file is compared to them

    async def reload(self, trigger: Trigger = "watch") -> ReloadResult:
        """Read the file again; apply and audit what changed, or refuse and keep the old settings."""
        async with self._lock:
            old_digest, new_digest = self._seen_digest, _digest(self.path)
            self._seen_digest = new_digest
            try:
                fresh = load_settings(self.path)  # the environment still wins over the file
            except ConfigError as exc:
                log.error("config_reload_refused", path=str(self.path), trigger=trigger, error=str(exc))
                return ReloadResult(error=str(exc))
            baseline = self._loaded or self.settings
            changes = diff_settings(self.settings, fresh, RELOADABLE_KEYS)
            restart = tuple(
                key
                for key in Settings.model_fields
                if key not in RELOADABLE_KEYS
                and _comparable(getattr(baseline, key)) != _comparable(getattr(fresh, key))
            )
            self._loaded = fresh
            if not changes and not restart:
                return ReloadResult()
            if changes:
                self.settings = self.settings.model_copy(
                    update={key: getattr(fresh, key) for key in RELOADABLE_KEYS}
                )
                self.apply(self.settings)
            event = self._event(trigger, changes, restart, old_digest, new_digest)
            log.info(
                "config_reloaded",
                path=str(self.path),
                trigger=trigger,
                changed=[c.key for c in changes],
                restart_needed=list(restart),
            )
            if self.publish is not None:
                await self.publish(event)
            return ReloadResult(changes=changes, restart_needed=restart, event=event)

    def _event(
        self,
        trigger: Trigger,
        changes: tuple[ConfigKeyChange, ...],
        restart: tuple[str, ...],
        old_digest: str | None,
        new_digest: str | None,
    ) -> ConfigReloaded:
        now = utc_now()
        # Every replica reloads the same ConfigMap; the same transition within the same minute
        # gets the same id, so JetStream and the projector keep one fact, not one per pod.
        minute = datetime(now.year, now.month, now.day, now.hour, now.minute, tzinfo=now.tzinfo)
        return ConfigReloaded(
            event_id=derive_event_id(f"config:{old_digest}:{new_digest}", "ConfigReloaded", minute),
            occurred_at=now,
            failure_id=CONFIG_FAILURE_ID,
            actor=RELOAD_ACTOR,
            payload=ConfigReloadedPayload(
                source=str(self.path),
                trigger=trigger,
                host=self.host,
                changes=changes,
                restart_needed=restart,
            ),
        )

    async def start(self) -> None:
        """Poll the file and listen for SIGHUP until :meth:`stop`."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
            self._sighup = True
        self._stop.clear()
        self._task = asyncio.create_task(self._watch(), name="config-reload")

    def _on_sighup(self) -> None:
        self._hup = True
        self._wake.set()

    async def _watch(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            self._wake.clear()
            if self._stop.is_set():
                return
            hup, self._hup = self._hup, False
            if hup or _digest(self.path) != self._seen_digest:
                try:
                    await self.reload("sighup" if hup else "watch")
                except Exception as exc:  # a failed publish must not end the watch
                    log.error("config_reload_failed", error=str(exc))

    async def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._sighup:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._sighup = False
        if self._task is not None:
            await self._task
            self._task = None


def apply_to(holders: Iterable[Any]) -> Callable[[Settings], None]:
    """An ``apply`` that hands new settings to every object holding a ``settings`` attribute."""
    targets = [h for h in holders if hasattr(h, "settings")]

    def apply(settings: Settings) -> None:
        for target in targets:
            target.settings = settings

    return apply


@contextlib.asynccontextmanager
async def watching(
    settings: Settings,
    path: Path | None,
    holders: Iterable[Any],
    publish: Callable[[ConfigReloaded], Awaitable[Any]] | None,
) -> AsyncIterator[ConfigReloader | None]:
    """Reload ``path`` into ``holders`` while the block runs; nothing to watch without a file."""
    if path is None:
        yield None
        return
    reloader = ConfigReloader(settings=settings, path=path, apply=apply_to(holders), publish=publish)
    await reloader.start()
    try:
        yield reloader
    finally:
        await reloader.stop()
