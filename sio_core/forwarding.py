"""Forwarding a request to the worker that owns its session (no sticky sessions needed).

How this works: a sid names its owner. A request that lands elsewhere is sent to the owner
over the store and answered with the owner's verdict:

- POST: the body goes to the owner, which decodes and processes it; its status and body
  come back.
- GET: the owner runs the long-poll as if the GET were its own and answers with the
  payload it would have written; if the client's connection drops first, the owner is
  told to abort the poll (the one-pending-GET rule is the owner's, so it holds across
  workers).
- WebSocket upgrade: the owner begins the upgrade with a RemoteWebSocket, this worker
  accepts the websocket and relays frames both ways (transports/remote.py).

An owner that is not a live worker (a forged sid, a dead worker) is "Session ID unknown".
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import TYPE_CHECKING, Any

from .exceptions import BadRequest, HTTPError, UnknownSession
from .stores.base import Envelope, Kind, RequestFailed, Store
from .transports import websocket
from .transports.engine_socket import EngineSocket
from .transports.http import HTTPConnection, Request, Response
from .transports.remote import RemoteWebSocket, WebSocketProxy

if TYPE_CHECKING:
    from .server import EngineServer

logger = logging.getLogger("sio_core.forwarding")

_ERRORS: dict[int, type[HTTPError]] = {cls.code: cls for cls in HTTPError.__subclasses__()
                                       if cls.code is not None}


def _error_reply(exc: HTTPError) -> dict[str, Any]:
    return {"s": exc.status, "e": exc.code}


def _raise_reply(reply: Any) -> None:
    if not isinstance(reply, dict):
        raise UnknownSession()
    code = reply.get("e")
    if code is not None:
        raise _ERRORS.get(code, BadRequest)()


class Forwarding:
    def __init__(self, server: EngineServer, store: Store) -> None:
        self.server = server
        self.store = store
        self._ids = itertools.count(1)
        #: the owner's forwarded long-polls, by (relaying worker, its token)
        self._polls: dict[tuple[str, int], tuple[asyncio.Task[Any], EngineSocket]] = {}
        self._remote_ws: dict[str, RemoteWebSocket] = {}  # owner side, by proxy id
        self._proxies: dict[str, WebSocketProxy] = {}  # accepting side, by proxy id
        #: forwarded GETs and POSTs waiting for their owner's answer: a draining worker
        #: waits for them, or closing their connections would cut off the owner's "1"
        self.in_flight = 0
        store.on(Kind.POLL, self._on_poll)
        store.on(Kind.POLL_ABORT, self._on_poll_abort)
        store.on(Kind.POST, self._on_post)
        store.on(Kind.WS_OPEN, self._on_ws_open)
        store.on(Kind.WS_IN, self._on_ws_in)
        store.on(Kind.WS_OUT, self._on_ws_out)
        store.on(Kind.WS_CLOSE, self._on_ws_close)
        store.on_peers(self._on_peers)

    def owns_route(self, owner: str) -> bool:
        """Whether a request for a session of ``owner`` can be forwarded."""
        return owner in self.store.peers

    @property
    def _poll_timeout(self) -> float:
        config = self.server.config
        # a poll is answered by the next ping at the latest
        return config.ping_interval + config.ping_timeout + 10

    # -- the receiving worker ---------------------------------------------------------------

    async def poll(self, owner: str, sid: str, headers: list[tuple[str, str]]) -> Response:
        logger.debug("forwarding GET of %s to its owner", sid)
        token = next(self._ids)
        try:
            reply = await self._ask(owner, Kind.POLL, {"sid": sid, "t": token},
                                    self._poll_timeout)
        except asyncio.CancelledError:
            self.store.send(owner, Kind.POLL_ABORT, {"t": token})
            raise
        except RequestFailed:
            raise UnknownSession() from None
        _raise_reply(reply)
        return self.server.poll_response(reply.get("b", b""), headers)

    async def post(self, owner: str, sid: str, body: bytes,
                   headers: list[tuple[str, str]]) -> Response:
        logger.debug("forwarding POST of %s to its owner", sid)
        try:
            reply = await self._ask(owner, Kind.POST, {"sid": sid, "b": body}, 10)
        except RequestFailed:
            raise UnknownSession() from None
        _raise_reply(reply)
        return self.server.post_response(headers)

    async def _ask(self, owner: str, kind: Kind, payload: Any, timeout: float) -> Any:
        self.in_flight += 1
        try:
            return await self.store.request(owner, kind, payload, timeout)
        finally:
            self.in_flight -= 1

    async def upgrade(self, owner: str, sid: str, request: Request,
                      conn: HTTPConnection) -> Response | None:
        logger.debug("forwarding websocket upgrade of %s to its owner", sid)
        proxy_id = f"{self.store.owner}:{next(self._ids)}"
        try:
            reply = await self.store.request(owner, Kind.WS_OPEN,
                                             {"sid": sid, "p": proxy_id}, 10)
        except RequestFailed:
            raise UnknownSession() from None
        _raise_reply(reply)
        ws = websocket.accept(request, conn, self.server.config, self.server.websockets)
        if isinstance(ws, Response):
            self.store.send(owner, Kind.WS_CLOSE, {"p": proxy_id})
            return ws
        proxy = WebSocketProxy(self.store, owner, proxy_id, ws,
                               lambda: self._forget_proxy(proxy_id))
        self._proxies[proxy_id] = proxy
        conn.take_over(ws, request.trailing)
        return None

    def _forget_proxy(self, proxy_id: str) -> None:
        self._proxies.pop(proxy_id, None)

    def _on_ws_out(self, envelope: Envelope) -> None:
        payload = envelope.payload
        if not isinstance(payload, dict):
            return
        proxy = self._proxies.get(payload.get("p"))  # type: ignore[arg-type]
        frames = payload.get("d")
        if proxy is not None and isinstance(frames, list):
            proxy.to_client([f for f in frames if isinstance(f, str | bytes)])

    # -- the owner --------------------------------------------------------------------------

    async def _on_poll(self, envelope: Envelope) -> Any:
        payload = envelope.payload
        if not isinstance(payload, dict) or not isinstance(payload.get("sid"), str):
            return _error_reply(BadRequest())
        socket = self.server.sockets.get(payload["sid"])
        if socket is None:
            return _error_reply(UnknownSession())
        if socket.transport != "polling":
            return _error_reply(BadRequest())
        key = (envelope.origin, payload.get("t", 0))
        task = asyncio.current_task()
        if task is not None:
            self._polls[key] = (task, socket)
        try:
            packets = await socket.poll()
        except HTTPError as exc:
            return _error_reply(exc)
        finally:
            self._polls.pop(key, None)
        from .protocol import engineio

        return {"s": 200, "b": engineio.encode_payload(packets).encode()}

    def _on_poll_abort(self, envelope: Envelope) -> None:
        payload = envelope.payload
        if isinstance(payload, dict):
            poll = self._polls.pop((envelope.origin, payload.get("t", 0)), None)
            if poll is not None:
                poll[0].cancel()

    def _on_post(self, envelope: Envelope) -> Any:
        payload = envelope.payload
        if (not isinstance(payload, dict) or not isinstance(payload.get("sid"), str)
                or not isinstance(payload.get("b"), bytes)):
            return _error_reply(BadRequest())
        socket = self.server.sockets.get(payload["sid"])
        if socket is None:
            return _error_reply(UnknownSession())
        if socket.transport != "polling":
            return _error_reply(BadRequest())
        try:
            self.server.process_post(socket, payload["b"])
        except HTTPError as exc:
            return _error_reply(exc)
        return {"s": 200}

    def _on_ws_open(self, envelope: Envelope) -> Any:
        payload = envelope.payload
        if (not isinstance(payload, dict) or not isinstance(payload.get("sid"), str)
                or not isinstance(payload.get("p"), str)):
            return _error_reply(BadRequest())
        socket = self.server.sockets.get(payload["sid"])
        if socket is None:
            return _error_reply(UnknownSession())
        if socket.transport != "polling" or not self.server.config.allow_upgrades:
            return _error_reply(BadRequest())
        proxy_id = payload["p"]
        remote = RemoteWebSocket(self.store, envelope.origin, proxy_id,
                                 on_lost=lambda: self._remote_ws.pop(proxy_id, None))
        try:
            socket.begin_upgrade(remote)
        except HTTPError as exc:
            return _error_reply(exc)
        self._remote_ws[proxy_id] = remote
        return {"s": 101}

    def _on_ws_in(self, envelope: Envelope) -> None:
        payload = envelope.payload
        if not isinstance(payload, dict):
            return
        remote = self._remote_ws.get(payload.get("p"))  # type: ignore[arg-type]
        data = payload.get("d")
        if remote is not None and isinstance(data, str | bytes):
            remote.on_message(data)

    def _on_ws_close(self, envelope: Envelope) -> None:
        payload = envelope.payload
        if not isinstance(payload, dict):
            return
        proxy_id = payload.get("p")
        remote = self._remote_ws.pop(proxy_id, None)  # type: ignore[arg-type]
        if remote is not None:
            remote.connection_lost()
        proxy = self._proxies.get(proxy_id)  # type: ignore[arg-type]
        if proxy is not None:
            proxy.owner_closed()

    # -- workers that go away ---------------------------------------------------------------

    def _on_peers(self, peers: set[str]) -> None:
        # A long-poll relayed by a worker that is gone: its client's connection went with
        # that worker, and no POLL_ABORT will come. Released, not aborted: the session is
        # not at fault, and a client that retries the GET through a live worker carries on
        # (an abort would close it, and the retry would find an overlapping GET meanwhile).
        for (relay, _), (_, socket) in list(self._polls.items()):
            if relay not in peers:
                socket.release_poll()
        for proxy in list(self._proxies.values()):
            if proxy.owner not in peers:
                proxy.owner_closed()
        for remote in list(self._remote_ws.values()):
            if remote.proxy_owner not in peers:
                remote.connection_lost()
