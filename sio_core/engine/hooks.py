"""The application's say in the Engine.IO handshake: the reference server's ``allowRequest``
option and its ``connection_error``, ``initial_headers`` and ``headers`` events.

How this works: an :class:`EngineHooks` belongs to the application (the Socket.IO server
has one as ``io.engine_hooks``, usable before ``serve()``) and is read by the
:class:`~sio_core.engine.server.EngineServer` on every Engine.IO request:

- ``allow_request(request)`` decides on each handshake (a request without a sid), after the
  reference's own checks (transport, method) and before the protocol version's: a false
  value refuses it with 403 ``{"code":4,"message":"Forbidden"}``; raising
  :class:`~sio_core.exceptions.ConnectionRefusedError` refuses it with that message instead
  (the reference's ``callback(message, false)``). It may be async.
- ``initial_headers`` listeners get ``(headers, request)`` for the answer to a handshake,
  ``headers`` listeners for the answer to every Engine.IO request (handshake, polling GET
  and POST, websocket upgrade); ``headers`` is a dict they may add to (the session cookie,
  when ``Config.cookie`` is set, is already in an initial one as ``Set-Cookie``).
- ``connection_error`` listeners get a :class:`ConnectionErrorEvent` for every request
  refused with an Engine.IO error code (the reference's codes and messages).

Listeners are plain functions, run before the answer is written; an exception in one is
logged and the answer goes out regardless.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from ..config import Cookie
from ..exceptions import HTTPError
from ..http.messages import Request

logger = logging.getLogger("sio_core.server")

F = TypeVar("F", bound=Callable[..., Any])

#: ``allow_request(request) -> bool`` (or an awaitable of one)
AllowRequest = Callable[[Request], Any]

#: the events an EngineHooks has listeners for
EVENTS = ("connection_error", "initial_headers", "headers")


@dataclass(frozen=True, slots=True)
class ConnectionErrorEvent:
    """A refused Engine.IO request, as the reference's ``connection_error`` event describes
    it.

    Args:
        request: the request refused.
        code: the Engine.IO error code (0 unknown transport, 1 unknown session, 2 bad
            handshake method, 3 bad request, 4 forbidden, 5 unsupported protocol version).
        message: the message the client was sent with it.
        context: what the reference adds for the code (``transport``, ``sid``, ``method``,
            ``protocol``).
    """

    request: Request
    code: int
    message: str
    context: dict[str, Any] = field(default_factory=dict)


class EngineHooks:
    """Hooks of the Engine.IO handshake: ``allow_request`` and the engine's events.

    Args:
        allow_request: called with each handshake request (sync or async); a false result
            refuses it (403 Forbidden), as does raising ConnectionRefusedError(message).

    Example::

        io = Server(allow_request=lambda request: "evil" not in request.headers.get("origin", ""))

        @io.engine_hooks.on("initial_headers")
        def add_header(headers: dict[str, str], request: Request) -> None:
            headers["X-Served-By"] = "sio_core"

        @io.engine_hooks.on("connection_error")
        def refused(event: ConnectionErrorEvent) -> None:
            print(event.code, event.message, event.request.path)
    """

    def __init__(self, allow_request: AllowRequest | None = None) -> None:
        self.allow_request = allow_request
        self._listeners: dict[str, list[Callable[..., Any]]] = {name: [] for name in EVENTS}

    @overload
    def on(self, event: str) -> Callable[[F], F]: ...
    @overload
    def on(self, event: str, handler: F) -> F: ...

    def on(self, event: str, handler: F | None = None) -> F | Callable[[F], F]:
        """Add a listener of ``connection_error``, ``initial_headers`` or ``headers``;
        usable as a decorator."""
        if event not in self._listeners:
            raise ValueError(f"unknown engine event {event!r}; choose from {', '.join(EVENTS)}")
        if handler is None:
            def decorator(fn: F) -> F:
                self._listeners[event].append(fn)
                return fn
            return decorator
        self._listeners[event].append(handler)
        return handler

    def off(self, event: str, handler: Callable[..., Any] | None = None) -> None:
        """Remove one listener of ``event``, or all of them."""
        listeners = self._listeners.get(event, [])
        listeners[:] = [] if handler is None else [fn for fn in listeners if fn != handler]

    def headers(self, request: Request, initial: bool, cookie: Cookie | None,
                sid: str | None) -> list[tuple[str, str]]:
        """The headers the application adds to an answer (``initial``: a handshake's,
        whose session is ``sid``)."""
        added: dict[str, str] = {}
        if initial and cookie is not None and sid is not None:
            added["Set-Cookie"] = cookie.serialize(sid)
        if initial:
            self._emit("initial_headers", added, request)
        self._emit("headers", added, request)
        return [(str(name), str(value)) for name, value in added.items()]

    @property
    def listens_to_headers(self) -> bool:
        return bool(self._listeners["initial_headers"] or self._listeners["headers"])

    def refused(self, request: Request, exc: HTTPError) -> None:
        """Tell the ``connection_error`` listeners (errors with an Engine.IO code only)."""
        if exc.code is None or not self._listeners["connection_error"]:
            return
        query = request.query
        context: dict[str, Any] = {}
        if exc.code == 0:
            context = {"transport": query.get("transport")}
        elif exc.code == 1:
            context = {"sid": query.get("sid")}
        elif exc.code == 2:
            context = {"method": request.method}
        elif exc.code == 4:
            context = {"message": exc.message}
        elif exc.code == 5:
            context = {"protocol": query.get("EIO")}
        self._emit("connection_error", ConnectionErrorEvent(request, exc.code, exc.message,
                                                            context))

    def _emit(self, event: str, *args: Any) -> None:
        for fn in list(self._listeners[event]):
            try:
                fn(*args)
            except Exception:
                logger.exception("error in the engine's %r listener %r", event, fn)
