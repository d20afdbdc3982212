"""Socket.IO in an aiohttp application: ``attach(io, app)``.

::

    from aiohttp import web
    import sio_core
    from sio_core.aiohttp import attach

    io = sio_core.Server()
    app = web.Application()
    attach(io, app)                 # /socket.io/ and the client bundle
    web.run_app(app)

How this works: as under ASGI (sio_core/asgi.py), the same Engine.IO server answers
aiohttp's requests (:meth:`EngineServer.handle
<sio_core.engine.server.EngineServer.handle>`) and carries aiohttp's websockets
(:class:`AiohttpWebSocket`, carried as sio_core/engine/foreign.py says). The application's
start-up starts the Socket.IO server (and joins the other workers: ``store`` as in
:class:`~sio_core.asgi.ASGIApp`), its shutdown drains it.
"""

from __future__ import annotations

from aiohttp import WSMsgType, web

from .asgi import ASGIApp
from .config import Config
from .engine.foreign import ForeignWebSocket
from .engine.server import EngineServer
from .engine.transport import WebSocket
from .http.messages import Request, Response, parse_query
from .socketio.server import Server


class AiohttpWebSocket:
    """A websocket of aiohttp, as a session's transport sees it (the Peer of a
    :class:`~sio_core.engine.foreign.ForeignWebSocket`)."""

    def __init__(self, request: web.Request) -> None:
        self._request = request
        # aiohttp answers the protocol's pings itself; our limit is checked per message
        self.response = web.WebSocketResponse(max_msg_size=0)

    async def open(self) -> None:
        await self.response.prepare(self._request)

    async def write(self, message: str | bytes) -> None:
        if isinstance(message, str):
            await self.response.send_str(message)
        else:
            await self.response.send_bytes(message)

    async def shut(self, code: int) -> None:
        await self.response.close(code=code)

    async def read(self) -> str | bytes | None:
        message = await self.response.receive()
        if message.type is WSMsgType.TEXT or message.type is WSMsgType.BINARY:
            data: str | bytes = message.data
            return data
        return None  # CLOSE, CLOSING, CLOSED, ERROR


class _Upgrade:
    """aiohttp's request, for the engine (a transport.Connection)."""

    def __init__(self, request: web.Request) -> None:
        self._request = request
        self.peer = AiohttpWebSocket(request)
        self.websocket: ForeignWebSocket | None = None

    def accept_websocket(self, request: Request, config: Config, registry: set[WebSocket],
                         headers: list[tuple[str, str]] | None = None
                         ) -> WebSocket | Response:
        for name, value in headers or ():
            self.peer.response.headers.add(name, value)
        self.websocket = ForeignWebSocket(self.peer, config, registry, request.client)
        return self.websocket


def attach(io: Server, app: web.Application, socketio_path: str = "socket.io", *,
           store: str | None = None, store_key: str = "socket.io",
           meeting: str | None = None) -> ASGIApp:
    """Serve ``io`` at ``/<socketio_path>/`` of ``app`` (and the client bundle there);
    ``store``, ``store_key`` and ``meeting`` as :class:`~sio_core.asgi.ASGIApp`'s. The
    ASGIApp returned starts and stops with the application (it is not an aiohttp
    handler itself)."""
    mounted = ASGIApp(io, socketio_path=socketio_path, store=store, store_key=store_key,
                      meeting=meeting)
    path = io.config.path

    async def handle(request: web.Request) -> web.StreamResponse:
        engine = mounted.engine or await mounted.startup()
        return await _handle(engine, request)

    async def on_startup(app: web.Application) -> None:
        await mounted.startup()

    async def on_shutdown(app: web.Application) -> None:
        await mounted.shutdown()

    app.router.add_route("*", path, handle)
    app.router.add_route("*", path + "{tail:.*}", handle)
    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    return mounted


async def _handle(engine: EngineServer, request: web.Request) -> web.StreamResponse:
    upgrade = request.headers.get("upgrade", "").lower() == "websocket"
    body = b"" if upgrade else await _read_body(request, engine.config.max_payload)
    conn = _Upgrade(request)
    answer = engine.handle(_request(request, body, upgrade), conn)
    if answer is not None and not isinstance(answer, Response):
        answer = await answer  # aiohttp cancels the handler if the client goes away
    if answer is not None:
        return web.Response(status=answer.status, headers=answer.headers, body=answer.body)
    assert conn.websocket is not None  # None answers an upgrade: it was accepted
    await conn.websocket.serve()
    return conn.peer.response


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The body, or its first ``limit + 1`` bytes (enough for the engine to answer 413)."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await request.content.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _request(request: web.Request, body: bytes, upgrade: bool) -> Request:
    raw_headers = [(bytes(name), bytes(value)) for name, value in request.raw_headers]
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    peer = request.transport.get_extra_info("peername") if request.transport else None
    raw_url = request.raw_path.encode("latin-1")
    return Request(request.method, request.path, parse_query(request.query_string.encode()),
                   headers, body, (peer[0], peer[1]) if peer else None, secure=request.secure,
                   raw_headers=raw_headers, raw_url=raw_url,
                   http_version=f"{request.version.major}.{request.version.minor}",
                   upgrade=upgrade)
