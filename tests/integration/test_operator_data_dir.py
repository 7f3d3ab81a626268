"""``medic db migrate`` / ``audit verify`` / ``audit replay`` with ``--data-dir`` and no
``DATABASE_URL``: they work on the embedded servers of ``medic run``, whether it is running
(its servers are shared and left running) or not (they are started and stopped again).

The commands run as separate processes, as an operator runs them in a second shell.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from medic.bus import Bus, Topology
from medic.services.projector.service import ProjectorService
from medic.services.projector.store import apply_events
from tests.event_histories import mixed_histories

START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
MEDIC = str(Path(sys.executable).parent / "medic")
STAND_IN = """
import sys
from pathlib import Path
from medic.embedded import EmbeddedNats, EmbeddedPostgres
from medic.local_servers import record_nats_url
data = Path(sys.argv[1])
pg = EmbeddedPostgres.start(data.resolve() / "postgres")
nats = EmbeddedNats.start(data.resolve() / "nats")
record_nats_url(data, nats.url)
print(pg.url, nats.url, flush=True)
sys.stdin.read()
nats.stop()
pg.stop()
"""


def operator_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("MEDIC_") or k in {"DATABASE_URL", "NATS_URL", "MEDIC_CONFIG"})
    }


def medic(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own command
        [MEDIC, *args], cwd=cwd, env=operator_env(), capture_output=True, text=True, timeout=170, check=False
    )


def postmaster_running(pgdata: Path) -> bool:
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().splitlines()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_without_medic_run_the_commands_start_and_stop_the_embedded_database(tmp_path: Path) -> None:
    data = tmp_path / "data"
    migrated = medic("db", "migrate", "--data-dir", str(data), cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "applied: 0001_init" in migrated.stdout
    verified = medic("audit", "verify", "--data-dir", str(data), cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "audit chain intact (0 rows)" in verified.stdout
    assert not postmaster_running(data / "postgres")


def test_the_default_data_dir_is_dot_medic(tmp_path: Path) -> None:
    migrated = medic("db", "migrate", cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert (tmp_path / ".medic" / "postgres" / "PG_VERSION").exists()


@pytest.fixture
def medic_run(tmp_path: Path) -> Iterator[tuple[Path, str, str]]:
    """A process holding the data directory's servers, as ``medic run`` does."""
    data = tmp_path / "data"
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", STAND_IN, str(data)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=operator_env(),
    )
    assert proc.stdout is not None and proc.stdin is not None
    database_url, nats_url = proc.stdout.readline().split()
    yield data, database_url, nats_url
    proc.stdin.close()
    proc.wait(timeout=60)


async def _a_day_of_work(database_url: str, nats_url: str) -> int:
    events = mixed_histories(4, start=START)
    bus = await Bus.connect(nats_url, Topology())
    try:
        acks = await bus.publish_many(events)
    finally:
        await bus.close()
    projector = ProjectorService(database_url=database_url, schema="medic", pool_size=1)
    await projector.start()
    try:
        async with projector.pool.acquire() as conn:
            await apply_events(conn, [(e, a.seq) for e, a in zip(events, acks, strict=True)])  # type: ignore[misc]
        rows: int = await projector.pool.fetchval("SELECT count(*) FROM audit_log")
    finally:
        await projector.stop()
    return rows


def test_beside_a_running_medic_run_the_commands_share_its_servers(
    medic_run: tuple[Path, str, str], tmp_path: Path
) -> None:
    data, database_url, nats_url = medic_run
    rows = asyncio.run(_a_day_of_work(database_url, nats_url))
    assert rows > 0
    verified = medic("audit", "verify", "--data-dir", str(data), cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"audit chain intact ({rows} rows)" in verified.stdout
    replayed = medic("audit", "replay", "--data-dir", str(data), cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert replayed.stdout.count("yes") == 3, replayed.stdout
    assert "replayed 0 events" not in replayed.stdout

    async def still_up() -> int:
        conn = await asyncpg.connect(database_url)
        try:
            return int(await conn.fetchval("SELECT 1"))
        finally:
            await conn.close()

    assert asyncio.run(still_up()) == 1  # the commands let go; `medic run`'s server is still serving
