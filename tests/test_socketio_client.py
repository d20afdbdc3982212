"""sio_core.socketio.client: one Engine.IO session seen from Socket.IO.

What a connection does with each packet the client sends: CONNECT flows (the reply, refusals,
dynamic namespaces), the packets its state forbids, undecodable input, the connect timeout, and
the reasons its sockets hear when it ends. Over the fake engine (tests/fake_engine.py), in
literal Socket.IO packets.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

import pytest

from sio_core import ConnectionRefusedError, Server, Socket
from sio_core.http.messages import Request
from sio_core.protocol.session import CloseReason
from tests.fake_engine import FakeEngineSocket, connect, masked
from tests.support import scaled


def app() -> Server:
    """A server with "/", "/admin", a dynamic "/dyn-<n>" and "/guarded" (refuses with data)."""
    io = Server()
    io.of("/admin")
    io.of(re.compile(r"^/dyn-\d+$"))

    def guard(socket: Socket) -> None:
        raise ConnectionRefusedError("no entry", {"why": "guarded"})

    io.of("/guarded").use(guard)
    return io


# (what the client sends, what the server answers, whether the connection is then closed)
CONNECTS: list[tuple[list[str | bytes], list[str | bytes], bool]] = [
    (["0"], ['0{"sid":"*"}'], False),
    (["0/admin,"], ['0/admin,{"sid":"*"}'], False),
    (["0/admin"], ['0/admin,{"sid":"*"}'], False),               # the comma may be left out
    (['0{"token":"t"}'], ['0{"sid":"*"}'], False),               # with auth
    (["0", "0/admin,"], ['0{"sid":"*"}', '0/admin,{"sid":"*"}'], False),
    (["0/admin,", "0"], ['0/admin,{"sid":"*"}', '0{"sid":"*"}'], False),  # "/" not needed first
    (["0/dyn-1,"], ['0/dyn-1,{"sid":"*"}'], False),              # made by the dynamic parent
    (["0/nowhere,"], ['4/nowhere,{"message":"Invalid namespace"}'], False),
    (["0/dyn-x,"], ['4/dyn-x,{"message":"Invalid namespace"}'], False),
    (["0/guarded,"], ['4/guarded,{"message":"no entry","data":{"why":"guarded"}}'], False),
    # a CONNECT with nothing to await is answered at once, ahead of one still being matched
    (["0/nowhere,", "0"], ['0{"sid":"*"}', '4/nowhere,{"message":"Invalid namespace"}'], False),
    # what the state forbids closes the connection, as the reference's Client.close()
    (["0", "0"], ['0{"sid":"*"}'], True),                        # a second CONNECT
    (["0/guarded,", "0/guarded,"], [], True),                    # ... while one is in middlewares
    (['2["x"]'], [], True),                                      # an event before CONNECT
    (["0", '2/admin,["x"]'], ['0{"sid":"*"}'], True),            # a namespace not joined
    (["0", "1/admin,"], ['0{"sid":"*"}'], True),
    (["0", '4{"message":"x"}'], ['0{"sid":"*"}'], True),         # CONNECT_ERROR from a client
    (['4{"message":"x"}'], [], True),
]


@pytest.mark.parametrize(("sent", "answered", "closed"), CONNECTS)
async def test_connect_flows(sent: list[str | bytes], answered: list[str | bytes],
                             closed: bool) -> None:
    conn = FakeEngineSocket(app())
    conn.receive(*sent)
    assert masked(await conn.take_when(len(answered))) == answered
    assert conn.closed is closed
    if closed:
        assert conn.close_reason is CloseReason.FORCED_CLOSE


async def test_the_connect_reply_names_the_socket() -> None:
    io = app()
    conn, socket = await connect(io, auth='{"token":"t"}')
    assert conn.context.sockets == {"/": socket}
    assert io.sockets.sockets == {socket.id: socket}
    assert socket.handshake.auth == {"token": "t"}
    conn2 = FakeEngineSocket(io)
    conn2.receive("0/admin,")
    [reply] = await conn2.take_when(1)
    assert reply == '0/admin,{"sid":"' + conn2.context.sockets["/admin"].id + '"}'


async def test_a_forbidden_packet_disconnects_the_sockets_first() -> None:
    io = Server()
    conn, socket = await connect(io)
    reasons: list[str] = []
    socket.on("disconnect", reasons.append)
    conn.receive("0")
    assert reasons == ["forced server close"]
    assert conn.closed and not socket.connected


async def test_packets_sent_during_the_middlewares_are_dropped() -> None:
    io = Server()
    gate = asyncio.Event()
    events: list[Any] = []

    async def wait(socket: Socket) -> None:
        await gate.wait()

    io.use(wait)
    io.on("connection", lambda socket: socket.on("x", events.append))
    conn = FakeEngineSocket(io)
    conn.receive("0", '2["x",1]')
    gate.set()
    assert masked(await conn.take_when(1)) == ['0{"sid":"*"}']
    conn.receive('2["x",2]')
    assert events == [2] and not conn.closed


async def test_a_refused_connect_may_be_tried_again() -> None:
    io = app()
    conn = FakeEngineSocket(io)
    refusal = '4/guarded,{"message":"no entry","data":{"why":"guarded"}}'
    for _ in range(2):
        conn.receive("0/guarded,")
        assert await conn.take_when(1) == [refusal]
    assert not conn.closed


async def test_a_matcher_that_fails_refuses_the_connect_and_is_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    io = Server()

    def matcher(name: str, auth: dict[str, Any]) -> bool:
        raise RuntimeError("bug")

    io.of(matcher)
    conn = FakeEngineSocket(io)
    with caplog.at_level(logging.ERROR, "sio_core.socketio"):
        conn.receive("0/x,")
        assert await conn.take_when(1) == ['4/x,{"message":"Internal server error"}']
    assert "error connecting to namespace /x" in caplog.text
    assert "bug" in caplog.text
    conn.receive("0")  # the connection goes on
    assert masked(await conn.take_when(1)) == ['0{"sid":"*"}']


# --- undecodable input: the reference closes the Engine.IO session --------------------------------

PROTOCOL_ERRORS: list[list[str | bytes]] = [
    ["9"],                                          # no such packet type
    [""],
    ["2"],                                          # an EVENT without payload
    ['2{"a":1}'],                                   # an EVENT whose payload is not an array
    ['2["disconnect"]'],                            # a reserved event name
    ['2["x"'],                                      # not JSON
    ['0"token"'],                                   # auth that is not an object
    ["3[]"],                                        # an ACK without id
    ["1{}"],                                        # DISCONNECT with a payload
    [b"\x01"],                                      # an attachment nobody announced
    ['51-["x",{"_placeholder":true,"num":0}]', '2["y"]'],  # text while an attachment is due
    ['50-["x"]'],                                   # a binary packet with no attachment
]


@pytest.mark.parametrize("sent", PROTOCOL_ERRORS)
async def test_undecodable_input_closes_the_connection(sent: list[str | bytes]) -> None:
    io = Server()
    conn, socket = await connect(io)
    reasons: list[str] = []
    socket.on("disconnect", reasons.append)
    conn.receive(*sent)
    assert conn.close_reason is CloseReason.FORCED_CLOSE
    assert reasons == ["forced close"]
    assert conn.take() == []


async def test_undecodable_input_before_any_connect_closes_too() -> None:
    conn = FakeEngineSocket(Server())
    conn.receive("x")
    assert conn.close_reason is CloseReason.FORCED_CLOSE


# --- the end of the connection, in the words of the "disconnect" handlers -------------------------

REASONS = [
    (CloseReason.TRANSPORT_CLOSE, "transport close"),
    (CloseReason.TRANSPORT_ERROR, "transport error"),
    (CloseReason.PARSE_ERROR, "parse error"),
    (CloseReason.PING_TIMEOUT, "ping timeout"),
    (CloseReason.FORCED_CLOSE, "forced close"),
    (CloseReason.SERVER_SHUTTING_DOWN, "server shutting down"),
]


@pytest.mark.parametrize(("reason", "text"), REASONS)
async def test_every_socket_hears_why_the_connection_ended(reason: CloseReason,
                                                           text: str) -> None:
    io = app()
    conn, main = await connect(io)
    _, admin = await connect(io, "/admin", conn=conn)
    heard: list[tuple[str, str]] = []
    for socket in (main, admin):
        socket.on("disconnect", lambda why, s=socket: heard.append((s.namespace.name, why)))
    conn.end(reason)
    assert sorted(heard) == [("/", text), ("/admin", text)]
    assert io.sockets.sockets == {} and io.of("/admin").sockets == {}
    assert conn.context.sockets == {}


async def test_the_client_closing_its_session() -> None:
    io = Server()
    conn, socket = await connect(io)
    reasons: list[str] = []
    socket.on("disconnect", reasons.append)
    conn.receive('2["x"]')
    conn.receive_close()
    assert reasons == ["transport close"]
    conn.receive('2["x"]')  # nothing is handed over once the session is closed
    assert conn.take() == []


# --- the connect timeout --------------------------------------------------------------------------


async def test_a_client_that_never_connects_is_closed() -> None:
    conn = FakeEngineSocket(Server(connect_timeout=scaled(0.05)))
    assert await conn.wait_closed() is CloseReason.FORCED_CLOSE
    assert conn.take() == []


async def test_a_connected_client_outlives_the_connect_timeout() -> None:
    io = Server(connect_timeout=scaled(0.05))
    connected, _ = await connect(io)
    # one that leaves every namespace after connecting stays too, as in the reference
    left, _ = await connect(io)
    left.receive("1")
    clock = FakeEngineSocket(io)  # its timer fires after the others' would have
    await clock.wait_closed()
    assert not connected.closed and not left.closed


async def test_the_connect_timeout_counts_no_connect_still_in_the_middlewares() -> None:
    io = Server(connect_timeout=scaled(0.05))
    gate, passed = asyncio.Event(), asyncio.Event()
    connected: list[Socket] = []

    async def slow(socket: Socket) -> None:
        await gate.wait()
        passed.set()  # the connect goes on in this task, before the test resumes

    io.use(slow)
    io.on("connection", connected.append)
    conn = FakeEngineSocket(io)
    conn.receive("0")
    await conn.wait_closed()
    gate.set()
    await passed.wait()
    assert connected == [] and io.sockets.sockets == {}  # the closed client is not admitted
    assert conn.take() == []


# --- the handshake --------------------------------------------------------------------------------


async def test_the_handshake_is_what_the_first_request_carried() -> None:
    request = Request(
        method="GET", path="/socket.io/",
        query={"EIO": "4", "transport": "polling", "room": "a"},
        headers={"origin": "http://example.com", "user-agent": "test"},
        client=("10.1.2.3", 5555), raw_url=b"/socket.io/?EIO=4&transport=polling&room=a")
    io = app()
    conn = FakeEngineSocket(io, request=request)
    _, main = await connect(io, auth='{"token":"t"}', conn=conn)
    _, admin = await connect(io, "/admin", conn=conn)
    hs = main.handshake
    assert hs.headers == request.headers and hs.query == request.query
    assert hs.auth == {"token": "t"}
    assert hs.address == "10.1.2.3"
    assert hs.url == "/socket.io/?EIO=4&transport=polling&room=a"
    assert hs.xdomain is True and hs.secure is False
    assert re.fullmatch(r"\w{3} \w{3} \d\d \d{4} \d\d:\d\d:\d\d GMT\+0000", hs.time)
    assert abs(hs.issued / 1000 - time.time()) < 60  # ms since the epoch
    # the connection's sockets share the request's headers, as in the reference
    assert admin.handshake.headers is hs.headers and admin.handshake.auth == {}


async def test_a_handshake_without_request_details() -> None:
    _, socket = await connect(Server())
    hs = socket.handshake
    assert (hs.headers, hs.query, hs.address, hs.url, hs.xdomain) == ({}, {}, None, "", False)


# --- output ---------------------------------------------------------------------------------------


async def test_nothing_is_sent_on_a_closing_session() -> None:
    io = Server()
    conn, socket = await connect(io, conn=FakeEngineSocket(io, deferred_close=True))
    reasons: list[str] = []
    socket.on("disconnect", reasons.append)
    socket.conn.close()
    assert socket.connected  # until the engine is done with the session
    socket.emit("x")
    io.emit("y")
    assert conn.take() == []
    conn.finish_close()
    assert reasons == ["forced close"]
