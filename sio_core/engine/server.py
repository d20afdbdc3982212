"""The per-worker Engine.IO server: listens, routes requests, owns sessions.

How this works: ``await server.serve(host, port, store=...)`` starts the store (if any: it
joins this worker to the others, and a request for a session of another worker is then
forwarded to it, forwarding.py) and listens; ``await server.close()`` drains and stops.
Every HTTP request lands in :meth:`EngineServer.handle`. Requests under ``config.path``
are Engine.IO: the query is verified in the reference server's order (transport, sid,
handshake method, protocol version), and then the request becomes a handshake, a
long-poll GET or a POST of packets (polling.py), or a WebSocket (new, or an upgrade of a
polling session). Anything else is a static file when ``static_dir`` is set. Each error
answers with the reference's status and ``{"code": N, "message": ...}``.

:class:`Service` is what a program runs and stops: an EngineServer for a bare Engine.IO
handler, or the Socket.IO :class:`~sio_core.socketio.server.Server`, which serves through
one. ``python -m sio_core serve`` runs either the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import json
import logging
import socket as socket_module
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from ssl import SSLContext
from typing import Any, Protocol

from ..config import Config
from ..exceptions import (
    BadHandshakeMethod,
    BadRequest,
    ConnectionRefusedError,
    Forbidden,
    HTTPError,
    ServeError,
    ShuttingDown,
    UnknownSession,
    UnknownTransport,
    UnsupportedProtocolVersion,
)
from ..http.compression import HTTPCompression, negotiate
from ..http.connection import HTTPConnection
from ..http.cors import cors_headers, preflight
from ..http.messages import Request, Response, error_response, text_response
from ..http.proxy import TrustedProxies
from ..http.static import StaticFiles, client_files
from ..protocol.engineio import Packet
from ..protocol.session import CloseReason, EngineSession, Timing
from ..protocol.session import Transport as TransportKind
from ..protocol.sid import new_owner, new_sid, owner_of
from ..stores.base import Store
from . import polling, websocket
from .forwarding import Forwarding
from .hooks import EngineHooks
from .metrics import metrics_endpoint
from .socket import EngineHandler, EngineSocket
from .transport import Connection, Transport, WebSocket

logger = logging.getLogger("sio_core.server")


class Service(Protocol):
    """What a program runs: ``serve`` until it is time to stop, then ``close``."""

    @property
    def config(self) -> Config: ...

    def configure(self, **changes: Any) -> None:
        """Change fields of the Config (checked as Config checks them), before serve()."""
        ...

    async def serve(self, host: str = "127.0.0.1", port: int = 3000, *,
                    store: Store | None = None, owner: str | None = None,
                    reuse_port: bool = False,
                    sock: socket_module.socket | None = None,
                    ssl: SSLContext | None = None) -> None: ...

    async def drain(self, timeout: float) -> bool: ...

    def retire(self) -> None: ...

    async def close(self, timeout: float | None = None) -> None: ...


class EngineServer:
    """An Engine.IO server for ``handler`` (see :class:`~sio_core.engine.socket.EngineHandler`).
    ``health``, if given, adds its counts to the health answer (the Socket.IO server's
    namespaces)."""

    def __init__(self, handler: EngineHandler, config: Config | None = None, *,
                 health: Callable[[], dict[str, Any]] | None = None,
                 hooks: EngineHooks | None = None) -> None:
        self.handler = handler
        self.config = config or Config()
        #: the application's allow_request and engine events (hooks.py)
        self.hooks = hooks or EngineHooks()
        self._stats = health
        #: this worker's address, in every sid it makes (serve() may set it)
        self.owner = new_owner()
        #: the bus to the other workers, and the forwarding over it (serve()'s store)
        self.store: Store | None = None
        self.forwarding: Forwarding | None = None
        self.sockets: dict[str, EngineSocket] = {}
        self.connections: set[HTTPConnection] = set()
        #: every accepted websocket (a session's, or relayed for another worker's session)
        #: until its TCP connection has closed: a drain waits for their closing handshakes
        self.websockets: set[WebSocket] = set()
        self._started = False
        self._draining = False
        self._retired = False  # see retire()
        self._closed = False
        self._servers: list[asyncio.Server] = []
        #: for the metrics: sessions opened by transport, closed by reason
        self.sessions_opened: Counter[TransportKind] = Counter()
        self.sessions_closed: Counter[CloseReason | None] = Counter()
        self._configured()

    def configure(self, **changes: Any) -> None:
        """Change fields of the Config (each checked as Config checks it); before serve().
        ``python -m sio_core serve`` merges its options into the application's so."""
        if self._started:
            raise RuntimeError("configure() must come before serve()")
        self.config = dataclasses.replace(self.config, **changes)
        self._configured()

    def _configured(self) -> None:
        config = self.config
        self.static = StaticFiles(config.static_dir,
                                  {**client_files(config), **config.static_files})
        self._timing = Timing(config.ping_interval, config.ping_timeout,
                              config.upgrade_timeout, config.close_timeout,
                              config.max_packets_per_poll)
        self.metrics = metrics_endpoint(self)  # None when config.metrics_path is

    # -- serving ------------------------------------------------------------------------

    async def serve(self, host: str = "127.0.0.1", port: int = 3000, *,
                    store: Store | None = None, owner: str | None = None,
                    reuse_port: bool = False,
                    sock: socket_module.socket | None = None,
                    ssl: SSLContext | None = None) -> None:
        """Start: :meth:`start` (the store), then listen on ``host:port`` (or on ``sock``;
        ``reuse_port`` for several workers on one port). Returns once listening. Raises
        ServeError (with one line saying what failed) if the store cannot be reached or
        the address cannot be listened on. ``sock`` may be a unix socket (bound); ``ssl``
        serves HTTPS and WSS."""
        await self.start(store=store, owner=owner)
        # no await in an except block (tests/test_build.py says why): the store is closed
        # after it
        try:
            await self._listen(host, port, reuse_port, sock, ssl)
            return
        except OSError as exc:
            failure = exc
        if store is not None:
            await store.close()
        raise ServeError(f"cannot listen on {host}:{port}: {failure.strerror or failure}") \
            from failure

    async def start(self, *, store: Store | None = None, owner: str | None = None) -> None:
        """serve() without listening, for another server's connections (sio_core.asgi and
        sio_core.aiohttp hand their requests to :meth:`handle`): connect ``store`` (the
        other workers and nodes: a request for one of their sessions is forwarded to it;
        the store is this server's from now on, and close() closes it). ``owner`` is this
        worker's address in its sids; with a store, the store's. Raises ServeError if the
        store cannot be reached."""
        if self._started:
            raise RuntimeError("serve() was called already")
        self._started = True
        if store is not None:
            if owner is not None and owner != store.owner:
                raise ValueError(f"owner {owner!r} is not the store's ({store.owner!r})")
            self.join(store)
            try:
                await store.start()
                return
            except Exception as exc:
                failure = exc
            await store.close()
            raise ServeError(str(failure) or type(failure).__name__) from failure
        elif owner is not None:
            self.owner = owner

    def join(self, store: Store) -> None:
        """Take ``store`` as this server's bus to the other workers (its owner becomes this
        server's), before it starts: a request forwarded to us must find its handlers.
        serve(store=...) does this; an in-process program or test may do it alone."""
        self.store = store
        self.owner = store.owner
        self.forwarding = Forwarding(store, self.config, find_session=self.sockets.get,
                                     accept_websocket=self._accept_websocket,
                                     open_polling=self._open_handed_over)
        if self.metrics is not None:
            self.metrics.join(store)

    async def _listen(self, host: str, port: int, reuse_port: bool,
                      sock: socket_module.socket | None, ssl: SSLContext | None) -> None:
        loop = asyncio.get_running_loop()
        config = self.config
        connections = self.connections
        proxies = TrustedProxies(config.forwarded_allow_ips) or None

        def factory() -> HTTPConnection:
            return HTTPConnection(self.handle, config, connections=connections, proxies=proxies)

        server: asyncio.Server
        if sock is not None and sock.family == socket_module.AF_UNIX:
            server = await _unix_server(loop, factory, sock, config.backlog, ssl)
        elif sock is not None:
            server = await loop.create_server(factory, sock=sock, backlog=config.backlog,
                                              ssl=ssl)
        else:
            server = await loop.create_server(factory, host, port, reuse_port=reuse_port or None,
                                              backlog=config.backlog, ssl=ssl)
        self._servers.append(server)

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

    def retire(self) -> None:
        """Before a drain, when this worker stops alone and the others stay (SIGHUP): stop
        listening, so that they take the new connections, and hand a polling handshake
        that still comes (on a connection accepted before) to one of them rather than
        refusing it (forwarding.py). A websocket handshake is refused (503) as in any drain:
        its connection would be relayed through this worker, which is going away."""
        self._retired = True
        self.stop_listening()

    def _drained(self) -> bool:
        forwarding = self.forwarding
        return not (self.sockets or self.websockets
                    or (forwarding is not None and forwarding.in_flight))

    async def close(self, timeout: float | None = None) -> None:
        """Stop, within ``timeout`` seconds in all (default ``config.shutdown_timeout``):
        :meth:`drain`, unless it ran already; then stop listening, close every connection
        (a websocket still open is cut) and wait for what they still have to write (a
        process that exits drops a transport's unsent bytes); then close the store. Once
        closed, closing again does nothing."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.config.shutdown_timeout if timeout is None else timeout)
        if not self._draining:
            await self.drain(deadline - loop.time())
        self.stop_listening()
        for conn in list(self.connections):
            conn.close()
        for ws in list(self.websockets):
            ws.abort()  # a drain that timed out: no closing handshake any more
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.02)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        if self.store is not None:
            await self.store.close()

    def _health(self) -> Response:
        store = self.store
        body = {
            "owner": self.owner,
            "sessions": len(self.sockets),
            "connections": len(self.connections),
            "store": type(store).__name__ if store is not None else None,
            "peers": sorted(store.peers) if store is not None else [],
            "store_health": store.health if store is not None else None,
        }
        if self._stats is not None:
            body.update(self._stats())
        return Response(200, [("Content-Type", "application/json"),
                              ("Cache-Control", "no-cache")],
                        json.dumps(body, separators=(",", ":")).encode())

    # -- routing ------------------------------------------------------------------------

    def handle(self, request: Request, conn: HTTPConnection | Connection
               ) -> Response | Awaitable[Response | None] | None:
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
                return self._refuse(request, exc, headers)
        if request.upgrade:
            return text_response(400, "Bad Request")
        if self.static:
            return self.static.respond(request)
        return text_response(404, "Not Found")

    def _refuse(self, request: Request, exc: HTTPError,
                headers: list[tuple[str, str]]) -> Response:
        self.hooks.refused(request, exc)
        return error_response(exc, headers, close=request.upgrade)

    def _app_headers(self, request: Request, sid: str | None = None) -> list[tuple[str, str]]:
        """The headers the application adds to an answer (hooks.py): with the cookie and the
        initial_headers listeners' for a handshake (``sid``: its new session's)."""
        initial = sid is not None
        if not self.hooks.listens_to_headers and not (initial and self.config.cookie):
            return []
        return self.hooks.headers(request, initial, self.config.cookie, sid)

    def _engine(self, request: Request, conn: HTTPConnection | Connection,
                headers: list[tuple[str, str]]) -> Response | Awaitable[Response | None] | None:
        query = request.query
        transport = query.get("transport")
        if transport is None or transport not in self.config.transports:
            raise UnknownTransport()
        is_ws_upgrade = request.upgrade and request.headers.get("upgrade", "").lower() \
            == "websocket"
        sid = query.get("sid")
        if sid:  # an empty sid is no sid, as in the reference
            socket = self.sockets.get(sid)
            if socket is None:  # not a session of this worker: another's, or none
                owner = owner_of(sid)
                if owner is None or owner == self.owner:
                    raise UnknownSession()
                return self._forward(owner, sid, transport, is_ws_upgrade, request, conn,
                                     [*headers, *self._app_headers(request)])
            added = self._app_headers(request)
            if transport == "websocket":
                if not is_ws_upgrade:
                    raise BadRequest()
                return self._upgrade(request, conn, socket, added)
            if added:
                headers = [*headers, *added]
            if socket.transport.name != "polling":
                raise BadRequest()  # polling after the upgrade (reference: 400 code 3)
            if request.method == "GET":
                forwarding = self.forwarding
                return polling.get(socket, headers, self._compression(request),
                                   forwarding.vouching(socket, None) if forwarding else None)
            if request.method == "POST":
                return polling.post(socket, request.body, headers, self.config)
            raise BadRequest()
        if request.method != "GET":
            raise BadHandshakeMethod()
        if transport == "websocket" and not is_ws_upgrade:
            raise BadRequest()
        allow = self.hooks.allow_request
        if allow is not None:  # where the reference asks its allowRequest
            try:
                verdict = allow(request)
            except Exception as exc:
                raise _refusal(exc) from None
            if inspect.isawaitable(verdict):
                return self._handshake_allowed(verdict, request, conn, headers)
            if not verdict:
                raise Forbidden()
        return self._handshake(request, conn, headers)

    async def _handshake_allowed(self, verdict: Awaitable[Any], request: Request,
                                 conn: HTTPConnection | Connection,
                                 headers: list[tuple[str, str]]) -> Response | None:
        """A handshake after an async allow_request's verdict."""
        try:
            try:
                allowed = await verdict
            except Exception as exc:
                raise _refusal(exc) from None
            if not allowed:
                raise Forbidden()
            answer = self._handshake(request, conn, headers)
        except HTTPError as exc:
            return self._refuse(request, exc, headers)
        if inspect.isawaitable(answer):
            return await answer  # handed over (a retired worker's)
        return answer

    def _handshake(self, request: Request, conn: HTTPConnection | Connection,
                   headers: list[tuple[str, str]]
                   ) -> Response | Awaitable[Response | None] | None:
        if request.query.get("EIO") != "4":
            raise UnsupportedProtocolVersion()
        on_websocket = request.query.get("transport") == "websocket"
        if self._draining:
            peer = self.forwarding.peer() if self._retired and self.forwarding else None
            if peer is None or on_websocket:
                raise ShuttingDown()
            return self._hand_off(peer, request, headers)
        if on_websocket:
            return self._open_websocket(request, conn)
        return self._open_polling(request, headers)

    def _hand_off(self, peer: str, request: Request,
                  headers: list[tuple[str, str]]) -> Awaitable[Response | None]:
        """A polling handshake of a retired worker, for ``peer`` to open (see retire())."""
        assert self.forwarding is not None
        sid = new_sid(peer)
        return self.forwarding.hand_off(peer, sid, request,
                                        [*headers, *self._app_headers(request, sid)],
                                        self._compression(request))

    def _forward(self, owner: str, sid: str, transport: str, is_ws_upgrade: bool,
                 request: Request, conn: HTTPConnection | Connection,
                 headers: list[tuple[str, str]]) -> Awaitable[Response | None]:
        """A session of another worker: its owner answers (forwarding.py)."""
        forwarding = self.forwarding
        if forwarding is None or not forwarding.owns_route(owner):
            raise UnknownSession()  # a forged owner, or a worker that is gone
        if transport == "websocket":
            if not is_ws_upgrade:
                raise BadRequest()
            return forwarding.upgrade(owner, sid, request, conn, headers)
        if request.method == "GET":
            return forwarding.poll(owner, sid, headers, self._compression(request))
        if request.method == "POST":
            return forwarding.post(owner, sid, request.body, headers)
        raise BadRequest()

    def _compression(self, request: Request) -> HTTPCompression | None:
        """How a polling answer to ``request`` is compressed (``http_compression``)."""
        config = self.config
        if not config.http_compression:
            return None
        return negotiate(request.headers.get("accept-encoding"),
                         config.http_compression_threshold)

    # -- handshakes ---------------------------------------------------------------------

    def _new_socket(self, transport: Transport, request: Request,
                    sid: str | None = None) -> EngineSocket:
        core = EngineSession(sid or new_sid(self.owner), TransportKind(transport.name),
                             self._timing,
                             asyncio.get_running_loop().time())
        socket = EngineSocket(core, self.handler, self._forget, transport,
                              request_info=request.parsed())
        self.sockets[socket.sid] = socket
        self.sessions_opened[core.transport] += 1
        return socket

    def _forget(self, socket: EngineSocket) -> None:
        if self.sockets.get(socket.sid) is socket:
            del self.sockets[socket.sid]
            self.sessions_closed[socket.core.close_reason] += 1

    def _upgrades(self) -> list[str]:
        """What a polling session may upgrade to (the handshake's ``upgrades``)."""
        if self.config.allow_upgrades and "websocket" in self.config.transports:
            return ["websocket"]
        return []

    def _open_polling(self, request: Request, headers: list[tuple[str, str]]) -> Response:
        socket, open_packet = self._new_polling(request)
        headers = [*headers, *self._app_headers(request, socket.sid)]
        socket.opened()
        return polling.payload_response([open_packet], headers, self._compression(request))

    def _new_polling(self, request: Request,
                     sid: str | None = None) -> tuple[EngineSocket, Packet]:
        socket = self._new_socket(polling.Polling(), request, sid)
        return socket, socket.core.handshake(upgrades=self._upgrades(),
                                             max_payload=self.config.max_payload)

    def _open_handed_over(self, sid: str, request: Request) -> Packet:
        """A polling handshake a retired worker handed over (forwarding.py), to open as
        ``sid``: its open packet. The handshake's HTTP answer is the retired worker's (with
        the application's headers)."""
        if self._draining:
            raise ShuttingDown()
        if owner_of(sid) != self.owner or sid in self.sockets:
            raise BadRequest()
        socket, open_packet = self._new_polling(request, sid)
        socket.opened()
        return open_packet

    def _open_websocket(self, request: Request,
                        conn: HTTPConnection | Connection) -> Response | None:
        sid = new_sid(self.owner)
        ws = self._accept_websocket(request, conn, self._app_headers(request, sid))
        if isinstance(ws, Response):
            return ws
        socket = self._new_socket(ws, request, sid)
        open_packet = socket.core.handshake(upgrades=[], max_payload=self.config.max_payload)
        ws.send_packets([open_packet])
        ws.start(request.trailing)
        socket.opened()
        return None

    def _upgrade(self, request: Request, conn: HTTPConnection | Connection,
                 socket: EngineSocket, headers: list[tuple[str, str]]) -> Response | None:
        """A polling session's upgrade; ``headers``: the application's, for the 101."""
        if not self.config.allow_upgrades:
            raise BadRequest()
        ws = self._accept_websocket(request, conn, headers)
        if isinstance(ws, Response):
            return ws
        try:
            socket.begin_upgrade(ws)
        except HTTPError:
            # the session has a websocket already (upgraded, upgrading, or opened on one):
            # the reference accepts this one and closes it, the session untouched
            ws.close(None)
            ws.start()
            return None
        ws.start(request.trailing)
        return None

    def _accept_websocket(self, request: Request, conn: HTTPConnection | Connection,
                          headers: list[tuple[str, str]] | None = None
                          ) -> WebSocket | Response:
        """Answer 101 with ``headers`` added (or the refusal to send); the websocket counts
        for the drain."""
        if isinstance(conn, HTTPConnection):
            return websocket.accept(request, conn, self.config, self.websockets, headers)
        return conn.accept_websocket(request, self.config, self.websockets, headers)


def _refusal(exc: Exception) -> Forbidden:
    """What an allow_request that raised answers: its ConnectionRefusedError's message, or
    (any other exception, logged) "Forbidden"."""
    if isinstance(exc, ConnectionRefusedError):
        return Forbidden(exc.message)
    logger.error("allow_request raised", exc_info=exc)
    return Forbidden()


async def _unix_server(loop: asyncio.AbstractEventLoop, factory: Callable[[], HTTPConnection],
                       sock: socket_module.socket, backlog: int,
                       ssl: SSLContext | None) -> asyncio.Server:
    """A server on a bound unix socket. Its file stays when the server closes: whoever bound
    it removes it (several workers may share one socket; Python 3.13's asyncio would remove
    it at the first worker's close, uvloop never does and takes no such argument)."""
    if sys.version_info >= (3, 13):
        with contextlib.suppress(TypeError):
            return await loop.create_unix_server(  # type: ignore[call-arg,unused-ignore]
                factory, sock=sock, backlog=backlog, ssl=ssl, cleanup_socket=False)
    return await loop.create_unix_server(factory, sock=sock, backlog=backlog, ssl=ssl)
