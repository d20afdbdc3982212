"""Emitter: emit to a Socket.IO cluster from any Python program (a Celery task, a script)
that runs no server, through Redis.

It speaks the wire format of the JavaScript ``@socket.io/redis-emitter`` 5, so what it
publishes is read alike by sio_core's RedisStore and by JavaScript servers on
``@socket.io/redis-adapter`` (the same channels and messages: tests/test_emitter.py
compares them):

- **An emit** is ``[uid, packet, opts]`` in msgpack (notepack.io, the adapter's default
  parser, in JavaScript): uid ``"emitter"``, packet ``{"type": 2 (EVENT), "data": [event,
  *args], "nsp"}``, opts ``{"rooms", "flags", "except"}``; published on ``<key>#<nsp>#``,
  or ``<key>#<nsp>#<room>#`` when it targets exactly one room. Bytes are msgpack bin, as
  notepack packs a Buffer, and the packet stays an EVENT: each server makes the binary
  packet for its clients.
- **sockets_join, sockets_leave, disconnect_sockets, server_side_emit** are requests on
  ``<key>-request#<nsp>#``, in JSON as the JavaScript emitter sends them (the first three
  without a uid, the last with ``"emitter"``). A server-side emit with bytes, which JSON
  cannot carry (JSON.stringify turns a Buffer into ``{"type": "Buffer", ...}``), goes in
  msgpack instead: both adapters decode a request that does not start with ``{`` with
  their parser.
- Refused as by the JavaScript emitter: the reserved event names (ReservedEventError).
  There are no acks: an emitter is not a server, nothing would receive them.

The Redis client is the caller's: a URL makes a redis-py sync client (Celery tasks and
scripts, the common case), and a ``redis.asyncio`` client passed in makes every call return
an awaitable. One code path serves both: each call builds its message and returns what the
client's ``publish`` returns (the number of Redis subscribers that received it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Generic, Protocol, TypeVar, overload

from redis import Redis

from .socketio.broadcast import event_packet
from .socketio.redis_adapter import (
    REMOTE_DISCONNECT,
    REMOTE_JOIN,
    REMOTE_LEAVE,
    SERVER_SIDE_EMIT,
    broadcast_channel,
    js_pack,
    json_pack,
    request_channel,
)
from .stores.redis import Pack, msgpack_pack

__all__ = ["Emitter", "EmitterOperator", "Publisher"]

#: the uid of the JavaScript emitter's messages (no server has it, so none skips them)
UID = "emitter"

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

Rooms = str | Iterable[str]


class Publisher(Protocol[R_co]):
    """A Redis client: redis-py's ``Redis`` (returns an int) or ``redis.asyncio.Redis`` (an
    awaitable of it), or anything with that method."""

    def publish(self, channel: str, message: bytes) -> R_co: ...


def _rooms_in_order(rooms: tuple[Rooms, ...]) -> list[str]:
    # the caller's order, as the JavaScript emitter keeps it (a Set, an array), so that the
    # same calls publish the same message
    out: list[str] = []
    for room in rooms:
        out.extend([room] if isinstance(room, str) else room)
    return out


class EmitterOperator(Generic[R]):
    """The recipients of an emit (a namespace, rooms, rooms excepted, flags); immutable,
    each chained call returns a new one (the JavaScript emitter's BroadcastOperator)."""

    def __init__(self, client: Publisher[R], key: str, pack: Pack, namespace: str,
                 rooms: tuple[str, ...] = (), except_rooms: tuple[str, ...] = (),
                 flags: dict[str, bool] | None = None) -> None:
        self._client = client
        self._key = key
        self._pack = pack
        self._namespace = namespace
        self._rooms = rooms
        self._except = except_rooms
        self._flags = flags or {}

    def _with(self, *, rooms: tuple[str, ...] | None = None,
              except_rooms: tuple[str, ...] | None = None,
              flags: dict[str, bool] | None = None) -> EmitterOperator[R]:
        return EmitterOperator(self._client, self._key, self._pack, self._namespace,
                               self._rooms if rooms is None else rooms,
                               self._except if except_rooms is None else except_rooms,
                               self._flags if flags is None else flags)

    # -- chaining ---------------------------------------------------------------------------

    def to(self, *rooms: Rooms) -> EmitterOperator[R]:
        """Only the sockets in any of these rooms."""
        return self._with(rooms=tuple(dict.fromkeys([*self._rooms, *_rooms_in_order(rooms)])))

    in_ = to

    def except_(self, *rooms: Rooms) -> EmitterOperator[R]:
        """Not the sockets in any of these rooms."""
        return self._with(except_rooms=tuple(dict.fromkeys(
            [*self._except, *_rooms_in_order(rooms)])))

    @property
    def volatile(self) -> EmitterOperator[R]:
        """The event may be dropped for a client not ready to receive it."""
        return self._with(flags={**self._flags, "volatile": True})

    def compress(self, value: bool) -> EmitterOperator[R]:
        return self._with(flags={**self._flags, "compress": value})

    # -- publishing -------------------------------------------------------------------------

    def emit(self, event: str, *args: Any) -> R:
        """Send an event to every matching client of every server."""
        packet = event_packet(self._namespace, event, args)
        message = [UID, {"type": int(packet.type), "data": packet.data, "nsp": self._namespace},
                   {"rooms": list(self._rooms), "flags": self._flags,
                    "except": list(self._except)}]
        channel = broadcast_channel(self._key, self._namespace, list(self._rooms))
        return self._client.publish(channel, self._pack(message))

    def send(self, *args: Any) -> R:
        return self.emit("message", *args)

    def sockets_join(self, *rooms: Rooms) -> R:
        """The matching sockets join these rooms, on every server."""
        return self._request({"type": REMOTE_JOIN, "opts": self._targets(),
                              "rooms": _rooms_in_order(rooms)})

    def sockets_leave(self, *rooms: Rooms) -> R:
        """The matching sockets leave these rooms, on every server."""
        return self._request({"type": REMOTE_LEAVE, "opts": self._targets(),
                              "rooms": _rooms_in_order(rooms)})

    def disconnect_sockets(self, close: bool = False) -> R:
        """The matching sockets are disconnected; with ``close``, their connections too."""
        return self._request({"type": REMOTE_DISCONNECT, "opts": self._targets(),
                              "close": close})

    def _targets(self) -> dict[str, list[str]]:
        return {"rooms": list(self._rooms), "except": list(self._except)}

    def _request(self, request: dict[str, Any]) -> R:
        return self._client.publish(request_channel(self._key, self._namespace),
                                    json_pack(request))


class Emitter(EmitterOperator[R]):
    """Emit to the clients of a Socket.IO cluster from outside it, through Redis (the
    JavaScript ``@socket.io/redis-emitter``): from a script, a cron job, another service.

    Args:
        redis: a URL (a redis-py sync client is made, with ``client_options``, and closed
            by :meth:`close`), or a client of your own (``redis.asyncio.Redis`` makes every
            call return an awaitable).
        key: the servers' key prefix (``--store-key``, the JavaScript adapter's ``key``).
        pack: the adapter's parser (msgpack).
        client_options: keyword arguments of the client made from a URL.
        namespace: the namespace emitted to ("/").

    Example::

        with Emitter("redis://10.0.0.5:6379/0") as emitter:
            emitter.to("room1").except_("room2").emit("news", {"id": 1}, b"\\x00bytes")
            emitter.of("/admin").disconnect_sockets(close=True)
            emitter.server_side_emit("reload-config")
    """

    @overload
    def __init__(self: Emitter[int], redis: str = ..., *, key: str = ...,
                 pack: Pack = ..., client_options: dict[str, Any] | None = ...,
                 namespace: str = ...) -> None: ...

    @overload
    def __init__(self, redis: Publisher[R], *, key: str = ..., pack: Pack = ...,
                 namespace: str = ...) -> None: ...

    def __init__(self, redis: str | Publisher[R] = "redis://127.0.0.1:6379/0", *,
                 key: str = "socket.io", pack: Pack = msgpack_pack,
                 client_options: dict[str, Any] | None = None,
                 namespace: str = "/") -> None:
        client: Any = redis
        self._owned: Redis | None = None
        if isinstance(redis, str):
            client = self._owned = Redis.from_url(
                redis, **{"socket_connect_timeout": 5, **(client_options or {})})
        super().__init__(client, key, pack, namespace)

    def of(self, namespace: str) -> Emitter[R]:
        """The emitter of another namespace ("/admin"; a missing "/" is added)."""
        if not namespace.startswith("/"):
            namespace = "/" + namespace
        return Emitter(self._client, key=self._key, pack=self._pack, namespace=namespace)

    def server_side_emit(self, event: str, *args: Any) -> R:
        """An event for the servers themselves (their ``io.on(event)``), on every server of
        the namespace. Without acks: an emitter cannot receive them."""
        request = {"uid": UID, "type": SERVER_SIDE_EMIT, "data": [event, *args]}
        return self._client.publish(request_channel(self._key, self._namespace),
                                    js_pack(request, self._pack))

    def close(self) -> None:
        """Close the client made from a URL (a client passed in is the caller's to close)."""
        if self._owned is not None:
            self._owned.close()

    def __enter__(self) -> Emitter[R]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
