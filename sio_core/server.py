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
import dataclasses
import json
import logging
import socket as socket_module
from collections import Counter
from collections.abc import Awaitable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from .config import Config
from .engine.metrics import metrics_endpoint
from .exceptions import (
    BadHandshakeMethod,
    BadRequest,
    EngineIOProtocolError,
    HTTPError,
    PayloadTooLarge,
    ShuttingDown,
    UnknownSession,
    UnknownTransport,
    UnsupportedProtocolVersion,
)
from .forwarding import Forwarding
from .protocol import engineio
from .protocol.session import CloseReason, EngineSession, Timing, Transport
from .protocol.sid import new_sid, owner_of
from .stores.base import Store
from .transports import websocket
from .transports.cors import cors_headers, preflight
from .transports.engine_socket import EngineHandler, EngineSocket
from .transports.http import HTTPConnection, Request, Response, text_response
from .transports.static import StaticFiles

logger = logging.getLogger("sio_core.server")

_PLAIN = "text/plain; charset=UTF-8"


#: the official client bundle in an installed wheel (copied there at build time: setup.py)
PACKAGED_CLIENT = Path(__file__).resolve().parent / "client_dist"
_CLIENT_FILES = ("socket.io.js", "socket.io.js.map", "socket.io.min.js", "socket.io.min.js.map",
                 "socket.io.esm.min.js", "socket.io.esm.min.js.map")


def client_files(config: Config) -> dict[str, str]:
    """URL -> file for the official client bundle, when it is installed."""
    if not config.serve_client:
        return {}
    candidates = [Path(config.client_dist_dir)] if config.client_dist_dir else [
        PACKAGED_CLIENT,
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
                 owner: str = "w0", store: Store | None = None) -> None:
        self.handler = handler
        self.config = config or Config()
        self.owner = owner
        self.store = store
        self.forwarding = Forwarding(self, store) if store is not None else None
        self.sockets: dict[str, EngineSocket] = {}
        self.static = StaticFiles(self.config.static_dir,
                                  {**client_files(self.config), **self.config.static_files})
        self.connections: set[HTTPConnection] = set()
        #: every accepted websocket (a session's, or relayed for another worker's session)
        #: until its TCP connection has closed: a drain waits for their closing handshakes
        self.websockets: set[websocket.WebSocketConnection] = set()
        self._draining = False
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timing = Timing(self.config.ping_interval, self.config.ping_timeout,
                              self.config.upgrade_timeout, self.config.close_timeout)
        #: for the metrics: sessions opened by transport, closed by reason
        self.sessions_opened: Counter[Transport] = Counter()
        self.sessions_closed: Counter[CloseReason | None] = Counter()
        self.metrics = metrics_endpoint(self)  # None when config.metrics_path is

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

    async def drain(self, timeout: float,
                    reason: CloseReason = CloseReason.SERVER_SHUTTING_DOWN) -> bool:
        """The first phase of a shutdown: refuse new sessions (503), close every session
        (its client is told: a polling one gets ``1`` with its next GET, a websocket a
        closing handshake), and wait up to ``timeout`` until they are all gone, every
        request forwarded to another worker is answered (when every worker drains, that
        answer is the owner's ``1``) and every websocket, this worker's sessions' or
        relayed for another's, has closed its TCP connection. Keeps listening: a polling
        client still needs its next GET to reach some worker. Whether all that happened
        in time."""
        self._draining = True
        for socket in list(self.sockets.values()):
            socket.close(reason)
        for ws in list(self.websockets):
            # the ones relayed for other workers' sessions too (their owners are told): a
            # worker retired alone (SIGHUP) must not wait for owners that stay
            ws.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._drained():
            if loop.time() >= deadline:
                logger.warning("drain timed out: %d session(s), %d websocket(s) left",
                               len(self.sockets), len(self.websockets))
                return False
            await asyncio.sleep(0.05)
        return True

    def stop_listening(self) -> None:
        for server in self._servers:
            server.close()

    def _drained(self) -> bool:
        forwarding = self.forwarding
        return not (self.sockets or self.websockets
                    or (forwarding is not None and forwarding.in_flight))

    async def close(self, reason: CloseReason = CloseReason.SERVER_SHUTTING_DOWN,
                    drain_timeout: float = 5.0, flush_timeout: float = 1.0) -> None:
        """:meth:`drain` (for at most ``drain_timeout``), then stop listening and close
        every connection, waiting up to ``flush_timeout`` for what they still have to
        write to leave (a process that exits drops a transport's unsent bytes)."""
        if not self._draining:
            await self.drain(drain_timeout, reason)
        self.stop_listening()
        for conn in list(self.connections):
            conn.close()
        for ws in list(self.websockets):
            ws.abort()  # a drain that timed out: no closing handshake any more
        loop = asyncio.get_running_loop()
        deadline = loop.time() + flush_timeout
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()

    def _health(self) -> Response:
        store = self.store
        body = {
            "owner": self.owner,
            "sessions": len(self.sockets),
            "connections": len(self.connections),
            "store": type(store).__name__ if store is not None else None,
            "peers": sorted(store.peers) if store is not None else [],
            "store_health": getattr(store, "health", None),
        }
        # the layer above may add its own counts (the Socket.IO server: its namespaces)
        stats = getattr(self.handler, "stats", None)
        if stats is not None:
            body.update(stats())
        return Response(200, [("Content-Type", "application/json"),
                              ("Cache-Control", "no-cache")],
                        json.dumps(body, separators=(",", ":")).encode())

    # -- routing ------------------------------------------------------------------------

    def handle(self, request: Request,
               conn: HTTPConnection) -> Response | Awaitable[Response | None] | None:
        """Answer a request: at once where possible (the HTTP layer then needs no task), or
        with a future where the answer must wait (a long-poll, a forwarded request). Either
        way the request has been taken in before this returns, so the requests of a session
        are handled in the order they arrive: a long-poll is pending, a forwarded request
        is on its way to the owner (behind the ones before it). Cancelling the future (the
        connection went away) withdraws the request."""
        path = self.config.path
        if request.path in self.static.files:
            return self.static.respond(request)
        if request.path == self.config.health_path and request.method == "GET":
            return self._health()
        if request.path == self.config.metrics_path and request.method == "GET" \
                and self.metrics is not None:
            return self.metrics.respond(request)
        if request.path.startswith(path) or request.path + "/" == path:
            headers = cors_headers(self.config, request)
            if request.method == "OPTIONS":
                return preflight(self.config, request)
            try:
                return self._engine(request, conn, headers)
            except HTTPError as exc:
                return self.error_response(exc, headers, close=request.upgrade)
        if request.upgrade:
            return text_response(400, "Bad Request")
        if self.static:
            return self.static.respond(request)
        return text_response(404, "Not Found")

    def _engine(self, request: Request, conn: HTTPConnection,
                headers: list[tuple[str, str]]) -> Response | Awaitable[Response | None] | None:
        query = request.query
        transport = query.get("transport")
        if transport is None or transport not in self.config.transports:
            raise UnknownTransport()
        is_ws_upgrade = request.upgrade and request.headers.get("upgrade", "").lower() \
            == "websocket"
        sid = query.get("sid")
        if sid:  # an empty sid is no sid, as in the reference
            owner = owner_of(sid)
            if owner is None:
                raise UnknownSession()
            if owner != self.owner:
                return self._forward(owner, sid, transport, is_ws_upgrade, request, conn,
                                     headers)
            socket = self._lookup(sid)
            if transport == "websocket":
                if not is_ws_upgrade:
                    raise BadRequest()
                return self._upgrade(request, conn, socket)
            if socket.transport != "polling":
                raise BadRequest()  # polling after the upgrade (reference: 400 code 3)
            if request.method == "GET":
                return self._poll(socket, headers)
            if request.method == "POST":
                return self._post(socket, request, headers)
            raise BadRequest()
        if request.method != "GET":
            raise BadHandshakeMethod()
        if transport == "websocket" and not is_ws_upgrade:
            raise BadRequest()
        if query.get("EIO") != "4":
            raise UnsupportedProtocolVersion()
        if self._draining:
            raise ShuttingDown()
        if transport == "websocket":
            return self._open_websocket(request, conn)
        return self._open_polling(request, headers)

    def _forward(self, owner: str, sid: str, transport: str, is_ws_upgrade: bool,
                 request: Request, conn: HTTPConnection,
                 headers: list[tuple[str, str]]) -> Awaitable[Response | None]:
        """A session of another worker: its owner answers (sio_core/forwarding.py)."""
        forwarding = self.forwarding
        if forwarding is None or not forwarding.owns_route(owner):
            raise UnknownSession()  # a forged owner, or a worker that is gone
        if transport == "websocket":
            if not is_ws_upgrade:
                raise BadRequest()
            return forwarding.upgrade(owner, sid, request, conn, headers)
        if request.method == "GET":
            return forwarding.poll(owner, sid, headers)
        if request.method == "POST":
            return forwarding.post(owner, sid, request.body, headers)
        raise BadRequest()

    def _lookup(self, sid: str) -> EngineSocket:
        socket = self.sockets.get(sid)
        if socket is None or owner_of(sid) is None:
            raise UnknownSession()
        return socket

    # -- handshakes ---------------------------------------------------------------------

    def _new_socket(self, transport: Transport, request: Request) -> EngineSocket:
        core = EngineSession(new_sid(self.owner), transport, self._timing,
                             asyncio.get_running_loop().time())
        # kept for socket.handshake: the parsed parts, not the raw bytes beside them
        info = dataclasses.replace(request, raw_headers=[], body=b"", trailing=b"")
        socket = EngineSocket(core, self.handler, self._forget, request_info=info)
        self.sockets[socket.sid] = socket
        self.sessions_opened[transport] += 1
        if self.store is not None:
            self._background(self.store.register(socket.sid, self._session_ttl))
        return socket

    def _forget(self, socket: EngineSocket) -> None:
        if self.sockets.get(socket.sid) is socket:
            del self.sockets[socket.sid]
            self.sessions_closed[socket.core.close_reason] += 1
            if self.store is not None:
                self._background(self.store.unregister(socket.sid))

    @property
    def _session_ttl(self) -> float:
        # a live session answers a ping every interval; its record outlives it by a margin
        return 2 * (self.config.ping_interval + self.config.ping_timeout)

    def _background(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
        ws = websocket.accept(request, conn, self.config, self.websockets)
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
        if not self.config.allow_upgrades:
            raise BadRequest()
        ws = websocket.accept(request, conn, self.config, self.websockets)
        if isinstance(ws, Response):
            return ws
        try:
            socket.begin_upgrade(ws)
        except HTTPError:
            # the session has a websocket already (upgraded, upgrading, or opened on one):
            # the reference accepts this one and closes it, the session untouched
            ws.close(None)
            conn.take_over(ws)
            return None
        conn.take_over(ws, request.trailing)
        return None

    # -- polling ------------------------------------------------------------------------

    def _poll(self, socket: EngineSocket, headers: list[tuple[str, str]]
              ) -> Response | asyncio.Future[Response]:
        return socket.poll(lambda packets: self.poll_response(
            engineio.encode_payload(packets).encode(), headers))

    def _post(self, socket: EngineSocket, request: Request,
              headers: list[tuple[str, str]]) -> Response:
        self.process_post(socket, request.body)
        return self.post_response(headers)

    def process_post(self, socket: EngineSocket, body: bytes) -> None:
        """The packets of a POST, received by this worker or forwarded to it."""
        if len(body) > self.config.max_payload:
            raise PayloadTooLarge()
        socket.post_begin()
        try:
            try:
                packets = engineio.decode_payload(
                    body, max_packets=self.config.max_packets_per_payload)
            except EngineIOProtocolError:
                socket.protocol_error()
                raise BadRequest() from None
            socket.receive(packets)
        finally:
            socket.post_end()

    @staticmethod
    def error_response(exc: HTTPError, headers: list[tuple[str, str]],
                       close: bool = False) -> Response:
        body = exc.body()
        if body is None:
            return Response(exc.status, headers, b"", close=close)
        return Response(exc.status, [("Content-Type", "application/json"), *headers],
                        json.dumps(body, separators=(",", ":")).encode(), close=close)

    @staticmethod
    def poll_response(body: bytes, headers: list[tuple[str, str]]) -> Response:
        return Response(200, [("Content-Type", _PLAIN), *headers], body)

    @staticmethod
    def post_response(headers: list[tuple[str, str]]) -> Response:
        return Response(200, [("Content-Type", "text/html"), *headers], b"ok")
