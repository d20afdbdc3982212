"""RedisStore at scale: a Redis Cluster (sharded pub/sub) and Redis Sentinel (a failover).

- **Cluster**: a private 3-master Redis Cluster (the session's ``redis_cluster_url``), two
  sio_core nodes (``serve --store redis+cluster://...``) and the reference JavaScript server
  with ``createShardedAdapter`` (node-redis cluster clients) on the same key: broadcasts from
  each server, to everyone and to a room, reach the clients of all three exactly once;
  fetch_sockets, server-side emits with acks and broadcasts with acks cross them both ways;
  the store keeps no key per session (only the peers' set), and every worker's sessions are
  gone once the clients leave.
- **Sentinel**: a master, its replica and a Sentinel started here; two sio_core nodes
  (``serve --store redis+sentinel://...``) exchange broadcasts, then ``SENTINEL FAILOVER``
  moves the master to the replica, and the broadcasts resume both ways (each node heard the
  Sentinel's ``+switch-master`` and left the old master, now a replica).

The JavaScript peer script and its helpers are tests/test_redis.py's.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio.cluster import ClusterNode, RedisCluster

from tests.support import (
    RedisServer,
    SentinelServer,
    free_port,
    redis_cli,
    redis_server_binary,
    scaled,
    wait_sessions_gone,
    wait_until,
)
from tests.test_redis import (
    Peer,
    assert_clean_log,
    poll_until,
    redis_args,
    start_node_server,
    start_peer,
    store_health,
)

pytestmark = pytest.mark.redis


# --- a Redis Cluster: two sio_core nodes and a JavaScript server ------------------------------


@contextlib.asynccontextmanager
async def cluster_client(url: str) -> AsyncIterator[RedisCluster]:
    seeds = [seed.rsplit(":", 1) for seed in url.split("://", 1)[1].split(",")]
    client = RedisCluster(startup_nodes=[ClusterNode(host, int(port)) for host, port in seeds])
    try:
        yield client
    finally:
        await client.aclose()


def got(peer: Peer, name: str) -> Counter[str]:
    return Counter(
        e["event"] for e in peer.node.events if e.get("ev") == "got" and e["name"] == name
    )


@pytest.mark.interop
async def test_cluster_two_sio_core_nodes_and_a_javascript_sharded_adapter(
    redis_cluster_url: str, redis_cluster_prefix: str, tmp_path: Path
) -> None:
    url, prefix = redis_cluster_url, redis_cluster_prefix
    args = redis_args(url, prefix)
    node_a = await start_node_server(*args, workers=1, name="A", log_path=tmp_path / "a.log")
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(node_a.stop)
        node_b = await start_node_server(*args, workers=1, name="B", log_path=tmp_path / "b.log")
        stack.push_async_callback(node_b.stop)
        js_port = free_port()
        seeds = ",".join(f"redis://{seed}" for seed in url.split("://", 1)[1].split(","))
        peer = Peer(
            await stack.enter_async_context(
                await start_peer(tmp_path, seeds, prefix, str(js_port), "sharded")
            )
        )
        redis = await stack.enter_async_context(cluster_client(url))
        # the sharded adapter counts the servers of "/" with SHARDNUMSUB: itself and both nodes
        # (its own SSUBSCRIBE is not awaited by its constructor: it may come a moment later)

        async def three_servers() -> bool:
            return bool((await peer.call("numsub", "numsub"))["count"] == 3)

        await poll_until(three_servers, timeout=5, what="SHARDNUMSUB counting 3 servers")
        ids = {
            "a": await peer.connect("a", node_a.url),
            "b": await peer.connect("b", node_b.url),
            "js": await peer.connect("js", f"http://127.0.0.1:{js_port}"),
        }
        assert await peer.emit("a", "join", "room1") == ["A"]
        assert await peer.emit("js", "join", "room1") == ["js"]

        # no key per session: the only one under our prefix is the peers' set (on its slot)
        keys = [key async for key in redis.scan_iter(match=f"{prefix}-sio*", count=1000)]
        assert keys == [f"{prefix}-sio:peers".encode()], keys

        # broadcasts from every server: to everyone, and to a room
        assert await peer.emit("a", "bcast", None, "from_a", [1, "two"]) == ["sent"]
        assert await peer.emit("b", "bcast", "room1", "from_b_room", "r") == ["sent"]
        await peer.call("io_emit", "done", event="from_js", args=[{"n": 1}])
        await peer.call("io_emit", "done", room="room1", event="from_js_room", args=["r"])
        for name in ("a", "b", "js"):
            assert await peer.wait_got(name, "from_a") == [[1, "two"]]
            assert await peer.wait_got(name, "from_js") == [{"n": 1}]
        for name in ("a", "js"):
            assert await peer.wait_got(name, "from_b_room") == ["r"]
            assert await peer.wait_got(name, "from_js_room") == ["r"]

        # sio_core asks: fetch_sockets, a broadcast with acks, a server-side emit with acks
        [fetched] = await peer.emit("b", "fetch", "room1")
        assert sorted(fetched["ids"]) == sorted([ids["a"], ids["js"]]), fetched
        [acked] = await peer.emit("b", "bcast_acks", "room1", 10)
        assert acked == {"responses": ["a", "js"], "timed_out": False}, acked
        [answers] = await peer.emit("a", "sse_ack")
        assert sorted(answers, key=str) == [{"node": "B", "worker": "1"}, {"node": "js"}]

        # the JavaScript server asks the same of the sio_core nodes
        assert sorted((await peer.call("fetch", "fetched"))["ids"]) == sorted(ids.values())
        in_room = await peer.call("fetch", "fetched", room="room1")
        assert sorted(in_room["ids"]) == sorted([ids["a"], ids["js"]])
        js_acks = await peer.call("io_acks", "io_acks", room="room1", event="ping")
        assert js_acks["error"] is None and sorted(js_acks["responses"]) == ["a", "js"], js_acks
        sse = await peer.call("sse", "sse_acks", event="hello", args=["ack?"], ack=True)
        assert sse["error"] is None, sse
        assert sorted(r["node"] for r in sse["responses"]) == ["A", "B"], sse
        await peer.call("sse", "done", event="hello", args=[1])
        for node in (node_a, node_b):
            await node.wait_for_log(r"server-side hello \[1\]")

        # a fence down every path, then: each message arrived exactly once, nowhere else
        await peer.emit("a", "bcast", None, "fence_a", None)
        await peer.emit("b", "bcast", None, "fence_b", None)
        await peer.call("io_emit", "done", event="fence_js")
        for name in ("a", "b", "js"):
            for fence in ("fence_a", "fence_b", "fence_js"):
                await peer.wait_got(name, fence)
        everyone = Counter({"from_a": 1, "from_js": 1, "fence_a": 1, "fence_b": 1, "fence_js": 1})
        # room1 also had a broadcast from B and from the JavaScript server, and two pings
        # that asked for acks (from B, and from the JavaScript server)
        in_room1 = everyone + Counter({"from_b_room": 1, "from_js_room": 1, "ping": 2})
        for name, expected in {"a": in_room1, "b": everyone, "js": in_room1}.items():
            assert got(peer, name) == expected, (name, got(peer, name))
        assert peer.troubles() == []

        await peer.call("close", "closed")

        await wait_sessions_gone(node_a, node_b)
    for node in (node_a, node_b):
        assert node.returncode == 0, node.log_text()
        assert_clean_log(node)


async def test_a_slot_moved_to_another_master_is_followed(
    redis_cluster_url: str, redis_cluster_prefix: str
) -> None:
    """Resharding moves the slot of a worker's own channel to another master: Redis ends that
    subscription (SUNSUBSCRIBE), the worker subscribes again on the new owner, and what is
    sent to it arrives there."""
    from sio_core.stores.redis import RedisStore

    stores = [
        RedisStore(redis_cluster_url, owner=name, key=redis_cluster_prefix, heartbeat=scaled(0.1))
        for name in ("w1", "w2")
    ]
    async with contextlib.AsyncExitStack() as stack:
        for store in stores:
            stack.push_async_callback(store.close)
            await store.start()
        a, b = stores
        received: list[object] = []
        b.on("test_kind", lambda envelope: received.append(envelope.payload))
        await poll_until(lambda: a.peers == {"w2"}, timeout=5, what="a knows b")

        channel = f"{redis_cluster_prefix}-sio#w2#"
        redis = await stack.enter_async_context(cluster_client(redis_cluster_url))
        slot = str(await redis.cluster_keyslot(channel))
        source = redis.get_node_from_key(channel)
        assert source is not None
        target = next(n for n in redis.get_primaries() if n.name != source.name)
        ports = [str(n.port) for n in redis.get_primaries()]
        ids = {n.name: redis_cli("-p", str(n.port), "cluster", "myid").strip()
               for n in redis.get_primaries()}  # fmt: skip
        assert subscribers_of(channel, source.port) == 1
        redis_cli("-p", str(target.port), "cluster", "setslot", slot, "importing", ids[source.name])
        redis_cli("-p", str(source.port), "cluster", "setslot", slot, "migrating", ids[target.name])
        for port in ports:
            redis_cli("-p", port, "cluster", "setslot", slot, "node", ids[target.name])

        await poll_until(
            lambda: subscribers_of(channel, target.port) == 1, timeout=10,
            what="w2 subscribed to its channel on the slot's new master",
        )  # fmt: skip
        assert b.health["reconnects"] == 1, b.health
        a.send("w2", "test_kind", {"after": "the move"})
        await poll_until(lambda: received == [{"after": "the move"}], timeout=5, what="arrival")


def subscribers_of(channel: str, port: int | str) -> int:
    return int(redis_cli("-p", str(port), "pubsub", "shardnumsub", channel).split()[1])


# --- Sentinel: a failover under two sio_core nodes ---------------------------------------------

SERVICE = "mymaster"
KEY = "sio-sentinel"


class SentinelSetup:
    """A master, its replica, and one Sentinel watching them (all on free loopback ports)."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.master = RedisServer(binary, workdir, name="master").start()
        self.replica = RedisServer(
            binary, workdir, name="replica",
            options=lambda port: {"replicaof": f"127.0.0.1 {self.master.port}"},
        )  # fmt: skip
        self.sentinel = SentinelServer(binary, workdir, SERVICE, self.master.port)

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel.port}/{SERVICE}/0"

    def start(self) -> None:
        self.replica.start()
        self.sentinel.start()
        # a failover needs a replica that the Sentinel knows and that is in sync
        wait_until(lambda: "master_link_status:up" in self.info(self.replica, "replication"),
                   10, "the replica in sync")
        wait_until(lambda: str(self.replica.port) in redis_cli(
            "-p", str(self.sentinel.port), "sentinel", "replicas", SERVICE), 10,
            "the Sentinel to know the replica")

    @staticmethod
    def info(server: RedisServer, section: str) -> str:
        return redis_cli("-p", str(server.port), "info", section)

    def hang_master(self) -> None:
        """SIGSTOP the master (its connections stay open, silent); returns once the Sentinel,
        having found it down, has made the replica the master."""
        self.master.send_signal(signal.SIGSTOP)
        wait_until(lambda: self.sentinel.master_port_now() == self.replica.port, 20,
                   "the Sentinel to name the replica")

    def stop(self) -> None:
        for server in (self.sentinel, self.replica, self.master):
            server.stop()


@pytest.fixture
def sentinel_setup(tmp_path: Path) -> Iterator[SentinelSetup]:
    binary = redis_server_binary()
    if binary is None or shutil.which("redis-cli") is None:
        pytest.skip("no redis-server or redis-cli: run `bash scripts/setup.sh --dev`")
    setup = SentinelSetup(binary, tmp_path)
    try:
        setup.start()
        yield setup
    finally:
        setup.stop()


async def broadcasts_resume(peer: Peer, sender: str, receiver: str, tag: str) -> int:
    """Probes from ``sender`` to everyone until ``receiver`` gets one: how many were sent."""
    sent = 0
    deadline = time.monotonic() + scaled(15)
    while True:
        sent += 1
        assert await peer.emit(sender, "bcast", None, tag, sent) == ["sent"]
        with contextlib.suppress(TimeoutError):
            await peer.wait_got(receiver, tag, timeout=0.2)
            return sent
        assert time.monotonic() < deadline, f"no {tag} from {sender} reached {receiver}"


def subscribers(server: RedisServer) -> int:
    """The subscribers of our ``<key>-sio#all#`` on ``server`` (one per sio_core node)."""
    answer = redis_cli("-p", str(server.port), "pubsub", "numsub", f"{KEY}-sio#all#")
    return int(answer.split()[1])


@pytest.mark.interop
async def test_sentinel_failover_under_two_sio_core_nodes(
    sentinel_setup: SentinelSetup, tmp_path: Path
) -> None:
    setup = sentinel_setup
    args = redis_args(setup.url, KEY)
    node_a = await start_node_server(*args, workers=1, name="A", log_path=tmp_path / "a.log")
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(node_a.stop)
        node_b = await start_node_server(*args, workers=1, name="B", log_path=tmp_path / "b.log")
        stack.push_async_callback(node_b.stop)
        peer = Peer(await stack.enter_async_context(await start_peer(tmp_path, "-", "-", "-")))
        await peer.connect("a", node_a.url)
        await peer.connect("b", node_b.url)
        assert await peer.emit("a", "bcast", None, "before", "a") == ["sent"]
        assert await peer.wait_got("b", "before") == ["a"]
        assert subscribers(setup.master) == 2

        setup.hang_master()
        # the nodes leave the old master, whose connections are still open (a subscription
        # there would wait forever), for the one the Sentinel names now
        await poll_until(
            lambda: subscribers(setup.replica) == 2, timeout=10,
            what="both nodes subscribed to the new master",
        )  # fmt: skip
        # broadcasts flow both ways
        await broadcasts_resume(peer, "a", "b", "after_a")
        await broadcasts_resume(peer, "b", "a", "after_b")
        for node in (node_a, node_b):
            health = await store_health(node)
            assert health["failovers"] >= 1 and health["connected"], health
        # and what is sent now arrives once, both ways
        assert await peer.emit("a", "bcast", None, "settled", "a") == ["sent"]
        assert await peer.emit("b", "bcast", None, "settled", "b") == ["sent"]
        for name in ("a", "b"):
            assert sorted([await peer.wait_got(name, "settled") for _ in range(2)]) == [
                ["a"], ["b"]]
        await peer.call("close", "closed")
    for node in (node_a, node_b):
        assert node.returncode == 0, node.log_text()
        assert_clean_log(node)
