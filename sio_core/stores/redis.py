"""RedisStore: workers on many machines, meeting through Redis.

How this works:

- **Our envelopes** (forwarding to a session's owner, cluster requests between sio_core
  workers) travel on ``<key>-sio#all#`` (to everyone) and ``<key>-sio#<owner>#`` (to one
  worker), packed by ``pack``/``unpack`` (msgpack by default, JSON on request).
- **The JavaScript adapter's wire format** (``@socket.io/redis-adapter`` 8 and
  ``@socket.io/redis-emitter``) for what a mixed fleet shares: broadcasts are published and
  received as ``[uid, packet, {rooms, except, flags}]`` on ``<key>#<nsp>#[<room>#]``;
  join/leave/disconnect and server-side emits as requests on ``<key>-request#<nsp>#``;
  and requests from JavaScript servers (fetchSockets, broadcasts with acks, server-side
  emits with acks) are answered on ``<key>-response#<nsp>#``. We subscribe to each local
  namespace's request channel by name, so the JavaScript servers' NUMSUB counts us and
  waits for our answers; we give them. Our own such requests (fetch_sockets, broadcasts
  with acks, server-side emits with acks) go the same way, to every server of the
  namespace, JavaScript or sio_core alike: counted as the JavaScript adapter counts them
  (PUBSUB NUMSUB of the request channel, less ourselves), asked in its format, and their
  answers picked off the response channels by request id.
- **Peers** are a sorted set ``<key>-sio:peers`` (owner -> expiry), refreshed by every
  worker's heartbeat.
- **Resilience**: three clients (pub, sub, commands), given ready-made or built from the URL.
  Redis pub/sub keeps nothing for a subscriber that is away, so every moment the
  subscription is down loses what the other nodes publish meanwhile: when it drops (Redis
  restarted, ``CLIENT KILL TYPE pubsub``) it is made again at once, then with a backoff
  bounded by ``reconnect_backoff_max``; the subscriber built from the URL does no retries
  of its own (redis-py's default retries for up to seconds, silently, before an error
  shows). Outgoing messages go through one bounded queue (order kept); a publish that
  fails (Redis down) is dropped, and when the queue is full new messages are dropped, never
  buffered without bound. :attr:`health` counts it all: publishes failed, messages dropped
  from the queue, the seconds the subscription was down, the reconnects.
  Everything from the bus is untrusted: decoded with size limits, never with pickle.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgpack
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from .base import MAX_ENVELOPE, Envelope, Kind, Store

logger = logging.getLogger("sio_core.redis")

Pack = Callable[[Any], bytes]
Unpack = Callable[[bytes], Any]

# request types of @socket.io/redis-adapter
SOCKETS, ALL_ROOMS, REMOTE_JOIN, REMOTE_LEAVE, REMOTE_DISCONNECT, REMOTE_FETCH, \
    SERVER_SIDE_EMIT, BROADCAST, BROADCAST_CLIENT_COUNT, BROADCAST_ACK = range(10)

#: prefix of origins that are JavaScript servers (answers go to their response channel)
JS = "js:"


def msgpack_pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def msgpack_unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def json_pack(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def json_unpack(data: bytes) -> Any:
    return json.loads(data)


def _decode_request(data: bytes, unpack: Unpack) -> Any:
    # the JavaScript adapter sends JSON (starts with "{") or its parser's encoding
    if data[:1] == b"{":
        return json.loads(data)
    return unpack(data)


#: The command client's pool (when no command_client is given): at most this many
#: connections, and a command waits at most COMMAND_WAIT seconds for a free one. Commands
#: come in bursts (a PUBSUB NUMSUB per fetch_sockets or broadcast with acks), and redis-py's
#: default pool raises MaxConnectionsError past 100 at once instead of waiting.
COMMAND_CONNECTIONS = 32
COMMAND_WAIT = 10.0


async def _bounded(step: Awaitable[Any], timeout: float) -> None:
    """Run one close step; its errors and a timeout only end it."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(step, timeout)


class RedisStore(Store):
    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, node_id: str | None = None,
                 owner: str | None = None, key: str = "socket.io",
                 pub_client: aioredis.Redis | None = None,
                 sub_client: aioredis.Redis | None = None,
                 command_client: aioredis.Redis | None = None,
                 client_options: dict[str, Any] | None = None,
                 pack: Pack = msgpack_pack, unpack: Unpack = msgpack_unpack,
                 heartbeat: float = 2.0, queue_limit: int = 10_000,
                 reconnect_backoff_max: float = 1.0, close_timeout: float = 5.0) -> None:
        super().__init__(owner or node_id or secrets.token_hex(3))
        self.url = url
        self.key = key
        self.pack, self.unpack = pack, unpack
        options = {"socket_connect_timeout": 5, **(client_options or {})}
        # a publish is tried twice (a killed connection is made again), then counted lost;
        # the subscriber not at all: its loss is this store's to see, count and repair
        self.pub = pub_client or aioredis.Redis.from_url(
            url, **{"retry": Retry(NoBackoff(), 1), **options})
        self.sub = sub_client or aioredis.Redis.from_url(
            url, **{"retry": Retry(NoBackoff(), 0), **options})
        self.cmd = command_client or aioredis.Redis.from_pool(
            aioredis.BlockingConnectionPool.from_url(
                url, max_connections=COMMAND_CONNECTIONS, timeout=COMMAND_WAIT, **options))
        #: peers refresh their entry this often; it expires after three (see _beat)
        self.heartbeat = heartbeat
        #: the longest wait between two attempts to resubscribe (the first is at once):
        #: while Redis is down, one attempt a second costs nothing, and the subscription is
        #: back at most that long after Redis is
        self.reconnect_backoff_max = reconnect_backoff_max
        #: the longest each step of close() may take: a Redis that does not answer, or a
        #: client call that swallows a cancellation, cannot make a shutdown hang
        self.close_timeout = close_timeout
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(queue_limit)
        self._tasks_run: list[asyncio.Task[None]] = []
        self._pubsub: Any = None
        self._namespaces: set[str] = {"/"}
        self._closing = False
        # health (see the health property)
        self._connected = False
        self._reconnects = 0
        self._publish_failed = 0
        self._queue_dropped = 0
        self._down_seconds = 0.0
        self._down_since: float | None = None
        self._last_error: str | None = None
        self._all = f"{key}-sio#all#"
        self._mine = f"{key}-sio#{self.owner}#"
        #: our requests in the JavaScript format: request id -> the answers so far
        self._asked: dict[str, _Answers] = {}
        #: request ids of our broadcasts with acks: this prefix and the cluster's number
        self._acks_prefix = f"{self.owner}:acks:"
        self._peers_key = f"{key}-sio:peers"

    # -- life -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (raises ConnectionError naming the URL if Redis cannot be reached)."""
        try:
            await self.cmd.ping()
        except Exception as exc:
            raise ConnectionError(f"cannot reach Redis at {self.url}: {exc}") from exc
        await self._subscribe()
        await self._beat()
        # tell the others now, not at their next heartbeat: until they know us, they answer
        # "unknown session" to requests for our sessions that land on them
        self._transmit(Envelope(Kind.PEERS, self.owner))
        loop = asyncio.get_running_loop()
        self._tasks_run = [loop.create_task(self._read_loop()),
                           loop.create_task(self._write_loop()),
                           loop.create_task(self._beat_loop())]
        self._connected = True

    @property
    def health(self) -> dict[str, Any]:
        """For /_sio_core/health: what Redis outages cost this node."""
        down = self._down_seconds
        if self._down_since is not None:
            down += time.monotonic() - self._down_since
        return {"connected": self._connected, "reconnects": self._reconnects,
                "subscriber_down_seconds": round(down, 3),
                "publish_failed": self._publish_failed, "queue_dropped": self._queue_dropped,
                "dropped": self._publish_failed + self._queue_dropped,
                "queued": self._queue.qsize(), "last_error": self._last_error}

    async def close(self) -> None:
        """Stop the loops, take this node out of the peers, close the clients.
        Every step is bounded (close_timeout)."""
        self._closing = True
        for task in self._tasks_run:
            task.cancel()
        if self._tasks_run:
            _, pending = await asyncio.wait(self._tasks_run, timeout=self.close_timeout)
            if pending:
                logger.warning("%d Redis store task(s) did not stop", len(pending))

        await _bounded(self.cmd.zrem(self._peers_key, self.owner), self.close_timeout)
        if self._pubsub is not None:
            await _bounded(self._pubsub.aclose(), self.close_timeout)
        for client in {id(c): c for c in (self.pub, self.sub, self.cmd)}.values():
            await _bounded(client.aclose(), self.close_timeout)
        await super().close()

    def add_namespace(self, name: str) -> None:
        """Answer the JavaScript servers' requests for this namespace too."""
        if name not in self._namespaces:
            self._namespaces.add(name)
            if self._pubsub is not None:
                asyncio.get_running_loop().create_task(self._follow_requests(name, True))

    def remove_namespace(self, name: str) -> None:
        """The namespace is gone (an empty dynamic child): stop listening for it, as the
        JavaScript adapter's close() does."""
        if name != "/" and name in self._namespaces:
            self._namespaces.discard(name)
            if self._pubsub is not None:
                asyncio.get_running_loop().create_task(self._follow_requests(name, False))

    async def _follow_requests(self, name: str, follow: bool) -> None:
        channel = self._request_channel(name)
        with contextlib.suppress(Exception):
            if follow:
                await self._pubsub.subscribe(channel)
            else:
                await self._pubsub.unsubscribe(channel)

    async def _subscribe(self) -> None:
        pubsub = self.sub.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self._all, self._mine,
                               *[self._request_channel(n) for n in self._namespaces])
        await pubsub.psubscribe(f"{self.key}#*", f"{self.key}-response#*")
        self._pubsub = pubsub

    def _request_channel(self, nsp: str) -> str:
        return f"{self.key}-request#{nsp}#"

    # -- reading ----------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        while not self._closing:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._resubscribe(exc)
                continue
            if message is not None:
                self._on_message(message)

    async def _resubscribe(self, exc: Exception) -> None:
        """The subscription is lost: make it again, at once and then with a bounded
        backoff, until it is back (or the store closes)."""
        self._connected = False
        self._down_since = down_since = time.monotonic()
        self._last_error = str(exc)
        logger.warning("Redis subscription lost (%s); resubscribing", exc)
        delay = 0.0
        while not self._closing:
            if delay:
                await asyncio.sleep(delay)
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
            try:
                await self._subscribe()
                break
            except Exception as again:
                self._last_error = str(again)
                delay = min(max(2 * delay, 0.05), self.reconnect_backoff_max)
        else:
            return
        down = time.monotonic() - down_since
        self._down_seconds += down
        self._down_since = None
        self._connected = True
        self._reconnects += 1
        logger.warning("Redis subscription restored (reconnect #%d) after %.3fs",
                       self._reconnects, down)
        with contextlib.suppress(Exception):
            await self._beat()  # the peers may have changed meanwhile

    def _on_message(self, message: dict[str, Any]) -> None:
        channel = message.get("channel")
        data = message.get("data")
        if isinstance(channel, bytes):
            channel = channel.decode("utf-8", "replace")
        if not isinstance(channel, str) or not isinstance(data, bytes):
            return
        if len(data) > MAX_ENVELOPE:
            return
        try:
            if channel == self._all or channel == self._mine:
                envelope = self._unpack_envelope(data)
                if envelope is None or envelope.origin == self.owner:
                    pass
                elif envelope.kind is Kind.PEERS:  # a worker announcing itself
                    if envelope.origin not in self.peers:
                        self._set_peers([*self.peers, envelope.origin])
                else:
                    self.deliver(envelope)
            elif channel.startswith(f"{self.key}-request#"):
                self._on_js_request(data, channel[len(self.key) + len("-request#"):-1])
            elif channel.startswith(f"{self.key}-response#"):
                self._on_js_response(data)
            elif channel.startswith(f"{self.key}#"):
                self._on_js_broadcast(data)
        except Exception:
            logger.debug("dropped a malformed message on %s", channel, exc_info=True)

    def _unpack_envelope(self, data: bytes) -> Envelope | None:
        if self.unpack is msgpack_unpack:
            return Envelope.unpack(data)
        try:
            item = self.unpack(data)
            return Envelope.unpack(msgpack_pack(item))
        except Exception:
            return None

    # -- the JavaScript adapter's messages --------------------------------------------------

    def _on_js_broadcast(self, data: bytes) -> None:
        item = self.unpack(data)
        if not isinstance(item, list) or len(item) != 3:
            return
        uid, packet, opts = item
        if uid == self.owner or not isinstance(packet, dict):
            return
        packet.setdefault("nsp", "/")
        self.deliver(Envelope(Kind.BROADCAST, JS + str(uid), {"packet": packet, "opts": opts}))

    def _on_js_request(self, data: bytes, channel_nsp: str) -> None:
        request = _decode_request(data, self.unpack)
        if not isinstance(request, dict) or request.get("uid") == self.owner:
            return
        rtype = request.get("type")
        opts = request.get("opts")
        origin = JS + str(request.get("uid"))
        request_id = request.get("requestId")
        if rtype == BROADCAST:
            packet = request.get("packet")
            if isinstance(packet, dict):
                nsp = packet.get("nsp", "/")
                self.deliver(Envelope(Kind.BROADCAST_ACKS, origin,
                                      {"packet": packet, "opts": opts, "req": request_id,
                                       "nsp": nsp}))
            return
        if rtype == REMOTE_JOIN and opts is not None:
            self.deliver(Envelope(Kind.SOCKETS_JOIN, origin,
                                  {"nsp": channel_nsp, "opts": opts,
                                   "rooms": request.get("rooms")}))
        elif rtype == REMOTE_LEAVE and opts is not None:
            self.deliver(Envelope(Kind.SOCKETS_LEAVE, origin,
                                  {"nsp": channel_nsp, "opts": opts,
                                   "rooms": request.get("rooms")}))
        elif rtype == REMOTE_DISCONNECT and opts is not None:
            self.deliver(Envelope(Kind.DISCONNECT_SOCKETS, origin,
                                  {"nsp": channel_nsp, "opts": opts,
                                   "close": bool(request.get("close"))}))
        elif rtype == SERVER_SIDE_EMIT:
            payload = {"nsp": channel_nsp, "data": request.get("data")}
            if request_id is None:
                self.deliver(Envelope(Kind.SERVER_SIDE_EMIT, origin, payload))
            else:
                self._js_request(Kind.SERVER_SIDE_EMIT, payload, channel_nsp,
                                 lambda answer: {"type": SERVER_SIDE_EMIT,
                                                 "requestId": request_id, "data": answer})
        elif rtype == REMOTE_FETCH and request_id is not None:
            self._js_request(Kind.FETCH_SOCKETS, {"nsp": channel_nsp, "opts": opts},
                             channel_nsp,
                             lambda sockets: {"requestId": request_id,
                                              "sockets": sockets or []})
        elif rtype in (SOCKETS, ALL_ROOMS) and request_id is not None:
            self._js_request(Kind.FETCH_SOCKETS, {"nsp": channel_nsp,
                                                  "opts": {"rooms": request.get("rooms") or [],
                                                           "except": []}},
                             channel_nsp, lambda sockets: _sockets_or_rooms(
                                 rtype, request_id, sockets or []))

    def _js_request(self, kind: Kind, payload: Any, nsp: str,
                    answer: Callable[[Any], dict[str, Any]]) -> None:
        """Run a JavaScript server's request through our handlers; publish the answer."""
        handler = self._handlers.get(kind)
        if handler is None:
            return

        async def run() -> None:
            result = handler(Envelope(kind, "js", payload))
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                result = await result
            self._enqueue(f"{self.key}-response#{nsp}#", self._js_pack(answer(result)))

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_js_response(self, data: bytes) -> None:
        # every server's answers to every request share the channel: ours are known by
        # their request id, the rest are not for us
        response = _decode_request(data, self.unpack)
        if not isinstance(response, dict) or not isinstance(response.get("requestId"), str):
            return
        request_id: str = response["requestId"]
        asked = self._asked.get(request_id)
        if asked is not None:
            asked.add(response)
        elif request_id.startswith(self._acks_prefix):
            request = request_id[len(self._acks_prefix):]
            if not request.isdigit():
                return
            rtype, count = response.get("type"), response.get("clientCount")
            if rtype == BROADCAST_CLIENT_COUNT and isinstance(count, int):
                self.deliver(Envelope(Kind.CLIENT_COUNT, JS, {"req": int(request),
                                                              "count": count}))
            elif rtype == BROADCAST_ACK:
                # the JavaScript adapter passes on a client's first ack argument only
                self.deliver(Envelope(Kind.CLIENT_ACK, JS, {"req": int(request),
                                                            "args": [response.get("packet")]}))

    # -- requests of ours to every server of a namespace ------------------------------------

    async def count_servers(self, namespace: str) -> int:
        """Every server of the namespace (a JavaScript one, or a sio_core worker) subscribes
        to its request channel: PUBSUB NUMSUB, less ourselves (the JavaScript adapter's
        serverCount)."""
        [(_, subscribers)] = await self.cmd.pubsub_numsub(self._request_channel(namespace))
        return max(0, int(subscribers) - 1)

    async def ask_servers(self, kind: Kind, payload: dict[str, Any], timeout: float) -> list[Any]:
        nsp = payload["nsp"]
        expected = await self.count_servers(nsp)
        if expected == 0:
            return []
        request_id = f"{self.owner}:{next(self._ids)}"
        request: dict[str, Any] = {"uid": self.owner, "requestId": request_id}
        if kind is Kind.FETCH_SOCKETS:
            opts = payload["opts"]
            request.update(type=REMOTE_FETCH, opts={"rooms": opts["rooms"],
                                                    "except": opts["except"]})
        else:
            request.update(type=SERVER_SIDE_EMIT, data=payload["data"])
        asked = _Answers(expected, "sockets" if kind is Kind.FETCH_SOCKETS else "data")
        self._asked[request_id] = asked
        try:
            self._enqueue(self._request_channel(nsp), self._js_pack(request))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(asked.done), timeout)
            return list(asked.answers)
        finally:
            del self._asked[request_id]

    def _js_pack(self, value: Any) -> bytes:
        # JSON as the JavaScript adapter sends it; what JSON cannot carry (bytes) in the
        # parser's format, which it reads too (anything that does not start with "{")
        try:
            return json_pack(value)
        except (TypeError, ValueError):
            return self.pack(value)

    # -- writing ----------------------------------------------------------------------------

    def publish(self, kind: Kind, payload: Any) -> None:
        # always: JavaScript servers and emitters on the same Redis are not in self.peers
        self._transmit(Envelope(kind, self.owner, payload))

    def _transmit(self, envelope: Envelope) -> None:
        target = envelope.target
        if target is not None and target.startswith(JS):
            self._to_js(envelope)
            return
        if target is None and envelope.request_id is None and envelope.kind in _JS_KINDS:
            self._publish_js(envelope)
            return
        channel = self._all if target is None else f"{self.key}-sio#{target}#"
        data = envelope.pack() if self.pack is msgpack_pack else self.pack(
            [envelope.kind.value, envelope.origin, envelope.target, envelope.request_id,
             envelope.payload])
        self._enqueue(channel, data)

    def _publish_js(self, envelope: Envelope) -> None:
        payload = envelope.payload if isinstance(envelope.payload, dict) else {}
        kind = envelope.kind
        if kind is Kind.BROADCAST:
            packet = dict(payload.get("packet") or {})
            packet.pop("id", None)
            opts = payload.get("opts") or {}
            nsp = packet.get("nsp", "/")
            channel = f"{self.key}#{nsp}#"
            rooms = opts.get("rooms") or []
            if len(rooms) == 1:
                channel += f"{rooms[0]}#"
            self._enqueue(channel, self.pack([self.owner, packet, opts]))
            return
        if kind is Kind.BROADCAST_ACKS:
            # every server of the namespace answers on the response channel: its client
            # count, then each ack (see _on_js_response); the ack id is each server's own
            packet = dict(payload.get("packet") or {})
            packet.pop("id", None)
            opts = payload.get("opts") or {}
            self._enqueue(self._request_channel(packet.get("nsp", "/")), self.pack(
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
        self._enqueue(self._request_channel(nsp), json_pack(request))

    def _to_js(self, envelope: Envelope) -> None:
        payload = envelope.payload if isinstance(envelope.payload, dict) else {}
        nsp = payload.get("nsp", "/")
        channel = f"{self.key}-response#{nsp}#"
        if envelope.kind is Kind.CLIENT_COUNT:
            self._enqueue(channel, json_pack({"type": BROADCAST_CLIENT_COUNT,
                                              "requestId": payload.get("req"),
                                              "clientCount": payload.get("count", 0)}))
        elif envelope.kind is Kind.CLIENT_ACK:
            args = payload.get("args") or []
            self._enqueue(channel, self.pack({"type": BROADCAST_ACK,
                                              "requestId": payload.get("req"),
                                              "packet": args[0] if len(args) == 1 else args}))

    def _enqueue(self, channel: str, data: bytes) -> None:
        try:
            self._queue.put_nowait((channel, data))
        except asyncio.QueueFull:
            self._queue_dropped += 1
            if self._queue_dropped % 1000 == 1:
                logger.warning("Redis is not keeping up: %d messages dropped so far",
                               self._queue_dropped)

    async def _write_loop(self) -> None:
        while not self._closing:
            channel, data = await self._queue.get()
            try:
                await self.pub.publish(channel, data)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._publish_failed += 1
                self._last_error = str(exc)
                logger.debug("publish to %s failed: %s", channel, exc)
                await asyncio.sleep(0.05)  # Redis is down: do not spin

    # -- peers ------------------------------------------------------------------------------

    async def _beat(self) -> None:
        now = time.time()
        ttl = max(3 * self.heartbeat, 5.0)
        pipe = self.cmd.pipeline(transaction=False)
        pipe.zadd(self._peers_key, {self.owner: now + ttl})
        pipe.zremrangebyscore(self._peers_key, "-inf", now)
        pipe.zrangebyscore(self._peers_key, now, "+inf")
        results = await pipe.execute()
        owners = [o.decode() if isinstance(o, bytes) else str(o) for o in results[-1]]
        if set(owners) - {self.owner} != self.peers:
            self._set_peers(owners)

    async def _beat_loop(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.heartbeat)
            try:
                await self._beat()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._last_error = str(exc)


_JS_KINDS = frozenset({Kind.BROADCAST, Kind.BROADCAST_ACKS, Kind.SOCKETS_JOIN,
                       Kind.SOCKETS_LEAVE, Kind.DISCONNECT_SOCKETS, Kind.SERVER_SIDE_EMIT})


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
