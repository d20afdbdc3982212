"""Engine.IO through another HTTP stack than engine.io-client's: ``tests/js/fetch_eio_client.js``,
a client written from the protocol with Node's ``fetch`` (undici) for polling and Node's
``WebSocket`` (undici) for the upgrade, as other users' HTTP stacks talk to us.

What Node 20's fetch sends (undici 6, read off the wire by the client's "sent" events): by
default ``connection: keep-alive``; a caller may set ``Connection: close`` (undici then closes the
connection itself after the response), and these tests do for most requests, as node-fetch-style
clients do: every request is then a new TCP connection, so in a cluster the requests of one
session land on various workers or nodes and are forwarded to the session's owner. A ``raw``
stack (HTTP/1.1 written by hand on a TCP connection of its own) shows what no HTTP client can:
whether the server closes the connection after answering such a request (RFC 9112 9.6).

Every scenario asserts the exact wire results (statuses, bodies, packets, JSON error bodies) and,
last, that every response to a ``Connection: close`` request said ``Connection: close``. Each runs
against the reference first (the JavaScript engine.io server as an echo server,
``tests/js/eio_echo_server.js``: the expectations are its behaviour), then against three
deployments of ``sio_core.echo:app`` (every message comes back to its sender): one worker;
``serve --workers 4`` (the kernel spreads connections, the master relays); and two nodes sharing
a private redis-server behind the round-robin proxy of ``tests/proxy.py``.
The multi-process deployments log at DEBUG, so each worker's "forwarding GET of <sid> to its
owner" (sio_core/engine/forwarding.py) shows where a session's requests landed.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.conftest import delete_redis_keys, unique_redis_prefix
from tests.proxy import RoundRobinProxy
from tests.support import (
    REPO_ROOT,
    JsonObject,
    NodeProcess,
    ServerProcess,
    scaled,
    start_node,
)
from tests.test_redis import start_node_server

pytestmark = [pytest.mark.interop, pytest.mark.asyncio(loop_scope="module")]

APP = "sio_core.echo:app"
FETCH_CLIENT = REPO_ROOT / "tests" / "js" / "fetch_eio_client.js"
ECHO_SERVER = REPO_ROOT / "tests" / "js" / "eio_echo_server.js"
#: Node 20 has a global WebSocket (undici's) only behind this flag
NODE_ENV = {"NODE_OPTIONS": "--experimental-websocket"}
#: how long the raw stack waits for the server to close a `Connection: close` connection
CLOSE_WAIT = 1.0

#: the heartbeat deployments: pings every 300 ms; a client that stops answering is gone at
#: 300 ms + PING_TIMEOUT (scaled: an answering client's pong crosses the forwarding in time)
PING_INTERVAL = 0.3
PING_TIMEOUT = scaled(0.5)

WORKERS_READY = re.compile(r"\[master\] INFO sio_core\.supervisor: 4 workers ready")
OWNER = re.compile(r"[A-Za-z0-9_-]{16}\.(?P<node>[A-Za-z0-9_~-]+)-w(?P<worker>\d+)-\w+")

SESSION_UNKNOWN = '{"code":1,"message":"Session ID unknown"}'
BAD_REQUEST = '{"code":3,"message":"Bad request"}'
PLAIN = "text/plain; charset=UTF-8"
JSON_TYPE = "application/json"
SEP = "\x1e"

CONFIGS = [
    pytest.param("reference"),  # the JavaScript engine.io server: what the scenarios expect
    pytest.param("one-worker"),
    pytest.param("four-workers"),
    pytest.param("two-nodes-redis", marks=pytest.mark.redis),
]


# --- deployments ---------------------------------------------------------------------------------


@dataclass
class Deployment:
    """What the client talks to (``url``) and the server processes behind it."""

    config: str
    url: str
    servers: list[ServerProcess]
    proxy: RoundRobinProxy | None = None

    @property
    def clustered(self) -> bool:
        return self.config not in ("reference", "one-worker")

    def forwarded(self, sid: str) -> list[tuple[str, str]]:
        """(where it entered, kind) of each request of ``sid`` that was forwarded to its owner,
        in the order logged; where: '<log> [<process>]' (a node of one worker logs as its
        "[master]")."""
        pattern = re.compile(rf"(\[[^\]]+\]) DEBUG sio_core\.forwarding: forwarding"
                             rf" (GET|POST|websocket upgrade) of {re.escape(sid)} to its owner")
        return [(f"{server.log_path.name} {match[1]}", match[2]) for server in self.servers
                for match in pattern.finditer(server.log_text())]

    def log_text(self) -> str:
        return "\n".join(server.log_text() for server in self.servers)


@dataclass
class Deployments:
    """The deployments of one configuration, started on first use: with the default heartbeat,
    and with a short one (``heartbeat=True``)."""

    config: str
    directory: Path
    redis_url: str | None
    stack: contextlib.AsyncExitStack
    started: dict[bool, Deployment] = field(default_factory=dict)

    async def get(self, heartbeat: bool = False) -> Deployment:
        if heartbeat not in self.started:
            self.started[heartbeat] = await self._start(heartbeat)
        return self.started[heartbeat]

    async def _start(self, heartbeat: bool) -> Deployment:
        log = self.directory / f"{self.config}-{'heartbeat' if heartbeat else 'default'}"
        if self.config == "reference":
            timing = [PING_INTERVAL, PING_TIMEOUT] if heartbeat else []
            node = await start_node(ECHO_SERVER,
                                    *(str(round(seconds * 1000)) for seconds in timing))
            await self.stack.enter_async_context(node)
            ready = await node.next_event({"ev": "ready"}, timeout=10)
            return Deployment(self.config, f"http://127.0.0.1:{ready['port']}", [])
        # the scenarios leave sessions open: a stop has no client to wait for
        options = ("--shutdown-timeout", "1")
        if heartbeat:
            options += ("--ping-interval", str(PING_INTERVAL), "--ping-timeout", str(PING_TIMEOUT))
        if self.config == "one-worker":
            server = ServerProcess(APP, *options, log_path=log.with_suffix(".log"))
            self.stack.push_async_callback(server.stop)
            await server.start()
            return Deployment(self.config, server.url, [server])
        if self.config == "four-workers":
            server = ServerProcess(APP, "--workers", "4", "--log-level", "debug", *options,
                                   log_path=log.with_suffix(".log"), stop_timeout=15)
            self.stack.push_async_callback(server.stop)
            await server.start()
            await server.wait_for_log(WORKERS_READY, timeout=30)
            return Deployment(self.config, server.url, [server])
        assert self.redis_url is not None
        prefix = unique_redis_prefix()
        self.stack.callback(delete_redis_keys, self.redis_url, prefix)
        nodes = []
        for node_id in ("A", "B"):
            server = await start_node_server(
                APP, "--store", self.redis_url, "--store-key", prefix, "--log-level", "debug",
                *options,
                workers=1, name=node_id, log_path=log.with_name(f"{log.name}-{node_id}.log"))
            self.stack.push_async_callback(server.stop)
            nodes.append(server)
        proxy = RoundRobinProxy([(server.host, server.port) for server in nodes])
        await self.stack.enter_async_context(proxy)
        return Deployment(self.config, proxy.url, nodes, proxy)


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=CONFIGS)
async def deployments(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Deployments]:
    config: str = request.param
    redis_url = request.getfixturevalue("redis_url") if config == "two-nodes-redis" else None
    async with contextlib.AsyncExitStack() as stack:
        yield Deployments(config, tmp_path_factory.mktemp(config), redis_url, stack)


# --- the client ----------------------------------------------------------------------------------


def wire(response: JsonObject) -> tuple[int, str]:
    """(status, body) of a response event (an HTTP failure is an AssertionError)."""
    assert "error" not in response, response
    return response["status"], response["body"]


class FetchClient:
    """Commands to tests/js/fetch_eio_client.js; every request it made is kept in ``node.events``
    (its "sent" head and its "response")."""

    def __init__(self, node: NodeProcess) -> None:
        self.node = node
        self._tags = itertools.count()

    async def command(self, op: str, answer: str, timeout: float = 10.0,
                      **fields: Any) -> JsonObject:
        tag = await self.send(op, **fields)
        return await self.answer(tag, answer, timeout)

    async def send(self, op: str, **fields: Any) -> str:
        tag = f"t{next(self._tags)}"
        await self.node.send({"op": op, "tag": tag, **fields})
        return tag

    async def answer(self, tag: str, answer: str = "response",
                     timeout: float = 10.0) -> JsonObject:
        event = await self.node.next_event(
            lambda e: e.get("tag") == tag and e.get("ev") in (answer, "error"), timeout)
        assert event["ev"] == answer, event
        return event

    async def open(self, name: str, deployment: Deployment, **options: Any) -> JsonObject:
        """The handshake (options: connection, stack); asserts it succeeded."""
        response = await self.command("open", "response", name=name, url=deployment.url,
                                      **options)
        status, body = wire(response)
        assert status == 200 and body.startswith("0"), response
        return response

    async def get(self, name: str, **options: Any) -> JsonObject:
        return await self.command("get", "response", name=name, **options)

    async def start_get(self, name: str, **options: Any) -> str:
        """A GET whose answer the test awaits later (``answer(tag)``), once its head has gone out
        (so a request the test sends next is sent after it)."""
        tag = await self.send("get", name=name, **options)
        await self.answer(tag, "sent")
        return tag

    async def post(self, name: str, *packets: str, **options: Any) -> JsonObject:
        return await self.command("post", "response", name=name, packets=list(packets),
                                  **options)

    async def poll_packets(self, name: str, count: int) -> list[str]:
        """Poll until ``count`` packets came (a server may batch them or not)."""
        packets: list[str] = []
        while len(packets) < count:
            status, body = wire(await self.get(name))
            assert status == 200, (status, body, packets)
            packets.extend(body.split(SEP))
        return packets

    def exchanges(self) -> list[tuple[JsonObject, JsonObject]]:
        """(sent, response) of every request that got an answer."""
        sent = {e["tag"]: e for e in self.node.events if e.get("ev") == "sent"}
        return [(sent[e["tag"]], e) for e in self.node.events
                if e.get("ev") == "response" and e["tag"] in sent and "error" not in e]

    def assert_connection_close_honoured(self) -> None:
        """Every response to a request that said `Connection: close` says so too (RFC 9112
        9.6), and the raw stack saw the server close the connection."""
        wrong = []
        for sent, response in self.exchanges():
            if "connection: close" not in (line.lower() for line in sent["head"]):
                continue
            if response["headers"].get("connection") != "close" or response.get(
                    "serverClosed") is False:
                wrong.append((sent["head"][0], response))
        assert wrong == [], f"Connection: close ignored for {len(wrong)} requests: {wrong}"


@pytest_asyncio.fixture(loop_scope="module")
async def client() -> AsyncIterator[FetchClient]:
    async with await start_node(FETCH_CLIENT, str(round(scaled(CLOSE_WAIT) * 1000)),
                                env=NODE_ENV) as node:
        yield FetchClient(node)


def handshake_of(response: JsonObject) -> JsonObject:
    data: JsonObject = json.loads(response["body"][1:])
    return data


def sid_of(response: JsonObject) -> str:
    sid: str = handshake_of(response)["sid"]
    return sid


async def assert_landed_elsewhere(deployment: Deployment, sid: str) -> None:
    """In a cluster, some requests of ``sid`` were forwarded to its owner: they landed on
    another worker or node (the requests came on new connections)."""
    if not deployment.clustered:
        return
    assert deployment.forwarded(sid), f"no request of {sid} was forwarded:\n" \
        + deployment.log_text()[-3000:]
    if deployment.proxy is not None:
        assert all(count > 0 for count in deployment.proxy.counts), deployment.proxy.counts


# --- scenarios -----------------------------------------------------------------------------------


async def test_handshake(deployments: Deployments, client: FetchClient) -> None:
    deployment = await deployments.get()
    response = await client.open("a", deployment, connection="close")
    assert response["headers"]["content-type"] == PLAIN
    handshake = handshake_of(response)
    assert sorted(handshake) == ["maxPayload", "pingInterval", "pingTimeout", "sid", "upgrades"]
    if deployment.config != "reference":
        assert OWNER.fullmatch(handshake["sid"]), handshake  # the owner is named in the sid
    assert handshake["upgrades"] == ["websocket"]
    assert (handshake["pingInterval"], handshake["pingTimeout"]) == (25000, 20000)
    assert handshake["maxPayload"] == 1_000_000
    # what undici sent, as written on the wire
    (sent,) = [e for e in client.node.events if e.get("ev") == "sent"]
    assert sent["head"][0].startswith("GET /socket.io/?EIO=4&transport=polling&t=")
    assert "connection: close" in sent["head"]
    client.assert_connection_close_honoured()


@pytest.mark.parametrize("connection", ["close", "keep-alive"])
async def test_polling_send_and_receive(
    deployments: Deployments, client: FetchClient, connection: str
) -> None:
    deployment = await deployments.get()
    # keep-alive: undici's default (no header set); close: `Connection: close` on each request
    options = {"connection": "close"} if connection == "close" else {}
    sid = sid_of(await client.open("a", deployment, **options))
    for round_ in range(4):
        # a poll waits for the echo of what the next POST sends: one text, one binary message
        pending = await client.start_get("a")
        text, binary = f"4hello, wörld {round_} ✓", "bAAEC/w=="
        assert wire(await client.post("a", text, binary)) == (200, "ok")
        status, body = wire(await client.answer(pending))
        assert status == 200
        packets = body.split(SEP)
        packets += await client.poll_packets("a", 2 - len(packets))
        assert packets == [text, binary]
    # several packets in one payload, the echoes in order
    assert wire(await client.post("a", "4x", "4y", "4z")) == (200, "ok")
    assert await client.poll_packets("a", 3) == ["4x", "4y", "4z"]
    # what undici wrote: its own default, or the header the client set
    sent_heads = [sent["head"] for sent, _ in client.exchanges()]
    assert all(f"connection: {connection}" in head for head in sent_heads), sent_heads
    ports = [sent["port"] for sent, _ in client.exchanges()]
    if connection == "close":
        assert len(set(ports)) == len(ports), ports  # a new connection for each request
        await assert_landed_elsewhere(deployment, sid)
    client.assert_connection_close_honoured()


async def test_heartbeat_answered_over_polling(
    deployments: Deployments, client: FetchClient
) -> None:
    deployment = await deployments.get(heartbeat=True)
    response = await client.open("a", deployment, connection="close")
    sid = sid_of(response)
    handshake = handshake_of(response)
    assert (handshake["pingInterval"], handshake["pingTimeout"]) == (
        round(PING_INTERVAL * 1000), round(PING_TIMEOUT * 1000))
    result = await client.command("heartbeat", "heartbeat", name="a", pings=5, timeout=15)
    assert result["ok"], result
    assert result["received"] == ["2"] * 5  # pings only, one a poll
    # the first ping is due one interval after the handshake, each next one an interval after
    # the pong (a few ms of leeway for the clocks of two processes)
    pings = result["pings"]
    gaps = [later - earlier for earlier, later in itertools.pairwise([0, *pings])]
    assert min(gaps) >= PING_INTERVAL * 1000 - 20, pings
    # still there: a message comes back
    assert wire(await client.post("a", "4still here")) == (200, "ok")
    assert await client.poll_packets("a", 1) == ["4still here"]
    assert f"close {sid}" not in deployment.log_text()
    await assert_landed_elsewhere(deployment, sid)
    client.assert_connection_close_honoured()


async def test_silent_client_is_closed_on_time(
    deployments: Deployments, client: FetchClient
) -> None:
    deployment = await deployments.get(heartbeat=True)
    sid_of(await client.open("a", deployment, connection="close"))
    ping = await client.get("a")
    assert wire(ping) == (200, "2")
    assert ping["ms"] >= PING_INTERVAL * 1000 - 20, ping
    # no pong: the next poll is held until the server gives up on the client
    gone = await client.get("a")
    assert wire(gone) == (200, "1")
    due = (PING_INTERVAL + PING_TIMEOUT) * 1000
    assert due - 20 <= gone["ms"] <= due + scaled(0.5) * 1000, (gone["ms"], due)
    assert wire(await client.get("a")) == (400, SESSION_UNKNOWN)
    client.assert_connection_close_honoured()
    # (not asserted that some request landed elsewhere: with four requests on four workers,
    # all of them meet the owner in one run of 64; the other scenarios make more requests)


#: sessions in the close scenario, so that some have their pending GET and their POST enter
#: through one process and others through two (behind the round-robin proxy, sessions opened
#: one after the other have owners on alternate nodes while their polls land on the same node)
CLOSING_SESSIONS = 8


async def test_client_close(deployments: Deployments, client: FetchClient) -> None:
    deployment = await deployments.get()
    names = [f"s{index}" for index in range(CLOSING_SESSIONS)]
    sids = [sid_of(await client.open(name, deployment, connection="close")) for name in names]
    for name, sid in zip(names, sids, strict=True):
        # the POST goes out once the poll's head is on the wire: the poll is pending first
        pending = await client.start_get(name)
        assert wire(await client.post(name, "1")) == (200, "ok")
        poll = wire(await client.answer(pending))
        # where each entered: the owner itself, or the process that forwarded it
        entered = {kind: where for where, kind in deployment.forwarded(sid)}
        if entered.get("GET") == entered.get("POST"):
            # in order: the pending poll ends with a noop (reference: polling onClose)
            assert poll == (200, "6"), (sid, entered)
        else:
            # through two processes, their order at the owner is not guaranteed (README,
            # "Order of a session's requests": the client's own close may overtake its
            # pending GET): the GET finds the session open (6) or already gone
            assert poll in ((200, "6"), (400, SESSION_UNKNOWN)), (sid, entered)
    for name in names:
        for response in (await client.get(name), await client.post(name, "4late")):
            assert wire(response) == (400, SESSION_UNKNOWN)
            assert response["headers"]["content-type"] == JSON_TYPE
    client.assert_connection_close_honoured()
    for sid in sids:
        await assert_landed_elsewhere(deployment, sid)


async def test_upgrade_to_websocket(deployments: Deployments, client: FetchClient) -> None:
    deployment = await deployments.get()
    sid = sid_of(await client.open("a", deployment, connection="close"))
    pending = await client.start_get("a")
    upgraded = await client.command("upgrade", "upgraded", name="a")
    assert upgraded.get("probe") == "3probe", upgraded
    # the poll pending during the upgrade was ended with a noop before the client sent "5"
    assert wire(await client.answer(pending)) == (200, "6")
    for text in ("4over the websocket", "4second ✓"):
        await client.command("ws_send", "ws_sent", name="a", data=text)
        frame = await client.node.next_event({"ev": "frame", "name": "a"})
        assert frame == {"ev": "frame", "name": "a", "data": text}  # no stray "6" before it
    # polling for the sid is refused now (reference: 400 code 3)
    assert wire(await client.get("a")) == (400, BAD_REQUEST)
    assert wire(await client.post("a", "4via polling")) == (400, BAD_REQUEST)
    # the websocket carries on
    await client.command("ws_send", "ws_sent", name="a", data="4after")
    assert await client.node.next_event({"ev": "frame", "name": "a"}) == {
        "ev": "frame", "name": "a", "data": "4after"}
    assert [e for e in client.node.events if e.get("ev") == "ws_close"] == []
    client.assert_connection_close_honoured()
    await assert_landed_elsewhere(deployment, sid)


async def test_connection_close_closes_the_connection(
    deployments: Deployments, client: FetchClient
) -> None:
    """The raw stack: after answering a `Connection: close` request, the server closes the
    connection (a handshake, a POST, a poll, an error)."""
    deployment = await deployments.get()
    raw = {"stack": "raw", "connection": "close"}
    response = await client.open("a", deployment, **raw)
    assert response["headers"].get("connection") == "close", response
    assert response["serverClosed"], response
    assert wire(await client.post("a", "4raw", **raw)) == (200, "ok")
    assert await client.poll_packets("a", 1) == ["4raw"]
    assert wire(await client.get("a", sid="forged", **raw)) == (400, SESSION_UNKNOWN)
    client.assert_connection_close_honoured()
