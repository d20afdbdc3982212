"""A fake Engine.IO session, for in-process tests of the Socket.IO layer (sio_core/socketio/).

The Socket.IO layer sees an Engine.IO session only through a few members of
:class:`~sio_core.engine.socket.EngineSocket`: ``sid``, ``request``, ``context``, ``closed``,
``core.writable``, ``send``, ``send_packets`` and ``close``. :class:`FakeEngineSocket` has those
and nothing else, and plays the engine around them: it opens itself on the server
(``on_open``), hands it the client's messages (``on_message``) and tells it of the end
(``on_close``), as the engine would. Tests speak in literal Socket.IO packets, each one Engine.IO
message's content: ``conn.receive("0", '2["hello",1]')`` in, ``conn.take() == ['0{"sid":"*"}',
...]`` out (with :func:`masked` for the random ids), ``bytes`` for a binary attachment.

Engine.IO itself (the session state machine, polling, websockets) has its own tests; here the
engine is reduced to what the layer above may rely on: a message is handed over whole, nothing
is handed over once the session is closed, sends fail once it is closing, and the server hears of
the end once, with its reason.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Callable
from typing import Any

from sio_core.engine.socket import EngineHandler
from sio_core.protocol import engineio
from sio_core.protocol.session import CloseReason
from sio_core.socketio.server import Server
from sio_core.socketio.socket import Socket
from tests.support import scaled

_sids = itertools.count(1)

#: ids the server makes up (a socket's id in a CONNECT reply, and the like)
_RANDOM_ID = re.compile(r'"sid":"[^"]*"')


def masked(messages: list[str | bytes]) -> list[str | bytes]:
    """The messages with the server's random ids written ``*``, for comparing with a table."""
    return [_RANDOM_ID.sub('"sid":"*"', m) if isinstance(m, str) else m for m in messages]


class _Core:
    """The one thing the Socket.IO layer asks the session's core: whether its transport takes
    output now (a volatile packet is dropped when it does not, as in the reference)."""

    writable = True


class FakeEngineSocket:
    """One client's Engine.IO session on ``server``.

    With ``deferred_close`` a close the server starts is completed only by
    :meth:`finish_close`, as over polling, where the engine tells the server once the client
    has read the ``1`` (until then the session takes no output but its sockets are connected).
    """

    def __init__(self, server: EngineHandler, *, request: Any = None,
                 deferred_close: bool = False) -> None:
        self.sid = f"fake{next(_sids)}"
        #: what the handshake request carried (a sio_core.http.messages.Request, or None)
        self.request = request
        #: the engine's slot for the layer above (the Socket.IO client object)
        self.context: Any = None
        self.core = _Core()
        #: why the session ended (or is ending), once it does
        self.close_reason: CloseReason | None = None
        #: the messages the server sent, in order, until taken
        self.sent: list[str | bytes] = []
        self._server = server
        self._deferred_close = deferred_close
        self._finished = False
        self._activity = asyncio.Event()
        server.on_open(self)

    # -- what the Socket.IO layer uses ----------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self.close_reason is not None

    def send(self, data: str | bytes, compress: bool = True) -> bool:
        if self.closed:
            return False
        self._record([data])
        return True

    def send_packets(self, packets: list[engineio.Packet]) -> bool:
        if self.closed:
            return False
        assert all(p.type is engineio.PacketType.MESSAGE for p in packets)
        self._record([p.data for p in packets])
        return True

    def close(self, reason: CloseReason = CloseReason.FORCED_CLOSE) -> None:
        if self.closed:
            return
        self.close_reason = reason
        self._activity.set()
        if not self._deferred_close:
            self.finish_close()

    # -- what the test does as the client (and the engine) ---------------------------------------

    @property
    def writable(self) -> bool:
        return self.core.writable

    @writable.setter
    def writable(self, value: bool) -> None:
        self.core.writable = value

    def receive(self, *messages: str | bytes) -> None:
        """Messages from the client, handed to the server in order (the rest is dropped once
        the session is closed, as the engine drops packets behind a refused one)."""
        for message in messages:
            if self.closed:
                return
            self._server.on_message(self, message)

    def receive_close(self) -> None:
        """The client closes its Engine.IO session (``1``)."""
        self.end(CloseReason.TRANSPORT_CLOSE)

    def end(self, reason: CloseReason) -> None:
        """The session ends without a word to the client (its transport closed, a ping
        timeout, a parse error, the server shutting down)."""
        if self.closed:
            return
        self.close_reason = reason
        self.finish_close()

    def finish_close(self) -> None:
        """The engine is done with the session: the server hears of it, once."""
        assert self.close_reason is not None
        if not self._finished:
            self._finished = True
            self._activity.set()
            self._server.on_close(self, self.close_reason)

    def take(self) -> list[str | bytes]:
        """The messages sent since the last call."""
        out, self.sent = self.sent, []
        return out

    async def wait_sent(self, count: int) -> None:
        """Wait until ``count`` messages have been sent since the last take."""
        async with asyncio.timeout(scaled(5)):
            while len(self.sent) < count:
                self._activity.clear()
                await self._activity.wait()

    async def take_when(self, count: int) -> list[str | bytes]:
        """Wait until ``count`` messages have been sent since the last take, then take them
        all."""
        await self.wait_sent(count)
        return self.take()

    async def wait_closed(self) -> CloseReason:
        async with asyncio.timeout(scaled(5)):
            while not self._finished:
                self._activity.clear()
                await self._activity.wait()
        assert self.close_reason is not None
        return self.close_reason

    def _record(self, messages: list[str | bytes]) -> None:
        self.sent.extend(messages)
        self._activity.set()


async def connect(server: Server, namespace: str = "/", auth: str = "",
                  conn: FakeEngineSocket | None = None) -> tuple[FakeEngineSocket, Socket]:
    """A client connected to ``namespace`` (``auth``: the CONNECT's JSON payload, if any),
    its CONNECT reply taken (what the ``connection`` listeners sent is left in ``sent``)."""
    conn = conn or FakeEngineSocket(server)
    prefix = "" if namespace == "/" else namespace + ","
    conn.receive("0" + prefix + auth)
    await conn.wait_sent(1)
    reply = conn.sent.pop(0)
    assert masked([reply]) == ["0" + prefix + '{"sid":"*"}'], reply
    socket: Socket = conn.context.sockets[namespace]
    return conn, socket


class Watcher:
    """A fake of the server's observer (sio_core/socketio/observer.py) that keeps each call
    it is told of, as ``(method name, *args)``."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args: self.seen.append((name, *args))

    def told(self, name: str) -> list[tuple[Any, ...]]:
        """The arguments of each call of ``name``."""
        return [seen[1:] for seen in self.seen if seen[0] == name]
