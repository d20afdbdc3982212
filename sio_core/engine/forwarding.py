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
  accepts the websocket and relays frames both ways (remote.py). A session that
  has a websocket already gets this one accepted and closed at once, as on its owner.

Order: the requests of a session that enter through one worker reach its owner in the
order that worker received them. Each is sent to the owner while the HTTP layer hands it
over (``Store.ask``, not a task a loop turn later), frames relayed from a websocket too,
over the store's one ordered channel from this worker to the owner; the owner takes each
in (a GET becomes pending, a POST is processed) as it is delivered.

An owner that is not a live worker (a forged sid, a dead worker) is "Session ID unknown".

What it needs of the server it works for is given at construction: its config, how to find
one of its sessions, and how to accept a websocket (the server counts them for a drain).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from ..config import Config
from ..exceptions import BadRequest, HTTPError, PayloadTooLarge, UnknownSession
from ..http.compression import HTTPCompression
from ..http.connection import HTTPConnection
from ..http.messages import Request, Response, error_response
from ..protocol import engineio
from ..protocol.engineio import Packet
from ..stores.base import Envelope, Kind, Store
from . import polling
from .remote import RemoteWebSocket, WebSocketProxy
from .socket import EngineSocket
from .transport import Connection, WebSocket

#: finds one of this worker's sessions by its sid
FindSession = Callable[[str], EngineSocket | None]
#: answers a websocket upgrade with 101 (or returns the refusal to send)
AcceptWebSocket = Callable[[Request, HTTPConnection | Connection], WebSocket | Response]

logger = logging.getLogger("sio_core.forwarding")

_ERRORS: dict[int, type[HTTPError]] = {cls.code: cls for cls in HTTPError.__subclasses__()
                                       if cls.code is not None}


def _error_reply(exc: HTTPError) -> dict[str, Any]:
    return {"s": exc.status, "e": exc.code}


def _raise_reply(reply: Any) -> dict[str, Any]:
    if not isinstance(reply, dict):
        raise UnknownSession()
    code = reply.get("e")
    if code is not None:
        raise _ERRORS.get(code, BadRequest)()
    if reply.get("s") == PayloadTooLarge.status:  # the owner's bare 413 (it has no code)
        raise PayloadTooLarge()
    return reply


def _poll_reply(packets: list[Packet]) -> dict[str, Any]:
    reply = {"s": 200, "b": engineio.encode_payload(packets).encode()}
    if not any(packet.compress for packet in packets):
        reply["z"] = 0  # compress(False) on every packet: the relay sends it as it is
    return reply


#: the owner's answer to a websocket for a session that has one: accept it, then close it
_CLOSE_AT_ONCE = {"s": 101, "c": 1}


class Forwarding:
    def __init__(self, store: Store, config: Config, *, find_session: FindSession,
                 accept_websocket: AcceptWebSocket) -> None:
        self.store = store
        self.config = config
        self._find = find_session
        self._accept = accept_websocket
        self._ids = itertools.count(1)
        #: the owner's forwarded long-polls, by (relaying worker, its token)
        self._polls: dict[tuple[str, int], tuple[asyncio.Future[Any], EngineSocket]] = {}
        self._remote_ws: dict[str, RemoteWebSocket] = {}  # owner side, by proxy id
        self._proxies: dict[str, WebSocketProxy] = {}  # accepting side, by proxy id
        #: forwarded GETs and POSTs waiting for their owner's answer: a draining worker
        #: waits for them, or closing their connections would cut off the owner's "1"
        self.in_flight = 0
        #: for the metrics: requests forwarded to their owner, by kind
        self.forwarded: Counter[str] = Counter()
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
        config = self.config
        # a poll is answered by the next ping at the latest
        return config.ping_interval + config.ping_timeout + config.forward_timeout

    # -- the receiving worker ---------------------------------------------------------------

    def poll(self, owner: str, sid: str, headers: list[tuple[str, str]],
             compression: HTTPCompression | None = None) -> asyncio.Future[Response | None]:
        logger.debug("forwarding GET of %s to its owner", sid)
        self.forwarded["poll"] += 1
        token = next(self._ids)
        reply = self._ask(owner, Kind.POLL, {"sid": sid, "t": token}, self._poll_timeout)
        return self._answer(
            reply, lambda r: polling.body_response(r.get("b", b""), headers,
                                                   compression if r.get("z", 1) else None),
            headers,
            withdraw=lambda: self.store.send(owner, Kind.POLL_ABORT, {"t": token}))

    def post(self, owner: str, sid: str, body: bytes,
             headers: list[tuple[str, str]]) -> asyncio.Future[Response | None]:
        logger.debug("forwarding POST of %s to its owner", sid)
        self.forwarded["post"] += 1
        reply = self._ask(owner, Kind.POST, {"sid": sid, "b": body}, self.config.forward_timeout)
        return self._answer(reply, lambda r: polling.post_response(headers), headers)

    def upgrade(self, owner: str, sid: str, request: Request,
                conn: HTTPConnection | Connection,
                headers: list[tuple[str, str]]) -> asyncio.Future[Response | None]:
        logger.debug("forwarding websocket upgrade of %s to its owner", sid)
        self.forwarded["websocket"] += 1
        proxy_id = f"{self.store.owner}:{next(self._ids)}"
        reply = self.store.ask(owner, Kind.WS_OPEN, {"sid": sid, "p": proxy_id},
                               self.config.forward_timeout)

        def accept(verdict: dict[str, Any]) -> Response | None:
            ws = self._accept(request, conn)
            if isinstance(ws, Response):
                self.store.send(owner, Kind.WS_CLOSE, {"p": proxy_id})
                return ws
            if verdict.get("c"):
                ws.close(None)  # see _on_ws_open
                ws.start()
                return None
            proxy = WebSocketProxy(self.store, owner, proxy_id, ws,
                                   lambda: self._forget_proxy(proxy_id))
            self._proxies[proxy_id] = proxy
            ws.start(request.trailing)
            return None

        return self._answer(
            reply, accept, headers, upgrade=True,
            withdraw=lambda: self.store.send(owner, Kind.WS_CLOSE, {"p": proxy_id}))

    def _ask(self, owner: str, kind: Kind, payload: Any, timeout: float) -> asyncio.Future[Any]:
        """A GET or POST for the owner; counted until answered (see in_flight)."""
        self.in_flight += 1
        reply = self.store.ask(owner, kind, payload, timeout)
        reply.add_done_callback(self._landed)
        return reply

    def _landed(self, reply: asyncio.Future[Any]) -> None:
        self.in_flight -= 1

    def _answer(self, reply: asyncio.Future[Any],
                respond: Callable[[dict[str, Any]], Response | None],
                headers: list[tuple[str, str]], *, upgrade: bool = False,
                withdraw: Callable[[], object] | None = None) -> asyncio.Future[Response | None]:
        """The HTTP answer to a forwarded request: ``respond(reply)`` once the owner's
        reply comes, its error's answer if it is one. Cancelled (the client's connection
        went away), the request is forgotten here and ``withdraw`` tells the owner."""
        answer: asyncio.Future[Response | None] = reply.get_loop().create_future()

        def replied(reply: asyncio.Future[Any]) -> None:
            if answer.done():
                return  # cancelled first
            try:
                if reply.cancelled() or reply.exception() is not None:
                    raise UnknownSession()  # RequestFailed: the owner is gone or silent
                response = respond(_raise_reply(reply.result()))
            except HTTPError as exc:
                response = error_response(exc, headers, close=upgrade)
            answer.set_result(response)

        def cancelled(answer: asyncio.Future[Response | None]) -> None:
            if answer.cancelled():
                reply.cancel()
                if withdraw is not None:
                    withdraw()

        reply.add_done_callback(replied)
        answer.add_done_callback(cancelled)
        return answer

    def _forget_proxy(self, proxy_id: str) -> None:
        self._proxies.pop(proxy_id, None)

    def _on_ws_out(self, envelope: Envelope) -> None:
        payload = envelope.payload
        if not isinstance(payload, dict):
            return
        proxy = self._proxies.get(payload.get("p"))  # type: ignore[arg-type]
        frames = payload.get("d")
        if proxy is not None and isinstance(frames, list):
            plain = payload.get("n") or ()
            proxy.to_client([f for f in frames if isinstance(f, str | bytes)],
                            [i for i in plain if type(i) is int] if isinstance(plain, list)
                            else ())

    # -- the owner --------------------------------------------------------------------------

    def _polling_session(self, payload: Any) -> EngineSocket:
        """The polling session of this worker that a forwarded GET or POST is for; raises
        the HTTPError to answer with, as for a request received here."""
        if not isinstance(payload, dict) or not isinstance(payload.get("sid"), str):
            raise BadRequest()
        socket = self._find(payload["sid"])
        if socket is None:
            raise UnknownSession()
        if socket.transport.name != "polling":
            raise BadRequest()
        return socket

    def _on_poll(self, envelope: Envelope) -> Any:
        payload = envelope.payload
        try:
            socket = self._polling_session(payload)
            answer = polling.poll(socket, _poll_reply)  # pending now, before the next envelope
        except HTTPError as exc:
            return _error_reply(exc)
        if isinstance(answer, asyncio.Future):
            key = (envelope.origin, payload.get("t", 0))
            self._polls[key] = (answer, socket)
            answer.add_done_callback(lambda _: self._polls.pop(key, None))
        return answer

    def _on_poll_abort(self, envelope: Envelope) -> None:
        payload = envelope.payload
        if isinstance(payload, dict):
            poll = self._polls.pop((envelope.origin, payload.get("t", 0)), None)
            if poll is not None:
                poll[0].cancel()  # the EngineSocket aborts the poll

    def _on_post(self, envelope: Envelope) -> Any:
        payload = envelope.payload
        body = payload.get("b") if isinstance(payload, dict) else None
        try:
            if not isinstance(body, bytes):
                raise BadRequest()
            polling.receive(self._polling_session(payload), body, self.config)
        except HTTPError as exc:
            return _error_reply(exc)
        return {"s": 200}

    def _on_ws_open(self, envelope: Envelope) -> Any:
        payload = envelope.payload
        if (not isinstance(payload, dict) or not isinstance(payload.get("sid"), str)
                or not isinstance(payload.get("p"), str)):
            return _error_reply(BadRequest())
        socket = self._find(payload["sid"])
        if socket is None:
            return _error_reply(UnknownSession())
        if not self.config.allow_upgrades:
            return _error_reply(BadRequest())
        proxy_id = payload["p"]
        remote = RemoteWebSocket(self.store, envelope.origin, proxy_id,
                                 on_lost=lambda: self._remote_ws.pop(proxy_id, None))
        try:
            socket.begin_upgrade(remote)
        except HTTPError:
            # the session has a websocket already (upgraded, upgrading, or opened on one):
            # the reference accepts this one and closes it, the session untouched
            return _CLOSE_AT_ONCE
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
