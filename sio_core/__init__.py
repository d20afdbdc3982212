"""sio_core: a Socket.IO server on asyncio that scales across workers without sticky sessions."""

import os
from typing import TYPE_CHECKING, Any

from . import build

if os.environ.get(build.PURE) == "1":  # before any module that may be compiled
    build.prefer_sources()

from .config import Config, Cookie
from .engine.hooks import ConnectionErrorEvent, EngineHooks
from .exceptions import (
    AckTimeoutError,
    ConnectionRefusedError,
    DisconnectedError,
    ReservedEventError,
    ServeError,
    SioCoreError,
)
from .http.messages import Request
from .socketio import (
    AsyncNamespace,
    BroadcastOperator,
    FetchedSocket,
    Handshake,
    Namespace,
    ParentNamespace,
    Server,
    Socket,
)
from .socketio.cluster import RemoteSocket

if TYPE_CHECKING:
    from .emitter import Emitter

__version__ = "0.1.0"

__all__ = [
    "AckTimeoutError",
    "AsyncNamespace",
    "BroadcastOperator",
    "Config",
    "ConnectionErrorEvent",
    "ConnectionRefusedError",
    "Cookie",
    "DisconnectedError",
    "Emitter",
    "EngineHooks",
    "FetchedSocket",
    "Handshake",
    "Namespace",
    "ParentNamespace",
    "RemoteSocket",
    "Request",
    "ReservedEventError",
    "ServeError",
    "Server",
    "SioCoreError",
    "Socket",
]


def __getattr__(name: str) -> Any:
    # the emitter needs redis, which a server without a Redis store never loads
    if name == "Emitter":
        from .emitter import Emitter

        globals()["Emitter"] = Emitter  # once: a module attribute from now on
        return Emitter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
