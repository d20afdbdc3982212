"""Connection state recovery with real clients (sio_core/socketio/recovery.py).

The server is ``tests.apps.recovery_app:io`` (its events in that module's docstring), on one
worker, on ``--workers 4`` (the master's hub keeps the log) and on two nodes meeting through a
private redis-server behind the round-robin proxy (tests/proxy.py). The node side is
``tests/js/recovery_clients.js``: official socket.io-client 4.x clients that reconnect by
themselves and record every event with the offset the server added to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio

from tests.proxy import RoundRobinProxy
from tests.support import REPO_ROOT, JsonObject, NodeProcess, ServerProcess, scaled, start_node

pytestmark = [pytest.mark.interop, pytest.mark.asyncio]

CLIENTS_JS = REPO_ROOT / "tests" / "js" / "recovery_clients.js"
APP = "tests.apps.recovery_app:io"
READY = r"{workers} workers ready"


def ranges(numbers: list[int]) -> list[tuple[int, int]]:
    """Consecutive runs, for a short message: [1, 2, 3, 7] -> [(1, 3), (7, 7)]."""
    out: list[tuple[int, int]] = []
    for n in numbers:
        if out and out[-1][1] == n - 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out


def started_pids(log: str) -> list[int]:
    """The pid of every worker started, in order."""
    return [int(m[1]) for m in re.finditer(r"started worker #\d+ \(pid (\d+)\)", log)]


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

    async def wait_for(self, group: str, event: str, value: Any, timeout: float = 30) -> None:
        await self._tagged({"op": "wait_for", "group": group, "event": event, "value": value},
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


class RecoveringClient(socketio.AsyncClient):  # type: ignore[misc]
    """python-socketio's client, which has no connection state recovery of its own, taught
    the official client's side of it: the ``pid`` of the CONNECT reply and the last offset
    received go back in the auth of every reconnection."""

    def __init__(self, room: str, http: aiohttp.ClientSession) -> None:
        # a session of the test's: the client's own ones leak across its reconnections
        super().__init__(reconnection_delay=0.1, reconnection_delay_max=0.5, http_session=http)
        self.pid: str | None = None
        self.offset: str | None = None
        self.received: list[int] = []
        self.ids: list[str] = []
        self.pids: list[str] = []
        self.room = room
        self.on("msg", self._on_msg)
        self.on("welcome", self._on_welcome)

    def auth(self) -> dict[str, Any]:
        auth: dict[str, Any] = {"room": self.room}
        if self.pid is not None:
            auth["pid"] = self.pid
            if self.offset is not None:
                auth["offset"] = self.offset
        return auth

    async def _handle_connect(self, namespace: str, data: Any) -> None:
        if isinstance(data, dict) and isinstance(data.get("pid"), str):
            self.pid = data["pid"]
            self.pids.append(data["pid"])
            self.ids.append(data.get("sid"))
        await super()._handle_connect(namespace, data)

    def _on_msg(self, n: int, offset: str) -> None:
        self.received.append(n)
        self.offset = offset

    def _on_welcome(self, sid: str, offset: str) -> None:
        self.offset = offset


async def worker_to_kill(clients: Clients, py: list[RecoveringClient],
                         publisher: RecoveringClient) -> str:
    """A worker that owns some of the receiving clients but not the publisher."""
    owners = [a["worker"] for a in (await clients.emit("w", "whoami")).values()]
    owners += [a["worker"] for a in (await clients.emit("p", "whoami")).values()]
    for client in py:
        owners.append((await client.call("whoami", timeout=scaled(5)))["worker"])
    publishing = (await publisher.call("whoami", timeout=scaled(5)))["worker"]
    candidates = sorted(set(owners) - {publishing})
    assert candidates, owners
    return str(candidates[0])


@pytest.mark.parametrize("disruption", [
    "sighup", "kill", pytest.param("kill-redis", marks=pytest.mark.redis)])
async def test_rolling_restart_or_kill_loses_no_message(
        tmp_path: Path, disruption: str, request: pytest.FixtureRequest) -> None:
    """A publisher emits 2,000 numbered messages to a room of 50 clients (official client and
    python-socketio, polling and websocket) while SIGHUP replaces the 4 workers one by one,
    or while a worker that owns some of them is killed with -9 (the master's hub keeps the
    log and the sessions; or Redis, for "kill-redis"): every client receives every message
    exactly once, in order, and keeps its socket id."""
    total, batch = 2000, 10
    store: tuple[str, ...] = ()
    if disruption == "kill-redis":
        store = ("--store", request.getfixturevalue("redis_url"),
                 "--store-key", request.getfixturevalue("redis_prefix"))
    server = ServerProcess(APP, "--workers", "4", "--shutdown-timeout", "5", *store,
                           log_path=tmp_path / "server.log", stop_timeout=20)
    async with server, contextlib.AsyncExitStack() as stack:
        await server.wait_for_log(READY.format(workers=4), timeout=30)
        node, clients = await start_clients(server.url)
        await stack.enter_async_context(node)
        js = {**await clients.open("w", 20, room="r", transports=["websocket"]),
              **await clients.open("p", 20, room="r", transports=["polling"])}
        http = await stack.enter_async_context(aiohttp.ClientSession())
        py = [RecoveringClient("r", http) for _ in range(10)]
        for index, client in enumerate(py):
            stack.push_async_callback(client.disconnect)
            # python-socketio's HTTP client (aiohttp) sends a GET again when its connection
            # died: the retry of a GET whose answer died with the killed worker that relayed
            # it is held by the session's owner until it knows that worker is gone (at once
            # on the hub, ~6 s with Redis), and then closes the session, so that the client
            # reconnects and recovers (see the README, "Connection state recovery")
            polling = index % 2
            await client.connect(server.url, auth=client.auth,
                                 transports=["polling"] if polling else ["websocket"],
                                 wait_timeout=scaled(10))
        publisher = RecoveringClient("publishers", http)
        stack.push_async_callback(publisher.disconnect)
        await publisher.connect(server.url, auth=publisher.auth, wait_timeout=scaled(10))

        sent: list[int] = []
        acked: list[int] = []

        async def publish(start: int) -> None:
            sent.extend(range(start, start + batch))
            try:
                await publisher.call("publish", ("r", start, batch), timeout=scaled(5))
            except (socketio.exceptions.TimeoutError, socketio.exceptions.SocketIOError):
                return  # lost with the publisher's own connection, or not: it may be either
            acked.extend(range(start, start + batch))

        old = started_pids(server.log_text())
        victim = await worker_to_kill(clients, py, publisher) if disruption != "sighup" else ""
        loop = asyncio.get_running_loop()
        start = 0
        while start < total:
            await publish(start)
            start += batch
            if start == total // 10:
                if disruption == "sighup":
                    server.send_signal(signal.SIGHUP)
                else:
                    os.kill(old[int(victim) - 1], signal.SIGKILL)
            await asyncio.sleep(0.005)
        # the last old worker is gone (or the killed one replaced), every client is back:
        # one more, after it all
        if disruption == "sighup":
            await server.wait_for_log(r"(?s)SIGHUP: replacing.*started worker #4 .*"
                                      r"\[worker #4\] INFO sio_core: shutting down",
                                      timeout=60)
        else:
            await server.wait_for_log(rf"worker #{victim} .* exited with -9; restarting")
        deadline = loop.time() + scaled(30)
        while not (publisher.connected and all(c.connected for c in py)):
            assert loop.time() < deadline, "python-socketio clients did not reconnect"
            await asyncio.sleep(0.05)
        # (the publisher's own connection may still go now: a worker that drains)
        start = total
        while not acked or acked[-1] < total:
            assert loop.time() < deadline, "the last message was never acknowledged"
            await publish(start)
            start += batch
        last = acked[-1]
        await clients.wait_for("w", "msg", last)
        await clients.wait_for("p", "msg", last)
        while not all(c.received and c.received[-1] == last for c in py):
            assert loop.time() < deadline, "python-socketio clients lack the last message"
            await asyncio.sleep(0.05)

        new = started_pids(server.log_text())
        assert len(new) == (8 if disruption == "sighup" else 5), (old, new)
        sent_set = set(sent)
        stats = {**await clients.stats("w"), **await clients.stats("p")}
        received = {name: info["received"]["msg"] for name, info in stats.items()}
        received.update({f"py{i}": c.received for i, c in enumerate(py)})
        for name, got in received.items():
            # exactly once, in order: strictly increasing; every acknowledged message there,
            # nothing that was not sent (a batch whose ack was lost may have gone out or not)
            assert all(a < b for a, b in itertools.pairwise(got)), name
            missing = sorted(set(acked) - set(got))
            assert not missing and set(got) <= sent_set, (
                name, ranges(missing), ranges(sorted(set(got) - sent_set)), ranges(got),
                {f"py{i}": (c.ids, c.pids) for i, c in enumerate(py)}.get(name))
        for name, info in stats.items():
            assert set(info["ids"]) == {js[name]["id"]}, (name, info["ids"])
        for client in py:
            assert len(set(client.ids)) == 1, client.ids
        # the workers went from under the clients: those reconnected, and recovered
        reconnected = sum(info["connects"] > 1 for info in stats.values())
        assert reconnected >= (10 if disruption == "sighup" else 1), reconnected


async def test_past_max_disconnection_duration_a_fresh_session(tmp_path: Path) -> None:
    """Within max_disconnection_duration (here 2 s) a client that went away gets its socket
    back; past it, a fresh one, and ``recovered`` is false (python-socketio's client,
    taught the recovery protocol)."""
    async with (ServerProcess(APP, log_path=tmp_path / "server.log",
                              env={"SIO_TEST_RECOVERY_SECONDS": "2"}) as server,
                aiohttp.ClientSession() as http):
        client = RecoveringClient("r", http)
        publisher = RecoveringClient("p", http)
        try:
            await publisher.connect(server.url, auth=publisher.auth, wait_timeout=scaled(10))
            for away, recovered in ((0.0, True), (3.0, False)):
                await client.connect(server.url, auth=client.auth, transports=["websocket"],
                                     wait_timeout=scaled(10))
                first = await client.call("whoami", timeout=scaled(5))
                await client.eio.disconnect()  # the transport only: "transport close"
                await publisher.call("publish", ("r", 0, 1), timeout=scaled(5))
                await asyncio.sleep(away)
                await client.connect(server.url, auth=client.auth, transports=["websocket"],
                                     wait_timeout=scaled(10))
                again = await client.call("whoami", timeout=scaled(5))
                assert again["recovered"] is recovered, (away, again)
                assert (again["id"] == first["id"]) is recovered
                assert ("r" in again["rooms"]) and again["data"]["room"] == "r"
                await client.disconnect()
        finally:
            await client.disconnect()
            await publisher.disconnect()
