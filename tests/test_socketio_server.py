"""sio_core.socketio.server: the Server object applications build on.

Its configuration, its namespaces, the main namespace's API on the server itself (listeners,
middlewares, broadcast operators), and its part as the Engine.IO handler. Over the fake engine
(tests/fake_engine.py), in literal Socket.IO packets.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from sio_core import AckTimeoutError, Config, ConnectionRefusedError, Server, Socket
from sio_core.protocol.session import CloseReason
from tests.fake_engine import FakeEngineSocket, Watcher, connect, masked
from tests.support import scaled

# --- configuration --------------------------------------------------------------------------------


def test_options_override_the_config() -> None:
    base = Config(ping_interval=5, connect_timeout=7)
    io = Server(base, ping_interval=9)
    assert (io.config.ping_interval, io.config.connect_timeout) == (9, 7)
    assert Server(base).config is base
    assert Server(max_pending_acks=None).config.max_pending_acks is None
    with pytest.raises(ValueError, match="connect_timeout"):
        Server(connect_timeout=0)
    with pytest.raises(TypeError):
        Server(no_such_option=1)


def test_configure_merges_into_the_applications_config() -> None:
    io = Server(ping_interval=9, max_payload=1234)
    io.configure(ping_interval=3)
    assert io.config.ping_interval == 3 and io.config.max_payload == 1234
    with pytest.raises(ValueError, match="ping_interval"):
        io.configure(ping_interval=-1)


# --- namespaces -----------------------------------------------------------------------------------


def test_namespaces_by_name() -> None:
    io = Server()
    assert io.of("/") is io.sockets and io.of("") is io.sockets
    chat = io.of("chat")
    assert io.of("/chat") is chat and chat.name == "/chat"
    assert io.namespace_now("/chat") is chat and io.namespace_now("/other") is None
    names = io.namespaces
    names.clear()  # a copy
    assert set(io.namespaces) == {"/", "/chat"}
    assert io.stats() == {"namespaces": 2, "dynamic_namespaces": 0}


def test_each_dynamic_namespace_is_its_own() -> None:
    io = Server()
    pattern = re.compile(r"^/d$")
    assert io.of(pattern) is not io.of(pattern)
    assert io.stats() == {"namespaces": 1, "dynamic_namespaces": 0}


async def test_listeners_and_middlewares_on_the_server_are_the_main_namespaces() -> None:
    io = Server()
    log: list[str] = []

    def checked(socket: Socket) -> None:
        if socket.handshake.auth.get("deny"):
            raise ConnectionRefusedError("denied")

    assert io.use(checked) is checked
    assert io.sockets.middlewares == [checked]

    @io.on("connection")
    def connection(socket: Socket) -> None:
        log.append("on")

    io.once("connection", lambda socket: log.append("once"))
    await connect(io)
    await connect(io)
    io.off("connection", connection)
    await connect(io)
    conn = FakeEngineSocket(io)
    conn.receive('0{"deny":true}')
    assert await conn.take_when(1) == ['4{"message":"denied"}']
    assert log == ["on", "once", "on"]
    io.off()
    assert io.sockets.listeners("connection") == []


# --- broadcasts on the server: the main namespace's -----------------------------------------------


async def test_broadcast_operators_on_the_server() -> None:
    io = Server()
    io.of("/other")
    clients = [await connect(io) for _ in range(3)]
    (_, s1), (c2, s2), (_, s3) = clients
    other, _ = await connect(io, "/other")
    s1.join("a")
    s2.join(["a", "b"])
    steps: list[tuple[Callable[[], Any], list[list[str | bytes]]]] = [
        (lambda: io.emit("all", 1), [['2["all",1]']] * 3),
        (lambda: io.send("m"), [['2["message","m"]']] * 3),
        (lambda: io.emit("bin", b"\x01"),
         [['51-["bin",{"_placeholder":true,"num":0}]', b"\x01"]] * 3),
        (lambda: io.to("a").emit("a"), [['2["a"]'], ['2["a"]'], []]),
        (lambda: io.in_("a").to("b").emit("ab"), [['2["ab"]'], ['2["ab"]'], []]),  # once each
        (lambda: io.to(["a", "b"]).emit("list"), [['2["list"]'], ['2["list"]'], []]),
        (lambda: io.except_("b").emit("-b"), [['2["-b"]'], [], ['2["-b"]']]),
        (lambda: io.to("a").except_(s1.id).emit("a-1"), [[], ['2["a-1"]'], []]),
        (lambda: io.to("nobody").emit("x"), [[], [], []]),
        (lambda: io.local.emit("local"), [['2["local"]']] * 3),
        (lambda: io.volatile.emit("v"), [['2["v"]']] * 3),
        (lambda: io.to(s3.id).compress(True).emit("direct"), [[], [], ['2["direct"]']]),
    ]
    for step, expected in steps:
        await step()
        assert [c.take() for c, _ in clients] == expected
    assert other.take() == []
    c2.writable = False
    await io.volatile.emit("v")
    await io.volatile.to("a").emit("va")
    assert [c.take() for c, _ in clients] == [['2["v"]', '2["va"]'], [], ['2["v"]']]


async def test_a_broadcast_with_acks_from_the_server() -> None:
    io = Server()
    (c1, _), (c2, _) = [await connect(io) for _ in range(2)]
    result: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    io.timeout(scaled(5)).emit("q", callback=lambda *args: result.set_result(args))
    assert c1.take() == c2.take() == ['21["q"]']
    c1.receive('31["one"]')
    c2.receive('31["two",2]')
    assert await result == (None, ["one", ("two", 2)])


async def test_a_broadcast_with_acks_times_out_with_what_came() -> None:
    io = Server()
    (c1, _), (c2, _) = [await connect(io) for _ in range(2)]
    result: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    io.timeout(0.01).emit("q", callback=lambda *args: result.set_result(args))
    c1.receive("31[]")  # no arguments: None
    err, responses = await result
    assert isinstance(err, AckTimeoutError) and err.responses == responses == [None]
    assert c2.take() == ['21["q"]']


async def test_emit_with_ack_on_the_server() -> None:
    io = Server(ack_timeout=scaled(5))
    (c1, _), (c2, _) = [await connect(io) for _ in range(2)]
    emitting = asyncio.ensure_future(io.emit_with_ack("q", 1))
    for conn, answer in ((c1, '31["a"]'), (c2, "31[]")):
        assert await conn.take_when(1) == ['21["q",1]']
        conn.receive(answer)
    assert await emitting == ["a", None]


async def test_socket_queries_on_the_server() -> None:
    io = Server()
    (c1, s1), (c2, s2) = [await connect(io) for _ in range(2)]
    assert {s.id for s in await io.fetch_sockets()} == {s1.id, s2.id}
    await io.to(s1.id).sockets_join("r")
    assert [s.id for s in await io.in_("r").fetch_sockets()] == [s1.id]
    await io.sockets_leave("r")
    assert await io.in_("r").fetch_sockets() == []
    await io.to(s2.id).disconnect_sockets()
    assert c2.take() == ["1"] and not c2.closed
    await io.disconnect_sockets(close=True)
    assert c1.take() == ["1"] and c1.closed


# --- the Engine.IO handler ------------------------------------------------------------------------


async def test_each_session_gets_a_client() -> None:
    io = Server()
    first, second = FakeEngineSocket(io), FakeEngineSocket(io)
    assert first.context is not second.context
    assert first.context.conn is first and first.context.server is io
    first.receive("0")
    assert masked(first.take()) == ['0{"sid":"*"}'] and second.take() == []


def test_a_session_the_server_never_opened_closes_quietly() -> None:
    Server().on_close(SimpleNamespace(context=None), CloseReason.TRANSPORT_CLOSE)  # type: ignore[arg-type]


async def test_started_without_listening_it_serves_once_and_tells_its_observer() -> None:
    io = Server()
    watcher = Watcher()
    io.observer = watcher  # type: ignore[assignment]
    with pytest.raises(RuntimeError, match="not serving"):
        io.retire()
    with pytest.raises(RuntimeError, match="not serving"):
        await io.close()
    engine = await io.start()
    assert io.engine is engine and watcher.seen == [("serving",)]
    with pytest.raises(RuntimeError, match="called already"):
        await io.start()
    with pytest.raises(RuntimeError, match="before serve"):
        io.configure(max_dynamic_namespaces=1)
    conn = FakeEngineSocket(io)
    conn.receive("0")
    conn.end(CloseReason.TRANSPORT_CLOSE)
    names = [seen[0] for seen in watcher.seen]
    assert names[:3] == ["serving", "client_opened", "message_received"]
    assert names[-1] == "client_closed" and watcher.seen[-1][-1] is CloseReason.TRANSPORT_CLOSE
    assert watcher.seen[2][1] == "0"
    await io.close(scaled(1))


async def test_the_metric_families_count_each_namespace() -> None:
    io = Server()
    io.of(re.compile(r"^/dyn-\d+$"))
    conn, _ = await connect(io)
    await connect(io, "/dyn-1")
    conn.receive('2["e"]')
    families = {f.name: f for f in io.metric_families()}
    assert {"sio_core_messages_received", "sio_core_sockets", "sio_core_events_received",
            "sio_core_handler_duration_seconds"} <= set(families)
    assert families["sio_core_sockets"].values == {("/",): 1, ("^/dyn-\\d+$",): 1}
    assert families["sio_core_events_received"].values[("/",)] == 1
    assert families["sio_core_messages_received"].values[()] == 3


async def test_new_namespace_listeners_once_and_off() -> None:
    io = Server()
    made: list[str] = []
    once: list[str] = []

    @io.on("new_namespace")
    def listener(namespace: Any) -> None:
        made.append(namespace.name)

    io.once("new_namespace", lambda namespace: once.append(namespace.name))
    io.of("/a")
    io.of("/b")
    io.off("new_namespace", listener)
    io.of("/c")
    assert made == ["/a", "/b"] and once == ["/a"]
    heard: list[Any] = []
    io.once("connection", heard.append)
    await connect(io)
    await connect(io)
    assert len(heard) == 1
