"""Socket.IO's messages between servers (sio_core.socketio.messages): every kind round-trips
through the bus's envelope, a broadcast carries its packet encoded (checked cheaply on the way
in), and anything else raises the one error, BadMessage."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sio_core.protocol import socketio as sio
from sio_core.protocol import socketio_msgpack
from sio_core.socketio.adapter import BroadcastOptions
from sio_core.socketio.messages import (
    MESSAGES,
    Broadcast,
    BroadcastWithAcks,
    ClientAck,
    ClientCount,
    ClusterKind,
    ClusterMessage,
    DisconnectSockets,
    FetchSockets,
    ServerSideEmit,
    SocketRelease,
    SocketsJoin,
    SocketsLeave,
    check_parts,
    opts_from_wire,
)
from sio_core.stores.base import BadMessage, Envelope

OPTS = BroadcastOptions(frozenset({"a", "b"}), frozenset({"c"}), volatile=True)
PLAIN = BroadcastOptions(frozenset({"a"}), compress=False)  # compress(False)
EVENT = sio.Packet(sio.PacketType.EVENT, "/", ["hi", 1])
BINARY = sio.Packet(sio.PacketType.EVENT, "/chat", ["bin", b"\x00\xff", {"k": b"\x01"}])

ROUND_TRIPS: list[ClusterMessage | SocketRelease] = [
    Broadcast("/", BroadcastOptions(), sio.encode(EVENT)),
    Broadcast("/chat", OPTS, sio.encode(BINARY)),
    Broadcast("/chat", PLAIN, socketio_msgpack.encode(BINARY), "msgpack"),
    BroadcastWithAcks(sio.Packet(sio.PacketType.EVENT, "/", ["q", b"\x01"], 7), OPTS, 3),
    BroadcastWithAcks(sio.Packet(sio.PacketType.EVENT, "/n", ["q"]), BroadcastOptions(), "js-1"),
    ClientCount(3, 0, "/"),
    ClientCount("js-1", 12, "/n"),
    ClientAck(3, [], "/"),
    ClientAck("js-1", ["ok", b"\x01", None], "/n"),
    FetchSockets("/", OPTS),
    FetchSockets("/", PLAIN),
    SocketsJoin("/", OPTS, frozenset({"x", "y"})),
    SocketsLeave("/n", BroadcastOptions(), frozenset({"x"})),
    DisconnectSockets("/", OPTS, True),
    DisconnectSockets("/", BroadcastOptions(), False),
    ServerSideEmit("/", ["event", 1, b"\x02", {"a": [1]}]),
    SocketRelease("/n", "AAAA"),
]


def test_every_kind_has_its_message() -> None:
    assert [cls.KIND for cls in (*MESSAGES, SocketRelease)] == list(ClusterKind)
    assert {type(m) for m in ROUND_TRIPS} == {*MESSAGES, SocketRelease}


@pytest.mark.parametrize("message", ROUND_TRIPS, ids=lambda m: type(m).__name__)
def test_round_trip_through_the_envelope(message: ClusterMessage) -> None:
    envelope = Envelope.unpack(Envelope(message.KIND, "w1", message.to_wire()).pack())
    assert envelope.kind == message.KIND
    assert type(message).from_wire(envelope.payload) == message


def test_a_broadcast_carries_the_encoded_packet_not_the_decoded_one() -> None:
    parts = sio.encode(BINARY)
    message = Broadcast("/chat", OPTS, parts, "default", BINARY)
    wire = message.to_wire()
    assert wire == ["/chat", ["a", "b"], ["c"], True, True, "default", parts]
    received = Broadcast.from_wire(wire)
    assert received.parts == parts and received.packet is None
    assert received == message  # the packet is the sender's convenience, not compared


GOOD_PARTS: list[tuple[str, list[Any]]] = [
    ("/", ['2["x"]']),
    ("/", ['51-["x",{"_placeholder":true,"num":0}]', b"\x01"]),
    ("/chat", ['2/chat,["x"]']),
    ("/chat", ['52-/chat,["x"]', b"", b"\x01"]),
]


@pytest.mark.parametrize(("namespace", "parts"), GOOD_PARTS)
def test_parts_that_pass_the_check(namespace: str, parts: list[Any]) -> None:
    assert check_parts(namespace, "default", parts) is parts


def test_parts_of_another_parser() -> None:
    parts = socketio_msgpack.encode(BINARY)
    assert check_parts("/chat", "msgpack", parts) is parts
    for parser, bad in (("msgpack", ['2["x"]']), ("msgpack", [b"", "x"]), ("yaml", [b""])):
        with pytest.raises(BadMessage):
            check_parts("/", parser, bad)


BAD_PARTS: list[tuple[str, Any]] = [
    ("/", None), ("/", []), ("/", [b'2["x"]']), ("/", ["0"]), ("/", ['3["x"]']),
    ("/", ['2/chat,["x"]']),  # another namespace's packet
    ("/chat", ['2["x"]']), ("/chat", ['2/chatroom,["x"]']),
    ("/", ['5-["x"]', b""]), ("/", ['5x-["x"]', b""]), ("/", ['51["x"]', b""]),
    ("/", ['51-["x"]']),  # an attachment short
    ("/", ['51-["x"]', b"", b""]),  # one too many
    ("/", ['51-["x"]', "text"]),
    ("/", ['2["x"]', b""]),
]


@pytest.mark.parametrize(("namespace", "parts"), BAD_PARTS)
def test_parts_that_fail_the_check(namespace: str, parts: Any) -> None:
    with pytest.raises(BadMessage, match="malformed broadcast"):
        check_parts(namespace, "default", parts)


NS_OPTS = ["/", [], [], False, True]  # a namespace and options, well-formed
BAD: list[tuple[type[ClusterMessage | SocketRelease], Any]] = [
    (Broadcast, None), (Broadcast, {"packet": {}, "opts": {}}),
    (Broadcast, [*NS_OPTS, "default"]),
    (Broadcast, [1, [], [], False, True, "default", ['2["x"]']]),
    (Broadcast, ["/", [1], [], False, True, "default", ['2["x"]']]),
    (Broadcast, ["/", [], None, False, True, "default", ['2["x"]']]),
    (Broadcast, ["/", [], [], "no", True, "default", ['2["x"]']]),
    (Broadcast, ["/", [], [], False, 1, "default", ['2["x"]']]),
    (Broadcast, [*NS_OPTS, "default", ["0"]]), (Broadcast, [*NS_OPTS, None, ['2["x"]']]),
    (Broadcast, [*NS_OPTS, "msgpack", ['2["x"]']]),
    (Broadcast, ["/", [], [], False, "default", ['2["x"]']]),  # version 0's options
    (BroadcastWithAcks, [*NS_OPTS, 1, [], None]),
    (BroadcastWithAcks, [*NS_OPTS, 1, [1], None]),
    (BroadcastWithAcks, [*NS_OPTS, 1, ["x"], -1]),
    (BroadcastWithAcks, [*NS_OPTS, 1, ["x"], "1"]),
    (BroadcastWithAcks, [*NS_OPTS, 1, ["x"], True]),
    (BroadcastWithAcks, [*NS_OPTS, None, ["x"], 1]),
    (BroadcastWithAcks, [*NS_OPTS, [1], ["x"], 1]),
    (BroadcastWithAcks, [*NS_OPTS, 1, ["x"], sio.MAX_ACK_ID + 1]),
    (ClientCount, [1, "1", "/"]), (ClientCount, [1, -1, "/"]), (ClientCount, [1, True, "/"]),
    (ClientCount, [1.5, 1, "/"]), (ClientCount, [1, 1, None]), (ClientCount, [1, 1]),
    (ClientAck, [1, "x", "/"]), (ClientAck, [{}, [], "/"]), (ClientAck, [1, [], 1]),
    (FetchSockets, ["/", [], [], False]), (FetchSockets, ["/", [], [], None, True]),
    (FetchSockets, ["/", [], [], False, None]),
    (SocketsJoin, [*NS_OPTS, "r"]), (SocketsJoin, [*NS_OPTS, [1]]),
    (SocketsLeave, NS_OPTS), (SocketsLeave, [None, [], [], False, True, []]),
    (DisconnectSockets, [*NS_OPTS, 1]), (DisconnectSockets, NS_OPTS),
    (ServerSideEmit, ["/", []]), (ServerSideEmit, ["/", [1]]), (ServerSideEmit, ["/", "x"]),
    (ServerSideEmit, [1, ["x"]]),
    (SocketRelease, ["/", 1]), (SocketRelease, [None, "s"]), (SocketRelease, ["/"]),
]


@pytest.mark.parametrize(("cls", "wire"), BAD, ids=lambda v: repr(v)[:40])
def test_bad_input_raises_the_one_error(cls: type[ClusterMessage | SocketRelease],
                                        wire: Any) -> None:
    with pytest.raises(BadMessage, match=f"malformed {cls.KIND}"):
        cls.from_wire(wire)


values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=8)
    | st.binary(max_size=8) | st.sampled_from(["/", '2["x"]', '51-["x"]', "default"]),
    lambda inner: st.lists(inner, max_size=5), max_leaves=16)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([*MESSAGES, SocketRelease]), st.lists(values, min_size=2, max_size=8))
def test_any_value_decodes_or_raises_bad_message(cls: type[ClusterMessage],
                                                 wire: list[Any]) -> None:
    try:
        message = cls.from_wire(wire)
    except BadMessage:
        return
    assert isinstance(message, cls)


def test_options_received_are_kept_and_the_store_of_them_is_bounded() -> None:
    # the receiving side keeps the options of recent broadcasts: the same wire fields give
    # the same options, different ones their own, however many there were
    first = opts_from_wire(["a"], ["b"], False, True, "broadcast")
    assert opts_from_wire(["a"], ["b"], False, True, "broadcast") is first
    for i in range(600):
        opts = opts_from_wire([f"room{i}"], [], i % 2 == 0, True, "broadcast")
        assert opts == BroadcastOptions(frozenset({f"room{i}"}), volatile=i % 2 == 0)
    assert opts_from_wire(["a"], ["b"], False, True, "broadcast") == first
    # True == 1, but a number is no flag, cached or not
    with pytest.raises(BadMessage):
        opts_from_wire(["a"], ["b"], 0, True, "broadcast")
    with pytest.raises(BadMessage):
        opts_from_wire([["unhashable"]], [], False, True, "broadcast")
