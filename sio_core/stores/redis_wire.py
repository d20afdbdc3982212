"""RedisStore's pub/sub and its PUBLISHes, read and written on the connection without
redis-py's per-message layers.

How this works:

- redis-py makes the connection: :func:`open_wire` makes one of a client's pool's kind
  (``pool.make_connection``) and connects it, so every form and option of the client holds
  (one server, TLS, a Unix socket, the master a Sentinel names, a Cluster node, credentials,
  RESP3). From then on the store speaks on it itself: a :class:`Wire` writes commands packed
  here (:func:`command`) and reads what arrives in whole reads, each parsed by hiredis into
  every reply it holds at once.
- Why: through redis-py, each pub/sub message read cost a ``get_message`` call, its retry
  wrapper, its parser's push handling (with a logger looked up per message) and a dict, and
  each PUBLISH of a pipeline its own packing and reply read; on every node, for every
  broadcast (the sender reads its own back on its pattern), that was most of what a
  broadcast across Redis cost beyond one worker's (benchmarks/PROFILE.md).
- It needs the connection's stream (redis-py's ``_reader``/``_writer``, there since its
  asyncio client came, 4.2): :func:`open_wire` raises a clear error if a redis-py
  release takes it away (pyproject bounds the release).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import hiredis

__all__ = ["Wire", "command", "open_wire", "publish"]

#: what one read takes at most
READ_SIZE = 1 << 16
_MORE = object()


def command(*args: bytes) -> bytes:
    """One command in RESP: an array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts += (b"$%d\r\n" % len(arg), arg, b"\r\n")
    return b"".join(parts)


def publish(channel: str, data: bytes) -> bytes:
    """``command(b"PUBLISH", channel.encode(), data)``, written out: it is on every
    broadcast's path, and runs in half the time of the loop."""
    encoded = channel.encode()
    return b"".join((b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n" % len(encoded), encoded,
                     b"\r\n$%d\r\n" % len(data), data, b"\r\n"))


class Wire:
    """A connected redis-py connection, spoken on directly: commands written as they are,
    replies (and pub/sub pushes) parsed by hiredis, every one a read brought at once."""

    def __init__(self, connection: Any) -> None:
        reader = getattr(connection, "_reader", None)
        writer = getattr(connection, "_writer", None)
        if not isinstance(reader, asyncio.StreamReader) or writer is None:
            raise RuntimeError(f"this redis-py ({type(connection).__module__}) connection "
                               "has no stream to read: a redis-py release the store does "
                               "not know")
        self.connection = connection
        self._reader = reader
        self._writer: asyncio.StreamWriter = writer
        self._parser = hiredis.Reader(notEnoughData=_MORE)

    def send(self, data: bytes) -> None:
        """Write ``data`` (packed commands); a lost connection shows at the next read."""
        self._writer.write(data)

    async def replies(self) -> list[Any]:
        """What the next reads bring, parsed: at least one reply (an error reply is a
        ``hiredis.ReplyError`` among them); ConnectionError when the connection ends."""
        parser = self._parser
        replies: list[Any] = []
        while not replies:
            data = await self._reader.read(READ_SIZE)
            if not data:
                raise ConnectionError("Redis closed the connection")
            parser.feed(data)
            try:
                reply = parser.gets()
                while reply is not _MORE:
                    replies.append(reply)
                    reply = parser.gets()
            except hiredis.ProtocolError as exc:
                raise ConnectionError(f"Redis sent what is not RESP: {exc}") from exc
        return replies

    async def read(self, count: int) -> list[Any]:
        """The next ``count`` replies (of as many commands sent)."""
        replies = await self.replies()
        while len(replies) < count:
            replies += await self.replies()
        return replies

    async def close(self) -> None:
        await self.connection.disconnect()


async def open_wire(make_connection: Callable[[], Any]) -> Wire:
    """A new connection (``make_connection()``: one of a redis-py pool's kind), connected
    by redis-py, to speak on."""
    connection = make_connection()
    await connection.connect()
    try:
        return Wire(connection)
    except RuntimeError:
        await connection.disconnect()
        raise
