"""sio_core: a Socket.IO server on asyncio that scales across workers without sticky sessions."""

from .config import Config
from .exceptions import AckTimeoutError, ConnectionRefusedError, DisconnectedError
from .socketio import BroadcastOperator, Handshake, Namespace, Server, Socket

__version__ = "0.1.0"

__all__ = [
    "AckTimeoutError",
    "BroadcastOperator",
    "Config",
    "ConnectionRefusedError",
    "DisconnectedError",
    "Handshake",
    "Namespace",
    "Server",
    "Socket",
]
