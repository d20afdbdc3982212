"""The cluster's link (sio_core.socketio.link, and on Redis sio_core.socketio.redis_adapter):
requests to every server of a namespace, counted and gathered, on every backend of the store
contract suite (tests/test_store_contract.py). On Redis they travel in the JavaScript adapter's
format, so that JavaScript servers on the same Redis are among them (tests/test_redis.py has
those)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from sio_core.socketio.adapter import BroadcastOptions
from sio_core.socketio.link import PeerLink
from sio_core.socketio.messages import ClusterMessage, FetchSockets, ServerSideEmit
from sio_core.socketio.redis_adapter import AdapterFormat, adapter_link
from sio_core.stores.base import Store
from sio_core.stores.redis import RedisStore
from tests.test_store_contract import BACKENDS, SHORT, WAIT, Cluster, open_cluster

Link = PeerLink | AdapterFormat


class Server:
    """What a Cluster does with the requests it is sent: answers them with ``answer``."""

    def __init__(self, answer: Callable[[ClusterMessage], Any]) -> None:
        self.answer = answer
        self.received: list[ClusterMessage] = []

    def receive(self, origin: str, message: ClusterMessage) -> Any:
        self.received.append(message)
        return self.answer(message)


class Links:
    """The link of each worker of a cluster, made with its store (before it starts)."""

    def __init__(self, cluster: Cluster) -> None:
        self.servers: dict[str, Server] = {}
        self.links: dict[str, Link] = {}
        make = cluster._make

        def make_with_link(owner: str) -> Store:
            store = make(owner)
            server = self.servers[owner] = Server(lambda message: [owner, message])
            link = adapter_link(server, store) if isinstance(store, RedisStore) \
                else PeerLink(server, store)
            link.namespace_added("/")
            self.links[owner] = link
            return store

        cluster._make = make_with_link


@pytest.fixture(params=BACKENDS)
async def links(request: pytest.FixtureRequest,
                tmp_path: Path) -> AsyncIterator[tuple[Cluster, Links]]:
    async with open_cluster(request.param, request, tmp_path) as cluster:
        yield cluster, Links(cluster)


FETCH = FetchSockets("/", BroadcastOptions(frozenset({"r"})))


async def test_count_servers_counts_the_others(links: tuple[Cluster, Links]) -> None:
    cluster, made = links
    a, _, _ = await cluster(3)
    assert await made.links[a.owner].count_servers("/") == 2


async def test_ask_servers_gets_every_other_servers_answer(links: tuple[Cluster, Links]) -> None:
    cluster, made = links
    stores = await cluster(3)
    for store in stores:
        made.servers[store.owner].answer = lambda message, owner=store.owner: (
            [{"id": owner, "rooms": sorted(message.opts.rooms)}]
            if isinstance(message, FetchSockets) else [owner, message.data])
    a = made.links[stores[0].owner]
    others = sorted(s.owner for s in stores[1:])
    sockets = await a.ask_servers(FETCH, WAIT)
    assert sorted(sockets, key=str) == [[{"id": owner, "rooms": ["r"]}] for owner in others]
    # binary data both ways (JSON cannot carry it: on Redis it is packed as the adapter does)
    answers = await a.ask_servers(ServerSideEmit("/", ["hi", b"\0"]), WAIT)
    assert sorted(answers) == [[owner, ["hi", b"\0"]] for owner in others]
    for store in stores[1:]:
        assert made.servers[store.owner].received == [FETCH, ServerSideEmit("/", ["hi", b"\0"])]


async def test_ask_servers_with_a_silent_server_returns_the_others_at_the_timeout(
        links: tuple[Cluster, Links]) -> None:
    cluster, made = links
    a, b, c = await cluster(3)
    made.servers[b.owner].answer = lambda message: asyncio.get_running_loop().create_future()
    made.servers[c.owner].answer = lambda message: [{"id": "c"}]
    assert await made.links[a.owner].ask_servers(FETCH, SHORT) == [[{"id": "c"}]]
    assert made.servers[b.owner].received == [FETCH]


async def test_ask_servers_alone_returns_nothing(links: tuple[Cluster, Links]) -> None:
    cluster, made = links
    (a,) = await cluster(1)
    assert await made.links[a.owner].count_servers("/") == 0
    assert await made.links[a.owner].ask_servers(FETCH, WAIT) == []


# --- the JavaScript formats' input is untrusted: dropped with a line of log, never raised --------

JUNK: list[tuple[str, bytes]] = [
    ("k#/#", b"junk"),  # a broadcast that is not msgpack
    ("k#/#", b"\x93\xa2js\xc0\x80"),  # [uid, None, {}]: no packet
    ("k#/#", b"\x93\xa2js\x83\xa4type\x02\xa3nsp\xa1/\xa4data\x90\x80"),  # no event name
    ("k-request#/#", b"{not json"),
    ("k-request#/#", b'{"uid":"js","type":2,"opts":{"rooms":1},"rooms":["r"]}'),
    ("k-request#/#", b'{"uid":"js","type":7,"requestId":5,"packet":{"type":2,"data":["x"]}}'),
    ("k-response#/#", b"[1]"),
]


@pytest.mark.parametrize(("channel", "data"), JUNK)
async def test_junk_in_the_javascript_format_is_dropped(
        channel: str, data: bytes, caplog: pytest.LogCaptureFixture) -> None:
    store = RedisStore("redis://127.0.0.1:1/0", owner="w1", key="k")  # never connected
    server = Server(lambda message: None)
    adapter_link(server, store)
    try:
        with caplog.at_level(logging.DEBUG, "sio_core"):
            store._on_message(channel.encode(), data)
        assert server.received == [] and store.dropped.count == 1
        assert [r.levelno for r in caplog.records] == [logging.WARNING]
        assert caplog.records[0].getMessage().startswith(f"dropped a message from {channel}: ")
        assert caplog.records[0].exc_info is None
    finally:
        await store.close_clients()
