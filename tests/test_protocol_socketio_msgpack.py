"""Tests for sio_core.protocol.socketio_msgpack (and the parser table, protocol/parsers.py):
wire fixtures written as notepack.io (the official msgpack parser's library) writes them, then
hypothesis properties."""

from __future__ import annotations

import contextlib
import datetime
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sio_core.config import PARSER_NAMES, Config
from sio_core.exceptions import SocketIOProtocolError
from sio_core.protocol.parsers import PARSERS
from sio_core.protocol.socketio import MAX_ACK_ID, Packet, PacketType
from sio_core.protocol.socketio_msgpack import Decoder, encode

CONNECT = PacketType.CONNECT
EVENT = PacketType.EVENT
ACK = PacketType.ACK


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


def test_the_config_names_every_parser() -> None:
    assert tuple(PARSERS) == PARSER_NAMES
    assert Config(parser="msgpack").parser == "msgpack"
    with pytest.raises(ValueError, match="parser: unknown parser 'json'"):
        Config(parser="json")


ENCODED = [
    # what the server writes: type, data (left out when None), nsp, id (left out when None)
    (Packet(CONNECT, "/", {"sid": "abc"}), {"type": 0, "data": {"sid": "abc"}, "nsp": "/"}),
    (Packet(PacketType.DISCONNECT, "/admin"), {"type": 1, "nsp": "/admin"}),
    (Packet(EVENT, "/", ["hi", b"\x00\xff", {"n": 1.5}]),
     {"type": 2, "data": ["hi", b"\x00\xff", {"n": 1.5}], "nsp": "/"}),
    (Packet(PacketType.BINARY_EVENT, "/", ["b", b"x"], 7),
     {"type": 2, "data": ["b", b"x"], "nsp": "/", "id": 7}),  # no binary types in msgpack
    (Packet(PacketType.BINARY_ACK, "/a", [b"x"], 3), {"type": 3, "data": [b"x"], "nsp": "/a",
                                                       "id": 3}),
    (Packet(PacketType.CONNECT_ERROR, "/a", {"message": "no"}),
     {"type": 4, "data": {"message": "no"}, "nsp": "/a"}),
]


@pytest.mark.parametrize(("packet", "wire"), ENCODED)
def test_encode(packet: Packet, wire: dict[str, Any]) -> None:
    [encoded] = encode(packet)
    assert isinstance(encoded, bytes)
    assert msgpack.unpackb(encoded) == wire


def test_encode_writes_bytearray_memoryview_and_datetime() -> None:
    when = datetime.datetime(2024, 1, 2, tzinfo=datetime.UTC)
    [encoded] = encode(Packet(EVENT, "/", ["e", bytearray(b"a"), memoryview(b"b"), when]))
    assert isinstance(encoded, bytes)
    assert Decoder().feed_binary(encoded) == Packet(EVENT, "/", ["e", b"a", b"b", when])


@pytest.mark.parametrize(("packet", "error"), [
    (Packet(EVENT, "admin", ["e"]), ValueError),
    (Packet(EVENT, "/a,b", ["e"]), ValueError),
    (Packet(EVENT, "/", ["e"], -1), ValueError),
    (Packet(EVENT, "/", ["e"], MAX_ACK_ID + 1), ValueError),
    (Packet(EVENT, "/", ["e", 2**64]), ValueError),
    (Packet(EVENT, "/", ["e", {1, 2}]), TypeError),
])
def test_encode_refuses_what_it_cannot_write(packet: Packet, error: type[Exception]) -> None:
    with pytest.raises(error):
        encode(packet)
    # the shared packer is left clean by the failure
    assert Decoder().feed_binary(encode(Packet(EVENT, "/", ["ok"]))[0]) == \
        Packet(EVENT, "/", ["ok"])


# notepack.io's undefined: fixext 1, type 0, one zero byte
UNDEFINED = b"\xd4\x00\x00"

DECODED = [
    (pack({"type": 0, "nsp": "/"}), Packet(CONNECT, "/")),
    # python-socketio writes "data": nil for a CONNECT without auth
    (pack({"type": 0, "data": None, "nsp": "/"}), Packet(CONNECT, "/")),
    (pack({"type": 0, "data": {"token": "t"}, "nsp": "/admin"}),
     Packet(CONNECT, "/admin", {"token": "t"})),
    (pack({"type": 1, "nsp": "/admin"}), Packet(PacketType.DISCONNECT, "/admin")),
    # the official client's packet: its own "options" key is ignored
    (pack({"type": 2, "data": ["echo", b"\x01"], "options": {"compress": True}, "nsp": "/",
           "id": 4}), Packet(EVENT, "/", ["echo", b"\x01"], 4)),
    (pack({"type": 3, "data": [], "nsp": "/", "id": 0}), Packet(ACK, "/", [], 0)),
    (b"\x83\xa4type\x02\xa4data\x92\xa1e" + UNDEFINED + b"\xa3nsp\xa1/",
     Packet(EVENT, "/", ["e", None])),
    (pack({"type": 2, "data": ["e", msgpack.ExtType(5, b"ab")], "nsp": "/"}),
     Packet(EVENT, "/", ["e", [5, b"ab"]])),
]


@pytest.mark.parametrize(("wire", "packet"), DECODED)
def test_decode(wire: bytes, packet: Packet) -> None:
    assert Decoder().feed_binary(wire) == packet


BAD = [
    b"",
    b"\xc1",  # never used
    pack({"type": 2, "data": ["e"], "nsp": "/"}) + b"\x00",  # extra data
    pack(["not", "a", "map"]),
    pack({"type": 5, "data": ["e", b"x"], "nsp": "/"}),  # no binary types in msgpack
    pack({"type": 2.0, "data": ["e"], "nsp": "/"}),
    pack({"type": True, "data": ["e"], "nsp": "/"}),
    pack({"data": ["e"], "nsp": "/"}),
    pack({"type": 2, "data": ["e"]}),
    pack({"type": 2, "data": ["e"], "nsp": "admin"}),
    pack({"type": 2, "data": ["e"], "nsp": "/" + "a" * 300}),
    pack({"type": 2, "data": [], "nsp": "/"}),
    pack({"type": 2, "data": [1], "nsp": "/"}),
    pack({"type": 2, "data": ["connect"], "nsp": "/"}),
    pack({"type": 2, "data": "e", "nsp": "/"}),
    pack({"type": 3, "data": ["x"], "nsp": "/"}),  # an ACK without an id
    pack({"type": 2, "data": ["e"], "nsp": "/", "id": -1}),
    pack({"type": 2, "data": ["e"], "nsp": "/", "id": MAX_ACK_ID + 1}),
    pack({"type": 2, "data": ["e"], "nsp": "/", "id": "1"}),
    pack({"type": 0, "data": {}, "nsp": "/", "id": 1}),
    pack({"type": 0, "data": ["x"], "nsp": "/"}),
    pack({"type": 1, "data": {}, "nsp": "/"}),
    pack({"type": 4, "data": 3, "nsp": "/"}),
    pack({"type": 2, "data": ["e", {1: "int key"}], "nsp": "/"}),
    pack({"type": 2, "data": ["e", [[[[[]]]]]], "nsp": "/"}),  # deeper than max_depth=4
    b"\x81\xa4type\xa2\xff\xfe",  # invalid UTF-8
]


@pytest.mark.parametrize("wire", BAD)
def test_decode_refuses(wire: bytes) -> None:
    with pytest.raises(SocketIOProtocolError):
        Decoder(max_depth=4).feed_binary(wire)


def test_text_is_refused() -> None:
    decoder = Decoder()
    assert decoder.awaiting == 0
    with pytest.raises(SocketIOProtocolError):
        decoder.feed_text('2["e"]')


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text() | st.binary()
    | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(name=st.text().filter(lambda n: n not in {"connect", "disconnect"}),
       args=st.lists(json_values, max_size=4),
       ack_id=st.none() | st.integers(0, MAX_ACK_ID),
       namespace=st.sampled_from(["/", "/admin", "/dyn-1"]))
def test_round_trip(name: str, args: list[Any], ack_id: int | None, namespace: str) -> None:
    from sio_core.protocol.socketio import RESERVED_EVENTS

    if name in RESERVED_EVENTS:
        return
    packet = Packet(EVENT, namespace, [name, *args], ack_id)
    [wire] = encode(packet)
    assert isinstance(wire, bytes)
    assert Decoder(max_depth=None).feed_binary(wire) == packet


@given(st.binary(max_size=200))
def test_decoding_fails_closed(data: bytes) -> None:
    with contextlib.suppress(SocketIOProtocolError):
        Decoder().feed_binary(data)
