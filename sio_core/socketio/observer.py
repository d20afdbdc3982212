"""What an observer of a Socket.IO server is told: the hook the admin UI (sio_core.admin) uses.

How this works: a server has at most one observer, ``io.observer`` (None by default). The
places that report to it (connections, sockets, rooms, emits, broadcasts, incoming
messages) test ``observer is not None`` once per call and do nothing more when there is
none, so an unobserved server pays one attribute test per event and no more. What the
JavaScript server reports with events (the engine's ``connection``, the adapter's
``join-room`` and ``leave-room``, ``onAnyOutgoing``), an observer gets as method calls.

An observer must not raise: it runs inside the server's own paths (a CONNECT being
answered, a broadcast being delivered).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..protocol.session import CloseReason
    from .adapter import BroadcastOptions
    from .client import Client
    from .namespace import Namespace
    from .socket import Socket


class Observer(Protocol):
    def serving(self) -> None:
        """The server is serving (``Server.serve`` has returned), in its event loop."""

    def client_opened(self, client: Client) -> None:
        """A new Engine.IO session."""

    def client_closed(self, client: Client, reason: CloseReason) -> None:
        """An Engine.IO session ended (after its sockets were told)."""

    def message_received(self, data: str | bytes) -> None:
        """One Engine.IO message from a client (a Socket.IO packet or one of its attachments)."""

    def socket_connected(self, socket: Socket) -> None:
        """A socket joined its namespace: its CONNECT reply is out, its listeners not yet run."""

    def socket_disconnected(self, socket: Socket, reason: str) -> None:
        """A socket left its namespace (its rooms are left already)."""

    def room_joined(self, namespace: Namespace, room: str, sid: str) -> None:
        """A socket of this worker entered a room it was not in."""

    def room_left(self, namespace: Namespace, room: str, sid: str) -> None:
        """A socket of this worker left a room it was in."""

    def event_sent(self, socket: Socket, data: list[Any], parts: list[str | bytes]) -> None:
        """An event went to one socket (``socket.emit``); ``parts`` is its wire form."""

    def broadcast_sent(self, namespace: Namespace, data: list[Any], parts: list[str | bytes],
                       opts: BroadcastOptions, count: int) -> None:
        """An event went to ``count`` sockets of this worker (``adapter.match(opts)``)."""
