"""The sandboxes' own port: connections that send at once (TCP_NODELAY), not after a delayed ACK."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from medic.sandbox.serving import listening_socket, serve_on_free_port


async def test_connections_accepted_on_the_sandbox_socket_have_nagle_off() -> None:
    # asyncio sets TCP_NODELAY only on sockets that say proto=IPPROTO_TCP; without it a response
    # written as headers then body waited 40 ms for the client's delayed ACK, on every request
    seen: list[int] = []

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    sock = listening_socket()
    server = await asyncio.start_server(accepted, sock=sock)
    try:
        _, writer = await asyncio.open_connection(*sock.getsockname())
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.01)
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
    assert seen and seen[0] != 0


async def test_serve_on_free_port_serves_the_app_and_stops() -> None:
    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        assert scope["type"] == "http"
        await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]

    async with serve_on_free_port(app) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.get("/")
    assert response.text == "ok"
    async with httpx.AsyncClient(base_url=url) as client:
        try:
            await client.get("/")
        except httpx.ConnectError:
            stopped = True
        else:
            stopped = False
    assert stopped


async def test_every_server_parses_http_with_httptools_not_the_pure_python_fallback() -> None:
    # uvicorn's "auto" quietly falls back to h11 when httptools is missing
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from medic.http_head import BoundedHeadHttpToolsProtocol
    from medic.runtime import HttpServer, uvicorn_config

    config = uvicorn_config(lambda *_: None)
    config.load()
    assert config.http_protocol_class is BoundedHeadHttpToolsProtocol
    assert issubclass(BoundedHeadHttpToolsProtocol, HttpToolsProtocol)
    server = HttpServer(lambda *_: None)
    await server.start()
    try:
        assert server._server.config.http_protocol_class is BoundedHeadHttpToolsProtocol
    finally:
        await server.stop()


async def test_a_timeout_while_the_server_stops_is_not_swallowed() -> None:
    # stopping waits for requests in flight; a caller's timeout meanwhile must still reach it
    started = asyncio.Event()

    async def never_answers(scope: dict[str, object], receive: object, send: object) -> None:
        if scope["type"] == "http":
            started.set()
            await asyncio.sleep(30)

    async with httpx.AsyncClient(timeout=30) as client:
        request: asyncio.Task[httpx.Response] | None = None

        async def serve_and_stop() -> str:
            nonlocal request
            async with serve_on_free_port(never_answers) as url:
                request = asyncio.create_task(client.get(url))
                await started.wait()
            return "stopped"

        try:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(serve_and_stop(), timeout=1)
        finally:
            if request is not None:
                request.cancel()
                await asyncio.gather(request, return_exceptions=True)
