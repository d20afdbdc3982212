"""Socket.IO mounted in FastAPI under uvicorn's workers, with no sticky sessions.

Two setups run side by side (their soaks at the same time, to keep the suite short):

- ``uvicorn tests.apps.asgi_app:app --workers 4``, no Redis: the workers meet at a hub one of
  them hosts (sio_core/stores/meeting.py); the kernel spreads the TCP connections over them;
- two ``uvicorn ... --workers 2`` processes on one private redis-server, behind the tests'
  round-robin proxy (tests/proxy.py): every new TCP connection goes to the other uvicorn.

In each, 20 polling-only official clients (tests/js/cluster_clients.js) stay connected through
the soak with no reconnection while their requests land on several workers, every broadcast
arrives exactly once, clients that upgrade to WebSocket on a connection that lands on another
worker carry on, and python-socketio's client (polling only) gets the broadcasts too.

Where the requests landed: each worker logs, at DEBUG and under its pid, every request it forwards
to a session's owner (tests/apps/asgi_app.py); ``whoami`` tells each session's owner pid.

Chromium: the FastAPI chat demo (sio_core/demo/fastapi_chat.py) under ``--workers 4``, two pages
whose sessions belong to different workers see each other's messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
import socketio

from tests.proxy import RoundRobinProxy
from tests.support import (
    REPO_ROOT,
    JsonObject,
    ServerProcess,
    disconnect_python_client,
    scaled,
    start_node,
)
from tests.test_chat_browser import browser, exchange, open_chat, page_elsewhere
from tests.test_cluster import Clients, received

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

__all__ = ["browser"]  # the fixture, shared with the chat's browser tests

APP = "tests.apps.asgi_app:app"
CLIENTS_JS = REPO_ROOT / "tests" / "js" / "cluster_clients.js"
SOAK_CLIENTS = 20
UPGRADING = 8
SOAK_SECONDS = 30.0
ROUND_EVERY = 5.0
FORWARDED = re.compile(
    r"^(\d+) DEBUG sio_core\.forwarding: forwarding (GET|POST|websocket upgrade) of (\S+) to its"
    r" owner", re.MULTILINE)
STARTED = "Application startup complete"
HANDSHAKE = "/socket.io/?EIO=4&transport=polling"
SESSION_UNKNOWN = {"code": 1, "message": "Session ID unknown"}


class UvicornProcess(ServerProcess):
    """``python -m uvicorn APP *args --host 127.0.0.1 --port PORT`` (see ServerProcess)."""

    @property
    def argv(self) -> list[str]:
        return [sys.executable, "-m", "uvicorn", *self.args, "--host", self.host,
                "--port", str(self.port)]


async def start_uvicorn(log_path: Path, workers: int, **env: str) -> UvicornProcess:
    """Ready once every worker has started (its store joined: the lifespan's start-up)."""
    server = UvicornProcess(APP, "--workers", str(workers), "--no-access-log",
                            "--timeout-graceful-shutdown", "5", log_path=log_path,
                            env={"SIO_TEST_SHORT_PINGS": "1", **env}, stop_timeout=20)
    await server.start()
    try:
        await server.wait_for_log("(?s)" + ".*".join([STARTED] * workers), timeout=30)
    except BaseException:
        await server.stop()
        raise
    return server


def forwarded(*logs: str) -> dict[str, list[tuple[str, str]]]:
    """sid -> [(the pid of the worker that forwarded a request of it, its kind)]."""
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for log in logs:
        for match in FORWARDED.finditer(log):
            out[match[3]].append((match[1], match[2]))
    return out


@dataclass
class Outcome:
    stats: dict[str, JsonObject]
    owners: dict[str, int]  # client name -> the pid of its session's owner
    python_got: list[Any]
    rounds: int
    troubles: list[JsonObject]


async def soak(url: str) -> Outcome:
    """The scenario of the module's docstring against ``url``; the clients leave at the end."""
    loop = asyncio.get_running_loop()
    python = socketio.AsyncClient(reconnection=False)
    python_got: list[Any] = []
    python_lost: list[Any] = []
    python.on("pychat", python_got.append)
    python.on("disconnect", lambda *reason: python_lost.append(reason))
    await python.connect(url, transports=["polling"], wait_timeout=scaled(10))
    try:
        async with await start_node(CLIENTS_JS, url) as node:
            clients = Clients(node)
            await clients.open("soak", SOAK_CLIENTS, ["polling"])
            await clients.open("up", UPGRADING, ["polling", "websocket"])
            await clients.wait("up", "$upgrade", 1, timeout=15)
            everyone = [f"soak{i}" for i in range(SOAK_CLIENTS)] + [
                f"up{i}" for i in range(UPGRADING)]
            owners = {name: who["pid"]
                      for name, who in (await clients.emit(everyone, "whoami")).items()}
            # the node clients' chat goes to their room: python-engineio's client refuses a
            # payload of more than 16 packets, which a burst of 20 broadcasts makes
            await clients.emit(everyone, "join", "soak")
            start = loop.time()
            end = start + SOAK_SECONDS  # the scenario's length, not a timeout
            rounds = 0
            while True:
                acks = await clients.emit("soak", "bcast", "soak", "$id", "chat",
                                          {"round": rounds, "from": "$name"}, timeout=15)
                assert set(acks.values()) == {"sent"}, acks
                assert await python.call("bcast", (None, None, "pychat", rounds),
                                         timeout=scaled(15)) == "sent"
                rounds += 1
                await clients.wait("soak", "chat", (SOAK_CLIENTS - 1) * rounds, timeout=15)
                await clients.wait("up", "chat", SOAK_CLIENTS * rounds, timeout=15)
                await clients.wait(everyone, "pychat", rounds, timeout=15)
                next_round = start + rounds * ROUND_EVERY
                if next_round >= end:
                    break
                await asyncio.sleep(next_round - loop.time())  # the soak's pace, not an event
            await asyncio.sleep(max(0.0, end - loop.time()))
            stats = await clients.stats(everyone)
            troubles = [e for e in node.events
                        if e.get("ev") in ("disconnect", "connect_error", "error")]
            await node.send({"op": "close", "group": ["soak", "up"]})
            await wait_for(lambda: len(python_got) >= rounds,
                           what=f"python-socketio's chats ({python_lost=})")
            return Outcome(stats, owners, list(python_got), rounds, troubles)
    finally:
        await disconnect_python_client(python)


async def wait_for(check: Any, timeout: float = 10.0, what: str = "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + scaled(timeout)
    while not check():
        assert loop.time() < deadline, f"not within the timeout: {what}"
        await asyncio.sleep(0.05)


def check_outcome(outcome: Outcome, landed: dict[str, list[tuple[str, str]]]) -> set[str]:
    """The soak's promises; the pids that forwarded requests of the soak's sessions."""
    assert outcome.troubles == []
    soakers = sorted(name for name in outcome.stats if name.startswith("soak"))
    assert len(soakers) == SOAK_CLIENTS
    rounds = range(outcome.rounds)
    for name, client in outcome.stats.items():
        # one connection, never lost, never another
        assert len(client["sids"]) == 1, (name, client["sids"])
        assert received(client, "$disconnect") == [], (name, client)
        if name in soakers:
            assert client["transport"] == "polling", name
            expected = Counter((r, other) for r in rounds for other in soakers if other != name)
        else:
            assert client["transport"] == "websocket", name
            expected = Counter((r, other) for r in rounds for other in soakers)
        chats = Counter((chat["round"], chat["from"]) for chat in received(client, "chat"))
        assert chats == expected, name  # every broadcast exactly once
        assert received(client, "pychat") == list(rounds), name  # python-socketio's too
    assert outcome.python_got == list(rounds)

    forwarders: set[str] = set()
    for name in soakers:
        via = {pid for pid, _ in landed[outcome.stats[name]["sid"]]}
        assert str(outcome.owners[name]) not in via, name  # never to itself
        forwarders |= via
    # upgrades whose websocket landed on another worker than the session's owner, and work
    moved = [name for name in outcome.stats if name.startswith("up") and any(
        kind == "websocket upgrade" for _, kind in landed[outcome.stats[name]["sid"]])]
    assert moved, "no upgrade landed on another worker"
    return forwarders


@contextlib.asynccontextmanager
async def redis_nodes(redis_url: str, redis_prefix: str,
                      tmp_path: Path) -> AsyncIterator[tuple[str, list[UvicornProcess]]]:
    env = {"SIO_CORE_STORE": redis_url, "SIO_CORE_STORE_KEY": redis_prefix}
    async with contextlib.AsyncExitStack() as stack:
        nodes = []
        for name in ("a", "b"):
            node = await start_uvicorn(tmp_path / f"redis-{name}.log", 2, **env)
            stack.push_async_callback(node.stop)
            nodes.append(node)
        proxy = await stack.enter_async_context(
            RoundRobinProxy([(node.host, node.port) for node in nodes]))
        yield proxy.url, nodes
        assert all(count > 0 for count in proxy.counts), proxy.counts


@pytest.mark.interop
async def test_uvicorn_workers_with_no_sticky_sessions(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        alone = await start_uvicorn(tmp_path / "workers.log", 4)
        stack.push_async_callback(alone.stop)
        proxy_url, nodes = await stack.enter_async_context(
            redis_nodes(redis_url, redis_prefix, tmp_path))
        local, shared = await asyncio.gather(soak(alone.url), soak(proxy_url))

        forwarders = check_outcome(local, forwarded(alone.log_text()))
        assert len(forwarders) >= 2, forwarders  # requests came in through several workers
        # GET /metrics answers for every worker, each under its label (its pid)
        pids = set(re.findall(r"Started server process \[(\d+)\]", alone.log_text()))
        async with aiohttp.ClientSession() as http, http.get(alone.url + "/metrics") as reply:
            labels = set(re.findall(r'worker="(\d+)"', await reply.text()))
        assert labels == pids and len(pids) == 4, (labels, pids)

        forwarders = check_outcome(shared, forwarded(*(node.log_text() for node in nodes)))
        assert len(forwarders) >= 2, forwarders
        owners = set(shared.owners.values())
        assert len(owners) >= 2, owners  # sessions owned on both nodes
        for server in (alone, *nodes):
            assert "Traceback" not in server.log_text(), server.log_text()


@pytest.mark.interop
async def test_another_worker_hosts_the_hub_when_its_host_is_killed(tmp_path: Path) -> None:
    server = await start_uvicorn(tmp_path / "workers.log", 3)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(server.stop)
        host = (await server.wait_for_log(r"^(\d+) INFO sio_core\.meeting: hosting"))[1]
        http = await stack.enter_async_context(aiohttp.ClientSession())
        orphan = await session_of(http, server.url, host)  # a session the host owns
        os.kill(int(host), signal.SIGKILL)
        # one of the others takes the lock and hosts a new hub; uvicorn replaces the dead one
        await server.wait_for_log(rf"^(?!{host} )\d+ INFO sio_core\.meeting: hosting", timeout=15)
        await server.wait_for_log("(?s)" + ".*".join([STARTED] * 4), timeout=30)
        clients = Clients(await stack.enter_async_context(await start_node(CLIENTS_JS,
                                                                           server.url)))
        # uvicorn's workers share one listening socket, and a burst of connections may all
        # go to whichever accepts first (a full CI run once put 12 of 12 on one): groups of
        # 12 more until two workers own some
        names: list[str] = []
        owners: set[int] = set()
        groups = ("k", "l", "m", "n")
        for group in groups:
            await clients.open(group, 12, ["websocket"])
            names += [f"{group}{i}" for i in range(12)]
            owners |= {who["pid"] for who in (await clients.emit(group, "whoami")).values()}
            if len(owners) >= 2:
                break
        assert len(owners) >= 2 and int(host) not in owners, owners
        # the workers met again: a broadcast from each client reaches every other, once
        await clients.emit(names, "bcast", None, "$id", "again", "$name")
        await clients.wait(names, "again", len(names) - 1)
        for name, client in (await clients.stats(names)).items():
            assert sorted(received(client, "again")) == sorted(n for n in names
                                                               if n != name), name
        for group in groups:
            if f"{group}0" in names:
                await clients.node.send({"op": "close", "group": group})
        # the dead worker's session: unknown, wherever its next request lands
        for _ in range(4):
            async with http.get(f"{server.url}{HANDSHAKE}&sid={orphan}") as reply:
                assert (reply.status, await reply.json()) == (400, SESSION_UNKNOWN)


async def session_of(http: aiohttp.ClientSession, url: str, pid: str) -> str:
    """The sid of a new polling session that worker ``pid`` owns (the owner's number in a sid
    is its pid: handshakes are made until one lands there)."""
    for _ in range(40):
        async with http.get(url + HANDSHAKE, headers={"Connection": "close"}) as reply:
            sid: str = json.loads((await reply.text())[1:])["sid"]
        if f"-w{pid}-" in sid:
            return sid
        # not kept: closed (a session left open would hold its worker's drain)
        async with http.post(f"{url}{HANDSHAKE}&sid={sid}", data=b"1") as reply:
            assert reply.status == 200
    raise AssertionError(f"no handshake landed on worker {pid}")


# --- the chat in a browser -----------------------------------------------------------------------


async def owner_of(page: Page) -> str:
    """The worker that owns the page's session (named in its sid)."""
    sid: str = await page.evaluate("() => socket.io.engine.id")
    return sid.rpartition(".")[2]


@pytest.mark.browser
async def test_fastapi_chat_across_uvicorn_workers(browser: Browser, tmp_path: Path) -> None:
    server = UvicornProcess("sio_core.demo.fastapi_chat:app", "--workers", "4",
                            log_path=tmp_path / "chat.log", stop_timeout=20)
    async with server:
        await server.wait_for_log("(?s)" + ".*".join([STARTED] * 4), timeout=30)
        errors: list[str] = []
        page_a = await open_chat(browser, server.url + "/", errors, "A")
        page_b = await page_elsewhere(browser, server.url + "/", errors, owner_of,
                                      await owner_of(page_a))
        await exchange(page_a, page_b)
        assert errors == []
        await page_a.context.close()
        await page_b.context.close()
    assert "Traceback" not in server.log_text(), server.log_text()
