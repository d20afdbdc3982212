"""sio_core.socketio.namespace: namespaces, their middlewares and listeners, dynamic namespaces.

How a CONNECT goes through a namespace's middlewares (and how they refuse), the order of the
CONNECT reply and the ``connection`` listeners, and what a parent namespace shares with its
children and does to all of them. Over the fake engine (tests/fake_engine.py). The bounds on
dynamic namespaces are in tests/test_socketio_limits.py.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import Any

import pytest

from sio_core import ConnectionRefusedError, Namespace, Server, Socket
from tests.fake_engine import FakeEngineSocket, connect, masked

# --- middlewares ----------------------------------------------------------------------------------


def refuse(message: str = "", data: Any = None) -> Callable[[Socket], None]:
    def middleware(socket: Socket) -> None:
        raise ConnectionRefusedError(message, data) if message else ConnectionRefusedError()
    return middleware


def give(result: Any) -> Callable[[Socket], Any]:
    async def middleware(socket: Socket) -> Any:
        return result
    return middleware


# (a middleware, the CONNECT_ERROR it makes the client get)
REFUSALS: list[tuple[Callable[[Socket], Any], str]] = [
    (refuse(), '4/m,{"message":"Connection refused"}'),
    (refuse("no"), '4/m,{"message":"no"}'),
    (refuse("no", {"retry": 5}), '4/m,{"message":"no","data":{"retry":5}}'),
    (refuse("no", [1, "two"]), '4/m,{"message":"no","data":[1,"two"]}'),
    # an error returned rather than raised refuses too
    (give(ConnectionRefusedError("returned", "d")), '4/m,{"message":"returned","data":"d"}'),
    (give(ValueError("plain")), '4/m,{"message":"plain"}'),
    (give(ValueError()), '4/m,{"message":"Not authorized"}'),
]


@pytest.mark.parametrize(("middleware", "answer"), REFUSALS)
async def test_a_middleware_refuses(middleware: Callable[[Socket], Any], answer: str) -> None:
    io = Server()
    nsp = io.of("/m")
    later: list[Socket] = []
    nsp.use(middleware)
    nsp.use(later.append)
    nsp.on("connection", later.append)
    conn = FakeEngineSocket(io)
    conn.receive("0/m,")
    assert await conn.take_when(1) == [answer]
    assert later == [] and nsp.sockets == {} and not conn.closed


async def test_a_failing_middleware_refuses_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    io = Server()

    def bug(socket: Socket) -> None:
        raise KeyError("bug")

    io.use(bug)
    conn = FakeEngineSocket(io)
    with caplog.at_level(logging.ERROR, "sio_core.socketio"):
        conn.receive("0")
        assert await conn.take_when(1) == ['4{"message":"Internal server error"}']
    assert "error in middleware of <Namespace />" in caplog.text


async def test_middlewares_run_in_order_and_prepare_the_socket() -> None:
    io = Server()
    steps: list[str] = []

    @io.use
    def first(socket: Socket) -> None:
        steps.append("first")
        socket.data["user"] = socket.handshake.auth["token"]
        socket.join("users")
        socket.emit("too early")  # not connected yet: not sent

    async def second(socket: Socket) -> None:
        await asyncio.sleep(0)
        steps.append("second")

    assert io.sockets.use(second) is second

    @io.on("connection")
    def connection(socket: Socket) -> None:
        steps.append(f"connection {socket.data['user']} {sorted(socket.rooms - {socket.id})}")

    conn, _ = await connect(io, auth='{"token":"ann"}')
    assert steps == ["first", "second", "connection ann ['users']"]
    assert conn.take() == []


# --- connection listeners -------------------------------------------------------------------------


async def test_the_connect_reply_comes_before_what_the_listeners_send() -> None:
    io = Server()
    io.on("connection", lambda socket: socket.emit("welcome"))
    io.on("connect", lambda socket: socket.emit("also"))  # the other name of the event
    io.once("connection", lambda socket: socket.emit("first one only"))
    for expected in (['0{"sid":"*"}', '2["welcome"]', '2["first one only"]', '2["also"]'],
                     ['0{"sid":"*"}', '2["welcome"]', '2["also"]']):
        conn = FakeEngineSocket(io)
        conn.receive("0")
        assert masked(await conn.take_when(len(expected))) == expected


async def test_connection_listeners_can_be_removed() -> None:
    io = Server()
    seen: list[Socket] = []
    io.on("connection", seen.append)
    io.off("connection", seen.append)
    await connect(io)
    io.on("connection", seen.append)
    io.off("connection")
    await connect(io)
    io.on("connection", seen.append)
    io.off()
    await connect(io)
    assert seen == []


async def test_a_failing_connection_listener_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    io = Server()

    def bug(socket: Socket) -> None:
        raise RuntimeError("bug")

    io.on("connection", bug)
    with caplog.at_level(logging.ERROR, "sio_core.socketio"):
        conn, socket = await connect(io)
    assert "error in handler for connection on <Namespace />" in caplog.text
    assert socket.connected and not conn.closed


async def test_namespaces_are_separate() -> None:
    io = Server()
    admin = io.of("admin")  # the leading slash may be left out
    assert io.of("/admin") is admin and repr(admin) == "<Namespace /admin>"
    c1, _ = await connect(io)
    c2, _ = await connect(io, "/admin")
    await admin.emit("to admin")
    await io.emit("to main")
    assert c1.take() == ['2["to main"]'] and c2.take() == ['2/admin,["to admin"]']


# --- dynamic namespaces ---------------------------------------------------------------------------


async def test_children_share_the_parents_listeners_and_middlewares() -> None:
    io = Server()
    parent = io.of(re.compile(r"^/team-\w+$"))
    log: list[str] = []

    @parent.use
    def middleware(socket: Socket) -> None:
        log.append(f"middleware {socket.namespace.name}")

    parent.on("connection", lambda socket: log.append(f"connection {socket.namespace.name}"))
    parent.once("connection", lambda socket: log.append("once"))
    await connect(io, "/team-a")
    # what is added later applies to the existing children too
    parent.on("connection", lambda socket: socket.emit("late"))
    conn = FakeEngineSocket(io)
    await connect(io, "/team-a", conn=conn)
    assert conn.take() == ['2/team-a,["late"]']
    await connect(io, "/team-b")
    assert log == ["middleware /team-a", "connection /team-a", "once",
                   "middleware /team-a", "connection /team-a",
                   "middleware /team-b", "connection /team-b"]
    child = io.namespaces["/team-a"]
    assert child.parent is parent and parent.children == {child, io.namespaces["/team-b"]}
    parent.off("connection")
    log.clear()
    await connect(io, "/team-c")
    assert log == ["middleware /team-c"]
    parent.on("connection", log.append)
    parent.off("connection", log.append)
    parent.off()
    await connect(io, "/team-c")
    assert log == ["middleware /team-c", "middleware /team-c"]


@pytest.mark.parametrize("matcher_is_async", [False, True])
async def test_a_matcher_sees_the_name_and_the_auth(matcher_is_async: bool) -> None:
    io = Server()
    seen: list[tuple[str, dict[str, Any]]] = []

    def check(name: str, auth: dict[str, Any]) -> bool:
        seen.append((name, auth))
        return auth.get("key") == "k"

    async def async_check(name: str, auth: dict[str, Any]) -> bool:
        return check(name, auth)

    io.of(async_check if matcher_is_async else check)
    conn = FakeEngineSocket(io)
    conn.receive('0/x,{"key":"k"}', '0/y,{"key":"no"}', "0/z,")
    answers = masked(await conn.take_when(3))
    assert answers == ['0/x,{"sid":"*"}', '4/y,{"message":"Invalid namespace"}',
                       '4/z,{"message":"Invalid namespace"}']
    assert seen == [("/x", {"key": "k"}), ("/y", {"key": "no"}), ("/z", {})]


async def test_the_first_matching_parent_makes_the_child() -> None:
    io = Server()
    first = io.of(re.compile(r"^/a\d$"))
    second = io.of(lambda name, auth: True)
    first.on("connection", lambda s: s.emit("first"))
    second.on("connection", lambda s: s.emit("second"))
    for name, expected in [("/a1", "first"), ("/b1", "second")]:
        conn, _ = await connect(io, name)
        assert conn.take() == [f'2{name},["{expected}"]']
    # a name a parent made is found by name from then on
    conn = FakeEngineSocket(io)
    conn.receive("0/a1,")
    assert masked(conn.take()) == ['0/a1,{"sid":"*"}', '2/a1,["first"]']


async def test_a_parent_broadcasts_to_all_its_children() -> None:
    io = Server()
    parent = io.of(re.compile(r"^/p\d$"))
    (c1, s1), (c2, s2) = await connect(io, "/p1"), await connect(io, "/p2")
    c3, _ = await connect(io)  # not a child
    s2.join("r")
    steps: list[tuple[Callable[[], Any], list[list[str]]]] = [
        (lambda: parent.emit("all"), [['2/p1,["all"]'], ['2/p2,["all"]']]),
        (lambda: parent.send("m"), [['2/p1,["message","m"]'], ['2/p2,["message","m"]']]),
        (lambda: parent.to("r").emit("r"), [[], ['2/p2,["r"]']]),
        (lambda: parent.in_("r").emit("in"), [[], ['2/p2,["in"]']]),
        (lambda: parent.except_("r").emit("x"), [['2/p1,["x"]'], []]),
        (lambda: parent.volatile.local.timeout(1).emit("v"), [['2/p1,["v"]'], ['2/p2,["v"]']]),
    ]
    for step, expected in steps:
        await step()
        assert [c1.take(), c2.take()] == expected
    assert c3.take() == []
    assert {s.id for s in await parent.fetch_sockets()} == {s1.id, s2.id}
    assert [s.id for s in await parent.to("r").fetch_sockets()] == [s2.id]
    await parent.except_("r").sockets_join("j")
    assert "j" in s1.rooms and "j" not in s2.rooms
    await parent.sockets_leave("j")
    assert "j" not in s1.rooms
    await parent.to("r").disconnect_sockets()
    assert (s1.connected, s2.connected) == (True, False) and c2.take() == ["1/p2,"]
    await parent.disconnect_sockets(close=True)
    assert c1.take() == ["1/p1,"] and c1.closed and not c3.closed


async def test_a_parent_gathers_no_acks() -> None:
    """As the reference's parent namespace, which answers a broadcast with acks with no
    responses: here the callback is refused rather than called with nothing."""
    io = Server()
    parent = io.of(re.compile(r"^/p\d$"))
    conn, _ = await connect(io, "/p1")
    for emit in (parent.emit, parent.send, parent.timeout(1).emit):
        with pytest.raises(ValueError, match="no callback"):
            emit("x", callback=print)
    assert conn.take() == []


async def test_a_parent_without_children_does_nothing() -> None:
    io = Server()
    parent = io.of(re.compile(r"^/p\d$"))
    await parent.emit("x")
    await parent.sockets_join("r")
    assert await parent.fetch_sockets() == []


# --- server-side emits without a cluster ----------------------------------------------------------


async def test_server_side_emits_without_a_cluster_reach_nobody() -> None:
    io = Server()
    heard: list[Any] = []
    io.on("ping", heard.append)
    await io.server_side_emit("ping", 1)
    assert await io.server_side_emit_with_ack("ping", 1) == []
    assert await io.of("/admin").server_side_emit_with_ack("ping", timeout=1) == []
    assert heard == []  # not this server's own listeners


async def test_a_namespace_is_the_servers() -> None:
    io = Server()
    nsp = io.of("/n")
    assert isinstance(nsp, Namespace) and nsp.server is io and nsp.name == "/n"
    assert io.namespaces == {"/": io.sockets, "/n": nsp}
