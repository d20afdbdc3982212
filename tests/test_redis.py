"""sio_core across machines through Redis (``serve --store redis://... --store-key K``).

- Two nodes (one with two workers, one with one) behind a round-robin TCP proxy with no
  stickiness (``tests/proxy.py``): polling-only and upgrading clients stay connected through a
  30 s soak with no reconnects, and every broadcast reaches every other node exactly once.
- A mixed fleet: the reference JavaScript server with ``@socket.io/redis-adapter`` and
  ``@socket.io/redis-emitter`` on the same Redis and key as a sio_core server: broadcasts both
  ways (to everyone and to a room), the emitter by namespace and room, the JavaScript
  ``fetchSockets()`` and ``serverSideEmit`` reaching sio_core.
- Resilience against a private redis-server: unreachable at start (one clear line, exit 1),
  restarted at run time, ``CLIENT KILL TYPE pubsub``.
- 1,000 sessions leave nothing behind: once they came and went, every worker is back to
  zero sessions, and the store's only key under the prefix is its peers set.

Every test uses its own key prefix (``redis_prefix``), passed to the servers as ``--store-key``
and to the JavaScript adapter and emitter as ``key``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.proxy import RoundRobinProxy
from tests.support import (
    REPO_ROOT,
    JsonObject,
    NodeProcess,
    ServerProcess,
    free_port,
    health_of_each_worker,
    redis_server_binary,
    scaled,
    start_node,
    wait_sessions_gone,
)

pytestmark = pytest.mark.redis

APP = "tests.apps.redis_app:io"
CLUSTER_CLIENTS = REPO_ROOT / "tests" / "js" / "cluster_clients.js"
SOAK_SECONDS = 30.0

# A node peer for the mixed-fleet tests, written to tmp_path (NODE_PATH finds node_modules).
#
#   node peer.js REDIS_URL KEY PORT [sharded]     (PORT "-": clients only, no server)
#
# With a PORT it runs the reference socket.io server on 127.0.0.1:PORT with
# @socket.io/redis-adapter (node-redis v4 clients, key KEY) and an @socket.io/redis-emitter.
# With "sharded", REDIS_URL is a comma-separated list of a Redis Cluster's nodes, and the server
# uses createShardedAdapter (sharded pub/sub, channelPrefix KEY, its default subscriptionMode
# "dynamic": a broadcast to one room goes on that room's own channel, which the sio_core nodes
# read for the rooms they have; see the README) on a node-redis cluster client, with no
# emitter (it has no sharded form).
# Commands in on stdin, one JSON object per line out ("ev" names it):
#   {"op":"connect","name","url","transports"}  a socket.io-client; then live lines
#       {"ev":"connect","name","id"}, {"ev":"disconnect","name","reason"},
#       {"ev":"connect_error","name","message"}, and {"ev":"got","name","event","args"} for
#       every event it receives (an event that asks for an ack is answered with the name)
#   {"op":"emit","tag","name","event","args"}   the client emits with an ack
#       -> {"ev":"ack","tag","args"}
#   {"op":"io_emit","tag","nsp","room","event","args"}   io.of(nsp).to(room).emit -> "done"
#   {"op":"emitter","tag","nsp","room","event","args"}   emitter.of(nsp).to(room).emit -> "done"
#   {"op":"io_acks","tag","nsp","room","event","args"}   io.of(nsp).to(room).timeout(5000).emit
#       with an ack callback -> {"ev":"io_acks","tag","error","responses"}
#   {"op":"fetch","tag","nsp","room"}   io.of(nsp).in(room).fetchSockets() -> {"ev":"fetched","ids"}
#   {"op":"sse","tag","event","args","ack"}   io.serverSideEmit (with an ack callback: "sse_acks")
#   {"op":"numsub","tag"}   the adapter's serverCount() (PUBSUB NUMSUB) -> {"ev":"numsub","count"}
#   {"op":"close","tag"}    every client disconnects -> {"ev":"closed"}
# The server prints {"ev":"server_side","event":"hello","args"} for a server-side "hello" (a
# Buffer as {"$bin": "<base64>"}), and answers one that asks for an ack with {"node": "js"}.
PEER_JS = r"""
"use strict";
const http = require("node:http");
const readline = require("node:readline");
const { io: connect } = require("socket.io-client");

const [redisUrl, key, portArg, adapterArg] = process.argv.slice(2);
const sharded = adapterArg === "sharded";
const clients = new Map();
const redisClients = [];
let io = null;
let emitter = null;

function print(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

async function startServer() {
  const { Server } = require("socket.io");
  const { createAdapter, createShardedAdapter } = require("@socket.io/redis-adapter");
  const { Emitter } = require("@socket.io/redis-emitter");
  const { createClient, createCluster } = require("redis");
  const pub = sharded
    ? createCluster({ rootNodes: redisUrl.split(",").map((url) => ({ url })) })
    : createClient({ url: redisUrl });
  const sub = pub.duplicate();
  const forEmitter = sharded ? null : pub.duplicate();
  for (const client of [pub, sub, forEmitter]) {
    if (client === null) continue;
    client.on("error", (err) => print({ ev: "redis_error", message: String(err) }));
    redisClients.push(client);
  }
  await Promise.all(redisClients.map((client) => client.connect()));
  const httpServer = http.createServer();
  const adapter = sharded
    ? createShardedAdapter(pub, sub, { channelPrefix: key })
    : createAdapter(pub, sub, { key });
  io = new Server(httpServer, { adapter, cors: { origin: "*" } });
  const setup = (socket) => {
    socket.on("join", (room, ack) => {
      socket.join(room);
      if (typeof ack === "function") ack("js");
    });
  };
  io.on("connection", setup);
  io.of("/admin").on("connection", setup);
  io.on("hello", (...args) => {
    const ack = typeof args[args.length - 1] === "function" ? args.pop() : null;
    // a Buffer shown as one: JSON.stringify would make it {"type": "Buffer", ...}, as a
    // server-side emit in JSON brings it
    const shown = args.map((a) => (Buffer.isBuffer(a) ? { $bin: a.toString("base64") } : a));
    print({ ev: "server_side", event: "hello", args: shown });
    if (ack) ack({ node: "js" });
  });
  if (forEmitter !== null) emitter = new Emitter(forEmitter, { key });
  await new Promise((resolve) => httpServer.listen(Number(portArg), "127.0.0.1", resolve));
}

function target(base, cmd) {
  let op = base.of(cmd.nsp || "/");
  if (cmd.room) op = op.to(cmd.room);
  return op;
}

const handlers = {
  connect(cmd) {
    const socket = connect(cmd.url, {
      forceNew: true,
      transports: cmd.transports || ["polling", "websocket"],
      reconnectionDelay: 100,
      reconnectionDelayMax: 500,
    });
    const name = cmd.name;
    clients.set(name, socket);
    socket.on("connect", () => print({ ev: "connect", name, id: socket.id }));
    socket.on("disconnect", (reason) => print({ ev: "disconnect", name, reason }));
    socket.on("connect_error", (err) =>
      print({ ev: "connect_error", name, message: String(err && err.message) }));
    socket.onAny((event, ...args) => {
      if (args.length && typeof args[args.length - 1] === "function") args.pop()(name);
      print({ ev: "got", name, event, args });
    });
  },
  close(cmd) {
    for (const socket of clients.values()) socket.disconnect();
    print({ ev: "closed", tag: cmd.tag });
  },
  emit(cmd) {
    clients.get(cmd.name).emit(cmd.event, ...(cmd.args || []), (...answer) =>
      print({ ev: "ack", tag: cmd.tag, args: answer }));
  },
  io_emit(cmd) {
    target(io, cmd).emit(cmd.event, ...(cmd.args || []));
    print({ ev: "done", tag: cmd.tag });
  },
  io_acks(cmd) {
    target(io, cmd).timeout(5000).emit(cmd.event, ...(cmd.args || []), (err, responses) =>
      print({ ev: "io_acks", tag: cmd.tag, error: err ? String(err.message) : null, responses }));
  },
  emitter(cmd) {
    target(emitter, cmd).emit(cmd.event, ...(cmd.args || []));
    print({ ev: "done", tag: cmd.tag });
  },
  async fetch(cmd) {
    let op = io.of(cmd.nsp || "/");
    if (cmd.room) op = op.in(cmd.room);
    const sockets = await op.fetchSockets();
    print({ ev: "fetched", tag: cmd.tag, ids: sockets.map((s) => s.id) });
  },
  sse(cmd) {
    const args = cmd.args || [];
    if (cmd.ack) {
      io.serverSideEmit(cmd.event, ...args, (err, responses) => {
        const error = err ? String(err.message) : null;
        print({ ev: "sse_acks", tag: cmd.tag, error, responses });
      });
    } else {
      io.serverSideEmit(cmd.event, ...args);
      print({ ev: "done", tag: cmd.tag });
    }
  },
  async numsub(cmd) {
    print({ ev: "numsub", tag: cmd.tag, count: await io.of("/").adapter.serverCount() });
  },
};

async function exit() {
  for (const socket of clients.values()) socket.disconnect();
  if (io) io.close();
  await Promise.allSettled(redisClients.map((client) => client.quit()));
  process.exit(0);
}

async function main() {
  if (portArg !== "-") await startServer();
  print({ ev: "ready" });
  readline.createInterface({ input: process.stdin }).on("line", (line) => {
    if (!line.trim()) return;
    let cmd;
    try {
      cmd = JSON.parse(line);
      const handler = handlers[cmd.op];
      if (handler === undefined) throw new Error(`unknown op ${cmd.op}`);
      Promise.resolve(handler(cmd)).catch((err) =>
        print({ ev: "error", tag: cmd.tag, message: String(err && err.stack ? err.stack : err) }));
    } catch (err) {
      print({ ev: "error", message: String(err && err.stack ? err.stack : err) });
    }
  }).on("close", exit);
}

main().catch((err) => {
  print({ ev: "error", message: String(err && err.stack ? err.stack : err) });
  process.exit(1);
});
"""


# --- helpers -------------------------------------------------------------------------------------


def redis_args(redis_url: str, prefix: str, *extra: str) -> tuple[str, ...]:
    # a short drain: the tests end their clients first, so there is nothing left to wait for
    return (APP, "--store", redis_url, "--store-key", prefix, "--shutdown-timeout", "5", *extra)


async def start_node_server(*args: str, workers: int, name: str, log_path: Path) -> ServerProcess:
    """A sio_core node; ready once every worker said it listens (its store started before)."""
    server = ServerProcess(
        *args, "--workers", str(workers), "--node-id", f"node{name}",
        log_path=log_path, env={"SIO_TEST_NODE": name},
    )  # fmt: skip
    await server.start()
    try:
        await server.wait_for_log("(?s)" + ".*".join(["listening on http"] * workers), timeout=10)
    except BaseException:
        await server.stop()
        raise
    return server


def assert_clean_log(server: ServerProcess) -> None:
    text = server.log_text()
    assert "Traceback" not in text, text
    assert " ERROR " not in text, text


async def scan_keys(client: aioredis.Redis, pattern: str) -> list[bytes]:
    return [key async for key in client.scan_iter(match=pattern, count=1000)]


@contextlib.asynccontextmanager
async def redis_client(url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(url)
    try:
        yield client
    finally:
        await client.aclose()


async def start_peer(tmp_path: Path, *args: str) -> NodeProcess:
    script = tmp_path / "peer.js"
    if not script.exists():
        script.write_text(PEER_JS)
    peer = await start_node(script, *args)
    try:
        await peer.next_event({"ev": "ready"}, timeout=10)
    except BaseException:
        await peer.aclose()
        raise
    return peer


class Peer:
    """Commands to the peer script, and what its clients received."""

    def __init__(self, node: NodeProcess) -> None:
        self.node = node
        self._tags = 0

    def _tag(self) -> str:
        self._tags += 1
        return f"t{self._tags}"

    async def call(self, op: str, answer: str, timeout: float = 10.0, **fields: Any) -> JsonObject:
        tag = self._tag()
        await self.node.send({"op": op, "tag": tag, **fields})
        event = await self.node.next_event(
            lambda e: e.get("tag") == tag and e.get("ev") in (answer, "error"), timeout=timeout
        )
        assert event["ev"] == answer, event
        return event

    async def connect(self, name: str, url: str, transports: list[str] | None = None) -> str:
        await self.node.send({"op": "connect", "name": name, "url": url, "transports": transports})
        event = await self.node.next_event({"ev": "connect", "name": name}, timeout=10)
        return str(event["id"])

    async def emit(self, name: str, event: str, *args: Any) -> list[Any]:
        """The client emits with an ack; what the ack received."""
        reply = await self.call("emit", "ack", name=name, event=event, args=list(args))
        return list(reply["args"])

    async def wait_got(self, name: str, event: str, timeout: float = 5.0) -> list[Any]:
        found = await self.node.next_event(
            {"ev": "got", "name": name, "event": event}, timeout=timeout
        )
        return list(found["args"])

    def troubles(self) -> list[JsonObject]:
        return [
            e
            for e in self.node.events
            if e.get("ev") in ("disconnect", "connect_error", "error", "redis_error")
        ]


# --- 1. two nodes behind a round-robin proxy -----------------------------------------------------


class Clients:
    """tests/js/cluster_clients.js: many socket.io-client connections in one node process."""

    def __init__(self, node: NodeProcess) -> None:
        self.node = node
        self._tags = 0

    async def command(self, answer: str | None, timeout: float = 10.0, **cmd: Any) -> JsonObject:
        self._tags += 1
        tag = f"c{self._tags}"
        await self.node.send({**cmd, "tag": tag})
        if answer is None:
            return {}
        return await self.node.next_event(
            lambda e: e.get("ev") == answer and e.get("tag") == tag, timeout=timeout
        )

    def troubles(self) -> list[JsonObject]:
        return [
            e for e in self.node.events if e.get("ev") in ("disconnect", "connect_error", "error")
        ]


@pytest.mark.interop
async def test_two_nodes_behind_a_round_robin_proxy(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    # short heartbeats: a dozen ping/pong cycles cross the proxy and the forwarding in the soak
    args = redis_args(redis_url, redis_prefix, "--ping-interval", "2", "--ping-timeout", "5")
    node_a = await start_node_server(*args, workers=2, name="A", log_path=tmp_path / "a.log")
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(node_a.stop)
        node_b = await start_node_server(*args, workers=1, name="B", log_path=tmp_path / "b.log")
        stack.push_async_callback(node_b.stop)
        proxy = await stack.enter_async_context(
            RoundRobinProxy([(node_a.host, node_a.port), (node_b.host, node_b.port)])
        )
        node = await stack.enter_async_context(await start_node(CLUSTER_CLIENTS, proxy.url))
        clients = Clients(node)

        polling = [f"p{i}" for i in range(10)]
        upgrading = [f"u{i}" for i in range(10)]
        everyone = polling + upgrading
        even = everyone[::2]
        await node.send({"op": "open", "group": "p", "count": 10, "transports": ["polling"]})
        await node.send({"op": "open", "group": "u", "count": 10})
        await node.next_event({"ev": "opened", "group": "p"}, timeout=15)
        await node.next_event({"ev": "opened", "group": "u"}, timeout=15)
        await clients.command("waited", op="wait", names=upgrading, event="$upgrade", count=1)

        owners = await clients.command("acks", op="emit", names=everyone, event="whoami", ack=True)
        nodes = {name: who["node"] for name, who in owners["acks"].items()}
        assert set(nodes.values()) == {"A", "B"}, nodes  # sessions owned on both nodes
        await clients.command("acks", op="emit", names=even, event="join", args=["even"], ack=True)

        # rounds of chat (each to everyone else) and of a room broadcast, for SOAK_SECONDS
        loop = asyncio.get_running_loop()
        started = loop.time()
        rounds = 0
        while rounds == 0 or loop.time() - started < SOAK_SECONDS:
            rounds += 1
            await clients.command(
                "acks", op="emit", names=everyone, event="chat", args=[[rounds, "$name"]], ack=True
            )
            sender = everyone[rounds % len(everyone)]
            await clients.command(
                "acks", op="emit", names=[sender], event="bcast",
                args=["even", "even_msg", f"{rounds}:{sender}"], ack=True,
            )  # fmt: skip
            await clients.command(
                "waited", op="wait", names=everyone, event="chat", count=rounds * 19
            )
            await clients.command("waited", op="wait", names=even, event="even_msg", count=rounds)
            # pace the rounds over the soak: the time passing is the point here
            await asyncio.sleep(max(0.0, started + rounds * 3.0 - loop.time()))
        assert loop.time() - started >= SOAK_SECONDS

        # a fence: once everyone has it, every earlier message has arrived (or never will)
        await clients.command(
            "acks", op="emit", names=["p0"], event="bcast", args=[None, "fence", 1], ack=True
        )
        await clients.command("waited", op="wait", names=everyone, event="fence", count=1)
        stats = (await clients.command("stats", op="stats", names=everyone))["clients"]

        assert clients.troubles() == []
        for name, client in stats.items():
            assert client["connected"], (name, client)
            assert len(client["sids"]) == 1, (name, client["sids"])  # no reconnection
            assert "$disconnect" not in client["received"], (name, client["received"])
            expected_transport = "polling" if name in polling else "websocket"
            assert client["transport"] == expected_transport, (name, client["transport"])
            # every other client's chat of every round, exactly once
            chats = Counter(tuple(chat) for chat in client["received"].get("chat", []))
            expected = Counter(
                (r, other) for r in range(1, rounds + 1) for other in everyone if other != name
            )
            assert chats == expected, (name, chats - expected, expected - chats)
            rooms = Counter(client["received"].get("even_msg", []))
            if name in even:
                senders = [everyone[r % len(everyone)] for r in range(1, rounds + 1)]
                assert rooms == Counter(f"{r}:{s}" for r, s in enumerate(senders, 1)), (name, rooms)
            else:
                assert rooms == Counter(), (name, rooms)
            assert client["received"]["fence"] == [1], name
        # no stickiness: both nodes took connections
        assert all(count > 0 for count in proxy.counts), proxy.counts
        assert proxy.refused == 0
        # the clients leave; their sessions end on every node
        await clients.command(None, op="close", group="p")
        await clients.command(None, op="close", group="u")
        await wait_sessions_gone(node_a, node_b)
    for server in (node_a, node_b):
        assert server.returncode == 0, server.log_text()
        assert_clean_log(server)


# --- 2. a mixed fleet: the JavaScript adapter and emitter ----------------------------------------


@contextlib.asynccontextmanager
async def mixed_fleet(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> AsyncIterator[tuple[ServerProcess, Peer, dict[str, str]]]:
    """A sio_core node of two workers ("P"), and the peer script's JavaScript server on the same
    Redis and key, with the peer's clients "js" (on the JavaScript server), "py" and "py2" (on
    the node): (the node, the peer, name -> socket id). Both stop at the end."""
    py = await start_node_server(
        *redis_args(redis_url, redis_prefix), workers=2, name="P", log_path=tmp_path / "py.log"
    )
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(py.stop)
        js_port = free_port()
        peer = Peer(
            await stack.enter_async_context(
                await start_peer(tmp_path, redis_url, redis_prefix, str(js_port))
            )
        )
        # the JavaScript adapter counts its servers with PUBSUB NUMSUB: itself + 2 sio_core workers
        assert (await peer.call("numsub", "numsub"))["count"] == 3
        ids = {
            "js": await peer.connect("js", f"http://127.0.0.1:{js_port}"),
            "py": await peer.connect("py", py.url),
            "py2": await peer.connect("py2", py.url),
        }
        yield py, peer, ids


@pytest.mark.interop
async def test_javascript_adapter_and_emitter_interop(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    async with mixed_fleet(redis_url, redis_prefix, tmp_path) as (py, peer, ids):
        ids["pyadmin"] = await peer.connect("pyadmin", py.url + "/admin")
        assert await peer.emit("js", "join", "room1") == ["js"]
        assert await peer.emit("py", "join", "room1") == ["P"]
        assert await peer.emit("pyadmin", "join", "room1") == ["P"]

        # JavaScript server -> sio_core clients (and its own)
        await peer.call("io_emit", "done", event="from_js", args=[{"n": 1}])
        await peer.call("io_emit", "done", room="room1", event="from_js_room", args=["r"])
        for name in ("js", "py", "py2"):
            assert await peer.wait_got(name, "from_js") == [{"n": 1}]
        for name in ("js", "py"):
            assert await peer.wait_got(name, "from_js_room") == ["r"]

        # sio_core -> the JavaScript server's client (and sio_core's own)
        assert await peer.emit("py2", "bcast", None, "from_py", [1, "two"]) == ["sent"]
        assert await peer.emit("py2", "bcast", "room1", "from_py_room", "r") == ["sent"]
        for name in ("js", "py", "py2"):
            assert await peer.wait_got(name, "from_py") == [[1, "two"]]
        for name in ("js", "py"):
            assert await peer.wait_got(name, "from_py_room") == ["r"]

        # the emitter: by namespace, and by namespace and room
        await peer.call("emitter", "done", event="from_emitter", args=["all"])
        await peer.call("emitter", "done", room="room1", event="from_emitter_room", args=["r"])
        await peer.call(
            "emitter", "done", nsp="/admin", room="room1", event="from_emitter_admin", args=["a"]
        )
        for name in ("js", "py", "py2"):
            assert await peer.wait_got(name, "from_emitter") == ["all"]
        for name in ("js", "py"):
            assert await peer.wait_got(name, "from_emitter_room") == ["r"]
        assert await peer.wait_got("pyadmin", "from_emitter_admin") == ["a"]

        # io.fetchSockets() on the JavaScript server sees sio_core's sockets (REMOTE_FETCH)
        fetched = await peer.call("fetch", "fetched")
        assert sorted(fetched["ids"]) == sorted([ids["js"], ids["py"], ids["py2"]])
        in_room = await peer.call("fetch", "fetched", room="room1")
        assert sorted(in_room["ids"]) == sorted([ids["js"], ids["py"]])
        admin = await peer.call("fetch", "fetched", nsp="/admin")
        assert admin["ids"] == [ids["pyadmin"]]

        # io.serverSideEmit reaches sio_core's io.on("hello") on each worker, with and without ack
        await peer.call("sse", "done", event="hello", args=[1, "two"])
        await py.wait_for_log(r'(?s)server-side hello \[1, "two"\].*server-side hello \[1, "two"\]')
        answers = await peer.call("sse", "sse_acks", event="hello", args=["ack?"], ack=True)
        assert answers["error"] is None, answers
        assert sorted(a["worker"] for a in answers["responses"]) == ["1", "2"], answers

        # a fence down every path, then: each message arrived exactly once, nowhere else
        await peer.call("io_emit", "done", event="fence_js")
        await peer.emit("py2", "bcast", None, "fence_py", None)
        await peer.call("emitter", "done", event="fence_emitter")
        await peer.call("emitter", "done", nsp="/admin", event="fence_emitter")
        for name in ("js", "py", "py2"):
            for fence in ("fence_js", "fence_py", "fence_emitter"):
                await peer.wait_got(name, fence)
        await peer.wait_got("pyadmin", "fence_emitter")
        expected = {
            "js": {"from_js", "from_js_room", "from_py", "from_py_room", "from_emitter",
                   "from_emitter_room", "fence_js", "fence_py", "fence_emitter"},
            "py": {"from_js", "from_js_room", "from_py", "from_py_room", "from_emitter",
                   "from_emitter_room", "fence_js", "fence_py", "fence_emitter"},
            "py2": {"from_js", "from_py", "from_emitter", "fence_js", "fence_py",
                    "fence_emitter"},
            "pyadmin": {"from_emitter_admin", "fence_emitter"},
        }  # fmt: skip
        for name, events in expected.items():
            got = Counter(
                e["event"] for e in peer.node.events if e.get("ev") == "got" and e["name"] == name
            )
            assert got == Counter(dict.fromkeys(events, 1)), (name, got)
        assert peer.troubles() == []
        assert len(py.log_text().split("server-side hello")) - 1 == 4  # 2 emits x 2 workers
        await peer.call("close", "closed")
        await wait_sessions_gone(py)
    assert py.returncode == 0
    assert_clean_log(py)


@pytest.mark.interop
async def test_requests_from_sio_core_reach_javascript_servers(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    """What sio_core asks the fleet (fetch_sockets, a broadcast with acks, a server-side emit
    with an ack) reaches a JavaScript server on the same Redis as it reaches sio_core's other
    workers: counted with PUBSUB NUMSUB and asked in the JavaScript adapter's format."""
    async with mixed_fleet(redis_url, redis_prefix, tmp_path) as (py, peer, ids):
        for name in ids:
            assert len(await peer.emit(name, "join", "room1")) == 1

        for asker in ("py", "py2"):  # from the worker of each (the same one, or not)
            # fetch_sockets: the JavaScript server's socket too, with its handshake
            [fetched] = await peer.emit(asker, "fetch", "room1")
            assert sorted(fetched["ids"]) == sorted(ids.values()), (asker, fetched)
            assert fetched["addresses"] == ["127.0.0.1"], fetched
            # a broadcast with acks: every client of the room, on every server, answers
            [acked] = await peer.emit(asker, "bcast_acks", "room1", 10)
            assert acked == {"responses": ["js", "py", "py2"], "timed_out": False}, acked
            # a server-side emit with an ack: the JavaScript server's answer, and the other
            # sio_core worker's
            [answers] = await peer.emit(asker, "sse_ack")
            assert {"node": "js"} in answers, answers
            assert len(answers) == 2, answers
        assert peer.troubles() == []
        await peer.call("close", "closed")
        await wait_sessions_gone(py)
    assert py.returncode == 0
    assert_clean_log(py)


# --- 3. resilience -------------------------------------------------------------------------------


async def test_unreachable_redis_at_start(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    url = f"redis://127.0.0.1:{port}/0"
    for workers in ("1", "2"):
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sio_core", "serve", APP, "--store", url,
            "--workers", workers, "--host", "127.0.0.1", "--port", str(free_port()),
            cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            output, _ = await asyncio.wait_for(proc.communicate(), scaled(10))
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        text = output.decode(errors="replace")
        assert proc.returncode not in (0, None), text
        assert time.monotonic() - started < scaled(5), text
        lines = [line for line in text.splitlines() if url in line]
        assert len(lines) == 1, text
        assert "cannot reach Redis" in lines[0], text
        assert "Traceback" not in text, text


class PrivateRedis:
    """A redis-server of this test's own on a fixed port, to shut down and start again."""

    def __init__(self, binary: str, workdir: Path, port: int) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = port
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        with (self.workdir / "redis.log").open("ab") as log:
            self._proc = await asyncio.create_subprocess_exec(
                self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.workdir),
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
        await poll_until(self._answers, timeout=10, what=f"redis-server on port {self.port}")

    async def _answers(self) -> bool:
        assert self._proc is not None
        if self._proc.returncode is not None:
            log = (self.workdir / "redis.log").read_text(errors="replace")
            raise RuntimeError(f"redis-server exited: {log[-2000:]}")
        try:
            async with redis_client(self.url) as client:
                return bool(await client.ping())
        except (aioredis.ConnectionError, OSError):
            return False

    async def shutdown(self) -> None:
        """SHUTDOWN NOSAVE, as an operator would; then wait for the process to end."""
        async with redis_client(self.url) as client:
            with contextlib.suppress(aioredis.ConnectionError):
                await client.execute_command("SHUTDOWN", "NOSAVE")
        if self._proc is not None:
            await asyncio.wait_for(self._proc.wait(), scaled(10))

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), scaled(5))
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def poll_until(
    condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + scaled(timeout)
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() >= deadline:
            raise TimeoutError(f"{what}: not within {scaled(timeout):.1f}s")
        await asyncio.sleep(interval)


async def store_health(server: ServerProcess) -> JsonObject:
    """The store's part of the node's /_sio_core/health (one worker per node here)."""
    import aiohttp

    async with aiohttp.ClientSession() as http, \
            http.get(server.url + "/_sio_core/health") as resp:
        health: JsonObject = (await resp.json())["store_health"]
        return health


async def health_says(server: ServerProcess, check: Callable[[JsonObject], bool]) -> bool:
    return check(await store_health(server))


async def broadcasts_flow(peer: Peer, tag: str, timeout: float) -> float:
    """Until a broadcast from each node's client reaches the other node's client: the seconds
    it took. Probes are re-sent until then (while Redis is back but not yet resubscribed, some
    are lost: that is expected)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + scaled(timeout)
    for sender, receiver in (("a", "b"), ("b", "a")):
        attempt = 0
        while True:
            attempt += 1
            value = f"{tag}:{sender}:{attempt}"
            assert await peer.emit(sender, "bcast", None, "probe", value) == ["sent"]
            try:
                await peer.node.next_event(
                    lambda e, v=value, r=receiver: (
                        e.get("ev") == "got"
                        and e.get("name") == r
                        and e.get("event") == "probe"
                        and e.get("args") == [v]
                    ),
                    timeout=0.5,
                )
                break
            except TimeoutError:
                if loop.time() >= deadline:
                    raise
    return loop.time() - started


@pytest.mark.interop
async def test_redis_restart_and_pubsub_kill(redis_prefix: str, tmp_path: Path) -> None:
    binary = redis_server_binary()
    if binary is None:
        pytest.skip(
            "no redis-server binary for a private Redis to restart (apt-get install "
            "redis-server, or `bash scripts/setup.sh --dev`)"
        )
    redis = PrivateRedis(binary, tmp_path, free_port())
    await redis.start()
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(redis.stop)
        args = redis_args(redis.url, redis_prefix)
        node_a = await start_node_server(*args, workers=1, name="A", log_path=tmp_path / "a.log")
        stack.push_async_callback(node_a.stop)
        node_b = await start_node_server(*args, workers=1, name="B", log_path=tmp_path / "b.log")
        stack.push_async_callback(node_b.stop)
        peer = Peer(await stack.enter_async_context(await start_peer(tmp_path, "-", "-", "-")))
        # websocket only: each session lives on the one worker its connection reached, so
        # the clients stay connected through the outage (no request needs forwarding)
        await peer.connect("a", node_a.url, ["websocket"])
        await peer.connect("b", node_b.url, ["websocket"])
        await broadcasts_flow(peer, "before", timeout=5)

        for server in (node_a, node_b):
            health = await store_health(server)
            assert health["connected"] and health["reconnects"] == 0, health
            assert health["subscriber_down_seconds"] == 0, health
            assert health["publish_failed"] == health["queue_dropped"] == 0, health

        # Redis down: the subscriber is seen down, and what is published meanwhile cannot
        # go out: counted (the broadcast of the client of A reaches its own node only)
        await redis.shutdown()
        assert await peer.emit("a", "bcast", None, "probe", "while down") == ["sent"]
        await poll_until(lambda: health_says(node_a, lambda h: h["publish_failed"] >= 1
                                             and not h["connected"]),
                         timeout=10, what="node A counting a failed publish")
        # Redis back (its data lost): broadcasts come back within a few seconds
        await redis.start()
        took = await broadcasts_flow(peer, "restart", timeout=8)
        for server in (node_a, node_b):
            await server.wait_for_log(r"Redis subscription restored \(reconnect #1\)", timeout=5)
            health = await store_health(server)
            assert health["connected"] and health["reconnects"] == 1, health
            assert health["subscriber_down_seconds"] > 0, health
        print(f"broadcasts resumed {took:.1f}s after Redis restarted;"
              f" node A: {await store_health(node_a)}")

        # the subscriber connections killed: likewise
        down_before = {server: (await store_health(server))["subscriber_down_seconds"]
                       for server in (node_a, node_b)}
        async with redis_client(redis.url) as client:
            killed = await client.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        assert killed >= 2, killed
        took = await broadcasts_flow(peer, "kill", timeout=8)
        for server in (node_a, node_b):
            await server.wait_for_log(r"Redis subscription restored \(reconnect #2\)", timeout=5)
            health = await store_health(server)
            assert health["connected"] and health["reconnects"] == 2, health
            assert health["subscriber_down_seconds"] > down_before[server], health
        print(f"broadcasts resumed {took:.1f}s after CLIENT KILL TYPE pubsub;"
              f" node A: {await store_health(node_a)}")

        assert peer.troubles() == []
        for server in (node_a, node_b):
            assert server.returncode is None, server.log_text()
        await peer.call("close", "closed")
        await wait_sessions_gone(node_a, node_b)
    for server in (node_a, node_b):
        assert server.returncode == 0, server.log_text()
        assert "Traceback" not in server.log_text(), server.log_text()


# --- 4. 1,000 sessions leave nothing behind ------------------------------------------------------


async def test_nothing_left_after_1000_clients(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    import aiohttp
    from websockets.asyncio.client import connect

    server = await start_node_server(
        *redis_args(redis_url, redis_prefix), workers=2, name="R", log_path=tmp_path / "r.log"
    )
    ws_url = f"ws://{server.host}:{server.port}/socket.io/?EIO=4&transport=websocket"
    http_url = f"{server.url}/socket.io/?EIO=4&transport=polling"
    batch, websocket_batches, polling_batches = 100, 8, 2

    async def websocket_session(stack: contextlib.AsyncExitStack) -> None:
        ws = await stack.enter_async_context(connect(ws_url, open_timeout=scaled(10)))
        opening = await ws.recv()
        assert isinstance(opening, str) and opening.startswith("0{"), opening
        await ws.send("40")
        connected = await ws.recv()
        assert isinstance(connected, str) and connected.startswith("40{"), connected

    async def polling_session(http: aiohttp.ClientSession) -> str:
        async with http.get(http_url) as response:
            text = await response.text()
            assert response.status == 200, text
        sid = json.loads(text[1:])["sid"]
        async with http.post(f"{http_url}&sid={sid}", data="40") as response:
            assert response.status == 200, await response.text()
        async with http.get(f"{http_url}&sid={sid}") as response:
            text = await response.text()
            assert text.startswith("40{"), text
        return str(sid)

    async def polling_close(http: aiohttp.ClientSession, sid: str) -> None:
        async with http.post(f"{http_url}&sid={sid}", data="1") as response:
            assert response.status == 200, await response.text()

    try:
        async with redis_client(redis_url) as client:
            started = time.monotonic()
            for index in range(websocket_batches):
                async with contextlib.AsyncExitStack() as stack:
                    await asyncio.gather(*(websocket_session(stack) for _ in range(batch)))
                    if index == 0:  # while they are connected, the workers hold them
                        healths = await health_of_each_worker(server)
                        assert sum(h["sessions"] for h in healths.values()) >= batch, healths
            timeout = aiohttp.ClientTimeout(total=scaled(10))
            connector = aiohttp.TCPConnector(limit=batch)
            async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
                for _ in range(polling_batches):
                    sids = await asyncio.gather(*(polling_session(http) for _ in range(batch)))
                    await asyncio.gather(*(polling_close(http, sid) for sid in sids))
            print(
                f"{(websocket_batches + polling_batches) * batch} sessions in "
                f"{time.monotonic() - started:.1f}s"
            )
            await wait_sessions_gone(server, timeout=5)
            # the store's own key (its peers) and nothing per session
            keys = await scan_keys(client, f"{redis_prefix}*")
            assert keys == [f"{redis_prefix}-sio:peers".encode()], keys
    finally:
        await server.stop()
    assert server.returncode == 0, server.log_text()
    assert_clean_log(server)


async def test_a_removed_namespace_is_no_longer_followed(redis_url: str,
                                                         redis_prefix: str) -> None:
    """An empty dynamic child namespace is removed (cleanup_empty_child_namespaces): the
    cluster's link stops listening for the JavaScript servers' requests to it, as the
    JavaScript adapter's close() does, so clients joining ever new names do not grow the
    subscriptions."""
    from sio_core.socketio.redis_adapter import adapter_link
    from sio_core.stores.redis import RedisStore

    class Nobody:
        def receive(self, origin: str, message: object) -> None:
            raise AssertionError(f"nothing is sent here: {message!r} from {origin}")

    store = RedisStore(redis_url, owner="n1-w1-0000", key=redis_prefix)
    link = adapter_link(Nobody(), store)
    probe = aioredis.Redis.from_url(redis_url)
    channel = f"{redis_prefix}-request#/dyn-1#"

    async def subscribers_become(count: int) -> None:
        deadline = time.monotonic() + scaled(5)
        while (await probe.pubsub_numsub(channel))[0][1] != count:
            assert time.monotonic() < deadline, f"{channel} never had {count} subscriber(s)"
            await asyncio.sleep(0.02)  # a cadence, not a deadline

    await store.start()
    try:
        link.namespace_added("/dyn-1")
        await subscribers_become(1)
        link.namespace_removed("/dyn-1")
        await subscribers_become(0)
        link.namespace_added("/dyn-1")  # the name comes back
        await subscribers_become(1)
    finally:
        await store.close()
        await probe.aclose()
