"""The Socket.IO layer: namespaces, sockets, rooms, acks, broadcast operators, middleware."""

from .broadcast import BroadcastOperator
from .namespace import Namespace, ParentNamespace
from .server import Server
from .socket import Handshake, Socket

__all__ = ["BroadcastOperator", "Handshake", "Namespace", "ParentNamespace", "Server", "Socket"]
