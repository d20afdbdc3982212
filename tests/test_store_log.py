"""The recovery log's contract (sio_core/stores/log.py's PacketLog), one suite run against
every backend: one process (LocalLog), a MemoryBus and the master's hub (the master keeps a
MemoryLog; RelayedLog), and a real redis-server (RedisLog: a stream, a hash per session,
scripts). The in-memory log's limits and expiry are tested on MemoryLog itself at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest

from sio_core.stores.base import Store
from sio_core.stores.hub import Hub, HubStore
from sio_core.stores.log import LocalLog, LogLimits, MemoryLog, PacketLog, Restored, Status
from sio_core.stores.memory import MemoryBus, MemoryStore
from tests.support import scaled
from tests.test_store_contract import hub_socket_path, make_redis_store

WAIT = scaled(5)
LIMITS = LogLimits(max_packets=1000, max_bytes=1 << 20, max_age=60.0, max_missed=4)
BACKENDS: list[Any] = ["local", "memory", "hub", pytest.param("redis", marks=pytest.mark.redis)]


class Worker:
    """One worker's log, and everything it was handed, in order."""

    def __init__(self, log: PacketLog) -> None:
        self.log = log
        self.seen: list[tuple[str, Any]] = []  # ("entry", (offset, entry)) / ("restored", ...)
        self._changed = asyncio.Event()
        log.on_entry = lambda offset, entry: self._add("entry", (offset, entry))
        log.on_restored = lambda restored: self._add("restored", restored)

    def _add(self, what: str, value: Any) -> None:
        self.seen.append((what, value))
        self._changed.set()

    @property
    def entries(self) -> list[tuple[str, bytes]]:
        return [value for what, value in self.seen if what == "entry"]

    async def until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    async def restored(self, request: int, pid: str, offset: str | None) -> Restored:
        self.log.restore(request, pid, offset)
        await self.until(lambda: any(what == "restored" and value.request == request
                                     for what, value in self.seen))
        return next(value for what, value in self.seen
                    if what == "restored" and value.request == request)


@pytest.fixture(params=BACKENDS)
async def workers(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    backend = request.param
    async with contextlib.AsyncExitStack() as stack:
        if backend == "local":
            shared = Worker(LocalLog(LIMITS))  # one process: every "worker" is this one

            async def local(n: int) -> list[Worker]:
                return [shared] * n

            yield local
            return
        make: Callable[[str], Store]
        if backend == "memory":
            bus = MemoryBus()
            make = lambda owner: MemoryStore(owner, bus)  # noqa: E731
        elif backend == "hub":
            hub = Hub(stack.enter_context(hub_socket_path(tmp_path)))
            await hub.start()
            stack.push_async_callback(hub.close)
            make = lambda owner: HubStore(owner, hub.path)  # noqa: E731
        else:
            url = request.getfixturevalue("redis_url")
            prefix = request.getfixturevalue("redis_prefix")
            make = lambda owner: make_redis_store(owner, url, prefix)  # noqa: E731
        names = iter(range(1, 100))

        async def factory(n: int) -> list[Worker]:
            out = []
            for _ in range(n):
                store = make(f"w{next(names)}")
                log = store.packet_log(LIMITS)
                assert log is not None
                await store.start()
                stack.push_async_callback(store.close)
                out.append(Worker(log))
            return out

        yield factory


def entry(n: int) -> bytes:
    return msgpack.packb(["/", ["msg", n], [], [], True])


async def test_every_worker_is_handed_every_entry_in_one_order(workers: Any) -> None:
    a, b = await workers(2)
    for n in range(5):
        a.log.append("/", [], [], entry(n))
        b.log.append("/", ["room"], [], entry(100 + n))
    for worker in (a, b):
        await worker.until(lambda w=worker: len(w.entries) >= 10)  # type: ignore[misc]
    assert a.entries == b.entries  # the same offsets, the same order, on every worker
    offsets = [offset for offset, _ in a.entries]
    assert len(set(offsets)) == 10
    mine = [e for _, e in a.entries if msgpack.unpackb(e)[1][1] < 100]
    assert mine == [entry(n) for n in range(5)]  # what one worker appended, in its order


async def test_an_entry_for_here_is_handed_to_its_worker_only(workers: Any) -> None:
    a, b = await workers(2)
    if a is b:
        pytest.skip("one process: there is no other worker")
    a.log.append("/", ["sid"], [], entry(1), here=True)
    b.log.append("/", [], [], entry(2))
    await a.until(lambda: len(a.entries) == 2)
    await b.until(lambda: len(b.entries) == 1)
    assert [e for _, e in b.entries] == [entry(2)]


async def test_a_session_is_restored_anywhere_with_what_its_rooms_missed(workers: Any) -> None:
    a, b = await workers(2)
    a.log.append("/", [], [], entry(0))
    await a.until(lambda: len(a.entries) == 1)
    offset = a.entries[0][0]
    a.log.persist("pid1", "/", ["sid1", "r1"], b"session", 60)
    sent = [("/", ["r1"], [], 1), ("/", ["r2"], [], 2), ("/", [], [], 3),
            ("/", [], ["r1"], 4), ("/admin", [], [], 5), ("/", ["sid1"], [], 6),
            ("/", ["r2", "r1"], ["r3"], 7)]
    for nsp, rooms, excepted, n in sent:
        a.log.append(nsp, rooms, excepted, entry(n))
    await a.until(lambda: len(a.entries) == 1 + len(sent))
    restored = await b.restored(7, "pid1", offset)
    assert restored.status == Status.OK and restored.session == b"session"
    assert [msgpack.unpackb(e)[1][1] for _, e in restored.packets] == [1, 3, 6, 7]
    assert restored.request == 7
    # the offsets are the ones the entries were handed out with
    assert [o for o, _ in restored.packets] == [a.entries[i][0] for i in (1, 3, 6, 7)]
    # over the limit (max_missed = 4): not restored
    a.log.append("/", [], [], entry(8))
    too_many = await b.restored(8, "pid1", offset)
    assert too_many.status == Status.TOO_MANY and too_many.packets == []


async def test_a_restore_is_answered_in_order_with_the_entries(workers: Any) -> None:
    a, b = await workers(2)
    a.log.persist("pid2", "/", ["r"], b"s", 60)
    b.log.append("/", ["r"], [], entry(1))
    b.log.restore(1, "pid2", None)  # None: from the log's end when the session began
    b.log.append("/", ["r"], [], entry(2))
    await b.until(lambda: len(b.entries) == 2)
    kinds = [what for what, _ in b.seen]
    assert kinds == ["entry", "restored", "entry"], b.seen
    restored = b.seen[1][1]
    assert restored.status == Status.OK
    assert [e for _, e in restored.packets] == [entry(1)]  # the one before, not the one after


async def test_unknown_sessions_and_offsets_are_not_restored(workers: Any) -> None:
    (a, *_) = await workers(1)
    assert (await a.restored(1, "nobody", None)).status == Status.UNKNOWN
    a.log.persist("pid3", "/", ["r"], b"s", 60)
    for bad in ("0:1", "12345-0", "x"):
        assert (await a.restored(2, "pid3", bad)).status == Status.GONE, bad


async def test_a_session_expires(workers: Any) -> None:
    (a, *_) = await workers(1)
    a.log.persist("pid4", "/", ["r"], b"s", scaled(0.2))
    assert (await a.restored(1, "pid4", None)).status == Status.OK
    await asyncio.sleep(scaled(0.3))
    assert (await a.restored(2, "pid4", None)).status == Status.UNKNOWN


# --- the in-memory log's own limits ----------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_memory_log_trims_by_count_bytes_and_age() -> None:
    clock = Clock()
    log = MemoryLog(LogLimits(max_packets=3, max_bytes=100, max_age=10.0, max_missed=10), clock)
    log.persist("p", "/", [], b"s", 60)
    first = log.append("/", [], [], b"a" * 10)
    for _ in range(3):
        log.append("/", [], [], b"b" * 10)
    assert len(log.entries) == 3  # by count
    assert log.restore(1, "p", first).status == Status.OK  # only first itself is gone
    log.append("/", [], [], b"c" * 91)
    assert len(log.entries) == 1 and log.bytes == 91  # by bytes
    assert log.restore(2, "p", first).status == Status.GONE
    clock.now += 11
    last = log.append("/", [], [], b"d")
    assert len(log.entries) == 1  # by age
    assert log.restore(3, "p", last).status == Status.OK
    assert log.restore(4, "p", None).status == Status.GONE  # its start is long gone


def test_memory_log_sessions_expire_and_keep_their_start() -> None:
    clock = Clock()
    log = MemoryLog(LogLimits(max_age=10.0), clock)
    log.persist("p", "/", ["r"], b"s1", 5)
    log.append("/", ["r"], [], b"x")
    log.persist("p", "/", ["r"], b"s2", 5)  # persisted again: its start stays
    restored = log.restore(1, "p", None)
    assert restored.session == b"s2" and [e for _, e in restored.packets] == [b"x"]
    clock.now += 6
    assert log.restore(2, "p", None).status == Status.UNKNOWN
    log.append("/", [], [], b"y")  # a sweep: the expired session is forgotten
    assert "p" not in log.sessions


def test_restored_and_limits_from_the_wire_are_checked() -> None:
    good = Restored(1, Status.OK, b"s", [("o", b"e")])
    assert Restored.from_wire(good.to_wire()) == good
    for bad in (None, [1, "ok", b"s"], ["1", "ok", None, []], [1, "ok", None, [["o"]]],
                [1, "ok", "s", []], [1, "ok", None, [[1, b"e"]]]):
        assert Restored.from_wire(bad) is None, bad
    assert LogLimits.from_wire(LIMITS.to_wire()) == LIMITS
    for bad in (None, [1, 2, 3], [1, 2, 3, 0], [1, 2, True, 4], [1, "2", 3, 4]):
        assert LogLimits.from_wire(bad) is None, bad
