"""``medic db migrate`` and ``medic audit verify|replay`` as an operator runs them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
import typer
from typer.testing import CliRunner

from medic.bus import Bus
from medic.services.projector.commands import audit_app, db_app
from medic.services.projector.service import ProjectorService
from medic.services.projector.store import apply_events
from tests.event_histories import mixed_histories

START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
async def env(bus: Bus, nats_url: str, database_url: str, db_schema: str) -> AsyncIterator[dict[str, str]]:
    """Events on the stream and projected live, as after a day of work."""
    events = mixed_histories(6, start=START)
    acks = await bus.publish_many(events)
    svc = ProjectorService(database_url=database_url, schema=db_schema, pool_size=2)
    await svc.start()
    async with svc.pool.acquire() as conn:
        await apply_events(conn, [(e, a.seq) for e, a in zip(events, acks, strict=True)])  # type: ignore[misc]
    await svc.stop()
    yield {
        "NATS_URL": nats_url,
        "DATABASE_URL": database_url,
        "MEDIC_DB_SCHEMA": db_schema,
        "MEDIC_STREAM_NAME": bus.topology.stream,
        "MEDIC_SUBJECT_PREFIX": bus.topology.prefix,
    }
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{db_schema}_replay" CASCADE')
    finally:
        await conn.close()


def invoke(app: typer.Typer, args: list[str], env: dict[str, str]) -> tuple[int, str]:
    result = CliRunner().invoke(app, args, env=env)
    return result.exit_code, result.output


def test_migrate_verify_and_replay(env: dict[str, str]) -> None:
    assert invoke(db_app, ["migrate"], env) == (0, "schema is up to date\n")
    code, out = invoke(audit_app, ["verify"], env)
    assert code == 0 and "intact" in out
    code, out = invoke(audit_app, ["replay"], env)
    assert code == 0 and out.count("yes") == 3, out
    code, out = invoke(audit_app, ["replay"], env)
    assert code == 2 and "fresh" in out
    code, out = invoke(audit_app, ["replay", "--replace", "--until", "2025-03-01T09:01:00"], env)
    assert code == 0, out
    code, out = invoke(audit_app, ["replay", "--until", "noon"], env)
    assert code == 2 and "ISO 8601" in out


def test_commands_refuse_an_unusable_data_dir(env: dict[str, str], tmp_path: Path) -> None:
    """Without DATABASE_URL the embedded server of --data-dir is used; a file there is no directory."""
    not_a_directory = tmp_path / "data"
    not_a_directory.write_text("")
    code, out = invoke(db_app, ["migrate", "--data-dir", str(not_a_directory)], {**env, "DATABASE_URL": ""})
    assert code == 2 and "cannot start the embedded servers" in out
