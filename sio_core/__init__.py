"""sio_core: a Socket.IO server on asyncio that scales across workers without sticky sessions."""

from typing import TYPE_CHECKING, Any

from .config import Config
from .exceptions import AckTimeoutError, ConnectionRefusedError, DisconnectedError
from .socketio import BroadcastOperator, Handshake, Namespace, Server, Socket

if TYPE_CHECKING:
    from .emitter import Emitter

__version__ = "0.1.0"

__all__ = [
    "AckTimeoutError",
    "BroadcastOperator",
    "Config",
    "ConnectionRefusedError",
    "DisconnectedError",
    "Emitter",
    "Handshake",
    "Namespace",
    "Server",
    "Socket",
]


def __getattr__(name: str) -> Any:
    # the emitter needs redis, which a server without a Redis store never loads
    if name == "Emitter":
        from .emitter import Emitter

        globals()["Emitter"] = Emitter  # once: a module attribute from now on
        return Emitter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
