"""The Socket.IO parsers a server may speak, by name (the reference's ``parser`` option).

========== ============================================================================
``default`` :mod:`sio_core.protocol.socketio`: text packets, JSON, binary attachments
            (npm ``socket.io-parser``, python-socketio's default serializer)
``msgpack`` :mod:`sio_core.protocol.socketio_msgpack`: one binary MessagePack packet
            (npm ``socket.io-msgpack-parser``, python-socketio's ``serializer="msgpack"``)
========== ============================================================================

Every client of a server must use the server's parser, as with the reference server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from . import socketio, socketio_msgpack
from .socketio import Packet

__all__ = ["PARSERS", "PacketDecoder", "Parser"]


class PacketDecoder(Protocol):
    """One connection's decoder (see :class:`sio_core.protocol.socketio.Decoder`)."""

    @property
    def awaiting(self) -> int: ...

    def feed_text(self, data: str) -> Packet | None: ...

    def feed_binary(self, data: bytes) -> Packet | None: ...


@dataclass(frozen=True, slots=True)
class Parser:
    name: str
    #: a packet's wire parts: Engine.IO messages, text or binary
    encode: Callable[[Packet], list[str | bytes]]
    #: makes one connection's decoder, with its limits (keywords ``max_attachments``,
    #: ``max_namespace_length``, ``max_depth``)
    decoder: Callable[..., PacketDecoder]


PARSERS: dict[str, Parser] = {
    "default": Parser("default", socketio.encode, socketio.Decoder),
    "msgpack": Parser("msgpack", socketio_msgpack.encode, socketio_msgpack.Decoder),
}
