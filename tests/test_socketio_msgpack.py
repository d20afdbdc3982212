"""``parser="msgpack"`` against the official client with ``socket.io-msgpack-parser`` (node) and
python-socketio's ``AsyncClient(serializer="msgpack")``: events, acks, binary, rooms, on a
server of two workers (``--workers 2 --parser msgpack``), so requests and broadcasts cross
workers. The application is tests/apps/sio_app.py (its events are listed there).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import socketio

from tests.support import ServerProcess, scaled
from tests.test_socketio_interop import APP, TRANSPORTS, SioClient, b64, start_client

pytestmark = [pytest.mark.interop, pytest.mark.asyncio(loop_scope="module")]

LARGE = random.Random(11).randbytes(70_000)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    log = tmp_path_factory.mktemp("sio-msgpack") / "server.log"
    async with ServerProcess(APP, "--parser", "msgpack", "--workers", "2",
                             log_path=log) as srv:
        await srv.wait_for_log(r"2 workers ready", timeout=15)
        yield srv


@pytest_asyncio.fixture(loop_scope="module")
async def client(server: ServerProcess) -> AsyncIterator[SioClient]:
    sio = await start_client(server.url, "msgpack")
    async with sio.node:
        yield sio


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_official_client_events_acks_and_binary(client: SioClient, transport: str) -> None:
    await client.connected("a", transports=[transport])
    data = {"text": "hé ✓", "n": [1, 2.5, None, True], "bin": b64(bytes(range(256)))}
    assert await client.call("a", "echo", data) == [data]
    assert await client.call("a", "echo", b64(LARGE)) == [b64(LARGE)]
    assert await client.call("a", "swap", 1, "b") == ["b", 1]
    # the server emits with an ack to the client, which answers {"got": [...]}
    assert await client.call("a", "server_ack", b64(b"\x00\xff")) == [{"got": [b64(b"\x00\xff")]}]


async def test_official_client_upgrades_and_namespaces(client: SioClient) -> None:
    await client.connected("a")  # polling first, then the websocket
    await client.node.next_event({"ev": "upgrade", "name": "a", "transport": "websocket"})
    await client.connected("admin", "/admin", share="a", auth={"token": "s3cret"})
    [me] = await client.call("admin", "whoami")
    assert me["nsp"] == "/admin" and me["auth"] == {"token": "s3cret"}
    refused = await client.connect("bad", "/admin", auth={"token": "no"})
    assert refused == {"ev": "connect_error", "name": "bad", "message": "not authorized",
                       "data": {"code": 42}}


async def room_on_both_workers(client: SioClient, prefix: str, room: str,
                               minimum: int = 2) -> list[str]:
    """Sockets (named prefix0, prefix1, ...) join ``room`` until there are ``minimum`` and
    both workers own some of them (the kernel picks a worker for each connection)."""
    names: list[str] = []
    owners: set[str] = set()
    for n in range(30):
        name = f"{prefix}{n}"
        await client.connected(name, transports=["websocket"])
        [rooms] = await client.call(name, "join", room)
        assert room in rooms
        [peer] = await client.call(name, "peer")
        owners.add(peer["owner"])
        names.append(name)
        if len(names) >= minimum and len(owners) == 2:
            return names
    pytest.fail("the kernel gave every connection to one worker")


async def test_rooms_across_workers(client: SioClient) -> None:
    """A room broadcast reaches the room's sockets on both workers, each worker encoding it
    with the msgpack parser."""
    names = await room_on_both_workers(client, "m", "r")
    sender, *others = names
    payload = {"hello": b64(b"\x01\x02")}
    assert await client.call(sender, "to_room", {"room": "r", "msg": payload}) == ["sent"]
    for name in others:
        event = await client.event(name, "room_message")
        assert event["args"] == [payload]
    assert not client.events_of(sender, "room_message")  # socket.to() leaves the sender out


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_python_socketio_msgpack_client(server: ServerProcess, transport: str) -> None:
    sio = socketio.AsyncClient(reconnection=False, serializer="msgpack")
    asked: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()

    @sio.on("ask")
    async def ask(*args: Any) -> Any:
        await asked.put(args)
        return {"got": list(args)}

    await sio.connect(server.url, transports=[transport], wait_timeout=scaled(5))
    try:
        assert await sio.call("echo", {"b": b"\x00\x01", "s": "ü"}, timeout=scaled(5)) == \
            {"b": b"\x00\x01", "s": "ü"}
        assert await sio.call("swap", (1, [2]), timeout=scaled(5)) == ([2], 1)
        assert await sio.call("server_ack", b"x", timeout=scaled(5)) == {"got": [b"x"]}
        assert await asked.get() == (b"x",)
        assert await sio.call("join", "py", timeout=scaled(5)) == sorted([sio.get_sid(), "py"])
    finally:
        await sio.disconnect()


async def test_a_default_parser_client_is_refused_cleanly(server: ServerProcess) -> None:
    """A client speaking the default parser to a msgpack server sends text: a protocol
    error, the connection closed (as the reference's msgpack decoder throws)."""
    sio = await start_client(server.url)
    async with sio.node:
        await sio.command("connect", "x", nsp="/", transports=["websocket"])
        event = await sio.node.next_event(lambda e: e.get("name") == "x")
        assert event["ev"] in ("connect_error", "disconnect"), event
        assert event["ev"] != "connect"
