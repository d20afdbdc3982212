"""sio_core/engine/foreign.py in-process: a ForeignWebSocket over a fake Peer (the server under
it: what it was given to write, and what the client "sends", fed by the test)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sio_core.config import Config
from sio_core.engine.foreign import ForeignWebSocket
from sio_core.engine.transport import WebSocket
from sio_core.protocol.engineio import Packet, PacketType


class FakePeer:
    def __init__(self) -> None:
        self.opened = False
        self.written: list[Any] = []
        self.incoming: asyncio.Queue[str | bytes | Exception | None] = asyncio.Queue()
        self.write_gate = asyncio.Event()
        self.write_gate.set()
        self.fail_open = False
        self.fail_write = False

    async def open(self) -> None:
        if self.fail_open:
            raise ConnectionError("gone before the answer")
        self.opened = True

    async def write(self, message: str | bytes) -> None:
        await self.write_gate.wait()
        if self.fail_write:
            raise ConnectionError("gone")
        self.written.append(message)

    async def shut(self, code: int) -> None:
        self.written.append(("close", code))

    async def read(self) -> str | bytes | None:
        item = await self.incoming.get()
        if isinstance(item, Exception):
            raise item
        return item


class Carried:
    """A ForeignWebSocket over a FakePeer, its serve() running, what it delivered recorded."""

    def __init__(self, **config: Any) -> None:
        self.peer = FakePeer()
        self.registry: set[WebSocket] = set()
        self.ws = ForeignWebSocket(self.peer, Config(**config), self.registry, ("1.2.3.4", 5))
        self.messages: list[str | bytes] = []
        self.closed = 0
        self.ws.bind(self.messages.append, self._closed)
        self.task: asyncio.Task[None] | None = None

    def _closed(self) -> None:
        self.closed += 1

    def serve(self) -> asyncio.Task[None]:
        self.task = asyncio.ensure_future(self.ws.serve())
        return self.task


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_frames_both_ways_in_order_and_the_clients_end() -> None:
    c = Carried()
    assert c.registry == {c.ws} and c.ws.client == ("1.2.3.4", 5)
    task = c.serve()
    c.ws.start(b"ignored: the server reads the frames")
    c.ws.send_packets([Packet(PacketType.MESSAGE, "hello"), Packet(PacketType.MESSAGE, b"\x01")])
    c.ws.send_many(["42[\"x\"]"])
    c.peer.incoming.put_nowait("4hi")
    c.peer.incoming.put_nowait(b"\x02")
    await settle()
    assert c.peer.opened
    assert c.peer.written == ["4hello", b"\x01", "42[\"x\"]"]
    assert c.messages == ["4hi", b"\x02"]
    c.peer.incoming.put_nowait(None)  # the client closed it
    await asyncio.wait_for(task, 1)
    assert c.closed == 1 and c.registry == set()
    c.ws.send_packets([Packet(PacketType.MESSAGE, "late")])  # dropped, no error
    c.ws.abort()
    assert c.closed == 1


async def test_close_is_written_after_what_was_queued_and_times_out() -> None:
    c = Carried(websocket_close_timeout=0.05)
    task = c.serve()
    c.ws.send_many(["4a"])
    c.ws.close(None)  # no code: a normal closure under another server
    c.ws.close(1000)  # once only
    c.ws.send_many(["4b"])  # after the close: dropped
    await settle()
    assert c.peer.written == ["4a", ("close", 1000)]
    # the client never answers the close frame: cut off after websocket_close_timeout
    await asyncio.wait_for(task, 1)
    assert c.closed == 1


async def test_an_oversize_message_closes_with_1009() -> None:
    c = Carried(max_payload=10)
    task = c.serve()
    c.peer.incoming.put_nowait("4" + "x" * 20)
    await settle()
    assert c.messages == [] and c.peer.written == [("close", 1009)]
    c.peer.incoming.put_nowait(None)
    await asyncio.wait_for(task, 1)


async def test_a_client_that_does_not_read_is_cut_off() -> None:
    c = Carried(max_outbound_buffer=100)
    task = c.serve()
    await settle()
    c.peer.write_gate.clear()  # the server's writes stop completing
    c.ws.send_many(["4" + "x" * 60])
    await settle()
    c.ws.send_many(["4" + "y" * 60, "4" + "z" * 60])  # over 100 bytes waiting
    await asyncio.wait_for(task, 1)
    assert c.closed == 1 and c.registry == set()


async def test_cut_off_before_it_opened() -> None:
    c = Carried()
    c.ws.abort()  # a drain, before the server's handler ran serve()
    await asyncio.wait_for(c.serve(), 1)
    assert not c.peer.opened and c.closed == 1


@pytest.mark.parametrize("failure", ["open", "write", "read"])
async def test_a_connection_error_ends_it(failure: str) -> None:
    c = Carried()
    c.peer.fail_open = failure == "open"
    c.peer.fail_write = failure == "write"
    task = c.serve()
    if failure == "write":
        c.ws.send_many(["4a"])
    if failure == "read":
        c.peer.incoming.put_nowait(ConnectionResetError("reset"))
    await asyncio.wait_for(task, 1)
    assert c.closed == 1 and c.registry == set()
