"""sio_core.socketio.cluster: Socket.IO across workers, over a store.

Two Servers in one event loop, each with a MemoryStore on one MemoryBus (envelopes packed and
unpacked on the way, delivered on later loop turns, as over a real bus), each with clients over
the fake engine (tests/fake_engine.py). What one worker does reaches the other's clients:
broadcasts (rooms, except, volatile, local), broadcasts with acks (and their timeouts),
fetch_sockets and what a RemoteSocket does, sockets_join/leave, disconnect_sockets,
server-side emits with and without acks. And what comes off the bus is checked before use.

The bus delivers in order, so a request to the other worker (``await io.fetch_sockets()``)
returns only after everything sent to it before has been handled: the tests use that to know
something did *not* happen, rather than waiting.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from sio_core import AckTimeoutError, Handshake, Server, Socket
from sio_core.protocol import socketio as sio
from sio_core.protocol.parsers import PARSERS
from sio_core.socketio.adapter import BroadcastOptions, decode_parts
from sio_core.socketio.cluster import RemoteSocket, handshake_from_wire
from sio_core.socketio.link import PeerLink
from sio_core.socketio.messages import (
    MESSAGES,
    Broadcast,
    BroadcastWithAcks,
    ClientAck,
    ClientCount,
    ClusterKind,
)
from sio_core.socketio.redis_adapter import opts_from_js, packet_from_js
from sio_core.stores.base import BadMessage, Envelope
from sio_core.stores.memory import MemoryBus, MemoryStore
from tests.fake_engine import FakeEngineSocket, connect
from tests.support import scaled


@dataclass
class Worker:
    io: Server
    store: MemoryStore
    conn: FakeEngineSocket
    socket: Socket


@pytest.fixture
async def bus() -> AsyncIterator[MemoryBus]:
    bus = MemoryBus()
    yield bus
    for store in list(bus.stores.values()):
        await store.close()


async def worker(bus: MemoryBus, name: str, store: MemoryStore | None = None) -> Worker:
    io = Server(ack_timeout=scaled(5))
    io.of("/n")
    store = store or MemoryStore(name, bus)
    io.attach_store(store)
    await store.start()
    conn, socket = await connect(io)
    return Worker(io, store, conn, socket)


@pytest.fixture
async def pair(bus: MemoryBus) -> tuple[Worker, Worker]:
    return await worker(bus, "w1"), await worker(bus, "w2")


async def barrier(w: Worker) -> None:
    """Return once the other workers have handled everything ``w`` sent them before."""
    await w.io.local.fetch_sockets()
    await w.io.sockets.server_side_emit_with_ack("barrier")


# --- broadcasts -----------------------------------------------------------------------------------


async def test_a_broadcast_reaches_the_other_workers_clients(pair: tuple[Worker, Worker]) -> None:
    w1, w2 = pair
    await w1.io.emit("hello", 1, b"\x02")
    expected = ['51-["hello",1,{"_placeholder":true,"num":0}]', b"\x02"]
    assert w1.conn.take() == expected
    assert await w2.conn.take_when(2) == expected


async def test_rooms_and_except_across_workers(pair: tuple[Worker, Worker]) -> None:
    w1, w2 = pair
    w2.socket.join("r")
    steps = [
        (lambda: w1.io.to("r").emit("r"), [], ['2["r"]']),
        (lambda: w1.io.except_("r").emit("x"), ['2["x"]'], []),
        (lambda: w1.socket.broadcast.emit("b"), [], ['2["b"]']),
        (lambda: w2.socket.broadcast.emit("b2"), ['2["b2"]'], []),
        (lambda: w1.io.to(w2.socket.id).emit("direct"), [], ['2["direct"]']),
        (lambda: w1.io.local.emit("local"), ['2["local"]'], []),
        (lambda: w1.socket.local.emit("local2"), [], []),
        (lambda: w1.io.of("/n").emit("other namespace"), [], []),
    ]
    for step, first, second in steps:
        await step()
        await barrier(w1)
        await barrier(w2)
        assert (w1.conn.take(), w2.conn.take()) == (first, second)


async def test_volatile_crosses_workers(pair: tuple[Worker, Worker]) -> None:
    w1, w2 = pair
    w2.conn.writable = False
    await w1.io.volatile.emit("v")
    await w1.io.emit("kept")
    assert await w2.conn.take_when(1) == ['2["kept"]']


async def test_a_broadcast_with_acks_gathers_from_every_worker(
        pair: tuple[Worker, Worker]) -> None:
    w1, w2 = pair
    emitting = asyncio.ensure_future(w1.io.emit_with_ack("q", 1))
    assert await w1.conn.take_when(1) == ['21["q",1]']
    [packet] = await w2.conn.take_when(1)
    assert packet.startswith("2") and packet.endswith('["q",1]')
    w2.conn.receive("3" + packet[1:-len('["q",1]')] + '["from w2"]')
    w1.conn.receive('31["from w1"]')
    assert sorted(await emitting) == ["from w1", "from w2"]


async def test_a_broadcast_with_acks_times_out_with_what_came(
        pair: tuple[Worker, Worker]) -> None:
    w1, w2 = pair
    w1.conn.receive("1")  # no client on w1: only w2's counts
    result: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    conn3, _ = await connect(w2.io)
    w1.io.timeout(scaled(0.3)).emit("q", callback=lambda *args: result.set_result(args))
    [packet] = await w2.conn.take_when(1)
    await conn3.take_when(1)
    w2.conn.receive("3" + packet[1:-len('["q"]')] + '["only"]')
    err, responses = await result
    assert isinstance(err, AckTimeoutError) and responses == ["only"]


async def test_without_peers_a_broadcast_with_acks_counts_only_this_worker(
        bus: MemoryBus) -> None:
    w1 = await worker(bus, "alone")
    emitting = asyncio.ensure_future(w1.io.emit_with_ack("q"))
    await w1.conn.take_when(1)
    w1.conn.receive("31[]")
    assert await emitting == [None]


async def test_servers_that_cannot_be_counted_end_at_the_timeout(
        bus: MemoryBus, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    async def cannot_count(self: PeerLink, namespace: str) -> int:
        raise ConnectionError("the bus is down")

    monkeypatch.setattr(PeerLink, "count_servers", cannot_count)
    w1 = await worker(bus, "w1")
    with caplog.at_level(logging.WARNING, "sio_core.cluster"):
        result: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        w1.io.timeout(scaled(0.1)).emit("q", callback=lambda *args: result.set_result(args))
        w1.conn.receive("31[]")  # this worker's own clients answered
        err, responses = await result
    assert isinstance(err, AckTimeoutError) and responses == [None]
    assert "cannot count the servers for a broadcast with acks: the bus is down" in caplog.text


# --- socket queries -------------------------------------------------------------------------------


async def test_fetch_sockets_finds_the_other_workers_sockets(pair: tuple[Worker, Worker]) -> None:
    w1, w2 = pair
    w2.socket.join("r")
    w2.socket.data["user"] = "ann"
    found = await w1.io.fetch_sockets()
    assert [type(s) for s in found] == [Socket, RemoteSocket]
    local, remote = found
    assert local is w1.socket
    assert remote.id == w2.socket.id and remote.rooms == {w2.socket.id, "r"}
    assert remote.data == {"user": "ann"} and remote.namespace is w1.io.sockets
    assert isinstance(remote.handshake, Handshake)
    assert remote.handshake == w2.socket.handshake
    assert repr(remote) == f"<RemoteSocket {w2.socket.id} />"
    assert [s.id for s in await w1.io.in_("r").fetch_sockets()] == [w2.socket.id]
    assert await w1.io.local.fetch_sockets() == [w1.socket]
    assert await w1.io.of("/n").fetch_sockets() == []


async def test_data_that_cannot_cross_is_left_out(pair: tuple[Worker, Worker]) -> None:
    w1, w2 = pair
    w2.socket.data["obj"] = object()
    _, remote = await w1.io.fetch_sockets()
    assert remote.data == {}


async def test_what_a_remote_socket_does(pair: tuple[Worker, Worker]) -> None:
    w1, w2 = pair
    _, remote = await w1.io.fetch_sockets()
    await remote.emit("to you", 1)
    assert await w2.conn.take_when(1) == ['2["to you",1]']
    await remote.join("a", ["b"])
    await barrier(w1)
    assert w2.socket.rooms == {w2.socket.id, "a", "b"}
    remote.leave("a")
    await barrier(w1)
    assert w2.socket.rooms == {w2.socket.id, "b"}
    remote.disconnect()
    assert await w2.conn.take_when(1) == ["1"]
    assert not w2.socket.connected and not w2.conn.closed
    assert w1.socket.connected


async def test_sockets_join_leave_and_disconnect_across_workers(
        pair: tuple[Worker, Worker]) -> None:
    w1, w2 = pair
    await w1.io.sockets_join("j")
    await barrier(w1)
    assert "j" in w1.socket.rooms and "j" in w2.socket.rooms
    await w1.io.in_(w2.socket.id).sockets_leave("j")
    await barrier(w1)
    assert "j" in w1.socket.rooms and "j" not in w2.socket.rooms
    await w1.io.local.sockets_join("k")
    await barrier(w1)
    assert "k" in w1.socket.rooms and "k" not in w2.socket.rooms
    await w1.io.to("j").disconnect_sockets()
    await barrier(w1)
    assert not w1.socket.connected and w2.socket.connected
    await w1.io.disconnect_sockets(close=True)
    assert await w2.conn.wait_closed()
    assert w2.conn.take() == ["1"]


# --- server-side emits ----------------------------------------------------------------------------


async def test_server_side_emit_reaches_the_other_servers(pair: tuple[Worker, Worker]) -> None:
    w1, w2 = pair
    heard: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    mine: list[Any] = []
    w2.io.on("hello", lambda *args: heard.set_result(args))
    w1.io.on("hello", mine.append)
    await w1.io.server_side_emit("hello", 1, {"a": [2]})
    assert await heard == (1, {"a": [2]})
    assert mine == []
    assert w2.conn.take() == []  # not to clients


async def test_server_side_emit_with_ack_returns_every_answer(bus: MemoryBus) -> None:
    w1, w2, w3 = [await worker(bus, name) for name in ("w1", "w2", "w3")]

    async def answer_later(value: int) -> int:
        await asyncio.sleep(0)
        return value + 1

    w2.io.on("add", lambda value: value + 2)
    w2.io.on("add", lambda value: "not the first listener")
    w3.io.on("add", answer_later)
    assert sorted(await w1.io.server_side_emit_with_ack("add", 1)) == [2, 3]
    # a server with no listener, or without the namespace, answers None
    assert await w1.io.server_side_emit_with_ack("nobody") == [None, None]
    w2.io.of("/only-on-w2").on("q", lambda: "w2")
    answers = await w1.io.of("/only-on-w2").server_side_emit_with_ack("q")
    assert sorted(answers, key=str) == [None, "w2"]


async def test_server_side_emit_with_ack_times_out_with_what_came(bus: MemoryBus) -> None:
    w1, w2, w3 = [await worker(bus, name) for name in ("w1", "w2", "w3")]
    w2.io.on("q", lambda: "quick")
    w3.io.on("q", lambda: asyncio.Event().wait())  # never answers
    assert await w1.io.server_side_emit_with_ack("q", timeout=scaled(0.3)) == ["quick"]


# --- what comes off the bus (the JavaScript adapters' shapes: tests/test_socketio_messages.py has
# the messages between sio_core workers) ----------------------------------------------------------

PACKETS: list[tuple[Any, sio.Packet | None]] = [
    ({"type": 2, "nsp": "/", "data": ["x", 1], "id": None},
     sio.Packet(sio.PacketType.EVENT, "/", ["x", 1])),
    ({"type": 5, "nsp": "/n", "data": ["x", b"\x01"], "id": 3},
     sio.Packet(sio.PacketType.EVENT, "/n", ["x", b"\x01"], 3)),
    ({"type": 2, "nsp": "/", "data": ["x"]}, sio.Packet(sio.PacketType.EVENT, "/", ["x"])),
    (None, None),
    ([2, "/", ["x"]], None),
    ({"type": 0, "nsp": "/", "data": ["x"]}, None),      # not an event
    ({"type": 2, "nsp": 1, "data": ["x"]}, None),
    ({"type": 2, "nsp": "/", "data": []}, None),
    ({"type": 2, "nsp": "/", "data": [1]}, None),
    ({"type": 2, "nsp": "/", "data": "x"}, None),
    ({"type": 2, "nsp": "/", "data": ["x"], "id": -1}, None),
    ({"type": 2, "nsp": "/", "data": ["x"], "id": "1"}, None),
]


@pytest.mark.parametrize(("wire", "packet"), PACKETS)
def test_packet_from_js(wire: Any, packet: sio.Packet | None) -> None:
    if packet is None:
        with pytest.raises(BadMessage):
            packet_from_js(wire, "/")
    else:
        assert packet_from_js(wire, "/") == packet


def test_a_packet_from_js_without_a_namespace_is_of_the_channels() -> None:
    assert packet_from_js({"type": 2, "data": ["x"]}, "/n") == sio.Packet(
        sio.PacketType.EVENT, "/n", ["x"])


OPTS: list[tuple[Any, BroadcastOptions | None]] = [
    ({"rooms": ["a"], "except": ["b"], "flags": {"volatile": True}},
     BroadcastOptions(frozenset("a"), frozenset("b"), volatile=True)),
    ({}, BroadcastOptions()),
    ({"rooms": [], "except": [], "flags": None}, BroadcastOptions()),
    (None, None),
    ({"rooms": "a"}, None),
    ({"rooms": [1]}, None),
    ({"except": [None]}, None),
    ({"except": {}}, None),
    ({"flags": [1]}, None),
]


@pytest.mark.parametrize(("wire", "options"), OPTS)
def test_opts_from_js(wire: Any, options: BroadcastOptions | None) -> None:
    if options is None:
        with pytest.raises(BadMessage):
            opts_from_js(wire)
    else:
        assert opts_from_js(wire) == options


def test_handshake_from_wire() -> None:
    assert handshake_from_wire(None) == Handshake({}, {}, {}, None, "", 0, "")
    assert handshake_from_wire({
        "headers": {"a": "1", 2: "dropped"}, "query": [], "auth": {"t": 1},
        "address": 5, "time": "T", "issued": 9, "url": "/u", "secure": True, "xdomain": "yes",
    }) == Handshake({"a": "1"}, {}, {"t": 1}, None, "T", 9, "/u", secure=True, xdomain=False)


def test_a_remote_socket_from_a_sparse_description() -> None:
    remote = RemoteSocket(Server().sockets, {"id": "x", "rooms": "r", "data": None})
    assert (remote.id, remote.rooms, remote.data) == ("x", set(), {})
    remote = RemoteSocket(Server().sockets, {"id": "x", "rooms": ["x", 1]})
    assert remote.rooms == {"x"}


# (a kind, a payload no honest worker sends: the dicts of version 0 among them)
GARBAGE: list[tuple[ClusterKind, Any]] = [
    (kind, payload)
    for kind in (cls.KIND for cls in MESSAGES)  # SOCKET_RELEASE: recovery's (not on here)
    for payload in (
        None, [], "x", {},
        {"nsp": "/nowhere", "opts": {}, "rooms": ["r"], "data": ["x"]},
        {"nsp": "/", "opts": {"rooms": 1}, "rooms": ["r"], "packet": {"nsp": "/"}},
        {"nsp": "/", "opts": {"rooms": ["nobody"]}, "rooms": [1], "data": [1], "close": True,
         "packet": {"type": 2, "nsp": "/", "data": []}, "req": ["unhashable"], "count": 1,
         "args": [1]},
        {"nsp": 1, "req": {"a": 1}, "count": "1", "args": "x"},
        ["/", ["r"], [], False, ["2[\"x\"]"], "extra"],
        ["/", "r", [], False, ["x"]],
        [1, [], [], 0, None, None, None],
        ["/", [], [], False, True, ["x"], None],
    )
]


# (a kind, a well-formed payload for a namespace or request nobody has)
STRAYS: list[tuple[ClusterKind, Any]] = [
    (ClusterKind.BROADCAST, ["/nowhere", [], [], False, True, "default", ['2/nowhere,["x"]']]),
    (ClusterKind.BROADCAST_ACKS, ["/nowhere", [], [], False, True, 1, ["x"], 1]),
    (ClusterKind.CLIENT_COUNT, [12345, 1, "/"]),
    (ClusterKind.CLIENT_COUNT, ["js-request", 1, "/"]),
    (ClusterKind.CLIENT_ACK, [12345, ["x"], "/"]),
    (ClusterKind.FETCH_SOCKETS, ["/nowhere", [], [], False, True]),
    (ClusterKind.SOCKETS_JOIN, ["/nowhere", [], [], False, True, ["r"]]),
    (ClusterKind.SOCKETS_LEAVE, ["/nowhere", [], [], False, True, ["r"]]),
    (ClusterKind.DISCONNECT_SOCKETS, ["/nowhere", [], [], False, True, True]),
    (ClusterKind.SERVER_SIDE_EMIT, ["/nowhere", ["x"]]),
]


@pytest.mark.parametrize(("kind", "payload", "malformed"),
                         [(k, p, True) for k, p in GARBAGE] + [(k, p, False) for k, p in STRAYS])
async def test_what_comes_off_the_bus_for_nobody_changes_nothing(
        pair: tuple[Worker, Worker], kind: ClusterKind, payload: Any, malformed: bool,
        caplog: pytest.LogCaptureFixture) -> None:
    """Garbage is dropped with a line of log (no traceback); a stray is acted on, to no
    effect."""
    w1, w2 = pair
    rooms = w2.socket.rooms
    with caplog.at_level(logging.WARNING):
        w2.store.deliver(Envelope(kind, "w1", payload))
        w2.store.deliver(Envelope(kind, "w1", payload, request_id=99))
        await barrier(w2)
    if malformed:
        assert [r.getMessage() for r in caplog.records] == [
            f"dropped a message from w1 ({kind}): malformed {kind}"]
        assert caplog.records[0].exc_info is None and w2.store.dropped.count == 2
    else:
        assert caplog.records == [] and w2.store.dropped.count == 0
    assert w2.socket.connected and w2.socket.rooms == rooms
    assert w2.conn.take() == [] and w1.conn.take() == []


# --- a JavaScript server on the same bus ----------------------------------------------------------


async def test_a_broadcast_with_acks_from_a_server_that_names_no_ack_id(
        pair: tuple[Worker, Worker], bus: MemoryBus) -> None:
    """The JavaScript redis adapter's request carries no ack id (each server picks its own)
    and a string request id; the answers go back to it, counted and acked."""
    w1, w2 = pair
    js = MemoryStore("js", bus)
    answers: asyncio.Queue[ClientCount | ClientAck] = asyncio.Queue()
    js.on(ClientCount.KIND,
          lambda envelope: answers.put_nowait(ClientCount.from_wire(envelope.payload)))
    js.on(ClientAck.KIND,
          lambda envelope: answers.put_nowait(ClientAck.from_wire(envelope.payload)))
    await js.start()
    request = BroadcastWithAcks(sio.Packet(sio.PacketType.EVENT, "/", ["q"]),
                                BroadcastOptions(), "r-1")
    js.publish(request.KIND, request.to_wire())
    got = [await answers.get() for _ in range(2)]
    assert got == [ClientCount("r-1", 1, "/")] * 2
    for w in (w1, w2):
        [packet] = await w.conn.take_when(1)
        ack_id = packet[1:-len('["q"]')]
        assert packet == f'2{ack_id}["q"]' and ack_id.isdigit()
        w.conn.receive(f'3{ack_id}["ok"]')
        assert await answers.get() == ClientAck("r-1", ["ok"], "/")
    request = BroadcastWithAcks(sio.Packet(sio.PacketType.EVENT, "/nowhere", ["q"]),
                                BroadcastOptions(), 7)
    js.publish(request.KIND, request.to_wire())
    assert [await answers.get() for _ in range(2)] == [ClientCount(7, 0, "/nowhere")] * 2


async def test_the_link_follows_the_servers_namespaces(
        bus: MemoryBus, monkeypatch: pytest.MonkeyPatch) -> None:
    followed: list[str] = []
    monkeypatch.setattr(PeerLink, "namespace_added",
                        lambda self, name: followed.append(name))
    w = await worker(bus, "w")
    assert followed == ["/", "/n"]  # those that existed when attached
    w.io.of("/later")
    assert followed == ["/", "/n", "/later"]


class BroadcastsSeen:
    """An observer that keeps the broadcasts it is told of (and ignores the rest)."""

    def __init__(self) -> None:
        self.seen: list[tuple[list[Any], list[str | bytes], int]] = []

    def broadcast_sent(self, namespace: Any, data: list[Any], parts: list[str | bytes],
                       opts: BroadcastOptions, count: int) -> None:
        self.seen.append((data, parts, count))

    def __getattr__(self, name: str) -> Any:
        return lambda *args: None


async def test_a_broadcast_is_encoded_once_and_observed_decoded_on_the_other_worker(
        pair: tuple[Worker, Worker]) -> None:
    w1, w2 = pair
    seen = BroadcastsSeen()
    w2.io.observer = seen  # type: ignore[assignment]
    await w1.io.emit("hello", 1, b"\x02")
    expected = ['51-["hello",1,{"_placeholder":true,"num":0}]', b"\x02"]
    assert await w2.conn.take_when(2) == expected
    assert seen.seen == [(["hello", 1, b"\x02"], expected, 1)]


def burst_envelope(event: str, opts: BroadcastOptions | None = None,
                   parser: str = "default", namespace: str = "/") -> Envelope:
    """A broadcast of w1's as it comes off the bus."""
    packet = sio.Packet(sio.PacketType.EVENT, namespace, [event])
    message = Broadcast(namespace, opts or BroadcastOptions(), PARSERS[parser].encode(packet),
                        parser)
    return Envelope(message.KIND, "w1", message.to_wire())


async def test_a_burst_from_another_worker_is_delivered_in_runs(
        pair: tuple[Worker, Worker], caplog: pytest.LogCaptureFixture) -> None:
    """Broadcasts that arrive together (a batch of the hub, Store.deliver_all): each run to
    the same sockets is one pass over them; the clients get everything in order, and what is
    malformed or in another parser is dropped with a line of log, the rest delivered."""
    _, w2 = pair
    w2.socket.join("r")
    room = BroadcastOptions(frozenset({"r"}))
    with caplog.at_level(logging.WARNING):
        w2.store.deliver_all([
            burst_envelope("a"), burst_envelope("b"), burst_envelope("c", room),
            burst_envelope("d", room), burst_envelope("in msgpack", parser="msgpack"),
            Envelope(ClusterKind.BROADCAST, "w1", "garbage"),
            burst_envelope("nobody", BroadcastOptions(frozenset({"nobody"}))),
            burst_envelope("e"), burst_envelope("other namespace", namespace="/n"),
            burst_envelope("f"), burst_envelope("gone namespace", namespace="/gone"),
            burst_envelope("g")])
    assert w2.conn.take() == ['2["a"]', '2["b"]', '2["c"]', '2["d"]', '2["e"]', '2["f"]',
                              '2["g"]']
    assert [r.getMessage() for r in caplog.records] == [
        "dropped a message from w1 (broadcast): malformed broadcast",
        "dropped a message from w1 (broadcast): a broadcast in the msgpack parser (this"
        " server's is default)"]
    assert w2.store.dropped.count == 2
    assert w2.io.sockets.counters.deliveries == 7


async def test_a_burst_is_observed_broadcast_by_broadcast(pair: tuple[Worker, Worker]) -> None:
    _, w2 = pair
    seen = BroadcastsSeen()
    w2.io.observer = seen  # type: ignore[assignment]
    w2.store.deliver_all([burst_envelope("a"), burst_envelope("b")])
    assert w2.conn.take() == ['2["a"]', '2["b"]']
    assert seen.seen == [(["a"], ['2["a"]'], 1), (["b"], ['2["b"]'], 1)]


def test_decode_parts() -> None:
    packet = sio.Packet(sio.PacketType.EVENT, "/n", ["e", b"\x01"])
    for parser in PARSERS.values():
        assert decode_parts(parser, parser.encode(packet)) == ["e", b"\x01"]
    default, msgpack_parser = PARSERS["default"], PARSERS["msgpack"]
    assert decode_parts(default, ['2["e"']) == []
    assert decode_parts(default, ['51-["e",{"_placeholder":true,"num":0}]']) == []  # awaits one
    assert decode_parts(msgpack_parser, ['2["e"]']) == []


async def test_a_broadcast_in_another_parser_is_refused(
        pair: tuple[Worker, Worker], caplog: pytest.LogCaptureFixture) -> None:
    """Workers of one fleet share a parser; one that does not (a configuration error) has
    its broadcasts dropped, with a line of log, rather than written in a format its
    clients cannot read."""
    _, w2 = pair
    packet = sio.Packet(sio.PacketType.EVENT, "/", ["e"])
    message = Broadcast("/", BroadcastOptions(), PARSERS["msgpack"].encode(packet), "msgpack")
    with caplog.at_level(logging.WARNING):
        w2.store.deliver(Envelope(message.KIND, "w1", message.to_wire()))
        await barrier(w2)
    assert [r.getMessage() for r in caplog.records] == [
        "dropped a message from w1 (broadcast): a broadcast in the msgpack parser (this"
        " server's is default)"]
    assert w2.conn.take() == []


async def test_a_javascript_servers_broadcast_is_encoded_by_the_receiving_server(
        pair: tuple[Worker, Worker]) -> None:
    """The JavaScript adapters carry the packet, not its parts: each server encodes it with
    its own parser (tests/test_socketio_redis_adapter.py has the formats)."""
    _, w2 = pair
    assert w2.io.cluster is not None
    packet = sio.Packet(sio.PacketType.EVENT, "/", ["from js", b"\x01"])
    w2.io.cluster.receive("js:node", Broadcast("/", BroadcastOptions(), None, packet=packet))
    assert w2.conn.take() == ['51-["from js",{"_placeholder":true,"num":0}]', b"\x01"]
