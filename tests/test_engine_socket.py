"""In-process tests of sio_core.engine.socket: the session's I/O loop as the wire shows it:
the upgrade from polling to websocket (probe, the NOOP that ends the pending poll, "5",
its timeout and failures), sends shared between sockets (a broadcast), a poll released
rather than aborted. An EngineServer runs in the test's event loop
(tests/engine_harness.py); requests, frames and answers are literal bytes."""

from __future__ import annotations

from sio_core.config import Config
from sio_core.engine.socket import fan_out
from sio_core.protocol.engineio import message
from sio_core.protocol.session import CloseReason
from tests.engine_harness import (
    CLIENT_CLOSE,
    CLOSE_1000,
    CLOSE_NO_STATUS,
    ERR_BAD,
    OK,
    Engine,
    WsClient,
    error_bytes,
    get,
    mask_zero,
    payload_bytes,
    post,
    serving,
    text,
    websocket,
)
from tests.support import scaled
from tests.test_http_errors import http_request


async def upgrading(engine: Engine) -> tuple[str, WsClient]:
    """A polling session and a websocket that begins its upgrade (no probe yet)."""
    sid = await engine.handshake()
    ws = await engine.open_websocket(websocket(sid))
    return sid, ws


async def test_the_upgrade() -> None:
    """The client probes, the pending poll is ended with a NOOP so that the client can
    pause polling, the "5" moves the session to the websocket, and polling is over."""
    async with serving() as engine:
        sid = await engine.handshake()
        conn, poll = await engine.start_poll(sid)
        ws = await engine.open_websocket(websocket(sid))
        assert not poll.done()
        await ws.probe()
        assert (await poll).body == b"6"
        socket = engine.recorder.sockets[sid]
        assert socket.transport.name == "polling"
        await ws.send("5")
        await ws.send("4over the websocket")
        await ws.expect(text("4over the websocket"))
        assert socket.transport.name == "websocket"
        assert await engine.exchange(get(sid)) == error_bytes(ERR_BAD)
        assert await engine.exchange(post(sid, b"4x")) == error_bytes(ERR_BAD)
        await ws.conn.send(CLIENT_CLOSE)
        await ws.expect(CLOSE_1000)
        assert await engine.recorder.close_reason(sid) is CloseReason.TRANSPORT_CLOSE
        await conn.close()
        await ws.close()


async def test_the_upgrade_with_the_pending_poll_answered_by_the_5() -> None:
    """A GET sent after the probe is ended at once; one that is still pending when "5"
    comes is ended with a NOOP then."""
    async with serving() as engine:
        sid, ws = await upgrading(engine)
        await ws.probe()
        # after the probe every poll ends at once
        assert await engine.exchange(get(sid)) == payload_bytes(b"6")
        assert await engine.exchange(get(sid)) == payload_bytes(b"6")
        await ws.send("5")
        await ws.send("4x")
        await ws.expect(text("4x"))
        await ws.close()


async def test_output_queued_before_the_5_goes_over_polling() -> None:
    async with serving() as engine:
        sid, ws = await upgrading(engine)
        assert engine.recorder.sockets[sid].send("before")
        assert await engine.exchange(get(sid)) == payload_bytes(b"4before")
        await ws.probe()
        assert engine.recorder.sockets[sid].send("after the probe")
        assert await engine.exchange(get(sid)) == payload_bytes(b"4after the probe\x1e6")
        await ws.close()


async def test_an_upgrade_that_is_not_finished_in_time_is_dropped() -> None:
    """upgrade_timeout: the websocket is closed, the session carries on over polling."""
    async with serving(Config(upgrade_timeout=scaled(0.05))) as engine:
        sid, ws = await upgrading(engine)
        await ws.probe()
        await ws.expect(CLOSE_1000)
        assert engine.recorder.sockets[sid].transport.name == "polling"
        assert await engine.exchange(post(sid, b"4still polling")) == OK
        assert await engine.exchange(get(sid)) == payload_bytes(b"4still polling")
        await ws.close()


async def test_an_unexpected_packet_ends_the_upgrade_not_the_session() -> None:
    async with serving() as engine:
        sid, ws = await upgrading(engine)
        await ws.send("5")  # before the probe
        await ws.expect(CLOSE_1000)
        assert engine.recorder.sockets[sid].transport.name == "polling"
        assert sid not in engine.recorder.closed
        # a new upgrade can start
        ws2 = await engine.open_websocket(websocket(sid))
        await ws2.send("x")  # not even a packet
        await ws2.expect(CLOSE_1000)
        assert await engine.exchange(post(sid, b"4fine")) == OK
        await ws.close()
        await ws2.close()


async def test_a_websocket_that_closes_during_the_upgrade() -> None:
    async with serving() as engine:
        sid, ws = await upgrading(engine)
        await ws.probe()
        await ws.conn.send(CLIENT_CLOSE)
        await ws.expect(CLOSE_1000)
        assert await ws.closed_by_server()
        assert engine.recorder.sockets[sid].transport.name == "polling"
        # the upgrade is over: polls are no longer ended at once
        conn, poll = await engine.start_poll(sid)
        assert engine.recorder.sockets[sid].send("polling again")
        assert (await poll).body == b"4polling again"
        await conn.close()
        await ws.close()


async def test_a_second_websocket_is_accepted_and_closed_at_once() -> None:
    """As the reference: a websocket for a session that has one (upgrading, upgraded or
    opened on one) gets its 101 and a close frame with no status, the session untouched."""
    async with serving() as engine:
        sid, ws = await upgrading(engine)
        second = await engine.open_websocket(websocket(sid))
        await second.expect(CLOSE_NO_STATUS)
        await second.conn.send(mask_zero(0x8, b""))
        assert await second.closed_by_server()
        await ws.complete_upgrade()
        third = await engine.open_websocket(websocket(sid))
        await third.expect(CLOSE_NO_STATUS)
        await ws.send("4on")
        await ws.expect(text("4on"))
        for client in (ws, second, third):
            await client.close()


async def test_no_upgrade_when_upgrades_are_off() -> None:
    async with serving(Config(allow_upgrades=False)) as engine:
        sid = await engine.handshake()
        async with await engine.connect() as conn:
            await conn.send(http_request("GET", websocket(sid), headers={
                "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}))
            answer = await conn.answer()
            assert (answer.status, answer.body, answer.headers["connection"]) \
                == (400, ERR_BAD, "close")


async def test_a_session_closed_while_upgrading_closes_both_transports() -> None:
    async with serving() as engine:
        sid, ws = await upgrading(engine)
        conn, poll = await engine.start_poll(sid)
        engine.recorder.sockets[sid].close()
        assert (await poll).body == b"1"
        await ws.expect(CLOSE_1000)
        assert await engine.recorder.close_reason(sid) is CloseReason.FORCED_CLOSE
        await conn.close()
        await ws.close()


async def test_a_ping_during_the_upgrade_goes_over_polling() -> None:
    async with serving(Config(ping_interval=scaled(0.05))) as engine:
        sid, ws = await upgrading(engine)
        assert await engine.exchange(get(sid)) == payload_bytes(b"2")
        assert await engine.exchange(post(sid, b"3")) == OK
        await ws.close()


async def test_packets_shared_by_two_sockets_are_framed_once() -> None:
    """A broadcast: the same packets queued to a websocket session and a polling one."""
    async with serving() as engine:
        polled = await engine.handshake()
        ws = await engine.open_websocket()
        await ws.read_frame()
        [framed] = [s for s in engine.recorder.sockets if s != polled]
        packets = [message("to all"), message(b"\x07")]
        for sid in (polled, framed):
            assert engine.recorder.sockets[sid].send_packets(packets)
        await ws.expect(text("4to all") + b"\x82\x01\x07")
        assert packets[0].ws_frame == text("4to all")
        assert await engine.exchange(get(polled)) == payload_bytes(b"4to all\x1ebBw==")
        await ws.close()


async def test_fan_out_queues_on_every_session_that_takes_output() -> None:
    """fan_out: the same packets queued on many sessions in one call, each written once at
    the end of the loop turn (a burst of broadcasts is one write); a closed session is
    skipped, and a volatile broadcast skips a polling session with no GET pending."""
    async with serving() as engine:
        polled = await engine.handshake()
        ws = await engine.open_websocket()
        await ws.read_frame()
        closing = await engine.open_websocket()
        await closing.read_frame()
        sockets = engine.recorder.sockets
        [framed, closed] = [sockets[s] for s in sockets if s != polled]
        closed.close()
        everyone = [sockets[polled], framed, closed]
        assert fan_out(everyone, [message("a")]) == 2
        assert fan_out(everyone, [message("b")]) == 2
        assert fan_out(everyone, [message("v")], volatile=True) == 1  # no GET pending
        await ws.expect(text("4a") + text("4b") + text("4v"))
        assert await engine.exchange(get(polled)) == payload_bytes(b"4a\x1e4b")
        await closing.expect(CLOSE_1000)
        await ws.close()
        await closing.close()


async def test_queued_counts_what_is_not_yet_written() -> None:
    """What a session holds unsent (EngineSocket.buffered() is gone: the core's queued())."""
    async with serving() as engine:
        sid = await engine.handshake()
        socket = engine.recorder.sockets[sid]
        assert socket.core.queued() == 0
        socket.send("a")
        socket.send("b")
        assert socket.core.queued() == 2  # queued until a GET takes them
        assert await engine.exchange(get(sid)) == payload_bytes(b"4a\x1e4b")
        assert socket.core.queued() == 0
        ws = await engine.open_websocket()
        await ws.read_frame()
        [framed] = [s for s in engine.recorder.sockets if s != sid]
        framed_socket = engine.recorder.sockets[framed]
        framed_socket.send("c")
        await ws.expect(text("4c"))  # a websocket session's output is written, not kept
        assert framed_socket.core.queued() == 0
        await ws.close()


async def test_a_released_poll_is_answered_empty_and_the_session_goes_on() -> None:
    """release_poll: the GET can no longer reach its client (the worker that relayed it is
    gone); not the client's fault, so the session stays and keeps its output."""
    async with serving() as engine:
        sid = await engine.handshake()
        socket = engine.recorder.sockets[sid]
        conn, poll = await engine.start_poll(sid)
        socket.release_poll()
        assert (await poll).body == b""
        socket.release_poll()  # nothing pending: nothing happens
        socket.send("kept")
        assert await engine.exchange(get(sid)) == payload_bytes(b"4kept")
        assert sid not in engine.recorder.closed
        await conn.close()


async def test_sends_from_many_sockets_in_one_turn_are_written_at_its_end() -> None:
    async with serving() as engine:
        clients = [await engine.open_websocket() for _ in range(3)]
        for ws in clients:
            await ws.read_frame()
        for socket in engine.recorder.sockets.values():
            assert socket.send("one") and socket.send("two")
        for ws in clients:
            await ws.expect(text("4one") + text("4two"))
            await ws.close()


async def test_an_upgrade_websockets_refuses_leaves_the_session_as_it_was() -> None:
    async with serving() as engine:
        sid = await engine.handshake()
        async with await engine.connect() as conn:
            await conn.send(http_request("GET", websocket(sid), headers={
                "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13"}))
            answer = await conn.answer()
            assert (answer.status, answer.headers["connection"]) == (400, "close")
            assert answer.body.startswith(b"Failed to open a WebSocket connection: missing")
        assert engine.recorder.sockets[sid].core.state.value == "open"
        ws = await engine.open_websocket(websocket(sid))  # a good one may come
        await ws.probe()
        await ws.close()


async def test_nothing_is_sent_once_the_session_is_closed() -> None:
    async with serving() as engine:
        ws = await engine.open_websocket()
        await ws.read_frame()
        [socket] = engine.recorder.sockets.values()
        socket.close()
        assert socket.closed
        assert not socket.send("x")
        assert not socket.send_packet(message("x"))
        assert not socket.send_packets([message("x")])
        await ws.expect(CLOSE_1000)
        await ws.close()


def test_a_closed_loops_flusher_goes_with_it() -> None:
    """The flushers are held per loop, weakly: one that kept its loop alive would keep every
    loop a process ever ran (each test's, an application's restarts)."""
    import asyncio
    import gc
    import weakref

    from sio_core.engine import socket as engine_socket

    loops = []
    for _ in range(3):
        loop = asyncio.new_event_loop()
        flusher = engine_socket._flusher(loop)
        assert engine_socket._flusher(loop) is flusher  # one per loop
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
        loops.append(weakref.ref(loop))
        del loop, flusher
    gc.collect()
    assert [ref() for ref in loops] == [None, None, None]
