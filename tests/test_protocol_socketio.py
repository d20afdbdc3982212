"""Tests for sio_core.protocol.socketio: wire fixture tables, then hypothesis properties."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sio_core.exceptions import SocketIOProtocolError
from sio_core.protocol.socketio import _JSON as _JSON_DECODER
from sio_core.protocol.socketio import (
    MAX_ACK_ID,
    RESERVED_EVENTS,
    Decoder,
    Packet,
    PacketType,
    _encoder,
    _parse_json,
    _refuse,
    encode,
)

CONNECT = PacketType.CONNECT
DISCONNECT = PacketType.DISCONNECT
EVENT = PacketType.EVENT
ACK = PacketType.ACK
CONNECT_ERROR = PacketType.CONNECT_ERROR
BINARY_EVENT = PacketType.BINARY_EVENT
BINARY_ACK = PacketType.BINARY_ACK


def ph(num: int) -> dict[str, Any]:
    return {"_placeholder": True, "num": num}


def decode_all(text: str, attachments: Sequence[bytes] = ()) -> Packet:
    """Feed a header and its attachments; the packet must complete exactly at the last one."""
    decoder = Decoder()
    result = decoder.feed_text(text)
    for i, buffer in enumerate(attachments):
        assert result is None
        assert decoder.awaiting == len(attachments) - i
        result = decoder.feed_binary(buffer)
    assert decoder.awaiting == 0
    assert result is not None
    return result


# ----------------------------------------------------------------------------------- text packets

# (wire, packet): decoding the wire gives the packet.
DECODE_CASES: list[tuple[str, Packet]] = [
    ("0", Packet(CONNECT)),
    ("0/admin,", Packet(CONNECT, "/admin")),
    ("0/admin", Packet(CONNECT, "/admin")),
    ("0/,", Packet(CONNECT, "/")),
    ('0{"token":"123"}', Packet(CONNECT, data={"token": "123"})),
    ('0/admin,{"token":"abc"}', Packet(CONNECT, "/admin", {"token": "abc"})),
    ("0{}", Packet(CONNECT, data={})),
    ('0{"sid":"x1"}', Packet(CONNECT, data={"sid": "x1"})),
    ("1", Packet(DISCONNECT)),
    ("1/admin,", Packet(DISCONNECT, "/admin")),
    ("1/admin", Packet(DISCONNECT, "/admin")),
    ('2["hello"]', Packet(EVENT, data=["hello"])),
    (
        '2["hello",1,"two",{"three":[4]},null,true]',
        Packet(EVENT, data=["hello", 1, "two", {"three": [4]}, None, True]),
    ),
    ('2[""]', Packet(EVENT, data=[""])),
    ('21["x"]', Packet(EVENT, data=["x"], id=1)),
    ('20["x"]', Packet(EVENT, data=["x"], id=0)),
    ('2456["event",1]', Packet(EVENT, data=["event", 1], id=456)),
    ('2/admin,["event"]', Packet(EVENT, "/admin", ["event"])),
    ('2/admin,12["x"]', Packet(EVENT, "/admin", ["x"], 12)),
    ('2/admin,456["event",1]', Packet(EVENT, "/admin", ["event", 1], 456)),
    ('2/a/b-c_d.e~f?g=h,["x"]', Packet(EVENT, "/a/b-c_d.e~f?g=h", ["x"])),
    ('2["é中文😀"]', Packet(EVENT, data=["é中文😀"])),
    ('2["\\u00e9\\ud83d\\ude00"]', Packet(EVENT, data=["é😀"])),
    ('2["x",1.5,-2,1e3]', Packet(EVENT, data=["x", 1.5, -2, 1000.0])),
    # JSON whitespace around the payload is what JSON.parse accepts too.
    ('2 ["x"] ', Packet(EVENT, data=["x"])),
    # Placeholders in a text packet are plain data, as in the reference parser.
    ('2["x",{"_placeholder":true,"num":0}]', Packet(EVENT, data=["x", ph(0)])),
    ("3456[]", Packet(ACK, data=[], id=456)),
    ('31["ok",{"a":1}]', Packet(ACK, data=["ok", {"a": 1}], id=1)),
    ("3/admin,7[]", Packet(ACK, "/admin", [], 7)),
    (f"3{MAX_ACK_ID}[]", Packet(ACK, data=[], id=MAX_ACK_ID)),
    ("30007[]", Packet(ACK, data=[], id=7)),
    (
        '4{"message":"Invalid namespace"}',
        Packet(CONNECT_ERROR, data={"message": "Invalid namespace"}),
    ),
    (
        '4/admin,{"message":"Invalid namespace"}',
        Packet(CONNECT_ERROR, "/admin", {"message": "Invalid namespace"}),
    ),
    (
        '4{"message":"no","data":{"code":7}}',
        Packet(CONNECT_ERROR, data={"message": "no", "data": {"code": 7}}),
    ),
    ('4"Not authorized"', Packet(CONNECT_ERROR, data="Not authorized")),
    # Names close to reserved ones are ordinary events.
    ('2["Connect"]', Packet(EVENT, data=["Connect"])),
    ('2["disconnected"]', Packet(EVENT, data=["disconnected"])),
]


@pytest.mark.parametrize(("wire", "expected"), DECODE_CASES)
def test_decode(wire: str, expected: Packet) -> None:
    decoder = Decoder()
    assert decoder.feed_text(wire) == expected
    assert decoder.awaiting == 0


# (packet, wire): encoding the packet gives exactly the wire.
ENCODE_CASES: list[tuple[Packet, list[str | bytes]]] = [
    (Packet(CONNECT), ["0"]),
    (Packet(CONNECT, "/admin"), ["0/admin,"]),
    (Packet(CONNECT, data={"sid": "abc"}), ['0{"sid":"abc"}']),
    (Packet(CONNECT, "/admin", {"sid": "abc"}), ['0/admin,{"sid":"abc"}']),
    (Packet(DISCONNECT), ["1"]),
    (Packet(DISCONNECT, "/admin"), ["1/admin,"]),
    (Packet(EVENT, data=["hello", 1, None, True, 1.5]), ['2["hello",1,null,true,1.5]']),
    (Packet(EVENT, data=["x", {"a": [1, 2], "b": {}}]), ['2["x",{"a":[1,2],"b":{}}]']),
    (Packet(EVENT, data=["x"], id=12), ['212["x"]']),
    (Packet(EVENT, "/admin", ["event", 1], 456), ['2/admin,456["event",1]']),
    (Packet(EVENT, data=["é中文😀", '"q"\\']), ['2["é中文😀","\\"q\\"\\\\"]']),
    (Packet(EVENT, data=("x", (1, 2))), ['2["x",[1,2]]']),
    (Packet(ACK, data=[], id=456), ["3456[]"]),
    (Packet(ACK, "/admin", ["ok"], 0), ['3/admin,0["ok"]']),
    (
        Packet(CONNECT_ERROR, "/x", {"message": "Invalid namespace"}),
        ['4/x,{"message":"Invalid namespace"}'],
    ),
    (Packet(CONNECT_ERROR, data="nope"), ['4"nope"']),
    # BINARY_* without bytes is sent as plain text.
    (Packet(BINARY_EVENT, data=["x"]), ['2["x"]']),
    (Packet(BINARY_ACK, data=[], id=3), ["33[]"]),
    # Binary: placeholders depth first, the count prefix, then the buffers.
    (
        Packet(EVENT, data=["up", b"\x00\x01"]),
        ['51-["up",{"_placeholder":true,"num":0}]', b"\x00\x01"],
    ),
    (
        Packet(EVENT, "/admin", ["up", b"a", {"k": [bytearray(b"b"), {"z": memoryview(b"c")}]}], 9),
        [
            '53-/admin,9["up",{"_placeholder":true,"num":0},{"k":[{"_placeholder":true,"num":1},'
            '{"z":{"_placeholder":true,"num":2}}]}]',
            b"a",
            b"b",
            b"c",
        ],
    ),
    (
        Packet(EVENT, data=("t", (b"x", [b"y"]))),
        ['52-["t",[{"_placeholder":true,"num":0},[{"_placeholder":true,"num":1}]]]', b"x", b"y"],
    ),
    (Packet(ACK, data=[b""], id=4), ['61-4[{"_placeholder":true,"num":0}]', b""]),
    (
        Packet(BINARY_ACK, "/a", [{"f": b"1"}, b"2"], 5),
        ['62-/a,5[{"f":{"_placeholder":true,"num":0}},{"_placeholder":true,"num":1}]', b"1", b"2"],
    ),
]


@pytest.mark.parametrize(("packet", "wire"), ENCODE_CASES)
def test_encode(packet: Packet, wire: list[str | bytes]) -> None:
    encoded = encode(packet)
    assert encoded == wire
    assert type(encoded[0]) is str
    assert all(type(part) is bytes for part in encoded[1:])


@pytest.mark.parametrize(("packet", "wire"), ENCODE_CASES)
def test_encode_then_decode(packet: Packet, wire: list[str | bytes]) -> None:
    header, *buffers = encode(packet)
    assert isinstance(header, str)
    assert all(isinstance(b, bytes) for b in buffers)
    decoded = decode_all(header, [b for b in buffers if isinstance(b, bytes)])
    assert decoded == normalized(packet)


@pytest.mark.parametrize(("wire", "expected"), DECODE_CASES)
def test_decode_then_encode(wire: str, expected: Packet) -> None:
    # Decoding then encoding gives the canonical form, which decodes to the same packet.
    decoded = decode_all(wire)
    header = encode(decoded)[0]
    assert isinstance(header, str)
    assert decode_all(header) == normalized(decoded)


# --------------------------------------------------------------------------------- binary packets

# (header, attachments, packet)
BINARY_CASES: list[tuple[str, list[bytes], Packet]] = [
    (
        '51-["upload",{"_placeholder":true,"num":0}]',
        [b"\x00\xff"],
        Packet(BINARY_EVENT, data=["upload", b"\x00\xff"]),
    ),
    (
        '52-/admin,7["e",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
        [b"first", b"second"],
        Packet(BINARY_EVENT, "/admin", ["e", b"first", b"second"], 7),
    ),
    # Placeholders in any order, nested in objects and arrays.
    (
        '53-["e",{"a":[{"_placeholder":true,"num":2},{"b":{"_placeholder":true,"num":0}}]},'
        '{"_placeholder":true,"num":1}]',
        [b"zero", b"one", b"two"],
        Packet(BINARY_EVENT, data=["e", {"a": [b"two", {"b": b"zero"}]}, b"one"]),
    ),
    ('61-12[{"_placeholder":true,"num":0}]', [b""], Packet(BINARY_ACK, data=[b""], id=12)),
    (
        '62-/x,3[[{"_placeholder":true,"num":1}],{"k":{"_placeholder":true,"num":0}}]',
        [b"k", b"l"],
        Packet(BINARY_ACK, "/x", [[b"l"], {"k": b"k"}], 3),
    ),
    # The reference parser ignores a placeholder's extra keys.
    (
        '52-["e",{"_placeholder":true,"num":1,"extra":0},{"_placeholder":true,"num":0}]',
        [b"zero", b"one"],
        Packet(BINARY_EVENT, data=["e", b"one", b"zero"]),
    ),
    # "_placeholder" must be exactly true to count.
    (
        '51-["e",{"_placeholder":1,"num":0},{"_placeholder":true,"num":0}]',
        [b"b"],
        Packet(BINARY_EVENT, data=["e", {"_placeholder": 1, "num": 0}, b"b"]),
    ),
]


@pytest.mark.parametrize(("header", "attachments", "expected"), BINARY_CASES)
def test_decode_binary(header: str, attachments: list[bytes], expected: Packet) -> None:
    assert decode_all(header, attachments) == expected


def test_binary_attachments_may_be_bytes_like() -> None:
    decoder = Decoder()
    header = '52-["e",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]'
    assert decoder.feed_text(header) is None
    assert decoder.feed_binary(bytearray(b"a")) is None  # type: ignore[arg-type]
    packet = decoder.feed_binary(memoryview(b"b"))  # type: ignore[arg-type]
    assert packet == Packet(BINARY_EVENT, data=["e", b"a", b"b"])
    assert packet is not None
    assert all(type(value) is bytes for value in packet.data[1:])


def test_decoder_is_reusable_across_packets() -> None:
    decoder = Decoder()
    assert decoder.feed_text('51-["a",{"_placeholder":true,"num":0}]') is None
    assert decoder.feed_binary(b"1") == Packet(BINARY_EVENT, data=["a", b"1"])
    assert decoder.feed_text('2["b"]') == Packet(EVENT, data=["b"])
    assert decoder.feed_text('61-5[{"_placeholder":true,"num":0}]') is None
    assert decoder.awaiting == 1
    assert decoder.feed_binary(b"2") == Packet(BINARY_ACK, data=[b"2"], id=5)
    assert decoder.awaiting == 0


def test_text_while_awaiting_attachments_is_an_error() -> None:
    decoder = Decoder()
    assert decoder.feed_text(binary_header(2)) is None
    assert decoder.feed_binary(b"a") is None
    with pytest.raises(SocketIOProtocolError):
        decoder.feed_text('2["e"]')
    # The half-received packet is dropped.
    assert decoder.awaiting == 0
    with pytest.raises(SocketIOProtocolError):
        decoder.feed_binary(b"b")


def test_binary_with_nothing_awaited_is_an_error() -> None:
    with pytest.raises(SocketIOProtocolError):
        Decoder().feed_binary(b"x")
    decoder = Decoder()
    assert decoder.feed_text('51-["e",{"_placeholder":true,"num":0}]') is None
    assert decoder.feed_binary(b"x") is not None
    with pytest.raises(SocketIOProtocolError):
        decoder.feed_binary(b"x")


def test_feed_binary_refuses_non_bytes() -> None:
    decoder = Decoder()
    decoder.feed_text('51-["e",{"_placeholder":true,"num":0}]')
    with pytest.raises(TypeError):
        decoder.feed_binary(3)  # type: ignore[arg-type]


def binary_header(count: int) -> str:
    """A BINARY_EVENT header with ``count`` attachments, each named once."""
    placeholders = "".join(f',{{"_placeholder":true,"num":{n}}}' for n in range(count))
    return f'5{count}-["e"{placeholders}]'


def test_attachment_limit() -> None:
    assert Decoder(max_attachments=3).feed_text(binary_header(3)) is None
    with pytest.raises(SocketIOProtocolError):
        Decoder(max_attachments=3).feed_text(binary_header(4))
    with pytest.raises(SocketIOProtocolError):
        Decoder().feed_text(binary_header(11))
    assert Decoder(max_attachments=None).feed_text(binary_header(100_000)) is None
    # The digits are bounded even without a limit.
    with pytest.raises(SocketIOProtocolError):
        Decoder(max_attachments=None).feed_text('5' + "9" * 5000 + '-["e"]')


def nested(depth: int, inner: str = "1") -> str:
    """JSON arrays and objects alternating, ``depth`` levels around ``inner``."""
    opening = "".join("[" if level % 2 else '{"k":' for level in range(depth))
    closing = "".join("]" if level % 2 else "}" for level in reversed(range(depth)))
    return opening + inner + closing


def test_json_depth_limit() -> None:
    # The payload array is level 1: the event's argument adds 99 more.
    wire = '2["e",' + nested(99) + "]"
    packet = Decoder().feed_text(wire)
    assert packet is not None
    assert packet.data[1] == json.loads(nested(99))
    with pytest.raises(SocketIOProtocolError):
        Decoder().feed_text('2["e",' + nested(100) + "]")
    assert Decoder(max_depth=5).feed_text('2["e",' + nested(4) + "]") is not None
    with pytest.raises(SocketIOProtocolError):
        Decoder(max_depth=5).feed_text('2["e",' + nested(5) + "]")
    assert Decoder(max_depth=None).feed_text('2["e",' + nested(500) + "]") is not None
    # Brackets in strings do not count: many, but no nesting.
    text = '2["e","' + "[{" * 500 + '",' + nested(3) + "]"
    assert Decoder(max_depth=5).feed_text(text) is not None
    # A wide payload with many containers, each shallow, is fine.
    wide = ",".join(["{}", "[]"] * 500)
    assert Decoder(max_depth=3).feed_text(f'2["e",[{wide}]]') is not None
    with pytest.raises(SocketIOProtocolError):
        Decoder(max_depth=3).feed_text(f'2["e",[{wide},[[]]]]')


def test_namespace_limit() -> None:
    ok, too_long = "/" + "n" * 9, "/" + "n" * 10
    for suffix in (",", ""):
        assert Decoder(max_namespace_length=10).feed_text("0" + ok + suffix) == Packet(CONNECT, ok)
        with pytest.raises(SocketIOProtocolError):
            Decoder(max_namespace_length=10).feed_text("0" + too_long + suffix)
    long = "/" + "n" * 10_000
    assert Decoder(max_namespace_length=None).feed_text("0" + long + ",") == Packet(CONNECT, long)


# ------------------------------------------------------------------------------ malformed input

MALFORMED: list[str] = [
    "",
    "7",
    "9",
    "a",
    "-1",
    "/",
    " 0",
    '٢["x"]',  # a non-ASCII digit
    # CONNECT: an object or nothing.
    "0[]",
    '0"x"',
    "0null",
    "01",
    "0/admin,1",
    "0/admin,{",
    "0{}x",
    "0{}{}",
    "0 ",
    # DISCONNECT: no payload.
    "1{}",
    "1/admin,{}",
    "1[]",
    "12",
    # EVENT: a non-empty array starting with a string.
    "2",
    "2[]",
    "2{}",
    "2/admin,",
    "2/admin",
    "21",
    "2/admin,1",
    '2"x"',
    "2[1]",
    "2[null]",
    # Reserved event names: a client must not fire the server's own handlers.
    '2["connect"]',
    '2["connect_error",{}]',
    '2["disconnect"]',
    '21["disconnecting"]',
    '2/admin,["newListener"]',
    '2["removeListener"]',
    '51-["disconnect",{"_placeholder":true,"num":0}]',
    '2[["x"]]',
    "42{}",
    '2abc["x"]',
    '2/admin["x"]',  # no comma: '/admin["x"]' is taken as the namespace, then no payload
    '2["x"',
    '2["x"]]',
    '2["x"]x',
    '2["x"][]',
    "2['x']",
    "2[x]",
    '2["x",NaN]',
    '2["x",Infinity]',
    '2["x",-Infinity]',
    '2["x",1e400]',
    '2["x",]',
    '2["x"]\x00',
    '2,["x"]',
    '21-["x"]',
    '2 1["x"]',
    # ACK: an array with an ack id.
    "3[]",
    "3/admin,[]",
    "31",
    "31{}",
    '31"x"',
    "31null",
    # Ack ids: at most MAX_ACK_ID.
    f"3{MAX_ACK_ID + 1}[]",
    "3" + "9" * 17 + "[]",
    "3" + "0" * 17 + "1[]",
    "3" + "9" * 5000 + "[]",
    # CONNECT_ERROR: an object or a string.
    "4",
    "4abc",
    "4[]",
    "41",
    "4null",
    "4/admin,",
    '41{"message":"x"}',
    # Binary: a count then "-", and the shapes of EVENT and ACK.
    "5",
    # A binary packet has at least one attachment (the reference parser agrees).
    '50-["x"]',
    "60-1[]",
    '5["x"]',
    '5-["x"]',
    '5a-["x"]',
    '5 1-["x"]',
    '5+1-["x"]',
    '5٢-["x"]',
    '51["x"]',
    "51-",
    "51-[]",
    "51-{}",
    '51-[{"_placeholder":true,"num":0}]',  # the event name cannot be binary
    "6",
    "61-[]",
    '61-{"_placeholder":true,"num":0}',
    "61-1{}",
    # Placeholders must name an attachment that exists.
    '51-["e",{"_placeholder":true,"num":1}]',
    '51-["e",{"_placeholder":true,"num":-1}]',
    '51-["e",{"_placeholder":true,"num":"0"}]',
    '51-["e",{"_placeholder":true,"num":0.0}]',
    '51-["e",{"_placeholder":true,"num":true}]',
    '51-["e",{"_placeholder":true}]',
    '50-["e",{"_placeholder":true,"num":0}]',
    '62-1[[{"x":{"_placeholder":true,"num":2}}]]',
    # Each attachment is named by exactly one placeholder (stricter than the reference parser,
    # which allows repeats and unused attachments): a decoded packet is no larger than what
    # was received.
    '51-["e",{"_placeholder":true,"num":0},{"_placeholder":true,"num":0}]',
    '52-["e",{"a":{"_placeholder":true,"num":1}},[{"_placeholder":true,"num":1}]]',
    '52-["e",{"_placeholder":true,"num":1}]',
    '51-["e"]',
    '61-3[' + ",".join(['{"_placeholder":true,"num":0}'] * 33_000) + "]",
    # Nesting deeper than max_depth (100 by default; the payload is level 1).
    '2["x",' + "[" * 100 + "]" * 100 + "]",
    '2["x",' + '{"a":' * 100 + "1" + "}" * 100 + "]",
    '0{"a":' + "[" * 100 + "]" * 100 + "}",
    '51-["x",' + "[" * 99 + '{"_placeholder":true,"num":0}' + "]" * 99 + "]",
    # Numbers Python reads but cannot hold or JSON.parse would not produce.
    '2["x",' + "1" * 5000 + "]",
    # Nesting deep enough to exhaust the recursion limit.
    "2[" * 100_000,
    '2["x",' + "[" * 100_000 + "]" * 100_000 + "]",
    '51-["x",' + '{"a":' * 100_000 + "1" + "}" * 100_000 + "]",
]


@pytest.mark.parametrize("wire", MALFORMED)
def test_malformed(wire: str) -> None:
    decoder = Decoder()
    with pytest.raises(SocketIOProtocolError):
        decoder.feed_text(wire)
    assert decoder.awaiting == 0


def test_error_messages_do_not_quote_the_input() -> None:
    secret = "s3cr3t-token"
    with pytest.raises(SocketIOProtocolError) as info:
        Decoder().feed_text('0{"token":"' + secret + '"')
    assert secret not in str(info.value)


# ------------------------------------------------------------------------------------- encoding


def test_encode_json_is_compact_and_not_ascii_escaped() -> None:
    header = encode(Packet(EVENT, data=["msg", {"text": "héllo wörld ✓", "n": [1, 2]}]))[0]
    assert header == '2["msg",{"text":"héllo wörld ✓","n":[1,2]}]'


def test_encode_escapes_lone_surrogates() -> None:
    # A lone surrogate (which "\\ud800" in a client's JSON decodes to) cannot be UTF-8 encoded.
    decoded = decode_all('2["x","\\ud800é"]')
    header = encode(decoded)[0]
    assert isinstance(header, str)
    header.encode("utf-8")
    assert json.loads(header[1:]) == ["x", "\ud800é"]
    assert decode_all(header) == decoded


@pytest.mark.parametrize(
    "packet",
    [
        Packet(EVENT, "admin", ["x"]),
        Packet(EVENT, "", ["x"]),
        Packet(EVENT, "/a,b", ["x"]),
        Packet(EVENT, data=["x"], id=-1),
        Packet(EVENT, data=["x"], id=MAX_ACK_ID + 1),
        Packet(EVENT, data=["x"], id=True),
        Packet(EVENT, data=["x", float("nan")]),
        Packet(EVENT, data=["x", float("inf")]),
    ],
)
def test_encode_refuses_what_cannot_be_written(packet: Packet) -> None:
    with pytest.raises(ValueError):
        encode(packet)


@pytest.mark.parametrize(
    "packet",
    [
        Packet(EVENT, data=["x", {1, 2}]),
        Packet(EVENT, data=["x", object()]),
        Packet(CONNECT, data={"k": b"binary is for events and acks"}),
        Packet(CONNECT_ERROR, data={"message": "x", "data": b"y"}),
    ],
)
def test_encode_refuses_what_is_not_json(packet: Packet) -> None:
    with pytest.raises(TypeError):
        encode(packet)


def test_encode_refuses_circular_data_as_json_dumps_does() -> None:
    # the C encoder is called without its circular check: a cycle ends in RecursionError,
    # then the JSONEncoder raises the ValueError json.dumps would
    loop: list[Any] = ["x"]
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        encode(Packet(EVENT, data=["x", {"a": loop}]))


def test_encode_without_the_c_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """No C encoder (another Python), or one that writes otherwise than the JSONEncoder on
    the probe: the JSONEncoder's encode, the same output."""
    data = ["msg", {"text": "héllo", "n": [1, 2.5, None]}]
    expected = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    monkeypatch.setattr(json.encoder, "c_make_encoder", None)
    assert _encoder(_refuse)(data) == expected
    monkeypatch.setattr(json.encoder, "c_make_encoder",
                        lambda *args: lambda value, level: ("not", "json"))
    fallback = _encoder(_refuse)
    monkeypatch.undo()  # (the JSONEncoder makes its C encoder when it encodes)
    assert fallback(data) == expected


def test_reserved_events() -> None:
    expected = {
        "connect",
        "connect_error",
        "disconnect",
        "disconnecting",
        "newListener",
        "removeListener",
    }
    assert expected == RESERVED_EVENTS
    assert isinstance(RESERVED_EVENTS, frozenset)


def test_packet_defaults() -> None:
    assert Packet(EVENT) == Packet(EVENT, "/", None, None)
    assert [int(t) for t in PacketType] == list(range(7))


# ----------------------------------------------------------------------------------- properties

FAST = settings(
    max_examples=250,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _no_placeholder_key(d: dict[str, Any]) -> bool:
    # {"_placeholder":true,...} in application data is indistinguishable from a placeholder on
    # the wire, in the reference parser too.
    return "_placeholder" not in d


json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
json_with_bytes = st.recursive(
    st.one_of(json_leaf, st.binary(max_size=16)),
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=8), children, max_size=4).filter(_no_placeholder_key),
    ),
    max_leaves=12,
)
json_plain = st.recursive(
    json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
    ),
    max_leaves=12,
)
namespaces = st.one_of(
    st.just("/"),
    st.text(max_size=20).filter(lambda s: "," not in s).map(lambda s: "/" + s),
)
event_names = st.text(max_size=10).filter(lambda name: name not in RESERVED_EVENTS)
ack_ids = st.integers(min_value=0, max_value=MAX_ACK_ID)
args = st.lists(json_with_bytes, max_size=5)

packets = st.one_of(
    st.builds(
        Packet,
        st.just(CONNECT),
        namespaces,
        st.one_of(st.none(), st.dictionaries(st.text(max_size=8), json_plain, max_size=4)),
    ),
    st.builds(Packet, st.just(DISCONNECT), namespaces),
    st.builds(
        Packet,
        st.sampled_from([EVENT, BINARY_EVENT]),
        namespaces,
        st.tuples(event_names, args).map(lambda t: [t[0], *t[1]]),
        st.one_of(st.none(), ack_ids),
    ),
    st.builds(Packet, st.sampled_from([ACK, BINARY_ACK]), namespaces, args, ack_ids),
    st.builds(
        Packet,
        st.just(CONNECT_ERROR),
        namespaces,
        st.one_of(
            st.text(),
            st.fixed_dictionaries({"message": st.text()}, optional={"data": json_plain}),
        ),
    ),
)


def _has_bytes(value: Any) -> bool:
    if isinstance(value, bytes | bytearray | memoryview):
        return True
    if isinstance(value, list | tuple):
        return any(_has_bytes(v) for v in value)
    if isinstance(value, dict):
        return any(_has_bytes(v) for v in value.values())
    return False


def normalized(packet: Packet) -> Packet:
    """What decoding the encoded packet gives: the wire type, lists for tuples, bytes."""

    def norm(value: Any) -> Any:
        if isinstance(value, bytearray | memoryview):
            return bytes(value)
        if isinstance(value, list | tuple):
            return [norm(v) for v in value]
        if isinstance(value, dict):
            return {k: norm(v) for k, v in value.items()}
        return value

    ptype = packet.type
    if ptype in (EVENT, BINARY_EVENT):
        ptype = BINARY_EVENT if _has_bytes(packet.data) else EVENT
    elif ptype in (ACK, BINARY_ACK):
        ptype = BINARY_ACK if _has_bytes(packet.data) else ACK
    return Packet(ptype, packet.namespace, norm(packet.data), packet.id)


@FAST
@given(data=json_plain)
def test_encode_writes_what_json_dumps_writes(data: Any) -> None:
    assert encode(Packet(EVENT, data=["e", data]))[0] == "2" + json.dumps(
        ["e", data], separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@FAST
@given(packet=packets)
def test_round_trip(packet: Packet) -> None:
    header, *buffers = encode(packet)
    assert isinstance(header, str)
    header.encode("utf-8")
    decoder = Decoder(max_attachments=None, max_namespace_length=None)
    result = decoder.feed_text(header)
    for buffer in buffers:
        assert type(buffer) is bytes
        assert result is None
        result = decoder.feed_binary(buffer)
    assert result == normalized(packet)
    assert encode(result) == [header, *buffers]


# Fragments that make random input reach deep into the parser, not just fail at the type digit.
# fmt: off
wire_fragments = st.sampled_from([
    "0", "1", "2", "3", "4", "5", "6", "7", "1-", "2-", "0-", "-", "/", "/admin", ",", "/,",
    "12", "9007199254740991", "9007199254740992", "[", "]", "{", "}", '"', '"x"', ":", "[]",
    "{}", '["e"', '["e",', '["connect"', '{"_placeholder":true,"num":0}',
    '{"_placeholder":true,"num":1}', '{"_placeholder":true,"num":-1}', "null", "true", "NaN",
    "1e999", " ", "\\", "\\ud800", "é",
])
# fmt: on
wire_text = st.one_of(
    st.text(),
    st.lists(st.one_of(wire_fragments, st.text(max_size=3)), max_size=12).map("".join),
)


def _mutate(frames: list[str | bytes], at: int, fragment: str, cut: bool) -> list[str | bytes]:
    header = frames[0]
    assert isinstance(header, str)
    at %= len(header) + 1
    header = header[:at] + fragment + header[at + cut :]
    return [header, *frames[1:]]


frame_groups = st.one_of(
    wire_text.map(lambda text: [text]),
    st.binary(max_size=8).map(lambda data: [data]),
    # Valid packets (header then attachments), whole or with the header damaged.
    packets.map(encode),
    st.builds(_mutate, packets.map(encode), st.integers(0, 60), wire_fragments, st.booleans()),
)
frames = st.lists(frame_groups, max_size=6).map(
    lambda groups: [frame for group in groups for frame in group]
)


@FAST
@given(frames=frames, max_attachments=st.sampled_from([0, 1, 3, 10, None]))
def test_decoder_fails_closed(frames: list[str | bytes], max_attachments: int | None) -> None:
    decoder = Decoder(max_attachments=max_attachments, max_namespace_length=8)
    for frame in frames:
        try:
            if isinstance(frame, str):
                result = decoder.feed_text(frame)
            else:
                result = decoder.feed_binary(frame)
        except SocketIOProtocolError:
            assert decoder.awaiting >= 0
            continue
        if result is None:
            assert decoder.awaiting > 0
        else:
            assert isinstance(result, Packet)
            assert decoder.awaiting == 0


def _read(parse: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", parse(*args)
    except (ValueError, RecursionError) as exc:
        return "error", type(exc)


@FAST
@given(head=st.text(max_size=3), payload=st.one_of(
    wire_text, packets.map(lambda packet: str(encode(packet)[0])[1:])))
def test_a_payload_is_read_in_place_as_json_loads_reads_it(head: str, payload: str) -> None:
    """The decoder reads the JSON where it is in the packet (no copy of it): the same value
    as ``json.loads`` of the payload alone, or the same refusal (trailing data, whitespace
    around it, bad JSON)."""
    assert _read(_parse_json, head + payload, len(head)) == _read(_JSON_DECODER.decode, payload)


@pytest.mark.parametrize("wire", ['2["x"]x', '2["x"]["y"]', '2["x"] ]', '21["x"]{}'])
def test_data_after_the_payload_is_refused(wire: str) -> None:
    with pytest.raises(SocketIOProtocolError):
        Decoder().feed_text(wire)
