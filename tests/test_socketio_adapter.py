"""sio_core.socketio.adapter: rooms of one namespace, and delivery of broadcasts to its sockets.

Membership (every socket in the room of its own id, rooms gone once empty), which sockets a
broadcast reaches, and delivery: encoded once for all recipients, counted, volatile packets
dropped where the transport cannot take them now. Over the fake engine (tests/fake_engine.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sio_core import Server, Socket
from sio_core.protocol import engineio
from sio_core.protocol import socketio as sio
from sio_core.protocol.parsers import Parser
from sio_core.protocol.session import CloseReason
from sio_core.socketio.adapter import Adapter, BroadcastOptions
from tests.fake_engine import FakeEngineSocket, Watcher, connect, masked
from tests.support import scaled


def opts(rooms: str = "", except_rooms: str = "", **flags: Any) -> BroadcastOptions:
    """Options with one-letter room names: opts("ab", "c")."""
    return BroadcastOptions(frozenset(rooms), frozenset(except_rooms), **flags)


async def three(io: Server | None = None) -> tuple[Server, list[FakeEngineSocket], list[Socket]]:
    """Three clients: 0 in rooms a and b, 1 in b, 2 in none."""
    io = io or Server()
    pairs = [await connect(io) for _ in range(3)]
    conns, sockets = [c for c, _ in pairs], [s for _, s in pairs]
    sockets[0].join("a", "b")
    sockets[1].join("b")
    return io, conns, sockets


def members(adapter: Adapter) -> dict[str, set[str]]:
    return {room: set(sids) for room, sids in adapter.rooms.items()}


def test_membership() -> None:
    adapter = Adapter(Server().sockets)
    adapter.add_all("s1", ["a", "b"])
    adapter.add_all("s2", ["b"])
    assert members(adapter) == {"a": {"s1"}, "b": {"s1", "s2"}}
    assert adapter.sids == {"s1": {"a", "b"}, "s2": {"b"}}
    rooms = adapter.socket_rooms("s1")
    rooms.clear()  # a copy
    assert adapter.socket_rooms("s1") == {"a", "b"} and adapter.socket_rooms("s9") == set()
    adapter.delete("s1", "a")
    assert "a" not in adapter.rooms  # gone once empty
    adapter.delete("s1", "nowhere")
    adapter.delete("s9", "b")
    assert members(adapter) == {"b": {"s1", "s2"}}
    adapter.delete_all("s1")
    adapter.delete_all("s9")
    assert members(adapter) == {"b": {"s2"}} and adapter.sids == {"s2": {"b"}}
    adapter.delete_all("s2")
    assert adapter.rooms == {} and adapter.sids == {}


# (the options of a broadcast, which of the three clients it reaches)
MATCHES: list[tuple[BroadcastOptions, list[int]]] = [
    (opts(), [0, 1, 2]),
    (opts("a"), [0]),
    (opts("b"), [0, 1]),
    (opts("ab"), [0, 1]),            # each socket once
    (opts("", "a"), [1, 2]),
    (opts("b", "a"), [1]),
    (opts("", "ab"), [2]),
    (opts("z"), []),
    (opts("", "z"), [0, 1, 2]),
    (opts("a", "a"), []),
]


@pytest.mark.parametrize(("options", "reached"), MATCHES)
async def test_match(options: BroadcastOptions, reached: list[int]) -> None:
    io, _, sockets = await three()
    assert sorted(sockets.index(s) for s in io.sockets.adapter.match(options)) == reached


async def test_match_skips_a_room_member_that_is_not_a_socket() -> None:
    io, _, sockets = await three()
    adapter = io.sockets.adapter
    adapter.add_all("not-a-socket", ["a"])
    assert list(adapter.match(opts("a"))) == [sockets[0]]


@pytest.mark.parametrize(
    ("options", "reached"),
    [*MATCHES, (opts(volatile=True), [0, 1, 2])],
)
async def test_a_broadcast_is_encoded_once_for_every_recipient(options: BroadcastOptions,
                                                               reached: list[int]) -> None:
    io, conns, _ = await three()
    written: list[list[engineio.Packet]] = []
    for conn in conns:
        send = conn.send_packets

        def spy(packets: list[engineio.Packet], send: Any = send) -> bool:
            written.append(packets)
            return bool(send(packets))

        conn.send_packets = spy  # type: ignore[method-assign]
    packet = sio.Packet(sio.PacketType.EVENT, "/", ["x", b"\x01"])
    assert io.sockets.adapter.broadcast(packet, options) == len(reached)
    got = [conn.take() for conn in conns]
    assert got == [['51-["x",{"_placeholder":true,"num":0}]', b"\x01"] if n in reached else []
                   for n in range(3)]
    assert all(packets is written[0] for packets in written)  # the same Engine.IO packets


async def test_a_broadcast_counts_whom_it_reached() -> None:
    io, conns, _ = await three()
    conns[2].writable = False
    conns[1].close()
    packet = sio.Packet(sio.PacketType.EVENT, "/", ["x"])
    adapter = io.sockets.adapter
    # a closed session is no longer in the namespace; one not writable takes all but volatile
    assert adapter.broadcast(packet, opts()) == 2
    assert adapter.broadcast(packet, opts(volatile=True)) == 1
    assert adapter.broadcast(packet, opts("", "a")) == 1
    assert [c.take() for c in conns] == [['2["x"]', '2["x"]'], [], ['2["x"]', '2["x"]']]


async def test_a_broadcast_with_acks_reports_each_ack_with_its_socket() -> None:
    io, conns, sockets = await three()
    conns[2].writable = False
    acks: list[tuple[str, list[object]]] = []
    packet = sio.Packet(sio.PacketType.EVENT, "/", ["q"], 5)
    adapter = io.sockets.adapter
    assert adapter.broadcast_with_ack(packet, opts(volatile=True),
                                      lambda sid, args: acks.append((sid, args))) == 2
    assert [c.take() for c in conns] == [['25["q"]'], ['25["q"]'], []]
    conns[1].receive('35[1,"x"]')
    conns[0].receive("35[]")
    assert acks == [(sockets[1].id, [1, "x"]), (sockets[0].id, [])]


async def test_joining_leaving_and_disconnecting_the_matching_sockets() -> None:
    io, conns, sockets = await three()
    adapter = io.sockets.adapter
    adapter.add_sockets(opts("b"), ["c", "d"])
    assert [sorted(s.rooms - {s.id}) for s in sockets] == [["a", "b", "c", "d"], ["b", "c", "d"],
                                                          []]
    adapter.del_sockets(opts("", "a"), ["c", "b"])
    assert [sorted(s.rooms - {s.id}) for s in sockets] == [["a", "b", "c", "d"], ["d"], []]
    adapter.disconnect_sockets(opts("d"), close=False)
    assert [s.connected for s in sockets] == [False, False, True]
    assert [c.take() for c in conns] == [["1"], ["1"], []]
    assert members(adapter) == {sockets[2].id: {sockets[2].id}}
    adapter.disconnect_sockets(opts(), close=True)
    assert conns[2].take() == ["1"] and conns[2].closed and not conns[0].closed


async def test_a_room_joined_in_a_middleware_reaches_the_socket_once_connected() -> None:
    io = Server()
    entered = asyncio.Event()
    admit = asyncio.Event()

    async def middleware(socket: Socket) -> None:
        socket.join("r")
        entered.set()
        await admit.wait()

    io.use(middleware)
    conn = FakeEngineSocket(io)
    conn.receive("0")
    await entered.wait()
    packet = sio.Packet(sio.PacketType.EVENT, "/", ["early"])
    # a member of "r" already, but not connected: no event before its CONNECT reply
    assert io.sockets.adapter.broadcast(packet, opts("r")) == 0
    admit.set()
    await conn.wait_sent(1)
    assert masked(conn.take()) == ['0{"sid":"*"}']
    late = sio.Packet(sio.PacketType.EVENT, "/", ["late"])
    assert io.sockets.adapter.broadcast(late, opts("r")) == 1
    assert conn.take() == ['2["late"]']


async def test_a_broadcast_that_reaches_nobody_here_is_not_encoded() -> None:
    """A worker receiving another's broadcast to a room it has no member of does no work
    for it: the packet is not even encoded."""
    io, conns, _ = await three()
    encoded: list[sio.Packet] = []
    default = io.parser

    def encode(packet: sio.Packet) -> list[str | bytes]:
        encoded.append(packet)
        return default.encode(packet)

    io.parser = Parser("spy", encode, default.decoder)
    packet = sio.Packet(sio.PacketType.EVENT, "/", ["x"])
    assert io.sockets.adapter.broadcast(packet, opts("z")) == 0
    assert io.sockets.adapter.broadcast(packet, opts("a", "b")) == 0
    assert encoded == []
    assert io.sockets.adapter.broadcast(packet, opts("a")) == 1
    assert encoded == [packet]
    assert [c.take() for c in conns] == [['2["x"]'], [], []]


async def test_the_observer_hears_of_rooms_left_and_broadcasts_with_acks() -> None:
    io = Server()
    watcher = Watcher()
    io.observer = watcher  # type: ignore[assignment]
    conn, socket = await connect(io)
    socket.join("r")
    socket.leave("r")
    socket.leave("r")  # not in it any more: nothing
    assert [told[1:] for told in watcher.told("room_left")] == [("r", socket.id)]
    outgoing: list[Any] = []
    socket.on_any_outgoing(lambda *args: outgoing.append(args))
    io.timeout(scaled(5)).emit("q", 1, callback=lambda err, answers: None)
    [sent] = watcher.told("broadcast_sent")
    assert sent[1] == ["q", 1] and sent[-1] == 1
    assert outgoing == [("q", 1)]
    socket.join("s")
    conn.end(CloseReason.TRANSPORT_CLOSE)
    left = [told[1:] for told in watcher.told("room_left")]
    assert sorted(left[1:]) == sorted([("s", socket.id), (socket.id, socket.id)])
