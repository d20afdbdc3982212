"""One Engine.IO session seen from Socket.IO: its decoder and its sockets, one per namespace.

How this works: every Engine.IO message is fed to the connection's
:class:`~sio_core.protocol.socketio.Decoder` (or the msgpack parser's, see
:mod:`sio_core.protocol.parsers`). A CONNECT for a namespace not yet joined
starts the namespace's connection (middlewares may await), unless the client has joined
``max_namespaces_per_client`` already (CONNECT_ERROR); any other packet goes to the
socket of its namespace. Anything else (undecodable input, a packet for a namespace the
client has not joined, a second CONNECT) closes the connection, as the reference does.
Without any CONNECT within ``connect_timeout`` the connection is closed too.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Protocol

from ..exceptions import SocketIOProtocolError
from ..protocol import socketio as sio
from ..protocol.engineio import Packet
from ..protocol.session import CloseReason
from .socket import Handshake, Socket, handshake_time

if TYPE_CHECKING:
    from .namespace import Namespace
    from .server import Server

logger = logging.getLogger("sio_core.socketio")

#: Engine.IO close reasons in the words a Socket.IO "disconnect" handler receives.
DISCONNECT_REASONS = {
    CloseReason.TRANSPORT_CLOSE: "transport close",
    CloseReason.TRANSPORT_ERROR: "transport error",
    CloseReason.PARSE_ERROR: "parse error",
    CloseReason.PING_TIMEOUT: "ping timeout",
    # the application closed the Engine.IO session (socket.conn.close()), or the Socket.IO
    # layer did on undecodable input: the reference says "forced close" for both
    CloseReason.FORCED_CLOSE: "forced close",
    CloseReason.SERVER_SHUTTING_DOWN: "server shutting down",
}


class Session(Protocol):
    """What the Socket.IO layer uses of its Engine.IO session: an
    :class:`~sio_core.engine.socket.EngineSocket`, or the in-process tests' fake of one. (Not
    EngineSocket itself: the mypyc build checks an argument of a compiled class's type at run
    time, and a fake is no EngineSocket.)"""

    sid: str
    #: the handshake's HTTP Request
    request: Any
    #: free for the layer above: this Client
    context: Any
    #: the session's core (an EngineSession): ``writable``, ``transport``
    core: Any

    @property
    def closed(self) -> bool: ...

    def send(self, data: str | bytes, compress: bool = True) -> bool: ...

    def send_packets(self, packets: list[Packet]) -> bool: ...

    def close(self, reason: CloseReason = CloseReason.FORCED_CLOSE) -> None: ...


class Client:
    # slots: one lives as long as its connection (thousands of idle ones)
    __slots__ = ("_connect_timer", "_connecting", "_decoder", "conn", "server", "sockets")

    def __init__(self, server: Server, conn: Session) -> None:
        self.server = server
        self.conn = conn
        self.sockets: dict[str, Socket] = {}
        #: namespaces whose CONNECT waits (middlewares, the recovery log): None until one
        #: does (an empty set per connection costs 216 bytes)
        self._connecting: set[str] | None = None
        config = server.config
        self._decoder = server.parser.decoder(max_attachments=config.max_attachments,
                                              max_depth=config.max_json_depth)
        self._connect_timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
            config.connect_timeout, self._connect_timeout)

    # -- input ------------------------------------------------------------------------------

    def on_message(self, data: str | bytes) -> None:
        server = self.server
        counters = server.counters
        counters.messages_received += 1
        counters.received_bytes += len(data)
        if server.observer is not None:
            server.observer.message_received(data)
        try:
            if isinstance(data, str):
                packet = self._decoder.feed_text(data)
            else:
                packet = self._decoder.feed_binary(data)
        except SocketIOProtocolError:
            self.protocol_error()
            return
        if packet is None:
            return
        name = packet.namespace
        socket = self.sockets.get(name)
        if packet.type is sio.PacketType.CONNECT:
            connecting = self._connecting
            if socket is not None or (connecting is not None and name in connecting):
                self.invalid_state()
                return
            limit = self.server.config.max_namespaces_per_client
            if limit is not None and len(self.sockets) + len(connecting or ()) >= limit:
                self.refuse(name, "Too many namespaces", None)
                return
            auth = packet.data if isinstance(packet.data, dict) else {}
            recovery = self.server.recovery
            if recovery is None or not recovery.connect(self, name, auth):
                self.connect_fresh(name, auth)
        elif socket is not None:
            socket.on_packet(packet)
        elif self._connecting is not None and name in self._connecting:
            pass  # sent while its CONNECT is still in the middlewares: dropped
        else:
            self.invalid_state()

    def connect_fresh(self, name: str, auth: dict[str, Any]) -> None:
        """Connect to a namespace as a new socket (the middlewares, then admitted)."""
        namespace = self.server.namespace_now(name)
        if namespace is not None and not namespace.middlewares:
            # nothing to await (no middleware, no dynamic match): connected at once,
            # without a task and a loop turn per connection
            self._connect_now(namespace, auth)
            return
        self.connecting(name)
        task = asyncio.get_running_loop().create_task(self._connect(name, auth))
        _connects.add(task)
        task.add_done_callback(_connects.discard)

    def connecting(self, name: str) -> None:
        """A CONNECT that waits for something else (the recovery log's answer): packets
        for that namespace are dropped meanwhile, a second CONNECT refused."""
        if self._connecting is None:
            self._connecting = set()
        self._connecting.add(name)

    def connected_or_refused(self, name: str) -> None:
        if self._connecting is not None:
            self._connecting.discard(name)

    async def _connect(self, name: str, auth: dict[str, Any]) -> None:
        try:
            namespace = await self.server.find_namespace(name, auth)
            if namespace is None:
                self.refuse(name, "Invalid namespace", None)
                return
            await namespace.add(self, auth)
        except Exception:
            self._connect_failed(name)
        finally:
            self.connected_or_refused(name)

    def _connect_now(self, namespace: Namespace, auth: dict[str, Any]) -> None:
        try:
            namespace.admit(self, Socket(namespace, self, auth))
        except Exception:
            self._connect_failed(namespace.name)

    def _connect_failed(self, name: str) -> None:
        """A bug on the server's side while connecting: logged; the client is refused."""
        logger.exception("error connecting to namespace %s", name)
        self.refuse(name, "Internal server error", None)

    def on_close(self, reason: CloseReason) -> None:
        self._cancel_connect_timer()
        text = DISCONNECT_REASONS.get(reason, reason.value)
        for socket in list(self.sockets.values()):
            socket.on_close(text)

    # -- output -----------------------------------------------------------------------------

    def send_packet(self, packet: sio.Packet) -> bool:
        return self.send_parts(self.server.parser.encode(packet))

    def send_parts(self, parts: list[str | bytes], *, volatile: bool = False,
                   compress: bool = True) -> bool:
        conn = self.conn
        if conn.closed:
            return False
        if volatile and not conn.core.writable:
            return False  # reference: a volatile packet is dropped when not writable
        counters = self.server.counters
        for part in parts:
            conn.send(part, compress)
            counters.sent_bytes += len(part)
        counters.messages_sent += len(parts)
        return True

    def send_packets(self, packets: list[Packet], *, volatile: bool = False) -> bool:
        """Engine.IO packets shared by every recipient of a broadcast (a closing session
        refuses them itself)."""
        conn = self.conn
        if volatile and not conn.core.writable:
            return False
        return conn.send_packets(packets)

    def refuse(self, name: str, message: str, data: Any) -> None:
        self.server.counters.connect_errors += 1
        body: dict[str, Any] = {"message": message}
        if data is not None:
            body["data"] = data
        self.send_packet(sio.Packet(sio.PacketType.CONNECT_ERROR, name, body))

    # -- sockets ----------------------------------------------------------------------------

    def add(self, socket: Socket) -> None:
        self.sockets[socket.namespace.name] = socket
        self._cancel_connect_timer()

    def remove(self, socket: Socket) -> None:
        if self.sockets.get(socket.namespace.name) is socket:
            del self.sockets[socket.namespace.name]

    def build_handshake(self, auth: dict[str, Any]) -> Handshake:
        request = self.conn.request
        # the request's own dicts, shared by the client's sockets, as the reference's
        # socket.handshake.headers is the request's headers object
        headers = getattr(request, "headers", None) or {}
        query = getattr(request, "query", None) or {}
        client = getattr(request, "client", None)
        text, issued = handshake_time()
        raw_url = getattr(request, "raw_url", b"") or b""
        return Handshake(
            headers=headers, query=query, auth=auth,
            address=client[0] if client else None,
            secure=getattr(request, "secure", False),
            time=text, issued=issued,
            url=raw_url.decode("latin-1"),
            xdomain="origin" in headers,
        )

    # -- ending -----------------------------------------------------------------------------

    def disconnect_all(self) -> None:
        """``socket.disconnect(True)``: every socket leaves its namespace, then the
        connection closes."""
        for socket in list(self.sockets.values()):
            socket.disconnect()
        self.close()

    def close(self) -> None:
        self._cancel_connect_timer()
        self.conn.close()

    def protocol_error(self) -> None:
        """Undecodable Socket.IO input: the reference closes the Engine.IO session, so the
        sockets see "forced close" ("parse error" is for undecodable Engine.IO packets)."""
        logger.debug("closing %s: protocol error", self.conn.sid)
        self._cancel_connect_timer()
        self.conn.close(CloseReason.FORCED_CLOSE)

    def invalid_state(self) -> None:
        """A packet the connection's state forbids (a second CONNECT, a packet for a
        namespace not joined, a CONNECT_ERROR from the client): as the reference's
        ``Client.close()``, the sockets see "forced server close", then the session ends."""
        logger.debug("closing %s: packet not allowed in this state", self.conn.sid)
        for socket in list(self.sockets.values()):
            socket.on_close("forced server close")
        self.close()

    def _connect_timeout(self) -> None:
        self._connect_timer = None
        if not self.sockets:
            logger.debug("closing %s: no CONNECT in time", self.conn.sid)
            self.conn.close()

    def _cancel_connect_timer(self) -> None:
        if self._connect_timer is not None:
            self._connect_timer.cancel()
            self._connect_timer = None


_connects: set[asyncio.Task[None]] = set()
