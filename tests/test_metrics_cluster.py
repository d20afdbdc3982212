"""GET /metrics of a running ``serve --workers 4``: one scrape, whichever worker the kernel hands it
to, counts what every worker did; with Redis, each node answers for its own workers.

The clients are the official socket.io-client (``tests/js/cluster_clients.js``, driven as in
tests/test_cluster.py), on websocket and on polling, spread over the workers by the kernel; the
polling ones' requests land on any worker and are forwarded to their session's owner. Every scrape
opens a TCP connection of its own, so the scrapes land on several workers; each must show every
worker, and the same exact sums. What is scraped is parsed with prometheus_client's text parser.
The in-process side (the counters one by one, peers that do not answer, forged answers) is
tests/test_metrics.py.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from tests.support import ServerProcess, scaled
from tests.test_cluster import (
    FORWARDED,
    WORKER_IDS,
    Clients,
    cluster_server,
    node_clients,
    owner_worker,
)
from tests.test_metrics import Samples, parse, total, value, workers

pytestmark = pytest.mark.interop

WEBSOCKET, POLLING = 12, 8
ROOM_WEBSOCKET, ROOM_POLLING = 5, 3
ROOM = ROOM_WEBSOCKET + ROOM_POLLING
BROADCASTS = 3
CLOSE_WEBSOCKET, CLOSE_POLLING = 3, 2
CLOSED = CLOSE_WEBSOCKET + CLOSE_POLLING
CLIENTS = WEBSOCKET + POLLING
#: a CONNECT per client, then a join per room member, a whoami per client, the broadcasts
EVENTS = ROOM + CLIENTS + BROADCASTS
SCRAPES = 8
#: what the forwarding log lines call the requests, and what the metric calls them
KINDS = {"GET": "poll", "POST": "post", "websocket upgrade": "websocket"}


async def get(url: str) -> tuple[int, str, str]:
    """Status, Content-Type and body; on a connection of its own (force_close), which the
    kernel may hand to any worker."""
    async with (aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http,
                http.get(url, timeout=aiohttp.ClientTimeout(total=scaled(10))) as response):
        return response.status, response.headers.get("Content-Type", ""), await response.text()


async def scrape(url: str, path: str = "/metrics") -> Samples:
    status, content_type, body = await get(url + path)
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    return parse(body)


def expected(samples: Samples) -> dict[str, float]:
    """What the test checks, summed over the workers."""
    return {
        "websocket now": total(samples, "sio_core_connections", transport="websocket"),
        "polling now": total(samples, "sio_core_connections", transport="polling"),
        "websocket opened": total(samples, "sio_core_connections_opened_total",
                                  transport="websocket"),
        "polling opened": total(samples, "sio_core_connections_opened_total",
                                transport="polling"),
        "closed": total(samples, "sio_core_connections_closed_total"),
        "sockets": total(samples, "sio_core_sockets", namespace="/"),
        "sockets connected": total(samples, "sio_core_sockets_connected_total", namespace="/"),
        "sockets disconnected": total(samples, "sio_core_sockets_disconnected_total",
                                      namespace="/"),
        "events": total(samples, "sio_core_events_received_total", namespace="/"),
        "broadcasts": total(samples, "sio_core_broadcasts_total", namespace="/"),
        "deliveries": total(samples, "sio_core_broadcast_deliveries_total", namespace="/"),
        "messages in": total(samples, "sio_core_messages_received_total"),
        "messages out": total(samples, "sio_core_messages_sent_total"),
        "handler errors": total(samples, "sio_core_handler_errors_total"),
        "missing": value(samples, "sio_core_metrics_workers_missing"),
    }


WANTED = {
    "websocket now": WEBSOCKET - CLOSE_WEBSOCKET,
    "polling now": POLLING - CLOSE_POLLING,
    "websocket opened": WEBSOCKET,
    "polling opened": POLLING,
    "closed": CLOSED,
    "sockets": CLIENTS - CLOSED,
    "sockets connected": CLIENTS,
    "sockets disconnected": CLOSED,
    "events": EVENTS,
    "broadcasts": BROADCASTS,
    "deliveries": BROADCASTS * ROOM,
    # CONNECTs, events, and the DISCONNECT of each client that left
    "messages in": CLIENTS + EVENTS + CLOSED,
    # CONNECT replies, an ack per event, the broadcasts' deliveries
    "messages out": CLIENTS + EVENTS + BROADCASTS * ROOM,
    "handler errors": 0,
    "missing": 0,
}


async def test_a_scrape_counts_what_every_worker_did(tmp_path: Path) -> None:
    server = await cluster_server(tmp_path / "server.log", "--log-level", "debug")
    try:
        async with node_clients(server) as clients:
            await drive(clients)
            # the sessions of the clients that left end a moment after their sockets did
            loop = asyncio.get_running_loop()
            deadline = loop.time() + scaled(10)
            while (seen := expected(await scrape(server.url))) != WANTED:
                assert loop.time() < deadline, f"{seen} != {WANTED}"
                await asyncio.sleep(0.1)
            for _ in range(SCRAPES):
                before = Counter(forwards(server.log_text()))
                samples = await scrape(server.url)
                after = Counter(forwards(server.log_text()))
                assert expected(samples) == WANTED
                for name in ("sio_core_connections", "sio_core_events_received_total",
                             "process_resident_memory_bytes"):
                    assert workers(samples, name) == WORKER_IDS
                # each worker's forwarded requests, as its log tells them: the ones logged
                # before the scrape at least, the ones logged after it at most
                for worker in WORKER_IDS:
                    for kind in KINDS.values():
                        count = value(samples, "sio_core_forwarded_requests_total",
                                      worker=worker, request=kind)
                        assert before[worker, kind] <= count <= after[worker, kind]
            assert total(samples, "sio_core_forwarded_requests_total") > 0
    finally:
        await server.stop()
    assert "Traceback" not in server.log_text()


async def drive(clients: Clients) -> None:
    """What the counts must show: CLIENTS clients, ROOM of them in a room, EVENTS events,
    BROADCASTS broadcasts to the room, CLOSED clients gone."""
    opened = {**await clients.open("w", WEBSOCKET, ["websocket"], reconnection=False),
              **await clients.open("p", POLLING, ["polling"], reconnection=False)}
    owners = {owner_worker(client["sid"]) for client in opened.values()}
    assert len(owners) > 1, "every client on one worker: the sums would prove nothing"
    room = [f"w{i}" for i in range(ROOM_WEBSOCKET)] + [f"p{i}" for i in range(ROOM_POLLING)]
    await clients.emit(room, "join", "r")
    await clients.emit(list(opened), "whoami")
    for n in range(BROADCASTS):
        assert await clients.emit(["w0"], "bcast", "r", None, "news", n) == {"w0": "sent"}
    await clients.wait(room, "news", BROADCASTS)
    leaving = [f"w{WEBSOCKET - 1 - i}" for i in range(CLOSE_WEBSOCKET)] + \
        [f"p{POLLING - 1 - i}" for i in range(CLOSE_POLLING)]
    await clients.node.send({"op": "close", "names": leaving})


def forwards(log: str) -> list[tuple[str, str]]:
    """(worker, request kind) of each forwarding the workers logged."""
    return [(match[1], KINDS[match[2]]) for match in FORWARDED.finditer(log)]


@pytest.mark.redis
async def test_with_redis_each_node_answers_for_its_own_workers(
        tmp_path: Path, redis_url: str, redis_prefix: str) -> None:
    store = ("--store", redis_url, "--store-key", redis_prefix)
    quiet = await cluster_server(tmp_path / "a.log", *store, "--node-id", "nodeA", workers=2)
    try:
        busy = await cluster_server(tmp_path / "b.log", *store, "--node-id", "nodeB", workers=2)
        try:
            async with node_clients(busy) as clients:
                await clients.open("w", 4, ["websocket"], reconnection=False)
                await clients.emit(["w0"], "bcast", None, None, "news", 1)
                await clients.wait("w", "news", 1)
                here, there = await scrape(busy.url), await scrape(quiet.url)
        finally:
            await busy.stop()
    finally:
        await quiet.stop()
    for samples in (here, there):
        assert workers(samples, "sio_core_connections") == {"1", "2"}
        for worker in ("1", "2"):
            assert value(samples, "sio_core_store_connected", worker=worker) == 1
            assert value(samples, "sio_core_store_reconnects_total", worker=worker) == 0
            assert value(samples, "sio_core_store_subscriber_down_seconds_total",
                         worker=worker) == 0
            for error in ("publish_failed", "queue_dropped"):
                assert value(samples, "sio_core_store_errors_total", worker=worker,
                             error=error) == 0
            # the other worker of its node, and both of the other node
            assert value(samples, "sio_core_store_peers", worker=worker) == 3
    assert total(here, "sio_core_connections") == 4
    assert total(there, "sio_core_connections") == 0
    # the broadcast reached the other node's workers through Redis
    assert total(here, "sio_core_broadcasts_total") == 1
    for worker in ("1", "2"):
        assert value(there, "sio_core_store_messages_received_total", worker=worker) >= 1
    assert total(here, "sio_core_store_messages_sent_total") >= 1


@pytest.mark.parametrize(("options", "served"), [
    (("--no-metrics",), None),
    (("--metrics-path", "/internal/stats"), "/internal/stats"),
])
async def test_the_path_is_an_option_and_metrics_can_be_off(
        tmp_path: Path, options: tuple[str, ...], served: str | None) -> None:
    async with ServerProcess(*options, log_path=tmp_path / "server.log") as server:
        status, _, _ = await get(server.url + "/metrics")
        assert status == 404
        if served is not None:
            assert workers(await scrape(server.url, served), "sio_core_sockets") == {"1"}
