"""The store contract: publish to all, send to one, request/gather.

How this works: every message between workers is an :class:`Envelope` (a kind, the
origin worker, an optional target, an optional request id, a payload of plain msgpack
types). A backend only has to move envelopes (:meth:`Store._transmit`) and say who the
other workers are (:attr:`Store.peers`); request/response, gathering from a known number
of responders with a timeout, and dispatch to handlers are done here, once, for every
backend. Envelopes from the bus are untrusted: decoded with size limits into the one
typed shape, or dropped.

Order: what one worker transmits to another (``send``, ``ask``, ``publish``, replies) is
delivered in the order it was transmitted, and :meth:`Store.deliver` calls each handler
at once, in that order. A handler whose answer must wait returns a Future (awaited with no
task); everything it did before returning happened in arrival order. ``ask`` transmits
before it returns, so requests asked in turn arrive in turn (``request`` is its coroutine
form, which transmits only once it runs). The forwarding of a session's requests to its
owner relies on this (sio_core/engine/forwarding.py).
"""

from __future__ import annotations

import asyncio
import enum
import functools
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgpack

logger = logging.getLogger("sio_core.store")

#: the largest envelope accepted from the bus (a broadcast carries one Socket.IO packet,
#: whose size the server already bounds by max_payload)
MAX_ENVELOPE = 64 * 1024 * 1024


class Kind(enum.StrEnum):
    # Socket.IO across workers
    BROADCAST = "broadcast"
    BROADCAST_ACKS = "broadcast_acks"  # a broadcast whose client acks come back
    CLIENT_COUNT = "client_count"  # how many clients a worker sent a broadcast_acks to
    CLIENT_ACK = "client_ack"  # one client's ack of a broadcast_acks
    FETCH_SOCKETS = "fetch_sockets"
    SOCKETS_JOIN = "sockets_join"
    SOCKETS_LEAVE = "sockets_leave"
    DISCONNECT_SOCKETS = "disconnect_sockets"
    SERVER_SIDE_EMIT = "server_side_emit"
    SOCKET_RELEASE = "socket_release"  # recovery: a worker's socket is recovered elsewhere
    # forwarding a session's requests to its owner
    POLL = "poll"
    POLL_ABORT = "poll_abort"
    POST = "post"
    WS_OPEN = "ws_open"
    WS_IN = "ws_in"  # frames from the client, proxy -> owner
    WS_OUT = "ws_out"  # frames to the client, owner -> proxy
    WS_CLOSE = "ws_close"
    # plumbing
    REPLY = "reply"
    NO_PEER = "no_peer"  # the target is gone: the request fails at once
    PEERS = "peers"  # the hub's list of live workers
    METRICS = "metrics"  # a worker's metric families, for the worker that was scraped
    READY = "ready"
    # connection state recovery: the log the master keeps (sio_core/stores/log.py)
    LOG_LIMITS = "log_limits"
    LOG_APPEND = "log_append"
    LOG_ENTRY = "log_entry"
    LOG_PERSIST = "log_persist"
    LOG_RESTORE = "log_restore"
    LOG_RESTORED = "log_restored"


_KINDS = {k.value: k for k in Kind}


@dataclass(frozen=True, slots=True)
class Envelope:
    kind: Kind
    origin: str
    payload: Any = None
    target: str | None = None
    request_id: int | None = None

    def pack(self) -> bytes:
        return msgpack.packb(  # type: ignore[no-any-return]
            [self.kind.value, self.origin, self.target, self.request_id, self.payload],
            use_bin_type=True)

    @staticmethod
    def unpack(data: bytes) -> Envelope | None:
        """Decode an envelope from the bus; None if it is not one (never raises)."""
        if len(data) > MAX_ENVELOPE:
            return None
        try:
            item = msgpack.unpackb(data, raw=False, strict_map_key=False)
        except Exception:
            return None
        if not isinstance(item, list) or len(item) != 5:
            return None
        kind, origin, target, request_id, payload = item
        if (not isinstance(kind, str) or kind not in _KINDS or not isinstance(origin, str)
                or not (target is None or isinstance(target, str))
                or not (request_id is None or isinstance(request_id, int))):
            return None
        return Envelope(_KINDS[kind], origin, payload, target, request_id)


class RequestFailed(Exception):
    """The target of a request is gone, or did not answer in time."""


Handler = Callable[[Envelope], Awaitable[Any] | Any]


class Store:
    """Base of every backend. ``owner`` is this worker's address (it is in every sid)."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.peers: set[str] = set()
        self._handlers: dict[Kind, Handler] = {}
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._request_targets: dict[int, str] = {}  # who may answer each pending request
        self._gathers: dict[int, _Gather] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._peer_listeners: list[Callable[[set[str]], None]] = []
        #: for the metrics: messages this worker put on the bus (its backend counts them),
        #: and the ones it received
        self.messages_sent = 0
        self.messages_received = 0

    # -- what a backend implements ----------------------------------------------------------

    async def start(self) -> None:
        """Connect; afterwards ``peers`` is known."""

    async def close(self) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(RequestFailed("store closed"))
        self._pending.clear()
        for task in list(self._tasks):
            task.cancel()

    def _transmit(self, envelope: Envelope) -> None:
        """Send an envelope: to ``envelope.target``, or to every peer when it is None."""
        raise NotImplementedError

    def packet_log(self, limits: Any) -> Any:
        """The store's side of connection state recovery (a
        :class:`~sio_core.stores.log.PacketLog` for these
        :class:`~sio_core.stores.log.LogLimits`), shared by every worker of the store;
        None: the store keeps no log, each process keeps its own."""
        return None

    @property
    def health(self) -> dict[str, Any] | None:
        """For the health answer: what the backend counts of its connection (RedisStore:
        its outages); None when it has nothing to tell."""
        return None

    # -- the contract -----------------------------------------------------------------------

    def on(self, kind: Kind, handler: Handler) -> None:
        """``handler(envelope)`` for every envelope of that kind, called in arrival order; for
        a request, what it returns is the reply: a value, a Future of it, or a coroutine (run
        as a task, so its body starts only after the envelopes delivered meanwhile)."""
        self._handlers[kind] = handler

    def on_peers(self, listener: Callable[[set[str]], None]) -> None:
        self._peer_listeners.append(listener)

    def publish(self, kind: Kind, payload: Any) -> None:
        """To every other worker; no answer."""
        if self.peers:
            self._transmit(Envelope(kind, self.owner, payload))

    def send(self, target: str, kind: Kind, payload: Any) -> None:
        """To one worker; no answer."""
        self._transmit(Envelope(kind, self.owner, payload, target))

    async def request(self, target: str, kind: Kind, payload: Any, timeout: float) -> Any:
        """To one worker; returns its handler's answer. RequestFailed if the target is gone
        or does not answer within timeout."""
        return await self.ask(target, kind, payload, timeout)

    def ask(self, target: str, kind: Kind, payload: Any, timeout: float) -> asyncio.Future[Any]:
        """:meth:`request`, transmitted before this returns: what is asked (or sent) in turn
        reaches the target in turn. The future fails with RequestFailed as ``request`` does;
        cancelling it forgets the request (a late answer is dropped)."""
        request_id = next(self._ids)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending[request_id] = future
        self._request_targets[request_id] = target
        timer = loop.call_later(timeout, _time_out, future, kind, target, timeout)
        future.add_done_callback(functools.partial(self._forget_request, request_id, timer))
        self._transmit(Envelope(kind, self.owner, payload, target, request_id))
        return future

    def _forget_request(self, request_id: int, timer: asyncio.TimerHandle,
                        future: asyncio.Future[Any]) -> None:
        timer.cancel()
        self._pending.pop(request_id, None)
        self._request_targets.pop(request_id, None)

    async def gather(self, kind: Kind, payload: Any, timeout: float) -> list[Any]:
        """To every other worker; returns their answers (as many as there were peers when
        asked, fewer if some did not answer in time or left)."""
        peers = set(self.peers)
        if not peers:
            return []
        request_id = next(self._ids)
        gather = _Gather(peers)
        self._gathers[request_id] = gather
        try:
            self._transmit(Envelope(kind, self.owner, payload, None, request_id))
            with _suppress_timeout():
                await asyncio.wait_for(asyncio.shield(gather.done), timeout)
            return list(gather.replies.values())
        finally:
            self._gathers.pop(request_id, None)

    # Socket.IO requests to every server of a namespace. Here the servers are the peers; a
    # backend whose bus other servers share (RedisStore: JavaScript servers with the redis
    # adapter) counts and asks them all, in the format they understand.

    async def count_servers(self, namespace: str) -> int:
        """How many other servers answer a request about ``namespace``."""
        return len(self.peers)

    async def ask_servers(self, kind: Kind, payload: dict[str, Any], timeout: float) -> list[Any]:
        """A FETCH_SOCKETS or SERVER_SIDE_EMIT request (``payload["nsp"]`` names the
        namespace) to every other server: their answers, as :meth:`gather`'s."""
        return await self.gather(kind, payload, timeout)

    # -- dispatch (backends call this for each envelope that arrives) -----------------------

    def deliver(self, envelope: Envelope) -> None:
        self.messages_received += 1
        kind = envelope.kind
        if kind is Kind.REPLY or kind is Kind.NO_PEER:
            self._resolve(envelope)
            return
        if kind is Kind.PEERS:
            self._set_peers(envelope.payload)
            return
        handler = self._handlers.get(kind)
        if handler is None:
            if envelope.request_id is not None:
                self._reply(envelope, None)
            return
        try:
            result = handler(envelope)
        except Exception:
            logger.exception("error handling %s from %s", kind.value, envelope.origin)
            result = None
        if isinstance(result, asyncio.Future):
            result.add_done_callback(functools.partial(self._reply_when_done, envelope))
        elif asyncio.iscoroutine(result):
            task = asyncio.ensure_future(self._finish(envelope, result))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif envelope.request_id is not None:
            self._reply(envelope, result)

    async def _finish(self, envelope: Envelope, awaitable: Awaitable[Any]) -> None:
        try:
            result = await awaitable
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("error handling %s from %s", envelope.kind.value, envelope.origin)
            result = None
        if envelope.request_id is not None:
            self._reply(envelope, result)

    def _reply_when_done(self, envelope: Envelope, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            return  # as a cancelled coroutine handler: no answer (the asker has given up)
        exc = future.exception()
        if exc is not None:
            logger.error("error handling %s from %s", envelope.kind.value, envelope.origin,
                         exc_info=exc)
        if envelope.request_id is not None:
            self._reply(envelope, None if exc is not None else future.result())

    def _reply(self, envelope: Envelope, result: Any) -> None:
        self._transmit(Envelope(Kind.REPLY, self.owner, result, envelope.origin,
                                envelope.request_id))

    def _resolve(self, envelope: Envelope) -> None:
        request_id = envelope.request_id
        if request_id is None:
            return
        future = self._pending.get(request_id)
        if future is not None:
            # only the target answers (NO_PEER comes in the target's name): request ids are
            # guessable, and another worker's reply must not pass for the target's
            if envelope.origin != self._request_targets.get(request_id):
                return
            if not future.done():
                if envelope.kind is Kind.NO_PEER:
                    future.set_exception(RequestFailed(f"no worker {envelope.origin}"))
                else:
                    future.set_result(envelope.payload)
            return
        gather = self._gathers.get(request_id)
        if gather is not None:
            if envelope.kind is Kind.NO_PEER:
                gather.drop(envelope.origin)
            else:
                gather.add(envelope.origin, envelope.payload)

    def _set_peers(self, payload: Any) -> None:
        if not isinstance(payload, list):
            return
        peers = {p for p in payload if isinstance(p, str) and p != self.owner}
        gone = self.peers - peers
        self.peers = peers
        for gather in self._gathers.values():
            for owner in gone:
                gather.drop(owner)
        # a request to a worker that is gone fails now, not at its (possibly long) timeout
        for request_id, target in list(self._request_targets.items()):
            future = self._pending.get(request_id)
            if target in gone and future is not None and not future.done():
                future.set_exception(RequestFailed(f"worker {target} left"))
        for listener in self._peer_listeners:
            try:
                listener(set(peers))
            except Exception:
                logger.exception("error in a peers listener")


class _Gather:
    def __init__(self, expected: set[str]) -> None:
        self.expected = set(expected)
        self.replies: dict[str, Any] = {}
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def add(self, origin: str, payload: Any) -> None:
        if origin in self.expected and origin not in self.replies:
            self.replies[origin] = payload
            self._check()

    def drop(self, origin: str) -> None:
        self.expected.discard(origin)
        self._check()

    def _check(self) -> None:
        if not self.done.done() and self.expected <= set(self.replies):
            self.done.set_result(None)


def _time_out(future: asyncio.Future[Any], kind: Kind, target: str, timeout: float) -> None:
    if not future.done():
        future.set_exception(RequestFailed(f"{kind.value} to {target}: no answer in {timeout}s"))


class _suppress_timeout:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        return exc_type is TimeoutError
