"""In-process tests of sio_core.engine.remote: the two ends of a websocket relayed between
workers, and the exact envelopes they put on the bus (two MemoryStores on a MemoryBus, the
other end's handlers noting what arrives). The whole relay, with real websockets and two
EngineServers, is driven in test_engine_forwarding.py."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Collection, Iterable

import pytest

from sio_core.engine.messages import WsClose, WsIn, WsOut
from sio_core.engine.remote import RemoteWebSocket, WebSocketProxy
from sio_core.protocol.engineio import message
from sio_core.stores.base import Envelope
from sio_core.stores.memory import MemoryBus, MemoryStore
from tests.support import scaled

RELAYED = (WsIn, WsOut, WsClose)
Relayed = WsIn | WsOut | WsClose
#: sent last: what was sent before it has arrived once it has
END = WsIn("end", "the end")


class Noted:
    """What a store received, as (origin, message), each decoded as the engine does."""

    def __init__(self, store: MemoryStore) -> None:
        self.envelopes: list[tuple[str, Relayed]] = []
        self._arrived = asyncio.Event()
        for cls in RELAYED:
            store.on(cls.KIND, functools.partial(self._note, cls))

    def _note(self, cls: type[Relayed], envelope: Envelope) -> None:
        self.envelopes.append((envelope.origin, cls.from_wire(envelope.payload)))
        self._arrived.set()

    async def take(self, count: int) -> list[tuple[str, Relayed]]:
        async with asyncio.timeout(scaled(5)):
            while len(self.envelopes) < count:
                self._arrived.clear()
                await self._arrived.wait()
        taken, self.envelopes = self.envelopes[:count], self.envelopes[count:]
        return taken


@pytest.fixture
async def stores() -> AsyncIterator[tuple[MemoryStore, MemoryStore]]:
    """The owner's store (w1) and the relaying worker's (w2)."""
    bus = MemoryBus()
    pair = MemoryStore("w1", bus), MemoryStore("w2", bus)
    for store in pair:
        await store.start()
    yield pair
    for store in pair:
        await store.close()


class Calls:
    def __init__(self) -> None:
        self.log: list[object] = []

    def note(self, what: object) -> None:
        self.log.append(what)


async def test_the_owners_end_sends_frames_and_its_close(
        stores: tuple[MemoryStore, MemoryStore]) -> None:
    owner, relay = stores
    seen = Noted(relay)
    calls = Calls()
    remote = RemoteWebSocket(owner, "w2", "w2:7", on_lost=lambda: calls.note("lost"))
    remote.bind(calls.note, lambda: calls.note("close"))
    assert remote.name == "websocket" and remote.writable
    remote.send_packets([message("one")])
    remote.send_packets([message("two"), message(b"\x03")])
    remote.close()
    assert calls.log == ["lost", "close"]
    remote.close()  # once only
    remote.connection_lost()
    remote.send_packets([message("after")])  # nothing once closed
    owner.send("w2", END.KIND, END.to_wire())  # delivered after all of the above
    assert await seen.take(4) == [
        ("w1", WsOut("w2:7", ["4one"])),
        ("w1", WsOut("w2:7", ["4two", b"\x03"])),
        ("w1", WsClose("w2:7")),
        ("w1", END),
    ]
    assert calls.log == ["lost", "close"]


async def test_the_owners_end_told_its_proxy_is_gone(
        stores: tuple[MemoryStore, MemoryStore]) -> None:
    owner, relay = stores
    seen = Noted(relay)
    remote = RemoteWebSocket(owner, "w2", "w2:1")
    remote.on_message("4ignored before an EngineSocket attaches")  # the defaults do nothing
    remote.connection_lost()
    remote.on_close()
    # closed: neither its frames nor its close are relayed any more
    remote.send_packets([message("after")])
    remote.close()
    owner.send("w2", END.KIND, END.to_wire())
    assert await seen.take(1) == [("w1", END)]


class FakeWebSocket:
    """The relaying worker's local websocket, as WebSocketProxy uses it."""

    def __init__(self) -> None:
        self.sent: list[str | bytes] = []
        self.closes = 0
        # set by the proxy
        self.on_message: Callable[[str | bytes], None] = lambda message: None
        self.on_close: Callable[[], None] = lambda: None

    def bind(self, on_message: Callable[[str | bytes], None],
             on_close: Callable[[], None]) -> None:
        self.on_message = on_message
        self.on_close = on_close

    def send_many(self, messages: Iterable[str | bytes], plain: Collection[int] = ()) -> None:
        self.sent.extend(messages)

    def close(self) -> None:
        self.closes += 1


async def test_the_relays_end(stores: tuple[MemoryStore, MemoryStore]) -> None:
    owner, relay = stores
    seen = Noted(owner)
    calls = Calls()
    ws = FakeWebSocket()
    proxy = WebSocketProxy(relay, "w1", "w2:3", ws, lambda: calls.note("done"))  # type: ignore[arg-type]
    ws.on_message("4from the client")
    ws.on_message(b"\x01")
    proxy.to_client(["4to the client"])
    assert ws.sent == ["4to the client"]
    ws.on_close()
    ws.on_close()  # once only
    proxy.owner_closed()  # already done: nothing
    assert calls.log == ["done"] and ws.closes == 0
    relay.send("w1", END.KIND, END.to_wire())
    assert await seen.take(4) == [
        ("w2", WsIn("w2:3", "4from the client")),
        ("w2", WsIn("w2:3", b"\x01")),
        ("w2", WsClose("w2:3")),
        ("w2", END),
    ]


async def test_the_relays_end_closed_by_the_owner(
        stores: tuple[MemoryStore, MemoryStore]) -> None:
    _, relay = stores
    calls = Calls()
    ws = FakeWebSocket()
    proxy = WebSocketProxy(relay, "w1", "w2:4", ws, lambda: calls.note("done"))  # type: ignore[arg-type]
    proxy.owner_closed()
    proxy.owner_closed()
    ws.on_close()  # the close that follows: not told back
    assert (ws.closes, calls.log) == (1, ["done"])
