"""Where RedisStore's clients connect: one server, a Sentinel-watched master, or a Cluster.

How this works:

- :func:`build_clients` makes the store's three clients (publisher, subscriber, commands)
  for a :class:`~sio_core.stores.redis_url.RedisTarget`. The subscriber never retries by
  itself: its loss is the store's to see, count and repair. The publisher retries once (a
  killed connection is made again), then the message is counted lost.
- A :class:`Subscription` delivers what arrives to a callback until it is lost, then
  raises (:meth:`Subscription.run`); the store makes a new one. :class:`PubSubSubscription`
  is one connection with SUBSCRIBE/PSUBSCRIBE (one server, or the master a Sentinel
  names). :class:`ShardedSubscription` is Redis 7's sharded pub/sub on a Cluster: a shard
  channel lives on the master that owns its hash slot (CRC16 of the name, as for a key),
  and is SSUBSCRIBEd there, so there is one connection per master that owns any of our
  channels; there is no pattern subscription in sharded pub/sub. When a slot moves, Redis
  ends the subscriptions of its channels with a SUNSUBSCRIBE we did not ask for: that, and
  a lost connection, end the subscription, and the next one reads the slots afresh.
  Both read their connections through :class:`~sio_core.stores.redis_wire.Wire` (redis-py
  connects; what arrives is parsed by hiredis a read at a time).
- With Sentinel, a failover moves the master, but a subscription to the old one does not
  end by itself: to a master that hangs (its connections open and silent) it waits forever;
  to one demoted to a replica it stayed up here for ~10 s after ``SENTINEL FAILOVER``,
  hearing nothing the new master published. :func:`watch_failovers` listens for the
  Sentinels' ``+switch-master``, and the store then drops its subscription and its pooled
  connections, which reconnect to the master the Sentinels now name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff

from .redis_url import Mode, RedisTarget
from .redis_wire import Wire, command, open_wire

logger = logging.getLogger("sio_core.redis")

#: what arrives: (channel, data)
OnMessage = Callable[[bytes, bytes], None]


@dataclass(slots=True)
class Clients:
    pub: Any
    sub: Any
    cmd: Any
    #: the Sentinel manager (Sentinel mode only): where failovers are heard
    sentinel: Sentinel | None = None


def build_clients(target: RedisTarget, options: dict[str, Any], max_commands: int) -> Clients:
    once, never = Retry(NoBackoff(), 1), Retry(NoBackoff(), 0)
    credentials: dict[str, Any] = {"username": target.username, "password": target.password}
    if target.mode is Mode.CLUSTER:
        def cluster() -> RedisCluster:
            return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in target.hosts],
                                **credentials, **options)
        return Clients(cluster(), cluster(), cluster())
    if target.mode is Mode.SENTINEL:
        sentinel = Sentinel(list(target.hosts), **options)  # type: ignore[no-untyped-call, unused-ignore]

        def master(retry: Retry) -> aioredis.Redis:
            return sentinel.master_for(target.service, db=target.db, retry=retry,  # type: ignore[no-any-return]
                                       **credentials)
        return Clients(master(once), master(never), master(once), sentinel)
    url = target.url
    return Clients(
        aioredis.Redis.from_url(url, **{"retry": once, **options}),
        aioredis.Redis.from_url(url, **{"retry": never, **options}),
        aioredis.Redis.from_pool(aioredis.BlockingConnectionPool.from_url(
            url, max_connections=max_commands, timeout=10, **options)))


class Subscription:
    """What a store listens to; :meth:`run` delivers until the subscription is lost."""

    async def subscribe(self, *channels: str) -> None:
        raise NotImplementedError

    async def unsubscribe(self, *channels: str) -> None:
        raise NotImplementedError

    async def run(self) -> None:
        """Deliver messages until the subscription is lost: then raise why."""
        raise NotImplementedError

    async def drop(self) -> None:
        """End the subscription from outside: :meth:`run` raises."""
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError


class PubSubSubscription(Subscription):
    """One connection, SUBSCRIBE and PSUBSCRIBE (one server, or a Sentinel's master), read
    through a :class:`~sio_core.stores.redis_wire.Wire`."""

    def __init__(self, client: aioredis.Redis, on_message: OnMessage) -> None:
        self._make = client.connection_pool.make_connection
        self._on_message = on_message
        self._wire: Wire | None = None

    async def _connected(self) -> Wire:
        if self._wire is None:
            self._wire = await open_wire(self._make)
        return self._wire

    async def _send(self, name: bytes, names: tuple[str, ...]) -> None:
        if names:  # (with none, an UNSUBSCRIBE would end every subscription)
            (await self._connected()).send(command(name, *(n.encode() for n in names)))

    async def subscribe(self, *channels: str) -> None:
        await self._send(b"SUBSCRIBE", channels)

    async def psubscribe(self, *patterns: str) -> None:
        await self._send(b"PSUBSCRIBE", patterns)

    async def unsubscribe(self, *channels: str) -> None:
        await self._send(b"UNSUBSCRIBE", channels)

    async def run(self) -> None:
        wire, on_message = await self._connected(), self._on_message
        while True:
            for reply in await wire.replies():
                kind = reply[0] if isinstance(reply, list) else reply
                if kind == b"message":
                    on_message(reply[1], reply[2])
                elif kind == b"pmessage":
                    on_message(reply[2], reply[3])
                elif isinstance(kind, Exception):
                    raise SubscriptionLost(f"Redis answered the subscriber: {kind}")

    async def drop(self) -> None:
        if self._wire is not None:
            await self._wire.close()

    async def aclose(self) -> None:
        await self.drop()


class SubscriptionLost(ConnectionError):
    pass


class ShardedSubscription(Subscription):
    """SSUBSCRIBE on a Cluster: each channel on the master of its slot, a reader per master."""

    def __init__(self, cluster: RedisCluster, on_message: OnMessage) -> None:
        self._cluster = cluster
        self._on_message = on_message
        self._nodes: dict[str, _NodeSubscriber] = {}
        #: the channels we want (a SUNSUBSCRIBE of one of these is Redis taking it away)
        self._channels: set[bytes] = set()
        self._lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._fresh = False

    async def subscribe(self, *channels: str) -> None:
        if not self._fresh:
            # the slots may have moved since this client last looked (a failover, a
            # resharding): read them again before choosing where to subscribe
            await self._cluster.initialize()
            await self._cluster.nodes_manager.initialize()
            self._fresh = True
        by_node: dict[str, list[str]] = {}
        for channel in channels:
            node = self._node(channel)
            by_node.setdefault(node.name, []).append(channel)
            self._channels.add(channel.encode())
            if node.name not in self._nodes:
                self._nodes[node.name] = _NodeSubscriber(node, self._on_message, self._lose,
                                                         self._channels)
        for name, names in by_node.items():
            subscriber = self._nodes[name]
            # one SSUBSCRIBE per channel: several at once must share a slot (CROSSSLOT)
            for channel in names:
                await subscriber.send(b"SSUBSCRIBE", channel)
            subscriber.start()

    async def unsubscribe(self, *channels: str) -> None:
        for channel in channels:
            self._channels.discard(channel.encode())
            subscriber = self._nodes.get(self._node(channel).name)
            if subscriber is not None:
                await subscriber.send(b"SUNSUBSCRIBE", channel)

    def _node(self, channel: str) -> ClusterNode:
        node = self._cluster.get_node_from_key(channel)
        if node is None:  # the slot has no master now (a failover under way)
            raise SubscriptionLost(f"no node has the slot of {channel!r}")
        return node

    def _lose(self, exc: BaseException) -> None:
        if not self._lost.done():
            self._lost.set_exception(exc)

    async def run(self) -> None:
        await asyncio.shield(self._lost)

    async def drop(self) -> None:
        self._lose(SubscriptionLost("dropped"))

    async def aclose(self) -> None:
        self._lose(SubscriptionLost("closed"))
        with contextlib.suppress(BaseException):
            self._lost.exception()  # retrieved: nobody else may be there to
        for subscriber in self._nodes.values():
            await subscriber.aclose()
        self._nodes.clear()


class _NodeSubscriber:
    """The shard channels of one master, on one connection of their own."""

    def __init__(self, node: ClusterNode, on_message: OnMessage,
                 lose: Callable[[BaseException], None], wanted: set[bytes]) -> None:
        kwargs = {**node.connection_kwargs, "retry": Retry(NoBackoff(), 0)}
        self._make: Callable[[], Any] = lambda: node.connection_class(**kwargs)
        self._wire: Wire | None = None
        self._on_message = on_message
        self._lose = lose
        self._wanted = wanted
        self._task: asyncio.Task[None] | None = None

    async def send(self, name: bytes, channel: str) -> None:
        if self._wire is None:
            self._wire = await open_wire(self._make)
        self._wire.send(command(name, channel.encode()))

    def start(self) -> None:
        if self._task is None and self._wire is not None:
            self._task = asyncio.get_running_loop().create_task(self._read(self._wire))

    async def _read(self, wire: Wire) -> None:
        on_message, wanted = self._on_message, self._wanted
        try:
            while True:
                for reply in await wire.replies():
                    kind = reply[0] if isinstance(reply, list) else reply
                    if kind == b"smessage":
                        on_message(reply[1], reply[2])
                    elif kind == b"sunsubscribe" and reply[1] in wanted:
                        raise SubscriptionLost(f"Redis moved {reply[1]!r} to another node")
                    elif isinstance(kind, Exception):
                        raise SubscriptionLost(f"Redis answered the subscriber: {kind}")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._lose(exc)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        if self._wire is not None:
            with contextlib.suppress(Exception):
                await self._wire.close()


async def watch_failovers(sentinel: Sentinel, service: str,
                          on_switch: Callable[[], Awaitable[None]],
                          backoff_max: float) -> None:
    """Call ``on_switch`` each time a Sentinel announces a new master for ``service``;
    runs until cancelled, moving to the next Sentinel when one cannot be heard."""
    delay = 0.0
    index = 0
    while True:
        client = sentinel.sentinels[index % len(sentinel.sentinels)]
        index += 1
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe("+switch-master")
            delay = 0.0
            while True:
                message = await pubsub.get_message(timeout=None)
                data = message.get("data") if message else None
                # "<service> <old ip> <old port> <new ip> <new port>"
                if isinstance(data, bytes) and data.split(b" ", 1)[0] == service.encode():
                    logger.warning("Sentinel: %s", data.decode(errors="replace"))
                    await on_switch()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.debug("cannot hear Sentinel failovers: %s", exc)
            delay = min(max(2 * delay, 0.05), backoff_max)
            await asyncio.sleep(delay)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
