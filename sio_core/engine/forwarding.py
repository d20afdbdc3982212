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
- A polling handshake that reaches a retiring worker (SIGHUP: it has stopped listening, but
  a connection accepted just before still brings one) is handed to another worker, chosen
  at random: the retiring worker names it in a new sid, and that worker opens the session
  as if the handshake were its own and answers with the open packet. The client's next
  requests find the session's owner as any others do.

Order: the requests of a session that enter through one worker reach its owner in the
order that worker received them. Each is sent to the owner while the HTTP layer hands it
over (``Store.ask``, not a task a loop turn later), frames relayed from a websocket too,
over the store's one ordered channel from this worker to the owner; the owner takes each
in (a GET becomes pending, a POST is processed) as it is delivered.

An owner that is not a live worker (a forged sid, a dead worker) is "Session ID unknown".

What it needs of the server it works for is given at construction: its config, how to find
one of its sessions, how to accept a websocket (the server counts them for a drain), and how
to open a session for a handshake handed over.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

from ..config import Config
from ..exceptions import BadRequest, HTTPError, PayloadTooLarge, ShuttingDown, UnknownSession
from ..http.compression import HTTPCompression
from ..http.connection import HTTPConnection
from ..http.messages import Deferred, Request, Response, error_response
from ..protocol import engineio
from ..protocol.engineio import Packet
from ..protocol.session import CloseReason
from ..stores.base import BadMessage, Envelope, Store
from . import polling
from .messages import (
    EngineKind,
    Open,
    Poll,
    PollAbort,
    Post,
    Verdict,
    WsClose,
    WsIn,
    WsOpen,
    WsOut,
)
from .remote import RemoteWebSocket, WebSocketProxy
from .socket import EngineSocket
from .transport import Connection, WebSocket

#: finds one of this worker's sessions by its sid
FindSession = Callable[[str], EngineSocket | None]
#: answers a websocket upgrade with 101 (or returns the refusal to send)
AcceptWebSocket = Callable[[Request, HTTPConnection | Connection], WebSocket | Response]
#: opens a polling session of the given sid for a handshake handed over; its open packet
#: (or raises the HTTPError to answer with)
OpenPolling = Callable[[str, Request], Packet]

logger = logging.getLogger("sio_core.forwarding")

_ERRORS: dict[int, type[HTTPError]] = {cls.code: cls for cls in HTTPError.__subclasses__()
                                       if cls.code is not None}


def _error_reply(exc: HTTPError) -> list[Any]:
    return Verdict(exc.status, exc.code).to_wire()


def _raise_reply(reply: Any, unanswered: type[HTTPError] = UnknownSession) -> Verdict:
    """The owner's verdict; raises the HTTPError to answer with if it is a refusal. An
    answer that is not a verdict (None: the owner dropped the request) is ``unanswered``:
    "unknown session", as a request the owner cannot serve."""
    try:
        verdict = Verdict.from_wire(reply)
    except BadMessage:
        raise unanswered() from None
    if verdict.code is not None:
        raise _ERRORS.get(verdict.code, BadRequest)()
    if verdict.status == PayloadTooLarge.status:  # the owner's bare 413 (it has no code)
        raise PayloadTooLarge()
    return verdict


def _poll_reply(packets: list[Packet]) -> list[Any]:
    # compress(False) on every packet: the relay sends the answer as it is
    return Verdict(200, body=engineio.encode_payload(packets).encode(),
                   compress=any(packet.compress for packet in packets)).to_wire()


_OK = Verdict(200).to_wire()
_UPGRADED = Verdict(101).to_wire()
#: the owner's answer to a websocket for a session that has one: accept it, then close it
_CLOSE_AT_ONCE = Verdict(101, close=True).to_wire()


def _alive(envelope: Envelope) -> bool:
    return True


class Forwarding:
    def __init__(self, store: Store, config: Config, *, find_session: FindSession,
                 accept_websocket: AcceptWebSocket, open_polling: OpenPolling) -> None:
        self.store = store
        self.config = config
        self._find = find_session
        self._accept = accept_websocket
        self._open_polling = open_polling
        self._ids = itertools.count(1)
        #: the owner's forwarded long-polls, by (relaying worker, its token)
        self._polls: dict[tuple[str, int], tuple[asyncio.Future[Any], EngineSocket]] = {}
        self._remote_ws: dict[str, RemoteWebSocket] = {}  # owner side, by proxy id
        self._proxies: dict[str, WebSocketProxy] = {}  # accepting side, by proxy id
        #: forwarded GETs and POSTs waiting for their owner's answer: a draining worker
        #: waits for them, or closing their connections would cut off the owner's "1"
        self.in_flight = 0
        #: for the metrics: requests forwarded to their owner, by kind (and handshakes
        #: handed over)
        self.forwarded: Counter[str] = Counter()
        #: sessions whose last GET was answered through another worker (see _on_peers)
        self._answered: set[EngineSocket] = set()
        store.on(Poll.KIND, self._on_poll)
        store.on(PollAbort.KIND, self._on_poll_abort)
        store.on(Post.KIND, self._on_post)
        store.on(WsOpen.KIND, self._on_ws_open)
        store.on(WsIn.KIND, self._on_ws_in)
        store.on(WsOut.KIND, self._on_ws_out)
        store.on(WsClose.KIND, self._on_ws_close)
        store.on(Open.KIND, self._on_open)
        store.on(EngineKind.ALIVE, _alive)
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
        reply = self._ask(owner, Poll.KIND, Poll(sid, token).to_wire(), self._poll_timeout)
        return self._answer(
            reply, lambda verdict: polling.body_response(
                verdict.body, headers, compression if verdict.compress else None),
            headers,
            withdraw=lambda: self.store.send(owner, PollAbort.KIND, PollAbort(token).to_wire()))

    def post(self, owner: str, sid: str, body: bytes,
             headers: list[tuple[str, str]]) -> asyncio.Future[Response | None]:
        logger.debug("forwarding POST of %s to its owner", sid)
        self.forwarded["post"] += 1
        reply = self._ask(owner, Post.KIND, Post(sid, body).to_wire(),
                          self.config.forward_timeout)
        return self._answer(reply, lambda verdict: polling.post_response(headers), headers)

    def upgrade(self, owner: str, sid: str, request: Request,
                conn: HTTPConnection | Connection,
                headers: list[tuple[str, str]]) -> asyncio.Future[Response | None]:
        logger.debug("forwarding websocket upgrade of %s to its owner", sid)
        self.forwarded["websocket"] += 1
        proxy_id = f"{self.store.owner}:{next(self._ids)}"
        reply = self.store.ask(owner, WsOpen.KIND, WsOpen(sid, proxy_id).to_wire(),
                               self.config.forward_timeout)
        close = WsClose(proxy_id).to_wire()

        def accept(verdict: Verdict) -> Response | None:
            ws = self._accept(request, conn)
            if isinstance(ws, Response):
                self.store.send(owner, WsClose.KIND, close)
                return ws
            if verdict.close:
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
            withdraw=lambda: self.store.send(owner, WsClose.KIND, close))

    def peer(self) -> str | None:
        """Another live worker, at random (None: there is none)."""
        others = sorted(self.store.peers - {self.store.owner})
        return random.choice(others) if others else None

    def hand_off(self, peer: str, sid: str, request: Request, headers: list[tuple[str, str]],
                 compression: HTTPCompression | None = None) -> asyncio.Future[Response | None]:
        """A polling handshake, for ``peer`` to open as ``sid`` (a sid of its own, see the
        module's doc)."""
        logger.debug("handing a handshake over to %s", peer)
        self.forwarded["handshake"] += 1
        message = Open(sid, request.path, request.raw_url, request.query, request.headers,
                       request.client, request.secure)

        def respond(verdict: Verdict) -> Response:
            if verdict.status != 200:
                raise ShuttingDown()  # that worker drains too (its bare 503)
            return polling.body_response(verdict.body, headers,
                                         compression if verdict.compress else None)

        reply = self._ask(peer, Open.KIND, message.to_wire(), self.config.forward_timeout)
        # a worker that does not answer: the drain's 503, which the client retries
        return self._answer(reply, respond, headers, unanswered=ShuttingDown)

    def _ask(self, owner: str, kind: str, payload: Any, timeout: float) -> asyncio.Future[Any]:
        """A GET or POST for the owner; counted until answered (see in_flight)."""
        self.in_flight += 1
        reply = self.store.ask(owner, kind, payload, timeout)
        reply.add_done_callback(self._landed)
        return reply

    def _landed(self, reply: asyncio.Future[Any]) -> None:
        self.in_flight -= 1

    def _answer(self, reply: asyncio.Future[Any],
                respond: Callable[[Verdict], Response | None],
                headers: list[tuple[str, str]], *, upgrade: bool = False,
                withdraw: Callable[[], object] | None = None,
                unanswered: type[HTTPError] = UnknownSession
                ) -> asyncio.Future[Response | None]:
        """The HTTP answer to a forwarded request: ``respond(reply)`` once the owner's
        reply comes, its error's answer if it is one (``unanswered``'s when none comes).
        Cancelled (the client's connection went away), the request is forgotten here and
        ``withdraw`` tells the owner."""
        answer: asyncio.Future[Response | None] = reply.get_loop().create_future()

        def replied(reply: asyncio.Future[Any]) -> None:
            if answer.done():
                return  # cancelled first
            try:
                if reply.cancelled() or reply.exception() is not None:
                    raise unanswered()  # RequestFailed: the owner is gone or silent
                response = respond(_raise_reply(reply.result(), unanswered))
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
        message = WsOut.from_wire(envelope.payload)
        proxy = self._proxies.get(message.proxy_id)
        if proxy is not None:
            proxy.to_client(message.frames, message.plain)

    # -- the owner --------------------------------------------------------------------------

    def _polling_session(self, sid: str) -> EngineSocket:
        """The polling session of this worker that a forwarded GET or POST is for; raises
        the HTTPError to answer with, as for a request received here."""
        socket = self._find(sid)
        if socket is None:
            raise UnknownSession()
        if socket.transport.name != "polling":
            raise BadRequest()
        return socket

    def vouching(self, socket: EngineSocket, relay: str | None) -> asyncio.Future[Any] | None:
        """A GET of ``socket`` came through ``relay`` (None: to this worker itself). If the
        previous answer went out through another worker, that one may have died with it,
        and this GET be its client's retry: the GET is held while that worker is asked
        whether it is still there (the future of its answer; see polling.py). A worker
        that has died fails the ask as soon as the store hears of it, or at the
        ``forward_timeout``."""
        previous = socket.answered_via
        if previous is None or previous == relay:
            return None
        return self.store.ask(previous, EngineKind.ALIVE, None, self.config.forward_timeout)

    def _on_poll(self, envelope: Envelope) -> Any:
        message = Poll.from_wire(envelope.payload)
        relay = envelope.origin
        try:
            socket = self._polling_session(message.sid)
            # pending now, before the next envelope
            waiting = polling.poll(socket, _poll_reply, self.vouching(socket, relay),
                                   _error_reply)
        except HTTPError as exc:
            return _error_reply(exc)
        if isinstance(waiting, Deferred):
            answer = waiting.as_future()  # what the store replies with once it is done
            key = (relay, message.token)
            self._polls[key] = (answer, socket)

            def done(future: asyncio.Future[Any]) -> None:
                # (not when aborted, or released: see _on_peers)
                if self._polls.pop(key, None) is not None and not future.cancelled():
                    self._answered_via(socket, relay)

            answer.add_done_callback(done)
            return answer
        self._answered_via(socket, relay)
        return waiting

    def _answered_via(self, socket: EngineSocket, relay: str) -> None:
        socket.answered_via = relay
        self._answered.add(socket)

    def _on_poll_abort(self, envelope: Envelope) -> None:
        message = PollAbort.from_wire(envelope.payload)
        poll = self._polls.pop((envelope.origin, message.token), None)
        if poll is not None:
            poll[0].cancel()  # the EngineSocket aborts the poll

    def _on_post(self, envelope: Envelope) -> Any:
        message = Post.from_wire(envelope.payload)
        try:
            polling.receive(self._polling_session(message.sid), message.body, self.config)
        except HTTPError as exc:
            return _error_reply(exc)
        return _OK

    def _on_ws_open(self, envelope: Envelope) -> Any:
        message = WsOpen.from_wire(envelope.payload)
        socket = self._find(message.sid)
        if socket is None:
            return _error_reply(UnknownSession())
        if not self.config.allow_upgrades:
            return _error_reply(BadRequest())
        proxy_id = message.proxy_id
        remote = RemoteWebSocket(self.store, envelope.origin, proxy_id,
                                 on_lost=lambda: self._remote_ws.pop(proxy_id, None))
        try:
            socket.begin_upgrade(remote)
        except HTTPError:
            # the session has a websocket already (upgraded, upgrading, or opened on one):
            # the reference accepts this one and closes it, the session untouched
            return _CLOSE_AT_ONCE
        self._remote_ws[proxy_id] = remote
        return _UPGRADED

    def _on_open(self, envelope: Envelope) -> Any:
        message = Open.from_wire(envelope.payload)
        request = Request("GET", message.path, message.query, message.headers,
                          client=message.client, secure=message.secure,
                          raw_url=message.raw_url)
        try:
            return _poll_reply([self._open_polling(message.sid, request)])
        except HTTPError as exc:
            return _error_reply(exc)

    def _on_ws_in(self, envelope: Envelope) -> None:
        message = WsIn.from_wire(envelope.payload)
        remote = self._remote_ws.get(message.proxy_id)
        if remote is not None:
            remote.on_message(message.data)

    def _on_ws_close(self, envelope: Envelope) -> None:
        proxy_id = WsClose.from_wire(envelope.payload).proxy_id
        remote = self._remote_ws.pop(proxy_id, None)
        if remote is not None:
            remote.connection_lost()
        proxy = self._proxies.get(proxy_id)
        if proxy is not None:
            proxy.owner_closed()

    # -- workers that go away ---------------------------------------------------------------

    def _on_peers(self, peers: set[str]) -> None:
        # A long-poll relayed by a worker that is gone: its client's connection went with
        # that worker, and no POLL_ABORT will come. Released, not aborted: the session is
        # not at fault, and a client that retries the GET through a live worker carries on
        # (an abort would close it, and the retry would find an overlapping GET meanwhile).
        for key, (_, socket) in list(self._polls.items()):
            if key[0] not in peers:
                del self._polls[key]  # its empty answer goes nowhere
                socket.release_poll()
        # An answered GET whose client has not polled again since, relayed by a worker that
        # is gone: the answer's packets may have died with it. The session is closed, not
        # left to lose them quietly: its client's next GET finds it unknown and reconnects
        # (and with connection state recovery gets what it missed, once).
        for socket in list(self._answered):
            if socket.answered_via is None or socket.closed:
                self._answered.discard(socket)
            elif socket.answered_via not in peers:
                self._answered.discard(socket)
                socket.close(CloseReason.TRANSPORT_ERROR, notify=False)
        for proxy in list(self._proxies.values()):
            if proxy.owner not in peers:
                proxy.owner_closed()
        for remote in list(self._remote_ws.values()):
            if remote.proxy_owner not in peers:
                remote.connection_lost()
