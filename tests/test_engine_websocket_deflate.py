"""permessage-deflate (RFC 7692) in sio_core.engine.websocket, in process: the negotiation
(``per_message_deflate``), frames compressed from the threshold on, the client's compressed
frames read, a client's own window size, and a packet compressed once for every recipient.
The official client's side is in test_socketio_wire_interop.py."""

from __future__ import annotations

import asyncio
import zlib

from sio_core.config import Config
from sio_core.engine.websocket import deflated_frame_of, frame_of
from sio_core.protocol import engineio
from tests.engine_harness import (
    WS_HEADERS,
    Engine,
    WsClient,
    eventually,
    mask_zero,
    serving,
    text,
)
from tests.engine_harness import websocket as websocket_target
from tests.support import scaled
from tests.test_engine_forwarding import workers
from tests.test_http_errors import http_request

OFFER = "permessage-deflate; client_max_window_bits"
BIG = "4" + "squeeze me " * 200


async def upgrade(engine: Engine, offer: str | None, target: str | None = None
                  ) -> tuple[WsClient, str | None]:
    """A websocket (a new session, or ``target``'s); the extensions the server answered."""
    conn = await engine.connect()
    headers = dict(WS_HEADERS)
    if offer is not None:
        headers["Sec-WebSocket-Extensions"] = offer
    await conn.send(http_request("GET", target or websocket_target(), headers=headers))
    answer = await conn.answer()
    assert answer.status == 101, answer
    return WsClient(conn), answer.headers.get("sec-websocket-extensions")


async def read_frame(ws: WsClient) -> tuple[bool, int, bytes]:
    """The next server frame: whether RSV1 (compressed) is set, its opcode, its payload."""
    async with asyncio.timeout(scaled(5)):
        reader = ws.conn.reader
        first, second = await reader.readexactly(2)
        size = second & 0x7F
        if size == 126:
            size = int.from_bytes(await reader.readexactly(2), "big")
        elif size == 127:
            size = int.from_bytes(await reader.readexactly(8), "big")
        return bool(first & 0x40), first & 0x0F, await reader.readexactly(size)


def inflate(payload: bytes, window_bits: int = 15) -> bytes:
    return zlib.decompressobj(-window_bits).decompress(payload + b"\x00\x00\xff\xff")


async def test_negotiated_and_used_from_the_threshold() -> None:
    async with serving(Config(per_message_deflate=True, per_message_deflate_threshold=200)
                       ) as engine:
        ws, extensions = await upgrade(engine, OFFER)
        assert extensions is not None
        assert extensions.startswith("permessage-deflate")
        assert "server_no_context_takeover" in extensions  # what makes a frame shareable
        compressed, opcode, payload = await read_frame(ws)  # the open packet: < 200 bytes
        assert (compressed, opcode, payload[:1]) == (False, 0x1, b"0")
        await ws.send(BIG)  # the harness echoes what it receives
        compressed, opcode, payload = await read_frame(ws)
        assert (compressed, opcode) == (True, 0x1)
        assert len(payload) < len(BIG) // 4
        assert inflate(payload).decode() == BIG
        await ws.send(bytes(300))  # a binary message
        compressed, opcode, payload = await read_frame(ws)
        assert (compressed, opcode, inflate(payload)) == (True, 0x2, bytes(300))
        # the client's compressed frame, with its own context kept between messages
        encoder = zlib.compressobj(wbits=-15)
        for _ in range(2):
            data = encoder.compress(BIG.encode()) + encoder.flush(zlib.Z_SYNC_FLUSH)
            await ws.conn.send(mask_zero(0x1 | 0x40, data[:-4]))
            compressed, _, payload = await read_frame(ws)
            assert compressed and inflate(payload).decode() == BIG
        await ws.close()


async def test_a_client_window_of_its_own() -> None:
    async with serving(Config(per_message_deflate=True)) as engine:
        ws, extensions = await upgrade(engine, OFFER + "; server_max_window_bits=10")
        assert extensions is not None and "server_max_window_bits=10" in extensions
        await read_frame(ws)
        await ws.send(BIG)
        compressed, _, payload = await read_frame(ws)
        assert compressed and inflate(payload, 10).decode() == BIG
        await ws.close()


async def test_off_or_not_offered_means_plain_frames() -> None:
    for config, offer in ((Config(), OFFER), (Config(per_message_deflate=True), None)):
        async with serving(config) as engine:
            ws, extensions = await upgrade(engine, offer)
            assert extensions is None
            await read_frame(ws)
            await ws.send(BIG)
            assert await read_frame(ws) == (False, 0x1, BIG.encode())
            await ws.close()


def test_a_packet_is_compressed_once() -> None:
    packet = engineio.message(BIG[1:])
    frame = deflated_frame_of(packet, 100)
    assert deflated_frame_of(packet, 100) is frame  # the same bytes for every recipient
    assert frame[0] == 0xC1  # FIN, RSV1, text
    small = engineio.message("hi")
    assert deflated_frame_of(small, 100) is frame_of(small)  # under the threshold: plain
    assert text("4hi") == frame_of(small)


async def test_a_relayed_websocket_compresses_on_the_relay_but_not_compress_false() -> None:
    """A websocket accepted by another worker (a frame proxy to the owner): the relay
    negotiates and compresses, and a packet sent with compress(False) stays plain."""
    relay_config = Config(per_message_deflate=True, per_message_deflate_threshold=100)
    async with workers(relay_config=relay_config) as (owner, relay, _, _):
        sid = await owner.handshake()
        ws, extensions = await upgrade(relay, OFFER, websocket_target(sid))
        assert extensions is not None and extensions.startswith("permessage-deflate")
        await ws.probe()
        await ws.send("5")
        await eventually(lambda: owner.server.sockets[sid].transport.name == "websocket")
        socket = owner.server.sockets[sid]
        assert socket.send(BIG[1:], compress=False)
        assert socket.send(BIG[1:])
        assert await read_frame(ws) == (False, 0x1, BIG.encode())
        compressed, _, payload = await read_frame(ws)
        assert compressed and inflate(payload).decode() == BIG
        await ws.close()
