"""A Socket.IO socket: one client connected to one namespace.

How this works: the :class:`~sio_core.socketio.client.Client` routes the packets of its
namespace here. An EVENT calls the ``on_any`` listeners and then the event's listeners; if
the client asked for an ack, the first listener's return value (or a call of the ack
callable, passed to a handler that asks for it: see handlers.signature_of) answers it,
once. Emits to the client go out through the client's Engine.IO session; acks the client
owes are kept by id until they come, time out or the socket disconnects, at most
``max_pending_acks`` of them (past it the oldest is given up: a client that never answers
cannot grow the table).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..exceptions import DisconnectedError
from ..protocol import socketio as sio
from ..protocol.sid import new_id
from . import handlers
from .adapter import BroadcastOptions
from .broadcast import BroadcastOperator, event_packet, rooms_of
from .handlers import DONE, EventEmitter

if TYPE_CHECKING:
    from .client import Client
    from .namespace import Namespace
    from .server import Server

logger = logging.getLogger("sio_core.socketio")


@dataclass(slots=True)
class Handshake:
    """What the client's first request carried, as the JavaScript server's socket.handshake."""

    headers: dict[str, str]
    query: dict[str, str]
    auth: dict[str, Any]
    address: str | None
    time: str
    issued: int  # ms since the epoch
    url: str
    secure: bool = False
    xdomain: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def one_or_tuple(args: tuple[Any, ...] | list[Any]) -> Any:
    """An ack's arguments as python-socketio returns them: one value, a tuple, or None."""
    if len(args) == 1:
        return args[0]
    return tuple(args) if args else None


class Socket(EventEmitter):
    def __init__(self, namespace: Namespace, client: Client, auth: dict[str, Any]) -> None:
        super().__init__()
        self.id = new_id()
        self.namespace = namespace
        self.nsp = namespace
        self.client = client
        self.server: Server = namespace.server
        self.data: dict[str, Any] = {}
        self.connected = False
        self.handshake = client.build_handshake(auth)
        #: connection state recovery (sio_core/socketio/recovery.py): the private id of
        #: this socket's session, whether it was recovered, and what it gets back when it
        #: is admitted (its rooms, the packets it missed)
        self.pid: str | None = None
        self.recovered = False
        self.restored: tuple[list[str], list[tuple[str, bytes]]] | None = None
        self._acks: dict[int, Callable[..., Any]] = {}
        self._any: list[Callable[..., Any]] = []

    def __repr__(self) -> str:
        return f"<Socket {self.id} {self.namespace.name}>"

    # -- rooms ------------------------------------------------------------------------------

    @property
    def rooms(self) -> set[str]:
        return self.namespace.adapter.socket_rooms(self.id)

    # join, leave and disconnect act at once and return an already-done awaitable, as a
    # RemoteSocket's do (theirs are published, fire-and-forget, as in the JavaScript
    # server): the same code, with or without ``await``, works on what fetch_sockets returns

    def join(self, *rooms: str | Iterable[str]) -> Awaitable[None]:
        self.namespace.adapter.add_all(self.id, rooms_of(rooms))
        if self.pid is not None:
            self._rooms_changed()
        return DONE

    def leave(self, *rooms: str | Iterable[str]) -> Awaitable[None]:
        for room in rooms_of(rooms):
            self.namespace.adapter.delete(self.id, room)
        if self.pid is not None:
            self._rooms_changed()
        return DONE

    def _rooms_changed(self) -> None:
        recovery = self.server.recovery
        if recovery is not None:
            recovery.touch(self)

    # -- emitting to this client ------------------------------------------------------------

    def emit(self, event: str, *args: Any,
             callback: Callable[..., Any] | None = None) -> Awaitable[None]:
        """Send an event to this client. ``callback(*ack_args)`` runs when the client acks.
        Works with or without ``await``."""
        return self._emit(event, args, callback, volatile=False, timeout=None)

    def send(self, *args: Any, callback: Callable[..., Any] | None = None) -> Awaitable[None]:
        """Emit a ``message`` event (``socket.send`` of the JavaScript server)."""
        return self.emit("message", *args, callback=callback)

    async def emit_with_ack(self, event: str, *args: Any, timeout: float | None = None) -> Any:
        """Emit and wait for the client's ack: its single argument, a tuple if several.
        Raises TimeoutError after ``timeout`` seconds (None: wait as long as connected),
        DisconnectedError if the socket goes away first."""
        on_ack = _AckFuture()
        future = on_ack.future
        ack_id = self._send_event(event, args, on_ack, volatile=False)
        if ack_id is None:
            raise DisconnectedError("socket is not connected")
        try:
            if timeout is None:
                return await future
            return await asyncio.wait_for(future, timeout)
        finally:
            self._acks.pop(ack_id, None)

    def _emit(self, event: str, args: tuple[Any, ...], callback: Callable[..., Any] | None,
              *, volatile: bool, timeout: float | None) -> Awaitable[None]:
        if callback is not None and timeout is not None:
            timed = _TimedAck(self, callback, timeout)
            timed.ack_id = self._send_event(event, args, timed, volatile=volatile)
        else:
            self._send_event(event, args, callback, volatile=volatile)
        return DONE

    def _send_event(self, event: str, args: tuple[Any, ...], callback: Callable[..., Any] | None,
                    *, volatile: bool) -> int | None:
        ack_id = self.namespace.next_ack_id() if callback is not None else None
        packet = event_packet(self.namespace.name, event, args, ack_id)
        recovery = self.server.recovery
        if recovery is not None and ack_id is None and not volatile and self.pid is not None:
            # kept in the log (even while disconnected: a recovered socket gets it), which
            # hands it back to this worker to send, in order with the broadcasts
            recovery.emit(self, packet)
            self.namespace.counters.events_sent += 1
            return None
        if not self.connected:
            return None
        parts = sio.encode(packet)
        if not self.client.send_parts(parts, volatile=volatile):
            return None  # not sent (a closing session, a volatile drop): no ack will come
        self.namespace.counters.events_sent += 1
        if ack_id is not None:
            assert callback is not None
            self.expect_ack(ack_id, callback)
        observer = self.server.observer
        if observer is not None:
            observer.event_sent(self, packet.data, parts)
        return ack_id

    def expect_ack(self, ack_id: int, callback: Callable[..., Any]) -> None:
        """Call ``callback`` with the client's ack ``ack_id``. At ``max_pending_acks`` the
        oldest pending ack is given up first (its ``give_up()`` if it has one, else dropped:
        a client that does not answer never calls it back anyway)."""
        acks = self._acks
        limit = self.server.config.max_pending_acks
        if limit is not None and len(acks) >= limit and ack_id not in acks:
            oldest = acks.pop(next(iter(acks)))
            give_up = getattr(oldest, "give_up", None)
            if give_up is not None:
                give_up()
        acks[ack_id] = callback

    def forget_ack(self, ack_id: int, callback: Callable[..., Any]) -> None:
        """Stop waiting for ack ``ack_id`` if ``callback`` still waits for it."""
        if self._acks.get(ack_id) is callback:
            del self._acks[ack_id]

    # -- flags ------------------------------------------------------------------------------

    @property
    def volatile(self) -> _Flagged:
        return _Flagged(self, volatile=True, timeout=None)

    def timeout(self, seconds: float) -> _Flagged:
        return _Flagged(self, volatile=False, timeout=seconds)

    # -- broadcasting from this socket ------------------------------------------------------

    @property
    def broadcast(self) -> BroadcastOperator:
        """Everyone in the namespace but this socket."""
        opts = BroadcastOptions(except_rooms=frozenset({self.id}))
        return BroadcastOperator(self.namespace, opts)

    def to(self, *rooms: str | Iterable[str]) -> BroadcastOperator:
        return self.broadcast.to(*rooms)

    in_ = to

    def except_(self, *rooms: str | Iterable[str]) -> BroadcastOperator:
        return self.broadcast.except_(*rooms)

    @property
    def local(self) -> BroadcastOperator:
        return self.broadcast.local

    # -- listeners --------------------------------------------------------------------------

    def on_any(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """``handler(event, *args)`` for every incoming event."""
        self._any.append(handler)
        return handler

    def off_any(self, handler: Callable[..., Any] | None = None) -> None:
        if handler is None:
            self._any.clear()
        else:
            self._any = [h for h in self._any if h != handler]

    # -- ending -----------------------------------------------------------------------------

    def disconnect(self, close: bool = False) -> Awaitable[None]:
        """Leave the namespace (the client gets DISCONNECT); with ``close`` also end the
        client's whole connection."""
        if not self.connected:
            return DONE
        if close:
            self.client.disconnect_all()
            return DONE
        self.client.send_packet(sio.Packet(sio.PacketType.DISCONNECT, self.namespace.name))
        self.on_close("server namespace disconnect")
        return DONE

    @property
    def conn(self) -> Any:
        """The Engine.IO session carrying this socket."""
        return self.client.conn

    # -- from the client --------------------------------------------------------------------

    def on_connected(self) -> None:
        self.connected = True
        self.join(self.id)
        if self.restored is not None:
            recovery = self.server.recovery
            assert recovery is not None
            recovery.replay(self)

    def on_packet(self, packet: sio.Packet) -> None:
        ptype = packet.type
        if ptype is sio.PacketType.EVENT or ptype is sio.PacketType.BINARY_EVENT:
            self._on_event(packet)
        elif ptype is sio.PacketType.ACK or ptype is sio.PacketType.BINARY_ACK:
            callback = self._acks.pop(packet.id, None) if packet.id is not None else None
            if callback is not None:
                handlers.call(callback, tuple(packet.data), handlers.Context(
                    self.namespace.counters, "ack {} of {!r}", packet.id, self))
        elif ptype is sio.PacketType.DISCONNECT:
            self.on_close("client namespace disconnect")
        else:  # CONNECT_ERROR from a client, or a second CONNECT: not allowed here
            self.client.invalid_state()

    def _on_event(self, packet: sio.Packet) -> None:
        data = packet.data
        event = data[0]
        args = tuple(data[1:])
        counters = self.namespace.counters
        counters.events_received += 1
        context = handlers.EventContext(counters, "event {!r} of {!r}", event, self)
        if self._any:
            for fn in list(self._any):
                handlers.call(fn, (event, *args), context)
        listeners = self._take(event)
        ack = _Ack(self, packet.id) if packet.id is not None else None
        for index, listener in enumerate(listeners):
            # the first listener answers the ack: with its return value, or by calling the
            # ack callable if it asks for it (handlers.signature_of states the rule)
            given = ack if index == 0 else None
            on_result = given.result if given is not None else None
            slot = listener.ack
            if isinstance(slot, str):
                handlers.call(listener.fn, args, context, on_result, {slot: given})
            elif given is not None and len(args) < slot:
                handlers.call(listener.fn, (*args, given), context, on_result)
            else:
                handlers.call(listener.fn, args, context, on_result)

    def on_close(self, reason: str) -> None:
        if not self.connected:
            return
        self._dispatch_local("disconnecting", reason)
        recovery = self.server.recovery
        if recovery is not None:
            recovery.closed(self, reason)
        self.connected = False
        self.namespace.counters.disconnected += 1
        self.namespace.remove(self)
        self.client.remove(self)
        self.namespace.adapter.delete_all(self.id)
        acks, self._acks = self._acks, {}
        for callback in acks.values():
            failer = getattr(callback, "fail", None)
            if failer is not None:
                failer(DisconnectedError(reason))
        observer = self.server.observer
        if observer is not None:
            observer.socket_disconnected(self, reason)
        self._dispatch_local("disconnect", reason)

    def _dispatch_local(self, event: str, *args: Any) -> None:
        for listener in self._take(event):
            handlers.call(listener.fn, args[: listener.arity] if listener.arity is not None
                          else args, handlers.Context(self.namespace.counters,
                                                      "{} of {!r}", event, self))


class _Ack:
    """The ``ack`` callable of one client EVENT that asked for one: it answers once (later
    calls, or calls after the socket left, do nothing); a handler's return value feeds it
    through :meth:`result` (None: no answer yet; a tuple: several arguments)."""

    __slots__ = ("_id", "_sent", "_socket")

    def __init__(self, socket: Socket, ack_id: int) -> None:
        self._socket = socket
        self._id = ack_id
        self._sent = False

    def __call__(self, *args: Any) -> None:
        socket = self._socket
        if self._sent or not socket.connected:
            return
        self._sent = True
        socket.client.send_packet(
            sio.Packet(sio.PacketType.ACK, socket.namespace.name, list(args), self._id))

    def result(self, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, tuple):
            self(*value)
        else:
            self(value)


class _TimedAck:
    """JavaScript semantics of ``socket.timeout(t).emit(..., cb)``: ``cb(None, *args)`` with
    the ack, or ``cb(TimeoutError)`` at the timeout, after which the socket stops waiting for
    the ack (as the reference's ``registerAckCallback``). Called once at most."""

    __slots__ = ("_callback", "_socket", "_timer", "ack_id")

    def __init__(self, socket: Socket, callback: Callable[..., Any], timeout: float) -> None:
        self._socket = socket
        self._callback = callback
        #: set once the event is sent (None: it was not, the timeout still answers)
        self.ack_id: int | None = None
        self._timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
            timeout, self.give_up)

    def __call__(self, *args: Any) -> None:
        timer = self._timer
        if timer is not None:
            self._timer = None
            timer.cancel()
            self._callback(None, *args)

    def give_up(self) -> None:
        timer = self._timer
        if timer is not None:
            self._timer = None
            timer.cancel()
            if self.ack_id is not None:
                self._socket.forget_ack(self.ack_id, self)
            self._callback(TimeoutError("operation has timed out"))


class _Flagged:
    """``socket.volatile`` / ``socket.timeout(s)``: the same socket, emitting with flags."""

    __slots__ = ("_socket", "_timeout", "_volatile")

    def __init__(self, socket: Socket, *, volatile: bool, timeout: float | None) -> None:
        self._socket = socket
        self._volatile = volatile
        self._timeout = timeout

    @property
    def volatile(self) -> _Flagged:
        return _Flagged(self._socket, volatile=True, timeout=self._timeout)

    def timeout(self, seconds: float) -> _Flagged:
        return _Flagged(self._socket, volatile=self._volatile, timeout=seconds)

    def emit(self, event: str, *args: Any,
             callback: Callable[..., Any] | None = None) -> Awaitable[None]:
        return self._socket._emit(event, args, callback, volatile=self._volatile,
                                  timeout=self._timeout)

    def send(self, *args: Any, callback: Callable[..., Any] | None = None) -> Awaitable[None]:
        return self.emit("message", *args, callback=callback)

    async def emit_with_ack(self, event: str, *args: Any) -> Any:
        return await self._socket.emit_with_ack(event, *args, timeout=self._timeout)


def handshake_time() -> tuple[str, int]:
    now = time.time()
    return time.strftime("%a %b %d %Y %H:%M:%S GMT+0000", time.gmtime(now)), int(now * 1000)


class _AckFuture:
    """An ack callback that resolves a future, and fails it if the socket goes away."""

    __slots__ = ("future",)

    def __init__(self) -> None:
        self.future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def __call__(self, *args: Any) -> None:
        if not self.future.done():
            self.future.set_result(one_or_tuple(args))

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)

    def give_up(self) -> None:
        """Past ``max_pending_acks``: the waiter gets the TimeoutError a timeout would give."""
        self.fail(TimeoutError("too many acks pending: the oldest was given up"))
