"""RedisStore: workers on many machines, meeting through Redis.

How this works:

- **Where**: one Redis server, the master that Redis Sentinels name, or a Redis Cluster
  (see :mod:`~sio_core.stores.redis_url` for the URL forms and
  :mod:`~sio_core.stores.redis_topology` for the clients of each). On a Cluster, keys go to
  the node of their hash slot (the cluster client routes each command), and pub/sub is
  Redis 7's sharded pub/sub (SPUBLISH/SSUBSCRIBE): a channel lives on the master of its
  slot, where classic pub/sub would copy every message to every node of the cluster.
- **Our envelopes** (forwarding to a session's owner, metrics between workers) travel on
  ``<key>-sio#all#`` (to everyone) and ``<key>-sio#<owner>#`` (to one worker), packed by
  ``pack``/``unpack`` (msgpack by default, JSON on request). What one worker sends another
  goes on one channel, so it arrives in order on a Cluster too.
- **Channels of a layer above**: the Socket.IO layer speaks the JavaScript adapter's wire
  format on channels of its own (sio_core/socketio/redis_adapter.py), so that JavaScript
  servers share the cluster. The store only carries it: :meth:`RedisStore.follow` /
  :meth:`~RedisStore.unfollow` add channels to the subscription (kept across
  resubscriptions), :meth:`~RedisStore.tap` names who reads what arrives on them (and the
  patterns it reads), :meth:`~RedisStore.publish_raw` publishes through the store's queue.
- **Peers** are a sorted set ``<key>-sio:peers`` (owner -> expiry), refreshed by every
  worker's heartbeat.
- **Resilience**: three clients (pub, sub, commands), given ready-made or built from the URL.
  Redis pub/sub keeps nothing for a subscriber that is away, so every moment the
  subscription is down loses what the other nodes publish meanwhile: when it drops (Redis
  restarted, ``CLIENT KILL TYPE pubsub``, a Sentinel failover, a Cluster slot moved) it is
  made again at once, then with a backoff bounded by ``reconnect_backoff_max``; the
  subscriber built from the URL does no retries of its own (redis-py's default retries for
  up to seconds, silently, before an error shows). Outgoing messages go through one
  bounded queue (order kept); a publish that fails (Redis down) is dropped, and when the
  queue is full new messages are dropped, never buffered without bound. Commands in flight
  are bounded (``max_commands``): a burst waits rather than fails. :attr:`health` counts it
  all: publishes failed, messages dropped from the queue, the seconds the subscription was
  down, the reconnects.
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
from typing import Any, TypeVar

import msgpack
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from .base import MAX_ENVELOPE, BadMessage, BusKind, Envelope, Store
from .log import LogLimits
from .redis_log import RedisLog
from .redis_topology import (
    PubSubSubscription,
    ShardedSubscription,
    Subscription,
    build_clients,
    watch_failovers,
)
from .redis_url import SUBSCRIPTION_MODES, Mode, parse
from .redis_wire import Wire, open_wire, publish

__all__ = ["Pack", "RedisStore", "Tap", "Unpack", "json_unpack", "msgpack_pack",
           "msgpack_unpack"]

logger = logging.getLogger("sio_core.redis")

Pack = Callable[[Any], bytes]
Unpack = Callable[[bytes], Any]
#: reads what arrives on a channel that is not the store's own; False if it is not its either
Tap = Callable[[str, bytes], bool]
T = TypeVar("T")

#: the most messages one pipeline of PUBLISHes carries: a long burst goes out in pieces, so
#: the other servers start on its beginning while the rest is written
PIPELINE_MAX = 512


def msgpack_pack(value: Any) -> bytes:
    data: bytes = msgpack.packb(value, use_bin_type=True)
    return data


def msgpack_unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def json_unpack(data: bytes) -> Any:
    return json.loads(data)




async def _bounded(step: Awaitable[Any], timeout: float) -> None:
    """Run one close step; its errors and a timeout only end it."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(step, timeout)


class RedisStore(Store):
    """The store of a fleet across machines: workers and nodes meet through Redis pub/sub.
    A Server on it speaks the wire format of the JavaScript ``@socket.io/redis-adapter``
    there (sio_core/socketio/redis_adapter.py), so JavaScript servers and emitters share
    its broadcasts and requests.

    Args:
        url: ``redis://``, ``redis+sentinel://`` or ``redis+cluster://`` (see
            :mod:`~sio_core.stores.redis_url`).
        node_id: this node's name in the fleet (random if not given).
        owner: this worker's address in its session ids (the node's, by default).
        key: the channels' and keys' prefix (the JavaScript adapter's ``key``).
        pub_client: a ready-made client for publishing (takes precedence over the URL;
            RedisCluster clients mean a Cluster, with sharded pub/sub).
        sub_client: the same, for subscribing.
        command_client: the same, for other commands.
        client_options: keyword arguments of the clients made from the URL.
        pack: encodes a message to the bus (msgpack, as the JavaScript adapter).
        unpack: decodes one.
        heartbeat: seconds between this node's announcements to its peers.
        queue_limit: messages received and not yet handled, past which new ones are dropped.
        reconnect_backoff_max: the longest wait between attempts to resubscribe.
        max_commands: commands in flight at once.
        close_timeout: the longest each step of close() may take.
        subscription_mode: on a Cluster, the ``subscriptionMode`` of the JavaScript
            ``createShardedAdapter`` servers sharing it: ``"dynamic"`` (their default: a
            broadcast to one room, not a socket id, comes on that room's own channel, so
            the channel of each room that has members here is read too), ``"dynamic-private"``
            (socket ids' rooms too) or ``"static"`` (everything on the namespace's channel:
            no channel per room, for a fleet of sio_core nodes alone). sio_core publishes
            on the namespace's channel, which every server reads in every mode.

    Example::

        io = Server()
        await io.serve("0.0.0.0", 3000, store=RedisStore("redis://10.0.0.5:6379/0"))
    """

    raw_channels = True

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, node_id: str | None = None,
                 owner: str | None = None, key: str = "socket.io",
                 pub_client: aioredis.Redis | RedisCluster | None = None,
                 sub_client: aioredis.Redis | RedisCluster | None = None,
                 command_client: aioredis.Redis | RedisCluster | None = None,
                 client_options: dict[str, Any] | None = None,
                 pack: Pack = msgpack_pack, unpack: Unpack = msgpack_unpack,
                 heartbeat: float = 2.0, queue_limit: int = 10_000,
                 reconnect_backoff_max: float = 1.0,
                 max_commands: int = 32, close_timeout: float = 5.0,
                 subscription_mode: str = "dynamic") -> None:
        super().__init__(owner or node_id or secrets.token_hex(3))
        if subscription_mode not in SUBSCRIPTION_MODES:
            raise ValueError(f"subscription_mode {subscription_mode!r}: one of "
                             f"{', '.join(SUBSCRIPTION_MODES)}")
        self.url = url
        self.key = key
        self.subscription_mode = subscription_mode
        self.pack, self.unpack = pack, unpack
        target = parse(url)
        sentinel = None
        if pub_client is None or sub_client is None or command_client is None:
            options = {"socket_connect_timeout": 5, **(client_options or {})}
            clients = build_clients(target, options, max_commands)
            sentinel = clients.sentinel
            pub_client = pub_client or clients.pub
            sub_client = sub_client or clients.sub
            command_client = command_client or clients.cmd
        self.pub: Any = pub_client
        self.sub: Any = sub_client
        self.cmd: Any = command_client
        self.mode = Mode.CLUSTER if isinstance(self.sub, RedisCluster) else target.mode
        self._sentinel = sentinel
        self._service = target.service
        #: commands in flight at once: a burst (a session registered per handshake) waits
        #: for a free slot, where redis-py's pools raise MaxConnectionsError past their bound
        #: (the Cluster client's: 100 per node) and the command would be lost
        self._commands = asyncio.Semaphore(max_commands)
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
        #: the connection PUBLISHes go out on (one server or Sentinel's master; made at the
        #: first, again after a loss)
        self._publisher: Wire | None = None
        self._pubsub: Subscription | None = None
        #: the channels and patterns of a layer above (see follow, tap)
        self._followed: set[str] = set()
        self._patterns: tuple[str, ...] = ()
        self._tap: Tap = lambda channel, data: False
        #: channels of our own read besides the envelopes' (the recovery log's), by handler
        self._listeners: dict[str, Callable[[bytes], None]] = {}
        self._flushes: list[Callable[[], Awaitable[None]]] = []
        self._closing = False
        # health (see the health property)
        self._connected = False
        self._reconnects = 0
        self._failovers = 0
        self._publish_failed = 0
        self._queue_dropped = 0
        self._down_seconds = 0.0
        self._down_since: float | None = None
        self._last_error: str | None = None
        self._all = f"{key}-sio#all#"
        self._mine = f"{key}-sio#{self.owner}#"
        self._peers_key = f"{key}-sio:peers"

    # -- life -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (raises ConnectionError naming the URL if Redis cannot be reached)."""
        await self.ping()
        await self._subscribe()
        await self._beat()
        # tell the others now, not at their next heartbeat: until they know us, they answer
        # "unknown session" to requests for our sessions that land on them
        self._transmit(Envelope(BusKind.PEERS, self.owner))
        loop = asyncio.get_running_loop()
        self._tasks_run += [loop.create_task(self._read_loop()),
                           loop.create_task(self._write_loop()),
                           loop.create_task(self._beat_loop())]
        if self._sentinel is not None:
            self._tasks_run.append(loop.create_task(watch_failovers(
                self._sentinel, self._service, self._failover, self.reconnect_backoff_max)))
        self._connected = True

    async def ping(self) -> None:
        """ConnectionError naming the URL if Redis does not answer."""
        try:
            await self.cmd.ping()
        except Exception as exc:
            raise ConnectionError(f"cannot reach Redis at {self.url}: {exc}") from exc

    async def command(self, call: Awaitable[T]) -> T:
        """A command of the command client, at most ``max_commands`` at once."""
        async with self._commands:
            return await call

    def shard_target(self, channel: str) -> dict[str, Any]:
        """The options that send a command about a shard channel to the node that has it
        (PUBSUB SHARDNUMSUB counts only that node's subscribers)."""
        if self.mode is Mode.CLUSTER:
            return {"target_nodes": self.cmd.get_node_from_key(channel)}
        return {}

    @property
    def health(self) -> dict[str, Any]:
        """For /_sio_core/health: what Redis outages cost this node."""
        down = self._down_seconds
        if self._down_since is not None:
            down += time.monotonic() - self._down_since
        return {"mode": self.mode.value, "connected": self._connected,
                "reconnects": self._reconnects, "failovers": self._failovers,
                "subscriber_down_seconds": round(down, 3),
                "publish_failed": self._publish_failed, "queue_dropped": self._queue_dropped,
                "dropped": self._publish_failed + self._queue_dropped,
                "queued": self._queue.qsize(), "last_error": self._last_error}

    async def close(self) -> None:
        """Stop the loops, take this node out of the peers, close the clients.
        Every step is bounded (close_timeout)."""
        for flush in self._flushes:
            await _bounded(flush(), self.close_timeout)
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
        await self.close_clients()
        await super().close()

    async def close_clients(self) -> None:
        await _bounded(self._drop_publisher(), self.close_timeout)
        for client in {id(c): c for c in (self.pub, self.sub, self.cmd)}.values():
            await _bounded(client.aclose(), self.close_timeout)
        if self._sentinel is not None:
            await _bounded(self._sentinel.aclose(), self.close_timeout)

    def packet_log(self, limits: LogLimits) -> RedisLog:
        """Connection state recovery's log in Redis (sio_core/stores/redis_log.py)."""
        if self.mode is Mode.CLUSTER:
            raise ValueError("connection state recovery does not work with a Redis Cluster "
                             "store yet (one server or Sentinel only)")
        return RedisLog(self, limits)

    def listen(self, channel: str, handler: Callable[[bytes], None]) -> None:
        """Read ``channel`` too (before start): ``handler(data)`` for each message, in
        order with everything else this store reads."""
        self._listeners[channel] = handler

    def own_task(self, task: asyncio.Task[None],
                 flush: Callable[[], Awaitable[None]] | None = None) -> None:
        """A task of a part of this store, cancelled when it closes, after ``flush()``
        (bounded by close_timeout) if given."""
        self._tasks_run.append(task)
        if flush is not None:
            self._flushes.append(flush)

    def tap(self, reader: Tap, patterns: tuple[str, ...] = ()) -> None:
        """``reader(channel, data)`` for what arrives on the channels followed and the
        ``patterns`` (read from the next subscription: call before start). It raises
        BadMessage for what does not decode (dropped, logged)."""
        self._tap = reader
        self._patterns = patterns

    def follow(self, channels: list[str]) -> None:
        """Read these channels too (for the tap), now and after every resubscription."""
        self._followed.update(channels)
        if self._pubsub is not None:
            asyncio.get_running_loop().create_task(self._follow(channels, True))

    def unfollow(self, channels: list[str]) -> None:
        """Stop reading channels that :meth:`follow` added."""
        self._followed.difference_update(channels)
        if self._pubsub is not None:
            asyncio.get_running_loop().create_task(self._follow(channels, False))

    def publish_raw(self, channel: str, data: bytes) -> None:
        """Publish ``data`` on ``channel`` as it is, in order with the envelopes (one
        queue), dropped as they are when Redis does not keep up."""
        self._enqueue(channel, data)

    async def _follow(self, channels: list[str], follow: bool) -> None:
        # a subscription lost meanwhile is made again with every channel followed
        subscription = self._pubsub
        assert subscription is not None
        with contextlib.suppress(Exception):
            if follow:
                await subscription.subscribe(*channels)
            else:
                await subscription.unsubscribe(*channels)

    async def _subscribe(self) -> None:
        channels = [self._all, self._mine, *self._listeners, *sorted(self._followed)]
        if self.mode is Mode.CLUSTER:
            self._pubsub = sharded = ShardedSubscription(self.sub, self._on_message)
            await sharded.subscribe(*channels)
        else:
            self._pubsub = pubsub = PubSubSubscription(self.sub, self._on_message)
            await pubsub.subscribe(*channels)
            if self._patterns:
                await pubsub.psubscribe(*self._patterns)

    async def _failover(self) -> None:
        """A Sentinel named a new master: leave the old one (now a replica), at once."""
        self._failovers += 1
        await self._drop_publisher()
        for client in (self.pub, self.cmd):
            with contextlib.suppress(Exception):
                await client.connection_pool.disconnect()
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.drop()

    # -- reading ----------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        while not self._closing:
            try:
                assert self._pubsub is not None
                await self._pubsub.run()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._resubscribe(exc)

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
            if self._pubsub is not None:
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

    def _on_message(self, name: bytes, data: bytes) -> None:
        channel = name.decode("utf-8", "replace")
        if not isinstance(data, bytes) or len(data) > MAX_ENVELOPE:
            return
        try:
            listener = self._listeners.get(channel)
            if listener is not None:
                listener(data)
            elif channel == self._all or channel == self._mine:
                envelope = self._unpack_envelope(data)
                if envelope.origin == self.owner:
                    pass
                elif envelope.kind == BusKind.PEERS:  # a worker announcing itself
                    if envelope.origin not in self.peers:
                        self._set_peers([*self.peers, envelope.origin])
                else:
                    self.deliver(envelope)
            else:
                self._tap(channel, data)
        except BadMessage as exc:
            self.dropped(exc, channel)
        except Exception:
            logger.debug("dropped a malformed message on %s", channel, exc_info=True)

    def _unpack_envelope(self, data: bytes) -> Envelope:
        if self.unpack is msgpack_unpack:
            return Envelope.unpack(data)
        try:
            item = self.unpack(data)
        except Exception as exc:
            raise BadMessage("not an envelope") from exc
        return Envelope.from_wire(item)

    # -- writing ----------------------------------------------------------------------------

    def _transmit(self, envelope: Envelope) -> None:
        channel = self._all if envelope.target is None else f"{self.key}-sio#{envelope.target}#"
        data = envelope.pack() if self.pack is msgpack_pack else self.pack(envelope.to_wire())
        self._enqueue(channel, data)

    def _enqueue(self, channel: str, data: bytes) -> None:
        try:
            self._queue.put_nowait((channel, data))
        except asyncio.QueueFull:
            self._queue_dropped += 1
            if self._queue_dropped % 1000 == 1:
                logger.warning("Redis is not keeping up: %d messages dropped so far",
                               self._queue_dropped)

    async def _write_loop(self) -> None:
        queue = self._queue
        while not self._closing:
            batch = [await queue.get()]
            # what was queued meanwhile (a burst of broadcasts in one loop turn) goes in one
            # write: one round trip rather than one each, in order. (A Cluster's channels
            # live on several masters: one SPUBLISH at a time there, through its client.)
            if self.mode is not Mode.CLUSTER:
                while len(batch) < PIPELINE_MAX and not queue.empty():
                    batch.append(queue.get_nowait())
            try:
                if self.mode is Mode.CLUSTER:
                    await self.pub.spublish(*batch[0])
                    failed = 0
                else:
                    failed = await self._publish(batch)
                self.messages_sent += len(batch) - failed
                self._publish_failed += failed
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._publish_failed += len(batch)
                self._last_error = str(exc)
                logger.debug("publish of %d message(s) failed: %s", len(batch), exc)
                await asyncio.sleep(0.05)  # Redis is down: do not spin

    async def _publish(self, batch: list[tuple[str, bytes]]) -> int:
        """PUBLISH each message of ``batch`` in one write on the publisher's connection
        (made again once if it was lost, as redis-py's retry did); how many Redis refused.
        The write loop's alone: the replies read are those of the last write."""
        data = b"".join([publish(channel, message) for channel, message in batch])
        for retry in (False, True):
            try:
                if self._publisher is None:
                    self._publisher = await open_wire(self.pub.connection_pool.make_connection)
                self._publisher.send(data)
                replies = await self._publisher.read(len(batch))
                break
            except (ConnectionError, OSError):
                await self._drop_publisher()
                if retry:
                    raise
        refused = [reply for reply in replies if isinstance(reply, Exception)]
        if refused:
            self._last_error = str(refused[0])
        return len(refused)

    async def _drop_publisher(self) -> None:
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            with contextlib.suppress(Exception):
                await publisher.close()

    # -- peers ------------------------------------------------------------------------------

    async def _beat(self) -> None:
        now = time.time()
        ttl = max(3 * self.heartbeat, 5.0)
        pipe = self.cmd.pipeline(transaction=False)
        pipe.zadd(self._peers_key, {self.owner: now + ttl})
        pipe.zremrangebyscore(self._peers_key, "-inf", now)
        pipe.zrangebyscore(self._peers_key, now, "+inf")
        results = await self.command(pipe.execute())
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
