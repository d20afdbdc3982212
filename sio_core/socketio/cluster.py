"""Socket.IO across workers: broadcasts, acks and socket queries over a store.

How this works: :class:`Cluster` registers store handlers for the Socket.IO kinds and is
what a :class:`~sio_core.socketio.namespace.Namespace` calls when a store is attached.
A broadcast is delivered locally and published once; every other worker delivers it to
its own matching sockets (room membership stays local). Requests that need answers
(fetch_sockets, server-side emits with acks) gather from every peer with a timeout; a
broadcast with acks gets a client count, then the acks, from every peer. Everything that
comes off the bus is checked for shape before use: it is untrusted input.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import msgpack

from ..protocol import socketio as sio
from ..stores.base import Envelope, Kind, Store
from . import handlers
from .adapter import BroadcastOptions
from .broadcast import AckGather, rooms_of
from .handlers import DONE
from .socket import Handshake

if TYPE_CHECKING:
    from .namespace import Namespace
    from .server import Server
    from .socket import Socket

logger = logging.getLogger("sio_core.cluster")

def opts_to_wire(opts: BroadcastOptions) -> dict[str, Any]:
    flags: dict[str, bool] = {"volatile": opts.volatile}
    if not opts.compress:
        flags["compress"] = False  # the JavaScript adapter's flag; left out when true
    return {"rooms": sorted(opts.rooms), "except": sorted(opts.except_rooms), "flags": flags}


def opts_from_wire(value: Any) -> BroadcastOptions | None:
    if not isinstance(value, dict):
        return None
    rooms, excepted = value.get("rooms", []), value.get("except", [])
    flags = value.get("flags") or {}
    if (not isinstance(rooms, list) or not isinstance(excepted, list)
            or not all(isinstance(r, str) for r in rooms)
            or not all(isinstance(r, str) for r in excepted) or not isinstance(flags, dict)):
        return None
    return BroadcastOptions(frozenset(rooms), frozenset(excepted),
                            volatile=bool(flags.get("volatile")),
                            compress=flags.get("compress") is not False)


def packet_to_wire(packet: sio.Packet) -> dict[str, Any]:
    return {"type": int(packet.type), "nsp": packet.namespace, "data": packet.data,
            "id": packet.id}


def packet_from_wire(value: Any) -> sio.Packet | None:
    if not isinstance(value, dict):
        return None
    ptype, nsp, data, ack_id = (value.get("type"), value.get("nsp"), value.get("data"),
                                value.get("id"))
    if (ptype not in (sio.PacketType.EVENT, sio.PacketType.BINARY_EVENT)
            or not isinstance(nsp, str) or not isinstance(data, list) or not data
            or not isinstance(data[0], str)
            or not (ack_id is None or (isinstance(ack_id, int) and ack_id >= 0))):
        return None
    return sio.Packet(sio.PacketType.EVENT, nsp, data, ack_id)


def _packable(value: Any) -> Any:
    try:
        msgpack.packb(value, use_bin_type=True)
    except Exception:
        return None
    return value


def _str_keys(value: Any) -> dict[str, Any]:
    return {k: v for k, v in value.items() if isinstance(k, str)} if isinstance(value, dict) \
        else {}


def handshake_from_wire(value: Any) -> Handshake:
    """A remote socket's handshake (ours or a JavaScript server's), as a local socket's."""
    info = value if isinstance(value, dict) else {}
    address, when, issued, url = (info.get("address"), info.get("time"), info.get("issued"),
                                  info.get("url"))
    return Handshake(
        headers=_str_keys(info.get("headers")), query=_str_keys(info.get("query")),
        auth=_str_keys(info.get("auth")),
        address=address if isinstance(address, str) else None,
        time=when if isinstance(when, str) else "",
        issued=issued if isinstance(issued, int) else 0,
        url=url if isinstance(url, str) else "",
        secure=info.get("secure") is True, xdomain=info.get("xdomain") is True)


class RemoteSocket:
    """A socket of another worker or node, as fetch_sockets returns it (the JavaScript
    RemoteSocket): its id, handshake, rooms and data, and actions that go through the
    cluster. It reads like a local Socket: the same attributes, and ``emit``, ``join``,
    ``leave`` and ``disconnect`` that act at once (published, fire-and-forget) and return
    an already-done awaitable, as the Socket's do.

    Args:
        namespace: the namespace it is in (this worker's object of it).
        info: its description as its worker sent it (id, handshake, rooms, data).

    Attributes:
        id: the socket's id.
        handshake: its :class:`~sio_core.socketio.socket.Handshake`.
        rooms: the rooms it was in when fetched.
        data: its ``socket.data`` when fetched.

    Example::

        for socket in await io.in_("room1").fetch_sockets():
            await socket.emit("hello")  # a Socket or a RemoteSocket alike
            await socket.join("room2")
    """

    def __init__(self, namespace: Namespace, info: dict[str, Any]) -> None:
        self.namespace = namespace
        self.id: str = info["id"]
        self.handshake = handshake_from_wire(info.get("handshake"))
        rooms = info.get("rooms")
        self.rooms: set[str] = {r for r in rooms if isinstance(r, str)} \
            if isinstance(rooms, list) else set()
        data = info.get("data")
        self.data: Any = data if data is not None else {}

    def __repr__(self) -> str:
        return f"<RemoteSocket {self.id} {self.namespace.name}>"

    def emit(self, event: str, *args: Any) -> Awaitable[None]:
        return self.namespace.to(self.id).emit(event, *args)

    def join(self, *rooms: str | Iterable[str]) -> Awaitable[None]:
        return self.namespace.in_(self.id).sockets_join(*rooms)

    def leave(self, *rooms: str | Iterable[str]) -> Awaitable[None]:
        return self.namespace.in_(self.id).sockets_leave(*rooms)

    def disconnect(self, close: bool = False) -> Awaitable[None]:
        return self.namespace.in_(self.id).disconnect_sockets(close)


def describe(socket: Socket) -> dict[str, Any]:
    hs = socket.handshake
    return {
        "id": socket.id,
        "handshake": {"headers": hs.headers, "query": hs.query, "auth": _packable(hs.auth),
                      "address": hs.address, "time": hs.time, "issued": hs.issued,
                      "url": hs.url, "secure": hs.secure, "xdomain": hs.xdomain},
        "rooms": sorted(socket.rooms),
        "data": _packable(socket.data),
    }


class Cluster:
    def __init__(self, server: Server, store: Store) -> None:
        self.server = server
        self.store = store
        self._gathers: dict[int, AckGather] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        on = store.on
        on(Kind.BROADCAST, self._on_broadcast)
        on(Kind.BROADCAST_ACKS, self._on_broadcast_acks)
        on(Kind.CLIENT_COUNT, self._on_client_count)
        on(Kind.CLIENT_ACK, self._on_client_ack)
        on(Kind.FETCH_SOCKETS, self._on_fetch_sockets)
        on(Kind.SOCKETS_JOIN, self._on_sockets_join)
        on(Kind.SOCKETS_LEAVE, self._on_sockets_leave)
        on(Kind.DISCONNECT_SOCKETS, self._on_disconnect_sockets)
        on(Kind.SERVER_SIDE_EMIT, self._on_server_side_emit)
        for name in server.namespaces:
            self.namespace_added(name)

    def namespace_added(self, name: str) -> None:
        add = getattr(self.store, "add_namespace", None)
        if add is not None:
            add(name)

    def namespace_removed(self, name: str) -> None:
        remove = getattr(self.store, "remove_namespace", None)
        if remove is not None:
            remove(name)

    # -- outgoing ---------------------------------------------------------------------------

    def broadcast(self, packet: sio.Packet, opts: BroadcastOptions) -> None:
        self.store.publish(Kind.BROADCAST, {"packet": packet_to_wire(packet),
                                            "opts": opts_to_wire(opts)})

    def broadcast_with_ack(self, packet: sio.Packet, opts: BroadcastOptions,
                           gather: AckGather) -> None:
        request = next(self._ids)
        gather.counting = True
        self._gathers[request] = gather
        gather.future.add_done_callback(lambda _: self._gathers.pop(request, None))
        self.store.publish(Kind.BROADCAST_ACKS, {"packet": packet_to_wire(packet),
                                                 "opts": opts_to_wire(opts), "req": request})
        # counted while the request travels; the counts that come first wait for it
        task = asyncio.get_running_loop().create_task(self._count_servers(packet, gather))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _count_servers(self, packet: sio.Packet, gather: AckGather) -> None:
        try:
            count = await self.store.count_servers(packet.namespace)
        except Exception as exc:
            # the acks of the clients counted so far still come; the timeout ends the rest
            logger.warning("cannot count the servers for a broadcast with acks: %s", exc)
            return
        gather.add_servers(count)

    async def fetch_sockets(self, namespace: Namespace, opts: BroadcastOptions) -> list[Any]:
        replies = await self.store.ask_servers(
            Kind.FETCH_SOCKETS, {"nsp": namespace.name, "opts": opts_to_wire(opts)},
            self.server.config.requests_timeout)
        out: list[Any] = []
        for reply in replies:
            if isinstance(reply, list):
                out.extend(RemoteSocket(namespace, info) for info in reply
                           if isinstance(info, dict) and isinstance(info.get("id"), str))
        return out

    def sockets_join(self, namespace: Namespace, opts: BroadcastOptions,
                     rooms: frozenset[str], kind: Kind = Kind.SOCKETS_JOIN) -> None:
        self.store.publish(kind, {"nsp": namespace.name, "opts": opts_to_wire(opts),
                                  "rooms": sorted(rooms)})

    def disconnect_sockets(self, namespace: Namespace, opts: BroadcastOptions,
                           close: bool) -> None:
        self.store.publish(Kind.DISCONNECT_SOCKETS, {"nsp": namespace.name,
                                                     "opts": opts_to_wire(opts),
                                                     "close": close})

    def server_side_emit(self, namespace: Namespace, event: str, args: tuple[Any, ...]) -> None:
        self.store.publish(Kind.SERVER_SIDE_EMIT, {"nsp": namespace.name,
                                                   "data": [event, *args]})

    async def server_side_emit_with_ack(self, namespace: Namespace, event: str,
                                        args: tuple[Any, ...], timeout: float) -> list[Any]:
        return await self.store.ask_servers(
            Kind.SERVER_SIDE_EMIT, {"nsp": namespace.name, "data": [event, *args]}, timeout)

    # -- incoming ---------------------------------------------------------------------------

    def _namespace(self, payload: Any) -> tuple[Namespace | None, BroadcastOptions | None]:
        if not isinstance(payload, dict):
            return None, None
        nsp = payload.get("nsp")
        if nsp is None and isinstance(payload.get("packet"), dict):
            nsp = payload["packet"].get("nsp")
        namespace = self.server.namespace_now(nsp) if isinstance(nsp, str) else None
        return namespace, opts_from_wire(payload.get("opts"))

    def _on_broadcast(self, envelope: Envelope) -> None:
        if not isinstance(envelope.payload, dict):
            return
        namespace, opts = self._namespace(envelope.payload)
        packet = packet_from_wire(envelope.payload.get("packet"))
        if namespace is not None and opts is not None and packet is not None:
            namespace.adapter.broadcast(packet, opts)

    def _on_broadcast_acks(self, envelope: Envelope) -> None:
        if not isinstance(envelope.payload, dict):
            return
        namespace, opts = self._namespace(envelope.payload)
        packet = packet_from_wire(envelope.payload.get("packet"))
        request = envelope.payload.get("req")
        if not isinstance(request, int | str):
            return
        count = 0
        if packet is not None and packet.id is None:
            # a JavaScript server's request: the ack id is ours to choose
            packet = sio.Packet(packet.type, packet.namespace, packet.data,
                                namespace.next_ack_id() if namespace is not None else 1)
        if namespace is not None and opts is not None and packet is not None \
                and packet.id is not None:
            origin = envelope.origin

            def on_ack(sid: str, args: list[object]) -> None:
                self.store.send(origin, Kind.CLIENT_ACK,
                                {"req": request, "args": args, "nsp": packet.namespace})

            count = namespace.adapter.broadcast_with_ack(packet, opts, on_ack)
        nsp = envelope.payload.get("nsp") or (namespace.name if namespace else "/")
        self.store.send(envelope.origin, Kind.CLIENT_COUNT,
                        {"req": request, "count": count, "nsp": nsp})

    def _on_client_count(self, envelope: Envelope) -> None:
        payload = envelope.payload
        if isinstance(payload, dict) and isinstance(payload.get("count"), int) \
                and isinstance(payload.get("req"), int):
            gather = self._gathers.get(payload["req"])
            if gather is not None:
                gather.add_expected(payload["count"])

    def _on_client_ack(self, envelope: Envelope) -> None:
        payload = envelope.payload
        if isinstance(payload, dict) and isinstance(payload.get("args"), list) \
                and isinstance(payload.get("req"), int):
            gather = self._gathers.get(payload["req"])
            if gather is not None:
                gather.add_response(payload["args"])

    def _on_fetch_sockets(self, envelope: Envelope) -> list[dict[str, Any]]:
        namespace, opts = self._namespace(envelope.payload)
        if namespace is None or opts is None:
            return []
        return [describe(socket) for socket in namespace.adapter.match(opts)]

    def _rooms(self, payload: Any) -> frozenset[str] | None:
        rooms = payload.get("rooms") if isinstance(payload, dict) else None
        if isinstance(rooms, list) and all(isinstance(r, str) for r in rooms):
            return rooms_of(tuple(rooms))
        return None

    def _on_sockets_join(self, envelope: Envelope) -> None:
        namespace, opts = self._namespace(envelope.payload)
        rooms = self._rooms(envelope.payload)
        if namespace is not None and opts is not None and rooms is not None:
            namespace.adapter.add_sockets(opts, rooms)

    def _on_sockets_leave(self, envelope: Envelope) -> None:
        namespace, opts = self._namespace(envelope.payload)
        rooms = self._rooms(envelope.payload)
        if namespace is not None and opts is not None and rooms is not None:
            namespace.adapter.del_sockets(opts, rooms)

    def _on_disconnect_sockets(self, envelope: Envelope) -> None:
        namespace, opts = self._namespace(envelope.payload)
        if namespace is not None and opts is not None:
            namespace.adapter.disconnect_sockets(opts, bool(envelope.payload.get("close")))

    def _on_server_side_emit(self, envelope: Envelope) -> Any:
        namespace, _ = self._namespace(envelope.payload)
        data = envelope.payload.get("data") if isinstance(envelope.payload, dict) else None
        if namespace is None or not isinstance(data, list) or not data \
                or not isinstance(data[0], str):
            return None
        return namespace.run_server_side(data[0], tuple(data[1:]))


def run_listeners(listeners: list[Callable[..., Any]], args: tuple[Any, ...],
                  context: str) -> Awaitable[Any]:
    """Run server-side-emit listeners; the first one's result is the answer."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def on_result(result: Any) -> None:
        if not future.done():
            future.set_result(result)

    for index, fn in enumerate(listeners):
        handlers.call(fn, args, context, on_result if index == 0 else None)
    if not listeners:
        future.set_result(None)
    return future


__all__ = ["DONE", "Cluster", "RemoteSocket"]
