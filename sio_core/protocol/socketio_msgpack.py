"""Sans-I/O codec for Socket.IO v5 packets in MessagePack: the official client's
``socket.io-msgpack-parser`` and python-socketio's ``serializer="msgpack"``.

A packet is one binary Engine.IO message holding a MessagePack map::

    {"type": <0..4>, "nsp": "/admin", "data": [...], "id": 12}

``data`` and ``id`` are left out when the packet has none. MessagePack carries bytes itself,
so there are no attachments and no BINARY_EVENT / BINARY_ACK on the wire: an event with
bytes is an EVENT whose data holds them. The official client adds keys of its own
(``options``); unknown keys are ignored, as by the reference parser.

The reference parser (npm ``socket.io-msgpack-parser`` on ``notepack.io``) checks the type, the
namespace, the data's shape per type and the ack id; this one checks the same and, as the
default parser (:mod:`sio_core.protocol.socketio`) does, a little more: an EVENT names a
string event that is not reserved, an ACK has an ack id below 2**53, a namespace starts with
``/`` and is at most ``max_namespace_length`` long, data nests at most ``max_depth`` deep.
Where notepack and msgpack differ on extension types: notepack's ``undefined`` (fixext 1 of
type 0) decodes to ``None``, a timestamp (type -1, a JavaScript ``Date``) to an aware
``datetime`` and back, and any other extension to ``[type, bytes]`` as notepack does.

Decoding fails closed: any input either decodes or raises
:class:`~sio_core.exceptions.SocketIOProtocolError` with a fixed message.
"""

from __future__ import annotations

from typing import Any

import msgpack

from sio_core.exceptions import SocketIOProtocolError

from .socketio import MAX_ACK_ID, RESERVED_EVENTS, Packet, PacketType, deeper_than

__all__ = ["Decoder", "encode"]

_TO_TEXT = {
    PacketType.BINARY_EVENT: PacketType.EVENT,
    PacketType.BINARY_ACK: PacketType.ACK,
}
_WIRE_TYPES = {t.value: t for t in PacketType if t not in _TO_TEXT}
#: notepack's "undefined": fixext 1 of type 0, one zero byte
_UNDEFINED = 0


def encode(packet: Packet) -> list[str | bytes]:
    """Wire form of ``packet``: one ``bytes``, a MessagePack map.

    Raises ``ValueError`` or ``TypeError`` as :func:`sio_core.protocol.socketio.encode` does:
    a namespace not starting with ``/`` or containing ``,``, an ack id that is not an int in
    ``0..MAX_ACK_ID``, data MessagePack cannot hold (an int past 64 bits included).
    """
    namespace = packet.namespace
    if namespace != "/" and (not namespace.startswith("/") or "," in namespace):
        raise ValueError("a namespace starts with '/' and contains no ','")
    wire: dict[str, Any] = {"type": _TO_TEXT.get(packet.type, packet.type).value}
    if packet.data is not None:
        wire["data"] = packet.data
    wire["nsp"] = namespace
    ack_id = packet.id
    if ack_id is not None:
        if type(ack_id) is not int or not 0 <= ack_id <= MAX_ACK_ID:
            raise ValueError(f"an ack id is an int in 0..{MAX_ACK_ID}")
        wire["id"] = ack_id
    return [_PACKER.pack(wire)]


def _pack_default(value: object) -> Any:
    # bytes, bytearray and memoryview are packed as bin by msgpack itself
    if isinstance(value, int):  # past 64 bits: msgpack asks here
        raise ValueError("an int MessagePack cannot hold (64 bits at most)")
    raise TypeError(f"Object of type {type(value).__name__} is not MessagePack serializable")


# datetime=True: an aware datetime goes out as a timestamp (a JavaScript Date for notepack)
_PACKER = msgpack.Packer(use_bin_type=True, datetime=True, default=_pack_default,
                         autoreset=True)


def _ext(code: int, data: bytes) -> Any:
    if code == _UNDEFINED and data == b"\x00":
        return None
    return [code, data]


class Decoder:
    """One per connection, with the default parser's interface: ``feed_binary`` decodes a
    packet; text (which this parser never writes) is a protocol error. ``max_attachments``
    is accepted for that interface and unused: there are no attachments."""

    __slots__ = ("_max_depth", "_max_namespace_length")

    def __init__(
        self,
        *,
        max_attachments: int | None = 10,
        max_namespace_length: int | None = 256,
        max_depth: int | None = 100,
    ) -> None:
        self._max_namespace_length = max_namespace_length
        self._max_depth = max_depth

    @property
    def awaiting(self) -> int:
        """Attachments still awaited: always 0."""
        return 0

    def feed_text(self, data: str) -> Packet | None:
        raise SocketIOProtocolError("text packet where MessagePack was expected")

    def feed_binary(self, data: bytes) -> Packet | None:
        try:
            # timestamp=3: a timestamp decodes to an aware datetime; strict_map_key (the
            # default): map keys are str or bytes
            decoded = msgpack.unpackb(data, raw=False, ext_hook=_ext, timestamp=3)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            # ValueError covers ExtraData, FormatError, StackError, a bad UTF-8 string
            # and a key that is not a string; TypeError an unhashable key
            raise SocketIOProtocolError("invalid MessagePack packet") from exc
        if type(decoded) is not dict:
            raise SocketIOProtocolError("invalid MessagePack packet")
        ptype = _WIRE_TYPES.get(decoded.get("type"))  # type: ignore[arg-type]
        if ptype is None or type(decoded.get("type")) is not int:
            raise SocketIOProtocolError("unknown packet type")
        namespace = decoded.get("nsp")
        if type(namespace) is not str or not namespace.startswith("/"):
            raise SocketIOProtocolError("invalid namespace")
        limit = self._max_namespace_length
        if limit is not None and len(namespace) > limit:
            raise SocketIOProtocolError("namespace too long")
        ack_id = decoded.get("id")
        if ack_id is not None:
            if type(ack_id) is not int or not 0 <= ack_id <= MAX_ACK_ID:
                raise SocketIOProtocolError("invalid ack id")
            if ptype is not PacketType.EVENT and ptype is not PacketType.ACK:
                raise SocketIOProtocolError("ack id on a packet type that takes none")
        payload = decoded.get("data")
        _check_shape(ptype, payload, ack_id)
        depth = self._max_depth
        if depth is not None and isinstance(payload, list | dict) \
                and deeper_than(payload, depth):
            raise SocketIOProtocolError("payload nested too deep")
        return Packet(ptype, namespace, payload, ack_id)


def _check_shape(ptype: PacketType, data: Any, ack_id: int | None) -> None:
    # A missing "data" and a nil one are alike: python-socketio writes "data": nil for a
    # CONNECT without auth, notepack leaves an undefined value out.
    if ptype is PacketType.CONNECT:
        ok = data is None or type(data) is dict
    elif ptype is PacketType.DISCONNECT:
        ok = data is None
    elif ptype is PacketType.EVENT:
        ok = (type(data) is list and len(data) > 0 and type(data[0]) is str
              and data[0] not in RESERVED_EVENTS)
    elif ptype is PacketType.ACK:
        ok = type(data) is list and ack_id is not None
    else:
        ok = type(data) is dict or type(data) is str
    if not ok:
        raise SocketIOProtocolError("payload does not fit the packet type")
