"""Rooms of one namespace on this worker, and delivery of broadcasts to local sockets.

How this works: the adapter maps rooms to socket ids and back (every socket is in the
room named by its own id). A broadcast is described by :class:`BroadcastOptions` (rooms,
rooms excepted, flags); :meth:`Adapter.broadcast` encodes the packet **once** and hands
the same wire parts to every matching socket. Membership is local: a cluster-wide
broadcast is published to every worker and each one runs this on its own sockets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..exceptions import SocketIOProtocolError
from ..protocol import engineio
from ..protocol import socketio as sio
from ..protocol.parsers import Parser

if TYPE_CHECKING:
    from .namespace import Namespace
    from .socket import Socket


@dataclass(frozen=True, slots=True)
class BroadcastOptions:
    rooms: frozenset[str] = frozenset()
    except_rooms: frozenset[str] = frozenset()
    volatile: bool = False
    local: bool = False
    timeout: float | None = None
    #: compress(False): the packets are never compressed (permessage-deflate, gzip)
    compress: bool = True


class Adapter:
    def __init__(self, namespace: Namespace) -> None:
        self.namespace = namespace
        self.rooms: dict[str, set[str]] = {}
        self.sids: dict[str, set[str]] = {}

    # -- membership -----------------------------------------------------------------------

    def add_all(self, sid: str, rooms: Iterable[str]) -> None:
        mine = self.sids.setdefault(sid, set())
        observer = self.namespace.server.observer
        if observer is not None:
            rooms = [room for room in rooms if room not in mine]  # told of entries only
        for room in rooms:
            mine.add(room)
            members = self.rooms.get(room)
            if members is None:
                self.rooms[room] = {sid}
                self._room_event(room, sid, True)
            else:
                members.add(sid)
        if observer is not None:
            for room in rooms:
                observer.room_joined(self.namespace, room, sid)

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
            members.discard(sid)
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

    def match(self, opts: BroadcastOptions) -> Iterator[Socket]:
        """The local sockets a broadcast reaches, each once."""
        sockets = self.namespace.sockets
        excluded: set[str] = set()
        for room in opts.except_rooms:
            excluded.update(self.rooms.get(room, ()))
        if opts.rooms:
            seen: set[str] = set()
            for room in opts.rooms:
                for sid in self.rooms.get(room, ()):
                    if sid in seen or sid in excluded:
                        continue
                    seen.add(sid)
                    socket = sockets.get(sid)
                    if socket is not None:
                        yield socket
        else:
            for sid, socket in list(sockets.items()):
                if sid not in excluded:
                    yield socket

    # -- delivery ---------------------------------------------------------------------------

    def broadcast(self, packet: sio.Packet, opts: BroadcastOptions) -> int:
        """Deliver to the matching local sockets; returns how many got it."""
        return self.broadcast_encoded(self.namespace.server.parser.encode(packet), opts,
                                      packet)

    def broadcast_encoded(self, parts: list[str | bytes], opts: BroadcastOptions,
                          packet: sio.Packet | None = None) -> int:
        """:meth:`broadcast` of a packet encoded already, by this server's parser (on the
        worker that published it); ``packet``, its decoded form, is for the observer and
        the outgoing listeners (decoded from the parts when they want it and it is not
        given)."""
        packets = [engineio.message(part, opts.compress) for part in parts]
        count = 0
        volatile = opts.volatile
        if opts.rooms or opts.except_rooms or volatile:
            for socket in self.match(opts):
                if socket.client.send_packets(packets, volatile=volatile):
                    count += 1
        else:
            # everyone in the namespace (io.emit): the loop that fan-out is, kept minimal
            for socket in list(self.namespace.sockets.values()):
                if socket.client.conn.send_packets(packets):
                    count += 1
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
        for socket in list(self.match(opts)):
            socket.join(rooms)

    def del_sockets(self, opts: BroadcastOptions, rooms: Iterable[str]) -> None:
        rooms = list(rooms)
        for socket in list(self.match(opts)):
            socket.leave(*rooms)

    def disconnect_sockets(self, opts: BroadcastOptions, close: bool) -> None:
        for socket in list(self.match(opts)):
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
