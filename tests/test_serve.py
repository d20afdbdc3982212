"""The library's entry point: ``await io.serve(host, port)`` ... ``await io.close()``, the path a
program takes, and the one ``python -m sio_core serve`` takes (sio_core/cli.py).

In-process: real servers on free loopback ports, driven by python-socketio's client and by
aiohttp (real peers over TCP). Two Socket.IO servers sharing a MemoryBus stand for two workers:
a request for a session of the other is forwarded, a broadcast reaches the other's clients.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import socketio

from sio_core import Config, Server, Socket
from sio_core.echo import EchoApp
from sio_core.engine.server import EngineServer
from sio_core.exceptions import ServeError
from sio_core.stores.hub import HubStore
from sio_core.stores.memory import MemoryBus, MemoryStore
from tests.support import free_port, scaled

HOST = "127.0.0.1"


def echo_server(**options: Any) -> Server:
    io = Server(**options)

    @io.on("connection")
    def connection(socket: Socket) -> None:
        socket.on("echo", lambda data: data)

    return io


async def refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(HOST, port)
    except OSError:
        return True
    writer.close()
    return False


async def handshake(http: aiohttp.ClientSession, port: int) -> dict[str, Any]:
    async with http.get(f"http://{HOST}:{port}/socket.io/?EIO=4&transport=polling") as resp:
        assert resp.status == 200, await resp.text()
        text = await resp.text()
    assert text.startswith("0{"), text
    opened: dict[str, Any] = json.loads(text[1:])
    return opened


async def leave(http: aiohttp.ClientSession, url: str) -> None:
    """The client closes its polling session ("1"), as it does when it goes: a drain then
    has no session left to wait for."""
    async with http.post(url, data="1") as resp:
        assert resp.status == 200, await resp.text()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=scaled(10))) as session:
        yield session


async def test_a_program_serves_the_socketio_server_and_closes_it() -> None:
    io = echo_server()
    port = free_port()
    await io.serve(HOST, port)
    client = socketio.AsyncClient(reconnection=False)
    gone = asyncio.Event()
    client.on("disconnect", lambda *args: gone.set())
    try:
        await client.connect(f"http://{HOST}:{port}", transports=["websocket"],
                             wait_timeout=scaled(5))
        assert await client.call("echo", "hi", timeout=scaled(5)) == "hi"
        async with asyncio.timeout(scaled(10)):
            await io.close()
            await gone.wait()  # the client was told: the session ended, not just the port
    finally:
        await client.disconnect()
    assert await refused(port)


async def test_a_bare_engineio_handler_is_served_by_an_engine_server(
        http: aiohttp.ClientSession) -> None:
    server = EngineServer(EchoApp(), Config(ping_interval=7))
    port = free_port()
    await server.serve(HOST, port)
    try:
        opened = await handshake(http, port)
        assert opened["pingInterval"] == 7000
        url = f"http://{HOST}:{port}/socket.io/?EIO=4&transport=polling&sid={opened['sid']}"
        async with http.post(url, data="4hello") as resp:
            assert (resp.status, await resp.text()) == (200, "ok")
        async with http.get(url) as resp:
            assert await resp.text() == "4hello"
        await leave(http, url)
    finally:
        await server.close(scaled(5))
    assert await refused(port)


async def test_configure_merges_into_the_app_config_before_serve(
        http: aiohttp.ClientSession) -> None:
    """What the command line does with its options: the fields it names change, the app's
    others stay (the app's own Config is not replaced by a default one)."""
    io = echo_server(ping_interval=7)
    io.configure(max_payload=5000)
    port = free_port()
    await io.serve(HOST, port)
    try:
        opened = await handshake(http, port)
        assert (opened["pingInterval"], opened["maxPayload"]) == (7000, 5000)
        await leave(http, f"http://{HOST}:{port}/socket.io/?EIO=4&transport=polling"
                          f"&sid={opened['sid']}")
        with pytest.raises(RuntimeError, match="before serve"):
            io.configure(ping_interval=1)
        with pytest.raises(ValueError, match="max_payload: must be a whole number"):
            echo_server().configure(max_payload=-1)
    finally:
        await io.close(scaled(5))


async def test_two_servers_on_one_store_are_two_workers(http: aiohttp.ClientSession) -> None:
    """A session opened on A is reached through B (its GET and POST forwarded to A), and a
    broadcast from A reaches a client of B; close() closes each server's store, so the other
    no longer counts it among its peers."""
    bus = MemoryBus()
    a, b = echo_server(), echo_server()
    port_a, port_b = free_port(), free_port()
    await a.serve(HOST, port_a, store=MemoryStore("node-w1-aaaa", bus))
    await b.serve(HOST, port_b, store=MemoryStore("node-w2-bbbb", bus))
    client = socketio.AsyncClient(reconnection=False)
    news: asyncio.Queue[Any] = asyncio.Queue()
    client.on("news", news.put_nowait)
    try:
        sid = (await handshake(http, port_a))["sid"]
        assert sid.endswith(".node-w1-aaaa")
        through_b = f"http://{HOST}:{port_b}/socket.io/?EIO=4&transport=polling&sid={sid}"
        async with http.post(through_b, data="40") as resp:
            assert (resp.status, await resp.text()) == (200, "ok")
        async with http.get(through_b) as resp:
            assert (await resp.text()).startswith("40{")
        await leave(http, through_b)
        await client.connect(f"http://{HOST}:{port_b}", transports=["websocket"],
                             wait_timeout=scaled(5))
        await a.emit("news", "from a")
        assert await asyncio.wait_for(news.get(), scaled(5)) == "from a"
        assert b.engine is not None and b.engine.store is not None
        assert b.engine.store.peers == {"node-w1-aaaa"}
        await a.close(scaled(5))
        assert b.engine.store.peers == set()
        await a.close(scaled(5))  # again: nothing more to do
    finally:
        await client.disconnect()
        await a.close(scaled(5))
        await b.close(scaled(5))


async def test_serve_says_in_one_line_what_it_could_not_do(tmp_path: Any) -> None:
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        store = MemoryStore("node-w1-aaaa", MemoryBus())
        with pytest.raises(ServeError, match=f"^cannot listen on {HOST}:{port}: "):
            await echo_server().serve(HOST, port, store=store)
    assert store.bus is not None and store.bus.stores == {}  # closed again
    hub = HubStore("node-w1-aaaa", str(tmp_path / "no-hub.sock"))
    with pytest.raises(ServeError, match="No such file"):
        await echo_server().serve(HOST, free_port(), store=hub)
