"""The one exception tree of sio_core.

::

    SioCoreError
    ├── RemoteError                 the peer's fault; carries what to answer with
    │   ├── HTTPError               answered on the HTTP side: status + Engine.IO code
    │   │   ├── UnknownTransport        400 {"code":0,"message":"Transport unknown"}
    │   │   ├── UnknownSession          400 {"code":1,"message":"Session ID unknown"}
    │   │   ├── BadHandshakeMethod      400 {"code":2,"message":"Bad handshake method"}
    │   │   ├── BadRequest              400 {"code":3,"message":"Bad request"}
    │   │   ├── Forbidden               403 {"code":4,"message":"Forbidden"}
    │   │   ├── UnsupportedProtocolVersion  400 {"code":5,...}
    │   │   ├── PayloadTooLarge         413
    │   │   └── ShuttingDown            503 (a handshake while the server drains)
    │   └── ProtocolError           a malformed packet: the session (or connection) is closed
    │       ├── EngineIOProtocolError
    │       └── SocketIOProtocolError
    └── LocalError                  API misuse by the application, or what it must handle
        ├── ReservedEventError      emitting "connect", "disconnect", ...
        ├── ConnectionRefusedError  raised by middleware to refuse a CONNECT
        ├── AckTimeoutError         (also a TimeoutError) acks did not all come in time
        ├── DisconnectedError       (also a ConnectionError) the socket went away
        └── ServeError              (also an OSError) serve() could not start: the store
                                    unreachable, the address not available

Remote errors never carry internal text to the peer: the HTTP body is built from the
class's fixed ``code`` and ``message``, not from ``str(exc)``.
"""

from __future__ import annotations

from typing import Any


class SioCoreError(Exception):
    """Base of every exception raised by sio_core."""


class RemoteError(SioCoreError):
    """The peer sent something we refuse."""


class HTTPError(RemoteError):
    """Answered with an HTTP status and the reference server's JSON body."""

    status: int = 400
    code: int | None = 3
    message: str = "Bad request"

    def body(self) -> dict[str, Any] | None:
        if self.code is None:
            return None
        return {"code": self.code, "message": self.message}


class UnknownTransport(HTTPError):
    """A transport the server does not offer (400, code 0)."""

    code = 0
    message = "Transport unknown"


class UnknownSession(HTTPError):
    """A sid no worker has (400, code 1)."""

    code = 1
    message = "Session ID unknown"


class BadHandshakeMethod(HTTPError):
    """A handshake that is not a GET (400, code 2)."""

    code = 2
    message = "Bad handshake method"


class BadRequest(HTTPError):
    """A request that breaks the protocol (400, code 3)."""

    code = 3
    message = "Bad request"


class Forbidden(HTTPError):
    """A handshake the application's ``allow_request`` refused; ``message`` is the one it
    gave (raising ConnectionRefusedError), else "Forbidden"."""

    status = 403
    code = 4
    message = "Forbidden"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)
        if message:
            self.message = message


class UnsupportedProtocolVersion(HTTPError):
    """An Engine.IO version other than 4 (400, code 5)."""

    code = 5
    message = "Unsupported protocol version"


class PayloadTooLarge(HTTPError):
    """A body larger than ``max_payload`` (413)."""

    # The reference answers an oversize polling body with a bare 413.
    status = 413
    code = None
    message = "Payload too large"


class ShuttingDown(HTTPError):
    """A handshake while the server drains (503)."""

    # Not the reference's (it stops listening at once): a draining worker still listens,
    # for the GETs that collect its sessions' "1", and turns new sessions away. A bare
    # 503, as the Engine.IO codes have none for it; the client retries its handshake.
    status = 503
    code = None
    message = "Server shutting down"


class ProtocolError(RemoteError):
    """A packet that does not decode: the connection or session carrying it is closed."""


class EngineIOProtocolError(ProtocolError):
    """A malformed Engine.IO packet or payload."""


class SocketIOProtocolError(ProtocolError):
    """A malformed Socket.IO packet (bad type, namespace, ack id, JSON or shape)."""


class LocalError(SioCoreError):
    """The application used the API wrongly."""


class ReservedEventError(LocalError, ValueError):
    """An application tried to emit a reserved event name."""


class ConnectionRefusedError(LocalError):
    """Raise from a middleware or a connection handler to refuse a CONNECT (or from
    ``allow_request`` to refuse a handshake, with 403 and this message).

    The client receives CONNECT_ERROR ``{"message": message, "data": data}``.

    Args:
        message: what the client's ``connect_error`` gets as ``err.message``.
        data: anything JSON, as ``err.data``.

    Example::

        @io.use
        def auth(socket: Socket) -> None:
            if socket.handshake.auth.get("token") != TOKEN:
                raise ConnectionRefusedError("not authorized", {"retry": False})
    """

    def __init__(self, message: str = "Connection refused", data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class AckTimeoutError(LocalError, TimeoutError):
    """Not every ack came within the timeout; ``responses`` holds those that did.

    Args:
        responses: the acks that came in time.
    """

    def __init__(self, responses: list[Any] | None = None) -> None:
        super().__init__("operation has timed out")
        self.responses = responses or []


class DisconnectedError(LocalError, ConnectionError):
    """The socket disconnected while an ack was awaited."""


class ServeError(LocalError, OSError):
    """``serve()`` could not start; the message is one line saying what failed (the store
    could not be reached, the address cannot be listened on), for a log."""
