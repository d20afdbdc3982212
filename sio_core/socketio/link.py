"""How Socket.IO's cluster messages reach the other servers: the link under a Cluster.

How this works: a :class:`Link` sends the typed messages of sio_core/socketio/messages.py
and hands those that arrive, decoded, to its :class:`Receiver` (the Cluster). The
:class:`PeerLink` carries them as store envelopes to the other sio_core workers of the
store (the hub, a memory bus: ``store.peers`` are the servers). On Redis the
:class:`~sio_core.socketio.redis_adapter.RedisAdapterLink` extends it to speak the
JavaScript adapter's format instead, so that JavaScript servers on the same Redis are
servers of the cluster too (as node's redis-adapter extends its cluster adapter).
"""

from __future__ import annotations

import functools
from typing import Any, Protocol

from ..stores.base import BadMessage, Envelope, Store
from .messages import (
    MESSAGES,
    Broadcast,
    ClientAck,
    ClientCount,
    ClusterMessage,
    FetchSockets,
    Published,
    ServerSideEmit,
)


class Receiver(Protocol):
    def receive(self, origin: str, message: ClusterMessage) -> Any:
        """Act on a message from ``origin``; for a request, return its answer (a value, a
        Future or a coroutine of it)."""

    def receive_broadcasts(self, origin: str, messages: list[Broadcast]) -> None:
        """Act on broadcasts from ``origin`` that arrived together, in order."""


class PeerLink:
    """The Socket.IO messages as envelopes of the store, to its peers."""

    def __init__(self, receiver: Receiver, store: Store) -> None:
        self.receiver = receiver
        self.store = store
        for cls in MESSAGES:
            store.on(cls.KIND, functools.partial(self._receive, cls))
        store.on_run(Broadcast.KIND, self._receive_broadcasts)

    def _receive(self, cls: type[ClusterMessage], envelope: Envelope) -> Any:
        # a payload that does not decode raises BadMessage: the store drops it
        return self.receiver.receive(envelope.origin, cls.from_wire(envelope.payload))

    def _receive_broadcasts(self, envelopes: list[Envelope]) -> None:
        messages = []
        for envelope in envelopes:
            try:
                messages.append(Broadcast.from_wire(envelope.payload))
            except BadMessage as exc:
                self.store.dropped(exc, f"{envelope.origin} ({envelope.kind})")
        self.receiver.receive_broadcasts(envelopes[0].origin, messages)

    def publish(self, message: Published) -> None:
        """To every other server."""
        self.store.publish(message.KIND, message.to_wire())

    def send(self, target: str, message: ClientCount | ClientAck) -> None:
        """To the server ``target`` (the origin of a message received)."""
        self.store.send(target, message.KIND, message.to_wire())

    async def count_servers(self, namespace: str) -> int:
        """How many other servers answer a request about ``namespace``."""
        return len(self.store.peers)

    async def ask_servers(self, message: FetchSockets | ServerSideEmit,
                          timeout: float) -> list[Any]:
        """A request to every other server: their answers (those that came in time)."""
        return await self.store.gather(message.KIND, message.to_wire(), timeout)

    def namespace_added(self, name: str) -> None:
        """The server has namespace ``name`` now (every server of a store hears them all)."""

    def namespace_removed(self, name: str) -> None:
        """Namespace ``name`` is gone (an empty dynamic child)."""

    def room_created(self, namespace: str, room: str, private: bool) -> None:
        """Room ``room`` has its first member here (every peer hears every broadcast)."""

    def room_deleted(self, namespace: str, room: str, private: bool) -> None:
        """Room ``room`` has no member here any more."""
