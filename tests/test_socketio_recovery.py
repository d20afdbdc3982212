"""sio_core/socketio/recovery.py in process, with fake Engine.IO sessions (tests/fake_engine.py)
and the in-process log: what goes on the wire, which packets are kept, what a CONNECT with a
pid gets back, the middlewares, and every case that ends in a fresh session."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import msgpack
import pytest

from sio_core import Server, Socket
from sio_core.config import Config, ConnectionStateRecovery
from sio_core.exceptions import ConnectionRefusedError
from sio_core.protocol.session import CloseReason
from sio_core.socketio.messages import SocketRelease
from sio_core.socketio.recovery import Session
from sio_core.stores.base import Envelope
from sio_core.stores.log import Restored, Status
from sio_core.stores.memory import MemoryBus, MemoryStore
from tests.fake_engine import FakeEngineSocket

CONNECT = re.compile(r'^0(?:/[\w-]+,)?\{"sid":"([^"]+)","pid":"([^"]+)"\}$')


def server(**options: Any) -> Server:
    recovery = {"max_disconnection_duration": 60, **options}
    return Server(connection_state_recovery=recovery)


async def join(io: Server, auth: dict[str, Any] | None = None,
               conn: FakeEngineSocket | None = None) -> tuple[FakeEngineSocket, str, str]:
    """A client's CONNECT: its connection, socket id and pid."""
    conn = conn or FakeEngineSocket(io)
    conn.receive("0" + (json.dumps(auth, separators=(",", ":")) if auth else ""))
    await conn.wait_sent(1)
    match = CONNECT.match(str(conn.sent.pop(0)))
    assert match is not None
    return conn, match[1], match[2]


def events(conn: FakeEngineSocket) -> list[list[Any]]:
    return [json.loads(str(m)[1:]) for m in conn.take() if str(m).startswith("2")]


async def test_kept_packets_carry_an_offset_and_the_others_do_not() -> None:
    io = server()
    conn, sid, _ = await join(io)
    socket = io.sockets.sockets[sid]
    socket.join("r")
    io.emit("a", 1)
    io.to("r").emit("b")
    socket.emit("c")  # an emit to one socket is kept too (the reference's rule)
    io.volatile.emit("d")  # volatile: not kept
    socket.emit("e", callback=lambda *args: None)  # with an ack: not kept
    await asyncio.sleep(0)
    got = [m for m in conn.take() if isinstance(m, str)]
    kept = [json.loads(m[1:]) for m in got if m.startswith("2[")]
    assert [k[0] for k in kept] == ["a", "b", "c", "d"]
    assert all(isinstance(k[-1], str) and ":" in k[-1] for k in kept[:3])
    assert kept[3] == ["d"]
    assert any(m.startswith("21[") for m in got)  # the one with an ack id, no offset
    offsets = [k[-1] for k in kept[:3]]
    assert len(set(offsets)) == 3


async def test_a_reconnect_gets_its_socket_back_with_what_it_missed() -> None:
    io = server()
    connected: list[Socket] = []
    io.on("connection", connected.append)
    conn, sid, pid = await join(io, {"token": "x"})
    socket = io.sockets.sockets[sid]
    socket.join("r")
    socket.data["user"] = "ann"
    io.to("r").emit("m", 0)
    offset = events(conn)[-1][-1]
    conn.end(CloseReason.TRANSPORT_CLOSE)
    io.to("r").emit("m", 1)  # missed
    io.to("other").emit("m", 99)  # not for it
    socket.emit("m", 2)  # to the socket object while it is away: kept for it
    io.except_("r").emit("m", 98)
    again, sid2, pid2 = await join(io, {"pid": pid, "offset": offset})
    assert (sid2, pid2) == (sid, pid)
    assert [e[:2] for e in events(again)] == [["m", 1], ["m", 2]]
    restored = io.sockets.sockets[sid]
    assert restored.recovered and restored.rooms == {sid, "r"}
    assert restored.data == {"user": "ann"}
    assert connected[-1] is restored and not connected[0].recovered
    io.to("r").emit("m", 3)  # and it is live again
    assert [e[:2] for e in events(again)] == [["m", 3]]


async def test_without_offset_it_gets_what_came_since_it_connected() -> None:
    io = server()
    conn, sid, pid = await join(io)
    io.sockets.sockets[sid].join("r")
    conn.end(CloseReason.PING_TIMEOUT)
    io.to("r").emit("m", 1)
    again, sid2, _ = await join(io, {"pid": pid})
    assert sid2 == sid and [e[:2] for e in events(again)] == [["m", 1]]


@pytest.mark.parametrize("reason", [CloseReason.TRANSPORT_ERROR, CloseReason.FORCED_CLOSE,
                                    CloseReason.SERVER_SHUTTING_DOWN])
async def test_recoverable_reasons(reason: CloseReason) -> None:
    io = server()
    conn, sid, pid = await join(io)
    conn.end(reason)
    _, sid2, _ = await join(io, {"pid": pid})
    assert sid2 == sid


async def test_leaving_on_purpose_ends_the_session() -> None:
    io = server()
    conn, sid, pid = await join(io)
    conn.receive("1")  # the client's DISCONNECT: "client namespace disconnect"
    conn.end(CloseReason.TRANSPORT_CLOSE)
    _, sid2, pid2 = await join(io, {"pid": pid})
    assert sid2 != sid and pid2 != pid
    assert not io.sockets.sockets[sid2].recovered


async def test_fresh_sessions_unknown_still_connected_or_offset_gone() -> None:
    io = server(max_log_packets=2)
    conn, sid, pid = await join(io)
    _, unknown, _ = await join(io, {"pid": "nobody", "offset": "x"})
    assert not io.sockets.sockets[unknown].recovered
    conn.end(CloseReason.TRANSPORT_CLOSE)
    for n in range(3):  # the log keeps 2: the session's start is gone
        io.emit("m", n)
    _, gone, _ = await join(io, {"pid": pid})
    assert gone != sid
    # not strings: an ordinary CONNECT
    _, plain, _ = await join(io, {"pid": 5, "offset": None})
    assert not io.sockets.sockets[plain].recovered


async def test_a_socket_still_connected_lets_go_of_its_session() -> None:
    # the client came back on a new connection before the server noticed the old one die
    io = server()
    disconnects: list[str] = []

    @io.on("connection")
    def connection(socket: Socket) -> None:
        socket.on("disconnect", disconnects.append)

    old, sid, pid = await join(io)
    io.sockets.sockets[sid].join("r")
    io.to("r").emit("m", 1)
    offset = events(old)[-1][-1]
    io.to("r").emit("m", 2)  # sent to the old connection, which the client no longer reads
    await asyncio.sleep(0)  # persisted (once per loop turn)
    new, sid2, _ = await join(io, {"pid": pid, "offset": offset})
    assert sid2 == sid and io.sockets.sockets[sid].recovered
    assert [e[:2] for e in events(new)] == [["m", 2]]
    assert old.closed and disconnects == ["transport close"]


async def test_a_socket_of_another_worker_lets_go_of_its_session() -> None:
    bus = MemoryBus()
    servers = [server(), server()]
    stores = [MemoryStore(f"w{i}", bus) for i in range(2)]
    for io, store in zip(servers, stores, strict=True):
        io.attach_store(store)
        await store.start()
    try:
        a, b = servers
        old, sid, pid = await join(a)
        await asyncio.sleep(0.01)  # persisted as live, with its owner
        _, sid2, _ = await join(b, {"pid": pid})
        assert sid2 == sid and b.sockets.sockets[sid].recovered
        assert sid not in a.sockets.sockets and old.closed
    finally:
        for store in stores:
            await store.close()


async def test_a_dynamic_namespace_child_is_made_for_the_reconnect() -> None:
    first, again = server(), server()  # two workers' servers sharing a log (a bus)
    bus = MemoryBus()
    stores = [MemoryStore(f"w{i}", bus) for i in range(2)]
    for io, store in zip((first, again), stores, strict=True):
        io.of(re.compile(r"^/room-\d+$"))
        io.attach_store(store)
        await store.start()
    try:
        conn = FakeEngineSocket(first)
        conn.receive("0/room-1,")
        await conn.wait_sent(1)
        match = CONNECT.match(str(conn.take()[0]))
        assert match is not None
        sid, pid = match[1], match[2]
        await asyncio.sleep(0.01)
        conn.end(CloseReason.TRANSPORT_CLOSE)
        await asyncio.sleep(0.01)
        other = FakeEngineSocket(again)
        other.receive(f'0/room-1,{{"pid":"{pid}"}}')
        reply = CONNECT.match(str((await other.take_when(1))[0]))
        assert reply is not None and reply[1] == sid
        assert again.namespaces["/room-1"].sockets[sid].recovered
        unknown = FakeEngineSocket(again)
        unknown.receive(f'0/nope,{{"pid":"{pid}"}}')
        assert await unknown.take_when(1) == ['4/nope,{"message":"Invalid namespace"}']
    finally:
        for store in stores:
            await store.close()


async def test_past_the_missed_packets_limit_it_is_a_fresh_session() -> None:
    io = server(max_missed_packets=2)
    conn, sid, pid = await join(io)
    conn.end(CloseReason.TRANSPORT_CLOSE)
    for n in range(3):
        io.emit("m", n)
    _, sid2, _ = await join(io, {"pid": pid})
    assert sid2 != sid


async def test_past_max_disconnection_duration_it_is_a_fresh_session() -> None:
    io = server(max_disconnection_duration=0.05)
    conn, sid, pid = await join(io)
    conn.end(CloseReason.TRANSPORT_CLOSE)
    await asyncio.sleep(0.1)
    _, sid2, _ = await join(io, {"pid": pid})
    assert sid2 != sid


@pytest.mark.parametrize("skip", [True, False])
async def test_middlewares_are_skipped_or_run_again(skip: bool) -> None:
    io = server(skip_middlewares=skip)
    ran: list[bool] = []

    async def middleware(socket: Socket) -> None:
        ran.append(socket.recovered)
        await asyncio.sleep(0)

    io.use(middleware)
    conn, sid, pid = await join(io)
    io.sockets.sockets[sid].join("r")
    conn.end(CloseReason.TRANSPORT_CLOSE)
    io.to("r").emit("m", 1)
    again = FakeEngineSocket(io)
    again.receive(f'0{{"pid":"{pid}"}}')
    await again.wait_sent(1)
    io.to("r").emit("m", 2)  # while its middlewares run, or after
    await again.wait_sent(3)
    msgs = again.take()
    assert CONNECT.match(str(msgs[0]))[1] == sid  # type: ignore[index]
    assert [json.loads(str(m)[1:])[:2] for m in msgs[1:]] == [["m", 1], ["m", 2]]
    assert ran == ([False] if skip else [False, True])


async def test_a_middleware_may_refuse_a_recovered_socket() -> None:
    io = server(skip_middlewares=False)
    refuse = False

    def middleware(socket: Socket) -> None:
        if refuse:
            raise ConnectionRefusedError("no", {"why": "banned"})

    io.use(middleware)
    conn, _, pid = await join(io)
    conn.end(CloseReason.TRANSPORT_CLOSE)
    refuse = True
    again = FakeEngineSocket(io)
    again.receive(f'0{{"pid":"{pid}"}}')
    assert await again.take_when(1) == ['4{"message":"no","data":{"why":"banned"}}']


async def test_a_client_gone_before_the_answer_is_not_admitted() -> None:
    bus = MemoryBus()
    io = server()
    store = MemoryStore("w1", bus)
    io.attach_store(store)
    await store.start()
    try:
        conn, sid, pid = await join(io)
        conn.end(CloseReason.TRANSPORT_CLOSE)
        again = FakeEngineSocket(io)
        again.receive(f'0{{"pid":"{pid}"}}')  # the bus answers on a later turn
        again.end(CloseReason.TRANSPORT_CLOSE)
        await asyncio.sleep(0.01)
        assert sid not in io.sockets.sockets and again.take() == []
    finally:
        await store.close()


async def test_unpackable_data_is_left_out_of_the_session(caplog: pytest.LogCaptureFixture) -> None:
    io = server()
    conn, sid, pid = await join(io)
    io.sockets.sockets[sid].data["x"] = object()
    conn.end(CloseReason.TRANSPORT_CLOSE)
    assert "cannot be kept" in caplog.text
    _, sid2, _ = await join(io, {"pid": pid})
    assert sid2 == sid and io.sockets.sockets[sid].data == {}


def test_session_and_config_from_the_wire_and_the_user() -> None:
    session = Session("s", "p", ["r"], {"a": 1}, "away", None)
    packed = session.pack()
    assert packed is not None and Session.unpack(packed) == session
    assert Session.unpack(b"\x01") is None and Session.unpack(None) is None
    config = Config(connection_state_recovery={"maxDisconnectionDuration": 30_000,
                                               "skipMiddlewares": False})
    assert config.connection_state_recovery == ConnectionStateRecovery(30.0, False)
    assert Config(connection_state_recovery=True).connection_state_recovery \
        == ConnectionStateRecovery()
    assert Config(connection_state_recovery=False).connection_state_recovery is None
    for bad in ({"nope": 1}, {"max_disconnection_duration": -1}, "yes",
                {"skip_middlewares": 1}, {"max_log_packets": 0}):
        with pytest.raises(ValueError, match="connection_state_recovery"):
            Config(connection_state_recovery=bad)


async def test_configure_turns_it_on_and_off() -> None:
    io = Server()
    assert io.recovery is None
    io.configure(connection_state_recovery={"max_disconnection_duration": 5})
    assert io.recovery is not None
    _, sid, pid = await join(io)
    assert sid and pid


async def test_what_the_log_cannot_carry_is_sent_as_usual_without_an_offset() -> None:
    io = server()
    conn, _, _ = await join(io)
    io.emit("big", 2**70)  # JSON carries it, msgpack does not
    io.emit("small", 1)
    await asyncio.sleep(0)
    got = events(conn)
    assert got[0] == ["big", 2**70]
    assert got[1][:2] == ["small", 1] and isinstance(got[1][2], str)


async def test_log_entries_that_are_not_ours_or_of_no_namespace_are_dropped() -> None:
    io = server()
    conn, _, _ = await join(io)
    recovery = io.recovery
    assert recovery is not None
    recovery._on_entry("1-0", b"\xc1")  # not msgpack
    recovery._on_entry("1-1", msgpack.packb(["/", [], [], [], True]))  # no event name
    recovery._on_entry("1-2", msgpack.packb(["/gone", ["e"], [], [], True]))
    recovery._on_entry("1-3", msgpack.packb(["/", ["e"], [], [], True]))
    await asyncio.sleep(0)
    assert events(conn) == [["e", "1-3"]]


async def test_store_log_entries_are_delivered_at_the_turns_end_in_runs() -> None:
    """Entries a store's log hands back (not this process's own, delivered at once): held
    to the end of the loop turn that read them, then in order, each run to the same sockets
    in one pass; and before a restore is answered, whose replay reaches up to there."""
    io = server()
    conn, _, _ = await join(io)
    recovery = io.recovery
    assert recovery is not None
    for i, rooms in enumerate([[], [], ["nobody"], [], []]):
        recovery._on_entry(f"2-{i}", msgpack.packb(["/", ["e", i], rooms, [], i != 4]))
    assert events(conn) == []
    await asyncio.sleep(0)
    assert events(conn) == [["e", 0, "2-0"], ["e", 1, "2-1"], ["e", 3, "2-3"],
                            ["e", 4, "2-4"]]
    assert io.sockets.counters.deliveries == 4
    recovery._on_entry("2-5", msgpack.packb(["/", ["e", 5], [], [], True]))
    recovery._on_restored(Restored(12345, Status.OK, None, []))  # an answer: what came first
    assert events(conn) == [["e", 5, "2-5"]]


async def test_sessions_persisted_by_the_refresh_and_only_while_connected() -> None:
    io = server()
    conn, sid, pid = await join(io)
    socket = io.sockets.sockets[sid]
    recovery = io.recovery
    assert recovery is not None
    persisted: list[tuple[str, str]] = []
    persist = recovery.log.persist

    def recording(pid: str, nsp: str, rooms: list[str], data: bytes, ttl: float) -> None:
        session = Session.unpack(data)
        assert session is not None
        persisted.append((session.pid, session.state))
        persist(pid, nsp, rooms, data, ttl)

    recovery.log.persist = recording  # type: ignore[method-assign]
    recovery._refresh_all()
    assert persisted == [(pid, "live")]
    assert recovery._refresh is not None  # again later, while there are sockets
    persisted.clear()
    socket.join("r")  # persisted at the end of the turn ... but it has gone by then
    conn.end(CloseReason.TRANSPORT_CLOSE)
    recovery.touch(socket)  # not connected: nothing
    await asyncio.sleep(0)
    assert persisted == [(pid, "away")]
    recovery._refresh_all()  # no sockets left: not again
    assert recovery._refresh is None and persisted == [(pid, "away")]


async def test_a_plain_socket_without_pid_is_never_persisted() -> None:
    io = server()
    _, sid, _ = await join(io)
    socket = io.sockets.sockets[sid]
    recovery = io.recovery
    assert recovery is not None
    await asyncio.sleep(0)  # persisted as it connected
    persisted: list[str] = []
    recovery.log.persist = lambda pid, *args: persisted.append(pid)  # type: ignore[method-assign]
    socket.pid = None
    recovery.touch(socket)
    recovery.closed(socket, "transport close")
    await asyncio.sleep(0)
    assert recovery._dirty == {} and persisted == []


async def test_answers_and_releases_for_nothing_of_ours_are_ignored() -> None:
    io = server()
    recovery = io.recovery
    assert recovery is not None
    recovery._on_restored(Restored(12345, Status.OK, None, []))  # never asked: nothing
    bus = MemoryBus()
    store = MemoryStore("w0", bus)
    io.attach_store(store)
    message = SocketRelease("/", "no-such-sid")
    assert recovery._on_release(Envelope(SocketRelease.KIND, "w1", message.to_wire())) is False
    message = SocketRelease("/nope", "no-such-sid")
    assert recovery._on_release(Envelope(SocketRelease.KIND, "w1", message.to_wire())) is False


async def test_a_dynamic_namespace_whose_matcher_fails_refuses_the_reconnect(
        caplog: pytest.LogCaptureFixture) -> None:
    io = server()

    def matcher(name: str, auth: Any) -> bool:
        raise RuntimeError("broken matcher")

    io.of(matcher)
    conn = FakeEngineSocket(io)
    conn.receive('0/x,{"pid":"p1"}')
    assert await conn.take_when(1) == ['4/x,{"message":"Invalid namespace"}']
    assert "error matching namespace /x" in caplog.text
