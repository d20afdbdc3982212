"""Namespaces: ``io.of("/admin")``, and dynamic ones (``io.of(re.compile(...))``).

How this works: a :class:`Namespace` holds its connected sockets, its middlewares, its
``connection`` listeners and an :class:`~sio_core.socketio.adapter.Adapter` for rooms.
A CONNECT runs the middlewares in order (each may refuse by raising
ConnectionRefusedError), then the socket is added, the client gets ``CONNECT {"sid"}``,
and only then the ``connection`` listeners run, so the reply precedes any event. A
:class:`ParentNamespace` matches names (a regex or a callable) and creates a child
namespace per matching name; the children share the parent's listeners and middlewares.
With ``cleanup_empty_child_namespaces`` (the default) a child is removed from the server
once it has no socket and no CONNECT in its middlewares, as the reference's option of that
name does (which keeps a child whose first CONNECT was refused; this removes it too):
clients connecting to ever new names cannot grow the server.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, Protocol, Self, TypeVar, overload

from ..exceptions import ConnectionRefusedError
from ..protocol import socketio as sio
from . import handlers
from .adapter import Adapter, BroadcastOptions
from .broadcast import AckGather, BroadcastOperator
from .cluster import run_listeners
from .counters import NamespaceCounters, parent_label
from .handlers import DONE, EventEmitter, F
from .socket import FetchedSocket, Socket

if TYPE_CHECKING:
    from .client import Client, Session
    from .server import Server

logger = logging.getLogger("sio_core.socketio")

Middleware = Callable[..., Any]
#: decides whether a dynamic namespace (``io.of(matcher)``) has a child of a name:
#: ``matcher(name, auth)``, sync or async
Matcher = Callable[[str, dict[str, Any]], Any]


class Operator(Protocol):
    """What the broadcast operators of a namespace return (a
    :class:`~sio_core.socketio.broadcast.BroadcastOperator`, or for a dynamic parent
    namespace one that applies to each child): each chained call returns the same kind."""

    def to(self, *rooms: str | Iterable[str]) -> Self: ...
    def in_(self, *rooms: str | Iterable[str]) -> Self: ...
    def except_(self, *rooms: str | Iterable[str]) -> Self: ...
    @property
    def volatile(self) -> Self: ...
    @property
    def local(self) -> Self: ...
    def timeout(self, seconds: float) -> Self: ...
    def compress(self, value: bool = True) -> Self: ...
    def emit(self, event: str, *args: Any,
             callback: Callable[..., Any] | None = None) -> Awaitable[None]: ...
    def send(self, *args: Any, callback: Callable[..., Any] | None = None) -> Awaitable[None]: ...
    async def emit_with_ack(self, event: str, *args: Any) -> list[Any]: ...
    async def fetch_sockets(self) -> list[FetchedSocket]: ...
    def sockets_join(self, *rooms: str | Iterable[str]) -> Awaitable[None]: ...
    def sockets_leave(self, *rooms: str | Iterable[str]) -> Awaitable[None]: ...
    def disconnect_sockets(self, close: bool = False) -> Awaitable[None]: ...


OperatorT = TypeVar("OperatorT", bound=Operator)


class _Operators(Generic[OperatorT]):
    """The broadcast operators, on a namespace (and the server, for "/"): each starts a
    chain (``io.to("room").except_("other").emit(...)``) on a fresh operator."""

    def _operator(self) -> OperatorT:
        raise NotImplementedError

    def to(self, *rooms: str | Iterable[str]) -> OperatorT:
        """The clients in any of ``rooms`` (a room name, or an iterable of names)."""
        return self._operator().to(*rooms)

    def in_(self, *rooms: str | Iterable[str]) -> OperatorT:
        """The same as :meth:`to`."""
        return self._operator().to(*rooms)

    def except_(self, *rooms: str | Iterable[str]) -> OperatorT:
        """Every client but those in any of ``rooms``."""
        return self._operator().except_(*rooms)

    @property
    def volatile(self) -> OperatorT:
        """The event may be dropped for a client that cannot take it at once."""
        return self._operator().volatile

    @property
    def local(self) -> OperatorT:
        """Only the clients of this worker."""
        return self._operator().local

    def timeout(self, seconds: float) -> OperatorT:
        """How long :meth:`emit_with_ack` (or an emit with a callback) waits for acks."""
        return self._operator().timeout(seconds)

    def compress(self, value: bool = True) -> OperatorT:
        """Whether the event may be compressed (permessage-deflate), as the reference's
        ``compress(false)``; accepted on every operator."""
        return self._operator().compress(value)

    def emit(self, event: str, *args: Any,
             callback: Callable[..., Any] | None = None) -> Awaitable[None]:
        """Send an event to every client of the namespace (see
        :meth:`BroadcastOperator.emit <sio_core.socketio.broadcast.BroadcastOperator.emit>`)."""
        return self._operator().emit(event, *args, callback=callback)

    def send(self, *args: Any, callback: Callable[..., Any] | None = None) -> Awaitable[None]:
        """Emit a ``message`` event to every client of the namespace."""
        return self._operator().send(*args, callback=callback)

    async def emit_with_ack(self, event: str, *args: Any) -> list[Any]:
        """Emit to every client and wait for all their acks (a list of them)."""
        return await self._operator().emit_with_ack(event, *args)

    async def fetch_sockets(self) -> list[FetchedSocket]:
        """The matching sockets, on every worker and node: local :class:`Socket` objects and
        :class:`~sio_core.socketio.cluster.RemoteSocket` ones, used alike."""
        return await self._operator().fetch_sockets()

    def sockets_join(self, *rooms: str | Iterable[str]) -> Awaitable[None]:
        """Make the matching sockets join ``rooms``, on every worker."""
        return self._operator().sockets_join(*rooms)

    def sockets_leave(self, *rooms: str | Iterable[str]) -> Awaitable[None]:
        """Make the matching sockets leave ``rooms``, on every worker."""
        return self._operator().sockets_leave(*rooms)

    def disconnect_sockets(self, close: bool = False) -> Awaitable[None]:
        """Disconnect the matching sockets (with ``close``, their whole connection)."""
        return self._operator().disconnect_sockets(close)


class Namespace(EventEmitter, _Operators[BroadcastOperator]):
    """A namespace: its connected sockets, middlewares, ``connection`` listeners and rooms.

    Got from ``io.of("/name")`` (created on first use) or, for "/", ``io.sockets``; a
    dynamic :class:`ParentNamespace` creates them per matching name. The broadcast
    operators (``to``, ``in_``, ``except_``, ``volatile``, ``local``, ``timeout``,
    ``compress``) and ``emit``, ``fetch_sockets``, ``sockets_join``, ``sockets_leave``,
    ``disconnect_sockets`` act on every worker and node (with a store), as the JavaScript
    server's.

    Args:
        server: the :class:`~sio_core.socketio.server.Server` it belongs to.
        name: its name, "/" first ("/admin").
        counters: where its metrics are counted (the server's, by default a new set).

    Attributes:
        name: the namespace's name.
        sockets: its connected sockets of this worker, by id.
        adapter: its rooms on this worker.

    Example::

        admin = io.of("/admin")

        @admin.use
        def only_admins(socket: Socket) -> None:
            if socket.handshake.auth.get("role") != "admin":
                raise ConnectionRefusedError("admins only")

        @admin.on("connection")
        async def connection(socket: Socket) -> None:
            await admin.to("dashboard").emit("joined", socket.id)
    """

    def __init__(self, server: Server, name: str,
                 counters: NamespaceCounters | None = None) -> None:
        super().__init__()
        self.server = server
        self.name = name
        #: the server's counters of this namespace (of its parent, for a dynamic child); a
        #: namespace object the server does not keep counts in counters of its own
        self.counters = counters if counters is not None else NamespaceCounters(name)
        self.sockets: dict[str, Socket] = {}
        #: the Engine.IO session of each socket in ``sockets``, by the socket's id: what a
        #: broadcast writes to (read without touching the Socket objects)
        self.conns: dict[str, Session] = {}
        self.middlewares: list[Middleware] = []
        self.adapter = Adapter(self)
        self._ack_ids = 0
        #: the dynamic namespace that created this one, if any
        self.parent: ParentNamespace | None = None
        #: CONNECTs in this namespace's middlewares (an empty child is not removed under them)
        self._joining = 0
        #: sockets with on_any_outgoing listeners, told of the broadcasts they receive
        self.outgoing_watchers: set[Socket] = set()

    def __repr__(self) -> str:
        return f"<Namespace {self.name}>"

    def _operator(self) -> BroadcastOperator:
        return BroadcastOperator(self)

    def use(self, middleware: Middleware) -> Middleware:
        """Add a middleware ``fn(socket)`` (sync or async), run on every CONNECT; raise
        ConnectionRefusedError(message, data) to refuse."""
        self.middlewares.append(middleware)
        return middleware

    def next_ack_id(self) -> int:
        self._ack_ids += 1
        if self._ack_ids > sio.MAX_ACK_ID:
            self._ack_ids = 1
        return self._ack_ids

    # -- broadcasting: this worker's sockets, and the other workers' through the cluster ---

    def broadcast(self, packet: sio.Packet, opts: BroadcastOptions) -> Awaitable[None]:
        self.counters.broadcasts += 1
        recovery = self.server.recovery
        if recovery is not None and recovery.broadcast(self, packet, opts):
            return DONE  # kept in the log, which delivers it on every worker in log order
        cluster = self.server.cluster
        if cluster is None or opts.local:
            self.adapter.broadcast(packet, opts)
            return DONE
        # encoded once for the whole cluster: published (the store writes what a loop turn
        # published at its end, with this worker's own writes), then the same parts
        # written here
        parts = self.server.parser.encode(packet)
        cluster.broadcast(packet, parts, opts)
        self.adapter.broadcast_encoded(parts, opts, packet)
        return DONE

    def broadcast_with_ack(self, packet: sio.Packet, opts: BroadcastOptions,
                           gather: AckGather) -> None:
        self.counters.broadcasts += 1
        cluster = self.server.cluster
        if cluster is not None and not opts.local:
            cluster.broadcast_with_ack(packet, opts, gather)
        count = self.adapter.broadcast_with_ack(
            packet, opts, lambda sid, args: gather.add_response(args))
        gather.add_expected(count)

    async def do_fetch_sockets(self, opts: BroadcastOptions) -> list[Any]:
        local: list[Any] = list(self.adapter.match(opts))
        cluster = self.server.cluster
        if cluster is not None and not opts.local:
            local.extend(await cluster.fetch_sockets(self, opts))
        return local

    def do_sockets_join(self, opts: BroadcastOptions, rooms: frozenset[str]) -> Awaitable[None]:
        self.adapter.add_sockets(opts, rooms)
        cluster = self.server.cluster
        if cluster is not None and not opts.local:
            cluster.sockets_join(self, opts, rooms)
        return DONE

    def do_sockets_leave(self, opts: BroadcastOptions, rooms: frozenset[str]) -> Awaitable[None]:
        self.adapter.del_sockets(opts, rooms)
        cluster = self.server.cluster
        if cluster is not None and not opts.local:
            cluster.sockets_leave(self, opts, rooms)
        return DONE

    def do_disconnect_sockets(self, opts: BroadcastOptions, close: bool) -> Awaitable[None]:
        cluster = self.server.cluster
        if cluster is not None and not opts.local:
            cluster.disconnect_sockets(self, opts, close)
        self.adapter.disconnect_sockets(opts, close)
        return DONE

    # -- server-side emits: events between the workers' servers themselves -----------------

    def server_side_emit(self, event: str, *args: Any) -> Awaitable[None]:
        """Emit an event to the other workers' servers (their ``io.on(event)`` listeners on
        this namespace); not to clients."""
        cluster = self.server.cluster
        if cluster is not None:
            cluster.server_side_emit(self, event, args)
        return DONE

    async def server_side_emit_with_ack(self, event: str, *args: Any,
                                        timeout: float | None = None) -> list[Any]:
        """Like server_side_emit; returns each other worker's answer (its first listener's
        return value)."""
        cluster = self.server.cluster
        if cluster is None:
            return []
        return await cluster.server_side_emit_with_ack(
            self, event, args, timeout if timeout is not None else self.server.config.ack_timeout)

    def run_server_side(self, event: str, args: tuple[Any, ...]) -> Awaitable[Any]:
        return run_listeners([item.fn for item in self._take(event)], args,
                             f"server-side {event!r} on {self!r}")

    # -- connecting -------------------------------------------------------------------------

    async def add(self, client: Client, auth: dict[str, Any]) -> None:
        self._joining += 1
        try:
            await self._run_middlewares(client, auth)
        finally:
            self._joining -= 1
            if not self.sockets:  # refused, or the client went away meanwhile
                self._drop_if_unused()

    async def _run_middlewares(self, client: Client, auth: dict[str, Any]) -> None:
        socket = Socket(self, client, auth)
        if await run_middlewares(self, client, socket):
            self.admit(client, socket)

    def admit(self, client: Client, socket: Socket) -> None:
        """The socket joins: the client gets its CONNECT reply, then the listeners run."""
        if client.conn.closed:
            return
        self.sockets[socket.id] = socket
        self.conns[socket.id] = client.conn
        self.adapter.attach(socket.id, client.conn)
        self.counters.connected += 1
        client.add(socket)
        # the reply first: joining its own room may make an observer emit to this namespace,
        # which this socket must not hear of before its CONNECT (the reference's order lets
        # the admin UI's room_joined reach an admin socket ahead of its CONNECT)
        reply: dict[str, Any] = {"sid": socket.id}
        recovery = self.server.recovery
        if recovery is not None:
            reply["pid"] = recovery.connected(socket)
        client.send_packet(sio.Packet(sio.PacketType.CONNECT, self.name, reply))
        socket.on_connected()
        observer = self.server.observer
        if observer is not None:
            observer.socket_connected(socket)
        for event in ("connection", "connect"):
            for listener in self._take(event):
                handlers.call(listener.fn, (socket,), handlers.Context(
                    self.counters, "{} on {!r}", event, self))

    def remove(self, socket: Socket) -> None:
        sockets = self.sockets
        if sockets.get(socket.id) is socket:
            del sockets[socket.id]
            del self.conns[socket.id]
            if not sockets:
                self._drop_if_unused()

    def _drop_if_unused(self) -> None:
        parent = self.parent
        if (parent is not None and not self.sockets and not self._joining
                and self.server.config.cleanup_empty_child_namespaces):
            parent.children.discard(self)
            self.server.forget_namespace(self)


async def run_middlewares(namespace: Namespace, client: Client, socket: Socket) -> bool:
    """The namespace's middlewares on ``socket``, in order; a refusal answers the client
    (CONNECT_ERROR) and gives False."""
    for middleware in list(namespace.middlewares):
        try:
            result = middleware(socket)
            if inspect.isawaitable(result):
                result = await result
        except ConnectionRefusedError as exc:
            client.refuse(namespace.name, exc.message, exc.data)
            return False
        except Exception:
            logger.exception("error in middleware of %r", namespace)
            client.refuse(namespace.name, "Internal server error", None)
            return False
        if isinstance(result, BaseException):  # returned rather than raised
            message = getattr(result, "message", None) or str(result) or "Not authorized"
            client.refuse(namespace.name, message, getattr(result, "data", None))
            return False
    return True


class ParentNamespace(_Operators["_MultiOperator"]):
    """A dynamic namespace: ``io.of(regex)`` or ``io.of(matcher)``. A client's CONNECT to a
    name it matches creates a child :class:`Namespace` of that name, which shares the
    parent's listeners and middlewares; the broadcast operators act on every child.

    Args:
        server: the server.
        matcher: a compiled regex (the whole name must match) or ``matcher(name, auth)``,
            sync or async, true for the names to accept.

    Example::

        rooms = io.of(re.compile(r"^/room-\\d+$"))

        @rooms.on("connection")
        def connection(socket: Socket) -> None:
            print("joined", socket.namespace.name)
    """

    def __init__(self, server: Server,
                 matcher: re.Pattern[str] | Matcher) -> None:
        self.server = server
        self.matcher = matcher
        self.children: set[Namespace] = set()
        #: shared with every child: a label per child would be a series per name ever seen
        self.counters = server.counters.namespace(parent_label(matcher))
        # shared with every child
        self._template = EventEmitter()
        self.middlewares: list[Middleware] = []

    @overload
    def on(self, event: str) -> Callable[[F], F]: ...
    @overload
    def on(self, event: str, handler: F) -> F: ...

    def on(self, event: str, handler: F | None = None) -> F | Callable[[F], F]:
        """Listen on every child namespace, present and future (``"connection"``)."""
        template = self._template
        return template.on(event) if handler is None else template.on(event, handler)

    @overload
    def once(self, event: str) -> Callable[[F], F]: ...
    @overload
    def once(self, event: str, handler: F) -> F: ...

    def once(self, event: str, handler: F | None = None) -> F | Callable[[F], F]:
        template = self._template
        return template.once(event) if handler is None else template.once(event, handler)

    def off(self, event: str | None = None,
            handler: Callable[..., Any] | None = None) -> None:
        self._template.off(event, handler)

    def use(self, middleware: Middleware) -> Middleware:
        self.middlewares.append(middleware)
        return middleware

    async def matches(self, name: str, auth: dict[str, Any]) -> bool:
        if isinstance(self.matcher, re.Pattern):
            return self.matcher.fullmatch(name) is not None
        result = self.matcher(name, auth)
        if inspect.isawaitable(result):
            result = await result
        return bool(result)

    def create_child(self, name: str) -> Namespace:
        child = Namespace(self.server, name, self.counters)
        # shared: handlers added later apply
        template = self._template
        if template._once_events is None:
            template._once_events = set()  # created now, so that the children share it
        child._listeners = template._listeners
        child._once_events = template._once_events
        child.middlewares = self.middlewares
        child.parent = self
        self.children.add(child)
        return child

    def _operator(self) -> _MultiOperator:
        return _MultiOperator(self)


class _MultiOperator:
    """Broadcast operators of a parent namespace: applied to every child."""

    def __init__(self, parent: ParentNamespace,
                 steps: tuple[Callable[[BroadcastOperator], BroadcastOperator], ...] = ()) -> None:
        self._parent = parent
        self._steps = steps

    def _then(self, step: Callable[[BroadcastOperator], BroadcastOperator]) -> _MultiOperator:
        return _MultiOperator(self._parent, (*self._steps, step))

    def to(self, *rooms: str | Iterable[str]) -> _MultiOperator:
        return self._then(lambda op: op.to(*rooms))

    in_ = to

    def except_(self, *rooms: str | Iterable[str]) -> _MultiOperator:
        return self._then(lambda op: op.except_(*rooms))

    @property
    def volatile(self) -> _MultiOperator:
        return self._then(lambda op: op.volatile)

    @property
    def local(self) -> _MultiOperator:
        return self._then(lambda op: op.local)

    def timeout(self, seconds: float) -> _MultiOperator:
        return self._then(lambda op: op.timeout(seconds))

    def compress(self, value: bool = True) -> _MultiOperator:
        return self._then(lambda op: op.compress(value))

    def _each(self) -> list[BroadcastOperator]:
        out = []
        for child in list(self._parent.children):
            op = BroadcastOperator(child)
            for step in self._steps:
                op = step(op)
            out.append(op)
        return out

    def emit(self, event: str, *args: Any,
             callback: Callable[..., Any] | None = None) -> Awaitable[None]:
        if callback is not None:  # the reference's parent namespace gathers no acks either
            raise ValueError("a dynamic namespace's broadcast takes no callback")
        return _all([op.emit(event, *args) for op in self._each()])

    def send(self, *args: Any, callback: Callable[..., Any] | None = None) -> Awaitable[None]:
        return self.emit("message", *args, callback=callback)

    async def emit_with_ack(self, event: str, *args: Any) -> list[Any]:
        raise ValueError("a dynamic namespace's broadcast gathers no acks")

    async def fetch_sockets(self) -> list[FetchedSocket]:
        out: list[FetchedSocket] = []
        for op in self._each():
            out.extend(await op.fetch_sockets())
        return out

    def sockets_join(self, *rooms: str | Iterable[str]) -> Awaitable[None]:
        return _all([op.sockets_join(*rooms) for op in self._each()])

    def sockets_leave(self, *rooms: str | Iterable[str]) -> Awaitable[None]:
        return _all([op.sockets_leave(*rooms) for op in self._each()])

    def disconnect_sockets(self, close: bool = False) -> Awaitable[None]:
        return _all([op.disconnect_sockets(close) for op in self._each()])


def _all(results: list[Awaitable[None]]) -> Awaitable[None]:
    pending = [r for r in results if r is not DONE]
    if not pending:
        return DONE
    return _await_all(pending)


async def _await_all(results: list[Awaitable[None]]) -> None:
    for result in results:
        await result
