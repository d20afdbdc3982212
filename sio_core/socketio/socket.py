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
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

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

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(slots=True)
class Handshake:
    """What the client's first request carried, as the JavaScript server's socket.handshake.

    Attributes:
        headers: the request's headers (lower-case names).
        query: its query parameters.
        auth: the ``auth`` object of the client's CONNECT.
        address: the client's IP address.
        time: when, as the JavaScript ``Date.toString()`` writes it.
        issued: when, in milliseconds since the epoch.
        url: the request's path and query.
        secure: whether it came over TLS.
        xdomain: whether it carried an Origin header (a cross-domain request).
    """

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

    def __init__(self, headers: dict[str, str], query: dict[str, str], auth: dict[str, Any],
                 address: str | None, time: str, issued: int, url: str, secure: bool = False,
                 xdomain: bool = False, extra: dict[str, Any] | None = None) -> None:
        # written out (see protocol/engineio.py's Packet)
        self.headers = headers
        self.query = query
        self.auth = auth
        self.address = address
        self.time = time
        self.issued = issued
        self.url = url
        self.secure = secure
        self.xdomain = xdomain
        self.extra = {} if extra is None else extra


def one_or_tuple(args: tuple[Any, ...] | list[Any]) -> Any:
    """An ack's arguments as python-socketio returns them: one value, a tuple, or None."""
    if len(args) == 1:
        return args[0]
    return tuple(args) if args else None


class FetchedSocket(Protocol):
    """What :meth:`fetch_sockets <sio_core.socketio.namespace.Namespace.fetch_sockets>`
    returns: a local :class:`Socket`, or a
    :class:`~sio_core.socketio.cluster.RemoteSocket` of another worker or node, used alike
    (``join``, ``leave``, ``disconnect`` and ``emit`` act at once and may be awaited)."""

    @property
    def id(self) -> str: ...
    @property
    def handshake(self) -> Handshake: ...
    @property
    def rooms(self) -> set[str]: ...
    @property
    def data(self) -> Any: ...
    def emit(self, event: str, *args: Any) -> Awaitable[None]: ...
    def join(self, *rooms: str | Iterable[str]) -> Awaitable[None]: ...
    def leave(self, *rooms: str | Iterable[str]) -> Awaitable[None]: ...
    def disconnect(self, close: bool = False) -> Awaitable[None]: ...


#: a per-packet middleware of a socket (:meth:`Socket.use`)
PacketMiddleware = Callable[[list[Any]], Any]


class Socket(EventEmitter):
    """One client connected to one namespace: what ``connection`` listeners receive.

    Made by the server when a client's CONNECT is admitted; not built by applications.

    Attributes:
        id: the socket's id (a room of its own, as in the JavaScript server).
        namespace: its :class:`~sio_core.socketio.namespace.Namespace` (also ``nsp``).
        server: the :class:`~sio_core.socketio.server.Server`.
        handshake: what the client's first request carried (:class:`Handshake`: headers,
            query, auth, address, ...).
        data: a dict of the application's own, shown by ``fetch_sockets`` on every worker.
        connected: whether it is still connected.
        rooms: the rooms it is in.

    Listeners: ``socket.on(event)`` (the reserved ``disconnecting`` and ``disconnect`` get
    the reason; ``error`` the exception of a ``use()`` middleware), ``once``, ``off``,
    ``on_any``, ``prepend_any``, ``on_any_outgoing``... A handler may be sync or async; its
    return value answers the client's ack, or it takes a parameter named ``ack`` (or a
    last required positional one the client's arguments leave free) to call.

    Example::

        @io.on("connection")
        def connection(socket: Socket) -> None:
            @socket.on("join")
            def join(room: str) -> list[str]:
                socket.join(room)
                return sorted(socket.rooms)

            @socket.on("ask")
            async def ask(question: str) -> Any:
                return await socket.timeout(5).emit_with_ack("question", question)
    """

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
        #: on_any_outgoing listeners and use() middlewares (None while there are none: most
        #: sockets have neither, and the checks on the hot paths are then one test)
        self._any_outgoing: list[Callable[..., Any]] | None = None
        self._middlewares: list[PacketMiddleware] | None = None

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
        return self._emit(event, args, callback, volatile=False, timeout=None, compress=True)

    def send(self, *args: Any, callback: Callable[..., Any] | None = None) -> Awaitable[None]:
        """Emit a ``message`` event (``socket.send`` of the JavaScript server)."""
        return self.emit("message", *args, callback=callback)

    async def emit_with_ack(self, event: str, *args: Any, timeout: float | None = None) -> Any:
        """Emit and wait for the client's ack: its single argument, a tuple if several.
        Raises TimeoutError after ``timeout`` seconds (None: wait as long as connected),
        DisconnectedError if the socket goes away first."""
        return await self._ask(event, args, timeout, compress=True)

    async def _ask(self, event: str, args: tuple[Any, ...], timeout: float | None, *,
                   compress: bool) -> Any:
        on_ack = _AckFuture()
        future = on_ack.future
        ack_id = self._send_event(event, args, on_ack, volatile=False, compress=compress)
        if ack_id is None:
            raise DisconnectedError("socket is not connected")
        try:
            if timeout is None:
                return await future
            return await asyncio.wait_for(future, timeout)
        finally:
            self._acks.pop(ack_id, None)

    def _emit(self, event: str, args: tuple[Any, ...], callback: Callable[..., Any] | None,
              *, volatile: bool, timeout: float | None, compress: bool) -> Awaitable[None]:
        if callback is not None and timeout is not None:
            timed = _TimedAck(self, callback, timeout)
            timed.ack_id = self._send_event(event, args, timed, volatile=volatile,
                                            compress=compress)
        else:
            self._send_event(event, args, callback, volatile=volatile, compress=compress)
        return DONE

    def _send_event(self, event: str, args: tuple[Any, ...], callback: Callable[..., Any] | None,
                    *, volatile: bool, compress: bool = True) -> int | None:
        ack_id = self.namespace.next_ack_id() if callback is not None else None
        packet = event_packet(self.namespace.name, event, args, ack_id)
        recovery = self.server.recovery
        if recovery is not None and ack_id is None and not volatile and self.pid is not None:
            # kept in the log (even while disconnected: a recovered socket gets it), which
            # hands it back to this worker to send, in order with the broadcasts
            recovery.emit(self, packet, compress=compress)
            self.namespace.counters.events_sent += 1
            return None
        if not self.connected:
            return None
        parts = self.server.parser.encode(packet)
        if not self.client.send_parts(parts, volatile=volatile, compress=compress):
            return None  # not sent (a closing session, a volatile drop): no ack will come
        self.namespace.counters.events_sent += 1
        if self._any_outgoing:
            self.notify_outgoing(packet.data)
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
        return _Flagged(self, volatile=True, timeout=None, compress=True)

    def timeout(self, seconds: float) -> _Flagged:
        """``socket.timeout(5).emit("ask", callback=cb)``: ``cb(None, *answer)``, or
        ``cb(TimeoutError)`` if the client has not acked within ``seconds``."""
        return _Flagged(self, volatile=False, timeout=seconds, compress=True)

    def compress(self, value: bool = True) -> _Flagged:
        """Whether the event may be compressed, as the reference's ``compress(false)``:
        permessage-deflate (``per_message_deflate``) and the gzip of polling answers
        (``http_compression``)."""
        return _Flagged(self, volatile=False, timeout=None, compress=value)

    # -- broadcasting from this socket ------------------------------------------------------

    @property
    def broadcast(self) -> BroadcastOperator:
        """Everyone in the namespace but this socket."""
        opts = BroadcastOptions(except_rooms=frozenset({self.id}))
        return BroadcastOperator(self.namespace, opts)

    def to(self, *rooms: str | Iterable[str]) -> BroadcastOperator:
        return self.broadcast.to(*rooms)

    def in_(self, *rooms: str | Iterable[str]) -> BroadcastOperator:
        """The same as :meth:`to` (a method of its own: mypyc compiles no method alias)."""
        return self.to(*rooms)

    def except_(self, *rooms: str | Iterable[str]) -> BroadcastOperator:
        return self.broadcast.except_(*rooms)

    @property
    def local(self) -> BroadcastOperator:
        return self.broadcast.local

    # -- listeners --------------------------------------------------------------------------

    def on_any(self, handler: F) -> F:
        """``handler(event, *args)`` for every incoming event, before the event's own
        listeners (usable as a decorator)."""
        self._any.append(handler)
        return handler

    def prepend_any(self, handler: F) -> F:
        """Like :meth:`on_any`, called before the ones added so far."""
        self._any.insert(0, handler)
        return handler

    def off_any(self, handler: Callable[..., Any] | None = None) -> None:
        """Remove one ``on_any`` listener, or all of them."""
        if handler is None:
            self._any.clear()
        else:
            self._any = [h for h in self._any if h != handler]

    def listeners_any(self) -> list[Callable[..., Any]]:
        """The ``on_any`` listeners, in the order they are called."""
        return list(self._any)

    def on_any_outgoing(self, handler: F) -> F:
        """``handler(event, *args)`` for every event sent to this client: its own emits and
        the broadcasts that reach it (not acks)."""
        if self._any_outgoing is None:
            self._any_outgoing = []
            self.namespace.outgoing_watchers.add(self)
        self._any_outgoing.append(handler)
        return handler

    def prepend_any_outgoing(self, handler: F) -> F:
        """Like :meth:`on_any_outgoing`, called before the ones added so far."""
        self.on_any_outgoing(handler)
        assert self._any_outgoing is not None
        self._any_outgoing.insert(0, self._any_outgoing.pop())
        return handler

    def off_any_outgoing(self, handler: Callable[..., Any] | None = None) -> None:
        """Remove one ``on_any_outgoing`` listener, or all of them."""
        kept = [h for h in self._any_outgoing or () if handler is not None and h != handler]
        self._any_outgoing = kept or None
        if not kept:
            self.namespace.outgoing_watchers.discard(self)

    def listeners_any_outgoing(self) -> list[Callable[..., Any]]:
        return list(self._any_outgoing or ())

    def notify_outgoing(self, data: list[Any]) -> None:
        """Tell the ``on_any_outgoing`` listeners of an event sent: ``[event, *args]``."""
        context = handlers.Context(self.namespace.counters, "outgoing {!r} of {!r}",
                                   data[0], self)
        for fn in list(self._any_outgoing or ()):
            handlers.call(fn, tuple(data), context)

    def use(self, middleware: PacketMiddleware) -> PacketMiddleware:
        """Add a middleware run on every event packet the client sends, before any
        listener: ``middleware(packet)`` with ``packet`` the list ``[event, *args]`` (it may
        change it), sync or async. One that raises stops the packet: no listener runs, and
        the socket's ``error`` listeners get the exception (as the reference's ``next(err)``
        does). Middlewares run in the order added."""
        if self._middlewares is None:
            self._middlewares = []
        self._middlewares.append(middleware)
        return middleware

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
        if self._middlewares:
            self._run_middlewares(packet.data, packet.id, 0)
        else:
            self._dispatch(packet.data, packet.id)

    def _run_middlewares(self, data: list[Any], ack_id: int | None, start: int) -> None:
        """Run the middlewares from ``start`` on; dispatch the event if none refused. Sync
        ones run inline; past the first one that returns an awaitable the rest runs in a
        task (which, as in the reference, may let later packets overtake this one)."""
        middlewares = self._middlewares or []
        for index in range(start, len(middlewares)):
            try:
                result = middlewares[index](data)
            except Exception as exc:
                self._on_middleware_error(exc)
                return
            if inspect.isawaitable(result):
                task = asyncio.get_running_loop().create_task(
                    self._await_middleware(result, data, ack_id, index + 1))
                _middleware_tasks.add(task)
                task.add_done_callback(_middleware_tasks.discard)
                return
        if self.connected:  # a packet whose middlewares ran past the disconnect is dropped
            self._dispatch(data, ack_id)

    async def _await_middleware(self, result: Awaitable[Any], data: list[Any],
                                ack_id: int | None, start: int) -> None:
        try:
            await result
        except Exception as exc:
            self._on_middleware_error(exc)
            return
        self._run_middlewares(data, ack_id, start)

    def _on_middleware_error(self, exc: Exception) -> None:
        if self.listeners("error"):
            self._dispatch_local("error", exc)
        else:  # the reference prints "Missing error handler on `socket`." and the error
            logger.warning("a middleware of %r refused a packet, and the socket has no"
                           " 'error' listener: %r", self, exc)

    def _dispatch(self, data: list[Any], ack_id: int | None) -> None:
        event = data[0]
        args = tuple(data[1:])
        counters = self.namespace.counters
        counters.events_received += 1
        context = handlers.EventContext(counters, "event {!r} of {!r}", event, self)
        if self._any:
            for fn in list(self._any):
                handlers.call(fn, (event, *args), context)
        # the first listener answers the ack: with its return value, or by calling the ack
        # callable if it asks for it (handlers.signature_of states the rule); the others get
        # None for it
        ack = _Ack(self, ack_id) if ack_id is not None else None
        for listener in self._take(event):
            on_result = ack.result if ack is not None else None
            slot = listener.ack
            if isinstance(slot, str):
                handlers.call(listener.fn, args, context, on_result, {slot: ack})
            elif ack is not None and len(args) < slot:
                handlers.call(listener.fn, (*args, ack), context, on_result)
            else:
                handlers.call(listener.fn, args, context, on_result)
            ack = None

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
        if self._any_outgoing is not None:
            self.namespace.outgoing_watchers.discard(self)
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


#: running async middlewares: referenced until done (asyncio keeps only weak refs)
_middleware_tasks: set[asyncio.Task[None]] = set()


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
        self._answer(list(args))

    def result(self, value: Any) -> None:
        if value is not None:
            self._answer(list(value) if isinstance(value, tuple) else [value])

    def _answer(self, data: list[Any]) -> None:
        socket = self._socket
        if self._sent or not socket.connected:
            return
        self._sent = True
        socket.client.send_packet(
            sio.Packet(sio.PacketType.ACK, socket.namespace.name, data, self._id))


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
    """``socket.volatile`` / ``socket.timeout(s)`` / ``socket.compress(False)``: the same
    socket, emitting with flags."""

    # _is_volatile: mypyc would name a field _volatile "__volatile", a C keyword
    __slots__ = ("_compress", "_is_volatile", "_socket", "_timeout")

    def __init__(self, socket: Socket, *, volatile: bool, timeout: float | None,
                 compress: bool) -> None:
        self._socket = socket
        self._is_volatile = volatile
        self._timeout = timeout
        self._compress = compress

    @property
    def volatile(self) -> _Flagged:
        return _Flagged(self._socket, volatile=True, timeout=self._timeout,
                        compress=self._compress)

    def timeout(self, seconds: float) -> _Flagged:
        return _Flagged(self._socket, volatile=self._is_volatile, timeout=seconds,
                        compress=self._compress)

    def compress(self, value: bool = True) -> _Flagged:
        return _Flagged(self._socket, volatile=self._is_volatile, timeout=self._timeout,
                        compress=value)

    def emit(self, event: str, *args: Any,
             callback: Callable[..., Any] | None = None) -> Awaitable[None]:
        return self._socket._emit(event, args, callback, volatile=self._is_volatile,
                                  timeout=self._timeout, compress=self._compress)

    def send(self, *args: Any, callback: Callable[..., Any] | None = None) -> Awaitable[None]:
        return self.emit("message", *args, callback=callback)

    async def emit_with_ack(self, event: str, *args: Any) -> Any:
        return await self._socket._ask(event, args, self._timeout, compress=self._compress)


def handshake_time() -> tuple[str, int]:
    global _last_second
    now = time.time()
    second = int(now)
    if second != _last_second[0]:
        # formatted once a second (the handshakes of that second share the string)
        _last_second = (second, time.strftime("%a %b %d %Y %H:%M:%S GMT+0000",
                                              time.gmtime(second)))
    return _last_second[1], int(now * 1000)


_last_second: tuple[int, str] = (-1, "")


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
