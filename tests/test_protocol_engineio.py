"""Tests for sio_core.protocol.engineio: wire fixture tables, then hypothesis properties."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sio_core.exceptions import EngineIOProtocolError
from sio_core.protocol.engineio import (
    CLOSE,
    NOOP,
    PING,
    PONG,
    PROBE,
    SEPARATOR,
    Packet,
    PacketType,
    decode_packet,
    decode_payload,
    encode_packet,
    encode_payload,
    message,
)

OPEN = PacketType.OPEN
MESSAGE = PacketType.MESSAGE
UPGRADE = PacketType.UPGRADE

HANDSHAKE = (
    '{"sid":"AAAAAAAAAAAAAAAA.w1","upgrades":["websocket"],'
    '"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}'
)

# ------------------------------------------------------------------------------ WebSocket form

# (frame, packet): one WebSocket frame's content and the packet it carries, both ways.
FRAME_CASES: list[tuple[str | bytes, Packet]] = [
    ("0" + HANDSHAKE, Packet(OPEN, HANDSHAKE)),
    ("1", CLOSE),
    ("2", PING),
    ("3", PONG),
    ("2probe", Packet(PacketType.PING, "probe")),
    ("3probe", Packet(PacketType.PONG, "probe")),
    ("4hello", Packet(MESSAGE, "hello")),
    ("4", Packet(MESSAGE, "")),
    ("44", Packet(MESSAGE, "4")),
    ('42["chat","hi"]', Packet(MESSAGE, '2["chat","hi"]')),
    ("4é中文😀", Packet(MESSAGE, "é中文😀")),
    ("4a\x1eb", Packet(MESSAGE, "a\x1eb")),  # no separator on a websocket: data as is
    ("5", Packet(UPGRADE)),
    ("6", NOOP),
    (b"\x01\x02", Packet(MESSAGE, b"\x01\x02")),
    (b"", Packet(MESSAGE, b"")),
    (b"4hello", Packet(MESSAGE, b"4hello")),  # a binary frame never has a type digit
    (b"\xff\xfe\x00", Packet(MESSAGE, b"\xff\xfe\x00")),
]


@pytest.mark.parametrize(("frame", "expected"), FRAME_CASES)
def test_decode_packet(frame: str | bytes, expected: Packet) -> None:
    packet = decode_packet(frame)
    assert packet == expected
    assert type(packet.data) is type(expected.data)


@pytest.mark.parametrize(("frame", "packet"), FRAME_CASES)
def test_encode_packet(frame: str | bytes, packet: Packet) -> None:
    encoded = encode_packet(packet)
    assert encoded == frame
    assert type(encoded) is type(frame)


@pytest.mark.parametrize("frame", [bytearray(b"\x01\x02"), memoryview(b"\x01\x02")])
def test_decode_packet_takes_bytes_like_frames(frame: bytearray | memoryview) -> None:
    packet = decode_packet(frame)
    assert packet == Packet(MESSAGE, b"\x01\x02")
    assert type(packet.data) is bytes


# (frame, why it is refused)
BAD_FRAMES: list[tuple[str, str]] = [
    ("", "empty"),
    ("7", "type digit out of range"),
    ("9", "type digit out of range"),
    ("9hello", "type digit out of range"),
    ("x", "not a digit"),
    (" 4hello", "leading space"),
    ("\x1e4", "separator first"),
    ("\u0664hello", "a non-ASCII digit (ARABIC-INDIC DIGIT FOUR)"),
    ("\uff14hello", "a fullwidth digit four"),
]


@pytest.mark.parametrize(("frame", "why"), BAD_FRAMES)
def test_decode_packet_refuses(frame: str, why: str) -> None:
    with pytest.raises(EngineIOProtocolError):
        decode_packet(frame)


def test_constants() -> None:
    assert [int(t) for t in PacketType] == list(range(7))
    assert (PING.type, PONG.type, NOOP.type, CLOSE.type) == (
        PacketType.PING,
        PacketType.PONG,
        PacketType.NOOP,
        PacketType.CLOSE,
    )
    assert PING.data == PONG.data == NOOP.data == CLOSE.data == ""
    assert PROBE == "probe"
    assert SEPARATOR == "\x1e"


def test_message_helper_and_binary_flag() -> None:
    assert message("hi") == Packet(MESSAGE, "hi")
    assert message(b"hi") == Packet(MESSAGE, b"hi")
    assert message(b"hi").binary
    assert not message("hi").binary
    assert not PING.binary


# --------------------------------------------------------------------------- long-polling form

# (body, packets): a long-polling body and the packets it carries, both ways.
PAYLOAD_CASES: list[tuple[str, list[Packet]]] = [
    ("4hello", [Packet(MESSAGE, "hello")]),
    ("4hello\x1e4world", [Packet(MESSAGE, "hello"), Packet(MESSAGE, "world")]),
    ("bAQID", [Packet(MESSAGE, b"\x01\x02\x03")]),
    ("b", [Packet(MESSAGE, b"")]),
    ("b/w==", [Packet(MESSAGE, b"\xff")]),
    ("b+/8=", [Packet(MESSAGE, b"\xfb\xff")]),
    ("2", [PING]),
    ("3", [PONG]),
    ("6", [NOOP]),
    ("1", [CLOSE]),
    ("0" + HANDSHAKE, [Packet(OPEN, HANDSHAKE)]),
    ("2\x1e4hi", [PING, Packet(MESSAGE, "hi")]),
    ("4\x1e4", [Packet(MESSAGE, ""), Packet(MESSAGE, "")]),
    (
        "4hello\x1ebAQID\x1e3\x1e4é中文😀\x1e6\x1e1",
        [
            Packet(MESSAGE, "hello"),
            Packet(MESSAGE, b"\x01\x02\x03"),
            PONG,
            Packet(MESSAGE, "é中文😀"),
            NOOP,
            CLOSE,
        ],
    ),
    # a text message whose data starts with "b" is still text: the "4" comes first
    ("4bAQID", [Packet(MESSAGE, "bAQID")]),
    (
        '40\x1e42["chat",{"a":1}]\x1e451-["up",{"_placeholder":true,"num":0}]\x1ebAQID',
        [
            Packet(MESSAGE, "0"),
            Packet(MESSAGE, '2["chat",{"a":1}]'),
            Packet(MESSAGE, '51-["up",{"_placeholder":true,"num":0}]'),
            Packet(MESSAGE, b"\x01\x02\x03"),
        ],
    ),
]


@pytest.mark.parametrize(("body", "expected"), PAYLOAD_CASES)
def test_decode_payload_str(body: str, expected: list[Packet]) -> None:
    packets = decode_payload(body)
    assert packets == expected
    assert [type(p.data) for p in packets] == [type(p.data) for p in expected]


@pytest.mark.parametrize(("body", "expected"), PAYLOAD_CASES)
def test_decode_payload_utf8_bytes(body: str, expected: list[Packet]) -> None:
    # a POST body arrives as bytes: UTF-8 text
    assert decode_payload(body.encode()) == expected
    assert decode_payload(bytearray(body.encode())) == expected


@pytest.mark.parametrize(("body", "packets"), PAYLOAD_CASES)
def test_encode_payload(body: str, packets: list[Packet]) -> None:
    assert encode_payload(packets) == body


# (body, max_packets): bodies that must be refused
BAD_PAYLOADS: list[tuple[str | bytes, int | None]] = [
    ("", None),
    (b"", None),
    ("9", None),
    ("7hello", None),
    ("x", None),
    ("4hello\x1e9", None),
    ("4hello\x1e", None),  # a trailing separator leaves an empty packet
    ("\x1e4hello", None),
    ("4a\x1e\x1e4b", None),
    ("\x1e", None),
    ("bAQI", None),  # base64 with a missing padding character
    ("bA", None),  # one base64 character cannot encode a byte
    ("bAQ==AQ==", None),  # data after the padding
    ("b!!!!", None),
    ("bAQ ID", None),
    ("bAQID\n", None),
    ("bé", None),  # non-ASCII in base64
    ("4ok\x1eb*", None),
    (b"4\xff", None),  # not UTF-8
    (b"\xc3", None),  # truncated UTF-8 sequence
    (b"4\xed\xa0\x80", None),  # an encoded surrogate is not valid UTF-8
    ("4a\x1e4b\x1e4c", 2),
    ("4a\x1e4b", 1),
    ("4a", 0),
]


@pytest.mark.parametrize(("body", "max_packets"), BAD_PAYLOADS)
def test_decode_payload_refuses(body: str | bytes, max_packets: int | None) -> None:
    with pytest.raises(EngineIOProtocolError):
        decode_payload(body, max_packets=max_packets)


@pytest.mark.parametrize(
    ("body", "max_packets"),
    [("4a", 1), ("4a\x1e4b", 2), ("4a\x1e4b\x1e4c", 3), ("4a\x1e4b\x1e4c", None)],
)
def test_max_packets_is_inclusive(body: str, max_packets: int | None) -> None:
    assert len(decode_payload(body, max_packets=max_packets)) == body.count(SEPARATOR) + 1


def test_error_messages_do_not_quote_the_input() -> None:
    # the text may end up in a log; it must never echo what the peer sent
    for body in ["9secret", "bsecret!", "4a\x1e9secret"]:
        with pytest.raises(EngineIOProtocolError) as info:
            decode_payload(body)
        assert "secret" not in str(info.value)


# ------------------------------------------------------------------------------------ properties

FAST = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Fragments that make random bodies reach past the type digit and into the base64 branch.
body_fragments = st.sampled_from(
    ["0", "1", "2", "3", "4", "5", "6", "7", "9", "b", "bAQID", "b/w==", "=", SEPARATOR, "probe"]
)
bodies = st.one_of(
    st.text(),
    st.lists(st.one_of(body_fragments, st.text(max_size=3)), max_size=12).map("".join),
)


@FAST
@given(frame=st.one_of(st.text(), st.binary(), bodies))
def test_decode_packet_fails_closed(frame: str | bytes) -> None:
    try:
        packet = decode_packet(frame)
    except EngineIOProtocolError:
        return
    assert isinstance(packet, Packet)
    assert isinstance(packet.type, PacketType)
    if isinstance(frame, bytes):
        assert packet == Packet(MESSAGE, frame)
    else:
        assert encode_packet(packet) == frame


@FAST
@given(
    body=st.one_of(st.text(), st.binary(), bodies, bodies.map(str.encode)),
    max_packets=st.sampled_from([None, 0, 1, 3]),
)
def test_decode_payload_fails_closed(body: str | bytes, max_packets: int | None) -> None:
    try:
        packets = decode_payload(body, max_packets=max_packets)
    except EngineIOProtocolError:
        return
    assert packets
    assert all(isinstance(p, Packet) and isinstance(p.type, PacketType) for p in packets)
    if max_packets is not None:
        assert len(packets) <= max_packets


# Text data for the polling form may not contain the separator: nothing escapes it there.
polling_text = st.text().filter(lambda s: SEPARATOR not in s)
text_packets = st.builds(Packet, st.sampled_from(list(PacketType)), polling_text)
binary_packets = st.builds(message, st.binary())
packet_lists = st.lists(st.one_of(text_packets, binary_packets), min_size=1, max_size=8)


@FAST
@given(packets=packet_lists)
def test_payload_round_trip(packets: list[Packet]) -> None:
    body = encode_payload(packets)
    assert decode_payload(body) == packets
    assert decode_payload(body.encode()) == packets
    assert decode_payload(body, max_packets=len(packets)) == packets


@FAST
@given(packet=st.one_of(st.builds(Packet, st.sampled_from(list(PacketType)), st.text()),
                        binary_packets))
def test_packet_round_trip(packet: Packet) -> None:
    assert decode_packet(encode_packet(packet)) == packet

