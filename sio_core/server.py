"""The per-worker server: accepts connections, routes HTTP requests, owns Engine.IO sessions.

How this works: every HTTP request lands in :meth:`EngineServer.handle`. Requests under
``config.path`` are Engine.IO: the query is verified in the reference server's order
(transport, sid, handshake method, protocol version), and then the request becomes a
handshake, a long-poll GET, a POST of packets, or a WebSocket (new, or an upgrade of a
polling session). Anything else is a static file when ``static_dir`` is set. Each error
answers with the reference's status and ``{"code": N, "message": ...}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket as socket_module
from collections.abc import Sequence
from pathlib import Path

from .config import Config
from .exceptions import (
    BadHandshakeMethod,
    BadRequest,
    EngineIOProtocolError,
    HTTPError,
    UnknownSession,
    UnknownTransport,
    UnsupportedProtocolVersion,
)
from .protocol import engineio
from .protocol.session import CloseReason, EngineSession, Timing, Transport
from .protocol.sid import new_sid, owner_of
from .transports import websocket
from .transports.cors import cors_headers, preflight
from .transports.engine_socket import EngineHandler, EngineSocket
from .transports.http import HTTPConnection, Request, Response, text_response
from .transports.static import StaticFiles

logger = logging.getLogger("sio_core.server")

_PLAIN = "text/plain; charset=UTF-8"


def error_response(exc: HTTPError, headers: list[tuple[str, str]],
                   close: bool = False) -> Response:
    body = exc.body()
    if body is None:
        return Response(exc.status, headers, b"", close=close)
    return Response(exc.status, [("Content-Type", "application/json"), *headers],
                    json.dumps(body, separators=(",", ":")).encode(), close=close)


_CLIENT_FILES = ("socket.io.js", "socket.io.js.map", "socket.io.min.js", "socket.io.min.js.map",
                 "socket.io.esm.min.js", "socket.io.esm.min.js.map")


def client_files(config: Config) -> dict[str, str]:
    """URL -> file for the official client bundle, when it is installed."""
    if not config.serve_client:
        return {}
    candidates = [Path(config.client_dist_dir)] if config.client_dist_dir else [
        Path.cwd() / "node_modules/socket.io-client/dist",
        Path(__file__).resolve().parent.parent / "node_modules/socket.io-client/dist",
    ]
    for directory in candidates:
        if (directory / "socket.io.js").is_file():
            return {config.path + name: str(directory / name) for name in _CLIENT_FILES
                    if (directory / name).is_file()}
    return {}


class EngineServer:
    def __init__(self, handler: EngineHandler, config: Config | None = None, *,
                 owner: str = "w0") -> None:
        self.handler = handler
        self.config = config or Config()
        self.owner = owner
        self.sockets: dict[str, EngineSocket] = {}
        self.static = StaticFiles(self.config.static_dir,
                                  {**client_files(self.config), **self.config.static_files})
        self.connections: set[HTTPConnection] = set()
        self._servers: list[asyncio.Server] = []
        self._timing = Timing(self.config.ping_interval, self.config.ping_timeout,
                              self.config.upgrade_timeout, self.config.close_timeout)

    # -- listening ----------------------------------------------------------------------

    async def listen(self, host: str | Sequence[str] | None = "127.0.0.1", port: int = 3000,
                     *, reuse_port: bool = False,
                     sock: socket_module.socket | None = None) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        config = self.config
        connections = self.connections

        def factory() -> HTTPConnection:
            return HTTPConnection(self.handle, config, connections=connections)

        server: asyncio.Server
        if sock is not None:
            server = await loop.create_server(factory, sock=sock, backlog=2048)
        else:
            server = await loop.create_server(factory, host, port, reuse_port=reuse_port or None,
                                              backlog=2048)
        self._servers.append(server)
        return server

    async def close(self, reason: CloseReason = CloseReason.SERVER_SHUTTING_DOWN) -> None:
        """Stop accepting, close every session (clients are told), close connections."""
        for server in self._servers:
            server.close()
        for socket in list(self.sockets.values()):
            socket.close(reason)
        # give the close packets a loop turn to be written
        await asyncio.sleep(0)
        for conn in list(self.connections):
            conn.close()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    # -- routing ------------------------------------------------------------------------

    async def handle(self, request: Request, conn: HTTPConnection) -> Response | None:
        path = self.config.path
        if request.path in self.static.files:
            return self.static.respond(request)
        if request.path.startswith(path) or request.path + "/" == path:
            headers = cors_headers(self.config, request)
            if request.method == "OPTIONS":
                return preflight(self.config, request)
            try:
                return await self._engine(request, conn, headers)
            except HTTPError as exc:
                return error_response(exc, headers, close=request.upgrade)
        if request.upgrade:
            return text_response(400, "Bad Request")
        if self.static:
            return self.static.respond(request)
        return text_response(404, "Not Found")

    async def _engine(self, request: Request, conn: HTTPConnection,
                      headers: list[tuple[str, str]]) -> Response | None:
        query = request.query
        transport = query.get("transport")
        if transport not in self.config.transports:
            raise UnknownTransport()
        is_ws_upgrade = request.upgrade and request.headers.get("upgrade", "").lower() \
            == "websocket"
        sid = query.get("sid")
        if sid is not None:
            socket = self._lookup(sid)
            if transport == "websocket":
                if not is_ws_upgrade:
                    raise BadRequest()
                return self._upgrade(request, conn, socket)
            if socket.transport != "polling":
                raise BadRequest()  # polling after the upgrade (reference: 400 code 3)
            if request.method == "GET":
                return await self._poll(socket, headers)
            if request.method == "POST":
                return self._post(socket, request, headers)
            raise BadRequest()
        if request.method != "GET":
            raise BadHandshakeMethod()
        if transport == "websocket" and not is_ws_upgrade:
            raise BadRequest()
        if query.get("EIO") != "4":
            raise UnsupportedProtocolVersion()
        if transport == "websocket":
            return self._open_websocket(request, conn)
        return self._open_polling(request, headers)

    def _lookup(self, sid: str) -> EngineSocket:
        socket = self.sockets.get(sid)
        if socket is None or owner_of(sid) is None:
            raise UnknownSession()
        return socket

    # -- handshakes ---------------------------------------------------------------------

    def _new_socket(self, transport: Transport, request: Request) -> EngineSocket:
        core = EngineSession(new_sid(self.owner), transport, self._timing,
                             asyncio.get_running_loop().time())
        socket = EngineSocket(core, self.handler, self._forget, request_info=request)
        self.sockets[socket.sid] = socket
        return socket

    def _forget(self, socket: EngineSocket) -> None:
        if self.sockets.get(socket.sid) is socket:
            del self.sockets[socket.sid]

    def _upgrades(self, transport: Transport) -> list[str]:
        if (transport is Transport.POLLING and self.config.allow_upgrades
                and "websocket" in self.config.transports):
            return ["websocket"]
        return []

    def _open_polling(self, request: Request, headers: list[tuple[str, str]]) -> Response:
        socket = self._new_socket(Transport.POLLING, request)
        open_packet = socket.core.handshake(upgrades=self._upgrades(Transport.POLLING),
                                            max_payload=self.config.max_payload)
        socket.opened()
        body = engineio.encode_payload([open_packet]).encode()
        return Response(200, [("Content-Type", _PLAIN), *headers], body)

    def _open_websocket(self, request: Request, conn: HTTPConnection) -> Response | None:
        ws = websocket.accept(request, conn, self.config)
        if isinstance(ws, Response):
            return ws
        socket = self._new_socket(Transport.WEBSOCKET, request)
        socket.attach_websocket(ws)
        open_packet = socket.core.handshake(upgrades=[], max_payload=self.config.max_payload)
        ws.send(engineio.encode_packet(open_packet))
        conn.take_over(ws, request.trailing)
        socket.opened()
        return None

    def _upgrade(self, request: Request, conn: HTTPConnection,
                 socket: EngineSocket) -> Response | None:
        if socket.core.transport is not Transport.POLLING or not self.config.allow_upgrades:
            raise BadRequest()
        ws = websocket.accept(request, conn, self.config)
        if isinstance(ws, Response):
            return ws
        try:
            socket.begin_upgrade(ws)
        except HTTPError:
            ws.close()
            conn.take_over(ws)
            return None
        conn.take_over(ws, request.trailing)
        return None

    # -- polling ------------------------------------------------------------------------

    async def _poll(self, socket: EngineSocket, headers: list[tuple[str, str]]) -> Response:
        packets = await socket.poll()
        body = engineio.encode_payload(packets).encode()
        return Response(200, [("Content-Type", _PLAIN), *headers], body)

    def _post(self, socket: EngineSocket, request: Request,
              headers: list[tuple[str, str]]) -> Response:
        socket.post_begin()
        try:
            try:
                packets = engineio.decode_payload(
                    request.body, max_packets=self.config.max_packets_per_payload)
            except EngineIOProtocolError:
                socket.protocol_error()
                raise BadRequest() from None
            socket.receive(packets)
        finally:
            socket.post_end()
        return Response(200, [("Content-Type", "text/html"), *headers], b"ok")
