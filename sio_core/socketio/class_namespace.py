"""Class-based namespaces, the shape python-socketio users know (``socketio.AsyncNamespace``).

How this works: ``io.register_namespace(Chat("/chat"))`` attaches the instance to the
namespace of that name. Its ``on_connect(sid, environ[, auth])`` runs as a middleware of
the namespace (so returning False or raising ConnectionRefusedError refuses the CONNECT,
before the client is told it is connected); once the socket is admitted, each ``on_<event>``
method becomes a listener of the socket, called as ``on_<event>(sid, *args)``, whose return
value answers the client's ack; ``on_disconnect(sid[, reason])`` runs when it leaves. The
helpers (emit, send, call, enter_room, ...) take a sid as python-socketio's do and act
through the broadcast operators, so they reach a socket on any worker or node. What a
connect handler does to its own, not yet admitted, socket (emit to it, enter a room) is
done once it is admitted, as python-socketio's client receives it after its CONNECT.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from ..exceptions import ConnectionRefusedError, DisconnectedError
from .broadcast import BroadcastOperator
from .socket import Handshake, Socket

if TYPE_CHECKING:
    from .namespace import Namespace
    from .server import Server

#: what python-socketio's client is told when a connect handler returns False
REJECTED = "Connection rejected by server"


def environ_of(handshake: Handshake) -> dict[str, Any]:
    """A WSGI-style ``environ`` of a handshake, as python-socketio's connect handlers get:
    ``REQUEST_METHOD``, ``PATH_INFO``, ``QUERY_STRING``, ``REMOTE_ADDR``,
    ``wsgi.url_scheme``, an ``HTTP_<NAME>`` entry per header, and the
    :class:`~sio_core.socketio.socket.Handshake` itself as ``sio_core.handshake``."""
    path, _, query = handshake.url.partition("?")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "REMOTE_ADDR": handshake.address,
        "wsgi.url_scheme": "https" if handshake.secure else "http",
        "sio_core.handshake": handshake,
    }
    for name, value in handshake.headers.items():
        key = name.upper().replace("-", "_")
        environ[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key] = value
    return environ


class AsyncNamespace:
    """A class-based namespace: subclass it, define ``on_<event>`` methods, register an
    instance with ``io.register_namespace(instance)``.

    The shape of python-socketio's ``AsyncNamespace``: handlers take the socket's ``sid``
    first, a handler's return value answers the client's ack, and the helpers take a sid.

    Args:
        namespace: the namespace's name ("/" if not given).

    Example::

        class Chat(AsyncNamespace):
            async def on_connect(self, sid: str, environ: dict[str, Any],
                                 auth: dict[str, Any]) -> bool:
                if auth.get("token") != "s3cret":
                    return False  # CONNECT_ERROR "Connection rejected by server"
                await self.enter_room(sid, "lobby")
                return True

            async def on_message(self, sid: str, text: str) -> str:
                await self.emit("message", text, room="lobby", skip_sid=sid)
                return "delivered"  # the client's ack

            def on_disconnect(self, sid: str, reason: str) -> None:
                print(sid, "left:", reason)

        io = Server()
        io.register_namespace(Chat("/chat"))

    Differences from python-socketio: ``environ`` is built from the handshake (see
    :func:`environ_of`); disconnect reasons are the JavaScript server's ("client namespace
    disconnect", "transport close", "ping timeout", ...); ``call()`` raises the built-in
    TimeoutError, and DisconnectedError when no client of that sid answers; ``rooms()`` and
    the session helpers see sockets of this worker only; ``self.server`` is a sio_core
    :class:`~sio_core.socketio.server.Server` (whose own API is the JavaScript server's);
    the catch-all namespace ``"*"`` does not exist (use ``io.of(regex)``).
    """

    def __init__(self, namespace: str | None = None) -> None:
        self.namespace = namespace or "/"
        #: the server it is registered with (register_namespace sets it)
        self.server: Server | None = None
        #: sockets whose on_connect runs, and what waits for their admission
        self._connecting: weakref.WeakValueDictionary[str, Socket] = \
            weakref.WeakValueDictionary()
        self._deferred: weakref.WeakKeyDictionary[Socket, list[Callable[[], Any]]] = \
            weakref.WeakKeyDictionary()

    def attach(self, server: Server) -> None:
        """Serve this namespace's events on ``server`` (what register_namespace does)."""
        if self.server is not None:
            raise RuntimeError(f"{self!r} is registered with a server already")
        self.server = server
        namespace = server.of(self.namespace)
        events = [(name[3:], name) for name in dir(type(self))
                  if name.startswith("on_") and name not in ("on_connect", "on_disconnect")
                  and callable(getattr(self, name))]
        if callable(getattr(self, "on_connect", None)):
            namespace.use(self._connect)
        disconnect = getattr(self, "on_disconnect", None)
        with_reason = disconnect is not None and _takes(disconnect, 2)

        def connection(socket: Socket) -> None:
            sid = socket.id
            for event, name in events:
                socket.on(event, _bound(getattr(self, name), sid))
            if disconnect is not None:
                socket.on("disconnect", lambda reason: disconnect(sid, reason) if with_reason
                          else disconnect(sid))
            for action in self._deferred.pop(socket, []):
                action()

        namespace.on("connection", connection)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.namespace}>"

    # -- connecting ---------------------------------------------------------------------

    async def _connect(self, socket: Socket) -> None:
        handler: Callable[..., Any] = getattr(self, "on_connect")  # noqa: B009
        args: tuple[Any, ...] = (socket.id, environ_of(socket.handshake))
        if _takes(handler, 3):
            args = (*args, socket.handshake.auth)
        self._connecting[socket.id] = socket
        try:
            result = handler(*args)
            if inspect.isawaitable(result):
                result = await result
        except BaseException:
            self._deferred.pop(socket, None)
            raise
        finally:
            self._connecting.pop(socket.id, None)
        if result is False:
            self._deferred.pop(socket, None)
            raise ConnectionRefusedError(REJECTED)

    def _defer(self, sid: str, namespace: str | None,
               action: Callable[[Socket], Any]) -> bool:
        """Whether ``sid`` is a socket of this namespace whose on_connect runs: then
        ``action(socket)`` is done once it is admitted."""
        socket = self._connecting.get(sid) if namespace in (None, self.namespace) else None
        if socket is None:
            return False
        self._deferred.setdefault(socket, []).append(lambda: action(socket))
        return True

    # -- helpers, as python-socketio's ----------------------------------------------------

    def _server(self) -> Server:
        if self.server is None:
            raise RuntimeError(f"{self!r} is not registered: call io.register_namespace()")
        return self.server

    def _namespace(self, namespace: str | None) -> Namespace:
        return self._server().of(namespace or self.namespace)

    def _local(self, sid: str, namespace: str | None) -> Socket | None:
        socket = self._namespace(namespace).sockets.get(sid)
        if socket is None and namespace in (None, self.namespace):
            socket = self._connecting.get(sid)
        return socket

    async def emit(self, event: str, data: Any = None, to: str | list[str] | None = None,
                   room: str | list[str] | None = None,
                   skip_sid: str | list[str] | None = None, namespace: str | None = None,
                   callback: Callable[..., Any] | None = None) -> None:
        """Emit ``event`` to the client ``to`` (a sid or a room; ``room`` is the same),
        else to every client of the namespace, except ``skip_sid``. ``data``: one argument,
        a tuple of several, or None for none. ``callback(*ack_args)`` runs when the client
        ``to`` acks."""
        args = _args(data)
        target = to if to is not None else room
        if isinstance(target, str) and self._defer(
                target, namespace, lambda socket: socket.emit(event, *args, callback=callback)):
            return
        if callback is not None:
            if not isinstance(target, str):
                raise ValueError("a callback needs one client: emit(..., to=sid)")
            socket = self._local(target, namespace)
            if socket is not None:
                await socket.emit(event, *args, callback=callback)
                return
            await self._namespace(namespace).to(target).emit(
                event, *args, callback=lambda err, answers: _answer(callback, err, answers))
            return
        operator = BroadcastOperator(self._namespace(namespace))
        if target is not None:
            operator = operator.to(target)
        if skip_sid is not None:
            operator = operator.except_(skip_sid)
        await operator.emit(event, *args)

    async def send(self, data: Any, to: str | list[str] | None = None,
                   room: str | list[str] | None = None,
                   skip_sid: str | list[str] | None = None, namespace: str | None = None,
                   callback: Callable[..., Any] | None = None) -> None:
        """Emit a ``message`` event (see :meth:`emit`)."""
        await self.emit("message", data, to=to, room=room, skip_sid=skip_sid,
                        namespace=namespace, callback=callback)

    async def call(self, event: str, data: Any = None, to: str | None = None,
                   sid: str | None = None, namespace: str | None = None,
                   timeout: float = 60) -> Any:
        """Emit to one client and return its ack: one value, a tuple of several, or None.
        Raises TimeoutError after ``timeout`` seconds, DisconnectedError if no such client
        answers."""
        target = to if to is not None else sid
        if target is None:
            raise ValueError("call() needs a client: call(event, data, to=sid)")
        args = _args(data)
        socket = self._local(target, namespace)
        if socket is not None and socket.connected:
            return await socket.emit_with_ack(event, *args, timeout=timeout)
        answers = await self._namespace(namespace).to(target).timeout(timeout).emit_with_ack(
            event, *args)
        if not answers:
            raise DisconnectedError(f"no client {target!r} in {namespace or self.namespace}")
        return answers[0]

    async def enter_room(self, sid: str, room: str, namespace: str | None = None) -> None:
        """Make the client ``sid`` join ``room`` (on whichever worker it is)."""
        if not self._defer(sid, namespace, lambda socket: socket.join(room)):
            await self._namespace(namespace).in_(sid).sockets_join(room)

    async def leave_room(self, sid: str, room: str, namespace: str | None = None) -> None:
        """Make the client ``sid`` leave ``room``."""
        if not self._defer(sid, namespace, lambda socket: socket.leave(room)):
            await self._namespace(namespace).in_(sid).sockets_leave(room)

    async def close_room(self, room: str, namespace: str | None = None) -> None:
        """Make every client in ``room`` leave it."""
        await self._namespace(namespace).in_(room).sockets_leave(room)

    def rooms(self, sid: str, namespace: str | None = None) -> list[str]:
        """The rooms of the client ``sid`` (of this worker; [] for another's)."""
        socket = self._local(sid, namespace)
        return sorted(socket.rooms) if socket is not None else []

    async def get_session(self, sid: str, namespace: str | None = None) -> dict[str, Any]:
        """The client's session: its socket's ``data`` dict (a client of this worker)."""
        return self._session_socket(sid, namespace).data

    async def save_session(self, sid: str, session: dict[str, Any],
                           namespace: str | None = None) -> None:
        """Replace the client's session."""
        self._session_socket(sid, namespace).data = session

    @asynccontextmanager
    async def session(self, sid: str,
                      namespace: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """``async with self.session(sid) as session:`` changes kept at the end."""
        session = await self.get_session(sid, namespace)
        yield session
        await self.save_session(sid, session, namespace)

    async def disconnect(self, sid: str, namespace: str | None = None) -> None:
        """Disconnect the client ``sid`` from the namespace."""
        await self._namespace(namespace).in_(sid).disconnect_sockets()

    def _session_socket(self, sid: str, namespace: str | None) -> Socket:
        socket = self._local(sid, namespace)
        if socket is None:
            raise KeyError(f"no client {sid!r} on this worker")
        return socket


def _args(data: Any) -> tuple[Any, ...]:
    """python-socketio's ``data``: None for no argument, a tuple for several."""
    if data is None:
        return ()
    return data if isinstance(data, tuple) else (data,)


def _answer(callback: Callable[..., Any], err: Exception | None, answers: list[Any]) -> Any:
    """A broadcast's gathered ack, as python-socketio's callback takes it (not called
    when no client answered)."""
    return callback(*_args(answers[0])) if answers else None


def _bound(method: Callable[..., Any], sid: str) -> Callable[..., Any]:
    """``method(sid, *args)`` as a listener of the socket ``sid``. It takes ``*args``, so it
    is never handed the ack callable: its return value answers (handlers.signature_of),
    None too (an ack with no arguments), as python-socketio answers once a handler returns."""
    if inspect.iscoroutinefunction(method):
        async def async_listener(*args: Any) -> Any:
            result = await method(sid, *args)
            return () if result is None else result
        return async_listener

    def listener(*args: Any) -> Any:
        result = method(sid, *args)
        return () if result is None else result
    return listener


def _takes(fn: Callable[..., Any], count: int) -> bool:
    """Whether ``fn`` accepts ``count`` positional arguments."""
    try:
        inspect.signature(fn).bind(*range(count))
    except TypeError:
        return False
    return True

