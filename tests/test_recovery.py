"""Connection state recovery with real clients (sio_core/socketio/recovery.py).

The server is ``tests.apps.recovery_app:io`` (its events in that module's docstring), on one
worker, on ``--workers 4`` (the master's hub keeps the log) and on two nodes meeting through a
private redis-server behind the round-robin proxy (tests/proxy.py). The node side is
``tests/js/recovery_clients.js``: official socket.io-client 4.x clients that reconnect by
themselves and record every event with the offset the server added to it.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.proxy import RoundRobinProxy
from tests.support import REPO_ROOT, JsonObject, NodeProcess, ServerProcess, scaled, start_node

pytestmark = [pytest.mark.interop, pytest.mark.asyncio]

CLIENTS_JS = REPO_ROOT / "tests" / "js" / "recovery_clients.js"
APP = "tests.apps.recovery_app:io"
READY = r"{workers} workers ready"


class Clients:
    """tests/js/recovery_clients.js."""

    def __init__(self, node: NodeProcess) -> None:
        self.node = node
        self._tags = itertools.count()

    async def open(self, group: str, count: int, *, room: str = "r",
                   transports: list[str] | None = None) -> JsonObject:
        cmd: JsonObject = {"op": "open", "group": group, "count": count,
                           "auth": {"room": room}}
        if transports is not None:
            cmd["transports"] = transports
        await self.node.send(cmd)
        event = await self.node.next_event(
            lambda e: e["ev"] == "opened" and e["group"] == group, timeout=20)
        clients: JsonObject = event["clients"]
        return clients

    async def _tagged(self, cmd: JsonObject, ev: str, timeout: float = 20) -> JsonObject:
        tag = f"t{next(self._tags)}"
        await self.node.send({**cmd, "tag": tag})
        return await self.node.next_event(lambda e: e["ev"] == ev and e.get("tag") == tag,
                                          timeout=timeout)

    async def emit(self, group: str, event: str, *args: Any) -> JsonObject:
        reply = await self._tagged({"op": "emit", "group": group, "event": event,
                                    "args": list(args)}, "acks")
        acks: JsonObject = reply["acks"]
        return acks

    async def wait(self, group: str, event: str, count: int, timeout: float = 20) -> None:
        await self._tagged({"op": "wait", "group": group, "event": event, "count": count},
                           "waited", timeout)

    async def connects(self, group: str, count: int, timeout: float = 20) -> None:
        await self._tagged({"op": "connects", "group": group, "count": count}, "connected",
                           timeout)

    async def stats(self, group: str) -> JsonObject:
        reply = await self._tagged({"op": "stats", "group": group}, "stats")
        clients: JsonObject = reply["clients"]
        return clients

    async def close_engine(self, group: str) -> None:
        await self.node.send({"op": "close_engine", "group": group})


async def start_clients(url: str) -> tuple[NodeProcess, Clients]:
    node = await start_node(CLIENTS_JS, url)
    await node.next_event(lambda e: e["ev"] == "ready")
    return node, Clients(node)


async def recover_after_engine_close(url: str) -> set[tuple[str, str]]:
    """The Done-when of issue 11: after io.engine.close() the official client reconnects with
    the same id, recovered, rooms and data back, and the events emitted to its room while it
    was away arrive exactly once, in order."""
    node, clients = await start_clients(url)
    async with node:
        opened = await clients.open("a", 5, room="room1", transports=["websocket"])
        polling = await clients.open("p", 4, room="room1", transports=["polling"])
        publisher = await clients.open("pub", 1, room="other")
        before = await clients.emit("a", "whoami")
        before.update(await clients.emit("p", "whoami"))
        await clients.emit("pub", "publish", "room1", 0, 5)
        await clients.wait("a", "msg", 5)
        await clients.wait("p", "msg", 5)
        await clients.close_engine("a")
        await clients.close_engine("p")
        # while they are away (reconnecting after 100 to 500 ms)
        await clients.emit("pub", "publish", "room1", 5, 20)
        await clients.connects("a", 2)
        await clients.connects("p", 2)
        await clients.emit("pub", "publish", "room1", 25, 5)
        await clients.wait("a", "msg", 30)
        await clients.wait("p", "msg", 30)
        after = await clients.emit("a", "whoami")
        after.update(await clients.emit("p", "whoami"))
        stats = await clients.stats("a")
        stats.update(await clients.stats("p"))
        for name, info in stats.items():
            first = {**opened, **polling}[name]
            assert info["ids"] == [first["id"], first["id"]], name
            assert info["recovered_each"] == [False, True], name
            assert info["received"]["msg"] == list(range(30)), name
            assert after[name]["id"] == first["id"] and after[name]["recovered"] is True
            assert after[name]["rooms"] == before[name]["rooms"] == sorted([first["id"], "room1"])
            assert after[name]["data"] == before[name]["data"] == {"room": "room1",
                                                                   "middlewares": 1}
            offsets = info["offsets"]["msg"]
            assert len(set(offsets)) == 30 and all(isinstance(o, str) for o in offsets)
        assert publisher  # the publisher itself stayed put
        # (worker before, worker after) of each client
        return {(before[name]["worker"], after[name]["worker"]) for name in stats}


async def test_engine_close_recovers_on_one_worker(tmp_path: Path) -> None:
    async with ServerProcess(APP, log_path=tmp_path / "server.log") as server:
        await recover_after_engine_close(server.url)


async def test_engine_close_recovers_on_another_worker(tmp_path: Path) -> None:
    server = ServerProcess(APP, "--workers", "4", log_path=tmp_path / "server.log",
                           stop_timeout=15)
    async with server:
        await server.wait_for_log(READY.format(workers=4), timeout=30)
        moves = await recover_after_engine_close(server.url)
        # the kernel spreads the reconnections over the 4 workers: of 9 clients, some landed
        # on another worker than their first (all on the same one: a chance of 4**-9)
        assert any(before != after for before, after in moves), moves


@pytest.mark.redis
async def test_engine_close_recovers_on_another_node(redis_url: str, redis_prefix: str,
                                                     tmp_path: Path) -> None:
    """Two nodes meeting through Redis (the log is a stream there), behind a round-robin
    proxy: a reconnect lands on either node."""
    args = ("--store", redis_url, "--store-key", redis_prefix)
    async with contextlib.AsyncExitStack() as stack:
        nodes = []
        for name in "AB":
            server = ServerProcess(APP, *args, "--workers", "2",
                                   log_path=tmp_path / f"{name}.log", stop_timeout=15)
            await stack.enter_async_context(server)
            await server.wait_for_log(READY.format(workers=2), timeout=30)
            nodes.append(server)
        proxy = await stack.enter_async_context(
            RoundRobinProxy([(n.host, n.port) for n in nodes]))
        await recover_after_engine_close(proxy.url)
