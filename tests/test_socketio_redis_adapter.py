"""The JavaScript redis adapters' formats (sio_core.socketio.redis_adapter), in process: the
cluster's messages as the link publishes them, and the JavaScript servers' messages as the
Cluster receives them, byte shapes from @socket.io/redis-adapter (createAdapter and
createShardedAdapter). The store is a RedisStore that never connects: what it would publish is
taken from publish_raw, what arrives is fed to it as its subscription would. (tests/test_redis.py
runs the same formats against JavaScript servers on a real Redis.)"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgpack
import pytest

from sio_core.protocol import socketio as sio
from sio_core.socketio.adapter import BroadcastOptions
from sio_core.socketio.messages import (
    Broadcast,
    BroadcastWithAcks,
    ClientAck,
    ClientCount,
    ClusterMessage,
    DisconnectSockets,
    FetchSockets,
    Published,
    ServerSideEmit,
    SocketsJoin,
    SocketsLeave,
)
from sio_core.socketio.redis_adapter import (
    ALL_ROOMS,
    AdapterFormat,
    _Answers,
    _sockets_or_rooms,
    adapter_link,
)
from sio_core.socketio.redis_adapter import SOCKETS as SOCKETS_REQUEST
from sio_core.stores.redis import RedisStore, json_unpack, msgpack_pack, msgpack_unpack
from tests.support import scaled

CLASSIC = "redis://127.0.0.1:1/0"
SHARDED = "redis+cluster://127.0.0.1:1"


def decode(data: bytes) -> Any:
    return json.loads(data) if data[:1] == b"{" else msgpack.unpackb(data, raw=False)


class Node:
    """A link in the JavaScript format on a store that never connects (owner ``me``, key
    ``k``), with what it published and what its Cluster received."""

    def __init__(self, url: str) -> None:
        self.store = RedisStore(url, owner="me", key="k")
        self.received: list[tuple[str, ClusterMessage]] = []
        self.answer: Callable[[ClusterMessage], Any] = lambda message: None
        self.link: AdapterFormat = adapter_link(self, self.store)
        self.published: list[tuple[str, Any]] = []
        self._published = asyncio.Event()
        self.store.publish_raw = self._publish  # type: ignore[method-assign]

    def _publish(self, channel: str, data: bytes) -> None:
        self.published.append((channel, decode(data)))
        self._published.set()

    def receive(self, origin: str, message: ClusterMessage) -> Any:
        self.received.append((origin, message))
        return self.answer(message)

    def receive_broadcasts(self, origin: str, messages: list[Broadcast]) -> None:
        self.received.extend((origin, message) for message in messages)

    def feed(self, channel: str, message: Any, *, packed: bool = False,
             held: bool = False) -> None:
        """What arrives on ``channel``; a broadcast is held to the end of the loop turn
        unless delivered here at once (``held`` False)."""
        data = msgpack.packb(message, use_bin_type=True) if packed \
            else json.dumps(message).encode()
        self.store._on_message(channel.encode(), data)
        if not held:
            self.link._deliver_burst()

    async def next_published(self) -> tuple[str, Any]:
        async with asyncio.timeout(scaled(5)):
            while not self.published:
                self._published.clear()
                await self._published.wait()
        return self.published.pop(0)


@pytest.fixture
async def classic() -> AsyncIterator[Node]:
    node = Node(CLASSIC)
    yield node
    await node.store.close_clients()


@pytest.fixture
async def sharded() -> AsyncIterator[Node]:
    node = Node(SHARDED)
    yield node
    await node.store.close_clients()


OPTS = BroadcastOptions(frozenset({"r"}), frozenset({"x"}), volatile=True)
EVENT = sio.Packet(sio.PacketType.EVENT, "/", ["e", 1])
JS_EVENT = {"type": 2, "nsp": "/", "data": ["e", 1]}

# --- what we publish ------------------------------------------------------------------------------

CLASSIC_OUT: list[tuple[Published, str, Any]] = [
    (Broadcast("/", OPTS, sio.encode(EVENT), packet=EVENT), "k#/#r#",
     ["me", JS_EVENT, {"rooms": ["r"], "except": ["x"], "flags": {"volatile": True}}]),
    (Broadcast("/", BroadcastOptions(), sio.encode(EVENT), packet=EVENT), "k#/#",
     ["me", JS_EVENT, {"rooms": [], "except": [], "flags": {"volatile": False}}]),
    (Broadcast("/", BroadcastOptions(compress=False), sio.encode(EVENT), packet=EVENT), "k#/#",
     ["me", JS_EVENT, {"rooms": [], "except": [],
                       "flags": {"volatile": False, "compress": False}}]),
    (BroadcastWithAcks(sio.Packet(sio.PacketType.EVENT, "/", ["e", 1], 5), OPTS, 3),
     "k-request#/#", {"uid": "me", "requestId": "me:acks:3", "type": 7, "packet": JS_EVENT,
                      "opts": {"rooms": ["r"], "except": ["x"], "flags": {"volatile": True}}}),
    (SocketsJoin("/n", OPTS, frozenset({"a"})), "k-request#/n#",
     {"uid": "me", "type": 2, "opts": {"rooms": ["r"], "except": ["x"]}, "rooms": ["a"]}),
    (SocketsLeave("/n", OPTS, frozenset({"a"})), "k-request#/n#",
     {"uid": "me", "type": 3, "opts": {"rooms": ["r"], "except": ["x"]}, "rooms": ["a"]}),
    (DisconnectSockets("/", OPTS, True), "k-request#/#",
     {"uid": "me", "type": 4, "opts": {"rooms": ["r"], "except": ["x"]}, "close": True}),
    (ServerSideEmit("/", ["hello", b"\x01"]), "k-request#/#",
     {"uid": "me", "type": 6, "data": ["hello", b"\x01"]}),
]


@pytest.mark.parametrize(("message", "channel", "wire"), CLASSIC_OUT,
                         ids=lambda v: type(v).__name__)
async def test_classic_publishes(classic: Node, message: Published, channel: str,
                                 wire: Any) -> None:
    classic.link.publish(message)
    assert classic.published == [(channel, wire)]


async def test_a_burst_of_broadcasts_each_with_its_own_options(classic: Node) -> None:
    """The options of the last broadcast published and received are kept: each broadcast
    still goes out, and is read, with its own."""
    other = BroadcastOptions(frozenset({"s"}))
    for opts in (OPTS, OPTS, other, OPTS):
        classic.link.publish(Broadcast("/", opts, sio.encode(EVENT), packet=EVENT))
    assert [(channel, wire[2]["rooms"]) for channel, wire in classic.published] == [
        ("k#/#r#", ["r"]), ("k#/#r#", ["r"]), ("k#/#s#", ["s"]), ("k#/#r#", ["r"])]
    for opts_js in (OPTS_JS, dict(OPTS_JS), {"rooms": ["s"]}, {"flags": {"compress": False}},
                    {"flags": {"compress": 0}}, {"flags": {"compress": None}}, OPTS_JS):
        classic.feed("k#/#", ["js1", JS_EVENT, opts_js], packed=True, held=True)
    classic.link._deliver_burst()
    received = [message.opts for _, message in classic.received
                if isinstance(message, Broadcast)]
    assert received == [OPTS, OPTS, BroadcastOptions(frozenset({"s"})),
                        BroadcastOptions(compress=False), BroadcastOptions(compress=False),
                        BroadcastOptions(), OPTS]
    assert received[0] is received[1]


SHARDED_OUT: list[tuple[Published, str, Any]] = [
    (Broadcast("/", OPTS, sio.encode(EVENT), packet=EVENT), "k#/#",
     {"uid": "me", "nsp": "/", "type": 3, "data": {
         "packet": JS_EVENT, "opts": {"rooms": ["r"], "except": ["x"],
                                      "flags": {"volatile": True}}}}),
    (Broadcast("/", BroadcastOptions(compress=False), sio.encode(EVENT), packet=EVENT), "k#/#",
     {"uid": "me", "nsp": "/", "type": 3, "data": {
         "packet": JS_EVENT, "opts": {"rooms": [], "except": [],
                                      "flags": {"compress": False}}}}),
    (BroadcastWithAcks(sio.Packet(sio.PacketType.EVENT, "/", ["e", 1], 5),
                       BroadcastOptions(), 3), "k#/#",
     {"uid": "me", "nsp": "/", "type": 3, "data": {
         "packet": JS_EVENT, "opts": {"rooms": [], "except": [], "flags": {}},
         "requestId": "me:acks:3"}}),
    (SocketsJoin("/n", OPTS, frozenset({"a"})), "k#/n#",
     {"uid": "me", "nsp": "/n", "type": 4, "data": {
         "opts": {"rooms": ["r"], "except": ["x"], "flags": {"volatile": True}},
         "rooms": ["a"]}}),
    (SocketsLeave("/n", BroadcastOptions(), frozenset({"a"})), "k#/n#",
     {"uid": "me", "nsp": "/n", "type": 5, "data": {
         "opts": {"rooms": [], "except": [], "flags": {}}, "rooms": ["a"]}}),
    (DisconnectSockets("/", BroadcastOptions(), False), "k#/#",
     {"uid": "me", "nsp": "/", "type": 6, "data": {
         "opts": {"rooms": [], "except": [], "flags": {}}, "close": False}}),
    (ServerSideEmit("/", ["hello"]), "k#/#",
     {"uid": "me", "nsp": "/", "type": 9, "data": {"packet": ["hello"]}}),
]


@pytest.mark.parametrize(("message", "channel", "wire"), SHARDED_OUT,
                         ids=lambda v: type(v).__name__)
async def test_sharded_publishes(sharded: Node, message: Published, channel: str,
                                 wire: Any) -> None:
    sharded.link.publish(message)
    assert sharded.published == [(channel, wire)]


async def test_answers_to_a_javascript_servers_broadcast_with_acks(
        classic: Node, sharded: Node) -> None:
    classic.link.send("js:other", ClientCount("r1", 2, "/n"))
    classic.link.send("js:other", ClientAck("r1", ["ok"], "/n"))
    classic.link.send("js:other", ClientAck("r1", ["a", "b"], "/n"))
    assert classic.published == [
        ("k-response#/n#", {"type": 8, "requestId": "r1", "clientCount": 2}),
        ("k-response#/n#", {"type": 9, "requestId": "r1", "packet": "ok"}),
        ("k-response#/n#", {"type": 9, "requestId": "r1", "packet": ["a", "b"]}),
    ]
    sharded.link.send("js:other", ClientCount("r1", 2, "/n"))
    sharded.link.send("js:other", ClientAck("r1", ["ok"], "/n"))
    assert sharded.published == [
        ("k#/n#other#", {"uid": "me", "nsp": "/n", "type": 11,
                         "data": {"requestId": "r1", "clientCount": 2}}),
        ("k#/n#other#", {"uid": "me", "nsp": "/n", "type": 12,
                         "data": {"requestId": "r1", "packet": "ok"}}),
    ]


def test_the_channels_each_format_reads(classic: Node, sharded: Node) -> None:
    assert classic.link.patterns == ("k#*", "k-response#*")
    assert classic.link.namespace_channels("/n") == ["k-request#/n#"]
    assert sharded.link.patterns == ()
    assert sharded.link.namespace_channels("/n") == ["k#/n#", "k#/n#me#"]


# --- what we receive ------------------------------------------------------------------------------

OPTS_JS = {"rooms": ["r"], "except": ["x"], "flags": {"volatile": True}}
CLASSIC_IN: list[tuple[str, Any, bool, list[ClusterMessage]]] = [
    ("k#/#r#", ["js1", JS_EVENT, OPTS_JS], True, [Broadcast("/", OPTS, None)]),
    ("k#/#", ["js1", JS_EVENT, {"flags": {"compress": False}}], True,
     [Broadcast("/", BroadcastOptions(compress=False), None)]),
    ("k#/#", ["me", JS_EVENT, OPTS_JS], True, []),  # our own
    ("k-request#/#", {"uid": "js1", "type": 7, "requestId": "q1", "packet": {
        "type": 2, "data": ["e", 1]}, "opts": {}}, False,
     [BroadcastWithAcks(EVENT, BroadcastOptions(), "q1")]),
    ("k-request#/n#", {"uid": "js1", "type": 2, "opts": {"rooms": ["r"]}, "rooms": ["a"]},
     False, [SocketsJoin("/n", BroadcastOptions(frozenset({"r"})), frozenset({"a"}))]),
    ("k-request#/n#", {"uid": "js1", "type": 3, "opts": {}, "rooms": ["a"]}, False,
     [SocketsLeave("/n", BroadcastOptions(), frozenset({"a"}))]),
    ("k-request#/#", {"uid": "js1", "type": 4, "opts": {}, "close": True}, False,
     [DisconnectSockets("/", BroadcastOptions(), True)]),
    ("k-request#/#", {"uid": "js1", "type": 6, "data": ["hi", 1]}, False,
     [ServerSideEmit("/", ["hi", 1])]),
    ("k-request#/#", {"uid": "me", "type": 6, "data": ["hi"]}, False, []),  # our own
    ("k-response#/#", {"type": 8, "requestId": "me:acks:4", "clientCount": 2}, False,
     [ClientCount(4, 2, "/")]),
    ("k-response#/#", {"type": 9, "requestId": "me:acks:4", "packet": "ok"}, False,
     [ClientAck(4, ["ok"], "/")]),
    # answers that are not ours
    ("k-response#/#", {"type": 8, "requestId": "js1:acks:4", "clientCount": 2}, False, []),
    ("k-response#/#", {"type": 8, "requestId": "me:acks:x", "clientCount": 2}, False, []),
    ("k-response#/#", {"type": 8, "requestId": "me:acks:4", "clientCount": "2"}, False, []),
    ("k-response#/#", {"type": 9, "requestId": 4, "packet": "ok"}, False, []),
    ("k-response#/#", {"type": 9, "requestId": "js1:acks:4", "packet": "ok"}, False, []),
    # requests that ask for an answer without saying where it goes, or of no known type
    ("k-request#/#", {"uid": "js1", "type": 0, "rooms": ["a"]}, False, []),
    ("k-request#/#", {"uid": "js1", "type": 42}, False, []),
]


@pytest.mark.parametrize(("channel", "message", "packed", "received"), CLASSIC_IN)
async def test_classic_receives(classic: Node, channel: str, message: Any, packed: bool,
                                received: list[ClusterMessage]) -> None:
    classic.feed(channel, message, packed=packed)
    assert [m for _, m in classic.received] == received
    assert {origin for origin, _ in classic.received} <= {"js:js1", "js:"}
    assert classic.store.dropped.count == 0


async def test_our_own_broadcasts_are_dropped_unread_and_no_one_elses() -> None:
    """What a server reads back of its own broadcasts is known by how it begins, and dropped
    before it is decoded (a truncated one is not counted malformed); a uid that only begins
    like ours is another server's. With msgpack and with JSON packing."""
    for pack, unpack in ((msgpack_pack, msgpack_unpack),
                         (lambda value: json.dumps(value).encode(), json_unpack)):
        node = Node(CLASSIC)
        node.store.pack, node.store.unpack = pack, unpack
        node.link = adapter_link(node, node.store)
        node.store._on_message(b"k#/#", pack(["me", JS_EVENT, OPTS_JS])[:-3])
        assert node.store.dropped.count == 0
        for uid in ("m", "mee", "me "):
            node.store._on_message(b"k#/#r#", pack([uid, JS_EVENT, OPTS_JS]))
        node.link._deliver_burst()
        assert node.received == [(f"js:{uid}", Broadcast("/", OPTS, None))
                                 for uid in ("m", "mee", "me ")]
        node.store._on_message(b"k#/#", pack(["m", JS_EVENT, OPTS_JS])[:-3])
        assert node.store.dropped.count == 1  # not ours: decoded, and malformed
        await node.store.close_clients()


SHARDED_IN: list[tuple[Any, list[ClusterMessage]]] = [
    ({"uid": "js1", "nsp": "/", "type": 3, "data": {"packet": JS_EVENT, "opts": OPTS_JS}},
     [Broadcast("/", OPTS, None)]),
    ({"uid": "js1", "nsp": "/", "type": 3, "data": {
        "packet": {"type": 2, "data": ["e", 1]}, "opts": {}, "requestId": "q1"}},
     [BroadcastWithAcks(EVENT, BroadcastOptions(), "q1")]),
    ({"uid": "js1", "nsp": "/n", "type": 4, "data": {"opts": {}, "rooms": ["a"]}},
     [SocketsJoin("/n", BroadcastOptions(), frozenset({"a"}))]),
    ({"uid": "js1", "nsp": "/n", "type": 5, "data": {"opts": {}, "rooms": ["a"]}},
     [SocketsLeave("/n", BroadcastOptions(), frozenset({"a"}))]),
    ({"uid": "js1", "nsp": "/", "type": 6, "data": {"opts": {}, "close": True}},
     [DisconnectSockets("/", BroadcastOptions(), True)]),
    ({"uid": "js1", "nsp": "/", "type": 9, "data": {"packet": ["hi"]}},
     [ServerSideEmit("/", ["hi"])]),
    ({"uid": "js1", "nsp": "/", "type": 11, "data": {
        "requestId": "me:acks:4", "clientCount": 2}}, [ClientCount(4, 2, "/")]),
    ({"uid": "js1", "nsp": "/", "type": 12, "data": {"requestId": "me:acks:4", "packet": 1}},
     [ClientAck(4, [1], "/")]),
    ({"uid": "js1", "nsp": "/", "type": 8, "data": {"requestId": "not ours", "sockets": []}},
     []),
    ({"uid": "js1", "nsp": "/", "type": 1}, []),  # a heartbeat
    ({"uid": "me", "nsp": "/", "type": 9, "data": {"packet": ["hi"]}}, []),  # our own
    # answers whose request id is not a string, requests without one or of no known type
    ({"uid": "js1", "nsp": "/", "type": 8, "data": {"requestId": 5, "sockets": []}}, []),
    ({"uid": "js1", "nsp": "/", "type": 11, "data": {"requestId": 5, "clientCount": 2}}, []),
    ({"uid": "js1", "nsp": "/", "type": 12, "data": {"requestId": 5, "packet": 1}}, []),
    ({"uid": "js1", "nsp": "/", "type": 7, "data": {"opts": {}}}, []),
    ({"uid": "js1", "nsp": "/", "type": 99, "data": {}}, []),
]


@pytest.mark.parametrize(("message", "received"), SHARDED_IN)
async def test_sharded_receives(sharded: Node, message: Any,
                                received: list[ClusterMessage]) -> None:
    sharded.feed("k#/#", message)
    assert [m for _, m in sharded.received] == received
    assert sharded.store.dropped.count == 0


async def test_broadcasts_are_held_to_the_end_of_the_turn_or_the_next_other_message(
        classic: Node, sharded: Node) -> None:
    """What arrives together is delivered together (Cluster.receive_broadcasts: one pass
    over the recipients per run), in order with the other messages."""
    emit = ["js1", JS_EVENT, OPTS_JS]
    classic.feed("k#/#r#", emit, packed=True, held=True)
    classic.feed("k#/#r#", emit, packed=True, held=True)
    assert classic.received == []
    classic.feed("k-request#/#", {"uid": "js1", "type": 6, "data": ["hi", 1]}, held=True)
    assert [m for _, m in classic.received] == [
        Broadcast("/", OPTS, None), Broadcast("/", OPTS, None), ServerSideEmit("/", ["hi", 1])]
    classic.feed("k#/#r#", emit, packed=True, held=True)
    classic.feed("k#/#", ["js2", JS_EVENT, OPTS_JS], packed=True, held=True)
    await asyncio.sleep(0)  # the turn's end
    assert [origin for origin, _ in classic.received[3:]] == ["js:js1", "js:js2"]
    broadcast = {"uid": "js1", "nsp": "/", "type": 3, "data": {"packet": JS_EVENT,
                                                               "opts": OPTS_JS}}
    sharded.feed("k#/#", broadcast, held=True)
    assert sharded.received == []
    sharded.feed("k#/#", {"uid": "js1", "nsp": "/", "type": 9, "data": {"packet": ["hi"]}},
                 held=True)
    assert [m for _, m in sharded.received] == [Broadcast("/", OPTS, None),
                                                 ServerSideEmit("/", ["hi"])]


async def test_a_broadcast_received_carries_the_packet_to_encode_here(classic: Node) -> None:
    classic.feed("k#/#", ["js1", {"type": 5, "nsp": "/", "data": ["e", b"\x01"]}, {}],
                 packed=True)
    [(origin, message)] = classic.received
    assert origin == "js:js1" and isinstance(message, Broadcast) and message.parts is None
    assert message.packet == sio.Packet(sio.PacketType.EVENT, "/", ["e", b"\x01"])


BAD_IN: list[tuple[str, str, Any]] = [
    (CLASSIC, "k#/#", ["js1", {"type": 2, "nsp": "/", "data": ["e"], "id": 1}, {}]),
    (CLASSIC, "k-request#/#", {"uid": "js1", "type": 7, "packet": JS_EVENT, "opts": {}}),
    (CLASSIC, "k-request#/#", {"uid": "js1", "type": 2, "opts": {}, "rooms": "a"}),
    (SHARDED, "k#/#", {"uid": "js1", "nsp": "/", "type": 3, "data": {
        "packet": {"type": 2, "data": ["e"], "id": 1}, "opts": {}}}),
    (SHARDED, "k#/#", {"uid": "js1", "nsp": "/", "type": 3, "data": {
        "packet": JS_EVENT, "opts": {}, "requestId": 5}}),
    (SHARDED, "k#/#", {"uid": "js1", "nsp": "/", "type": 9, "data": {"packet": "x"}}),
    (SHARDED, "k#/#", [1, 2]),
    (CLASSIC, "k#/#", ["js1", JS_EVENT]),
]


@pytest.mark.parametrize(("url", "channel", "message"), BAD_IN)
async def test_malformed_messages_are_dropped(url: str, channel: str, message: Any) -> None:
    node = Node(url)
    try:
        node.feed(channel, message, packed=isinstance(message, list))
        assert node.received == [] and node.store.dropped.count == 1
    finally:
        await node.store.close_clients()


async def test_what_is_on_no_channel_of_ours_is_left_alone(classic: Node,
                                                            sharded: Node) -> None:
    classic.feed("elsewhere#", {"uid": "js1", "type": 6, "data": ["hi"]})
    assert classic.received == [] and classic.store.dropped.count == 0
    assert sharded.link.on_message("elsewhere#", b"{}") is False
    assert classic.link.on_message("elsewhere#", b"{}") is False


async def test_answers_counted_once_each_until_done() -> None:
    answers = _Answers(2, "sockets")
    answers.add({"requestId": "q"})  # counts, carries nothing
    answers.add({"requestId": "q", "sockets": [1]})
    answers.add({"requestId": "q", "sockets": [2]})  # done already: not taken
    assert answers.done.done() and answers.count == 2 and answers.answers == [[1]]


def test_the_classic_sockets_and_rooms_answers_skip_what_is_not_a_socket() -> None:
    sockets = [{"id": "s1", "rooms": ["s1", "a", 3]}, "junk", {"id": "s2"}]
    assert _sockets_or_rooms(SOCKETS_REQUEST, "q", sockets) == {
        "requestId": "q", "sockets": ["s1", "s2"]}
    assert _sockets_or_rooms(ALL_ROOMS, "q", sockets) == {
        "requestId": "q", "rooms": ["a", "s1"]}


# --- requests that are answered ----------------------------------------------------------------

SOCKETS = [{"id": "s1", "rooms": ["s1", "a"]}, {"id": "s2", "rooms": ["s2", "a", "b"]}]


@pytest.mark.parametrize(("request_", "answer"), [
    ({"uid": "js1", "type": 5, "requestId": "q", "opts": {"rooms": ["a"]}},
     {"requestId": "q", "sockets": SOCKETS}),
    ({"uid": "js1", "type": 0, "requestId": "q", "rooms": ["a"]},
     {"requestId": "q", "sockets": ["s1", "s2"]}),
    ({"uid": "js1", "type": 1, "requestId": "q"},
     {"requestId": "q", "rooms": ["a", "b", "s1", "s2"]}),
    ({"uid": "js1", "type": 6, "requestId": "q", "data": ["ask", 1]},
     {"type": 6, "requestId": "q", "data": "answered"}),
])
async def test_classic_answers_requests(classic: Node, request_: Any, answer: Any) -> None:
    async def answering(message: ClusterMessage) -> Any:
        return SOCKETS if isinstance(message, FetchSockets) else "answered"

    classic.answer = answering
    classic.feed("k-request#/#", request_)
    assert await classic.next_published() == ("k-response#/#", answer)


@pytest.mark.parametrize(("request_", "answer"), [
    ({"uid": "js1", "nsp": "/", "type": 7, "data": {"requestId": "q", "opts": {}}},
     {"uid": "me", "nsp": "/", "type": 8, "data": {"requestId": "q", "sockets": SOCKETS}}),
    ({"uid": "js1", "nsp": "/", "type": 9, "data": {"requestId": "q", "packet": ["ask"]}},
     {"uid": "me", "nsp": "/", "type": 10, "data": {"requestId": "q", "packet": "answered"}}),
])
async def test_sharded_answers_requests(sharded: Node, request_: Any, answer: Any) -> None:
    sharded.answer = lambda message: SOCKETS if isinstance(message, FetchSockets) \
        else "answered"
    sharded.feed("k#/#", request_)
    assert await sharded.next_published() == ("k#/#js1#", answer)


@pytest.mark.parametrize("url", [CLASSIC, SHARDED])
async def test_our_requests_gather_the_answers(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    node = Node(url)

    async def two_servers(namespace: str) -> int:
        return 2

    monkeypatch.setattr(node.link, "count_servers", two_servers)
    try:
        asking = asyncio.ensure_future(node.link.ask_servers(FetchSockets("/", OPTS), scaled(5)))
        channel, request = await node.next_published()
        if url == CLASSIC:
            assert (channel, request["type"], request["opts"]) == (
                "k-request#/#", 5, {"rooms": ["r"], "except": ["x"]})
            request_id = request["requestId"]
            for sockets in ([{"id": "a"}], [{"id": "b"}]):
                node.feed("k-response#/#", {"requestId": request_id, "sockets": sockets})
        else:
            assert (channel, request["type"], request["data"]["opts"]) == (
                "k#/#", 7, {"rooms": ["r"], "except": ["x"]})
            request_id = request["data"]["requestId"]
            for sockets in ([{"id": "a"}], [{"id": "b"}]):
                node.feed("k#/#me#", {"uid": "js1", "nsp": "/", "type": 8,
                                      "data": {"requestId": request_id, "sockets": sockets}})
        assert await asking == [[{"id": "a"}], [{"id": "b"}]]
        asking = asyncio.ensure_future(node.link.ask_servers(ServerSideEmit("/", ["e"]),
                                                             scaled(0.1)))
        channel, request = await node.next_published()
        assert await asking == []  # nobody answered in time
    finally:
        await node.store.close_clients()


async def test_namespaces_followed_once_and_left(classic: Node) -> None:
    followed: list[tuple[str, list[str]]] = []
    classic.store.follow = lambda channels: followed.append(("follow", channels))  # type: ignore[method-assign]
    classic.store.unfollow = lambda channels: followed.append(("unfollow", channels))  # type: ignore[method-assign]
    classic.link.namespace_added("/n")
    classic.link.namespace_added("/n")
    classic.link.namespace_removed("/n")
    classic.link.namespace_removed("/n")
    classic.link.namespace_removed("/")  # the main namespace stays
    assert followed == [("follow", ["k-request#/n#"]), ("unfollow", ["k-request#/n#"])]


@pytest.mark.parametrize("mode, public, private", [
    ("dynamic", True, False), ("dynamic-private", True, True), ("static", False, False)])
async def test_sharded_reads_the_channels_of_its_rooms_as_the_mode_says(
        mode: str, public: bool, private: bool) -> None:
    """The JavaScript sharded adapter's dynamic modes put a broadcast to one room on that
    room's channel: a room with members here is read there, (un)subscribed once per turn."""
    node = Node(SHARDED)
    node.store.subscription_mode = mode
    node.link = adapter_link(node, node.store)
    followed = record_follows_store(node.store)
    node.link.room_created("/n", "room", False)
    node.link.room_created("/n", "sid1", True)
    node.link.room_created("/n", "brief", False)
    node.link.room_deleted("/n", "brief", False)  # made and emptied in one turn: nothing
    assert followed == []
    await asyncio.sleep(0)  # the end of the turn
    expected = [c for c, wanted in (("k#/n#room#", public), ("k#/n#sid1#", private)) if wanted]
    assert followed == ([("follow", expected)] if expected else [])
    followed.clear()
    node.link.room_deleted("/n", "room", False)
    node.link.room_deleted("/n", "sid1", True)
    await asyncio.sleep(0)
    assert followed == ([("unfollow", expected)] if expected else [])
    await node.store.close_clients()


def test_a_subscription_mode_not_known_is_refused() -> None:
    with pytest.raises(ValueError, match="subscription_mode 'sticky'"):
        RedisStore(SHARDED, subscription_mode="sticky")


async def test_the_server_tells_its_link_of_rooms_made_and_emptied() -> None:
    """A Server on a (never connected) Cluster store: joining a new room and leaving it
    follows and unfollows the room's channel; a socket's own room is private."""
    from sio_core import Server
    from tests.fake_engine import FakeEngineSocket

    io = Server()
    store = RedisStore(SHARDED, owner="me", key="k")
    io.attach_store(store)
    followed = record_follows_store(store)

    @io.on("connection")
    def connection(socket: Any) -> None:
        socket.on("join", socket.join)
        socket.on("leave", socket.leave)

    session = FakeEngineSocket(io)
    session.receive("0")
    await asyncio.sleep(0)
    session.receive('2["join","chat"]')
    for _ in range(3):
        await asyncio.sleep(0)
    assert ("follow", ["k#/#chat#"]) in followed
    assert not any("#/#" + sid in channel for _, channels in followed
                   for channel in channels for sid in io.of("/").sockets)  # private: not read
    session.receive('2["leave","chat"]')
    for _ in range(3):
        await asyncio.sleep(0)
    assert followed[-1] == ("unfollow", ["k#/#chat#"])
    await store.close_clients()


def record_follows_store(store: RedisStore) -> list[tuple[str, list[str]]]:
    followed: list[tuple[str, list[str]]] = []
    store.follow = lambda channels: followed.append(("follow", channels))  # type: ignore[method-assign]
    store.unfollow = lambda channels: followed.append(("unfollow", channels))  # type: ignore[method-assign]
    return followed
