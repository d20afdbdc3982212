"""Websockets that another server accepts and frames (an ASGI server's, aiohttp's).

How this works: under another server the engine does not own the TCP connection: the
server parses the handshake and the frames, and gives them to us through its own
interface, whose writes are coroutines (a :class:`Peer`). A :class:`ForeignWebSocket` is
the session's :class:`~sio_core.engine.transport.WebSocket` all the same: ``send_packets`` (called
synchronously, once per recipient of a broadcast) queues the encoded packets, and one
writer task per websocket hands them to the server in order; one reader task feeds the
client's messages to the session. :meth:`ForeignWebSocket.serve` runs both until the
websocket is gone; the server's handler awaits it. The Peer says how the server opens,
writes, closes and reads (sio_core/asgi.py, sio_core/aiohttp.py).

Limits as on our own server: a message longer than ``max_payload`` closes the websocket
with 1009 (the server may have a larger bound of its own); output queued past
``max_outbound_buffer`` (a client that does not read) cuts it off; a client that does
not answer our close frame is cut off after ``websocket_close_timeout``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Collection, Iterable
from typing import Protocol

from ..config import Config
from ..protocol.engineio import Packet, encode_packet
from .transport import CloseCallback, MessageCallback, WebSocket, ignore_close, ignore_message

logger = logging.getLogger("sio_core.websocket")

#: in the outbound queue: the close frame, with its code
_Close = int


class Peer(Protocol):
    """How another server carries one websocket; each method raises the server's own error
    once the connection is gone."""

    async def open(self) -> None:
        """Accept the websocket (answer 101)."""
        ...

    async def write(self, message: str | bytes) -> None: ...

    async def shut(self, code: int) -> None:
        """Send the close frame (the server completes the closing handshake)."""
        ...

    async def read(self) -> str | bytes | None:
        """The client's next message; None once the websocket is gone."""
        ...


class ForeignWebSocket:
    """A websocket of another server, carried by ``peer`` (see the module's docstring)."""

    name = "websocket"
    writable = True

    def __init__(self, peer: Peer, config: Config, registry: set[WebSocket],
                 client: tuple[str, int] | None = None) -> None:
        self.peer = peer
        self._config = config
        self._registry = registry
        registry.add(self)
        self.client = client
        self.on_message: MessageCallback = ignore_message
        self.on_close: CloseCallback = ignore_close
        self._queue: deque[str | bytes | _Close] = deque()
        self._queued = 0  # bytes in the queue, for max_outbound_buffer
        self._wake = asyncio.Event()
        self._closing = False  # our close frame is queued
        self._closed = False  # on_close was called
        self._close_timer: asyncio.TimerHandle | None = None
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- the Transport ----------------------------------------------------------------------

    def bind(self, on_message: MessageCallback, on_close: CloseCallback) -> None:
        self.on_message = on_message
        self.on_close = on_close

    def start(self, trailing: bytes = b"") -> None:
        pass  # the server reads the frames: serve() starts once the handler returns

    def send_packets(self, packets: list[Packet]) -> None:
        self.send_many([encode_packet(p) for p in packets])

    def send_many(self, messages: Iterable[str | bytes], plain: Collection[int] = ()) -> None:
        # whether a frame is compressed is the other server's choice (permessage-deflate
        # as it negotiated it): compress(False) cannot reach it through ASGI or aiohttp
        if self._closing or self._closed:
            return
        for message in messages:
            self._queue.append(message)
            self._queued += len(message)
        self._wake.set()
        limit = self._config.max_outbound_buffer
        if limit is not None and self._queued > limit:
            logger.warning("closing a websocket whose client does not read (%s)", self.client)
            self.abort()

    def close(self, code: int | None = 1000, reason: str = "") -> None:
        # an ASGI server has no close frame without a code: None ("accept and close at
        # once") is a normal closure here
        if self._closing or self._closed:
            return
        self._closing = True
        self._queue.append(1000 if code is None else code)
        self._wake.set()
        self._close_timer = asyncio.get_running_loop().call_later(
            self._config.websocket_close_timeout, self.abort)

    def abort(self) -> None:
        if not self._done.done():
            self._done.set_result(None)
        self.connection_lost()

    def connection_lost(self) -> None:
        self._registry.discard(self)
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if not self._closed:
            self._closed = True
            self.on_close()

    # -- running ----------------------------------------------------------------------------

    async def serve(self) -> None:
        """Accept the websocket and carry it until it is gone (the client closed it, or
        we did, or it was cut off)."""
        loop = asyncio.get_running_loop()
        tasks: list[asyncio.Task[None]] = []
        try:
            if self._done.done():
                return  # cut off before it opened (a drain)
            await self.peer.open()
            tasks = [loop.create_task(self._reading()), loop.create_task(self._writing())]
            await self._done
        except Exception:  # the connection is gone (each server raises its own error)
            pass
        finally:
            for task in tasks:
                task.cancel()
            self.connection_lost()

    def _end(self) -> None:
        if not self._done.done():
            self._done.set_result(None)

    async def _reading(self) -> None:
        while True:
            try:
                message = await self.peer.read()
            except Exception:  # a connection error: the websocket is gone
                break
            if message is None or self._closed:
                break
            if len(message) > self._config.max_payload:
                self.close(1009)  # RFC 6455 7.4.1: too big to process
                continue
            self.on_message(message)
        self._end()

    async def _writing(self) -> None:
        queue = self._queue
        try:
            while True:
                while queue:
                    item = queue.popleft()
                    if isinstance(item, int):
                        await self.peer.shut(item)
                        return  # the reader waits for the client's close frame
                    self._queued -= len(item)
                    await self.peer.write(item)
                self._wake.clear()
                await self._wake.wait()
        except Exception:
            self._end()
