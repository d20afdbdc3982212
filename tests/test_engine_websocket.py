"""In-process tests of sio_core.engine.websocket: Engine.IO over a WebSocket, frame by frame
(RFC 6455), with an EngineServer in the test's event loop (tests/engine_harness.py). The
client's frames are masked with the zero key, so their bytes show their payload; the
server's frames are compared byte for byte."""

from __future__ import annotations

import logging

import pytest
from websockets.exceptions import InvalidHeaderValue
from websockets.frames import Frame, Opcode

from sio_core.config import Config
from sio_core.engine.websocket import WebSocketConnection, _switching, accept, frame_of
from sio_core.http.connection import HTTPConnection
from sio_core.http.messages import Request, Response
from sio_core.protocol.engineio import Packet, PacketType, message
from sio_core.protocol.session import CloseReason
from tests.engine_harness import (
    CLIENT_CLOSE,
    CLOSE_1000,
    PATH,
    WS_ACCEPT,
    WS_HEADERS,
    WS_KEY,
    Engine,
    HandTransport,
    WsClient,
    eventually,
    mask_zero,
    open_packet,
    server_frame,
    serving,
    text,
    websocket,
)
from tests.support import scaled
from tests.test_http_errors import http_request


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


@pytest.mark.parametrize("length", [0, 1, 124, 125, 126, 4094, 4095, 4096, 65535, 65536, 70000])
def test_a_frame_is_what_websockets_serializes(length: int) -> None:
    """frame_of serializes a header once per length and reuses it: the frames are still
    byte for byte websockets' own, short, 16-bit and 64-bit lengths, text and binary."""
    text = "x" * max(0, length - 1)  # the type digit is one more byte
    binary = bytes(range(256)) * (length // 256) + bytes(length % 256)
    for _ in range(2):  # made, then from the cache
        assert frame_of(message(text)) == Frame(Opcode.TEXT, ("4" + text).encode()).serialize(
            mask=False)
        assert frame_of(message(binary)) == Frame(Opcode.BINARY, binary).serialize(mask=False)


async def test_a_websocket_closed_before_it_answers_the_server_is_forgotten() -> None:
    """The client's TCP goes away without a close frame: the session ends, and the
    server no longer counts the websocket."""
    async with serving() as engine:
        ws, sid = await session(engine)
        ws.conn.writer.transport.abort()
        assert await engine.recorder.close_reason(sid) is CloseReason.TRANSPORT_CLOSE
        await eventually(lambda: not engine.server.websockets)
        await ws.close()


def upgraded(engine: Engine, headers: dict[str, str] | None = None) -> HandTransport:
    """A websocket handshake fed to one of the engine's HTTPConnections, in process."""
    conn = HTTPConnection(engine.server.handle, engine.server.config)
    transport = HandTransport()
    conn.connection_made(transport)
    conn.data_received(http_request("GET", websocket(), headers=headers or WS_HEADERS))
    return transport


async def test_the_101_and_the_open_packet_are_one_write() -> None:
    """One send per handshake fewer: the 101 waits for the session's first frame."""
    async with serving() as engine:
        [written] = upgraded(engine).writes
        head, _, frame = written.partition(b"\r\n\r\n")
        assert head.split(b"\r\n") == [
            b"HTTP/1.1 101 Switching Protocols", b"Upgrade: websocket", b"Connection: Upgrade",
            b"Sec-WebSocket-Accept: " + WS_ACCEPT.encode()]
        [sid] = engine.recorder.sockets
        assert frame == text(open_packet(sid, upgrades="[]").decode())


async def test_a_repeated_handshake_header_is_refused_by_websockets() -> None:
    """The headers are handed to websockets as they came: a repeated key is two values,
    which it refuses (not one value joined with a comma)."""
    async with serving() as engine:
        async with await engine.connect() as conn:
            await conn.send(http_request("GET", websocket(), headers=WS_HEADERS).replace(
                b"\r\n\r\n", b"\r\nSec-WebSocket-Key: " + WS_KEY.encode() + b"\r\n\r\n"))
            answer = await conn.answer()
        assert answer.status == 400, answer
        assert b"Sec-WebSocket-Key" in answer.body, answer
        assert not engine.recorder.sockets


async def test_a_header_value_websockets_finds_unsafe_is_refused() -> None:
    """(httptools lets no such value through; a Request made otherwise is checked all the
    same.)"""
    async with serving() as engine:
        request = Request("GET", PATH, {"transport": "websocket"}, {}, raw_url=b"/x",
                          raw_headers=[(b"Sec-WebSocket-Key", b"bad\x7fvalue")])
        conn = HTTPConnection(engine.server.handle, engine.server.config)
        conn.connection_made(HandTransport())
        answer = accept(request, conn, engine.server.config)
        assert isinstance(answer, Response)
        assert (answer.status, answer.body, answer.close) == (400, b"Bad WebSocket request", True)


async def test_the_applications_headers_are_checked_in_the_101() -> None:
    """A value with a line break would split the 101: websockets' Headers refuses it."""
    request = Request("GET", PATH, {}, {}, raw_url=b"/x", raw_headers=[
        (name.encode(), value.encode()) for name, value in WS_HEADERS.items()])
    async with serving() as engine:
        conn = HTTPConnection(engine.server.handle, engine.server.config)
        conn.connection_made(HandTransport())
        ws = accept(request, conn, engine.server.config, headers=[("X-A", "1")])
        assert isinstance(ws, WebSocketConnection)
        with pytest.raises(InvalidHeaderValue):
            accept(request, conn, engine.server.config, headers=[("X-A", "1\r\nX-B: 2")])


def test_the_101_carries_what_was_negotiated_and_the_applications_headers() -> None:
    assert _switching("a=", "permessage-deflate; server_no_context_takeover", "chat",
                      [("Set-Cookie", "io=x")]) == (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: a=\r\n"
        b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n"
        b"Sec-WebSocket-Protocol: chat\r\nSet-Cookie: io=x\r\n\r\n")
