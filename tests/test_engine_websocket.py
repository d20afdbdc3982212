"""In-process tests of sio_core.engine.websocket: Engine.IO over a WebSocket, frame by frame
(RFC 6455), with an EngineServer in the test's event loop (tests/engine_harness.py). The
client's frames are masked with the zero key, so their bytes show their payload; the
server's frames are compared byte for byte."""

from __future__ import annotations

import logging

import pytest

from sio_core.config import Config
from sio_core.engine.websocket import frame_of
from sio_core.protocol.engineio import Packet, PacketType, message
from sio_core.protocol.session import CloseReason
from tests.engine_harness import (
    CLIENT_CLOSE,
    CLOSE_1000,
    Engine,
    WsClient,
    eventually,
    mask_zero,
    open_packet,
    server_frame,
    serving,
    text,
)
from tests.support import scaled


async def session(engine: Engine) -> tuple[WsClient, str]:
    """A websocket session, its open packet read."""
    ws = await engine.open_websocket()
    opcode, payload = await ws.read_frame()
    [sid] = [s for s in engine.recorder.sockets if s not in engine.recorder.closed]
    assert (opcode, payload) == (0x1, open_packet(
        sid, upgrades="[]", max_payload=engine.server.config.max_payload))
    return ws, sid


async def test_text_and_binary_messages() -> None:
    async with serving() as engine:
        ws, sid = await session(engine)
        await ws.conn.send(b"\x81\x86\0\0\0\x004hello")
        await ws.expect(b"\x81\x064hello")
        await ws.conn.send(b"\x82\x83\0\0\0\0\x01\x02\x03")
        await ws.expect(b"\x82\x03\x01\x02\x03")
        assert engine.recorder.received(sid) == ["hello", b"\x01\x02\x03"]
        await ws.close()


async def test_fragmented_messages_are_reassembled() -> None:
    async with serving() as engine:
        ws, sid = await session(engine)
        await ws.conn.send(mask_zero(0x1, b"4hel", fin=False) + mask_zero(0x0, b"l", fin=False)
                           + mask_zero(0x0, b"o"))
        await ws.expect(text("4hello"))
        await ws.conn.send(mask_zero(0x2, b"\x01", fin=False) + mask_zero(0x0, b"\x02"))
        await ws.expect(server_frame(0x2, b"\x01\x02"))
        assert engine.recorder.received(sid) == ["hello", b"\x01\x02"]
        await ws.close()


async def test_a_large_message() -> None:
    """Frame lengths of 16 and 64 bits (RFC 6455 section 5.2)."""
    async with serving(Config(max_payload=200_000)) as engine:
        ws, _ = await session(engine)
        for size in (300, 70_000):
            await ws.send("4" + "x" * size)
            await ws.expect(text("4" + "x" * size))
        await ws.close()


async def test_a_ping_frame_is_answered_with_a_pong() -> None:
    async with serving() as engine:
        ws, _ = await session(engine)
        await ws.conn.send(mask_zero(0x9, b"hb"))
        await ws.expect(b"\x8a\x02hb")
        await ws.close()


async def test_the_clients_closing_handshake() -> None:
    """The server answers the close frame and then closes the TCP connection first."""
    async with serving() as engine:
        ws, sid = await session(engine)
        await ws.conn.send(CLIENT_CLOSE)
        await ws.expect(CLOSE_1000)
        assert await ws.closed_by_server()
        assert await engine.recorder.close_reason(sid) is CloseReason.TRANSPORT_CLOSE
        await eventually(lambda: not engine.server.websockets)
        await ws.close()


async def test_the_servers_closing_handshake() -> None:
    async with serving() as engine:
        ws, sid = await session(engine)
        await ws.send("4close me")
        await ws.expect(CLOSE_1000)
        assert await engine.recorder.close_reason(sid) is CloseReason.FORCED_CLOSE
        assert engine.server.websockets  # until the client answers
        await ws.send("4ignored")  # what comes before the client's close frame is dropped
        await ws.conn.send(CLIENT_CLOSE)
        assert await ws.closed_by_server()
        assert engine.recorder.received(sid) == ["close me"]
        await ws.close()


async def test_a_client_that_does_not_answer_the_close_is_cut_off() -> None:
    async with serving(Config(websocket_close_timeout=scaled(0.1))) as engine:
        ws, sid = await session(engine)
        engine.recorder.sockets[sid].close()
        await ws.expect(CLOSE_1000)
        assert await ws.closed_by_server()
        await ws.close()


async def test_a_server_close_writes_the_queued_packets_first() -> None:
    async with serving() as engine:
        ws, sid = await session(engine)
        socket = engine.recorder.sockets[sid]
        assert socket.send("bye")
        socket.close()
        await ws.expect(text("4bye") + CLOSE_1000)
        await ws.close()


@pytest.mark.parametrize("frame", [mask_zero(0x1, b"x"), mask_zero(0x1, b"")],
                         ids=["unknown packet type", "empty text frame"])
async def test_a_packet_that_does_not_decode_is_a_parse_error(frame: bytes) -> None:
    async with serving() as engine:
        ws, sid = await session(engine)
        await ws.conn.send(frame)
        await ws.expect(CLOSE_1000)
        assert await engine.recorder.close_reason(sid) is CloseReason.PARSE_ERROR
        await ws.close()


async def test_a_text_frame_that_is_not_utf8_is_closed_with_1007() -> None:
    """RFC 6455 section 8.1 (websockets' sans-I/O protocol leaves this check to us): a
    closing handshake with status 1007."""
    async with serving() as engine:
        ws, sid = await session(engine)
        await ws.conn.send(mask_zero(0x1, b"4\xff"))
        await ws.expect(b"\x88\x02\x03\xef")
        await ws.conn.send(CLIENT_CLOSE)
        assert await ws.closed_by_server()
        assert await engine.recorder.close_reason(sid) is CloseReason.TRANSPORT_CLOSE
        await ws.close()


@pytest.mark.parametrize(("frame", "code"), [
    (mask_zero(0x1, b"4" + b"x" * 100), 1009),  # over max_payload
    (b"\x81\x024x", 1002),  # not masked (section 5.1)
], ids=["too big", "unmasked"])
async def test_a_frame_websockets_refuses_fails_the_connection(frame: bytes, code: int) -> None:
    """websockets fails the connection: its close frame, and the TCP connection closed
    at once (no closing handshake)."""
    async with serving(Config(max_payload=50)) as engine:
        ws, sid = await session(engine)
        await ws.conn.send(frame)
        opcode, payload = await ws.read_frame()
        assert (opcode, int.from_bytes(payload[:2], "big")) == (0x8, code)
        assert await ws.closed_by_server()
        assert await engine.recorder.close_reason(sid) is CloseReason.TRANSPORT_CLOSE
        await ws.close()


async def test_the_first_frames_may_come_with_the_upgrade_request() -> None:
    async with serving() as engine:
        conn = await engine.connect()
        ws = WsClient(conn)
        await ws.upgrade("/socket.io/?EIO=4&transport=websocket",
                         trailing=mask_zero(0x1, b"4early"))
        opcode, _ = await ws.read_frame()
        assert opcode == 0x1
        await ws.expect(text("4early"))
        await ws.close()


async def test_a_client_that_does_not_read_is_cut_off(caplog: pytest.LogCaptureFixture) -> None:
    """Past max_outbound_buffer bytes unsent, the websocket is aborted (a slow consumer must
    not grow the server's memory without bound)."""
    caplog.set_level(logging.WARNING)
    async with serving(Config(max_outbound_buffer=64 * 1024)) as engine:
        ws, sid = await session(engine)
        socket = engine.recorder.sockets[sid]
        chunk = b"\0" * (1 << 20)
        for _ in range(32):  # one loop turn: one write of 32 MiB, more than the kernel takes
            socket.send(chunk)
        assert await engine.recorder.close_reason(sid) is CloseReason.TRANSPORT_CLOSE
        assert "closing a websocket whose client does not read" in caplog.text
        assert not engine.server.websockets
        await ws.close()


async def test_send_many_and_its_limit(caplog: pytest.LogCaptureFixture) -> None:
    """send_many (the frames relayed for another worker's session) frames each message;
    past max_outbound_buffer the websocket is aborted too."""
    caplog.set_level(logging.WARNING)
    async with serving(Config(max_outbound_buffer=64 * 1024)) as engine:
        ws, _ = await session(engine)
        [connection] = engine.server.websockets
        assert connection.client is not None and connection.client[0] == "127.0.0.1"
        connection.send_many(["4a", b"\x01"])
        await ws.expect(text("4a") + server_frame(0x2, b"\x01"))
        [http] = engine.server.connections  # the websocket's (buffered() is gone)
        assert http.transport is not None and http.transport.get_write_buffer_size() == 0
        connection.send_many([b"\0" * (1 << 20)] * 32)
        await eventually(lambda: connection not in engine.server.websockets)  # aborted
        assert "closing a websocket whose client does not read" in caplog.text
        connection.send_many(["4after"])  # closed: nothing, no error
        connection.send_packets([message("after")])
        connection.close()  # closed already: nothing
        connection.data_received(mask_zero(0x1, b"4late"))  # nothing after the close
        await ws.close()


def test_frame_of_caches_the_frame_of_a_packet() -> None:
    packet = message("hi")
    frame = frame_of(packet)
    assert frame == b"\x81\x034hi"
    assert frame_of(packet) is frame
    assert frame_of(message(b"\x00")) == b"\x82\x01\x00"
    assert frame_of(Packet(PacketType.PING)) == b"\x81\x012"


async def test_a_websocket_closed_before_it_answers_the_server_is_forgotten() -> None:
    """The client's TCP goes away without a close frame: the session ends, and the
    server no longer counts the websocket."""
    async with serving() as engine:
        ws, sid = await session(engine)
        ws.conn.writer.transport.abort()
        assert await engine.recorder.close_reason(sid) is CloseReason.TRANSPORT_CLOSE
        await eventually(lambda: not engine.server.websockets)
        await ws.close()
