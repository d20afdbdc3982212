"""The store contract: publish to all, send to one, request/gather.

How this works: every message between workers is an :class:`Envelope` (a kind, the
origin worker, an optional target, an optional request id, a payload of plain msgpack
types). A backend only has to move envelopes (:meth:`Store._transmit`) and say who the
other workers are (:attr:`Store.peers`); request/response, gathering from a known number
of responders with a timeout, and dispatch to handlers are done here, once, for every
backend. Envelopes from the bus are untrusted: decoded with size limits into the one
typed shape, or dropped.

Kinds: the bus names only its own (:class:`BusKind`: replies, the list of workers, a
worker saying who it is). The layers above name theirs in their own enums (the engine's
forwarding in sio_core/engine/messages.py, Socket.IO's cluster messages in
sio_core/socketio/messages.py), each a ``StrEnum`` whose values are the kinds on the wire,
and register a handler per kind with :meth:`Store.on`. Each layer encodes and validates its
payloads in its own messages module; what does not decode raises :class:`BadMessage`, which
:meth:`Store.deliver` turns into a drop and a log line (no traceback, no answer but None).

Versions: an envelope starts with :data:`VERSION`. A worker of another version (a fleet
half rolled over) is refused by name, once per version and origin in the log, not misread.

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
from typing import Any, ClassVar

import msgpack

logger = logging.getLogger("sio_core.store")

#: the largest envelope accepted from the bus (a broadcast carries one Socket.IO packet,
#: whose size the server already bounds by max_payload)
MAX_ENVELOPE = 64 * 1024 * 1024

#: the version of the envelope and of every layer's payloads in it: raised whenever a
#: kind's payload changes shape, so that workers of two versions refuse each other's
#: messages by name rather than misread them (1: typed payloads, kinds per layer; 2: the
#: hub's BATCH envelopes, which a worker of version 1 would drop)
VERSION = 2


class BusKind(enum.StrEnum):
    """The bus's own kinds (the layers above name theirs in their own enums)."""

    REPLY = "reply"
    NO_PEER = "no_peer"  # the target is gone: the request fails at once
    PEERS = "peers"  # the list of live workers (the hub's, the memory bus's) or, on Redis,
    # one worker announcing itself
    READY = "ready"  # a worker naming itself to the hub
    BATCH = "batch"  # a worker's envelopes of one loop turn to one target (or to all), in one
    # frame of the hub; the payload is their wire lists (sio_core/stores/hub.py)


_BUS_KINDS = frozenset(BusKind)


class BadMessage(ValueError):
    """What came off the bus does not decode: an envelope, or a layer's payload in it.
    The one error every codec between workers raises; the receiver drops the message."""


def _pack(value: Any) -> bytes:
    data: bytes = msgpack.packb(value, use_bin_type=True)
    return data


# Not frozen, though never changed once made: one is made per message on both sides of the
# bus, and a frozen dataclass's __init__ (object.__setattr__ per field) costs ~4x a plain one
@dataclass(slots=True)
class Envelope:
    kind: str
    origin: str
    payload: Any = None
    target: str | None = None
    request_id: int | None = None

    def to_wire(self) -> list[Any]:
        return [VERSION, self.kind, self.origin, self.target, self.request_id, self.payload]

    def pack(self) -> bytes:
        return _pack(self.to_wire())

    @staticmethod
    def from_wire(item: Any) -> Envelope:
        """An envelope from its wire list; BadMessage if it is not one."""
        _, kind, origin, target, request_id, payload = checked_wire(item)
        return Envelope(kind, origin, payload, target, request_id)

    @staticmethod
    def unpack(data: bytes) -> Envelope:
        """Decode an envelope from the bus; BadMessage if it is not one."""
        _, kind, origin, target, request_id, payload = unpack_wire(data)
        return Envelope(kind, origin, payload, target, request_id)


def checked_wire(item: Any) -> list[Any]:
    """``item`` if it is an envelope's wire list ``[VERSION, kind, origin, target,
    request_id, payload]`` (the payload is its layer's to check); BadMessage if not."""
    if type(item) is not list or not item:
        raise BadMessage("not an envelope")
    version = item[0]
    if version != VERSION or isinstance(version, bool):
        # a list of five that starts with a kind: a worker from before versioning
        raise BadMessage(f"envelope version {version if isinstance(version, int) else 0}"
                         f" (this worker speaks {VERSION})")
    if len(item) != 6:
        raise BadMessage("not an envelope")
    target, request_id = item[3], item[4]
    if (type(item[1]) is not str or type(item[2]) is not str
            or not (target is None or type(target) is str)
            or not (request_id is None or type(request_id) is int)):
        raise BadMessage("not an envelope")
    return item


def unpack_wire(data: bytes) -> list[Any]:
    """An envelope's wire list from the bus, checked as :func:`checked_wire` does, without
    making the Envelope (the master hub routes on it); BadMessage if it is not one."""
    if len(data) > MAX_ENVELOPE:
        raise BadMessage("envelope too large")
    try:
        item = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:
        raise BadMessage("not msgpack") from exc
    return checked_wire(item)


def unpack_head(data: bytes) -> list[Any]:
    """:func:`unpack_wire` for a frame that is only routed (the master hub's): the same
    checks of the envelope and its header, but the payload is skipped over, not made into
    values (~5 us rather than ~57 us for a burst of 100 broadcasts), and the list's payload
    is None. BadMessage as unpack_wire raises it, but for a payload that is msgpack and
    still cannot be made into values (a map with a list for a key): the receiver finds that
    one, and drops it."""
    if len(data) > MAX_ENVELOPE:
        raise BadMessage("envelope too large")
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False,
                                max_buffer_size=max(len(data), 1))
    try:
        unpacker.feed(data)
        if unpacker.read_array_header() == 6:
            head = [unpacker.unpack() for _ in range(5)]
            unpacker.skip()
            if unpacker.tell() == len(data):
                return checked_wire([*head, None])
    except Exception:
        pass  # (the error is unpack_wire's to tell)
    return [*unpack_wire(data)[:5], None]


class Drops:
    """Counts the messages dropped as undecodable and logs them: a warning for the first of
    each reason (a worker of another version says so once, not per message), then debug."""

    def __init__(self) -> None:
        self.count = 0
        self._seen: set[str] = set()

    def __call__(self, exc: BadMessage, where: str) -> None:
        self.count += 1
        reason = str(exc)
        if reason in self._seen:
            logger.debug("dropped a message from %s: %s", where, reason)
        else:
            if len(self._seen) < 64:  # reasons are few; a flood of new ones is not kept
                self._seen.add(reason)
            logger.warning("dropped a message from %s: %s", where, reason)


class RequestFailed(Exception):
    """The target of a request is gone, or did not answer in time."""


Handler = Callable[[Envelope], Awaitable[Any] | Any]
#: takes a run of envelopes of one kind at once (see Store.on_run)
RunHandler = Callable[[list[Envelope]], None]


class Store:
    """Base of every backend. ``owner`` is this worker's address (it is in every sid)."""

    #: whether the bus also carries channels of a layer above, which servers other than
    #: sio_core workers share (RedisStore: the Socket.IO layer speaks the JavaScript
    #: adapter's format there); False: the peers are all there is
    raw_channels: ClassVar[bool] = False

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.peers: set[str] = set()
        self._handlers: dict[str, Handler] = {}
        self._run_handlers: dict[str, RunHandler] = {}
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
        #: what arrived but did not decode (an envelope, or a layer's payload in one)
        self.dropped = Drops()

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

    def on(self, kind: str, handler: Handler) -> None:
        """``handler(envelope)`` for every envelope of that kind (a member of a layer's
        kind enum), called in arrival order; for a request, what it returns is the reply: a
        value, a Future of it, or a coroutine (run as a task, so its body starts only after
        the envelopes delivered meanwhile). A handler that finds the payload malformed
        raises BadMessage: the envelope is dropped (logged; a request is answered None)."""
        if kind in _BUS_KINDS:
            raise ValueError(f"{kind!r} is the bus's own kind")
        self._handlers[kind] = handler

    def on_run(self, kind: str, handler: RunHandler) -> None:
        """Besides :meth:`on`'s handler of ``kind``: ``handler(envelopes)`` for a run of
        them that arrived together (one batch of the hub), consecutive, from one origin and
        asking no answer, in order, instead of one call each. The handler drops what it
        finds malformed itself (:meth:`dropped`). A backend that delivers one envelope at a
        time never calls it."""
        self._run_handlers[kind] = handler

    def on_peers(self, listener: Callable[[set[str]], None]) -> None:
        self._peer_listeners.append(listener)

    def publish(self, kind: str, payload: Any) -> None:
        """To every other worker; no answer."""
        if self.peers:
            self._transmit(Envelope(kind, self.owner, payload))

    def send(self, target: str, kind: str, payload: Any) -> None:
        """To one worker; no answer."""
        self._transmit(Envelope(kind, self.owner, payload, target))

    async def request(self, target: str, kind: str, payload: Any, timeout: float) -> Any:
        """To one worker; returns its handler's answer. RequestFailed if the target is gone
        or does not answer within timeout."""
        return await self.ask(target, kind, payload, timeout)

    def ask(self, target: str, kind: str, payload: Any, timeout: float) -> asyncio.Future[Any]:
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

    async def gather(self, kind: str, payload: Any, timeout: float) -> list[Any]:
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

    # -- dispatch (backends call this for each envelope that arrives) -----------------------

    def deliver_packed(self, data: bytes, where: str) -> Envelope | None:
        """An envelope as it came off the bus from ``where``: delivered, or dropped (logged)
        when it does not decode; the envelope, or None."""
        try:
            envelope = Envelope.unpack(data)
        except BadMessage as exc:
            self.dropped(exc, where)
            return None
        self.deliver(envelope)
        return envelope

    def deliver_all(self, envelopes: list[Envelope]) -> None:
        """Envelopes that arrived together, in order: a run of a kind with a run handler
        (see :meth:`on_run`) goes to it at once, the others to :meth:`deliver` one by one."""
        runs = self._run_handlers

        def run_of(envelope: Envelope) -> tuple[str, str] | None:
            if envelope.request_id is None and envelope.kind in runs:
                return envelope.kind, envelope.origin
            return None

        for key, group in itertools.groupby(envelopes, run_of):
            if key is None:
                for envelope in group:
                    self.deliver(envelope)
                continue
            run = list(group)
            self.messages_received += len(run)
            try:
                runs[key[0]](run)
            except Exception:
                logger.exception("error handling %s from %s", *key)

    def deliver(self, envelope: Envelope) -> None:
        self.messages_received += 1
        kind = envelope.kind
        # a layer's kind first (the usual message): the bus's own have no handler (see on)
        handler = self._handlers.get(kind)
        if handler is None:
            if kind == BusKind.REPLY or kind == BusKind.NO_PEER:
                self._resolve(envelope)
            elif kind == BusKind.PEERS:
                self._set_peers(envelope.payload)
            elif envelope.request_id is not None:
                self._reply(envelope, None)
            return
        try:
            result = handler(envelope)
        except BadMessage as exc:
            self.dropped(exc, f"{envelope.origin} ({kind})")
            result = None
        except Exception:
            logger.exception("error handling %s from %s", kind, envelope.origin)
            result = None
        if result is None:  # the usual answer (a broadcast's): nothing to wait for
            if envelope.request_id is not None:
                self._reply(envelope, None)
        elif isinstance(result, asyncio.Future):
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
        except BadMessage as exc:
            self.dropped(exc, f"{envelope.origin} ({envelope.kind})")
            result = None
        except Exception:
            logger.exception("error handling %s from %s", envelope.kind, envelope.origin)
            result = None
        if envelope.request_id is not None:
            self._reply(envelope, result)

    def _reply_when_done(self, envelope: Envelope, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            return  # as a cancelled coroutine handler: no answer (the asker has given up)
        exc = future.exception()
        if exc is not None:
            logger.error("error handling %s from %s", envelope.kind, envelope.origin,
                         exc_info=exc)
        if envelope.request_id is not None:
            self._reply(envelope, None if exc is not None else future.result())

    def _reply(self, envelope: Envelope, result: Any) -> None:
        self._transmit(Envelope(BusKind.REPLY, self.owner, result, envelope.origin,
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
                if envelope.kind == BusKind.NO_PEER:
                    future.set_exception(RequestFailed(f"no worker {envelope.origin}"))
                else:
                    future.set_result(envelope.payload)
            return
        gather = self._gathers.get(request_id)
        if gather is not None:
            if envelope.kind == BusKind.NO_PEER:
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


def _time_out(future: asyncio.Future[Any], kind: str, target: str, timeout: float) -> None:
    if not future.done():
        future.set_exception(RequestFailed(f"{kind} to {target}: no answer in {timeout}s"))


class _suppress_timeout:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        return exc_type is TimeoutError
