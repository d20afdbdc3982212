"""What a worker reports to the admin UI: its sockets, rooms and events, and its stats.

How this works: :class:`AdminObserver` is the server's observer
(sio_core.socketio.observer). Each worker reports on its own sockets only, and reports by
emitting to the admin namespace, which (with the hub or Redis) reaches the UI's sockets on
every worker and node: the UI merges what every server says, as with the JavaScript admin.

- Always: every ``stats_interval`` a ``server_stats`` (this worker's clients, how many poll,
  its namespaces, and the counts of :class:`~sio_core.admin.events.EventBuffer`).
- In development mode, as they happen: ``socket_connected``, ``socket_disconnected``,
  ``room_joined``, ``room_left``, ``event_received``, ``event_sent``, and ``socket_updated``
  when a socket's ``data`` changes (a top-level key: the JavaScript admin's Proxy sees
  nested changes too) or its client has upgraded (noticed at the next stats tick; the
  JavaScript admin hears the engine's ``upgrade`` event). Nothing is reported of the admin
  namespace's own events, which are these reports.
"""

from __future__ import annotations

import asyncio
import os
import socket as socket_module
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .events import EventBuffer
from .serialize import ADMIN_KEY, admin_info, plain, serialize_data, serialize_socket, timestamp

if TYPE_CHECKING:
    from ..protocol.session import CloseReason
    from ..socketio.adapter import BroadcastOptions
    from ..socketio.client import Client
    from ..socketio.namespace import Namespace
    from ..socketio.server import Server
    from ..socketio.socket import Socket


class WatchedData(dict[str, Any]):
    """``socket.data`` of a socket the UI follows: a change of a key calls ``changed``."""

    __slots__ = ("_changed",)

    def __init__(self, initial: dict[str, Any], changed: Callable[[], None]) -> None:
        super().__init__(initial)
        self._changed = changed

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._changed()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._changed()

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self._changed()

    def __ior__(self, other: Any) -> WatchedData:  # type: ignore[override,misc]
        self.update(other)
        return self

    def pop(self, *args: Any) -> Any:
        value = super().pop(*args)
        self._changed()
        return value

    def popitem(self) -> tuple[str, Any]:
        item = super().popitem()
        self._changed()
        return item

    def setdefault(self, key: str, default: Any = None) -> Any:
        value = super().setdefault(key, default)
        self._changed()
        return value

    def clear(self) -> None:
        super().clear()
        self._changed()


class AdminObserver:
    def __init__(self, io: Server, admin: Namespace, *, development: bool,
                 server_id: str | None, stats_interval: float) -> None:
        self.io = io
        self.admin = admin
        self.development = development
        self.stats_interval = stats_interval
        self.events = EventBuffer()
        #: this worker's Engine.IO sessions -> the transport last reported
        self.clients: dict[Client, str] = {}
        self.base_stats = {"serverId": server_id or f"{socket_module.gethostname()}#{os.getpid()}",
                           "hostname": socket_module.gethostname(), "pid": os.getpid()}
        self._started = time.monotonic()
        self._timer: asyncio.TimerHandle | None = None

    def _heard(self) -> bool:
        """Whether a report can reach a UI: one is connected here, or other workers may have
        one (the others are not asked: the JavaScript admin emits to its adapter alike)."""
        return bool(self.admin.sockets) or self.io.cluster is not None

    def _emit(self, event: str, *args: Any) -> None:
        if self._heard():
            self.admin.emit(event, *args)

    # -- the stats, every stats_interval -------------------------------------------------

    def serving(self) -> None:
        if self._timer is None:
            self.tick()

    def tick(self) -> None:
        """Send this worker's server_stats (and the upgrades seen since the last), then again
        in stats_interval."""
        if self._timer is not None:
            self._timer.cancel()  # called early: one chain of ticks still
        self._timer = asyncio.get_running_loop().call_later(self.stats_interval, self.tick)
        polling = 0
        for client, reported in self.clients.items():
            transport = client.conn.core.transport.value
            if transport == "polling":
                polling += 1
            if transport != reported:
                self.clients[client] = transport
                if self.development:
                    self._upgraded(client, transport)
        self._emit("server_stats", {
            **self.base_stats,
            "uptime": time.monotonic() - self._started,
            "clientsCount": len(self.clients),
            "pollingClientsCount": polling,
            "aggregatedEvents": self.events.take(),
            "namespaces": [{"name": name, "socketsCount": len(namespace.sockets)}
                           for name, namespace in self.io.namespaces.items()],
        })

    def _upgraded(self, client: Client, transport: str) -> None:
        for socket in list(client.sockets.values()):
            info = socket.data.get(ADMIN_KEY) if isinstance(socket.data, dict) else None
            if isinstance(info, dict):
                info["transport"] = transport  # what fetch_sockets hands the other workers
            self._emit("socket_updated", {"id": socket.id, "nsp": socket.namespace.name,
                                          "transport": transport})

    # -- Engine.IO sessions and traffic (counted in both modes) ------------------------------

    def client_opened(self, client: Client) -> None:
        self.clients[client] = client.conn.core.transport.value
        self.events.push("rawConnection")

    def client_closed(self, client: Client, reason: CloseReason) -> None:
        self.clients.pop(client, None)
        self.events.push("rawDisconnection", str(reason))

    def message_received(self, data: str | bytes) -> None:
        self.events.push("packetsIn")
        self.events.push("bytesIn", count=len(data))

    def _count_out(self, parts: list[str | bytes], recipients: int) -> None:
        if recipients:
            self.events.push("packetsOut", count=len(parts) * recipients)
            self.events.push("bytesOut", count=sum(map(len, parts)) * recipients)

    # -- sockets, rooms, events (development mode) -------------------------------------------

    def socket_connected(self, socket: Socket) -> None:
        if not self.development:
            return
        conn = socket.conn
        info = admin_info(conn.sid, conn.core.transport.value)
        socket.data = WatchedData({**socket.data, ADMIN_KEY: info},
                                  lambda: self._data_changed(socket))
        if socket.namespace is not self.admin:
            socket.on_any(lambda event, *args: self._emit(
                "event_received", socket.namespace.name, socket.id, plain([event, *args]),
                timestamp()))
        if self._heard():
            self._emit("socket_connected", serialize_socket(socket), timestamp())

    def _data_changed(self, socket: Socket) -> None:
        self._emit("socket_updated", {"id": socket.id, "nsp": socket.namespace.name,
                                      "data": serialize_data(socket.data)})

    def socket_disconnected(self, socket: Socket, reason: str) -> None:
        if self.development:
            self._emit("socket_disconnected", socket.namespace.name, socket.id, reason,
                       timestamp())

    def room_joined(self, namespace: Namespace, room: str, sid: str) -> None:
        if self.development:
            self._emit("room_joined", namespace.name, room, sid, timestamp())

    def room_left(self, namespace: Namespace, room: str, sid: str) -> None:
        if self.development:
            self._emit("room_left", namespace.name, room, sid, timestamp())

    def event_sent(self, socket: Socket, data: list[Any], parts: list[str | bytes]) -> None:
        self._count_out(parts, 1)
        if self.development and socket.namespace is not self.admin:
            self._emit("event_sent", socket.namespace.name, socket.id, data, timestamp())

    def broadcast_sent(self, namespace: Namespace, data: list[Any], parts: list[str | bytes],
                       opts: BroadcastOptions, count: int) -> None:
        self._count_out(parts, count)
        if self.development and namespace is not self.admin and count and self._heard():
            when = timestamp()
            for socket in list(namespace.adapter.match(opts)):
                self._emit("event_sent", namespace.name, socket.id, data, when)
