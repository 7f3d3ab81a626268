"""Regressions of issue 9, defect 4: hostile query strings and bodies get a clear 4xx, never a 500.

The app is the one ``medic service projector`` serves (the service host with its guard),
over real HTTP, on a real PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from medic.bus import Bus
from medic.config import load_settings
from medic.runtime import HttpServer, ServiceHost
from medic.services.projector.service import ProjectorService
from tests.attacks.tally import TALLY

NUL_QUERIES = [
    "/api/audit?repository=acme%00",
    "/api/audit?failure_id=%00",
    "/api/audit?actor=a%00b",
    "/api/audit?outcome=%00",
    "/api/audit?cursor=%00",
    "/api/failures?repository=%00",
    "/api/failures?cursor=abc%00",
    "/api/audit/export?format=csv&repository=%00",
    "/api/audit/export?format=jsonl&failure_id=%00",
    "/api/failures/%00",
    "/api/failures/abc%00def",
    "/api/audit?repository=%ed%a0%80",  # a lone surrogate, UTF-8-encoded
    "/api/audit?repository=%ff",
    "/api/metrics/summary?hours=%00",
    "/api/dashboard?x=%1b[31m",
]


@pytest.fixture
async def api(bus: Bus, database_url: str, db_schema: str) -> AsyncIterator[str]:
    projector = ProjectorService(database_url=database_url, schema=db_schema, pool_size=2)
    await projector.start()
    host = ServiceHost(settings=load_settings(), bus=bus, services=[projector])
    server = HttpServer(host.app())
    await server.start()
    yield server.url
    await server.stop()
    await projector.stop()


@pytest.mark.parametrize("path", NUL_QUERIES)
async def test_control_characters_in_queries_are_a_400(api: str, path: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{api}{path}")
    TALLY.add(
        "hostile queries and paths",
        tried=1,
        server_errors=int(response.status_code >= 500),
        wrongly_accepted=int(response.is_success),
    )
    assert response.status_code == 400, (path, response.status_code, response.text)
    assert "detail" in response.json()


async def test_ordinary_queries_still_work(api: str) -> None:
    async with httpx.AsyncClient() as client:
        for path in ("/api/audit?repository=acme/api", "/api/failures", "/api/audit/export?format=csv"):
            response = await client.get(f"{api}{path}")
            assert response.status_code == 200, (path, response.text)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 5000 + b"]" * 5000,
        b'{"a":' * 5000 + b"1" + b"}" * 5000,
        b'{"approver": "\\ud800"}',
        b'{"approver": "a\\u0000b"}',
        b'{"approver": "\xed\xa0\x80"}',
    ],
    ids=["array-5000-deep", "object-5000-deep", "lone-surrogate", "nul", "raw-surrogate-bytes"],
)
async def test_hostile_json_bodies_are_a_400_before_any_route(api: str, body: bytes) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{api}/api/anything", content=body, headers={"content-type": "application/json"}
        )
    TALLY.add(
        "hostile JSON bodies",
        tried=1,
        server_errors=int(response.status_code >= 500),
        wrongly_accepted=int(response.is_success),
    )
    assert response.status_code == 400, response.text
