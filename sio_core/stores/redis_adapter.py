"""The JavaScript adapters' wire formats, which RedisStore speaks so a mixed fleet works.

How this works: the Socket.IO kinds of the store (broadcasts, with or without acks,
join/leave/disconnect of matching sockets, server-side emits, fetch_sockets) go to every
server of a namespace, JavaScript or sio_core alike, in the format of one of the two
JavaScript adapters; a sio_core node reads the other sio_core nodes in it too.

- :class:`ClassicFormat`: ``createAdapter`` of ``@socket.io/redis-adapter`` 8 (and what
  ``@socket.io/redis-emitter`` publishes). Broadcasts are ``[uid, packet, {rooms, except,
  flags}]`` on ``<key>#<nsp>#[<room>#]``, read by pattern; requests are JSON on
  ``<key>-request#<nsp>#`` (subscribed by name, so the JavaScript servers' NUMSUB counts us),
  answered on ``<key>-response#<nsp>#``, which every server reads.
- :class:`ShardedFormat`: ``createShardedAdapter`` of the same package (Redis 7 sharded
  pub/sub), i.e. socket.io-adapter's ClusterAdapter messages ``{uid, nsp, type, data}``:
  everything to the servers of a namespace on ``<key>#<nsp>#``, answers to one server on
  ``<key>#<nsp>#<uid>#`` (its own response channel), the servers counted by PUBSUB
  SHARDNUMSUB of the namespace's channel. Its "dynamic" subscription modes also put a
  broadcast to one room on ``<key>#<nsp>#<room>#``, read only by the servers that have that
  room: we always publish on the namespace's channel, which every server reads whatever its
  mode, and read only that one (see the README for what this asks of JavaScript servers).

Both: a request we answer runs through the store's handlers as a sio_core worker's does; our
requests (fetch_sockets, server-side emits and broadcasts with acks) are counted as the
JavaScript adapter counts them, less ourselves, and their answers picked off by request id.
Messages are JSON, or msgpack when they carry binary data, as the JavaScript adapter sends
them; everything read is untrusted and checked for shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Protocol, TypeVar

from .base import Envelope, Handler, Kind

T = TypeVar("T")


class RedisStore(Protocol):
    """What the formats use of the store that speaks them (stores/redis.py's RedisStore;
    named here, not imported, so that the two modules do not import each other)."""

    @property
    def key(self) -> str: ...
    @property
    def owner(self) -> str: ...
    @property
    def cmd(self) -> Any: ...
    @property
    def pack(self) -> Callable[[Any], bytes]: ...
    @property
    def unpack(self) -> Callable[[bytes], Any]: ...
    @property
    def _ids(self) -> Iterator[int]: ...
    @property
    def _handlers(self) -> dict[Kind, Handler]: ...
    @property
    def _tasks(self) -> set[asyncio.Task[Any]]: ...

    def deliver(self, envelope: Envelope) -> None: ...

    def _enqueue(self, channel: str, data: bytes) -> None: ...

    async def command(self, call: Awaitable[T]) -> T: ...

    def shard_target(self, channel: str) -> dict[str, Any]: ...

#: prefix of origins that are servers of the JavaScript format (answers go back in it)
JS = "js:"

# request types of @socket.io/redis-adapter's createAdapter
SOCKETS, ALL_ROOMS, REMOTE_JOIN, REMOTE_LEAVE, REMOTE_DISCONNECT, REMOTE_FETCH, \
    SERVER_SIDE_EMIT, BROADCAST, BROADCAST_CLIENT_COUNT, BROADCAST_ACK = range(10)

# message types of socket.io-adapter's ClusterAdapter (createShardedAdapter); 1, 2 and 13
# are heartbeats of the ClusterAdapterWithHeartbeat, which the sharded adapter never sends
C_BROADCAST, C_SOCKETS_JOIN, C_SOCKETS_LEAVE, C_DISCONNECT_SOCKETS, C_FETCH_SOCKETS, \
    C_FETCH_SOCKETS_RESPONSE, C_SERVER_SIDE_EMIT, C_SERVER_SIDE_EMIT_RESPONSE, \
    C_BROADCAST_CLIENT_COUNT, C_BROADCAST_ACK = range(3, 13)

#: the kinds that go to every server in the JavaScript format (not to sio_core's peers only)
JS_KINDS = frozenset({Kind.BROADCAST, Kind.BROADCAST_ACKS, Kind.SOCKETS_JOIN,
                      Kind.SOCKETS_LEAVE, Kind.DISCONNECT_SOCKETS, Kind.SERVER_SIDE_EMIT})


def json_pack(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def js_pack(value: Any, pack: Callable[[Any], bytes]) -> bytes:
    """A request or answer as the JavaScript adapter sends it: JSON; what JSON cannot carry
    (bytes) in the parser's format, which it reads too (anything that does not start
    with "{")."""
    try:
        return json_pack(value)
    except (TypeError, ValueError):
        return pack(value)


def broadcast_channel(key: str, nsp: str, rooms: list[str]) -> str:
    """Where createAdapter publishes a broadcast: a room's own channel when it targets
    exactly one (the JavaScript adapter skips, undecoded, those of rooms it does not
    have)."""
    return f"{key}#{nsp}#{rooms[0]}#" if len(rooms) == 1 else f"{key}#{nsp}#"


def request_channel(key: str, nsp: str) -> str:
    """createAdapter's requests to the servers of a namespace."""
    return f"{key}-request#{nsp}#"


def decode_message(data: bytes, unpack: Callable[[bytes], Any]) -> Any:
    # the JavaScript adapter sends JSON (starts with "{") or its parser's encoding
    if data[:1] == b"{":
        return json.loads(data)
    return unpack(data)


class AdapterFormat:
    """What both formats share: answering requests, asking and gathering answers."""

    #: patterns the subscription reads (none with sharded pub/sub, which has no PSUBSCRIBE)
    patterns: tuple[str, ...] = ()

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self.key = store.key
        self.owner = store.owner
        #: our requests: request id -> the answers so far
        self._asked: dict[str, _Answers] = {}
        #: request ids of our broadcasts with acks: this prefix and the cluster's number
        self._acks_prefix = f"{self.owner}:acks:"

    # -- what a format defines --------------------------------------------------------------

    def namespace_channels(self, nsp: str) -> list[str]:
        """The channels to read while we have namespace ``nsp``."""
        raise NotImplementedError

    def on_message(self, channel: str, data: bytes) -> bool:
        """Handle what arrived on ``channel`` if it is one of ours; False if it is not."""
        raise NotImplementedError

    def publish(self, envelope: Envelope) -> None:
        """A JS_KINDS envelope to every server."""
        raise NotImplementedError

    def respond(self, envelope: Envelope) -> None:
        """CLIENT_COUNT or CLIENT_ACK to the JS-format server named by its target."""
        raise NotImplementedError

    async def count_servers(self, nsp: str) -> int:
        raise NotImplementedError

    def _request(self, kind: Kind, payload: dict[str, Any],
                 request_id: str) -> tuple[str, bytes, str]:
        """Our FETCH_SOCKETS or SERVER_SIDE_EMIT request: (channel, message, the field of
        the answers that carries the result)."""
        raise NotImplementedError

    # -- shared -----------------------------------------------------------------------------

    def pack(self, value: Any) -> bytes:
        return js_pack(value, self.store.pack)

    async def ask_servers(self, kind: Kind, payload: dict[str, Any], timeout: float) -> list[Any]:
        expected = await self.count_servers(payload["nsp"])
        if expected == 0:
            return []
        request_id = f"{self.owner}:{next(self.store._ids)}"
        channel, message, field = self._request(kind, payload, request_id)
        asked = _Answers(expected, field)
        self._asked[request_id] = asked
        try:
            self.store._enqueue(channel, message)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(asked.done), timeout)
            return list(asked.answers)
        finally:
            del self._asked[request_id]

    def _answer(self, kind: Kind, payload: Any, channel: str,
                answer: Callable[[Any], dict[str, Any]]) -> None:
        """Run a JavaScript-format request through our handlers; publish the answer."""
        handler = self.store._handlers.get(kind)
        if handler is None:
            return
        store = self.store

        async def run() -> None:
            result = handler(Envelope(kind, "js", payload))
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                result = await result
            store._enqueue(channel, self.pack(answer(result)))

        task = asyncio.get_running_loop().create_task(run())
        store._tasks.add(task)
        task.add_done_callback(store._tasks.discard)

    def _server_side_emit(self, origin: str, payload: dict[str, Any], request_id: Any,
                          channel: str, answer: Callable[[Any], dict[str, Any]]) -> None:
        """A server-side emit: delivered as is, or, when it asks for acks, answered."""
        if request_id is None:
            self.store.deliver(Envelope(Kind.SERVER_SIDE_EMIT, origin, payload))
        else:
            self._answer(Kind.SERVER_SIDE_EMIT, payload, channel, answer)

    def _answered(self, request_id: str, response: dict[str, Any]) -> bool:
        """An answer to one of our requests (False: not ours)."""
        asked = self._asked.get(request_id)
        if asked is None:
            return False
        asked.add(response)
        return True

    def _broadcast_request(self, request_id: str) -> int | None:
        """The cluster's number of our broadcast with acks that ``request_id`` names."""
        if request_id.startswith(self._acks_prefix):
            number = request_id[len(self._acks_prefix):]
            if number.isdigit():
                return int(number)
        return None

    def _client_count(self, request_id: str, count: Any) -> None:
        request = self._broadcast_request(request_id)
        if request is not None and isinstance(count, int):
            self.store.deliver(Envelope(Kind.CLIENT_COUNT, JS, {"req": request,
                                                                "count": count}))

    def _client_ack(self, request_id: str, packet: Any) -> None:
        # the JavaScript adapters pass on a client's first ack argument only
        request = self._broadcast_request(request_id)
        if request is not None:
            self.store.deliver(Envelope(Kind.CLIENT_ACK, JS, {"req": request,
                                                              "args": [packet]}))


class ClassicFormat(AdapterFormat):
    """``createAdapter`` of @socket.io/redis-adapter (classic pub/sub)."""

    def __init__(self, store: RedisStore) -> None:
        super().__init__(store)
        self.patterns = (f"{self.key}#*", f"{self.key}-response#*")
        self._request_prefix = f"{self.key}-request#"
        self._response_prefix = f"{self.key}-response#"
        self._broadcast_prefix = f"{self.key}#"

    def namespace_channels(self, nsp: str) -> list[str]:
        return [self._request_channel(nsp)]

    def _request_channel(self, nsp: str) -> str:
        return request_channel(self.key, nsp)

    def on_message(self, channel: str, data: bytes) -> bool:
        if channel.startswith(self._request_prefix):
            self._on_request(data, channel[len(self._request_prefix):-1])
        elif channel.startswith(self._response_prefix):
            self._on_response(data)
        elif channel.startswith(self._broadcast_prefix):
            self._on_broadcast(data)
        else:
            return False
        return True

    def _on_broadcast(self, data: bytes) -> None:
        item = self.store.unpack(data)
        if not isinstance(item, list) or len(item) != 3:
            return
        uid, packet, opts = item
        if uid == self.owner or not isinstance(packet, dict):
            return
        packet.setdefault("nsp", "/")
        self.store.deliver(Envelope(Kind.BROADCAST, JS + str(uid),
                                    {"packet": packet, "opts": opts}))

    def _on_request(self, data: bytes, channel_nsp: str) -> None:
        request = decode_message(data, self.store.unpack)
        if not isinstance(request, dict) or request.get("uid") == self.owner:
            return
        rtype = request.get("type")
        opts = request.get("opts")
        origin = JS + str(request.get("uid"))
        request_id = request.get("requestId")
        deliver = self.store.deliver
        response_channel = f"{self._response_prefix}{channel_nsp}#"
        if rtype == BROADCAST:
            packet = request.get("packet")
            if isinstance(packet, dict):
                nsp = packet.get("nsp", "/")
                deliver(Envelope(Kind.BROADCAST_ACKS, origin,
                                 {"packet": packet, "opts": opts, "req": request_id,
                                  "nsp": nsp}))
            return
        if rtype == REMOTE_JOIN and opts is not None:
            deliver(Envelope(Kind.SOCKETS_JOIN, origin,
                             {"nsp": channel_nsp, "opts": opts, "rooms": request.get("rooms")}))
        elif rtype == REMOTE_LEAVE and opts is not None:
            deliver(Envelope(Kind.SOCKETS_LEAVE, origin,
                             {"nsp": channel_nsp, "opts": opts, "rooms": request.get("rooms")}))
        elif rtype == REMOTE_DISCONNECT and opts is not None:
            deliver(Envelope(Kind.DISCONNECT_SOCKETS, origin,
                             {"nsp": channel_nsp, "opts": opts,
                              "close": bool(request.get("close"))}))
        elif rtype == SERVER_SIDE_EMIT:
            self._server_side_emit(origin, {"nsp": channel_nsp, "data": request.get("data")},
                                   request_id, response_channel,
                                   lambda answer: {"type": SERVER_SIDE_EMIT,
                                                   "requestId": request_id, "data": answer})
        elif rtype == REMOTE_FETCH and request_id is not None:
            self._answer(Kind.FETCH_SOCKETS, {"nsp": channel_nsp, "opts": opts},
                         response_channel,
                         lambda sockets: {"requestId": request_id, "sockets": sockets or []})
        elif rtype in (SOCKETS, ALL_ROOMS) and request_id is not None:
            self._answer(Kind.FETCH_SOCKETS,
                         {"nsp": channel_nsp,
                          "opts": {"rooms": request.get("rooms") or [], "except": []}},
                         response_channel,
                         lambda sockets: _sockets_or_rooms(rtype, request_id, sockets or []))

    def _on_response(self, data: bytes) -> None:
        # every server's answers to every request share the channel: ours are known by
        # their request id, the rest are not for us
        response = decode_message(data, self.store.unpack)
        if not isinstance(response, dict) or not isinstance(response.get("requestId"), str):
            return
        request_id: str = response["requestId"]
        if self._answered(request_id, response):
            return
        rtype = response.get("type")
        if rtype == BROADCAST_CLIENT_COUNT:
            self._client_count(request_id, response.get("clientCount"))
        elif rtype == BROADCAST_ACK:
            self._client_ack(request_id, response.get("packet"))

    def publish(self, envelope: Envelope) -> None:
        payload = envelope.payload if isinstance(envelope.payload, dict) else {}
        kind = envelope.kind
        enqueue = self.store._enqueue
        if kind is Kind.BROADCAST:
            packet = dict(payload.get("packet") or {})
            packet.pop("id", None)
            opts = payload.get("opts") or {}
            channel = broadcast_channel(self.key, packet.get("nsp", "/"), opts.get("rooms") or [])
            enqueue(channel, self.store.pack([self.owner, packet, opts]))
            return
        if kind is Kind.BROADCAST_ACKS:
            # every server of the namespace answers on the response channel: its client
            # count, then each ack (see _on_response); the ack id is each server's own
            packet = dict(payload.get("packet") or {})
            packet.pop("id", None)
            opts = payload.get("opts") or {}
            enqueue(self._request_channel(packet.get("nsp", "/")), self.store.pack(
                {"uid": self.owner, "requestId": f"{self._acks_prefix}{payload.get('req')}",
                 "type": BROADCAST, "packet": packet,
                 "opts": {"rooms": opts.get("rooms", []), "except": opts.get("except", []),
                          "flags": opts.get("flags") or {}}}))
            return
        nsp = payload.get("nsp", "/")
        opts = payload.get("opts") or {}
        js_opts = {"rooms": opts.get("rooms", []), "except": opts.get("except", [])}
        if kind is Kind.SOCKETS_JOIN or kind is Kind.SOCKETS_LEAVE:
            request = {"uid": self.owner,
                       "type": REMOTE_JOIN if kind is Kind.SOCKETS_JOIN else REMOTE_LEAVE,
                       "opts": js_opts, "rooms": payload.get("rooms", [])}
        elif kind is Kind.DISCONNECT_SOCKETS:
            request = {"uid": self.owner, "type": REMOTE_DISCONNECT, "opts": js_opts,
                       "close": bool(payload.get("close"))}
        else:  # SERVER_SIDE_EMIT without ack
            request = {"uid": self.owner, "type": SERVER_SIDE_EMIT,
                       "data": payload.get("data", [])}
        enqueue(self._request_channel(nsp), json_pack(request))

    def respond(self, envelope: Envelope) -> None:
        payload = envelope.payload if isinstance(envelope.payload, dict) else {}
        channel = f"{self._response_prefix}{payload.get('nsp', '/')}#"
        if envelope.kind is Kind.CLIENT_COUNT:
            self.store._enqueue(channel, json_pack({"type": BROADCAST_CLIENT_COUNT,
                                                    "requestId": payload.get("req"),
                                                    "clientCount": payload.get("count", 0)}))
        elif envelope.kind is Kind.CLIENT_ACK:
            args = payload.get("args") or []
            self.store._enqueue(channel, self.store.pack(
                {"type": BROADCAST_ACK, "requestId": payload.get("req"),
                 "packet": args[0] if len(args) == 1 else args}))

    async def count_servers(self, nsp: str) -> int:
        """Every server of the namespace (a JavaScript one, or a sio_core worker) subscribes
        to its request channel: PUBSUB NUMSUB, less ourselves (the JavaScript adapter's
        serverCount)."""
        [(_, subscribers)] = await self.store.command(
            self.store.cmd.pubsub_numsub(self._request_channel(nsp)))
        return max(0, int(subscribers) - 1)

    def _request(self, kind: Kind, payload: dict[str, Any],
                 request_id: str) -> tuple[str, bytes, str]:
        request: dict[str, Any] = {"uid": self.owner, "requestId": request_id}
        if kind is Kind.FETCH_SOCKETS:
            opts = payload["opts"]
            request.update(type=REMOTE_FETCH, opts={"rooms": opts["rooms"],
                                                    "except": opts["except"]})
            field = "sockets"
        else:
            request.update(type=SERVER_SIDE_EMIT, data=payload["data"])
            field = "data"
        return self._request_channel(payload["nsp"]), self.pack(request), field


class ShardedFormat(AdapterFormat):
    """``createShardedAdapter`` of @socket.io/redis-adapter (Redis 7 sharded pub/sub)."""

    def __init__(self, store: RedisStore) -> None:
        super().__init__(store)
        self._prefix = f"{self.key}#"

    def _channel(self, nsp: str) -> str:
        return f"{self._prefix}{nsp}#"

    def namespace_channels(self, nsp: str) -> list[str]:
        channel = self._channel(nsp)
        return [channel, f"{channel}{self.owner}#"]

    def _message(self, mtype: int, nsp: str, data: dict[str, Any]) -> bytes:
        return self.pack({"uid": self.owner, "nsp": nsp, "type": mtype, "data": data})

    def on_message(self, channel: str, data: bytes) -> bool:
        if not channel.startswith(self._prefix):
            return False
        message = decode_message(data, self.store.unpack)
        if not isinstance(message, dict) or message.get("uid") == self.owner:
            return True
        nsp, mtype, body = message.get("nsp"), message.get("type"), message.get("data")
        if not isinstance(nsp, str) or not isinstance(body, dict):
            return True  # a heartbeat, or not a message at all
        request_id = body.get("requestId")
        if mtype in (C_FETCH_SOCKETS_RESPONSE, C_SERVER_SIDE_EMIT_RESPONSE):
            if isinstance(request_id, str):
                self._answered(request_id, body)
        elif mtype == C_BROADCAST_CLIENT_COUNT:
            if isinstance(request_id, str):
                self._client_count(request_id, body.get("clientCount"))
        elif mtype == C_BROADCAST_ACK:
            if isinstance(request_id, str):
                self._client_ack(request_id, body.get("packet"))
        else:
            self._on_request(JS + str(message.get("uid")), nsp, mtype, body, request_id)
        return True

    def _on_request(self, origin: str, nsp: str, mtype: Any, body: dict[str, Any],
                    request_id: Any) -> None:
        deliver = self.store.deliver
        opts = body.get("opts")
        # the answer goes to the asker's own channel
        reply_to = f"{self._channel(nsp)}{origin[len(JS):]}#"
        if mtype == C_BROADCAST:
            packet = body.get("packet")
            if not isinstance(packet, dict):
                return
            packet.setdefault("nsp", nsp)
            if request_id is None:
                deliver(Envelope(Kind.BROADCAST, origin, {"packet": packet, "opts": opts}))
            else:
                deliver(Envelope(Kind.BROADCAST_ACKS, origin,
                                 {"packet": packet, "opts": opts, "req": request_id,
                                  "nsp": nsp}))
        elif mtype in (C_SOCKETS_JOIN, C_SOCKETS_LEAVE) and opts is not None:
            kind = Kind.SOCKETS_JOIN if mtype == C_SOCKETS_JOIN else Kind.SOCKETS_LEAVE
            deliver(Envelope(kind, origin, {"nsp": nsp, "opts": opts,
                                            "rooms": body.get("rooms")}))
        elif mtype == C_DISCONNECT_SOCKETS and opts is not None:
            deliver(Envelope(Kind.DISCONNECT_SOCKETS, origin,
                             {"nsp": nsp, "opts": opts, "close": bool(body.get("close"))}))
        elif mtype == C_FETCH_SOCKETS and request_id is not None:
            self._answer(Kind.FETCH_SOCKETS, {"nsp": nsp, "opts": opts}, reply_to,
                         lambda sockets: {"uid": self.owner, "nsp": nsp,
                                          "type": C_FETCH_SOCKETS_RESPONSE,
                                          "data": {"requestId": request_id,
                                                   "sockets": sockets or []}})
        elif mtype == C_SERVER_SIDE_EMIT:
            self._server_side_emit(origin, {"nsp": nsp, "data": body.get("packet")},
                                   request_id, reply_to,
                                   lambda answer: {"uid": self.owner, "nsp": nsp,
                                                   "type": C_SERVER_SIDE_EMIT_RESPONSE,
                                                   "data": {"requestId": request_id,
                                                            "packet": answer}})

    def publish(self, envelope: Envelope) -> None:
        payload = envelope.payload if isinstance(envelope.payload, dict) else {}
        kind = envelope.kind
        opts = payload.get("opts") or {}
        flags = {name: value for name, value in (opts.get("flags") or {}).items() if value}
        js_opts = {"rooms": opts.get("rooms", []), "except": opts.get("except", []),
                   "flags": flags}
        if kind is Kind.BROADCAST or kind is Kind.BROADCAST_ACKS:
            packet = dict(payload.get("packet") or {})
            packet.pop("id", None)  # with acks, each server numbers its own
            nsp = packet.get("nsp", "/")
            data: dict[str, Any] = {"packet": packet, "opts": js_opts}
            if kind is Kind.BROADCAST_ACKS:
                data["requestId"] = f"{self._acks_prefix}{payload.get('req')}"
            mtype = C_BROADCAST
        else:
            nsp = payload.get("nsp", "/")
            if kind is Kind.SOCKETS_JOIN or kind is Kind.SOCKETS_LEAVE:
                mtype = C_SOCKETS_JOIN if kind is Kind.SOCKETS_JOIN else C_SOCKETS_LEAVE
                data = {"opts": js_opts, "rooms": payload.get("rooms", [])}
            elif kind is Kind.DISCONNECT_SOCKETS:
                mtype = C_DISCONNECT_SOCKETS
                data = {"opts": js_opts, "close": bool(payload.get("close"))}
            else:  # SERVER_SIDE_EMIT without ack
                mtype = C_SERVER_SIDE_EMIT
                data = {"packet": payload.get("data", [])}
        self.store._enqueue(self._channel(nsp), self._message(mtype, nsp, data))

    def respond(self, envelope: Envelope) -> None:
        payload = envelope.payload if isinstance(envelope.payload, dict) else {}
        nsp = payload.get("nsp", "/")
        channel = f"{self._channel(nsp)}{(envelope.target or '')[len(JS):]}#"
        if envelope.kind is Kind.CLIENT_COUNT:
            self.store._enqueue(channel, self._message(
                C_BROADCAST_CLIENT_COUNT, nsp,
                {"requestId": payload.get("req"), "clientCount": payload.get("count", 0)}))
        elif envelope.kind is Kind.CLIENT_ACK:
            args = payload.get("args") or []
            self.store._enqueue(channel, self._message(
                C_BROADCAST_ACK, nsp,
                {"requestId": payload.get("req"), "packet": args[0] if len(args) == 1 else args}))

    async def count_servers(self, nsp: str) -> int:
        """Every server of the namespace reads its channel: PUBSUB SHARDNUMSUB there (on the
        master of its slot), less ourselves (the sharded adapter's serverCount)."""
        channel = self._channel(nsp)
        [(_, subscribers)] = await self.store.command(self.store.cmd.pubsub_shardnumsub(
            channel, **self.store.shard_target(channel)))
        return max(0, int(subscribers) - 1)

    def _request(self, kind: Kind, payload: dict[str, Any],
                 request_id: str) -> tuple[str, bytes, str]:
        nsp = payload["nsp"]
        if kind is Kind.FETCH_SOCKETS:
            opts = payload["opts"]
            message = self._message(C_FETCH_SOCKETS, nsp, {
                "opts": {"rooms": opts["rooms"], "except": opts["except"]},
                "requestId": request_id})
            return self._channel(nsp), message, "sockets"
        message = self._message(C_SERVER_SIDE_EMIT, nsp,
                                {"packet": payload["data"], "requestId": request_id})
        return self._channel(nsp), message, "packet"


class _Answers:
    """The answers to one request of ours: done when every server counted has answered
    (each answer counts, as in the JavaScript adapter, even one without the field)."""

    def __init__(self, expected: int, field: str) -> None:
        self.expected = expected
        self.field = field
        self.answers: list[Any] = []
        self.count = 0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def add(self, response: dict[str, Any]) -> None:
        if self.done.done():
            return
        self.count += 1
        if self.field in response:
            self.answers.append(response[self.field])
        if self.count >= self.expected:
            self.done.set_result(None)


def _sockets_or_rooms(rtype: Any, request_id: Any, sockets: list[Any]) -> dict[str, Any]:
    if rtype == SOCKETS:
        return {"requestId": request_id, "sockets": [s.get("id") for s in sockets
                                                      if isinstance(s, dict)]}
    rooms: set[str] = set()
    for s in sockets:
        if isinstance(s, dict):
            rooms.update(r for r in s.get("rooms") or [] if isinstance(r, str))
    return {"requestId": request_id, "rooms": sorted(rooms)}
