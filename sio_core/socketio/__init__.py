"""The Socket.IO layer: namespaces, sockets, rooms, acks, broadcast operators, middleware."""

from .broadcast import BroadcastOperator
from .class_namespace import AsyncNamespace
from .namespace import Namespace, ParentNamespace
from .server import Server
from .socket import FetchedSocket, Handshake, Socket

__all__ = ["AsyncNamespace", "BroadcastOperator", "FetchedSocket", "Handshake", "Namespace",
           "ParentNamespace", "Server", "Socket"]
