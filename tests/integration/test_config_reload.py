"""Configuration reload against the real bus and PostgreSQL: a good file is applied to new
decisions and audited (secrets masked), a bad one is refused with the key named and the old
settings kept, the environment still beats the file, and a ConfigMap-style swap is seen."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from medic.bus import Bus
from medic.config import Settings, load_settings
from medic.events import CONFIG_FAILURE_ID, ConfigReloaded
from medic.reload import MASK, ConfigReloader, apply_to
from medic.services.projector.service import ProjectorService
from medic.services.safety_gate.service import SafetyGateService

API_TOKEN = "tok-reload-7f3a9c"  # the value that must never reach the audit trail


def write(path: Path, text: str) -> None:
    """Replace the file atomically, as an editor or the kubelet does."""
    partial = path.with_suffix(".partial")
    partial.write_text(text)
    partial.replace(path)


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith("MEDIC_") and name != "MEDIC_NO_APT":
            monkeypatch.delenv(name)
    path = tmp_path / "medic.toml"
    write(path, 'risk_threshold = 4\nprotected_repositories = ["acme/pay"]\n')
    return path


def gate_for(settings: Settings, bus: Bus) -> SafetyGateService:
    return SafetyGateService(settings=settings, bus=bus)


async def test_a_good_file_is_applied_and_audited_with_secrets_masked(
    config_file: Path, bus: Bus, database_url: str, db_schema: str
) -> None:
    settings = load_settings(config_file)
    gate = gate_for(settings, bus)
    reloader = ConfigReloader(
        settings=settings, path=config_file, apply=apply_to([gate]), publish=bus.publish
    )
    write(
        config_file,
        'risk_threshold = 2\nprotected_repositories = ["acme/pay", "acme/infra"]\n'
        f'api_token = "{API_TOKEN}"\n[repository_configs."acme/web"]\nrisk_threshold = 6\n',
    )
    result = await reloader.reload()
    assert not result.refused
    assert gate.settings.risk_threshold == 2
    assert gate.settings.policy_for("acme/infra").protected is True
    assert gate.settings.policy_for("acme/web").risk_threshold == 6
    changed = {c.key: c for c in result.changes}
    assert set(changed) == {"risk_threshold", "protected_repositories", "repository_configs", "api_token"}
    assert (changed["risk_threshold"].old, changed["risk_threshold"].new) == (4, 2)
    assert changed["api_token"].secret and changed["api_token"].new == MASK

    projector = ProjectorService(database_url=database_url, schema=db_schema, pool_size=2)
    await projector.start()
    try:
        sub = bus.subscribe("projector", projector.handle, concurrency=projector.concurrency)
        await sub.start()
        deadline = asyncio.get_running_loop().time() + 20
        while not await projector.pool.fetchval("SELECT count(*) FROM audit_log"):
            assert asyncio.get_running_loop().time() < deadline, "the reload never reached the audit trail"
            await asyncio.sleep(0.05)
        await sub.stop()
        row = await projector.pool.fetchrow(
            "SELECT action, outcome, failure_id, actor, details FROM audit_log"
        )
    finally:
        await projector.stop()
    assert row is not None
    assert (row["action"], row["outcome"], row["failure_id"]) == (
        "ConfigReloaded",
        "applied",
        CONFIG_FAILURE_ID,
    )
    details = json.loads(row["details"]) if isinstance(row["details"], str) else row["details"]
    keys = {c["key"] for c in details["payload"]["changes"]}
    assert "risk_threshold" in keys and "api_token" in keys
    assert details["payload"]["source"] == str(config_file)
    assert API_TOKEN not in json.dumps(details)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("risk_threshold = 11\n", "risk_threshold"),
        ("risk_treshold = 3\n", "risk_treshold"),
        ('[repository_configs."acme/web"]\nallowed_actions = ["rm -rf /"]\n', "allowed_actions"),
        ("max_auto_attempts = 'many'\n", "max_auto_attempts"),
    ],
)
async def test_a_bad_file_is_refused_naming_the_key_and_the_old_settings_stay(
    config_file: Path, text: str, key: str
) -> None:
    settings = load_settings(config_file)
    holder = gate_for(settings, bus=None)  # type: ignore[arg-type]
    published: list[ConfigReloaded] = []

    async def publish(event: ConfigReloaded) -> None:
        published.append(event)

    reloader = ConfigReloader(settings=settings, path=config_file, apply=apply_to([holder]), publish=publish)
    write(config_file, text)
    result = await reloader.reload()
    assert result.refused and result.error is not None and key in result.error
    assert holder.settings is settings and reloader.settings is settings
    assert published == []


async def test_invalid_toml_is_refused_too(config_file: Path) -> None:
    settings = load_settings(config_file)
    reloader = ConfigReloader(settings=settings, path=config_file, apply=lambda s: None)
    write(config_file, "risk_threshold = = 3\n")
    result = await reloader.reload()
    assert result.refused and "not valid TOML" in (result.error or "")
    assert reloader.settings.risk_threshold == 4


async def test_environment_beats_the_file_and_a_repository_override_its_repository(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDIC_RISK_THRESHOLD", "1")
    settings = load_settings(config_file)
    assert settings.risk_threshold == 1
    reloader = ConfigReloader(settings=settings, path=config_file, apply=lambda s: None)
    write(config_file, 'risk_threshold = 8\n[repository_configs."acme/web"]\nrisk_threshold = 5\n')
    result = await reloader.reload()
    assert {c.key for c in result.changes} == {"protected_repositories", "repository_configs"}
    assert reloader.settings.risk_threshold == 1  # the environment still wins
    assert reloader.settings.policy_for("acme/web").risk_threshold == 5  # the override for its repository
    assert reloader.settings.policy_for("acme/other").risk_threshold == 1


async def test_keys_that_shape_connections_wait_for_a_restart(config_file: Path) -> None:
    settings = load_settings(config_file)
    applied: list[Settings] = []
    reloader = ConfigReloader(settings=settings, path=config_file, apply=applied.append)
    write(config_file, 'risk_threshold = 4\nprotected_repositories = ["acme/pay"]\nhttp_port = 9999\n')
    result = await reloader.reload()
    assert result.changes == () and result.restart_needed == ("http_port",)
    assert applied == [] and reloader.settings.http_port == settings.http_port
    assert result.event is not None and result.event.payload.restart_needed == ("http_port",)


async def test_an_unchanged_file_publishes_nothing(config_file: Path) -> None:
    published: list[ConfigReloaded] = []

    async def publish(event: ConfigReloaded) -> None:
        published.append(event)

    reloader = ConfigReloader(
        settings=load_settings(config_file), path=config_file, apply=lambda s: None, publish=publish
    )
    result = await reloader.reload()
    assert result.changes == () and result.event is None and published == []


@pytest.fixture
async def watched(config_file: Path) -> AsyncIterator[tuple[ConfigReloader, list[ConfigReloaded]]]:
    published: list[ConfigReloaded] = []

    async def publish(event: ConfigReloaded) -> None:
        published.append(event)

    reloader = ConfigReloader(
        settings=load_settings(config_file),
        path=config_file,
        apply=lambda s: None,
        publish=publish,
        poll_seconds=0.05,
    )
    await reloader.start()
    yield reloader, published
    await reloader.stop()


async def wait_for(published: list[ConfigReloaded], count: int = 1) -> None:
    deadline = asyncio.get_running_loop().time() + 10
    while len(published) < count:
        assert asyncio.get_running_loop().time() < deadline, "no reload happened"
        await asyncio.sleep(0.02)


async def test_the_watch_sees_an_edit_without_being_asked(
    watched: tuple[ConfigReloader, list[ConfigReloaded]], config_file: Path
) -> None:
    reloader, published = watched
    write(config_file, 'risk_threshold = 3\nprotected_repositories = ["acme/pay"]\n')
    await wait_for(published)
    assert reloader.settings.risk_threshold == 3
    assert published[0].payload.trigger == "watch"


async def test_sighup_reloads(config_file: Path) -> None:
    published: list[ConfigReloaded] = []

    async def publish(event: ConfigReloaded) -> None:
        published.append(event)

    reloader = ConfigReloader(
        settings=load_settings(config_file),
        path=config_file,
        apply=lambda s: None,
        publish=publish,
        poll_seconds=3600,  # only the signal can trigger this reload
    )
    await reloader.start()
    try:
        write(config_file, 'risk_threshold = 2\nprotected_repositories = ["acme/pay"]\n')
        os.kill(os.getpid(), signal.SIGHUP)
        await wait_for(published)
    finally:
        await reloader.stop()
    assert published[0].payload.trigger == "sighup"
    assert reloader.settings.risk_threshold == 2


async def test_a_configmap_style_symlink_swap_is_seen(tmp_path: Path, config_file: Path) -> None:
    """The kubelet writes a new ``..<timestamp>`` directory and swaps the ``..data`` link."""
    mount = tmp_path / "mount"
    first, second = mount / "..v1", mount / "..v2"
    first.mkdir(parents=True)
    second.mkdir()
    (first / "medic.toml").write_text("risk_threshold = 4\n")
    (second / "medic.toml").write_text("risk_threshold = 2\n")
    (mount / "..data").symlink_to("..v1")
    (mount / "medic.toml").symlink_to("..data/medic.toml")
    path = mount / "medic.toml"
    published: list[ConfigReloaded] = []

    async def publish(event: ConfigReloaded) -> None:
        published.append(event)

    reloader = ConfigReloader(
        settings=load_settings(path), path=path, apply=lambda s: None, publish=publish, poll_seconds=0.05
    )
    await reloader.start()
    try:
        (mount / "..data_tmp").symlink_to("..v2")
        (mount / "..data_tmp").replace(mount / "..data")
        await wait_for(published)
    finally:
        await reloader.stop()
    assert reloader.settings.risk_threshold == 2


async def test_replicas_applying_one_change_publish_one_fact(config_file: Path, bus: Bus) -> None:
    settings = load_settings(config_file)
    for attempt, threshold in enumerate((5, 6)):  # a second try if the first straddled a minute
        replicas = [
            ConfigReloader(
                settings=settings, path=config_file, apply=lambda s: None, publish=bus.publish, host=h
            )
            for h in ("pod-a", "pod-b")
        ]
        write(config_file, f'risk_threshold = {threshold}\nprotected_repositories = ["acme/pay"]\n')
        results = [await r.reload() for r in replicas]
        ids = {r.event.event_id for r in results if r.event is not None}
        if len(ids) == 1 or attempt == 1:
            break
    assert len(ids) == 1
    info = await bus.js.stream_info(bus.topology.stream)
    assert info.state.messages in (1, 3)  # one fact per change (the first try's two, if it straddled)
