"""Versioned plain-SQL migrations, applied in order, each exactly once.

A released file is never edited: its sha256 is recorded when applied, and start-up is
refused when a file no longer matches (the database would silently differ from the code).
Replicas starting together serialise on a transaction-scoped advisory lock keyed by the
schema, so nothing is applied twice and schemas of different tests never wait on each other.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

import asyncpg

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(Exception):
    """The schema cannot be brought up to date safely; the message names the file."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def bundled_migrations() -> list[Migration]:
    """The ``migrations/NNNN_name.sql`` files shipped with this package, in version order."""
    found: list[Migration] = []
    for entry in resources.files(__package__).joinpath("migrations").iterdir():
        match = _FILE_NAME.fullmatch(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version: {versions}")
    return found


_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


async def migrate(pool: asyncpg.Pool, migrations: Sequence[Migration] | None = None) -> list[str]:
    """Apply what is missing; return the names applied (empty when already up to date)."""
    wanted = list(bundled_migrations() if migrations is None else migrations)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('medic.migrate:' || current_schema(), 0))"
        )
        await conn.execute(_BOOKKEEPING)
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
        applied = {int(r["version"]): (str(r["name"]), str(r["checksum"])) for r in rows}
        _check_released(applied, wanted)
        done: list[str] = []
        for migration in wanted:
            if migration.version in applied:
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
            done.append(f"{migration.version:04d}_{migration.name}")
        return done


def _check_released(applied: dict[int, tuple[str, str]], wanted: Sequence[Migration]) -> None:
    by_version = {m.version: m for m in wanted}
    for version, (name, checksum) in sorted(applied.items()):
        migration = by_version.get(version)
        if migration is None:
            raise MigrationError(
                f"the database has migration {version:04d}_{name}, which this code does not know:"
                " it was written by a newer release"
            )
        if migration.checksum != checksum:
            raise MigrationError(
                f"migration {version:04d}_{migration.name}.sql changed after it was applied"
                f" (checksum {checksum[:12]}… in the database, {migration.checksum[:12]}… on disk);"
                " released migrations are never edited, add a new file instead"
            )


async def applied_migrations(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
    return [f"{int(r['version']):04d}_{r['name']}" for r in rows]
