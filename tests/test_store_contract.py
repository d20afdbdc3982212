"""The store contract (sio_core.stores.base), one suite run against every backend.

How this works: the ``cluster`` fixture is parametrised over the backends and yields a
:class:`Cluster`, a factory of connected workers of one backend (``a, b = await cluster(2)``):

- ``memory``: MemoryStores sharing one MemoryBus (packed and unpacked on the way, like a bus);
- ``hub``: a Hub on a Unix socket under tmp_path and HubStores, all in this process;
- ``redis``: RedisStores on a real redis-server (see the hook below), marked ``redis``;
- ``redis-cluster``: RedisStores on a private 3-master Redis Cluster (sharded pub/sub, keys on
  their slots' nodes), marked ``redis``.

Every contract test takes ``cluster`` and so runs once per backend; what only one backend
promises (the hub's rules for its workers) and the envelope codec are tested after them. A test
never sleeps to let messages arrive: it awaits what it expects, and ``flush`` proves that nothing
more is on the way (every worker has heard back from every other since).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import struct
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sio_core.engine.messages import EngineKind
from sio_core.stores.base import (
    MAX_ENVELOPE,
    VERSION,
    BadMessage,
    BusKind,
    Drops,
    Envelope,
    RequestFailed,
    Store,
    unpack_head,
)
from sio_core.stores.hub import FLUSH_SIZE, Hub, HubStore, batch_frame
from sio_core.stores.log import LogKind
from sio_core.stores.memory import MemoryBus, MemoryStore
from tests.support import scaled

# --- redis: the hook --------------------------------------------------------------------------
# RedisStore (sio_core/stores/redis.py) is written against the same contract. These cases are
# collected only once that module imports; they are marked ``redis`` and use the redis_url /
# redis_prefix fixtures (a skip without a redis-server, a failure under CI=true). If its
# constructor differs, adjust make_redis_store, nothing else.
try:
    from sio_core.stores.redis import RedisStore
except ImportError:
    RedisStore = None


def make_redis_store(owner: str, url: str, prefix: str) -> Store:
    assert RedisStore is not None
    # a short heartbeat: peers are found (and lost) by it, and settle() waits for them
    return RedisStore(url, owner=owner, key=prefix, heartbeat=scaled(0.05))


BACKENDS: list[Any] = ["memory", "hub"]
if RedisStore is not None:
    BACKENDS.append(pytest.param("redis", marks=pytest.mark.redis))
    BACKENDS.append(pytest.param("redis-cluster", marks=pytest.mark.redis))
# -----------------------------------------------------------------------------------------------

#: how long to wait for something that should happen (only ever reached when a test fails)
WAIT = scaled(5)
#: the timeout of a request or gather that is meant to run out
SHORT = scaled(0.25)
#: "at once": well under WAIT, far above a loop turn or a round trip through the hub
FAST = scaled(1)

# The kinds the tests exchange: the bus names only its own (BusKind), and carries any other
# kind to the handler registered for it, whatever layer names it.
KIND = "test_kind"
OTHER_KIND = "test_other_kind"
#: the kind flush() uses; no handler, so a request of it is answered None
FLUSH = "test_flush"


class Cluster:
    """Workers of one backend. ``await cluster(n)`` starts n more and returns them once every
    live worker sees every other one among its peers."""

    def __init__(self, backend: str, make: Callable[[str], Store], fast_no_peer: bool) -> None:
        self.backend = backend
        #: a request to a worker that is not there fails at once (NO_PEER), not at its timeout
        self.fast_no_peer = fast_no_peer
        self.stores: list[Store] = []
        self.hub: Hub | None = None
        self._make = make
        self._names = itertools.count(1)
        self._started: list[Store] = []
        self._peers_changed = asyncio.Event()

    async def __call__(self, n: int = 1) -> list[Store]:
        new = []
        for _ in range(n):
            store = self._make(f"w{next(self._names)}")
            store.on_peers(lambda peers: self._peers_changed.set())
            self._started.append(store)
            await store.start()
            self.stores.append(store)
            new.append(store)
        await self.settle()
        return new

    async def stop(self, store: Store) -> None:
        """Close one worker; returns once the others no longer count it among their peers."""
        self.stores.remove(store)
        await store.close()
        await self.settle()

    async def lost(self, store: Store) -> None:
        """A worker that went away on its own: wait until the others see it gone."""
        self.stores.remove(store)
        await self.settle()

    async def settle(self) -> None:
        async with asyncio.timeout(WAIT):
            while True:
                self._peers_changed.clear()
                if all(s.peers == {o.owner for o in self.stores if o is not s}
                       for s in self.stores):
                    return
                await self._peers_changed.wait()

    async def aclose(self) -> None:
        for store in reversed(self._started):
            await store.close()


@contextlib.contextmanager
def hub_socket_path(tmp_path: Path) -> Iterator[str]:
    # sun_path holds about 100 bytes; a deep basetemp would not fit
    path = tmp_path / "hub.sock"
    if len(str(path)) < 100:
        yield str(path)
        return
    with tempfile.TemporaryDirectory(prefix="sio-hub-") as short:
        yield str(Path(short) / "hub.sock")


@contextlib.asynccontextmanager
async def open_cluster(backend: str, request: pytest.FixtureRequest,
                       tmp_path: Path) -> AsyncIterator[Cluster]:
    async with contextlib.AsyncExitStack() as stack:
        if backend == "memory":
            bus = MemoryBus()
            cluster = Cluster(backend, lambda owner: MemoryStore(owner, bus), fast_no_peer=True)
        elif backend == "hub":
            hub = Hub(stack.enter_context(hub_socket_path(tmp_path)))
            await hub.start()
            stack.push_async_callback(hub.close)
            cluster = Cluster(backend, lambda owner: HubStore(owner, hub.path), fast_no_peer=True)
            cluster.hub = hub
        else:
            cluster_backend = backend == "redis-cluster"
            url = request.getfixturevalue("redis_cluster_url" if cluster_backend else "redis_url")
            prefix = request.getfixturevalue(
                "redis_cluster_prefix" if cluster_backend else "redis_prefix"
            )
            cluster = Cluster(backend, lambda owner: make_redis_store(owner, url, prefix),
                              fast_no_peer=False)
        stack.push_async_callback(cluster.aclose)
        yield cluster


@pytest.fixture(params=BACKENDS)
async def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Cluster]:
    async with open_cluster(request.param, request, tmp_path) as c:
        yield c


@pytest.fixture
async def hub_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Cluster]:
    async with open_cluster("hub", request, tmp_path) as c:
        yield c


class Inbox:
    """A handler that keeps what it is given (and answers ``answer(envelope)`` if given)."""

    def __init__(self, answer: Callable[[Envelope], Any] | None = None) -> None:
        self.envelopes: list[Envelope] = []
        self._answer = answer
        self._changed = asyncio.Event()

    def __call__(self, envelope: Envelope) -> Any:
        self.envelopes.append(envelope)
        self._changed.set()
        return None if self._answer is None else self._answer(envelope)

    @property
    def payloads(self) -> list[Any]:
        return [e.payload for e in self.envelopes]

    async def wait(self, count: int = 1) -> list[Any]:
        async with asyncio.timeout(WAIT):
            while len(self.envelopes) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.payloads


def listen(store: Store, kind: str = KIND,
           answer: Callable[[Envelope], Any] | None = None) -> Inbox:
    inbox = Inbox(answer)
    store.on(kind, inbox)
    return inbox


def never_answer(store: Store, kind: str = KIND) -> asyncio.Event:
    """A handler that never returns; the event is set once it has been called."""
    called = asyncio.Event()

    async def handler(envelope: Envelope) -> Any:
        called.set()
        await asyncio.get_running_loop().create_future()

    store.on(kind, handler)
    return called


async def flush(cluster: Cluster) -> None:
    """Return once every envelope sent before the call has been delivered: every worker asks
    every other one something and waits for the answer, twice over (an answer from y to x
    comes after whatever x sent y before asking; the second round covers whatever was
    travelling to x itself)."""
    for _ in range(2):
        for x, y in itertools.permutations(cluster.stores, 2):
            await x.request(y.owner, FLUSH, None, WAIT)


# --- publish and send --------------------------------------------------------------------------


async def test_publish_reaches_every_other_worker_once(cluster: Cluster) -> None:
    stores = await cluster(3)
    inboxes = [listen(s) for s in stores]
    a = stores[0]
    a.publish(KIND, {"n": 1})
    await flush(cluster)
    assert inboxes[0].payloads == []
    for inbox in inboxes[1:]:
        assert inbox.payloads == [{"n": 1}]
        (envelope,) = inbox.envelopes
        assert envelope.origin == a.owner
        assert envelope.target is None


async def test_publish_alone_goes_nowhere(cluster: Cluster) -> None:
    (a,) = await cluster(1)
    inbox = listen(a)
    a.publish(KIND, "hello")
    (b,) = await cluster(1)
    await flush(cluster)
    assert inbox.payloads == []
    assert a.peers == {b.owner}


async def test_send_reaches_only_its_target(cluster: Cluster) -> None:
    a, b, c = await cluster(3)
    inboxes = {s.owner: listen(s) for s in (a, b, c)}
    a.send(c.owner, KIND, "for c")
    await flush(cluster)
    assert inboxes[a.owner].payloads == []
    assert inboxes[b.owner].payloads == []
    (envelope,) = inboxes[c.owner].envelopes
    assert (envelope.kind, envelope.origin, envelope.target, envelope.payload) == (
        KIND, a.owner, c.owner, "for c")


async def test_messages_between_two_workers_keep_their_order(cluster: Cluster) -> None:
    a, b = await cluster(2)
    sent = listen(b, KIND)
    published = listen(b, OTHER_KIND)
    for n in range(500):
        a.send(b.owner, KIND, n)
    for n in range(500):
        a.publish(OTHER_KIND, n)
    assert await sent.wait(500) == list(range(500))
    assert await published.wait(500) == list(range(500))


PAYLOADS: list[Any] = [
    None,
    True,
    0,
    -1,
    2**63 - 1,
    -(2**63),
    1.5,
    "",
    "é ✓ 😀",
    b"",
    bytes(range(256)),
    b"\x00\xff" * 65536,
    [b"\x00", "b", [1, [2, [3, []]]], {}],
    {"sid": "abc", "b": b"\x89PNG\r\n", "nested": {"list": [None, 1.25, {"x": b"y"}]}},
    {1: "an int key", "s": "a str key"},
]


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: type(p).__name__)
async def test_payloads_survive_the_trip(cluster: Cluster, payload: Any) -> None:
    a, b = await cluster(2)
    inbox = listen(b, answer=lambda envelope: envelope.payload)
    answer = await a.request(b.owner, KIND, payload, WAIT)
    assert inbox.payloads == [payload]
    assert answer == payload
    assert type(answer) is type(payload)


# --- request -----------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["sync", "async"])
async def test_request_returns_the_target_handlers_answer(cluster: Cluster, style: str) -> None:
    a, b, c = await cluster(3)
    seen: list[Envelope] = []

    def answer(envelope: Envelope) -> Any:
        seen.append(envelope)
        return {"echo": envelope.payload, "by": c.owner}

    async def answer_later(envelope: Envelope) -> Any:
        await asyncio.sleep(0)  # a real suspension, so the reply is sent from another task
        return answer(envelope)

    c.on(KIND, answer if style == "sync" else answer_later)
    others = listen(b)
    assert await a.request(c.owner, KIND, [1, "two"], WAIT) == {"echo": [1, "two"], "by": c.owner}
    (envelope,) = seen
    assert (envelope.origin, envelope.target) == (a.owner, c.owner)
    assert envelope.request_id is not None
    await flush(cluster)
    assert others.payloads == []


async def test_concurrent_requests_get_their_own_answers(cluster: Cluster) -> None:
    a, b, c = await cluster(3)

    async def answer(envelope: Envelope) -> Any:
        # the last asked answers first
        await asyncio.sleep(0)
        for _ in range(20 - envelope.payload["n"]):
            await asyncio.sleep(0)
        return {"n": envelope.payload["n"], "by": envelope.target}

    b.on(KIND, answer)
    c.on(KIND, answer)
    answers = await asyncio.gather(*(
        a.request(target.owner, KIND, {"n": n}, WAIT)
        for n in range(20) for target in (b, c)))
    assert answers == [{"n": n, "by": t.owner} for n in range(20) for t in (b, c)]


async def test_request_with_no_handler_is_answered_none(cluster: Cluster) -> None:
    a, b = await cluster(2)
    assert await a.request(b.owner, KIND, "anyone?", WAIT) is None


async def test_request_to_an_unknown_worker_fails_at_once(cluster: Cluster) -> None:
    (a,) = await cluster(1)
    timeout = WAIT if cluster.fast_no_peer else SHORT
    started = time.monotonic()
    with pytest.raises(RequestFailed):
        await a.request("nobody", KIND, None, timeout)
    if cluster.fast_no_peer:
        assert time.monotonic() - started < FAST


async def test_request_to_a_worker_that_left_fails_at_once(cluster: Cluster) -> None:
    a, b = await cluster(2)
    await cluster.stop(b)
    timeout = WAIT if cluster.fast_no_peer else SHORT
    started = time.monotonic()
    with pytest.raises(RequestFailed):
        await a.request(b.owner, KIND, None, timeout)
    if cluster.fast_no_peer:
        assert time.monotonic() - started < FAST


async def test_request_times_out_when_the_handler_never_answers(cluster: Cluster) -> None:
    a, b = await cluster(2)
    called = never_answer(b)
    started = time.monotonic()
    with pytest.raises(RequestFailed):
        await a.request(b.owner, KIND, None, SHORT)
    elapsed = time.monotonic() - started
    assert called.is_set()
    assert SHORT * 0.9 <= elapsed < WAIT
    # the store goes on working after a timeout
    listen(b, OTHER_KIND, answer=lambda envelope: "still here")
    assert await a.request(b.owner, OTHER_KIND, None, WAIT) == "still here"


async def test_request_fails_when_its_target_leaves_midway(cluster: Cluster) -> None:
    a, b = await cluster(2)
    called = never_answer(b)
    started = time.monotonic()
    pending = asyncio.ensure_future(a.request(b.owner, KIND, None, WAIT))
    async with asyncio.timeout(WAIT):
        await called.wait()
    await cluster.stop(b)
    with pytest.raises(RequestFailed):
        await pending
    assert time.monotonic() - started < WAIT / 2


async def test_a_reply_counts_only_from_the_target(cluster: Cluster) -> None:
    # c answers a's request to b: a store must not take that for b's answer
    a, b, c = await cluster(3)
    called = never_answer(b)
    pending = asyncio.ensure_future(a.request(b.owner, KIND, None, SHORT))
    async with asyncio.timeout(WAIT):
        await called.wait()
    (request_id,) = a._pending
    c._transmit(Envelope(BusKind.REPLY, c.owner, "forged", a.owner, request_id))
    await flush(cluster)
    with pytest.raises(RequestFailed):
        await pending


async def test_close_fails_the_pending_requests(cluster: Cluster) -> None:
    a, b = await cluster(2)
    called = never_answer(b)
    pending = asyncio.ensure_future(a.request(b.owner, KIND, None, WAIT))
    async with asyncio.timeout(WAIT):
        await called.wait()
    started = time.monotonic()
    await cluster.stop(a)
    with pytest.raises(RequestFailed):
        await pending
    assert time.monotonic() - started < FAST


# --- order: what one worker asks and sends another arrives in turn -----------------------------


async def test_asks_and_sends_are_handled_in_the_order_made(cluster: Cluster) -> None:
    """The guarantee the forwarding of a session's requests rests on: ``ask`` transmits
    before it returns, the bus keeps the order between two workers, and ``deliver`` calls
    each handler as its envelope arrives, a handler whose answer waits (a Future, like a
    long-poll) included: what it did before returning is seen by the handlers after it."""
    a, b = await cluster(2)
    loop = asyncio.get_running_loop()
    handled: list[tuple[str, int]] = []
    held: list[tuple[int, asyncio.Future[Any]]] = []

    def hold(envelope: Envelope) -> asyncio.Future[Any]:
        # answered later: by the next release
        handled.append(("hold", envelope.payload))
        future: asyncio.Future[Any] = loop.create_future()
        held.append((envelope.payload, future))
        return future

    def release(envelope: Envelope) -> Any:
        handled.append(("release", envelope.payload))
        for n, future in held:
            future.set_result({"held": n, "released by": envelope.payload})
        held.clear()
        return "released"

    b.on(KIND, hold)
    b.on(OTHER_KIND, release)
    made: list[tuple[str, int]] = []
    holds, releases = [], []
    for n in range(100):  # one burst, no await between: the order made is the order asked
        holds.append(a.ask(b.owner, KIND, n, WAIT))
        made.append(("hold", n))
        if n % 3 == 2:
            a.send(b.owner, OTHER_KIND, n)  # a send between the asks keeps its place too
            made.append(("release", n))
        if n % 5 == 4:
            releases.append(a.ask(b.owner, OTHER_KIND, n, WAIT))
            made.append(("release", n))
    releases.append(a.ask(b.owner, OTHER_KIND, 100, WAIT))
    made.append(("release", 100))
    assert await asyncio.gather(*releases) == ["released"] * len(releases)
    assert handled == made
    answers = await asyncio.gather(*holds)
    # each held ask was answered by the first release made after it
    released_by = {}
    for kind, n in reversed(made):
        if kind == "release":
            first_release = n
        else:
            released_by[n] = first_release
    assert answers == [{"held": n, "released by": released_by[n]} for n in range(100)]


async def test_a_cancelled_ask_is_forgotten(cluster: Cluster) -> None:
    # (its timeout is request's, tested above: request awaits an ask)
    a, b = await cluster(2)
    never_answer(b)
    # the asker gives up: nothing of the request is left behind, a late answer is dropped
    asked = a.ask(b.owner, KIND, None, WAIT)
    asked.cancel()
    await flush(cluster)
    assert a._pending == {} and a._request_targets == {}


async def test_a_cancelled_handler_future_sends_no_answer(cluster: Cluster) -> None:
    # the owner's side of an aborted long-poll: the handler's future is cancelled there
    a, b = await cluster(2)
    futures: list[asyncio.Future[Any]] = []

    def hold(envelope: Envelope) -> asyncio.Future[Any]:
        futures.append(asyncio.get_running_loop().create_future())
        return futures[-1]

    b.on(KIND, hold)
    asked = a.ask(b.owner, KIND, None, SHORT)
    await flush(cluster)
    (future,) = futures
    future.cancel()
    with pytest.raises(RequestFailed):  # its timeout, not an answer
        await asked


# --- gather ------------------------------------------------------------------------------------


async def test_gather_returns_one_answer_per_peer(cluster: Cluster) -> None:
    stores = await cluster(4)
    for store in stores:
        listen(store, answer=lambda envelope, owner=store.owner: {"by": owner,
                                                                  "asked": envelope.payload})
    a = stores[0]
    answers = await a.gather(KIND, "count", WAIT)
    assert sorted(answers, key=lambda r: r["by"]) == [
        {"by": s.owner, "asked": "count"} for s in sorted(stores[1:], key=lambda s: s.owner)]


async def test_gather_alone_returns_nothing_at_once(cluster: Cluster) -> None:
    (a,) = await cluster(1)
    started = time.monotonic()
    assert await a.gather(KIND, None, WAIT) == []
    assert time.monotonic() - started < FAST


async def test_gather_with_a_silent_peer_returns_the_others_after_the_timeout(
        cluster: Cluster) -> None:
    a, b, c = await cluster(3)
    called = never_answer(b)
    listen(c, answer=lambda envelope: "from c")
    started = time.monotonic()
    assert await a.gather(KIND, None, SHORT) == ["from c"]
    elapsed = time.monotonic() - started
    assert called.is_set()
    assert SHORT * 0.9 <= elapsed < WAIT


async def test_gather_when_a_peer_leaves_midway_does_not_wait_for_it(cluster: Cluster) -> None:
    a, b, c = await cluster(3)
    called = never_answer(b)
    listen(c, answer=lambda envelope: "from c")
    started = time.monotonic()
    gathering = asyncio.ensure_future(a.gather(KIND, None, WAIT))
    async with asyncio.timeout(WAIT):
        await called.wait()
    await cluster.stop(b)
    assert await gathering == ["from c"]
    assert time.monotonic() - started < WAIT / 2


# --- peers -------------------------------------------------------------------------------------


async def test_peers_follow_workers_joining_and_leaving(cluster: Cluster) -> None:
    a, b = await cluster(2)
    assert (a.peers, b.peers) == ({b.owner}, {a.owner})
    calls: list[set[str]] = []
    a.on_peers(calls.append)
    (c,) = await cluster(1)
    assert a.peers == {b.owner, c.owner}
    assert calls[-1] == {b.owner, c.owner}
    calls[-1].clear()  # a listener's set is its own copy
    assert a.peers == {b.owner, c.owner}
    del calls[:]
    await cluster.stop(b)
    assert a.peers == {c.owner}
    assert calls[-1] == {c.owner}
    assert c.peers == {a.owner}


async def test_a_failing_peers_listener_does_not_stop_the_others(cluster: Cluster) -> None:
    a, b = await cluster(2)
    calls: list[set[str]] = []

    def broken(peers: set[str]) -> None:
        raise RuntimeError("listener bug")

    a.on_peers(broken)
    a.on_peers(calls.append)
    (c,) = await cluster(1)
    assert calls[-1] == {b.owner, c.owner}


# --- handlers that fail ------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["sync", "async", "future"])
async def test_a_failing_handler_does_not_break_the_store(
        cluster: Cluster, style: str, caplog: pytest.LogCaptureFixture) -> None:
    a, b = await cluster(2)

    def answer(envelope: Envelope) -> Any:
        if envelope.payload == "boom":
            raise ValueError("handler bug")
        return f"ok {envelope.payload}"

    async def answer_later(envelope: Envelope) -> Any:
        await asyncio.sleep(0)
        return answer(envelope)

    def answer_in_a_future(envelope: Envelope) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        try:
            future.set_result(answer(envelope))
        except ValueError as exc:
            future.set_exception(exc)
        return future

    b.on(KIND, {"sync": answer, "async": answer_later, "future": answer_in_a_future}[style])
    inbox = listen(b, OTHER_KIND)
    assert await a.request(b.owner, KIND, "boom", WAIT) is None
    a.send(b.owner, KIND, "boom")  # no answer expected: nothing should be sent back
    assert await a.request(b.owner, KIND, "after", WAIT) == "ok after"
    a.publish(OTHER_KIND, "still flowing")
    assert await inbox.wait() == ["still flowing"]
    assert "handler bug" in caplog.text


# --- the hub's rules for its workers -----------------------------------------------------------

_LENGTH = struct.Struct(">I")


def hub_writer(store: Store) -> asyncio.StreamWriter:
    assert isinstance(store, HubStore) and store._writer is not None
    return store._writer


def raw_frame(data: bytes) -> bytes:
    return _LENGTH.pack(len(data)) + data


async def test_hub_drops_envelopes_with_a_forged_origin(hub_cluster: Cluster) -> None:
    a, b, c = await hub_cluster(3)
    inbox_b, inbox_c = listen(b), listen(c)
    a._transmit(Envelope(KIND, b.owner, "forged send", c.owner))
    a._transmit(Envelope(KIND, b.owner, "forged publish"))
    a._transmit(Envelope(KIND, "hub", "forged hub"))
    a.send(c.owner, KIND, "real")
    await flush(hub_cluster)
    assert inbox_b.payloads == []
    assert inbox_c.payloads == ["real"]
    assert [e.origin for e in inbox_c.envelopes] == [a.owner]


async def test_hub_does_not_let_a_worker_rename_itself(hub_cluster: Cluster) -> None:
    # a second READY on a's connection, naming b: b keeps its name and its traffic
    a, b, c = await hub_cluster(3)
    inbox_a, inbox_b = listen(a), listen(b)
    a._transmit(Envelope(BusKind.READY, b.owner, 0))
    c.send(b.owner, KIND, "for b")
    a._transmit(Envelope(KIND, b.owner, "a as b", c.owner))
    await flush(hub_cluster)
    assert inbox_b.payloads == ["for b"]
    assert inbox_a.payloads == []
    assert {s.owner: s.peers for s in (a, b, c)} == {
        a.owner: {b.owner, c.owner}, b.owner: {a.owner, c.owner}, c.owner: {a.owner, b.owner}}


async def test_hub_keeps_a_name_in_use_with_its_worker(hub_cluster: Cluster) -> None:
    # another connection saying READY as b does not take b's place
    a, b = await hub_cluster(2)
    assert hub_cluster.hub is not None
    inbox_b = listen(b)
    _, writer = await asyncio.open_unix_connection(hub_cluster.hub.path)
    try:
        writer.write(raw_frame(Envelope(BusKind.READY, b.owner, 0).pack()))
        writer.write(raw_frame(Envelope(KIND, b.owner, "impostor", a.owner).pack()))
        await writer.drain()
        a.send(b.owner, KIND, "for b")
        assert await inbox_b.wait() == ["for b"]
        await flush(hub_cluster)
        assert (a.peers, b.peers) == ({b.owner}, {a.owner})
    finally:
        writer.close()
        await writer.wait_closed()
    # the impostor's connection going away does not take b with it
    await flush(hub_cluster)
    assert (a.peers, b.peers) == ({b.owner}, {a.owner})


async def test_hub_does_not_relay_its_own_messages_from_a_worker(hub_cluster: Cluster) -> None:
    # PEERS and NO_PEER are the hub's to say; a worker sending them would blind the others
    a, b, c = await hub_cluster(3)
    called = never_answer(c)
    pending = asyncio.ensure_future(b.request(c.owner, KIND, None, WAIT))
    async with asyncio.timeout(WAIT):
        await called.wait()
    (request_id,) = b._pending
    a._transmit(Envelope(BusKind.PEERS, a.owner, []))
    a._transmit(Envelope(BusKind.NO_PEER, a.owner, None, b.owner, request_id))
    await flush(hub_cluster)
    assert b.peers == {a.owner, c.owner}
    assert c.peers == {a.owner, b.owner}
    assert not pending.done()
    pending.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await pending


async def test_hub_drops_garbage_and_keeps_the_connection(hub_cluster: Cluster) -> None:
    a, b = await hub_cluster(2)
    inbox = listen(b)
    writer = hub_writer(a)
    writer.write(raw_frame(b"not msgpack \xc1"))
    writer.write(raw_frame(msgpack.packb(["emit", a.owner])))
    writer.write(raw_frame(msgpack.packb(["no such kind", a.owner, b.owner, None, 1])))
    writer.write(raw_frame(b""))
    # a sound header over a payload that does not decode (a map with a list for a key),
    # where the master reads the frame whole: the log's kinds, a batch to a worker gone
    for kind, target in ((LogKind.LOG_APPEND, None), (BusKind.BATCH, "gone")):
        head = msgpack.packb([VERSION, kind, a.owner, target, None])
        writer.write(raw_frame(b"\x96" + head[1:] + b"\x81\x91\x01\x02"))
    a.send(b.owner, KIND, "after the garbage")
    assert await inbox.wait() == ["after the garbage"]
    await flush(hub_cluster)
    assert inbox.payloads == ["after the garbage"]
    assert b.peers == {a.owner}


async def test_hub_closes_a_worker_that_sends_an_oversized_frame(hub_cluster: Cluster) -> None:
    a, b, c = await hub_cluster(3)
    assert isinstance(a, HubStore)
    lost = asyncio.Event()
    a.on_lost = lost.set
    hub_writer(a).write(_LENGTH.pack(MAX_ENVELOPE + 1))
    async with asyncio.timeout(WAIT):
        await lost.wait()
    await hub_cluster.lost(a)
    assert (b.peers, c.peers) == ({c.owner}, {b.owner})
    listen(c, answer=lambda envelope: "c is fine")
    assert await b.request(c.owner, KIND, None, WAIT) == "c is fine"


class WriteCounter:
    """Counts the writes of a StreamWriter (its write wrapped)."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.count = 0
        self._write = writer.write
        writer.write = self  # type: ignore[method-assign]

    def __call__(self, data: bytes) -> None:
        self.count += 1
        self._write(data)


def test_the_bus_kinds_take_no_handler() -> None:
    store = MemoryStore("w1")
    for kind in BusKind:
        with pytest.raises(ValueError):
            store.on(kind, lambda envelope: None)


async def test_hub_relays_a_burst_in_order_in_few_writes(hub_cluster: Cluster) -> None:
    # one loop turn's envelopes leave a worker in one write (runs to one target as one BATCH
    # frame), and the hub relays what one read brought in one write per worker
    a, b, c = await hub_cluster(3)
    inbox_b, inbox_c = listen(b), listen(c)
    assert hub_cluster.hub is not None
    out_a = WriteCounter(hub_writer(a))
    to_b = WriteCounter(hub_cluster.hub.workers[b.owner].writer)
    expected_b = []
    for i in range(300):
        a.publish(KIND, i)
        expected_b.append(i)
        if i % 7 == 0:
            a.send(b.owner, KIND, f"to b {i}")
            expected_b.append(f"to b {i}")
    assert out_a.count == 0  # nothing written before the loop turn ends
    assert await inbox_b.wait(len(expected_b)) == expected_b
    assert await inbox_c.wait(300) == list(range(300))
    assert out_a.count == 1
    assert 1 <= to_b.count <= 3  # one per read of the hub (a burst may take more than one)
    assert all(e.origin == a.owner and e.target in (None, b.owner)
               for e in inbox_b.envelopes)


async def test_hub_hands_a_run_of_one_kind_to_its_run_handler(
        hub_cluster: Cluster, caplog: pytest.LogCaptureFixture) -> None:
    # Store.on_run: what one BATCH carried of a kind with a run handler comes in one call
    # (consecutive, one origin, no request); the rest one by one, all in order
    a, b = await hub_cluster(2)
    calls: list[tuple[str, list[Any]]] = []
    b.on(KIND, lambda envelope: calls.append(("one", [envelope.payload])))
    b.on_run(KIND, lambda envelopes: calls.append(("run", [e.payload for e in envelopes])))
    b.on(OTHER_KIND, lambda envelope: calls.append(("other", [envelope.payload])))

    def failing(envelopes: list[Envelope]) -> None:
        raise RuntimeError("a run handler's bug")

    b.on(FLUSH, lambda envelope: None)
    b.on_run(FLUSH, failing)
    for i in range(5):
        a.publish(KIND, i)
    a.publish(OTHER_KIND, "other")
    a.publish(KIND, 5)
    a.publish(FLUSH, "lost to the bug")  # logged; what follows is delivered
    a.publish(KIND, 6)
    a.publish(KIND, 7)
    answer = a.ask(b.owner, KIND, "a request", WAIT)  # has its answer: one by one
    with caplog.at_level(logging.ERROR, logger="sio_core.store"):
        await answer
        await flush(hub_cluster)
    assert calls == [("run", [0, 1, 2, 3, 4]), ("other", ["other"]), ("run", [5]),
                     ("run", [6, 7]), ("one", ["a request"])]
    assert "a run handler's bug" in caplog.text


async def test_every_backend_delivers_a_kind_with_a_run_handler_once_in_order(
        cluster: Cluster) -> None:
    a, b = await cluster(2)
    seen: list[Any] = []
    b.on(KIND, lambda envelope: seen.append(envelope.payload))
    b.on_run(KIND, lambda envelopes: seen.extend(e.payload for e in envelopes))
    b.on(OTHER_KIND, lambda envelope: seen.append(envelope.payload))
    expected: list[Any] = []
    for i in range(30):
        a.publish(KIND, i)
        expected.append(i)
        if i % 10 == 9:
            a.publish(OTHER_KIND, f"other {i}")
            expected.append(f"other {i}")
    await flush(cluster)
    assert seen == expected


async def test_a_worker_writes_a_long_burst_in_pieces(hub_cluster: Cluster) -> None:
    # past FLUSH_SIZE bytes in one loop turn, what is pending is written at once: the other
    # workers start on a long burst while it is made
    a, b = await hub_cluster(2)
    inbox = listen(b)
    out_a = WriteCounter(hub_writer(a))
    chunk = "x" * 1000
    count = 3 * FLUSH_SIZE // len(chunk)
    for i in range(count):
        a.publish(KIND, [i, chunk])
    assert 2 <= out_a.count <= 3
    payloads = await inbox.wait(count)
    assert [p[0] for p in payloads] == list(range(count))


async def test_requests_in_a_batch_to_a_gone_worker_fail_at_once(hub_cluster: Cluster) -> None:
    a, _ = await hub_cluster(2)
    started = time.monotonic()
    asked = [a.ask("gone", KIND, i, WAIT) for i in range(3)]  # one BATCH frame
    a.send("gone", KIND, "no answer expected")
    for future in asked:
        with pytest.raises(RequestFailed):
            await future
    assert time.monotonic() - started < WAIT / 2


async def test_hub_workers_drop_a_malformed_batch(hub_cluster: Cluster,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    # the hub relays a batch unopened: its receiver checks what is in it
    a, b = await hub_cluster(2)
    inbox = listen(b)
    writer = hub_writer(a)

    def wire(kind: str, origin: str, payload: Any, target: str | None = None) -> bytes:
        return Envelope(kind, origin, payload, target).pack()

    writer.write(batch_frame(a.owner, None, [
        wire(KIND, a.owner, "first"),
        wire(KIND, "w-forged", "another's origin"),
        wire(KIND, a.owner, "another target", b.owner),
        wire(BusKind.PEERS, a.owner, []),
        wire(LogKind.LOG_ENTRY, a.owner, ["1", b"entry"]),
        msgpack.packb(["not", "an", "envelope"]),
        wire(KIND, a.owner, "last"),
    ]))
    not_a_list = Envelope(BusKind.BATCH, a.owner, "not a list").pack()
    writer.write(raw_frame(not_a_list))
    a.publish(KIND, "after")
    with caplog.at_level(logging.WARNING, logger="sio_core.store"):
        assert await inbox.wait(3) == ["first", "last", "after"]
        await flush(hub_cluster)
    assert inbox.payloads == ["first", "last", "after"]
    assert b.peers == {a.owner}
    assert b.dropped.count == 6
    assert "malformed batch" in caplog.text


# --- the envelope codec: bus input is untrusted ------------------------------------------------


def packed(*items: Any) -> bytes:
    data: bytes = msgpack.packb(list(items), use_bin_type=True)
    return data


ENVELOPES = [
    Envelope("broadcast", "w1"),
    Envelope(BusKind.REPLY, "w2", {"b": b"\x00\xff", "n": [1, None]}, "w1", 7),
    Envelope(EngineKind.POLL, "node-a_w~3", ["x", 1], "hub", 2**63 - 1),
    Envelope(BusKind.PEERS, "hub", ["w1", "w2"]),
]


@pytest.mark.parametrize("envelope", ENVELOPES, ids=lambda e: str(e.kind))
def test_envelope_round_trip(envelope: Envelope) -> None:
    assert Envelope.unpack(envelope.pack()) == envelope
    assert envelope.pack()[:2] == bytes([0x96, VERSION])  # a list of six, the version first


MALFORMED: list[tuple[str, bytes, str]] = [
    ("empty", b"", "not msgpack"),
    ("never-used byte", b"\xc1", "not msgpack"),
    ("truncated", Envelope(BusKind.REPLY, "w1", "x" * 50, "w2", 1).pack()[:-3], "not msgpack"),
    ("trailing bytes", Envelope(BusKind.REPLY, "w1").pack() + b"\x00", "not msgpack"),
    ("not a list", msgpack.packb({"kind": "reply"}), "not an envelope"),
    ("a string", msgpack.packb("reply"), "not an envelope"),
    ("empty list", packed(), "not an envelope"),
    # a worker from before versioning, one from after this one: refused by name
    ("version 0", packed("reply", "w1", None, None, None),
     f"envelope version 0 (this worker speaks {VERSION})"),
    ("version 2", packed(VERSION + 1, "reply", "w1", None, None, None),
     f"envelope version {VERSION + 1} (this worker speaks {VERSION})"),
    ("version true", packed(True, "reply", "w1", None, None, None), "envelope version"),
    ("five items", packed(VERSION, "reply", "w1", None, None), "not an envelope"),
    ("seven items", packed(VERSION, "reply", "w1", None, None, None, None), "not an envelope"),
    ("kind as bytes", packed(VERSION, b"reply", "w1", None, None, None), "not an envelope"),
    ("kind as int", packed(VERSION, 1, "w1", None, None, None), "not an envelope"),
    ("kind as list", packed(VERSION, ["reply"], "w1", None, None, None), "not an envelope"),
    ("origin None", packed(VERSION, "reply", None, None, None, None), "not an envelope"),
    ("origin int", packed(VERSION, "reply", 1, None, None, None), "not an envelope"),
    ("origin bytes", packed(VERSION, "reply", b"w1", None, None, None), "not an envelope"),
    ("target int", packed(VERSION, "reply", "w1", 2, None, None), "not an envelope"),
    ("target list", packed(VERSION, "reply", "w1", ["w2"], None, None), "not an envelope"),
    ("request id str", packed(VERSION, "reply", "w1", "w2", "1", None), "not an envelope"),
    ("request id float", packed(VERSION, "reply", "w1", "w2", 1.0, None), "not an envelope"),
    ("request id bool", packed(VERSION, "reply", "w1", "w2", True, None), "not an envelope"),
    ("request id map", packed(VERSION, "reply", "w1", "w2", {}, None), "not an envelope"),
    ("unhashable map key", b"\x96\x01\xa5reply\xa2w1\xc0\xc0\x81\x91\x01\x02", "not msgpack"),
    ("nested too deep", b"\x91" * 100_000, "not msgpack"),
    ("oversized", Envelope("broadcast", "w1", b"x" * MAX_ENVELOPE).pack(), "envelope too large"),
]


@pytest.mark.parametrize(("data", "reason"), [(d, r) for _, d, r in MALFORMED],
                         ids=[n for n, _, _ in MALFORMED])
def test_malformed_envelopes_raise_the_one_error(data: bytes, reason: str) -> None:
    with pytest.raises(BadMessage, match=reason.replace("(", r"\(").replace(")", r"\)")):
        Envelope.unpack(data)


#: what only the payload gets wrong: the master hub, which reads the header alone
#: (unpack_head), relays it, and its receiver drops it
PAYLOAD_ONLY = {"unhashable map key"}


@pytest.mark.parametrize(("data", "reason"), [(d, r) for n, d, r in MALFORMED
                                              if n not in PAYLOAD_ONLY],
                         ids=[n for n, _, _ in MALFORMED if n not in PAYLOAD_ONLY])
def test_the_hub_refuses_the_same_headers(data: bytes, reason: str) -> None:
    with pytest.raises(BadMessage, match=reason.replace("(", r"\(").replace(")", r"\)")):
        unpack_head(data)


@pytest.mark.parametrize("envelope", ENVELOPES, ids=lambda e: str(e.kind))
def test_the_hub_reads_the_header_alone(envelope: Envelope) -> None:
    assert unpack_head(envelope.pack()) == [VERSION, envelope.kind, envelope.origin,
                                            envelope.target, envelope.request_id, None]
    burst = batch_frame("w1", "w2", [envelope.pack()] * 100)[4:]
    assert unpack_head(burst) == [VERSION, BusKind.BATCH, "w1", "w2", None, None]


def check_unpacked(data: bytes) -> None:
    try:
        head = unpack_head(data)
    except BadMessage:
        head = None
    try:
        envelope = Envelope.unpack(data)
    except BadMessage as exc:
        # what the header reader lets through, only a payload that msgpack cannot make
        # into values (it is skipped, not made) may refuse
        assert head is None or str(exc) == "not msgpack", (head, exc)
        return
    assert head == [VERSION, envelope.kind, envelope.origin, envelope.target,
                    envelope.request_id, None]
    assert isinstance(envelope.kind, str)
    assert isinstance(envelope.origin, str)
    assert envelope.target is None or isinstance(envelope.target, str)
    assert envelope.request_id is None or isinstance(envelope.request_id, int)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_unpack_of_any_bytes_raises_only_bad_message(data: bytes) -> None:
    check_unpacked(data)


msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
    | st.text(max_size=8) | st.binary(max_size=8) | st.sampled_from([*BusKind, VERSION]),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(
        st.text(max_size=4) | st.integers(-(2**63), 2**63 - 1), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.one_of(msgpack_values, st.lists(msgpack_values, min_size=5, max_size=7)))
def test_unpack_of_any_msgpack_value_raises_only_bad_message(value: Any) -> None:
    check_unpacked(msgpack.packb(value, use_bin_type=True))


# --- what does not decode is dropped, and said once ------------------------------------------


async def test_an_envelope_of_another_version_is_dropped_with_one_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    bus = MemoryBus()
    store = MemoryStore("w1", bus)
    inbox = listen(store)
    old = packed(KIND, "w0", None, None, "from an older worker")
    with caplog.at_level(logging.DEBUG, "sio_core.store"):
        for _ in range(3):
            store.receive_packed(old)
    assert inbox.envelopes == [] and store.dropped.count == 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        f"dropped a message from the memory bus: envelope version 0 (this worker speaks {VERSION})"]
    assert all(r.exc_info is None for r in caplog.records)


async def test_a_payload_that_does_not_decode_is_dropped_and_a_request_answered_none(
        cluster: Cluster, caplog: pytest.LogCaptureFixture) -> None:
    a, b = await cluster(2)

    def strict(envelope: Envelope) -> Any:
        if not isinstance(envelope.payload, int):
            raise BadMessage(f"malformed {KIND}")
        return envelope.payload + 1

    async def strict_later(envelope: Envelope) -> Any:
        await asyncio.sleep(0)
        if not isinstance(envelope.payload, int):
            raise BadMessage(f"malformed {OTHER_KIND}")
        return envelope.payload + 1

    b.on(KIND, strict)
    b.on(OTHER_KIND, strict_later)
    with caplog.at_level(logging.WARNING, "sio_core.store"):
        assert await a.request(b.owner, KIND, "junk", WAIT) is None
        assert await a.request(b.owner, KIND, 41, WAIT) == 42
        assert await a.request(b.owner, OTHER_KIND, "junk", WAIT) is None
        assert await a.request(b.owner, OTHER_KIND, 1, WAIT) == 2
    assert b.dropped.count == 2
    assert [r.getMessage() for r in caplog.records] == [
        f"dropped a message from {a.owner} ({KIND}): malformed {KIND}",
        f"dropped a message from {a.owner} ({OTHER_KIND}): malformed {OTHER_KIND}"]
    assert all(r.exc_info is None for r in caplog.records)


def test_drops_say_each_reason_once_and_remember_few(caplog: pytest.LogCaptureFixture) -> None:
    drops = Drops()
    with caplog.at_level(logging.DEBUG, "sio_core.store"):
        for n in range(100):
            drops(BadMessage(f"reason {n}"), "w1")
        drops(BadMessage("reason 0"), "w1")
        drops(BadMessage("reason 99"), "w1")  # past the 64 kept: said again
    assert drops.count == 102
    levels = [r.levelno for r in caplog.records]
    assert levels == [logging.WARNING] * 100 + [logging.DEBUG, logging.WARNING]
