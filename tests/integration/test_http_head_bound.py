"""A request head with no end (or megabytes of headers) is refused before it fills the process.

uvicorn's httptools protocol has no bound of its own on the head; the services' port is open to
strangers (webhooks, Slack), and the application's own guards run only once the head is complete.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx

from medic.http_head import MAX_HEAD_BYTES
from medic.runtime import HttpServer


async def _ok(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _open_head(port: int, total: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection that has sent ``total`` bytes of headers and never ends its head."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /webhooks/github HTTP/1.1\r\nHost: medic\r\n")
    line = b"X-Pad: " + b"a" * 1000 + b"\r\n"
    sent = 0
    with contextlib.suppress(ConnectionError):
        while sent < total:
            writer.write(line * 16)
            sent += len(line) * 16
            await writer.drain()
    return reader, writer


async def _connections_after(server: HttpServer, seconds: float) -> int:
    await asyncio.sleep(seconds)
    return len(server._server.server_state.connections)


async def test_a_head_past_the_bound_closes_the_connection_and_others_are_still_served() -> None:
    server = HttpServer(_ok)
    await server.start()
    try:
        reader, writer = await _open_head(server.port, 2 * MAX_HEAD_BYTES)
        held = await _connections_after(server, 0.5)  # the client keeps its side open
        with contextlib.suppress(ConnectionError, TimeoutError):
            await asyncio.wait_for(reader.read(200), timeout=5)
        writer.close()
        async with httpx.AsyncClient() as client:
            fine = await client.get(f"{server.url}/", headers={"X-Pad": "b" * 20_000})
    finally:
        await server.stop()
    assert held == 0  # the server let go of it; without the bound it stays, growing
    assert fine.status_code == 200 and fine.text == "ok"  # a large but bounded head still passes
    assert MAX_HEAD_BYTES > 20_000


async def test_a_head_within_the_bound_is_kept_waiting_for_its_end() -> None:
    # the other side of the bound: a slow client's unfinished, small head is not cut off
    server = HttpServer(_ok)
    await server.start()
    try:
        _, writer = await _open_head(server.port, MAX_HEAD_BYTES // 2)
        held = await _connections_after(server, 0.5)
        writer.close()
    finally:
        await server.stop()
    assert held == 1
