"""Compression on the wire with real clients: permessage-deflate with the official client (node's
ws offers it), long-polling answers gzipped for python-socketio's client (aiohttp accepts
gzip), on a server of two workers (``--workers 2 --per-message-deflate``). The application is
tests/apps/sio_app.py."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import socketio

from tests.support import ServerProcess, scaled
from tests.test_socketio_interop import APP, SioClient, b64, start_client
from tests.test_socketio_msgpack import room_on_both_workers

pytestmark = [pytest.mark.interop, pytest.mark.asyncio(loop_scope="module")]

TEXT = "compressible text, ü ✓ " * 400
BINARY = random.Random(5).randbytes(2000) * 5


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    log = tmp_path_factory.mktemp("sio-deflate") / "server.log"
    async with ServerProcess(APP, "--per-message-deflate", "--workers", "2",
                             log_path=log) as srv:
        await srv.wait_for_log(r"2 workers ready", timeout=15)
        yield srv


@pytest_asyncio.fixture(loop_scope="module")
async def client(server: ServerProcess) -> AsyncIterator[SioClient]:
    sio = await start_client(server.url)
    async with sio.node:
        yield sio


async def extensions(client: SioClient, name: str) -> str | None:
    await client.command("extensions", name)
    event = await client.node.next_event({"ev": "extensions", "name": name})
    value: str | None = event["value"]
    return value


async def test_the_official_client_negotiates_permessage_deflate(client: SioClient) -> None:
    await client.connected("a", transports=["websocket"])
    negotiated = await extensions(client, "a")
    assert negotiated == "permessage-deflate"  # (ws says the names; the parameters are
    # checked in process: test_engine_websocket_deflate.py)
    # both directions compressed (the client compresses from 1024 bytes too)
    assert await client.call("a", "echo", TEXT) == [TEXT]
    assert await client.call("a", "echo", b64(BINARY)) == [b64(BINARY)]
    assert await client.call("a", "echo", "small") == ["small"]


async def test_a_broadcast_compressed_once_reaches_every_worker_s_clients(
        client: SioClient) -> None:
    names = await room_on_both_workers(client, "d", "big", minimum=3)
    sender, *others = names
    assert await client.call(sender, "to_room", {"room": "big", "msg": TEXT}) == ["sent"]
    for name in others:
        assert (await client.event(name, "room_message"))["args"] == [TEXT]


async def test_the_upgrade_from_polling_negotiates_it_too(client: SioClient) -> None:
    await client.connected("u")
    await client.node.next_event({"ev": "upgrade", "name": "u", "transport": "websocket"})
    assert await extensions(client, "u") == "permessage-deflate"
    assert await client.call("u", "echo", TEXT) == [TEXT]


async def test_python_socketio_over_compressed_polling(server: ServerProcess) -> None:
    """aiohttp sends Accept-Encoding: gzip, deflate and inflates the answers; a GET that
    lands on the worker that does not own the session is compressed by that worker."""
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(server.url, transports=["polling"], wait_timeout=scaled(5))
    try:
        for _ in range(3):
            assert await sio.call("echo", TEXT, timeout=scaled(5)) == TEXT
            assert await sio.call("echo", BINARY, timeout=scaled(5)) == BINARY
    finally:
        await sio.disconnect()
