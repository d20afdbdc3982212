"""sio_core.engine.metrics in-process: the counters of the Socket.IO layer and the engine, the
families they become, what a peer's families must look like, and GET /metrics answering for
several workers.

A real :class:`~sio_core.Server` with real Engine.IO sessions and no transport under them (the
``Session`` of tests/engine_session.py); the workers of one process are EngineServers whose
MemoryStores share a MemoryBus (envelopes packed and unpacked on the way, as on the hub). What is
scraped is parsed with prometheus_client's own parsers. The same against ``serve --workers 4``
and the official clients, and with Redis: tests/test_metrics_cluster.py.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from sio_core import Server, Socket
from sio_core.config import Config
from sio_core.engine.messages import EngineKind
from sio_core.engine.metrics.endpoint import parse_owner
from sio_core.engine.metrics.families import COUNTER, HISTOGRAM, Family, Histogram, family
from sio_core.engine.server import EngineServer
from sio_core.http.messages import Request, Response
from sio_core.stores.memory import MemoryBus, MemoryStore
from tests.engine_session import Session
from tests.support import scaled
from tests.test_socketio_limits import settle

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a text exposition: (sample name, labels) -> value."""
    out: Samples = {}
    for metric in text_string_to_metric_families(text):
        for sample in metric.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in out, f"duplicate series {key}"
            out[key] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over the series of ``name`` that have ``labels`` (and any others)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def workers(samples: Samples, name: str) -> set[str]:
    return {dict(ls)["worker"] for (n, ls), _ in samples.items() if n == name}


def of(families: list[Family], name: str) -> dict[tuple[str, ...], Any]:
    (found,) = [f for f in families if f.name == name]
    return found.values


# --- the Socket.IO layer's counters --------------------------------------------------------------


def counting_server() -> Server:
    io = Server()
    io.of("/chat")
    io.of(re.compile(r"^/room-\d+$"))

    @io.on("connection")
    def connection(socket: Socket) -> None:
        @socket.on("echo")
        def echo(data: Any) -> Any:
            return data

        @socket.on("boom")
        def boom() -> None:
            raise RuntimeError("sync handler bug")

        @socket.on("slow")
        async def slow() -> str:
            await asyncio.sleep(0)
            return "done"

        @socket.on("aboom")
        async def aboom() -> None:
            await asyncio.sleep(0)
            raise RuntimeError("async handler bug")

        @socket.on("join")
        def join(room: str) -> None:
            socket.join(room)

    return io


async def test_the_socketio_layer_counts_what_it_does(caplog: pytest.LogCaptureFixture) -> None:
    io = counting_server()
    main = [Session(io) for _ in range(3)]
    chat = Session(io)
    rooms = [Session(io) for _ in range(2)]
    refused = Session(io)
    sent: list[str] = []

    def send(session: Session, message: str) -> None:
        sent.append(message)
        session.send(message)

    for session in main:
        send(session, "0")
    send(chat, "0/chat,")
    send(rooms[0], "0/room-1,")
    send(rooms[1], "0/room-2,")
    send(refused, "0/nope,")
    await settle()
    send(main[0], '21["echo","x"]')
    send(main[1], '22["echo","é"]')
    send(main[0], '2["boom"]')
    send(main[1], '2["slow"]')
    send(main[2], '2["aboom"]')
    send(main[0], '2["join","r"]')
    send(main[1], '2["join","r"]')
    send(chat, '2/chat,["echo","y"]')
    await settle()
    io.emit("news", "all")                  # the 3 sockets of "/"
    io.to("r").emit("news", "room")         # 2 of them
    io.of("/chat").emit("news", "chat")     # 1
    io.to("nobody").emit("news", "none")    # a broadcast that reaches no one
    await settle()
    received = [m for s in [*main, chat, *rooms, refused] for m in s.received()]
    main[2].send("1")                       # leaves "/"
    rooms[1].leave()                        # its Engine.IO session ends
    await settle()

    counters = io.counters
    assert counters.messages_received == len(sent) + 1
    assert counters.received_bytes == sum(map(len, sent)) + 1
    # six CONNECT replies, the CONNECT_ERROR, two acks and 3 + 2 + 1 broadcast deliveries
    assert len(received) == 6 + 1 + 2 + 6
    assert counters.messages_sent == len(received)
    assert counters.sent_bytes == sum(map(len, received))
    assert counters.connect_errors == 1

    families = io.metric_families()
    dynamic = r"^/room-\d+$"
    assert of(families, "sio_core_sockets") == {("/",): 2, ("/chat",): 1, (dynamic,): 1}
    assert of(families, "sio_core_sockets_connected") == {("/",): 3, ("/chat",): 1,
                                                          (dynamic,): 2}
    assert of(families, "sio_core_sockets_disconnected") == {("/",): 1, ("/chat",): 0,
                                                             (dynamic,): 1}
    assert of(families, "sio_core_events_received") == {("/",): 7, ("/chat",): 1,
                                                         (dynamic,): 0}
    assert of(families, "sio_core_broadcasts") == {("/",): 3, ("/chat",): 1, (dynamic,): 0}
    assert of(families, "sio_core_broadcast_deliveries") == {("/",): 5, ("/chat",): 1,
                                                             (dynamic,): 0}
    assert of(families, "sio_core_handler_errors") == {("/",): 2, ("/chat",): 0,
                                                       (dynamic,): 0}
    assert len([r for r in caplog.records if "handler bug" in str(r.exc_info)]) == 2
    # the two async handlers are timed (the one that raised too), the sync ones are not
    durations = of(families, "sio_core_handler_duration_seconds")
    assert sum(durations[("/",)].counts) == 2
    assert sum(durations[("/chat",)].counts) == 0


async def test_events_sent_to_one_socket_and_handler_errors_elsewhere() -> None:
    io = Server()
    errors: list[str] = []

    @io.on("connection")
    def connection(socket: Socket) -> None:
        socket.emit("hello", 1)
        socket.emit("hello", 2, callback=lambda *args: errors.append("ack") or 1 / 0)

        @socket.on("disconnect")
        def disconnect(reason: str) -> None:
            raise RuntimeError("disconnect handler bug")

    @io.on("connection")
    def failing(socket: Socket) -> None:
        raise RuntimeError("connection handler bug")

    session = Session(io)
    session.send("0")
    await settle()
    session.send("31[]")  # the client's ack of hello 2: its callback raises
    session.send("1")
    await settle()
    assert errors == ["ack"]
    assert of(io.metric_families(), "sio_core_events_sent") == {("/",): 2}
    # the connection listener, the ack callback and the disconnect listener
    assert of(io.metric_families(), "sio_core_handler_errors") == {("/",): 3}


# --- families: plain data, and a peer's checked ------------------------------------------------


def test_a_histogram_counts_each_value_in_the_first_bucket_that_holds_it() -> None:
    histogram = Histogram((0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 1.0, 3.0):
        histogram.observe(seconds)
    assert histogram.counts == [2, 2, 1]  # <= 0.1, <= 1.0, +Inf
    assert histogram.sum == pytest.approx(4.65)


def test_family_names_are_checked() -> None:
    with pytest.raises(ValueError):
        family("sio_core_x_total", COUNTER, "a counter's name is given without _total")
    with pytest.raises(ValueError):
        family("sio-core", COUNTER, "not a metric name")
    with pytest.raises(ValueError):
        family("sio_core_x", COUNTER, "not a label name", "a-b")


EXPECTED = family("sio_core_x", COUNTER, "x", "namespace").set(1, "/")
EXPECTED_H = family("sio_core_h", HISTOGRAM, "h", "namespace", bounds=(0.1, 1.0))

MALFORMED: list[Any] = [
    None,
    "sio_core_x",
    ["sio_core_x", "counter", "x", ["namespace"], [[["/"], 1]]],       # five fields
    ["sio_core_y", "counter", "x", ["namespace"], [[["/"], 1]], []],   # another family
    ["sio_core_x", "gauge", "x", ["namespace"], [[["/"], 1]], []],     # another type
    ["sio_core_x", "counter", "x", ["worker"], [[["/"], 1]], []],      # other labels
    ["sio_core_x", "counter", "x", ["namespace"], {"/": 1}, []],
]


@pytest.mark.parametrize("item", MALFORMED)
def test_a_peers_family_that_is_not_ours_is_refused(item: Any) -> None:
    assert Family.from_wire(item, EXPECTED) is None


@pytest.mark.parametrize(("values", "kept"), [
    ([[["/"], 3]], {("/",): 3}),
    ([[["/"], "3"], [["/a"], True], [["/b"], float("nan")], [["/c"], 1, 2]], {}),
    ([[["/", "extra"], 1], [[1], 1], [[], 1], ["/"], [], [["/d"], 2]], {("/d",): 2}),
])
def test_a_peers_values_that_are_not_numbers_are_dropped(
        values: list[Any], kept: dict[tuple[str, ...], float]) -> None:
    item = ["sio_core_x", "counter", "x", ["namespace"], values, []]
    parsed = Family.from_wire(item, EXPECTED)
    assert parsed is not None and parsed.values == kept


@pytest.mark.parametrize(("value", "ok"), [
    ([["/"], [1, 2, 3], 0.5], True),
    ([["/"], [1, 2], 0.5], False),          # a bucket missing
    ([["/"], [1, -2, 3], 0.5], False),      # a negative count
    ([["/"], [1, 2.5, 3], 0.5], False),     # not a count
    ([["/"], [1, 2, 3], "0.5"], False),
    ([["/"], [1, 2, 3]], False),
])
def test_a_peers_histogram_is_checked(value: list[Any], ok: bool) -> None:
    parsed = Family.from_wire(["sio_core_h", "histogram", "h", ["namespace"], [value],
                               [0.1, 1.0]], EXPECTED_H)
    assert parsed is not None
    assert bool(parsed.values) is ok


def test_a_family_goes_over_the_wire_and_back() -> None:
    histogram = Histogram((0.1, 1.0))
    histogram.observe(0.5)
    item = family("sio_core_h", HISTOGRAM, "h", "namespace", bounds=(0.1, 1.0)).set(
        histogram, "/")
    parsed = Family.from_wire(json.loads(json.dumps(item.to_wire())), item)
    assert parsed is not None
    (back,) = parsed.values.values()
    assert (back.counts, back.sum) == ([0, 1, 0], 0.5)


@pytest.mark.parametrize(("owner", "expected"), [
    ("a1b2c3-w3-0f9e", ("3", "a1b2c3")),
    ("my-node-w12-beef", ("12", "my-node")),   # a node id may have dashes (--node-id)
    ("w0", ("w0", None)),                      # an in-process server's
])
def test_the_worker_label_is_the_workers_number(owner: str,
                                                expected: tuple[str, str | None]) -> None:
    assert parse_owner(owner) == expected


# --- GET /metrics across the workers of one process ----------------------------------------------


def get(path: str = "/metrics", accept: str = "") -> Request:
    return Request("GET", path, {}, {"accept": accept} if accept else {})


async def scrape(server: EngineServer, accept: str = "") -> Response:
    answer = server.handle(get(accept=accept), None)  # type: ignore[arg-type]
    response = await answer if not isinstance(answer, Response) else answer
    assert isinstance(response, Response)
    return response


class Workers:
    """EngineServers of one process (a Socket.IO server each) on one MemoryBus."""

    def __init__(self, config: Config) -> None:
        self.bus = MemoryBus()
        self.config = config
        self.servers: list[EngineServer] = []

    async def start(self, owner: str) -> EngineServer:
        io = Server(self.config)
        store = MemoryStore(owner, self.bus)
        io.attach_store(store)
        server = EngineServer(io, self.config)
        server.join(store)
        await store.start()
        self.servers.append(server)
        return server

    def handshake(self, server: EngineServer, transport: str = "polling") -> None:
        request = Request("GET", "/socket.io/", {"EIO": "4", "transport": transport}, {})
        answer = server.handle(request, None)  # type: ignore[arg-type]
        assert isinstance(answer, Response) and answer.status == 200


@pytest.fixture
async def cluster() -> Workers:
    return Workers(Config(metrics_timeout=scaled(0.5)))


async def test_one_scrape_answers_for_the_workers_of_its_node(cluster: Workers) -> None:
    first = await cluster.start("n1-w1-aaaa")
    second = await cluster.start("n1-w2-bbbb")
    other_node = await cluster.start("n2-w1-cccc")
    for server, sessions in ((first, 1), (second, 2), (other_node, 5)):
        for _ in range(sessions):
            cluster.handshake(server)
    for server in (first, second):
        response = await scrape(server)
        assert response.headers[0] == ("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        samples = parse(response.body.decode())
        assert workers(samples, "sio_core_connections") == {"1", "2"}
        assert value(samples, "sio_core_connections", worker="1", transport="polling") == 1
        assert value(samples, "sio_core_connections", worker="2", transport="polling") == 2
        assert total(samples, "sio_core_connections_opened_total") == 3
        assert value(samples, "sio_core_metrics_workers_missing") == 0
        # every worker's own process: its memory, its CPU time
        assert workers(samples, "process_resident_memory_bytes") == {"1", "2"}
    samples = parse((await scrape(other_node)).body.decode())
    assert workers(samples, "sio_core_connections") == {"1"}
    assert total(samples, "sio_core_connections", transport="polling") == 5


async def test_a_worker_that_does_not_answer_is_left_out_and_counted(cluster: Workers) -> None:
    first = await cluster.start("n1-w1-aaaa")
    await cluster.start("n1-w2-bbbb")
    silent = MemoryStore("n1-w3-cccc", cluster.bus)   # a worker whose loop does not answer
    silent.on(EngineKind.METRICS, lambda envelope: asyncio.get_running_loop().create_future())
    await silent.start()
    mute = MemoryStore("n1-w4-dddd", cluster.bus)     # one that answers nothing useful
    await mute.start()
    loop = asyncio.get_running_loop()
    started = loop.time()
    samples = parse((await scrape(first)).body.decode())
    assert loop.time() - started < scaled(0.5) + scaled(1)
    assert workers(samples, "sio_core_connections") == {"1", "2"}
    assert value(samples, "sio_core_metrics_workers_missing") == 2


async def test_of_two_workers_of_one_number_the_newer_is_shown(cluster: Workers) -> None:
    first = await cluster.start("n1-w1-aaaa")
    old = await cluster.start("n1-w2-bbbb")        # a worker being replaced (SIGHUP) ...
    new = await cluster.start("n1-w2-eeee")        # ... and its successor
    assert old.metrics is not None and new.metrics is not None
    old.metrics.started, new.metrics.started = 100.0, 200.0
    cluster.handshake(old)
    samples = parse((await scrape(first)).body.decode())
    assert total(samples, "sio_core_connections", worker="2") == 0
    old.metrics.started = 300.0
    samples = parse((await scrape(first)).body.decode())
    assert total(samples, "sio_core_connections", worker="2") == 1


async def test_a_forged_answer_is_checked(cluster: Workers) -> None:
    first = await cluster.start("n1-w1-aaaa")
    forger = MemoryStore("n1-w2-bbbb", cluster.bus)
    forged = [1.0, [
        ["sio_core_connections", "gauge", "x", ["transport"], [[["polling"], 7]], []],
        ["sio_core_connections_opened", "counter", "x", ["transport"], [[["polling"], "7"]], []],
        ["evil_metric", "gauge", "x", [], [[[], 1]], []],
        ["sio_core_sockets", "gauge", "x", ["namespace", "worker"], [[["/", "9"], 1]], []],
    ]]
    forger.on(EngineKind.METRICS, lambda envelope: forged)
    await forger.start()
    samples = parse((await scrape(first)).body.decode())
    assert value(samples, "sio_core_connections", worker="2", transport="polling") == 7
    assert ("sio_core_connections_opened_total", frozenset(
        {("worker", "2"), ("transport", "polling")})) not in samples
    assert not [key for key in samples if key[0] == "evil_metric"]
    assert workers(samples, "sio_core_sockets") == {"1"}


async def test_openmetrics_when_the_scraper_asks_for_it(cluster: Workers) -> None:
    first = await cluster.start("n1-w1-aaaa")
    await cluster.start("n1-w2-bbbb")
    response = await scrape(first, "application/openmetrics-text; version=1.0.0,text/plain;q=0.5")
    content_type = dict(response.headers)["Content-Type"]
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    names = {metric.name for metric in openmetrics_families(response.body.decode())}
    assert {"sio_core_connections", "sio_core_messages_received",
            "sio_core_handler_duration_seconds"} <= names


async def test_a_server_alone_answers_at_once() -> None:
    server = EngineServer(Server())
    server.owner = "w0"
    answer = server.handle(get(), None)  # type: ignore[arg-type]
    assert isinstance(answer, Response)  # no other worker to ask: no task
    samples = parse(answer.body.decode())
    assert workers(samples, "sio_core_sockets") == {"w0"}
    assert not [key for key in samples if key[0].startswith("sio_core_store_")]


@pytest.mark.parametrize("path", [None, "/stats"])
async def test_the_path_is_configurable_and_none_turns_it_off(path: str | None) -> None:
    bus = MemoryBus()
    store = MemoryStore("n1-w1-aaaa", bus)
    server = EngineServer(Server(), Config(metrics_path=path))
    server.join(store)
    answer = server.handle(get(), None)  # type: ignore[arg-type]
    assert isinstance(answer, Response) and answer.status == 404
    if path is None:
        assert server.metrics is None
        # nothing answers another worker's request either
        asker = MemoryStore("n1-w2-bbbb", bus)
        await store.start()
        await asker.start()
        assert await asker.request(store.owner, EngineKind.METRICS, None, scaled(1)) is None
    else:
        answer = server.handle(get(path), None)  # type: ignore[arg-type]
        assert isinstance(answer, Response) and answer.status == 200


def test_metrics_path_is_checked() -> None:
    with pytest.raises(ValueError, match="metrics_path: must start with '/'"):
        Config(metrics_path="metrics")
    with pytest.raises(ValueError, match="metrics_timeout"):
        Config(metrics_timeout=0)


async def test_the_store_and_engine_counts(cluster: Workers) -> None:
    first = await cluster.start("n1-w1-aaaa")
    second = await cluster.start("n1-w2-bbbb")
    cluster.handshake(first, "polling")
    (sid,) = first.sockets
    first.sockets[sid].protocol_error()  # an undecodable packet: closed at once
    await settle()
    before = second.store.messages_received if second.store else 0
    io: Any = first.handler
    io.emit("news", 1)  # one broadcast, published to the other worker
    await settle()
    assert second.store is not None and second.store.messages_received == before + 1
    samples = parse((await scrape(first)).body.decode())
    assert value(samples, "sio_core_connections_closed_total", worker="1",
                 reason="parse_error") == 1
    assert value(samples, "sio_core_connections_opened_total", worker="1",
                 transport="polling") == 1
    assert value(samples, "sio_core_store_peers", worker="1") == 1
    assert value(samples, "sio_core_store_messages_sent_total", worker="1") >= 1
    assert value(samples, "sio_core_forwarded_requests_total", worker="2", request="poll") == 0

