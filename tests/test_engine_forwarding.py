"""In-process tests of sio_core.engine.forwarding (and remote.py, its websocket relay): two
EngineServers in the test's event loop, workers ``w1`` and ``w2`` over a MemoryBus (the
store layer's in-process bus: envelopes packed and delivered on a later loop turn, as on
a real one). A session of w1 is driven through w2 with literal requests, and the answers
are compared byte for byte: GET, POST and upgrade forwarded to the owner, and their errors
(owner gone, session unknown, the relaying worker gone)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import pytest

from sio_core.config import Config, Cookie
from sio_core.engine.messages import (
    EngineKind,
    Open,
    Poll,
    PollAbort,
    Post,
    Verdict,
    WsClose,
    WsIn,
    WsOpen,
    WsOut,
)
from sio_core.protocol.session import CloseReason
from sio_core.stores.memory import MemoryBus, MemoryStore
from tests.engine_harness import (
    CLIENT_CLOSE,
    CLOSE_1000,
    CLOSE_NO_STATUS,
    ERR_BAD,
    ERR_SID,
    OK,
    WS_HEADERS,
    Engine,
    WsClient,
    answer_bytes,
    error_bytes,
    eventually,
    get,
    open_packet,
    payload_bytes,
    polling,
    post,
    raw_answer,
    serving,
    text,
    websocket,
)
from tests.support import scaled
from tests.test_http_errors import http_request


@contextlib.asynccontextmanager
async def bus_of(*configs: Config | None
                 ) -> AsyncIterator[tuple[list[Engine], list[MemoryStore]]]:
    """Workers w1, w2, ... (one per config), on one bus."""
    bus = MemoryBus()
    stores = [MemoryStore(f"w{n}", bus) for n in range(1, len(configs) + 1)]
    for store in stores:
        await store.start()
    try:
        async with contextlib.AsyncExitStack() as stack:
            engines = [await stack.enter_async_context(
                serving(config, owner=store.owner, store=store))
                for config, store in zip(configs, stores, strict=True)]
            yield engines, stores
    finally:
        for store in stores:
            await store.close()


@contextlib.asynccontextmanager
async def workers(owner_config: Config | None = None, relay_config: Config | None = None
                  ) -> AsyncIterator[tuple[Engine, Engine, MemoryStore, MemoryStore]]:
    """w1 (the owner of the sessions the tests make) and w2 (the relay), on one bus."""
    async with bus_of(owner_config, relay_config) as ((owner, relay), (store1, store2)):
        yield owner, relay, store1, store2


async def relayed(owner: Engine, relay: Engine) -> tuple[str, WsClient]:
    """A session of the owner, and a websocket for it through the relay (not probed)."""
    sid = await owner.handshake()
    return sid, await relay.open_websocket(websocket(sid))


async def barrier(asker: MemoryStore, target: str) -> None:
    """Once a request is answered, the target has handled what ``asker`` sent before it
    (the bus keeps the order between two workers)."""
    await asker.request(target, "barrier", None, 5)  # no handler: answered None


async def test_post_and_get_through_another_worker() -> None:
    async with workers() as (owner, relay, _, _):
        sid = await owner.handshake()
        assert await relay.exchange(post(sid, b"4via w2\x1ebAQI=")) == OK
        assert owner.recorder.received(sid) == ["via w2", b"\x01\x02"]
        assert await relay.exchange(get(sid)) == payload_bytes(b"4via w2\x1ebAQI=")
        assert relay.server.forwarding is not None
        assert relay.server.forwarding.in_flight == 0


async def test_a_forwarded_get_waits_at_the_owner() -> None:
    async with workers() as (owner, relay, _, _):
        sid = await owner.handshake()
        conn, poll = await relay.start_poll(sid)
        await eventually(lambda: owner.server.sockets[sid].core.poll_pending)
        assert relay.server.forwarding is not None
        assert relay.server.forwarding.in_flight == 1
        assert not poll.done()
        assert await owner.exchange(post(sid, b"4late")) == OK
        answer = await poll
        assert (answer.status, answer.body) == (200, b"4late")
        assert relay.server.forwarding.in_flight == 0
        await conn.close()


async def test_a_forwarded_get_whose_client_goes_away_closes_the_session() -> None:
    """The relay tells the owner (POLL_ABORT): "poll connection closed prematurely"."""
    async with workers() as (owner, relay, _, _):
        sid = await owner.handshake()
        conn, poll = await relay.start_poll(sid)
        await eventually(lambda: owner.server.sockets[sid].core.poll_pending)
        poll.cancel()
        await conn.close()
        assert await owner.recorder.close_reason(sid) is CloseReason.TRANSPORT_ERROR


async def test_the_owners_errors_come_back() -> None:
    async with workers() as (owner, relay, _, _):
        sid = await owner.handshake()
        # a sid of the owner's that it does not have
        assert await relay.exchange(get("AAAAAAAAAAAAAAAA.w1")) == error_bytes(ERR_SID)
        assert await relay.exchange(post("AAAAAAAAAAAAAAAA.w1", b"4x")) == error_bytes(ERR_SID)
        # a method that is neither
        assert await relay.exchange(http_request("PUT", polling(sid))) == error_bytes(ERR_BAD)
        # an overlapping GET: refused, and the first one gets the "1"
        conn, poll = await relay.start_poll(sid)
        await eventually(lambda: owner.server.sockets[sid].core.poll_pending)
        assert await relay.exchange(get(sid)) == error_bytes(ERR_BAD)
        assert (await poll).body == b"1"
        assert await owner.recorder.close_reason(sid) is CloseReason.TRANSPORT_ERROR
        await conn.close()


async def test_a_bad_payload_through_another_worker_closes_the_session() -> None:
    async with workers() as (owner, relay, _, _):
        sid = await owner.handshake()
        assert await relay.exchange(post(sid, b"9")) == error_bytes(ERR_BAD)
        assert await owner.recorder.close_reason(sid) is CloseReason.PARSE_ERROR


async def test_a_body_over_the_owners_max_payload_is_refused() -> None:
    """Workers whose limits differ (machines of one cluster, configured apart): the owner's
    refusal is the answer, not an "ok" for packets it dropped."""
    async with workers(owner_config=Config(max_payload=10)) as (owner, relay, _, _):
        sid = await owner.handshake()
        assert await relay.exchange(post(sid, b"4" + b"x" * 20)) \
            == answer_bytes("413 Request Entity Too Large")
        assert owner.recorder.received(sid) == []


async def test_polling_through_another_worker_after_the_upgrade() -> None:
    async with workers() as (owner, relay, _, _):
        ws = await owner.open_websocket()
        await ws.read_frame()
        [sid] = owner.recorder.sockets
        assert await relay.exchange(get(sid)) == error_bytes(ERR_BAD)
        assert await relay.exchange(post(sid, b"4x")) == error_bytes(ERR_BAD)
        await ws.close()


async def test_an_owner_that_is_gone() -> None:
    """A sid of a worker that is not on the bus: "Session ID unknown", at once; and a
    request on its way when the owner goes fails the same way."""
    async with workers() as (owner, relay, owner_store, _):
        sid = await owner.handshake()
        conn, poll = await relay.start_poll(sid)
        await eventually(lambda: owner.server.sockets[sid].core.poll_pending)
        await owner_store.close()  # w1 leaves the bus
        answer = await poll
        assert (answer.status, answer.body) == (400, ERR_SID)
        assert await relay.exchange(get(sid)) == error_bytes(ERR_SID)
        assert await relay.exchange(post(sid, b"4x")) == error_bytes(ERR_SID)
        async with await relay.connect() as ws_conn:
            await ws_conn.send(http_request("GET", websocket(sid), headers=WS_HEADERS))
            assert await raw_answer(ws_conn) == error_bytes(ERR_SID, close=True)
        await conn.close()


async def test_a_forwarded_get_whose_relay_is_gone_is_released() -> None:
    """The relay's client connection went with it, and no POLL_ABORT will come: the owner
    forgets the GET but keeps the session (the client retries through a live worker)."""
    async with workers() as (owner, relay, _, relay_store):
        sid = await owner.handshake()
        conn, _poll = await relay.start_poll(sid)
        await eventually(lambda: owner.server.sockets[sid].core.poll_pending)
        await relay_store.close()  # w2 leaves the bus
        await eventually(lambda: not owner.server.sockets[sid].core.poll_pending)
        owner.server.sockets[sid].send("kept")
        assert await owner.exchange(get(sid)) == payload_bytes(b"4kept")
        assert sid not in owner.recorder.closed
        await conn.close()


async def test_an_answer_relayed_by_a_worker_that_is_gone_closes_the_session() -> None:
    """The relay took the answer's packets and died: whether the client got them, nothing
    tells. The session is closed, so that its next GET fails and the client reconnects
    (a client whose HTTP library retries the GET would otherwise lose them quietly)."""
    async with workers() as (owner, relay, owner_store, relay_store):
        sid = await owner.handshake()
        owner.server.sockets[sid].send("in flight")
        assert await relay.exchange(get(sid)) == payload_bytes(b"4in flight")
        # another session's client has polled again since (here): its answer arrived
        other = await owner.handshake()
        owner.server.sockets[other].send("x")
        assert await relay.exchange(get(other)) == payload_bytes(b"4x")
        conn, _poll = await owner.start_poll(other)
        await barrier(owner_store, "w2")  # w2 has vouched for the answer it relayed
        await relay_store.close()  # w2 leaves the bus
        assert await owner.recorder.close_reason(sid) is CloseReason.TRANSPORT_ERROR
        assert await owner.exchange(get(sid)) == error_bytes(ERR_SID)
        assert other not in owner.recorder.closed
        await conn.close()


async def test_a_get_that_comes_another_way_waits_until_the_last_relay_vouches() -> None:
    """The previous answer went out through w2; the next GET comes to the owner itself: it
    is held (taken in, given nothing) until w2 says it is still there, and then answered
    with what is queued, as it would have been at once."""
    async with workers() as (owner, relay, owner_store, relay_store):
        sid = await owner.handshake()
        socket = owner.server.sockets[sid]
        socket.send("a")
        assert await relay.exchange(get(sid)) == payload_bytes(b"4a")
        vouch: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        relay_store.on(EngineKind.ALIVE, lambda envelope: vouch)
        socket.send("b")
        conn, poll = await owner.start_poll(sid)
        await barrier(owner_store, "w2")  # w2 has been asked (and holds its answer)
        assert socket.core.outbox and not poll.done()  # "b" waits for the vouching
        vouch.set_result(True)
        answer = await poll
        assert (answer.status, answer.body) == (200, b"4b")
        # the answer went out here: the next GET through w2 is not held
        socket.send("c")
        assert await relay.exchange(get(sid)) == payload_bytes(b"4c")
        assert sid not in owner.recorder.closed
        await conn.close()


@pytest.mark.parametrize("retried_at", ["w1", "w3"])
async def test_a_get_retried_before_the_owner_hears_that_its_relay_died(
        retried_at: str) -> None:
    """w2 took the answer's packets and died; the client's HTTP library sent the GET again,
    to the owner w1 (or through w3), before the owner heard of it (CI saw a python-socketio
    client lose ten messages so). The GET is held; when w2 is known gone, the session is
    closed and the GET answered as the session's next request would be (400, "Session ID
    unknown": on a "1", python-socketio's client would not reconnect), so the client
    reconnects (and recovers what it missed) rather than going on without those packets."""
    async with bus_of(None, None, None) as ((owner, relay, w3), (_, relay_store, _)):
        sid = await owner.handshake()
        socket = owner.server.sockets[sid]
        socket.send("lost")
        assert await relay.exchange(get(sid)) == payload_bytes(b"4lost")
        never: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        relay_store.on(EngineKind.ALIVE, lambda envelope: never)  # dying: it answers nothing
        socket.send("after")
        conn, poll = await {"w1": owner, "w3": w3}[retried_at].start_poll(sid)
        await eventually(lambda: socket.core.poll_pending)
        assert not poll.done()
        await relay_store.close()  # w2 leaves the bus
        answer = await poll
        assert (answer.status, answer.json()) == (400, {"code": 1,
                                                        "message": "Session ID unknown"})
        assert await owner.recorder.close_reason(sid) is CloseReason.TRANSPORT_ERROR
        assert await owner.exchange(get(sid)) == error_bytes(ERR_SID)
        never.cancel()
        await conn.close()


async def test_a_held_get_whose_own_relay_dies_is_released() -> None:
    """A GET relayed by w2 is held while w3, which relayed the previous answer, is asked;
    w2 dies meanwhile: the GET is released as any relayed by a worker that is gone, and
    w3's vouching, once it comes, leaves the session open."""
    async with bus_of(None, None, None) as ((owner, w2, w3), stores):
        sid = await owner.handshake()
        socket = owner.server.sockets[sid]
        socket.send("a")
        assert await w3.exchange(get(sid)) == payload_bytes(b"4a")
        vouch: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        stores[2].on(EngineKind.ALIVE, lambda envelope: vouch)
        conn, _poll = await w2.start_poll(sid)
        await eventually(lambda: socket.core.poll_pending)
        await stores[1].close()  # w2 leaves the bus
        await eventually(lambda: not socket.core.poll_pending)
        vouch.set_result(True)
        await barrier(stores[0], "w3")
        socket.send("kept")
        assert await owner.exchange(get(sid)) == payload_bytes(b"4kept")
        assert sid not in owner.recorder.closed
        await conn.close()


# --- websockets relayed to the owner ---------------------------------------------------------


async def test_an_upgrade_through_another_worker() -> None:
    """The relay accepts the websocket and relays its frames; the owner runs the upgrade
    (probe, NOOP of the pending poll, "5") and then the session over it."""
    async with workers() as (owner, relay, _, _):
        sid = await owner.handshake()
        conn, poll = await owner.start_poll(sid)
        ws = await relay.open_websocket(websocket(sid))
        await ws.probe()
        assert (await poll).body == b"6"
        await ws.send("5")
        await ws.send("4relayed")
        await ws.expect(text("4relayed"))
        assert owner.server.sockets[sid].transport.name == "websocket"
        await ws.send(b"\x01\x02")
        await ws.expect(b"\x82\x02\x01\x02")
        # the client closes: the owner's session ends
        await ws.conn.send(CLIENT_CLOSE)
        await ws.expect(CLOSE_1000)
        assert await ws.closed_by_server()
        assert await owner.recorder.close_reason(sid) is CloseReason.TRANSPORT_CLOSE
        await conn.close()
        await ws.close()


async def test_the_owner_closes_a_relayed_websocket() -> None:
    async with workers() as (owner, relay, _, _):
        sid, ws = await relayed(owner, relay)
        await ws.complete_upgrade()
        await ws.send("4close me")
        await ws.expect(CLOSE_1000)
        assert await owner.recorder.close_reason(sid) is CloseReason.FORCED_CLOSE
        await ws.conn.send(CLIENT_CLOSE)
        assert await ws.closed_by_server()
        await ws.close()


async def test_a_relayed_upgrade_that_times_out() -> None:
    async with workers(owner_config=Config(upgrade_timeout=scaled(0.05))) as (owner, relay, _, _):
        sid, ws = await relayed(owner, relay)
        await ws.expect(CLOSE_1000)
        assert owner.server.sockets[sid].transport.name == "polling"
        assert await relay.exchange(post(sid, b"4on polling")) == OK
        await ws.close()


async def test_a_second_websocket_through_another_worker_is_closed_at_once() -> None:
    async with workers() as (owner, relay, _, _):
        sid = await owner.handshake()
        first = await owner.open_websocket(websocket(sid))
        second = await relay.open_websocket(websocket(sid))
        await second.expect(CLOSE_NO_STATUS)
        await first.probe()
        await first.close()
        await second.close()


async def test_a_relayed_upgrade_the_owner_refuses() -> None:
    async with workers(owner_config=Config(allow_upgrades=False)) as (owner, relay, _, _):
        sid = await owner.handshake()
        async with await relay.connect() as conn:
            await conn.send(http_request("GET", websocket(sid), headers=WS_HEADERS))
            assert await raw_answer(conn) == error_bytes(ERR_BAD, close=True)
            assert await conn.closed_by_server()


async def test_a_relayed_upgrade_the_relay_refuses() -> None:
    """The owner began the upgrade, but websockets refuses the handshake at the relay: the
    owner is told, and the session carries on over polling."""
    async with workers() as (owner, relay, _, _):
        sid = await owner.handshake()
        async with await relay.connect() as conn:
            headers = {**WS_HEADERS, "Sec-WebSocket-Version": "8"}
            await conn.send(http_request("GET", websocket(sid), headers=headers))
            answer = await conn.answer()
            assert answer.status == 400
        socket = owner.server.sockets[sid]
        await eventually(lambda: socket.transport.name == "polling" and socket.core.state.value
                         == "open")
        # a new upgrade is possible: the first one is over
        ws = await owner.open_websocket(websocket(sid))
        await ws.probe()
        await ws.close()


async def test_websocket_transport_without_an_upgrade_through_another_worker() -> None:
    async with workers() as (owner, relay, _, _):
        sid = await owner.handshake()
        assert await relay.exchange(http_request("GET", websocket(sid))) == error_bytes(ERR_BAD)


async def test_a_relay_that_goes_away_ends_the_relayed_websocket() -> None:
    async with workers() as (owner, relay, _, relay_store):
        sid, ws = await relayed(owner, relay)
        await ws.complete_upgrade()
        await ws.send("4x")
        await ws.expect(text("4x"))
        await relay_store.close()
        assert await owner.recorder.close_reason(sid) is CloseReason.TRANSPORT_CLOSE
        await ws.close()


async def test_an_owner_that_goes_away_ends_the_relayed_websocket() -> None:
    async with workers() as (owner, relay, owner_store, _):
        _, ws = await relayed(owner, relay)
        await ws.probe()
        await owner_store.close()
        await ws.expect(CLOSE_1000)
        await ws.close()


# --- a retired worker hands its handshakes over ----------------------------------------------


async def retired(relay: Engine) -> None:
    """The relay retired (SIGHUP) and drained: it no longer listens."""
    relay.server.retire()
    assert await relay.server.drain(scaled(5)) is True


async def test_a_retired_worker_hands_a_polling_handshake_to_another() -> None:
    """A connection the retired worker accepted before it stopped listening brings a
    handshake: w1 opens the session with what the request said, and the answer, the
    application's cookie with it, is w2's."""
    async with workers(relay_config=Config(cookie=Cookie())) as (owner, relay, _, _):
        async with await relay.connect() as conn:
            await retired(relay)
            await conn.send(http_request("GET", polling() + "&who=me", headers={"X-Who": "me"}))
            answer = await raw_answer(conn)
            sid = answer.split(b'"sid":"')[1].split(b'"')[0].decode()
            assert sid.endswith(".w1")
            assert answer == payload_bytes(open_packet(sid), (
                f"Set-Cookie: io={sid}; Path=/; HttpOnly; SameSite=Lax",))
            assert list(owner.recorder.sockets) == [sid]
            request = owner.server.sockets[sid].request
            assert (request.query["who"], request.headers["x-who"]) == ("me", "me")
            assert request.client is not None and request.client[0] == "127.0.0.1"
            assert request.raw_url.endswith(b"&who=me")
            # the session lives on: its requests, through the retired worker too, reach w1
            await conn.send(post(sid, b"4hello"))
            assert await raw_answer(conn) == OK
        assert await owner.exchange(get(sid)) == payload_bytes(b"4hello")
        assert relay.server.forwarding is not None
        assert relay.server.forwarding.forwarded["handshake"] == 1


@pytest.mark.parametrize("target", [websocket(), polling()])
async def test_a_retired_worker_refuses_what_it_cannot_hand_over(target: str) -> None:
    """A websocket handshake (its connection would stay on the worker that goes), and any
    handshake once the other worker drains too: the drain's 503."""
    upgrade = target == websocket()
    async with workers() as (owner, relay, _, _):
        async with await relay.connect() as conn:
            await retired(relay)
            if not upgrade:
                assert await owner.server.drain(scaled(5)) is True
            await conn.send(http_request("GET", target, headers=WS_HEADERS if upgrade else {}))
            assert await raw_answer(conn) == answer_bytes("503 Service Unavailable",
                                                          close=upgrade)
        assert owner.recorder.sockets == {}


async def test_a_handshake_handed_to_a_worker_that_does_not_answer_is_a_503() -> None:
    """The worker chosen serves no engine (its reply is empty), or is gone: the drain's 503,
    which the client retries, not "Session ID unknown"."""
    async with workers() as (owner, relay, owner_store, _):
        assert owner_store.bus is not None and relay.server.forwarding is not None
        other = MemoryStore("w3", owner_store.bus)
        await other.start()
        async with await relay.connect() as conn:
            await retired(relay)
            for peer in ("w3", "gone"):
                relay.server.forwarding.peer = lambda peer=peer: peer  # type: ignore[method-assign]
                await conn.send(http_request("GET", polling()))
                assert await raw_answer(conn) == answer_bytes("503 Service Unavailable")
        await other.close()
        assert owner.recorder.sockets == {}


async def test_an_open_the_worker_cannot_take_is_refused() -> None:
    """An Open for a sid that is not the worker's, or that it has: "Bad request"."""
    async with workers() as (owner, _, _, relay_store):
        sid = await owner.handshake()
        for wrong in ("AAAAAAAAAAAAAAAA.w2", sid):
            message = Open(wrong, "/socket.io/", b"/socket.io/?EIO=4", {}, {}, None, False)
            assert Verdict.from_wire(await relay_store.request(
                "w1", Open.KIND, message.to_wire(), 5)) == Verdict(400, 3)
        assert list(owner.recorder.sockets) == [sid]


# --- what arrives over the bus is untrusted ---------------------------------------------------


@pytest.mark.parametrize(("kind", "payload"), [
    (EngineKind.POLL, "junk"),
    (EngineKind.POLL, {"sid": "AAAAAAAAAAAAAAAA.w1", "t": 1}),  # the dicts of version 0
    (EngineKind.POLL, ["AAAAAAAAAAAAAAAA.w1", "1"]),
    (EngineKind.POLL, [5, 1]),
    (EngineKind.POST, ["AAAAAAAAAAAAAAAA.w1"]),
    (EngineKind.POST, ["AAAAAAAAAAAAAAAA.w1", "not bytes"]),
    (EngineKind.WS_OPEN, ["AAAAAAAAAAAAAAAA.w1"]),
    (EngineKind.WS_OPEN, []),
    (EngineKind.OPEN, ["AAAAAAAAAAAAAAAA.w1", "/", b"/", {}, {}, None]),
    (EngineKind.OPEN, ["AAAAAAAAAAAAAAAA.w1", "/", "/", {}, {}, None, False]),
    (EngineKind.OPEN, ["AAAAAAAAAAAAAAAA.w1", "/", b"/", {"a": 1}, {}, None, False]),
    (EngineKind.OPEN, ["AAAAAAAAAAAAAAAA.w1", "/", b"/", {}, {}, ["h"], False]),
    (EngineKind.OPEN, ["AAAAAAAAAAAAAAAA.w1", "/", b"/", {}, {}, ["h", "1"], False]),
    (EngineKind.OPEN, ["AAAAAAAAAAAAAAAA.w1", "/", b"/", {}, {}, None, 0]),
])
async def test_malformed_requests_from_the_bus_are_dropped(
        kind: EngineKind, payload: object, caplog: pytest.LogCaptureFixture) -> None:
    async with workers() as (_, _, owner_store, relay_store):
        with caplog.at_level(logging.WARNING, "sio_core.store"):
            assert await relay_store.request("w1", kind, payload, 5) is None
        assert owner_store.dropped.count == 1
        assert [r.getMessage() for r in caplog.records] == [
            f"dropped a message from w2 ({kind}): malformed {kind}"]


async def test_requests_for_unknown_sessions_from_the_bus() -> None:
    sid = "AAAAAAAAAAAAAAAA.w1"
    async with workers() as (_, _, _, relay_store):
        for kind, payload in ((EngineKind.POLL, Poll(sid, 1).to_wire()),
                              (EngineKind.WS_OPEN, WsOpen(sid, "w2:1").to_wire()),
                              (EngineKind.POST, Post(sid, b"4x").to_wire())):
            assert Verdict.from_wire(await relay_store.request("w1", kind, payload, 5)) \
                == Verdict(400, 1)


async def test_malformed_notices_from_the_bus_are_ignored() -> None:
    async with workers() as (owner, _, owner_store, relay_store):
        sid = await owner.handshake()
        for kind in (EngineKind.POLL_ABORT, EngineKind.WS_IN, EngineKind.WS_OUT,
                     EngineKind.WS_CLOSE):
            for payload in ("junk", {"p": "nobody", "d": 5, "t": 99}, ["nobody", 5]):
                relay_store.send("w1", kind, payload)
                owner_store.send("w2", kind, payload)
        # well-formed, for no one
        for message in (PollAbort(99), WsIn("nobody", "4x"), WsOut("nobody", ["4x"]),
                        WsClose("nobody")):
            relay_store.send("w1", message.KIND, message.to_wire())
            owner_store.send("w2", message.KIND, message.to_wire())
        await barrier(relay_store, "w1")
        await barrier(owner_store, "w2")
        assert owner.recorder.closed == {}
        assert await owner.exchange(post(sid, b"4still fine")) == OK


async def test_a_worker_on_the_bus_that_serves_no_engine() -> None:
    """A sid naming a worker that answers the bus but does not forward (no handler: its
    reply is empty): "Session ID unknown"."""
    async with workers() as (_, relay, owner_store, _):
        assert owner_store.bus is not None
        other = MemoryStore("w3", owner_store.bus)
        await other.start()
        assert await relay.exchange(get("AAAAAAAAAAAAAAAA.w3")) == error_bytes(ERR_SID)
        await other.close()
