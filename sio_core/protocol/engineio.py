"""Engine.IO v4 packet and payload codec.

A packet is one ASCII type digit and an optional payload. Over a WebSocket each frame
carries one packet; a binary frame is a ``message`` with raw bytes and no type digit.
In a long-polling body packets are joined with the record separator ``\\x1e`` and a
binary message is written ``b`` + base64 of its bytes.

Every decoder here fails closed: it returns packets or raises
:class:`~sio_core.exceptions.EngineIOProtocolError`, nothing else.
"""

from __future__ import annotations

import base64
import binascii
import enum
from dataclasses import dataclass, field

from ..exceptions import EngineIOProtocolError

SEPARATOR = "\x1e"


class PacketType(enum.IntEnum):
    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


_DIGITS = {str(t.value): t for t in PacketType}


@dataclass(slots=True)
class Packet:
    """One Engine.IO packet. A value: nothing assigns to its fields once it is made, but
    the transports to their caches (``ws_frame``, ``ws_deflated``).

    Why not ``frozen=True``, and why ``__init__`` is written out: the compiled build (mypyc)
    compiles the methods written in a dataclass, but leaves the ones ``dataclass`` generates
    as Python functions, and a frozen one sets each field through ``object.__setattr__``:
    ~1 us a packet, which was ~20% of the instructions of a compiled websocket echo (the
    same for the Socket.IO packet and the HTTP messages, which follow this). ``__eq__`` and
    ``__repr__`` are still generated (tests and logs use them)."""

    type: PacketType
    data: str | bytes = ""
    #: the packet's WebSocket frame, cached by the transport: a packet broadcast to many
    #: clients is framed once and the same bytes are written to each (server frames are
    #: unmasked). Not part of the packet's value.
    ws_frame: bytes | None = field(default=None, compare=False, repr=False)
    #: the same, compressed for a websocket with permessage-deflate (engine/websocket.py)
    ws_deflated: bytes | None = field(default=None, compare=False, repr=False)
    #: whether the packet may be compressed (the reference's ``options.compress``; the
    #: application's ``compress(False)``): never deflated on a websocket, and a polling
    #: answer whose packets all say False is not gzipped
    compress: bool = field(default=True, compare=False, repr=False)

    def __init__(self, type: PacketType, data: str | bytes = "",
                 ws_frame: bytes | None = None, ws_deflated: bytes | None = None,
                 compress: bool = True) -> None:
        # every field, in order (tests/test_build.py holds it to the dataclass's fields)
        self.type = type
        self.data = data
        self.ws_frame = ws_frame
        self.ws_deflated = ws_deflated
        self.compress = compress

    @property
    def binary(self) -> bool:
        return isinstance(self.data, bytes)


# Constant packets, shared rather than re-allocated on every heartbeat.
PING = Packet(PacketType.PING)
PONG = Packet(PacketType.PONG)
NOOP = Packet(PacketType.NOOP)
CLOSE = Packet(PacketType.CLOSE)
PROBE = "probe"


def message(data: str | bytes, compress: bool = True) -> Packet:
    return Packet(PacketType.MESSAGE, data, compress=compress)


def encode_packet(packet: Packet) -> str | bytes:
    """The WebSocket form: one frame's content."""
    if isinstance(packet.data, bytes):
        return packet.data
    return _TYPE_CHARS[packet.type] + packet.data


TYPE_CHARS = {t: str(t.value) for t in PacketType}
_TYPE_CHARS = TYPE_CHARS


#: what a binary frame's content may be (a tuple: ``bytes | bytearray | memoryview`` in an
#: isinstance would build the union on every call)
_BINARY_TYPES = (bytes, bytearray, memoryview)


def decode_packet(frame: str | bytes | bytearray | memoryview) -> Packet:
    """Decode one WebSocket frame's content."""
    if isinstance(frame, _BINARY_TYPES):
        return Packet(PacketType.MESSAGE, bytes(frame))
    if not frame:
        raise EngineIOProtocolError("empty packet")
    packet_type = _DIGITS.get(frame[0])
    if packet_type is None:
        raise EngineIOProtocolError("unknown packet type")
    return Packet(packet_type, frame[1:])


def encode_payload(packets: list[Packet]) -> str:
    """The long-polling form: packets joined by ``\\x1e``, binary as ``b`` + base64."""
    parts = []
    for packet in packets:
        if isinstance(packet.data, bytes):
            parts.append("b" + base64.b64encode(packet.data).decode("ascii"))
        else:
            parts.append(_TYPE_CHARS[packet.type] + packet.data)
    return SEPARATOR.join(parts)


def decode_payload(body: bytes | bytearray | str, *,
                   max_packets: int | None = None) -> list[Packet]:
    """Decode a long-polling POST body.

    ``max_packets`` caps how many packets one body may carry (None: no cap).
    """
    if isinstance(body, bytes | bytearray):
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            raise EngineIOProtocolError("payload is not UTF-8") from None
    else:
        text = body
    if not text:
        raise EngineIOProtocolError("empty payload")
    if max_packets is not None and text.count(SEPARATOR) >= max_packets:
        raise EngineIOProtocolError("too many packets in one payload")
    packets = []
    for part in text.split(SEPARATOR):
        if part[:1] == "b":
            try:
                data = base64.b64decode(part[1:], validate=True)
            except (binascii.Error, ValueError):
                raise EngineIOProtocolError("bad base64 in binary packet") from None
            packets.append(Packet(PacketType.MESSAGE, data))
        else:
            packets.append(decode_packet(part))
    return packets
