"""Socket.IO in an ASGI application (FastAPI, Starlette, or none), served by uvicorn,
hypercorn or gunicorn's uvicorn workers, with no sticky sessions.

::

    import sio_core
    from sio_core.asgi import ASGIApp

    io = sio_core.Server()
    api = FastAPI()
    app = ASGIApp(io, api)          # uvicorn app:app --workers 4

How this works: :class:`ASGIApp` answers requests under ``/socket.io/`` (and the client
bundle, the worker's health and metrics) with the same Engine.IO server that
``python -m sio_core serve`` runs (:meth:`EngineServer.handle
<sio_core.engine.server.EngineServer.handle>`): the ASGI server's HTTP requests become
our :class:`~sio_core.http.messages.Request`, and its websockets our transports
(:class:`ASGIWebSocket`, carried as sio_core/engine/foreign.py says). Everything else goes
to the other application, or is a 404. The ASGI lifespan starts the Socket.IO server at start-up
(and the other application's lifespan with it) and drains it at shutdown; a server that
runs no lifespan gets it started by the first request.

No sticky sessions: each worker of the ASGI server is a peer, with a store of its own.
With ``store="redis://..."`` the workers (of every machine) meet in Redis, as our own
nodes do; by default the workers of one machine meet at a hub one of them hosts
(sio_core/stores/meeting.py: a lock file elects the host, and another takes over when
it dies). A request for a session of another worker is forwarded to its owner
(sio_core/engine/forwarding.py); one for a worker that is gone is "Session ID unknown"
at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .config import Config
from .engine.foreign import ForeignWebSocket
from .engine.server import EngineServer
from .engine.transport import WebSocket
from .exceptions import ServeError
from .http.messages import Request, Response, parse_query, text_response
from .protocol.sid import new_owner
from .socketio.server import Server
from .stores.base import Store

logger = logging.getLogger("sio_core.asgi")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGI = Callable[[Scope, Receive, Send], Awaitable[None]]


class ASGIWebSocket:
    """A websocket of the ASGI server, as a session's transport sees it (the Peer of a
    :class:`~sio_core.engine.foreign.ForeignWebSocket`)."""

    def __init__(self, receive: Receive, send: Send,
                 headers: list[tuple[str, str]] | None = None) -> None:
        self._receive = receive
        self._send = send
        self._headers = headers

    async def open(self) -> None:
        message: Message = {"type": "websocket.accept"}
        if self._headers:
            message["headers"] = [(name.lower().encode("latin-1"), value.encode("latin-1"))
                                  for name, value in self._headers]
        await self._send(message)

    async def write(self, message: str | bytes) -> None:
        if isinstance(message, str):
            await self._send({"type": "websocket.send", "text": message})
        else:
            await self._send({"type": "websocket.send", "bytes": message})

    async def shut(self, code: int) -> None:
        await self._send({"type": "websocket.close", "code": code})

    async def read(self) -> str | bytes | None:
        while True:
            message = await self._receive()
            kind = message["type"]
            if kind == "websocket.receive":
                text = message.get("text")
                return text if text is not None else message.get("bytes") or b""
            if kind == "websocket.disconnect":
                return None


class _Upgrade:
    """The ASGI server's websocket request, for the engine (a transport.Connection)."""

    def __init__(self, receive: Receive, send: Send, client: tuple[str, int] | None) -> None:
        self._receive = receive
        self._send = send
        self._client = client
        self.websocket: ForeignWebSocket | None = None

    def accept_websocket(self, request: Request, config: Config, registry: set[WebSocket],
                         headers: list[tuple[str, str]] | None = None
                         ) -> WebSocket | Response:
        # the ASGI server has checked the handshake; the answer is sent by serve()
        self.websocket = ForeignWebSocket(ASGIWebSocket(self._receive, self._send, headers),
                                          config, registry, self._client)
        return self.websocket


class _NoUpgrade:
    """An HTTP request's connection: the engine never accepts a websocket on one (it
    answers 400 for ``transport=websocket`` without an upgrade)."""

    def accept_websocket(self, request: Request, config: Config, registry: set[WebSocket],
                         headers: list[tuple[str, str]] | None = None
                         ) -> WebSocket | Response:
        return text_response(400, "Bad Request")


_NO_UPGRADE = _NoUpgrade()


def meeting_name(config: Config) -> str:
    """What the workers of one ASGI server share, and the workers of another do not: the
    parent process (uvicorn's or gunicorn's master; a lone worker's launcher), its
    command line (spawned and forked workers inherit it) and the Engine.IO path."""
    return f"{os.getppid()}\0{' '.join(sys.argv)}\0{config.path}"


class ASGIApp:
    """The ASGI application that serves ``io`` (a :class:`~sio_core.socketio.server.Server`)
    at ``/<socketio_path>/``, and ``other_asgi_app`` (FastAPI, Starlette...) for every
    other request. ``static_files`` maps URL paths to files served as they are
    (``{"/": "index.html"}``).

    ``store``: where the workers meet. None (the default): the workers of this machine
    meet at a hub one of them hosts (``meeting`` names the group; by default, the
    workers of one server process); ``"redis://..."`` (any URL ``--store`` takes): every
    worker of every machine on that Redis, ``store_key`` its key prefix."""

    def __init__(self, io: Server, other_asgi_app: ASGI | None = None,
                 socketio_path: str = "socket.io",
                 static_files: dict[str, str] | None = None, *,
                 store: str | None = None, store_key: str = "socket.io",
                 meeting: str | None = None) -> None:
        self.io = io
        self.other = other_asgi_app
        changes: dict[str, Any] = {"path": "/" + socketio_path.strip("/")}
        if static_files:
            changes["static_files"] = {**io.config.static_files, **static_files}
        io.configure(**changes)
        self.store_url = store
        self.store_key = store_key
        self.meeting = meeting
        self.engine: EngineServer | None = None
        self._starting: asyncio.Lock | None = None
        self._failure: ServeError | None = None

    # -- start and stop ---------------------------------------------------------------------

    async def startup(self) -> EngineServer:
        """Start the Socket.IO server and join the other workers (the lifespan's start-up
        does it; so does the first request, under a server that runs no lifespan).
        Raises ServeError if the store cannot be reached."""
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._failure is not None:
                raise self._failure  # a Server starts once
            if self.engine is None:
                try:
                    self.engine = await self.io.start(store=self._store())
                except ServeError as exc:
                    self._failure = exc
                    raise
        return self.engine

    def _store(self) -> Store:
        name = self.meeting or meeting_name(self.io.config)
        # the workers of one server are one node, each numbered by its pid (uvicorn gives
        # them no number): GET /metrics answers for the node's workers, a label each
        owner = new_owner(hashlib.sha256(name.encode()).hexdigest()[:6], os.getpid())
        if self.store_url is not None:
            from .cli import make_store  # the store `serve --store URL` gives a worker

            return make_store(self.store_url, owner, self.store_key)
        from .stores.meeting import MeetingStore, meeting_point

        return MeetingStore(owner, meeting_point(name))

    async def shutdown(self) -> None:
        """Close every session (clients are told) and leave the other workers."""
        if self.engine is not None:
            await self.engine.close()

    # -- the ASGI application ---------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        path = _path(scope)
        if kind in ("http", "websocket") and self._ours(path):
            try:
                engine = self.engine or await self.startup()
            except ServeError as exc:  # started by a request (no lifespan), and failed
                logger.error("cannot serve Socket.IO: %s", exc)
                await _refuse(scope, send, text_response(503, "Service Unavailable"))
                return
            if kind == "http":
                await self._http(engine, scope, path, receive, send)
            else:
                await self._websocket(engine, scope, path, receive, send)
        elif self.other is not None:
            await self.other(scope, receive, send)
        elif kind == "http":
            await _respond(send, text_response(404, "Not Found"))
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1000})

    def _ours(self, path: str) -> bool:
        config = self.io.config
        return (path.startswith(config.path) or path + "/" == config.path
                or path in config.static_files or path == config.health_path
                or path == config.metrics_path
                or (self.engine is not None and path in self.engine.static.files))

    async def _http(self, engine: EngineServer, scope: Scope, path: str,
                    receive: Receive, send: Send) -> None:
        body = await _read_body(receive, engine.config.max_payload)
        answer = engine.handle(_request(scope, path, body), _NO_UPGRADE)
        if answer is not None and not isinstance(answer, Response):
            answer = await _unless_disconnected(answer, receive)
        if answer is not None:  # None: the client went away, the request was withdrawn
            await _respond(send, answer)

    async def _websocket(self, engine: EngineServer, scope: Scope, path: str,
                         receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        upgrade = _Upgrade(receive, send, _client(scope))
        answer = engine.handle(_request(scope, path, upgrade=True), upgrade)
        if answer is not None and not isinstance(answer, Response):
            answer = await answer
        if isinstance(answer, Response) or upgrade.websocket is None:
            await _refuse(scope, send, answer or text_response(400, "Bad Request"))
            return
        await upgrade.websocket.serve()

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Ours, and the other application's around it: start-up starts us first (a
        failure is the start-up's, in one line), shutdown drains us first."""
        failed = False

        async def our_receive() -> Message:
            nonlocal failed
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except ServeError as exc:
                    failed = True
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    # the other application is told to stop at once; what it answers
                    # is not the server's to hear
                    return {"type": "lifespan.shutdown"}
            elif message["type"] == "lifespan.shutdown" and not failed:
                await self.shutdown()
            return message

        async def our_send(message: Message) -> None:
            if not failed:
                await send(message)

        if self.other is not None:
            await self.other(scope, our_receive, our_send)
            return
        while True:
            message = await our_receive()
            if failed:
                return
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


def _path(scope: Scope) -> str:
    """The request's path within the application (mounted under a prefix, Starlette
    gives the whole path and the prefix as ``root_path``)."""
    path: str = scope.get("path", "/")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):] or "/"
    return path


def _client(scope: Scope) -> tuple[str, int] | None:
    client = scope.get("client")
    return (client[0], client[1]) if client else None


def _request(scope: Scope, path: str, body: bytes = b"", upgrade: bool = False) -> Request:
    raw_headers = [(bytes(name), bytes(value)) for name, value in scope.get("headers", ())]
    headers: dict[str, str] = {}
    for raw_name, raw_value in raw_headers:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    if upgrade:
        headers.setdefault("upgrade", "websocket")  # an ASGI websocket is one by definition
    query: bytes = scope.get("query_string", b"")
    raw_url = path.encode("latin-1") + (b"?" + query if query else b"")
    return Request(scope.get("method", "GET"), path, parse_query(query), headers, body,
                   _client(scope), secure=scope.get("scheme") in ("https", "wss"),
                   raw_headers=raw_headers, raw_url=raw_url,
                   http_version=scope.get("http_version", "1.1"), upgrade=upgrade)


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The request's body, or its first ``limit + 1`` bytes (enough for the engine to
    answer 413: a body is never held past the limit)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # http.disconnect
        chunk: bytes = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > limit or not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _unless_disconnected(answer: Awaitable[Response | None],
                               receive: Receive) -> Response | None:
    """The answer, or None if the client disconnects first (the answer is then
    cancelled: a long-poll withdrawn, as when our own connection is lost)."""
    future = asyncio.ensure_future(answer)
    gone = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait((future, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if not future.done():
        future.cancel()
        return None
    return future.result()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _asgi_headers(response: Response) -> list[tuple[bytes, bytes]]:
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1"))
               for name, value in response.headers]
    headers.append((b"content-length", str(len(response.body)).encode()))
    if response.close:
        headers.append((b"connection", b"close"))
    return headers


async def _respond(send: Send, response: Response) -> None:
    await send({"type": "http.response.start", "status": response.status,
                "headers": _asgi_headers(response)})
    await send({"type": "http.response.body", "body": response.body})


async def _refuse(scope: Scope, send: Send, response: Response) -> None:
    """A request refused with ``response``; a websocket, where the server can send an HTTP
    answer (the ``websocket.http.response`` extension), else by a close before accepting,
    which the server answers 403."""
    if scope["type"] == "http":
        await _respond(send, response)
    elif "websocket.http.response" in scope.get("extensions", {}):
        await send({"type": "websocket.http.response.start", "status": response.status,
                    "headers": _asgi_headers(response)})
        await send({"type": "websocket.http.response.body", "body": response.body})
    else:
        await send({"type": "websocket.close", "code": 1008})
