"""Socket.IO's messages between servers: broadcasts, their acks, and socket queries.

How this works: each message is a frozen dataclass with its kind (:class:`ClusterKind`),
``to_wire()`` (a short list of plain msgpack values, which the store packs into its
envelope) and ``from_wire(value)``, which returns the message or raises
:class:`~sio_core.stores.base.BadMessage` (the receiver drops it and logs it). Between
sio_core workers (the hub, a memory bus) this is the whole wire format; on Redis the same
messages travel in the JavaScript adapter's format instead (sio_core/socketio/redis_adapter.py
turns them into it and back), so that JavaScript servers share them. The payloads' version is
the envelope's (``stores.base.VERSION``).

Options travel as four fields (rooms, rooms excepted, volatile, compress): ``local`` and
``timeout`` are the sender's business. A :class:`Broadcast` carries its packet encoded (the
wire parts every recipient's connection writes as is, with the name of the parser that made
them): encoded once on the sending worker, never on the receiving ones, whose check is cheap
(its type, namespace and attachments, not its JSON).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from ..protocol import socketio as sio
from ..protocol.parsers import PARSERS
from ..stores.base import BadMessage
from .adapter import BroadcastOptions


class ClusterKind(enum.StrEnum):
    BROADCAST = "broadcast"
    BROADCAST_ACKS = "broadcast_acks"  # a broadcast whose client acks come back
    CLIENT_COUNT = "client_count"  # how many clients a server sent a broadcast_acks to
    CLIENT_ACK = "client_ack"  # one client's ack of a broadcast_acks
    FETCH_SOCKETS = "fetch_sockets"
    SOCKETS_JOIN = "sockets_join"
    SOCKETS_LEAVE = "sockets_leave"
    DISCONNECT_SOCKETS = "disconnect_sockets"
    SERVER_SIDE_EMIT = "server_side_emit"
    SOCKET_RELEASE = "socket_release"  # recovery: a worker's socket is recovered elsewhere


#: a request of a broadcast with acks: ours are numbers, a JavaScript server's are strings
RequestId = int | str


def _fields(value: Any, count: int, kind: str) -> list[Any]:
    if not isinstance(value, list) or len(value) != count:
        raise BadMessage(f"malformed {kind}")
    return value


_NO_ROOMS: frozenset[str] = frozenset()
#: the options of ``io.emit()``, the most common broadcast: one shared instance (frozen)
_EVERYONE = BroadcastOptions()


def _rooms(value: Any, kind: str) -> frozenset[str]:
    if type(value) is not list:
        raise BadMessage(f"malformed {kind}")
    if not value:
        return _NO_ROOMS
    for room in value:
        if type(room) is not str:
            raise BadMessage(f"malformed {kind}")
    return frozenset(value)


def _namespace(value: Any, kind: str) -> str:
    if not isinstance(value, str):
        raise BadMessage(f"malformed {kind}")
    return value


def _request(value: Any, kind: str) -> RequestId:
    if not isinstance(value, int | str) or isinstance(value, bool):
        raise BadMessage(f"malformed {kind}")
    return value


def opts_to_wire(opts: BroadcastOptions) -> list[Any]:
    return [sorted(opts.rooms), sorted(opts.except_rooms), opts.volatile, opts.compress]


#: the options received lately, by their wire fields: a server broadcasts to the same few
#: rooms again and again, and the receiving side then makes no sets and no options per
#: message (bounded: emptied when full)
_RECEIVED_OPTS: dict[tuple[Any, ...], BroadcastOptions] = {}
_RECEIVED_OPTS_MAX = 256


def opts_from_wire(rooms: Any, excepted: Any, volatile: Any, compress: Any,
                   kind: str) -> BroadcastOptions:
    if (volatile is not True and volatile is not False) or (
            compress is not True and compress is not False) or (
            type(rooms) is not list or type(excepted) is not list):
        raise BadMessage(f"malformed {kind}")
    if not rooms and not excepted and not volatile and compress:
        return _EVERYONE
    try:
        key = (tuple(rooms), tuple(excepted), volatile, compress)
        opts = _RECEIVED_OPTS.get(key)
    except TypeError:  # something unhashable in a list of rooms
        raise BadMessage(f"malformed {kind}") from None
    if opts is None:
        # checked only here: a key equal to one kept has strings where that one has them
        opts = BroadcastOptions(_rooms(rooms, kind), _rooms(excepted, kind),
                                volatile=volatile, compress=compress)
        if len(_RECEIVED_OPTS) >= _RECEIVED_OPTS_MAX:
            _RECEIVED_OPTS.clear()
        _RECEIVED_OPTS[key] = opts
    return opts


def event_data(value: Any, kind: str) -> list[Any]:
    """The data of an event: a list that starts with the event's name."""
    if not isinstance(value, list) or not value or not isinstance(value[0], str):
        raise BadMessage(f"malformed {kind}")
    return value


def check_parts(namespace: str, parser: str, parts: Any,
                kind: str = "broadcast") -> list[str | bytes]:
    """Parts of an event of ``namespace`` as ``parser`` encodes it. The default parser's:
    the text (an EVENT or BINARY_EVENT, its namespace, as many attachments as it announces)
    and the attachments (bytes); another's: bytes. Not their JSON or MessagePack: the
    parts come from a sio_core worker, which encoded them (a broadcast crosses Redis in
    the JavaScript adapter's format, decoded there)."""
    if type(parts) is not list or not parts:
        raise BadMessage(f"malformed {kind}")
    text = parts[0]
    if parser != "default":
        if parser not in PARSERS:
            raise BadMessage(f"malformed {kind}")
        for part in parts:
            if type(part) is not bytes:
                raise BadMessage(f"malformed {kind}")
        return parts
    if type(text) is not str:
        raise BadMessage(f"malformed {kind}")
    head = text[:1]
    if head == "2":
        if len(parts) != 1:
            raise BadMessage(f"malformed {kind}")
        rest = text[1:]
    elif head == "5":
        count, dash, rest = text[1:].partition("-")
        if not dash or not count.isdigit() or len(parts) != int(count) + 1:
            raise BadMessage(f"malformed {kind}")
        for part in parts[1:]:
            if type(part) is not bytes:
                raise BadMessage(f"malformed {kind}")
    else:
        raise BadMessage(f"malformed {kind}")
    if namespace == "/":
        if rest[:1] == "/":
            raise BadMessage(f"malformed {kind}")
    elif not rest.startswith(namespace) or rest[len(namespace):len(namespace) + 1] != ",":
        raise BadMessage(f"malformed {kind}")
    return parts


@dataclass(slots=True)  # not frozen (never changed, though): one is made per broadcast
class Broadcast:
    """An event to every matching socket of every server. ``parts`` is the packet encoded
    by ``parser`` (the sender's, which is every server's of a fleet), ready to write: it
    is encoded once for the whole cluster. A JavaScript server's broadcast (in the redis
    adapter's format) has the packet instead: ``parts`` None, ``packet`` given, encoded by
    each receiving server. ``packet`` is never on the wire (the sender keeps it for its
    own observers)."""

    KIND: ClassVar[ClusterKind] = ClusterKind.BROADCAST
    namespace: str
    opts: BroadcastOptions
    parts: list[str | bytes] | None
    parser: str = "default"
    packet: sio.Packet | None = field(default=None, compare=False)

    def to_wire(self) -> list[Any]:
        return [self.namespace, *opts_to_wire(self.opts), self.parser, self.parts]

    @staticmethod
    def from_wire(value: Any) -> Broadcast:
        # the checks of _fields and _namespace written out: this is every broadcast's path
        if type(value) is not list or len(value) != 7:
            raise BadMessage("malformed broadcast")
        namespace, rooms, excepted, volatile, compress, parser, parts = value
        if type(namespace) is not str or type(parser) is not str:
            raise BadMessage("malformed broadcast")
        return Broadcast(namespace,
                         opts_from_wire(rooms, excepted, volatile, compress, "broadcast"),
                         check_parts(namespace, parser, parts), parser)


@dataclass(frozen=True, slots=True)
class BroadcastWithAcks:
    """A broadcast whose recipients' acks go back to the sender: each server answers a
    ClientCount, then a ClientAck per ack. The packet's ack id is the sender's, or None
    (a JavaScript server's: each server numbers its own)."""

    KIND: ClassVar[ClusterKind] = ClusterKind.BROADCAST_ACKS
    packet: sio.Packet
    opts: BroadcastOptions
    request: RequestId

    def to_wire(self) -> list[Any]:
        packet = self.packet
        return [packet.namespace, *opts_to_wire(self.opts), self.request, packet.data,
                packet.id]

    @staticmethod
    def from_wire(value: Any) -> BroadcastWithAcks:
        kind = "broadcast_acks"
        namespace, rooms, excepted, volatile, compress, request, data, ack_id = _fields(
            value, 8, kind)
        return BroadcastWithAcks(
            event_packet(_namespace(namespace, kind), data, ack_id, kind),
            opts_from_wire(rooms, excepted, volatile, compress, kind), _request(request, kind))


def event_packet(namespace: str, data: Any, ack_id: Any, kind: str) -> sio.Packet:
    """An EVENT from what a server sent: the data of an event, and an ack id or None."""
    if not (ack_id is None or (isinstance(ack_id, int) and not isinstance(ack_id, bool)
                               and 0 <= ack_id <= sio.MAX_ACK_ID)):
        raise BadMessage(f"malformed {kind}")
    return sio.Packet(sio.PacketType.EVENT, namespace, event_data(data, kind), ack_id)


@dataclass(frozen=True, slots=True)
class ClientCount:
    """How many clients a server sent the broadcast with acks ``request`` to."""

    KIND: ClassVar[ClusterKind] = ClusterKind.CLIENT_COUNT
    request: RequestId
    count: int
    namespace: str

    def to_wire(self) -> list[Any]:
        return [self.request, self.count, self.namespace]

    @staticmethod
    def from_wire(value: Any) -> ClientCount:
        request, count, namespace = _fields(value, 3, "client_count")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise BadMessage("malformed client_count")
        return ClientCount(_request(request, "client_count"), count,
                           _namespace(namespace, "client_count"))


@dataclass(frozen=True, slots=True)
class ClientAck:
    """One client's ack (its arguments) of the broadcast with acks ``request``."""

    KIND: ClassVar[ClusterKind] = ClusterKind.CLIENT_ACK
    request: RequestId
    args: list[Any]
    namespace: str

    def to_wire(self) -> list[Any]:
        return [self.request, self.args, self.namespace]

    @staticmethod
    def from_wire(value: Any) -> ClientAck:
        request, args, namespace = _fields(value, 3, "client_ack")
        if not isinstance(args, list):
            raise BadMessage("malformed client_ack")
        return ClientAck(_request(request, "client_ack"), args,
                         _namespace(namespace, "client_ack"))


@dataclass(frozen=True, slots=True)
class FetchSockets:
    """Which sockets match: each server answers with a description of each of its own
    (sio_core/socketio/cluster.py's describe)."""

    KIND: ClassVar[ClusterKind] = ClusterKind.FETCH_SOCKETS
    namespace: str
    opts: BroadcastOptions

    def to_wire(self) -> list[Any]:
        return [self.namespace, *opts_to_wire(self.opts)]

    @staticmethod
    def from_wire(value: Any) -> FetchSockets:
        namespace, rooms, excepted, volatile, compress = _fields(value, 5, "fetch_sockets")
        return FetchSockets(_namespace(namespace, "fetch_sockets"),
                            opts_from_wire(rooms, excepted, volatile, compress, "fetch_sockets"))


@dataclass(frozen=True, slots=True)
class _SocketsRooms:
    KIND: ClassVar[ClusterKind]
    namespace: str
    opts: BroadcastOptions
    rooms: frozenset[str]

    def to_wire(self) -> list[Any]:
        return [self.namespace, *opts_to_wire(self.opts), sorted(self.rooms)]

    @classmethod
    def from_wire(cls, value: Any) -> Self:
        kind = cls.KIND
        namespace, rooms, excepted, volatile, compress, target = _fields(value, 6, kind)
        return cls(_namespace(namespace, kind),
                   opts_from_wire(rooms, excepted, volatile, compress, kind), _rooms(target, kind))


@dataclass(frozen=True, slots=True)
class SocketsJoin(_SocketsRooms):
    """The matching sockets join ``rooms``."""

    KIND: ClassVar[ClusterKind] = ClusterKind.SOCKETS_JOIN


@dataclass(frozen=True, slots=True)
class SocketsLeave(_SocketsRooms):
    """The matching sockets leave ``rooms``."""

    KIND: ClassVar[ClusterKind] = ClusterKind.SOCKETS_LEAVE


@dataclass(frozen=True, slots=True)
class DisconnectSockets:
    """The matching sockets are disconnected (``close``: their connections closed too)."""

    KIND: ClassVar[ClusterKind] = ClusterKind.DISCONNECT_SOCKETS
    namespace: str
    opts: BroadcastOptions
    close: bool

    def to_wire(self) -> list[Any]:
        return [self.namespace, *opts_to_wire(self.opts), self.close]

    @staticmethod
    def from_wire(value: Any) -> DisconnectSockets:
        kind = "disconnect_sockets"
        namespace, rooms, excepted, volatile, compress, close = _fields(value, 6, kind)
        if not isinstance(close, bool):
            raise BadMessage(f"malformed {kind}")
        return DisconnectSockets(_namespace(namespace, kind),
                                 opts_from_wire(rooms, excepted, volatile, compress, kind),
                                 close)


@dataclass(frozen=True, slots=True)
class ServerSideEmit:
    """An event for the other servers' listeners: ``data`` is ``[event, *args]``. Asked as
    a request, each server answers with its first listener's result."""

    KIND: ClassVar[ClusterKind] = ClusterKind.SERVER_SIDE_EMIT
    namespace: str
    data: list[Any]

    def to_wire(self) -> list[Any]:
        return [self.namespace, self.data]

    @staticmethod
    def from_wire(value: Any) -> ServerSideEmit:
        namespace, data = _fields(value, 2, "server_side_emit")
        return ServerSideEmit(_namespace(namespace, "server_side_emit"),
                              event_data(data, "server_side_emit"))


@dataclass(frozen=True, slots=True)
class SocketRelease:
    """Connection state recovery: the socket ``sid`` of ``namespace`` is being recovered on
    another worker, and its owner lets go of it first (sio_core/socketio/recovery.py asks
    it of that one worker; answered True if it had it)."""

    KIND: ClassVar[ClusterKind] = ClusterKind.SOCKET_RELEASE
    namespace: str
    sid: str

    def to_wire(self) -> list[Any]:
        return [self.namespace, self.sid]

    @staticmethod
    def from_wire(value: Any) -> SocketRelease:
        namespace, sid = _fields(value, 2, "socket_release")
        if type(sid) is not str:
            raise BadMessage("malformed socket_release")
        return SocketRelease(_namespace(namespace, "socket_release"), sid)


ClusterMessage = (Broadcast | BroadcastWithAcks | ClientCount | ClientAck | FetchSockets
                  | SocketsJoin | SocketsLeave | DisconnectSockets | ServerSideEmit)

#: what a server publishes to every other (the rest are answers to one, or requests)
Published = (Broadcast | BroadcastWithAcks | SocketsJoin | SocketsLeave | DisconnectSockets
             | ServerSideEmit)

#: every message class the Cluster's link carries, for the receiving side's dispatch by kind
#: (SocketRelease is recovery's, to one worker)
MESSAGES: tuple[type[ClusterMessage], ...] = (
    Broadcast, BroadcastWithAcks, ClientCount, ClientAck, FetchSockets, SocketsJoin,
    SocketsLeave, DisconnectSockets, ServerSideEmit)
