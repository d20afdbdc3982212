"""sio_core.socketio.socket: one client connected to one namespace.

Events and acks both ways (text and binary), acks with timeouts, volatile emits, rooms,
broadcasts from a socket, listeners (on, once, off, on_any), reserved names, handler exceptions,
and how a socket ends. Over the fake engine (tests/fake_engine.py), in literal Socket.IO packets.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

from sio_core import DisconnectedError, Server, Socket
from sio_core.exceptions import ReservedEventError
from sio_core.protocol import socketio as sio
from sio_core.protocol.session import CloseReason
from tests.fake_engine import FakeEngineSocket, Watcher, connect
from tests.support import scaled

Handler = Callable[..., Any]


async def one_client(namespace: str = "/", **options: Any) -> tuple[Server, FakeEngineSocket,
                                                                      Socket]:
    io = Server(**options)
    io.of(namespace)
    conn, socket = await connect(io, namespace)
    return io, conn, socket


async def main_and_admin() -> tuple[Server, FakeEngineSocket, Socket, Socket]:
    """One client connected to "/" and "/admin"."""
    io = Server()
    io.of("/admin")
    conn, main = await connect(io)
    _, admin = await connect(io, "/admin", conn=conn)
    return io, conn, main, admin


# --- events from the client, and the acks they get ------------------------------------------------


def returns(value: Any) -> Handler:
    def handler(*args: Any) -> Any:
        return value
    return handler


def acks_by_keyword(*args: Any, ack: Handler) -> None:
    ack(*args)
    ack("twice")  # an ack answers once


def acks_js_style(data: Any, cb: Handler) -> None:
    cb(data, "js")


async def answers_later(data: Any) -> Any:
    await asyncio.sleep(0)
    return ("later", data)


# (the handler of "x", what the client sends, what it gets back)
EVENTS: list[tuple[Handler, list[str | bytes], list[str | bytes]]] = [
    (returns("v"), ['21["x"]'], ['31["v"]']),
    (returns("v"), ['2["x"]'], []),                               # no ack asked for
    (returns(None), ['21["x"]'], []),                             # nothing returned: no ack
    (returns((1, "a")), ['27["x"]'], ['37[1,"a"]']),              # a tuple: several arguments
    (returns([1, 2]), ['21["x"]'], ['31[[1,2]]']),                # a list: one argument
    (returns(b"\x00\xff"), ['21["x"]'], ['61-1[{"_placeholder":true,"num":0}]', b"\x00\xff"]),
    (returns({"ok": True}), ['29007199254740991["x"]'], ['39007199254740991[{"ok":true}]']),
    (acks_by_keyword, ['25["x",1,2]'], ['35[1,2]']),
    (acks_by_keyword, ['2["x",1]'], []),                          # ack is None: not called
    (acks_js_style, ['22["x",7]'], ['32[7,"js"]']),
    (answers_later, ['23["x",4]'], ['33["later",4]']),
    # a binary event: its attachments take the placeholders' places
    (returns("got"), ['51-3["x",{"_placeholder":true,"num":0}]', b"\x01"], ['33["got"]']),
]


@pytest.mark.parametrize(("handler", "sent", "answered"), EVENTS)
async def test_events_and_their_acks(handler: Handler, sent: list[str | bytes],
                                     answered: list[str | bytes]) -> None:
    _, conn, socket = await one_client()
    socket.on("x", handler)
    conn.receive(*sent)
    assert await conn.take_when(len(answered)) == answered
    assert conn.take() == []


@pytest.mark.parametrize("namespace", ["/", "/admin"])
async def test_an_event_gets_its_arguments(namespace: str) -> None:
    io = Server()
    io.of("/admin")
    conn, socket = await connect(io, namespace)
    got: list[tuple[Any, ...]] = []
    socket.on("x", lambda *args: got.append(args))
    prefix = "" if namespace == "/" else namespace + ","
    conn.receive(f'2{prefix}["x",1,"a",null,{{"k":[true]}}]',
                 f'52-{prefix}["x",{{"_placeholder":true,"num":1}},{{"_placeholder":true,"num":0}}]',
                 b"zero", b"one")
    assert got == [(1, "a", None, {"k": [True]}), (b"one", b"zero")]
    assert conn.take() == []


async def test_an_ack_in_another_namespace() -> None:
    io = Server()
    io.of("/admin").on("connection", lambda s: s.on("x", returns("v")))
    conn, _ = await connect(io, "/admin")
    conn.receive('2/admin,12["x"]')
    assert conn.take() == ['3/admin,12["v"]']


async def test_an_ack_called_after_the_socket_left_sends_nothing() -> None:
    _, conn, socket = await one_client()
    kept: list[Handler] = []
    socket.on("x", lambda ack: kept.append(ack))
    conn.receive('21["x"]', "1")
    kept[0]("late")
    assert conn.take() == []


async def test_only_the_first_listener_answers_the_ack() -> None:
    _, conn, socket = await one_client()
    calls: list[str] = []
    socket.on("x", lambda: calls.append("first") or "one")
    socket.on("x", lambda ack=None: calls.append(f"second {ack}") or "two")
    conn.receive('21["x"]')
    assert calls == ["first", "second None"]
    assert conn.take() == ['31["one"]']


# --- events to the client, and their acks ---------------------------------------------------------

# (what the server emits, what the client gets)
EMITS: list[tuple[Callable[[Socket], Any], list[str | bytes]]] = [
    (lambda s: s.emit("x"), ['2["x"]']),
    (lambda s: s.emit("x", 1, "a", None, {"k": [True]}), ['2["x",1,"a",null,{"k":[true]}]']),
    (lambda s: s.emit("x", "é\u2028"), ['2["x","é\u2028"]']),
    (lambda s: s.emit("x", b"\x00", [b"\x01"]),
     ['52-["x",{"_placeholder":true,"num":0},[{"_placeholder":true,"num":1}]]', b"\x00", b"\x01"]),
    (lambda s: s.send("hi"), ['2["message","hi"]']),
    (lambda s: s.emit("x", callback=print), ['21["x"]']),
    (lambda s: s.timeout(60).emit("x", callback=print), ['21["x"]']),
    (lambda s: s.volatile.emit("x"), ['2["x"]']),
    (lambda s: s.volatile.send("v"), ['2["message","v"]']),
    (lambda s: s.volatile.timeout(60).send(callback=print), ['21["message"]']),
    (lambda s: s.timeout(60).volatile.emit("x", callback=print), ['21["x"]']),
    (lambda s: s.timeout(60).send("t"), ['2["message","t"]']),     # no callback: no ack id
]


@pytest.mark.parametrize(("emit", "expected"), EMITS)
async def test_emits(emit: Callable[[Socket], Any], expected: list[str | bytes]) -> None:
    _, conn, socket = await one_client()
    await emit(socket)
    assert conn.take() == expected


async def test_emits_in_a_namespace() -> None:
    _, conn, socket = await one_client("/admin")
    socket.emit("x", b"\x01", callback=print)
    assert conn.take() == ['51-/admin,1["x",{"_placeholder":true,"num":0}]', b"\x01"]


@pytest.mark.parametrize(
    ("answer", "args"),
    [
        (['31["r"]'], ("r",)),
        (["31[]"], ()),
        (['31[1,{"a":2}]'], (1, {"a": 2})),
        (['61-1[{"_placeholder":true,"num":0}]', b"\x07"], (b"\x07",)),  # BINARY_ACK
    ],
)
async def test_the_clients_ack_calls_the_callback(answer: list[str | bytes],
                                                  args: tuple[Any, ...]) -> None:
    _, conn, socket = await one_client()
    got: list[tuple[Any, ...]] = []
    socket.emit("x", callback=lambda *a: got.append(a))
    assert conn.take() == ['21["x"]']
    conn.receive(*answer)
    conn.receive(*answer)  # a second answer to the same id is ignored
    assert got == [args]
    conn.receive('39["unknown"]')  # so is an answer nobody waits for
    assert got == [args] and not conn.closed


async def test_emit_with_ack_returns_the_answer() -> None:
    _, conn, socket = await one_client()
    for answer, expected in [("31[]", None), ('32["a"]', "a"), ('33["a",2]', ("a", 2))]:
        waiting = asyncio.ensure_future(socket.emit_with_ack("x", timeout=scaled(5)))
        await conn.take_when(1)
        conn.receive(answer)
        assert await waiting == expected


async def test_emit_with_ack_times_out_and_forgets_the_ack() -> None:
    _, conn, socket = await one_client()
    with pytest.raises(TimeoutError):
        await socket.emit_with_ack("x", timeout=0.001)
    assert conn.take() == ['21["x"]']
    conn.receive('31["late"]')  # ignored
    assert not conn.closed


async def test_emit_with_ack_fails_when_the_socket_goes() -> None:
    _, conn, socket = await one_client()
    waiting = asyncio.ensure_future(socket.timeout(scaled(5)).emit_with_ack("x"))
    await conn.take_when(1)
    conn.end(CloseReason.PING_TIMEOUT)
    with pytest.raises(DisconnectedError, match="ping timeout"):
        await waiting
    with pytest.raises(DisconnectedError):
        await socket.emit_with_ack("x")  # no longer connected


async def test_emit_with_ack_on_a_closing_session_does_not_hang() -> None:
    """A session closing over polling takes no more output, while its sockets are still
    connected until the client has read the close: an emit_with_ack then must fail, not wait
    for an ack that was never asked for."""
    io = Server()
    conn, socket = await connect(io, conn=FakeEngineSocket(io, deferred_close=True))
    socket.conn.close()
    async with asyncio.timeout(scaled(5)):
        with pytest.raises(DisconnectedError):
            await socket.emit_with_ack("x")
    conn.finish_close()
    assert conn.take() == []


async def test_a_timed_emit_gets_the_ack_or_the_timeout() -> None:
    _, conn, socket = await one_client()
    answered: list[tuple[Any, ...]] = []
    timed_out = asyncio.Event()

    def on_late(*args: Any) -> None:
        answered.append(args)
        timed_out.set()

    socket.timeout(scaled(5)).emit("x", callback=lambda *args: answered.append(args))
    socket.timeout(0.001).emit("y", callback=on_late)
    assert conn.take() == ['21["x"]', '22["y"]']
    conn.receive('31["a","b"]')
    await timed_out.wait()
    conn.receive('32["too late"]')
    assert answered[0] == (None, "a", "b")
    assert len(answered) == 2 and isinstance(answered[1][0], TimeoutError)


async def test_a_timed_emit_to_a_socket_that_left_times_out() -> None:
    _, conn, socket = await one_client()
    conn.receive("1")
    result: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    socket.timeout(0.001).emit("x", callback=result.set_result)
    assert isinstance(await result, TimeoutError)
    assert conn.take() == []


async def test_a_callback_that_fails_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    _, conn, socket = await one_client()

    def fails(*args: Any) -> None:
        raise RuntimeError("callback bug")

    socket.emit("x", callback=fails)
    with caplog.at_level(logging.ERROR, "sio_core.socketio"):
        conn.receive("31[]")
    assert f"error in handler for ack 1 of {socket!r}" in caplog.text
    assert not conn.closed


async def test_ack_ids_wrap_past_the_largest() -> None:
    _, conn, socket = await one_client()
    socket.namespace._ack_ids = sio.MAX_ACK_ID - 1
    for _ in range(2):
        socket.emit("x", callback=print)
    assert conn.take() == [f'2{sio.MAX_ACK_ID}["x"]', '21["x"]']


# --- volatile: dropped when the transport cannot take it now --------------------------------------


async def test_volatile_emits_are_dropped_when_not_writable() -> None:
    _, conn, socket = await one_client()
    conn.writable = False  # polling, no GET pending
    socket.volatile.emit("dropped")
    socket.volatile.timeout(60).emit("dropped too", callback=print)
    socket.emit("kept")
    assert conn.take() == ['2["kept"]']
    conn.writable = True
    socket.volatile.emit("sent")
    assert conn.take() == ['2["sent"]']


# --- reserved names -------------------------------------------------------------------------------


@pytest.mark.parametrize("event", sorted(sio.RESERVED_EVENTS))
async def test_reserved_event_names_cannot_be_emitted(event: str) -> None:
    io, conn, socket = await one_client()
    for emit in (socket.emit, socket.broadcast.emit, io.emit):
        with pytest.raises(ReservedEventError):
            emit(event)
    assert conn.take() == []


async def test_an_event_name_is_a_str() -> None:
    _, _, socket = await one_client()
    with pytest.raises(TypeError):
        socket.emit(1)  # type: ignore[arg-type]


# --- listeners ------------------------------------------------------------------------------------


async def test_on_once_off() -> None:
    _, conn, socket = await one_client()
    calls: list[str] = []

    def a(*args: Any) -> None:
        calls.append("a")

    def b(*args: Any) -> None:
        calls.append("b")

    socket.on("x", a)
    socket.once("x", b)

    @socket.on("y")
    def y() -> None:
        calls.append("y")

    @socket.once("z")
    def z() -> None:
        calls.append("z")

    conn.receive('2["x"]', '2["x"]', '2["y"]', '2["z"]', '2["z"]')
    assert calls == ["a", "b", "a", "y", "z"]
    assert socket.listeners("x") == [a] and socket.listeners("z") == []
    calls.clear()
    socket.on("x", b)
    socket.off("x", a)
    conn.receive('2["x"]')
    socket.off("x", b)
    socket.off("x", b)  # not there: nothing to do
    conn.receive('2["x"]')
    socket.off("y")
    conn.receive('2["y"]')
    socket.on("x", a)
    socket.off()
    conn.receive('2["x"]', '2["nobody listens"]')
    assert calls == ["b"]
    assert not conn.closed


async def test_on_any_sees_every_event_first() -> None:
    _, conn, socket = await one_client()
    calls: list[tuple[Any, ...]] = []

    def first(*args: Any) -> None:
        calls.append(("any1", *args))

    def second(*args: Any) -> None:
        calls.append(("any2", *args))

    socket.on_any(first)
    socket.on_any(second)
    socket.on("x", lambda *args: calls.append(("x", *args)))
    conn.receive('2["x",1]', '2["y"]')
    assert calls == [("any1", "x", 1), ("any2", "x", 1), ("x", 1), ("any1", "y"), ("any2", "y")]
    calls.clear()
    socket.off_any(first)
    conn.receive('2["y"]')
    socket.off_any()
    conn.receive('2["y"]')
    assert calls == [("any2", "y")]


async def test_handler_exceptions_are_logged_and_the_connection_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    _, conn, socket = await one_client()
    done = asyncio.Event()

    def sync_bug() -> None:
        raise RuntimeError("sync bug")

    async def async_bug() -> None:
        raise RuntimeError("async bug")

    socket.on("sync", sync_bug)
    socket.on("async", async_bug)
    async def on_done() -> None:  # a task, run after async_bug's
        done.set()

    socket.on("done", on_done)
    with caplog.at_level(logging.ERROR, "sio_core.socketio"):
        conn.receive('21["sync"]', '22["async"]', '2["done"]')
        await done.wait()
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [f"error in handler for event 'sync' of {socket!r}",
                        f"error in handler for event 'async' of {socket!r}"]
    assert [str(r.exc_info[1]) for r in caplog.records if r.exc_info] == ["sync bug", "async bug"]
    assert conn.take() == [] and not conn.closed


async def test_an_ack_of_data_that_cannot_be_sent_is_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    _, conn, socket = await one_client()
    socket.on("x", returns(float("nan")))
    with caplog.at_level(logging.ERROR, "sio_core.socketio"):
        conn.receive('21["x"]')
    assert f"error delivering the result of event 'x' of {socket!r}" in caplog.text
    assert conn.take() == [] and not conn.closed


# --- rooms ----------------------------------------------------------------------------------------


async def test_join_and_leave() -> None:
    _, _, socket = await one_client()
    assert socket.rooms == {socket.id}
    await socket.join("a")
    socket.join(["b", "c"], "d")
    assert socket.rooms == {socket.id, "a", "b", "c", "d"}
    socket.leave("a", ["b"])
    await socket.leave("nowhere")
    assert socket.rooms == {socket.id, "c", "d"}
    socket.disconnect()
    assert socket.rooms == set()


async def test_broadcasts_from_a_socket_skip_it() -> None:
    io = Server()
    (c1, s1), (c2, s2), (c3, s3) = [await connect(io) for _ in range(3)]
    s2.join("r")
    s3.join("r")
    s1.join("r")
    steps: list[tuple[Callable[[], Any], list[str]]] = [
        (lambda: s1.broadcast.emit("all"), ["", "all", "all"]),
        (lambda: s1.to("r").emit("r"), ["", "r", "r"]),
        (lambda: s1.in_("r").except_(s3.id).emit("r-3"), ["", "r-3", ""]),
        (lambda: s1.except_("r").emit("none"), ["", "", ""]),
        (lambda: s2.local.emit("local"), ["local", "", "local"]),
        (lambda: s1.to(s2.id).emit("direct"), ["", "direct", ""]),
    ]
    for emit, expected in steps:
        await emit()
        got = [c.take() for c in (c1, c2, c3)]
        assert got == [[f'2["{e}"]'] if e else [] for e in expected], emit


# --- how a socket ends ----------------------------------------------------------------------------


async def test_the_server_disconnects_a_socket() -> None:
    io, conn, main, admin = await main_and_admin()
    events: list[tuple[Any, ...]] = []
    main.on("disconnecting", lambda why: events.append(("disconnecting", why, main.rooms)))
    main.on("disconnect", lambda why: events.append(("disconnect", why, main.rooms)))
    main.join("r")
    await main.disconnect()
    assert conn.take() == ["1"]
    assert events == [("disconnecting", "server namespace disconnect", {main.id, "r"}),
                      ("disconnect", "server namespace disconnect", set())]
    assert not main.connected and admin.connected and not conn.closed
    assert io.sockets.sockets == {}
    main.disconnect()  # once only
    main.emit("x")
    assert conn.take() == []
    conn.receive('2["x"]')  # the client may not use the namespace it left
    assert conn.closed


async def test_the_server_closes_the_whole_connection() -> None:
    _, conn, main, admin = await main_and_admin()
    reasons: list[str] = []
    for socket in (main, admin):
        socket.on("disconnect", reasons.append)
    admin.disconnect(close=True)
    assert conn.take() == ["1", "1/admin,"]
    assert conn.close_reason is CloseReason.FORCED_CLOSE
    assert reasons == ["server namespace disconnect"] * 2
    admin.disconnect(close=True)  # already gone
    assert conn.take() == []


async def test_the_client_leaves_a_namespace() -> None:
    io, conn, main, admin = await main_and_admin()
    reasons: list[str] = []
    admin.on("disconnect", reasons.append)

    @admin.on("disconnect")
    def no_arguments() -> None:  # a listener may take fewer arguments than there are
        reasons.append("no arguments")

    pending = asyncio.ensure_future(admin.emit_with_ack("x"))
    await conn.take_when(1)
    conn.receive("1/admin,")
    assert reasons == ["client namespace disconnect", "no arguments"]
    with pytest.raises(DisconnectedError, match="client namespace disconnect"):
        await pending
    assert main.connected and not conn.closed
    assert conn.take() == []
    # and may come back, as a new socket
    _, again = await connect(io, "/admin", conn=conn)
    assert again.id != admin.id


async def test_a_socket_knows_its_connection() -> None:
    _, conn, socket = await one_client("/admin")
    assert socket.conn is conn and socket.client is conn.context
    assert socket.nsp is socket.namespace and socket.server is socket.namespace.server
    assert repr(socket) == f"<Socket {socket.id} /admin>"
    assert socket.data == {}


async def test_a_socket_takes_the_applications_own_attributes() -> None:
    """``socket.username = name`` in a connection listener, read in its event handlers, as
    JavaScript applications write; and weak references to a socket (the class-based
    namespaces' tables hold them). The compiled build's Socket keeps both through its Python
    base (socketio/attributes.py); test_packaging probes that build's."""
    import weakref

    io = Server()

    def connection(socket: Socket) -> None:
        socket.username = "ann"  # type: ignore[attr-defined]
        socket.on("who", lambda: socket.username)  # type: ignore[attr-defined]

    io.on("connection", connection)
    conn, socket = await connect(io)
    conn.receive('21["who"]')
    await conn.wait_sent(1)
    assert conn.take() == ['31["ann"]']
    ref = weakref.ref(socket)
    assert ref() is socket

def recorders(heard: list[Any]) -> tuple[Callable[..., None], Callable[..., None]]:
    """Two listeners that keep what they hear in ``heard``, each with its name first."""
    def first(*args: Any) -> None:
        heard.append(("first", *args))

    def second(*args: Any) -> None:
        heard.append(("second", *args))
    return first, second


async def test_any_listeners_in_order_and_removed_one_by_one() -> None:
    io = Server()
    conn, socket = await connect(io)
    heard: list[Any] = []
    first, second = recorders(heard)

    socket.on_any(second)
    socket.prepend_any(first)
    assert socket.listeners_any() == [first, second]
    conn.receive('2["e",1]')
    socket.off_any(first)
    conn.receive('2["f"]')
    socket.off_any()
    conn.receive('2["g"]')
    await asyncio.sleep(0)
    assert heard == [("first", "e", 1), ("second", "e", 1), ("second", "f")]
    assert socket.listeners_any() == []


async def test_outgoing_listeners_hear_the_sockets_own_emits() -> None:
    io = Server()
    conn, socket = await connect(io)
    heard: list[Any] = []
    first, second = recorders(heard)

    socket.on_any_outgoing(second)
    socket.prepend_any_outgoing(first)
    assert socket.listeners_any_outgoing() == [first, second]
    socket.emit("a", 1)
    socket.off_any_outgoing(first)
    socket.emit("b")
    assert io.sockets.outgoing_watchers == {socket}
    socket.off_any_outgoing(second)
    socket.emit("c")
    assert heard == [("first", "a", 1), ("second", "a", 1), ("second", "b")]
    assert socket.listeners_any_outgoing() == [] and io.sockets.outgoing_watchers == set()
    assert conn.take() == ['2["a",1]', '2["b"]', '2["c"]']


async def test_a_sync_middleware_refusal_goes_to_the_error_listeners() -> None:
    io = Server()
    conn, socket = await connect(io)
    errors: list[BaseException] = []
    heard: list[Any] = []
    socket.on("error", errors.append)
    socket.on("x", lambda *args: heard.append(args))

    def gate(packet: list[Any]) -> None:
        if packet[0] == "x" and packet[1:] == ["bad"]:
            raise PermissionError("no")
        packet.append("checked")

    socket.use(gate)
    conn.receive('2["x","bad"]')
    conn.receive('2["x","good"]')
    await asyncio.sleep(0)
    assert [type(e) for e in errors] == [PermissionError]
    assert heard == [("good", "checked")]


async def test_the_observer_is_told_of_each_event_sent() -> None:
    io = Server()
    watcher = Watcher()
    io.observer = watcher  # type: ignore[assignment]
    _, socket = await connect(io)
    socket.emit("hi", 1)
    assert watcher.told("event_sent") == [(socket, ["hi", 1], ['2["hi",1]'])]
