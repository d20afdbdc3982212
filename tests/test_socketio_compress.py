"""``compress(False)`` (the reference's ``socket.compress(false)``): an event sent so is never
compressed, neither by permessage-deflate on a websocket nor by the gzip of a polling answer;
the same event without it is. A Socket.IO Server in process, read with raw frames and raw
HTTP (the official client cannot tell a compressed frame from another)."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from sio_core import Server
from sio_core.socketio.adapter import BroadcastOptions
from sio_core.socketio.messages import FetchSockets
from sio_core.socketio.redis_adapter import flags_to_js, opts_from_js, opts_to_js
from tests.engine_harness import WS_HEADERS, WsClient, mask_zero
from tests.support import free_port, scaled
from tests.test_engine_websocket_deflate import OFFER, inflate, read_frame
from tests.test_http_errors import RawConnection, http_request

BIG = "squeeze " * 300
PATH = "/socket.io/"


@dataclass
class Endpoint:
    host: str
    port: int


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    io = Server(per_message_deflate=True)

    @io.on("connection")
    async def connection(socket: Any) -> None:
        @socket.on("go")
        async def go() -> None:
            await socket.compress(False).emit("plain", BIG)
            await socket.emit("packed", BIG)
            await io.compress(False).to(socket.id).emit("plain", BIG)
            await io.to(socket.id).emit("packed", BIG)
            await socket.timeout(5).compress(False).emit("plain", BIG)

        @socket.on("go_plain")
        async def go_plain() -> None:
            await socket.compress(False).emit("plain", BIG)
            await socket.broadcast.compress(False).emit("nobody", BIG)
            await io.compress(False).emit("plain", BIG)

    port = free_port()
    await io.serve("127.0.0.1", port)
    try:
        yield Endpoint("127.0.0.1", port)
    finally:
        await io.close(scaled(5))


EXPECTED = ["plain", "packed", "plain", "packed", "plain"]


async def test_websocket_frames(endpoint: Endpoint) -> None:
    conn = await RawConnection.open(endpoint)
    await conn.send(http_request("GET", f"{PATH}?EIO=4&transport=websocket",
                                 headers={**WS_HEADERS, "Sec-WebSocket-Extensions": OFFER}))
    assert (await conn.answer()).status == 101
    ws = WsClient(conn)
    await read_frame(ws)  # the open packet
    await conn.send(mask_zero(0x1, b"40"))
    assert (await read_frame(ws))[2].startswith(b"40{")
    await conn.send(mask_zero(0x1, b'42["go"]'))
    seen = []
    for _ in EXPECTED:
        compressed, _, payload = await read_frame(ws)
        text = inflate(payload).decode() if compressed else payload.decode()
        event, data = json.loads(text[2:])
        assert data == BIG
        seen.append(event if compressed == (event == "packed") else f"wrong: {event}")
    assert seen == EXPECTED
    await ws.close()


async def poll(endpoint: Endpoint, sid: str) -> tuple[str | None, str]:
    conn = await RawConnection.open(endpoint)
    async with asyncio.timeout(scaled(5)):
        answer = await conn.request("GET", f"{PATH}?EIO=4&transport=polling&sid={sid}",
                                    headers={"Accept-Encoding": "gzip"})
    await conn.close()
    encoding = answer.headers.get("content-encoding")
    body = gzip.decompress(answer.body) if encoding == "gzip" else answer.body
    return encoding, body.decode()


async def test_polling_answers(endpoint: Endpoint) -> None:
    conn = await RawConnection.open(endpoint)
    opened = await conn.request("GET", f"{PATH}?EIO=4&transport=polling")
    sid = json.loads(opened.body[1:])["sid"]
    target = f"{PATH}?EIO=4&transport=polling&sid={sid}"
    assert (await conn.request("POST", target, b"40")).status == 200
    assert (await poll(endpoint, sid))[1].startswith("40{")
    # a payload is compressed unless all its packets say not to (the reference's rule)
    assert (await conn.request("POST", target, b'42["go_plain"]')).status == 200
    encoding, body = await poll(endpoint, sid)
    assert encoding is None
    assert [json.loads(part[2:]) for part in body.split("\x1e")] == [["plain", BIG]] * 2
    assert (await conn.request("POST", target, b'42["go"]')).status == 200
    encoding, body = await poll(endpoint, sid)
    assert encoding == "gzip"
    assert [json.loads(part[2:])[0] for part in body.split("\x1e")] == EXPECTED
    assert (await conn.request("POST", target, b"1")).status == 200  # the client leaves
    await conn.close()


def test_the_flag_crosses_workers() -> None:
    opts = BroadcastOptions(rooms=frozenset({"r"}), compress=False)
    # between sio_core workers: a field of the options of every message
    message = FetchSockets("/", opts)
    assert FetchSockets.from_wire(message.to_wire()) == message
    # to JavaScript servers: the JS adapter's flag, said only when false
    js = {**opts_to_js(opts), "flags": flags_to_js(opts, volatile_false=True)}
    assert js["flags"] == {"volatile": False, "compress": False}
    assert opts_from_js(js) == opts
    assert "compress" not in flags_to_js(BroadcastOptions(), volatile_false=True)
    assert opts_from_js({"flags": {"compress": True}}) == BroadcastOptions()
