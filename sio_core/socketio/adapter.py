"""Rooms of one namespace on this worker, and delivery of broadcasts to local sockets.

How this works: the adapter maps rooms to socket ids and back (every socket is in the
room named by its own id). A broadcast is described by :class:`BroadcastOptions` (rooms,
rooms excepted, flags); :meth:`Adapter.broadcast` encodes the packet **once** and hands
the same Engine.IO packets (framed once, whoever writes them first) to every matching
socket. Membership is local: a cluster-wide broadcast is published to every worker and
each one runs this on its own sockets.

One path for every broadcast, to a room, to several, with rooms excepted or to the whole
namespace: :meth:`Adapter.reached` finds the recipients by set operations on the rooms,
whose members are kept with their Engine.IO sessions, and the sessions are handed to
:func:`~sio_core.engine.socket.fan_out` in one call. No Python code runs per recipient on
this side, and nothing is copied per recipient but what taking the excepted rooms out
needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..engine.socket import fan_out
from ..exceptions import SocketIOProtocolError
from ..protocol import engineio
from ..protocol import socketio as sio
from ..protocol.parsers import Parser

if TYPE_CHECKING:
    from .client import Session
    from .namespace import Namespace
    from .socket import Socket


@dataclass(slots=True)
class BroadcastOptions:
    """Which sockets a broadcast reaches, and how. A value: nothing assigns to it once made
    (the Redis adapter knows the last one it sent by identity). Not frozen, with ``__init__``
    written out: every worker that receives a broadcast makes one (see
    protocol/engineio.py's Packet)."""

    rooms: frozenset[str] = frozenset()
    except_rooms: frozenset[str] = frozenset()
    volatile: bool = False
    local: bool = False
    timeout: float | None = None
    #: compress(False): the packets are never compressed (permessage-deflate, gzip)
    compress: bool = True

    def __init__(self, rooms: frozenset[str] = frozenset(),
                 except_rooms: frozenset[str] = frozenset(), volatile: bool = False,
                 local: bool = False, timeout: float | None = None,
                 compress: bool = True) -> None:
        self.rooms = rooms
        self.except_rooms = except_rooms
        self.volatile = volatile
        self.local = local
        self.timeout = timeout
        self.compress = compress


#: a room's members: each socket's id, with its Engine.IO session once the socket is
#: connected (None before: joined in a middleware), in the order they joined
_NOBODY: dict[str, Session | None] = {}


class Adapter:
    def __init__(self, namespace: Namespace) -> None:
        self.namespace = namespace
        #: each room's members. A dict rather than a set: a broadcast to a room walks its
        #: sessions in the order they joined (near the order they were allocated, which
        #: the CPU's cache rewards over a set's hash order) without a lookup per member
        self.rooms: dict[str, dict[str, Session | None]] = {}
        self.sids: dict[str, set[str]] = {}

    # -- membership -----------------------------------------------------------------------

    def add_all(self, sid: str, rooms: Iterable[str]) -> None:
        mine = self.sids.setdefault(sid, set())
        observer = self.namespace.server.observer
        if observer is not None:
            rooms = [room for room in rooms if room not in mine]  # told of entries only
        conn = self.namespace.conns.get(sid)
        for room in rooms:
            mine.add(room)
            members = self.rooms.get(room)
            if members is None:
                self.rooms[room] = {sid: conn}
                self._room_event(room, sid, True)
            else:
                members[sid] = conn
        if observer is not None:
            for room in rooms:
                observer.room_joined(self.namespace, room, sid)

    def attach(self, sid: str, conn: Session) -> None:
        """The socket ``sid`` is connected: the rooms it joined before (in a middleware)
        reach it from now on."""
        rooms = self.rooms
        for room in self.sids.get(sid, ()):
            rooms[room][sid] = conn

    def delete(self, sid: str, room: str) -> None:
        mine = self.sids.get(sid)
        if mine is None or room not in mine:
            return
        mine.discard(room)
        self._remove_member(room, sid)
        observer = self.namespace.server.observer
        if observer is not None:
            observer.room_left(self.namespace, room, sid)

    def delete_all(self, sid: str) -> None:
        mine = self.sids.pop(sid, set())
        for room in mine:
            self._remove_member(room, sid)
        observer = self.namespace.server.observer
        if observer is not None:
            for room in mine:
                observer.room_left(self.namespace, room, sid)

    def _remove_member(self, room: str, sid: str) -> None:
        members = self.rooms.get(room)
        if members is not None:
            members.pop(sid, None)
            if not members:
                del self.rooms[room]
                self._room_event(room, sid, False)

    def _room_event(self, room: str, sid: str, created: bool) -> None:
        """A room got its first member here, or lost its last: the cluster's link may read
        the room's own channel (the JavaScript sharded adapter's dynamic modes). A room is
        private when it is named by a socket's id, as the reference tells them apart."""
        cluster = self.namespace.server.cluster
        if cluster is not None:
            private = room == sid or room in self.sids
            link = cluster.link
            if created:
                link.room_created(self.namespace.name, room, private)
            else:
                link.room_deleted(self.namespace.name, room, private)

    def socket_rooms(self, sid: str) -> set[str]:
        return set(self.sids.get(sid, ()))

    # -- matching ---------------------------------------------------------------------------

    def reached(self, opts: BroadcastOptions) -> Mapping[str, Session | None]:
        """The sockets a broadcast reaches, each once: id -> Engine.IO session (None for an
        id that is not a connected socket). By set operations on the rooms: a room's
        members as they are (not a copy: to be read at once), the union of several, the
        namespace's sockets; the rooms excepted taken out of a copy."""
        rooms = self.rooms
        reached: Mapping[str, Session | None]
        if not opts.rooms:
            reached = self.namespace.conns
        elif len(opts.rooms) == 1:
            (room,) = opts.rooms
            reached = rooms.get(room, _NOBODY)
        else:
            union: dict[str, Session | None] = {}
            for room in opts.rooms:
                union.update(rooms.get(room, _NOBODY))
            reached = union
        if opts.except_rooms and reached:
            excluded = set().union(*[rooms.get(room, _NOBODY) for room in opts.except_rooms])
            if excluded:
                # a copy (fast: no code per entry), then out with the few excluded; a
                # filtering comprehension would run code for each of the many reached
                kept = dict(reached)
                for sid in excluded:
                    kept.pop(sid, None)
                reached = kept
        return reached

    def match(self, opts: BroadcastOptions) -> list[Socket]:
        """The local sockets a broadcast reaches, each once."""
        return list(filter(None, map(self.namespace.sockets.get, self.reached(opts))))

    # -- delivery ---------------------------------------------------------------------------

    def broadcast(self, packet: sio.Packet, opts: BroadcastOptions) -> int:
        """Deliver to the matching local sockets; returns how many got it."""
        reached = self.reached(opts)
        if not reached and not self._watched():
            return 0  # nobody here: not even encoded
        return self._deliver(reached, self.namespace.server.parser.encode(packet), opts,
                             packet)

    def broadcast_encoded(self, parts: list[str | bytes], opts: BroadcastOptions,
                          packet: sio.Packet | None = None) -> int:
        """:meth:`broadcast` of a packet encoded already, by this server's parser (on the
        worker that published it); ``packet``, its decoded form, is for the observer and
        the outgoing listeners (decoded from the parts when they want it and it is not
        given)."""
        reached = self.reached(opts)
        if not reached and not self._watched():
            # nobody here (the usual case of a worker receiving another's broadcast to a
            # room): the parts are not even made packets
            return 0
        return self._deliver(reached, parts, opts, packet)

    def broadcast_encoded_run(self, runs: list[list[str | bytes]],
                              opts: BroadcastOptions) -> None:
        """:meth:`broadcast_encoded` of several packets to the same sockets, in order: one
        pass over the recipients for all of them (a burst from another worker)."""
        if self._watched():  # each one seen on its own
            for parts in runs:
                self.broadcast_encoded(parts, opts)
            return
        reached = self.reached(opts)
        if reached:
            self._fan_out_run(reached, runs, opts)

    def broadcast_run(self, packets: list[sio.Packet], opts: BroadcastOptions) -> None:
        """:meth:`broadcast` of several packets to the same sockets, in order, in one pass;
        encoded only if someone here gets them."""
        if self._watched():
            for packet in packets:
                self.broadcast(packet, opts)
            return
        reached = self.reached(opts)
        if reached:
            encode = self.namespace.server.parser.encode
            self._fan_out_run(reached, [encode(packet) for packet in packets], opts)

    def _fan_out_run(self, reached: Mapping[str, Session | None],
                     runs: list[list[str | bytes]], opts: BroadcastOptions) -> None:
        compress = opts.compress
        packets = [engineio.message(part, compress) for parts in runs for part in parts]
        count = fan_out(filter(None, reached.values()), packets, volatile=opts.volatile)
        for parts in runs:
            self._count(parts, count)

    def _watched(self) -> bool:
        """Whether someone hears of every broadcast, even one that reaches nobody."""
        return self.namespace.server.observer is not None or bool(
            self.namespace.outgoing_watchers)

    def _deliver(self, reached: Mapping[str, Session | None], parts: list[str | bytes],
                 opts: BroadcastOptions, packet: sio.Packet | None) -> int:
        packets = [engineio.message(part, opts.compress) for part in parts]
        count = fan_out(filter(None, reached.values()), packets, volatile=opts.volatile)
        self._count(parts, count)
        observer = self.namespace.server.observer
        if observer is not None or self.namespace.outgoing_watchers:
            data = packet.data if packet is not None \
                else decode_parts(self.namespace.server.parser, parts)
            if observer is not None:
                observer.broadcast_sent(self.namespace, data, parts, opts, count)
            self._notify_outgoing(data, opts)
        return count

    def broadcast_with_ack(self, packet: sio.Packet, opts: BroadcastOptions,
                           on_ack: Callable[[str, list[object]], None]) -> int:
        """Like broadcast, every recipient's ack goes to ``on_ack(socket_id, args)``.
        Returns how many clients were sent the packet (so the caller knows how many acks
        to wait for)."""
        assert packet.id is not None
        parts = self.namespace.server.parser.encode(packet)
        packets = [engineio.message(part, opts.compress) for part in parts]
        count = 0
        ack_id = packet.id
        for socket in self.match(opts):
            if socket.client.send_packets(packets, volatile=opts.volatile):
                socket.expect_ack(ack_id, _bind(on_ack, socket.id))
                count += 1
        self._count(parts, count)
        observer = self.namespace.server.observer
        if observer is not None:
            observer.broadcast_sent(self.namespace, packet.data, parts, opts, count)
        self._notify_outgoing(packet.data, opts)
        return count

    def _notify_outgoing(self, data: list[Any], opts: BroadcastOptions) -> None:
        """The recipients with on_any_outgoing listeners hear of the event."""
        watchers = self.namespace.outgoing_watchers
        if watchers:
            for socket in list(self.match(opts)):
                if socket in watchers:
                    socket.notify_outgoing(data)

    def _count(self, parts: list[str | bytes], recipients: int) -> None:
        """Counted once per broadcast, for all its recipients (not once per recipient)."""
        if recipients:
            namespace = self.namespace
            namespace.counters.deliveries += recipients
            counters = namespace.server.counters
            counters.messages_sent += len(parts) * recipients
            counters.sent_bytes += sum(map(len, parts)) * recipients

    def add_sockets(self, opts: BroadcastOptions, rooms: Iterable[str]) -> None:
        rooms = list(rooms)
        for socket in self.match(opts):
            socket.join(rooms)

    def del_sockets(self, opts: BroadcastOptions, rooms: Iterable[str]) -> None:
        rooms = list(rooms)
        for socket in self.match(opts):
            socket.leave(*rooms)

    def disconnect_sockets(self, opts: BroadcastOptions, close: bool) -> None:
        for socket in self.match(opts):
            socket.disconnect(close)


def decode_parts(parser: Parser, parts: list[str | bytes]) -> list[Any]:
    """The data of the event that ``parts`` encode with ``parser`` ([] if they make none)."""
    decoder = parser.decoder()
    packet = None
    try:
        for part in parts:
            packet = decoder.feed_text(part) if isinstance(part, str) \
                else decoder.feed_binary(part)
    except SocketIOProtocolError:
        return []
    return packet.data if packet is not None and isinstance(packet.data, list) else []


def _bind(on_ack: Callable[[str, list[object]], None], sid: str) -> Callable[..., None]:
    def ack(*args: object) -> None:
        on_ack(sid, list(args))
    return ack
