"""Socket.IO across workers: broadcasts, acks and socket queries over a store.

How this works: :class:`Cluster` is what a :class:`~sio_core.socketio.namespace.Namespace`
calls when a store is attached; it sends the typed messages of
sio_core/socketio/messages.py through its link (sio_core/socketio/link.py: envelopes to the
store's peers, or the JavaScript adapter's format on Redis) and acts on those that arrive
(:meth:`Cluster.receive`), decoded and checked by then. A broadcast is delivered locally
and published once, encoded once: every other worker writes the same parts to its own
matching sockets (room membership stays local). Requests that need answers
(fetch_sockets, server-side emits with acks) gather from every server with a timeout; a
broadcast with acks gets a client count, then the acks, from every server.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import msgpack

from ..protocol import socketio as sio
from ..stores.base import BadMessage, Store
from . import handlers
from .adapter import BroadcastOptions
from .broadcast import AckGather
from .handlers import DONE
from .link import PeerLink
from .messages import (
    Broadcast,
    BroadcastWithAcks,
    ClientAck,
    ClientCount,
    ClusterMessage,
    DisconnectSockets,
    FetchSockets,
    ServerSideEmit,
    SocketsJoin,
    SocketsLeave,
)
from .socket import Handshake

if TYPE_CHECKING:
    from .namespace import Namespace
    from .redis_adapter import AdapterFormat
    from .server import Server
    from .socket import Socket

logger = logging.getLogger("sio_core.cluster")



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
        self.link = _link(self, store)
        for name in server.namespaces:
            self.namespace_added(name)

    def namespace_added(self, name: str) -> None:
        self.link.namespace_added(name)

    def namespace_removed(self, name: str) -> None:
        self.link.namespace_removed(name)

    # -- outgoing ---------------------------------------------------------------------------

    def broadcast(self, packet: sio.Packet, parts: list[str | bytes],
                  opts: BroadcastOptions) -> None:
        """``parts``: the packet encoded, as this worker writes it: the other workers write
        the same."""
        self.link.publish(Broadcast(packet.namespace, opts, parts, self.server.parser.name,
                                    packet))

    def broadcast_with_ack(self, packet: sio.Packet, opts: BroadcastOptions,
                           gather: AckGather) -> None:
        request = next(self._ids)
        gather.counting = True
        self._gathers[request] = gather
        gather.future.add_done_callback(lambda _: self._gathers.pop(request, None))
        self.link.publish(BroadcastWithAcks(packet, opts, request))
        # counted while the request travels; the counts that come first wait for it
        task = asyncio.get_running_loop().create_task(self._count_servers(packet, gather))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _count_servers(self, packet: sio.Packet, gather: AckGather) -> None:
        try:
            count = await self.link.count_servers(packet.namespace)
        except Exception as exc:
            # the acks of the clients counted so far still come; the timeout ends the rest
            logger.warning("cannot count the servers for a broadcast with acks: %s", exc)
            return
        gather.add_servers(count)

    async def fetch_sockets(self, namespace: Namespace, opts: BroadcastOptions) -> list[Any]:
        replies = await self.link.ask_servers(FetchSockets(namespace.name, opts),
                                              self.server.config.requests_timeout)
        out: list[Any] = []
        for reply in replies:
            if isinstance(reply, list):
                out.extend(RemoteSocket(namespace, info) for info in reply
                           if isinstance(info, dict) and isinstance(info.get("id"), str))
        return out

    def sockets_join(self, namespace: Namespace, opts: BroadcastOptions,
                     rooms: frozenset[str]) -> None:
        self.link.publish(SocketsJoin(namespace.name, opts, rooms))

    def sockets_leave(self, namespace: Namespace, opts: BroadcastOptions,
                      rooms: frozenset[str]) -> None:
        self.link.publish(SocketsLeave(namespace.name, opts, rooms))

    def disconnect_sockets(self, namespace: Namespace, opts: BroadcastOptions,
                           close: bool) -> None:
        self.link.publish(DisconnectSockets(namespace.name, opts, close))

    def server_side_emit(self, namespace: Namespace, event: str, args: tuple[Any, ...]) -> None:
        self.link.publish(ServerSideEmit(namespace.name, [event, *args]))

    async def server_side_emit_with_ack(self, namespace: Namespace, event: str,
                                        args: tuple[Any, ...], timeout: float) -> list[Any]:
        return await self.link.ask_servers(ServerSideEmit(namespace.name, [event, *args]),
                                           timeout)

    # -- incoming ---------------------------------------------------------------------------

    def receive(self, origin: str, message: ClusterMessage) -> Any:
        """A message from the server ``origin``, decoded; for a request, its answer."""
        if isinstance(message, Broadcast):  # the usual message, first
            self.receive_broadcasts(origin, [message])
            return None
        if isinstance(message, ClientCount):
            gather = self._gather(message.request)
            if gather is not None:
                gather.add_expected(message.count)
            return None
        if isinstance(message, ClientAck):
            gather = self._gather(message.request)
            if gather is not None:
                gather.add_response(message.args)
            return None
        if isinstance(message, BroadcastWithAcks):
            self._on_broadcast_acks(origin, message)
            return None
        namespace = self.server.namespace_now(message.namespace)
        if isinstance(message, ServerSideEmit):
            if namespace is None:
                return None
            return namespace.run_server_side(message.data[0], tuple(message.data[1:]))
        if isinstance(message, FetchSockets):
            if namespace is None:
                return []
            return [describe(socket) for socket in namespace.adapter.match(message.opts)]
        if namespace is None:
            return None
        adapter = namespace.adapter
        if isinstance(message, SocketsJoin):
            adapter.add_sockets(message.opts, message.rooms)
        elif isinstance(message, SocketsLeave):
            adapter.del_sockets(message.opts, message.rooms)
        else:
            adapter.disconnect_sockets(message.opts, message.close)
        return None

    def receive_broadcasts(self, origin: str, messages: list[Broadcast]) -> None:
        """Broadcasts that arrived together (a burst of another server's), in order: each
        run of them to the same sockets (one namespace, the same options) is delivered in
        one pass over the recipients."""
        for (nsp, opts), group in itertools.groupby(
                messages, lambda message: (message.namespace, message.opts)):
            runs: list[list[str | bytes]] = []
            for message in group:
                try:
                    runs.append(self._parts(message))
                except BadMessage as exc:  # in another parser: dropped, the others not
                    self.link.store.dropped(exc, f"{origin} ({message.KIND})")
            namespace = self.server.namespace_now(nsp)
            if namespace is not None and runs:
                namespace.adapter.broadcast_encoded_run(runs, opts)

    def _parts(self, message: Broadcast) -> list[str | bytes]:
        """A broadcast's packet as this server writes it: the parts it carries (a sio_core
        worker's, checked to be in this server's parser), or a JavaScript server's packet
        encoded here."""
        parser = self.server.parser
        if message.parts is None:
            assert message.packet is not None
            return parser.encode(message.packet)
        if message.parser != parser.name:
            raise BadMessage(f"a broadcast in the {message.parser} parser (this server's is"
                             f" {parser.name})")
        return message.parts

    def _gather(self, request: int | str) -> AckGather | None:
        return self._gathers.get(request) if isinstance(request, int) else None

    def _on_broadcast_acks(self, origin: str, message: BroadcastWithAcks) -> None:
        packet = message.packet
        namespace = self.server.namespace_now(packet.namespace)
        request = message.request
        count = 0
        if namespace is not None:
            if packet.id is None:
                # a JavaScript server's request: the ack id is ours to choose
                packet = sio.Packet(packet.type, packet.namespace, packet.data,
                                    namespace.next_ack_id())

            def on_ack(sid: str, args: list[object]) -> None:
                self.link.send(origin, ClientAck(request, list(args), packet.namespace))

            count = namespace.adapter.broadcast_with_ack(packet, message.opts, on_ack)
        self.link.send(origin, ClientCount(request, count, packet.namespace))


def _link(cluster: Cluster, store: Store) -> PeerLink | AdapterFormat:
    """The JavaScript adapter's format on a bus JavaScript servers share (Redis), envelopes to
    the peers elsewhere."""
    if not store.raw_channels:
        return PeerLink(cluster, store)
    # imported only then: the redis client is needed only with a RedisStore (importing
    # sio_core does not import it)
    from ..stores.redis import RedisStore
    from .redis_adapter import adapter_link
    assert isinstance(store, RedisStore)
    return adapter_link(cluster, store)


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
