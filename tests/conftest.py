"""Fixtures: a real nats-server and a real PostgreSQL for the whole session.

Order of preference: ``NATS_URL`` / ``DATABASE_URL`` when set; testcontainers when
``MEDIC_TEST_CONTAINERS=1`` (needs Docker); otherwise the embedded servers from PyPI.
Each test gets its own stream, subjects and database schema, so tests never share state.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from medic.bus import Bus, Topology
from medic.embedded import EmbeddedNats, EmbeddedPostgres


def in_ci() -> bool:
    """``CI=true`` (GitHub Actions and most CI systems set it)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


@pytest.fixture(scope="session", autouse=True)
def _compiled_rules_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The compiled-rules cache (``$XDG_CACHE_HOME/ci-medic``) in this session's temp dir, not the
    user's home: a test run leaves nothing behind, and starts from an empty cache."""
    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if previous is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = previous


def pytest_runtest_setup(item: pytest.Item) -> None:
    """``@pytest.mark.requires(available, what)``: a skip on a laptop, a failure in CI.

    A browser or engine missing in CI means the test that needs it checked nothing, and a
    skip would hide that: with ``CI=true`` it fails instead, naming what is missing.
    """
    for mark in item.iter_markers("requires"):
        available, what = mark.args
        if available:
            continue
        if in_ci():
            pytest.fail(f"{what} is missing and CI=true: install it, a skip would check nothing")
        pytest.skip(f"{what} is missing (with CI=true this is a failure)")


def _containers_wanted() -> bool:
    return os.environ.get("MEDIC_TEST_CONTAINERS") == "1"


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if url := os.environ.get("NATS_URL"):
        yield url
        return
    if _containers_wanted():
        from testcontainers.core.container import DockerContainer

        with DockerContainer("nats:2.10").with_command("-js").with_exposed_ports(4222) as container:
            yield f"nats://{container.get_container_host_ip()}:{container.get_exposed_port(4222)}"
        return
    server = EmbeddedNats.start(tmp_path_factory.mktemp("nats"))
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if url := os.environ.get("DATABASE_URL"):
        yield url
        return
    if _containers_wanted():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver=None) as container:
            yield container.get_connection_url()
        return
    server = EmbeddedPostgres.start(Path(tmp_path_factory.mktemp("pg")) / "data", delete_on_stop=True)
    yield server.url
    server.stop()


@pytest.fixture
def topology() -> Topology:
    token = uuid.uuid4().hex[:10]
    return Topology(stream=f"T_{token}", prefix=f"t{token}")


@pytest.fixture
async def bus(nats_url: str, topology: Topology) -> AsyncIterator[Bus]:
    bus = await Bus.connect(nats_url, topology)
    yield bus
    for stream in (topology.stream, topology.dlq_stream, f"{topology.stream}_VERIFY"):
        with contextlib.suppress(Exception):  # the stream may never have been created
            await bus.js.delete_stream(stream)
    await bus.close()


async def _fresh_schema(database_url: str, prefix: str) -> AsyncIterator[str]:
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    yield schema
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
async def db_schema(database_url: str) -> AsyncIterator[str]:
    """A fresh, empty schema for one test; dropped afterwards."""
    async for schema in _fresh_schema(database_url, "t"):
        yield schema


@pytest.fixture
async def scratch_schema(database_url: str) -> AsyncIterator[str]:
    """A second fresh schema (e.g. a replay target), dropped afterwards."""
    async for schema in _fresh_schema(database_url, "r"):
        yield schema
