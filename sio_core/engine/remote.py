"""WebSockets that live on another worker: the two ends of a frame proxy over a store.

When a websocket upgrade for a session lands on a worker that does not own the session,
that worker accepts the websocket and relays frames: a :class:`WebSocketProxy` on the
accepting worker, a :class:`RemoteWebSocket` on the owner, which is the session's
:class:`~sio_core.engine.transport.Transport` there, as a local WebSocketConnection is.
Frames travel in order (the store keeps the order between two workers); closing either end
closes the other.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from ..protocol.engineio import Packet, encode_packet
from ..stores.base import Store
from .messages import WsClose, WsIn, WsOut
from .transport import CloseCallback, MessageCallback, WebSocket, ignore_close, ignore_message


class RemoteWebSocket:
    """The owner's end: the session's transport, its frames relayed by the proxy."""

    name = "websocket"
    writable = True

    def __init__(self, store: Store, proxy_owner: str, proxy_id: str,
                 on_lost: Callable[[], object] | None = None) -> None:
        self.store = store
        self._on_lost = on_lost
        self.proxy_owner = proxy_owner
        self.proxy_id = proxy_id
        self.on_message: MessageCallback = ignore_message
        self.on_close: CloseCallback = ignore_close
        self._closed = False

    def bind(self, on_message: MessageCallback, on_close: CloseCallback) -> None:
        self.on_message = on_message
        self.on_close = on_close

    def send_packets(self, packets: list[Packet]) -> None:
        if not self._closed:
            # compress(False): those frames are never deflated by the proxy
            self.store.send(self.proxy_owner, WsOut.KIND, WsOut(
                self.proxy_id, [encode_packet(p) for p in packets],
                [i for i, p in enumerate(packets) if not p.compress]).to_wire())

    def close(self, code: int = 1000, reason: str = "") -> None:
        if not self._closed:
            self.store.send(self.proxy_owner, WsClose.KIND, WsClose(self.proxy_id).to_wire())
            self.connection_lost()

    def connection_lost(self) -> None:
        """The proxy's websocket closed (or its worker is gone)."""
        if not self._closed:
            self._closed = True
            if self._on_lost is not None:
                self._on_lost()
            self.on_close()


class WebSocketProxy:
    """The accepting worker's end: relays a local websocket to the session's owner."""

    def __init__(self, store: Store, owner: str, proxy_id: str, ws: WebSocket,
                 on_done: CloseCallback) -> None:
        self.store = store
        self.owner = owner
        self.proxy_id = proxy_id
        self.ws = ws
        self._on_done = on_done
        self._closed = False
        ws.bind(self._from_client, self._client_closed)

    def _from_client(self, message: str | bytes) -> None:
        self.store.send(self.owner, WsIn.KIND, WsIn(self.proxy_id, message).to_wire())

    def _client_closed(self) -> None:
        if not self._closed:
            self._closed = True
            self.store.send(self.owner, WsClose.KIND, WsClose(self.proxy_id).to_wire())
            self._on_done()

    def to_client(self, messages: list[str | bytes], plain: Collection[int] = ()) -> None:
        """Write the owner's messages; those at the indices in ``plain`` uncompressed."""
        self.ws.send_many(messages, plain)

    def owner_closed(self) -> None:
        if not self._closed:
            self._closed = True
            self.ws.close()
            self._on_done()
