"""In-process tests of sio_core.engine.polling: the long-polling transport over the wire
(GET, POST, their overlaps, closes, heartbeats), with an EngineServer in the test's event
loop (tests/engine_harness.py) and literal request and answer bytes."""

from __future__ import annotations

import pytest

from sio_core.config import Config
from sio_core.engine import polling as polling_module
from sio_core.exceptions import BadRequest, PayloadTooLarge
from sio_core.protocol.engineio import Packet, PacketType
from sio_core.protocol.session import CloseReason
from tests.engine_harness import (
    ERR_BAD,
    ERR_SID,
    OK,
    error_bytes,
    get,
    payload_bytes,
    post,
    raw_answer,
    serving,
)
from tests.support import scaled


async def test_post_then_get() -> None:
    async with serving() as engine:
        sid = await engine.handshake()
        assert await engine.exchange(post(sid, b"4hello")) == OK
        assert engine.recorder.received(sid) == ["hello"]
        assert await engine.exchange(get(sid)) == payload_bytes(b"4hello")


async def test_a_payload_of_several_packets_and_binary_ones() -> None:
    async with serving() as engine:
        sid = await engine.handshake()
        assert await engine.exchange(post(sid, b"4a\x1ebAQID\x1e4\xc3\xa9\x1e6")) == OK
        assert engine.recorder.received(sid) == ["a", b"\x01\x02\x03", "\xe9"]
        # the echo: one payload, binary as "b" + base64
        assert await engine.exchange(get(sid)) == payload_bytes(b"4a\x1ebAQID\x1e4\xc3\xa9")


async def test_a_pending_get_is_answered_when_there_is_output() -> None:
    async with serving() as engine:
        sid = await engine.handshake()
        conn, poll = await engine.start_poll(sid)
        assert not poll.done()
        assert await engine.exchange(post(sid, b"4late")) == OK
        answer = await poll
        assert (answer.status, answer.headers["content-type"], answer.body) \
            == (200, "text/plain; charset=UTF-8", b"4late")
        await conn.close()


async def test_sends_of_one_turn_are_one_answer() -> None:
    async with serving() as engine:
        sid = await engine.handshake()
        socket = engine.recorder.sockets[sid]
        conn, poll = await engine.start_poll(sid)
        assert socket.send("a") and socket.send(b"\xff")
        assert socket.send_packet(Packet(PacketType.MESSAGE, "b"))
        assert (await poll).body == b"4a\x1eb/w==\x1e4b"
        await conn.close()


async def test_a_bad_payload_closes_the_session() -> None:
    async with serving() as engine:
        sid = await engine.handshake()
        conn, poll = await engine.start_poll(sid)
        assert await engine.exchange(post(sid, b"9nine")) == error_bytes(ERR_BAD)
        assert (await poll).body == b"1"
        assert await engine.recorder.close_reason(sid) is CloseReason.PARSE_ERROR
        assert await engine.exchange(get(sid)) == error_bytes(ERR_SID)
        await conn.close()


@pytest.mark.parametrize("body", [b"\xff\xfe", b"bnot base64!", b"4a\x1e\x1e4b"],
                         ids=["not UTF-8", "bad base64", "an empty packet"])
async def test_payloads_that_do_not_decode(body: bytes) -> None:
    async with serving() as engine:
        sid = await engine.handshake()
        assert await engine.exchange(post(sid, body)) == error_bytes(ERR_BAD)
        assert await engine.recorder.close_reason(sid) is CloseReason.PARSE_ERROR


async def test_too_many_packets_in_one_post() -> None:
    async with serving(Config(max_packets_per_payload=2)) as engine:
        sid = await engine.handshake()
        assert await engine.exchange(post(sid, b"4a\x1e4b")) == OK
        assert await engine.exchange(post(sid, b"4a\x1e4b\x1e4c")) == error_bytes(ERR_BAD)
        assert await engine.recorder.close_reason(sid) is CloseReason.PARSE_ERROR
        assert engine.recorder.received(sid) == ["a", "b"]


async def test_an_overlapping_get_closes_the_session() -> None:
    """Reference behaviour: the second GET is answered 400 and the first one "1"."""
    async with serving() as engine:
        sid = await engine.handshake()
        conn, poll = await engine.start_poll(sid)
        assert await engine.exchange(get(sid)) == error_bytes(ERR_BAD)
        assert (await poll).body == b"1"
        assert await engine.recorder.close_reason(sid) is CloseReason.TRANSPORT_ERROR
        await conn.close()


async def test_the_clients_close_ends_the_pending_get_with_a_noop() -> None:
    async with serving() as engine:
        sid = await engine.handshake()
        conn, poll = await engine.start_poll(sid)
        assert await engine.exchange(post(sid, b"1")) == OK
        assert (await poll).body == b"6"
        assert await engine.recorder.close_reason(sid) is CloseReason.TRANSPORT_CLOSE
        await conn.close()


@pytest.mark.parametrize(("body", "reason"), [
    (b"4a\x1e1\x1e4b", CloseReason.TRANSPORT_CLOSE),
    (b"4a\x1e2\x1e4b", CloseReason.TRANSPORT_ERROR),  # a ping from the client
], ids=["close", "ping"])
async def test_messages_before_a_close_in_the_same_post_are_delivered(
        body: bytes, reason: CloseReason) -> None:
    """As the reference (engine.io 6) does: "a" is emitted, then the close; "b" is not."""
    async with serving() as engine:
        sid = await engine.handshake()
        assert await engine.exchange(post(sid, body)) == OK
        assert await engine.recorder.close_reason(sid) is reason
        assert engine.recorder.received(sid) == ["a"]


async def test_messages_after_a_close_by_the_handler_are_dropped() -> None:
    async with serving() as engine:
        sid = await engine.handshake()
        assert await engine.exchange(post(sid, b"4close me\x1e4after")) == OK
        assert engine.recorder.received(sid) == ["close me"]
        # the server closed it: the next GET collects the "1"
        assert await engine.exchange(get(sid)) == payload_bytes(b"1")
        assert await engine.recorder.close_reason(sid) is CloseReason.FORCED_CLOSE
        assert await engine.exchange(get(sid)) == error_bytes(ERR_SID)


async def test_a_post_to_a_closing_session_is_refused() -> None:
    async with serving() as engine:
        sid = await engine.handshake()
        engine.recorder.sockets[sid].close()
        assert await engine.exchange(post(sid, b"4late")) == error_bytes(ERR_BAD)
        assert engine.recorder.received(sid) == []


async def test_a_server_close_delivers_the_queue_first_then_the_close() -> None:
    """Reference (engine.io's Socket.close()): what is queued drains in an answer of its
    own, and the "1" comes in the next one."""
    async with serving() as engine:
        sid = await engine.handshake()
        socket = engine.recorder.sockets[sid]
        assert socket.send("last words")
        socket.close()
        assert socket.closed and not socket.send("too late") and not socket.send_packets([])
        assert await engine.exchange(get(sid)) == payload_bytes(b"4last words")
        assert sid not in engine.recorder.closed
        assert await engine.exchange(get(sid)) == payload_bytes(b"1")
        assert await engine.recorder.close_reason(sid) is CloseReason.FORCED_CLOSE


async def test_a_server_close_waits_close_timeout_for_a_get() -> None:
    async with serving(Config(close_timeout=scaled(0.05))) as engine:
        sid = await engine.handshake()
        engine.recorder.sockets[sid].close()
        assert await engine.recorder.close_reason(sid) is CloseReason.FORCED_CLOSE
        assert sid not in engine.server.sockets


async def test_a_dropped_get_closes_the_session() -> None:
    """Reference: "poll connection closed prematurely"."""
    async with serving() as engine:
        sid = await engine.handshake()
        conn, poll = await engine.start_poll(sid)
        poll.cancel()
        await conn.close()
        assert await engine.recorder.close_reason(sid) is CloseReason.TRANSPORT_ERROR


async def test_a_get_with_a_half_closed_connection_is_given_up() -> None:
    async with serving() as engine:
        sid = await engine.handshake()
        async with await engine.connect() as conn:
            await conn.send(get(sid))
            conn.writer.write_eof()
            assert await conn.closed_by_server()
        assert await engine.recorder.close_reason(sid) is CloseReason.TRANSPORT_ERROR


async def test_heartbeat() -> None:
    """A ping every ping_interval; the client's pong keeps the session, none ends it."""
    interval, timeout = scaled(0.05), scaled(0.2)
    async with serving(Config(ping_interval=interval, ping_timeout=timeout)) as engine:
        sid = await engine.handshake()
        conn, poll = await engine.start_poll(sid)
        assert (await poll).body == b"2"
        assert await engine.exchange(post(sid, b"3")) == OK
        await conn.send(get(sid))
        assert (await conn.answer()).body == b"2"  # the next one, an interval later
        # no pong now: the session ends, and the pending GET is told
        await conn.send(get(sid))
        assert await raw_answer(conn, timeout=5) == payload_bytes(b"1")
        assert await engine.recorder.close_reason(sid) is CloseReason.PING_TIMEOUT
        await conn.close()


async def test_a_ping_from_the_client_closes_the_session() -> None:
    """v4 heartbeats go server -> client only (engine.io 6: "invalid heartbeat direction")."""
    async with serving() as engine:
        sid = await engine.handshake()
        assert await engine.exchange(post(sid, b"2")) == OK
        assert await engine.recorder.close_reason(sid) is CloseReason.TRANSPORT_ERROR


async def test_an_open_from_the_client_is_a_parse_error() -> None:
    async with serving() as engine:
        sid = await engine.handshake()
        assert await engine.exchange(post(sid, b"0")) == OK
        assert await engine.recorder.close_reason(sid) is CloseReason.PARSE_ERROR


async def test_noop_and_stray_upgrade_packets_are_ignored() -> None:
    async with serving() as engine:
        sid = await engine.handshake()
        assert await engine.exchange(post(sid, b"6\x1e5\x1e4x")) == OK
        assert engine.recorder.received(sid) == ["x"]
        assert sid not in engine.recorder.closed


async def test_receive_refuses_a_body_over_max_payload() -> None:
    """The HTTP layer refuses such a POST first (413); receive checks again for a body
    forwarded by another worker, whose limit may differ."""
    async with serving(Config(max_payload=10)) as engine:
        sid = await engine.handshake()
        socket = engine.recorder.sockets[sid]
        with pytest.raises(PayloadTooLarge):
            polling_module.receive(socket, b"4" + b"x" * 10, engine.server.config)
        polling_module.receive(socket, b"4" + b"x" * 9, engine.server.config)
        assert engine.recorder.received(sid) == ["x" * 9]


async def test_a_post_while_one_is_processed_closes_the_session() -> None:
    """Overlapping POSTs (a handler that posts again while its POST is processed stands in
    for a second connection's): the second is refused and the session closed."""
    async with serving() as engine:
        sid = await engine.handshake()
        socket = engine.recorder.sockets[sid]
        refused: list[Exception] = []

        def reenter(socket_: object, data: str | bytes) -> None:
            try:
                polling_module.receive(socket, b"4again", engine.server.config)
            except BadRequest as exc:
                refused.append(exc)

        engine.recorder.on_message = reenter  # type: ignore[method-assign]
        assert await engine.exchange(post(sid, b"4first")) == OK
        assert len(refused) == 1
        assert await engine.recorder.close_reason(sid) is CloseReason.TRANSPORT_ERROR


async def test_a_get_that_waits_for_the_answer_of_a_post_on_the_same_connection() -> None:
    """Pipelined on one connection: a GET, then a POST whose packets answer it. The POST is
    handled after the GET is answered (in order, one at a time)."""
    async with serving(Config(ping_interval=scaled(0.05))) as engine:
        sid = await engine.handshake()
        async with await engine.connect() as conn:
            await conn.send(get(sid) + post(sid, b"3"))
            assert await raw_answer(conn) == payload_bytes(b"2")
            assert await raw_answer(conn) == OK
        assert sid not in engine.recorder.closed
