"""PostgreSQL connection pools, one schema per deployment (and per test).

Every connection gets ``search_path`` set to the schema through ``server_settings``, so
SQL never names the schema and the same statements serve the live views, a replay into
a scratch schema, and a test's throw-away schema. ``jsonb`` columns speak Python objects.
"""

from __future__ import annotations

import json
import re
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

Conn = asyncpg.Connection | PoolConnectionProxy
"""A connection of its own or one borrowed from a pool: both run the same SQL."""

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class DatabaseError(Exception):
    """The database refused something ci-medic needs; the message says what."""


def quote_schema(schema: str) -> str:
    """A schema name safe to splice into DDL; anything unusual is refused, never escaped."""
    if not _SCHEMA_NAME.fullmatch(schema):
        raise DatabaseError(f"schema name {schema!r} must match {_SCHEMA_NAME.pattern}")
    return f'"{schema}"'


def _jsonb_encode(value: Any) -> bytes:
    return b"\x01" + json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _jsonb_decode(data: bytes) -> Any:
    return json.loads(data[1:])


async def _init_connection(conn: asyncpg.Connection) -> None:
    """jsonb in binary format (version byte + text), so COPY can carry it too."""
    await conn.set_type_codec(
        "jsonb", encoder=_jsonb_encode, decoder=_jsonb_decode, schema="pg_catalog", format="binary"
    )


async def ensure_schema(database_url: str, schema: str) -> None:
    """Create the schema if missing; two replicas racing to create it both succeed."""
    quoted = quote_schema(schema)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
    except asyncpg.UniqueViolationError:  # lost the race to a concurrent CREATE: it exists now
        pass
    finally:
        await conn.close()


async def connect_pool(
    database_url: str, schema: str, *, min_size: int = 1, max_size: int = 10
) -> asyncpg.Pool:
    """A pool whose connections all live in ``schema`` (created when missing)."""
    await ensure_schema(database_url, schema)
    try:
        pool = await asyncpg.create_pool(
            database_url,
            min_size=min_size,
            max_size=max_size,
            server_settings={"search_path": schema, "application_name": "ci-medic"},
            init=_init_connection,
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise DatabaseError(f"cannot connect to PostgreSQL: {exc}") from exc
    return pool
