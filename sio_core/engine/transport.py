"""What carries an Engine.IO session: the transport interface (engine.io's ``transport.ts``).

How this works: an :class:`~sio_core.engine.socket.EngineSocket` runs one session and
talks to the I/O under it only through this interface: it writes the session's output
with :meth:`Transport.send_packets` whenever :attr:`Transport.writable`, ends it with
:meth:`Transport.close`, and learns of input by the callbacks it gives
:meth:`Transport.bind`. One transport carries the session at a time; during an upgrade a
second one is bound to the socket's probe handling until the client's ``5`` switches the
session over (the first one's pending GET, if any, ends with a NOOP).

The transports, one module each, as in engine.io's ``transports/index.ts``:

=================  =================================================================
``polling``        :class:`~sio_core.engine.polling.Polling`: a GET pending or not;
                   the client's packets come as POSTs (polling.py feeds them in)
``websocket``      :class:`~sio_core.engine.websocket.WebSocketConnection`: one
                   packet per frame, in both directions
``websocket``      :class:`~sio_core.engine.remote.RemoteWebSocket`: a websocket
                   accepted by another worker, its frames relayed over the store
=================  =================================================================

Another server under the same engine or another transport (WebTransport) is one more
class with these five members: an ASGI server's websocket is one
(:class:`~sio_core.asgi.ASGIWebSocket`). A websocket the server accepts is a
:class:`WebSocket` (a transport it can also relay frames through, start and cut off);
how it is accepted is the :class:`Connection`'s that carried the upgrade request: our
HTTP/1.1 connection (websocket.py), or another server's (sio_core/asgi.py,
sio_core/aiohttp.py). ``send_packets`` is on every
broadcast's path, once per recipient: a transport writes the packets' pre-framed bytes
(``Packet.ws_frame``, made once per packet) rather than framing them per client.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Protocol

from ..config import Config
from ..http.messages import Request, Response
from ..protocol.engineio import Packet

#: a message from the client: one Engine.IO packet as received, not yet decoded
MessageCallback = Callable[[str | bytes], None]
#: the transport has ended (the client closed it, or its connection was lost)
CloseCallback = Callable[[], None]


class Transport(Protocol):
    @property
    def name(self) -> str:
        """The transport's name in the protocol (the query's ``transport=``)."""
        ...

    @property
    def writable(self) -> bool:
        """Whether :meth:`send_packets` delivers now: a websocket always (its own buffer
        is bounded by ``max_outbound_buffer``); polling while a GET is pending."""
        ...

    def bind(self, on_message: MessageCallback, on_close: CloseCallback) -> None:
        """Where the transport's input goes from now on: each message the client sends,
        and the transport's end. (Polling takes neither: its input comes in POSTs, which
        polling.py feeds to the socket, and a GET that goes away is the socket's to hear.)"""
        ...

    def send_packets(self, packets: list[Packet]) -> None:
        """Write the packets to the client, in order: what the session has to send now."""
        ...

    def close(self) -> None:
        """End the transport: a websocket's closing handshake; polling answers a GET still
        pending with ``1``."""
        ...


class WebSocket(Transport, Protocol):
    """An accepted websocket, as the server keeps it (for a session, or relayed for
    another worker's session, remote.py)."""

    def start(self, trailing: bytes = b"") -> None:
        """Begin reading the client's frames (``trailing``: bytes that came with the
        upgrade request), once the server has decided what the websocket carries."""
        ...

    def send_many(self, messages: Iterable[str | bytes], plain: Collection[int] = ()) -> None:
        """Write encoded Engine.IO packets, one frame each (relayed from the owner); those at
        the indices in ``plain`` never compressed (compress(False))."""
        ...

    def close(self, code: int | None = 1000, reason: str = "") -> None:
        """The closing handshake; ``code`` None sends a close frame with no status code."""
        ...

    def abort(self) -> None:
        """Cut the connection off, with no closing handshake."""
        ...


class Connection(Protocol):
    """What carried a websocket upgrade request, when it is not our HTTP/1.1 connection
    (which websocket.accept takes over): another server's, which accepts its own way."""

    def accept_websocket(self, request: Request, config: Config, registry: set[WebSocket],
                         headers: list[tuple[str, str]] | None = None
                         ) -> WebSocket | Response:
        """Answer the upgrade (101, with ``headers`` added), or return the refusal to send;
        the websocket is in ``registry`` until its connection is gone."""
        ...


def ignore_message(message: str | bytes) -> None:
    """A message before any socket listens (a transport's initial callback)."""


def ignore_close() -> None:
    """An end before any socket listens (a transport's initial callback)."""
