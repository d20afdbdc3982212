"""sio_core.socketio.class_namespace in-process (over the fake engine, in literal Socket.IO
packets): the helpers' other paths (send, callbacks, close_room, a client of another worker,
misuse), and the environ. Its interop with real clients is in test_socketio_hooks.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sio_core import AsyncNamespace, DisconnectedError, Server
from sio_core.socketio.class_namespace import environ_of
from tests.fake_engine import FakeEngineSocket, connect
from tests.support import scaled


class Room(AsyncNamespace):
    def on_connect(self, sid: str, environ: dict[str, Any]) -> None:  # no auth parameter
        self.environ = environ

    async def on_shout(self, sid: str, text: str) -> None:
        await self.send(text.upper(), skip_sid=sid)

    async def on_poll(self, sid: str) -> None:
        await self.emit("poll", "ok?", to=sid, callback=self.answered)

    def answered(self, *args: Any) -> None:
        self.answer = args

    async def on_close(self, sid: str, room: str) -> list[str]:
        await self.close_room(room)
        return self.rooms(sid)

    def on_disconnect(self, sid: str) -> None:  # no reason parameter
        self.gone = sid


async def test_helpers_over_the_fake_engine() -> None:
    io = Server()
    room = Room("/room")
    io.register_namespace(room)
    conn_a, a = await connect(io, "/room")
    conn_b, b = await connect(io, "/room")
    assert room.environ["REQUEST_METHOD"] == "GET"
    conn_a.receive('2/room,["shout","hi"]')
    assert await conn_b.take_when(1) == ['2/room,["message","HI"]']
    conn_a.receive('2/room,["poll"]')
    [asked] = await conn_a.take_when(1)
    assert asked.startswith('2/room,') and asked.endswith('["poll","ok?"]')
    ack_id = asked[len('2/room,'):asked.index("[")]
    conn_a.receive(f'3/room,{ack_id}["yes",1]')
    await asyncio.sleep(0)
    assert room.answer == ("yes", 1)
    await a.join("r1")
    conn_a.receive('2/room,5["close","r1"]')
    assert await conn_a.take_when(1) == [f'3/room,5[["{a.id}"]]']
    conn_b.receive("1/room,")
    await asyncio.sleep(0)
    assert room.gone == b.id
    with pytest.raises(KeyError):
        await room.get_session(b.id)
    assert room.rooms(b.id) == []


async def test_a_client_elsewhere_is_reached_through_the_operators() -> None:
    io = Server()
    room = Room("/room")
    io.register_namespace(room)
    # no such client here: an emit with a callback goes out as a broadcast to its room,
    # and a call() that nobody answers says so
    await room.emit("x", 1, to="elsewhere", callback=room.answered)
    with pytest.raises(DisconnectedError):
        await room.call("x", 1, to="elsewhere", timeout=scaled(1))
    with pytest.raises(ValueError, match="one client"):
        await room.emit("x", callback=room.answered)
    with pytest.raises(ValueError, match="needs a client"):
        await room.call("x")


def test_misuse() -> None:
    lone = Room("/lone")
    with pytest.raises(RuntimeError, match="not registered"):
        lone.rooms("sid")
    io = Server()
    io.register_namespace(lone)
    with pytest.raises(RuntimeError, match="already"):
        Server().register_namespace(lone)


def test_environ_of_a_handshake() -> None:
    from sio_core import Handshake

    handshake = Handshake(headers={"content-type": "text/plain", "x-a": "1"}, query={},
                          auth={}, address="10.0.0.1", time="", issued=0,
                          url="/socket.io/?EIO=4&transport=polling", secure=True)
    environ = environ_of(handshake)
    assert environ["CONTENT_TYPE"] == "text/plain" and environ["HTTP_X_A"] == "1"
    assert environ["wsgi.url_scheme"] == "https" and environ["REMOTE_ADDR"] == "10.0.0.1"
    assert environ["PATH_INFO"] == "/socket.io/"
    assert environ["sio_core.handshake"] is handshake


async def test_socket_middleware_edges(caplog: pytest.LogCaptureFixture) -> None:
    """(sio_core.socketio.socket) A refusal with no ``error`` listener is logged; a packet
    whose async middleware finishes after the disconnect is dropped; a socket that goes stops
    hearing of broadcasts (its outgoing listeners unregistered)."""
    io = Server()
    conn, socket = await connect(io)
    heard: list[Any] = []
    socket.on("x", lambda *args: heard.append(args))
    release = asyncio.Event()
    passed = asyncio.Event()

    @socket.use
    async def gate(packet: list[Any]) -> None:
        if packet[0] == "refuse":
            raise PermissionError("no")
        await release.wait()
        passed.set()  # the packet goes on from here, in this same step of the task

    socket.on_any_outgoing(lambda *args: None)
    assert io.sockets.outgoing_watchers == {socket}
    conn.receive('2["refuse"]')
    await asyncio.sleep(0)
    assert "has no 'error' listener" in caplog.text
    conn.receive('2["x",1]')
    await asyncio.sleep(0)
    conn.receive("1")  # the client leaves while the middleware waits
    await asyncio.sleep(0)
    release.set()
    await asyncio.wait_for(passed.wait(), scaled(5))
    assert heard == [] and not socket.connected
    assert io.sockets.outgoing_watchers == set()


class Lobby(AsyncNamespace):
    """on_connect with auth, which acts on the socket being admitted (deferred until it is)
    and may refuse; on_disconnect with a reason."""

    def __init__(self, namespace: str) -> None:
        super().__init__(namespace)
        self.gone: list[tuple[str, str]] = []

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any) -> bool | None:
        if auth == {"who": "mallory"}:
            return False
        if auth == {"who": "crash"}:
            raise ValueError("boom")
        await self.emit("welcome", ("a", 1), to=sid)
        await self.enter_room(sid, "early")
        await self.enter_room(sid, "brief")
        await self.leave_room(sid, "brief")
        return None

    async def on_ask(self, sid: str) -> Any:
        return await self.call("q", to=sid, timeout=scaled(5))

    def on_disconnect(self, sid: str, reason: str) -> None:
        self.gone.append((sid, reason))


async def test_on_connect_with_auth_defers_its_actions_until_the_socket_is_admitted() -> None:
    io = Server()
    lobby = Lobby("/lobby")
    io.register_namespace(lobby)
    conn, socket = await connect(io, "/lobby", '{"who":"ann"}')
    assert conn.take() == ['2/lobby,["welcome","a",1]']
    assert lobby.rooms(socket.id) == sorted({socket.id, "early"})
    refused = FakeEngineSocket(io)
    refused.receive('0/lobby,{"who":"mallory"}')
    [reply] = await refused.take_when(1)
    assert str(reply).startswith("4/lobby,") and "rejected" in str(reply).lower()
    crashed = FakeEngineSocket(io)
    crashed.receive('0/lobby,{"who":"crash"}')
    [reply] = await crashed.take_when(1)
    assert str(reply).startswith("4/lobby,")
    assert lobby._deferred == {} and lobby._connecting == {}
    # call() to a local client: its ack is the answer
    conn.receive('2/lobby,7["ask"]')
    [asked] = await conn.take_when(1)
    ack_id = str(asked)[len("2/lobby,"):str(asked).index("[")]
    conn.receive(f'3/lobby,{ack_id}["yes"]')
    assert await conn.take_when(1) == ['3/lobby,7["yes"]']
    # sessions of a local client
    async with lobby.session(socket.id) as session:
        session["user"] = "ann"
    assert await lobby.get_session(socket.id) == {"user": "ann"} == socket.data
    await lobby.save_session(socket.id, {"user": "bob"})
    assert socket.data == {"user": "bob"}
    await lobby.disconnect(socket.id)
    await asyncio.sleep(0)
    assert not socket.connected
    assert lobby.gone == [(socket.id, "server namespace disconnect")]
    assert lobby.rooms(socket.id) == []


class Plain(AsyncNamespace):
    """No on_connect, no on_disconnect; sync handlers."""

    def on_add(self, sid: str, a: int, b: int) -> int:
        return a + b

    def on_note(self, sid: str) -> None:
        self.noted = sid


async def test_a_namespace_without_connect_or_disconnect_handlers_and_sync_ones() -> None:
    io = Server()
    plain = Plain("/plain")
    io.register_namespace(plain)
    conn_a, a = await connect(io, "/plain")
    conn_b, b = await connect(io, "/plain")
    conn_a.receive('2/plain,1["add",2,3]')
    conn_a.receive('2/plain,2["note"]')
    assert await conn_a.take_when(2) == ["3/plain,1[5]", "3/plain,2[]"]
    assert plain.noted == a.id
    # rooms of connected clients, through the operators
    await plain.enter_room(a.id, "r")
    await plain.enter_room(b.id, "r")
    assert "r" in a.rooms and "r" in b.rooms
    await plain.emit("to-room", 1, room="r")
    assert conn_a.take() == ['2/plain,["to-room",1]'] == conn_b.take()
    await plain.leave_room(b.id, "r")
    await plain.emit("to-room", 2, to="r")
    assert conn_a.take() == ['2/plain,["to-room",2]'] and conn_b.take() == []
    conn_b.receive("1/plain,")
    await asyncio.sleep(0)
    assert not b.connected
