"""Many workers on one port: ``python -m sio_core serve tests.apps.cluster_app:io --workers 4``,
driven by many official clients in one node process (``tests/js/cluster_clients.js``).

The master starts four workers that share the port (SO_REUSEPORT: the kernel spreads the TCP
connections) and relays between them (the hub). A session belongs to the worker that made its
handshake; its owner is in the sid (``<token>.<node>-w<N>-<nonce>``) and any request of it may
land on any worker, which forwards it to the owner.

Where the requests landed: each worker logs, at DEBUG, every request it forwards to a session's
owner ("forwarding GET of <sid> to its owner", sio_core/engine/forwarding.py), under its
``[worker #N]`` prefix. The module's server runs with ``--log-level debug`` so the tests can tell,
per session, which workers its requests came through.

Timing: a 30 s soak of 20 polling clients (``soak``, a module-scoped fixture) runs in the
background while the other checks against the same server run (a crowd of 200 clients,
upgrades, forged sids, bad start-ups); the soak's own test comes after them. The tests that kill
or signal a server have a server of their own each, started after the soak.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.support import (
    REPO_ROOT,
    JsonObject,
    NodeProcess,
    ServerProcess,
    free_port,
    scaled,
    start_node,
)

# one event loop for the whole module: the soak (a task on it) runs across the tests
pytestmark = [pytest.mark.interop, pytest.mark.asyncio(loop_scope="module")]

APP = "tests.apps.cluster_app:io"
CLIENTS_JS = REPO_ROOT / "tests" / "js" / "cluster_clients.js"
PATH = "/socket.io/"
WORKERS = 4
WORKER_IDS = frozenset(str(index) for index in range(1, WORKERS + 1))

#: A short heartbeat, so that during the soak every polling session makes many requests (each
#: ping answers a pending GET, each pong is a POST), each of which may land on any worker.
PING_OPTIONS = ("--ping-interval", "2", "--ping-timeout", "5")

SOAK_CLIENTS = 20
SOAK_SECONDS = 30.0
#: each soak client sends one message per round, at the start of the soak and then this often
SOAK_ROUND_EVERY = 5.0

CROWD_WEBSOCKET = 150
CROWD_POLLING = 50
CROWD = CROWD_WEBSOCKET + CROWD_POLLING
CROWD_ROOM = "crowd"

SESSION_UNKNOWN = {"code": 1, "message": "Session ID unknown"}

READY = r"\[master\] INFO sio_core\.supervisor: {workers} workers ready"
FORWARDED = re.compile(
    r"\[worker #(\d+)\] DEBUG sio_core\.forwarding: forwarding (GET|POST|websocket upgrade)"
    r" of (\S+) to its owner"
)
OWNER = re.compile(r"[A-Za-z0-9_-]{16}\.(?P<node>[A-Za-z0-9_~-]+)-w(?P<worker>\d+)-(?P<nonce>\w+)")


def owner_worker(sid: str) -> str:
    """The worker a sid names as its owner."""
    match = OWNER.fullmatch(sid)
    assert match is not None, f"not a cluster sid: {sid!r}"
    return match["worker"]


def forwarded(log: str) -> dict[str, list[tuple[str, str]]]:
    """sid -> [(the worker that forwarded a request of it, its kind)]; kinds: GET, POST,
    websocket upgrade."""
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for match in FORWARDED.finditer(log):
        out[match[3]].append((match[1], match[2]))
    return out


def started_pids(log: str, worker: str) -> list[int]:
    """The pids the master started for worker #N, in order."""
    return [int(pid) for pid in
            re.findall(rf"\[master\] INFO sio_core\.supervisor: started worker #{worker} "
                       rf"\(pid (\d+)\)", log)]


def received(client: JsonObject, event: str) -> list[Any]:
    events: list[Any] = client["received"].get(event, [])
    return events


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def poll_until(condition: Callable[[], bool], what: str, timeout: float) -> None:
    """For what no process reports as an event (another process's exit): check at a cadence."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + scaled(timeout)
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not within {scaled(timeout):.1f}s")
        await asyncio.sleep(0.02)


async def cluster_server(log_path: Path, *options: str, port: int | None = None,
                         workers: int = WORKERS, app: str = APP) -> ServerProcess:
    server = ServerProcess(app, "--workers", str(workers), *options, log_path=log_path,
                           port=port, stop_timeout=15)
    await server.start()
    try:
        await server.wait_for_log(READY.format(workers=workers), timeout=30)
    except BaseException:
        await server.stop()
        raise
    return server


# --- the node clients ----------------------------------------------------------------------------

Who = str | Sequence[str]


class Clients:
    """``tests/js/cluster_clients.js``: many socket.io-client connections in one node process.

    ``who`` is a group name or a list of client names; what every client received is in
    ``stats(who)[name]["received"][event]``.
    """

    def __init__(self, node: NodeProcess) -> None:
        self.node = node
        self._tags = itertools.count()

    @staticmethod
    def _who(who: Who) -> JsonObject:
        return {"group": who} if isinstance(who, str) else {"names": list(who)}

    def _tag(self) -> str:
        return f"t{next(self._tags)}"

    async def open(self, group: str, count: int, transports: Sequence[str], *,
                   reconnection: bool = True, timeout: float = 30.0,
                   **options: Any) -> dict[str, JsonObject]:
        """Open ``count`` clients named ``<group><i>``; their state once all are connected.
        ``options``: the open command's others (namespace, auth, all_args)."""
        await self.node.send({"op": "open", "group": group, "count": count,
                              "transports": list(transports), "reconnection": reconnection,
                              **options})
        event = await self.node.next_event({"ev": "opened", "group": group}, timeout)
        clients: dict[str, JsonObject] = event["clients"]
        return clients

    async def emit(self, who: Who, event: str, *args: Any, timeout: float = 10.0) -> JsonObject:
        """Each client emits and waits for its ack; name -> the ack's (first) argument."""
        tag = self._tag()
        await self.node.send({"op": "emit", "tag": tag, **self._who(who), "event": event,
                              "args": list(args), "ack": True})
        reply = await self.node.next_event({"ev": "acks", "tag": tag}, timeout)
        acks: JsonObject = reply["acks"]
        return acks

    async def emit_no_ack(self, who: Who, event: str, *args: Any) -> None:
        tag = self._tag()
        await self.node.send({"op": "emit", "tag": tag, **self._who(who), "event": event,
                              "args": list(args), "ack": False})
        await self.node.next_event({"ev": "emitted", "tag": tag})

    async def wait(self, who: Who, event: str, count: int, timeout: float = 10.0) -> None:
        """Until every client has received ``event`` at least ``count`` times."""
        tag = self._tag()
        await self.node.send({"op": "wait", "tag": tag, **self._who(who), "event": event,
                              "count": count})
        try:
            await self.node.next_event({"ev": "waited", "tag": tag}, timeout)
        except TimeoutError as exc:
            stats = await self.stats(who)
            short = {name: len(received(c, event)) for name, c in stats.items()
                     if len(received(c, event)) < count}
            raise AssertionError(
                f"not every client received {event!r} {count} times within"
                f" {scaled(timeout):.1f}s; short: {short}") from exc

    async def pause(self, who: Who) -> None:
        """The websocket clients stop reading their connection (until ``resume``)."""
        await self.node.send({"op": "pause", **self._who(who)})

    async def resume(self, who: Who) -> None:
        await self.node.send({"op": "resume", **self._who(who)})

    def disconnects(self) -> dict[str, list[JsonObject]]:
        """name -> its "disconnect" lines so far (reason, detail, websocket close code)."""
        out: dict[str, list[JsonObject]] = defaultdict(list)
        for event in self.node.events:
            if event.get("ev") == "disconnect":
                out[event["name"]].append(event)
        return out

    async def stats(self, who: Who) -> dict[str, JsonObject]:
        tag = self._tag()
        await self.node.send({"op": "stats", "tag": tag, **self._who(who)})
        reply = await self.node.next_event({"ev": "stats", "tag": tag})
        clients: dict[str, JsonObject] = reply["clients"]
        return clients


@contextlib.asynccontextmanager
async def node_clients(server: ServerProcess) -> AsyncIterator[Clients]:
    async with await start_node(CLIENTS_JS, server.url) as node:
        yield Clients(node)


# --- the module's server and the soak running beside the other tests -----------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    log_path = tmp_path_factory.mktemp("cluster") / "server.log"
    server = await cluster_server(log_path, "--log-level", "debug", *PING_OPTIONS)
    try:
        yield server
    finally:
        await server.stop()


@dataclass(frozen=True)
class SoakResult:
    opened: dict[str, JsonObject]
    stats: dict[str, JsonObject]
    rounds: int
    seconds: float


async def run_soak(clients: Clients) -> SoakResult:
    """20 polling clients; every SOAK_ROUND_EVERY seconds each sends one message to all the
    others (a broadcast that excepts the sender's own room); after SOAK_SECONDS, their state."""
    loop = asyncio.get_running_loop()
    opened = await clients.open("soak", SOAK_CLIENTS, ["polling"])
    start = loop.time()
    end = start + SOAK_SECONDS  # the scenario's length, not a timeout
    rounds = 0
    while True:
        acks = await clients.emit("soak", "bcast", None, "$id", "chat",
                                  {"round": rounds, "from": "$name"})
        assert set(acks.values()) == {"sent"}, acks
        rounds += 1
        await clients.wait("soak", "chat", (SOAK_CLIENTS - 1) * rounds)
        next_round = start + rounds * SOAK_ROUND_EVERY
        if next_round >= end:
            break
        await asyncio.sleep(next_round - loop.time())  # the soak's pace, not an event
    await asyncio.sleep(max(0.0, end - loop.time()))
    stats = await clients.stats("soak")
    return SoakResult(opened, stats, rounds, loop.time() - start)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def soak(cluster: ServerProcess) -> AsyncIterator[asyncio.Task[SoakResult]]:
    """The soak, started in the background; its test awaits the result."""
    async with node_clients(cluster) as clients:
        task = asyncio.create_task(run_soak(clients))
        yield task
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# --- bad start-ups -------------------------------------------------------------------------------


async def run_serve(*args: str, timeout: float = 15.0) -> tuple[int, str, float]:
    """``python -m sio_core serve *args`` to its end: (exit code, output, seconds taken)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sio_core", "serve", *args,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), scaled(timeout))
    except TimeoutError:
        os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        raise AssertionError(f"serve {' '.join(args)} did not exit within {timeout}s") from None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever it left behind
    assert proc.returncode is not None
    return proc.returncode, output.decode(errors="replace"), loop.time() - started


def assert_one_clear_error(output: str, *expected: str) -> None:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "ERROR" in lines[0], output
    for text in expected:
        assert text in lines[0], output
    assert "Traceback" not in output, output


@pytest.mark.usefixtures("soak")
async def test_port_already_taken_is_one_clear_error(cluster: ServerProcess) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, output, seconds = await run_serve(
            APP, "--workers", "4", "--host", "127.0.0.1", "--port", str(port))
    assert code != 0, output
    assert_one_clear_error(output, f"cannot listen on 127.0.0.1:{port}")
    assert seconds < scaled(5), f"took {seconds:.1f}s"

    # the port of a running sio_core cluster (its workers bind with SO_REUSEPORT): refused too,
    # rather than joining the running server's workers
    code, output, seconds = await run_serve(
        APP, "--workers", "4", "--host", "127.0.0.1", "--port", str(cluster.port))
    assert code != 0, output
    assert_one_clear_error(output, f"cannot listen on 127.0.0.1:{cluster.port}")
    assert seconds < scaled(5), f"took {seconds:.1f}s"


@pytest.mark.usefixtures("soak")
async def test_app_import_error_is_one_clear_error() -> None:
    code, output, seconds = await run_serve(
        "nonexistent.module:io", "--workers", "2", "--host", "127.0.0.1", "--port",
        str(free_port()))
    assert code != 0, output
    assert_one_clear_error(output, "nonexistent.module")
    assert "started worker" not in output
    assert seconds < scaled(5), f"took {seconds:.1f}s"


# --- forged sids ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("soak")
async def test_forged_owner_is_an_unknown_session(cluster: ServerProcess) -> None:
    url = cluster.url + PATH
    # force_close: one TCP connection per request, so the requests land on every worker
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        async with http.get(url, params={"EIO": "4", "transport": "polling"}) as resp:
            body = await resp.text()
        assert resp.status == 200 and body.startswith("0{"), body
        real = json.loads(body[1:])["sid"]
        match = OWNER.fullmatch(real)
        assert match is not None, real
        token, node, worker = real.partition(".")[0], match["node"], match["worker"]
        forged = {
            "a worker that does not exist": f"{token}.{node}-w9-beef",
            "a live worker's index, another nonce": f"{token}.{node}-w{worker}-zzzz",
            "another node": f"{token}.ffffff-w{worker}-{match['nonce']}",
            "a live owner, a token it never issued": f"AAAAAAAAAAAAAAAA.{real.partition('.')[2]}",
        }
        for what, sid in forged.items():
            for _ in range(6):
                params = {"EIO": "4", "transport": "polling", "sid": sid}
                async with http.get(url, params=params) as resp:
                    assert resp.status == 400, (what, resp.status)
                    assert await resp.json(content_type=None) == SESSION_UNKNOWN, what
                async with http.post(url, params=params, data=b"4hello",
                                     headers={"Content-Type": "text/plain"}) as resp:
                    assert resp.status == 400, (what, resp.status)
                    assert await resp.json(content_type=None) == SESSION_UNKNOWN, what
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await http.ws_connect(url, params={**params, "transport": "websocket"})
                assert refused.value.status == 400, what
        # the real session ends here ("1": the client's close packet)
        async with http.post(url, params={"EIO": "4", "transport": "polling", "sid": real},
                             data=b"1") as resp:
            assert resp.status == 200


# --- 200 clients over the four workers -----------------------------------------------------------


@dataclass(frozen=True)
class Crowd:
    clients: Clients
    names: list[str]
    #: name -> the worker that owns its socket (whoami)
    worker: dict[str, str]
    #: name -> socket id
    ids: dict[str, str]
    even: frozenset[str]
    vip: frozenset[str]

    def on_worker(self, worker: str) -> str:
        return next(name for name in self.names if self.worker[name] == worker)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def crowd(cluster: ServerProcess, soak: Any) -> AsyncIterator[Crowd]:
    """200 clients (150 websocket, 50 polling), all in the room "crowd"; every other one in
    "even", every fifth in "vip". (Asks for ``soak``: the crowd's tests run during the soak.)"""
    async with node_clients(cluster) as clients:
        opened = await clients.open("cw", CROWD_WEBSOCKET, ["websocket"], timeout=60)
        opened |= await clients.open("cp", CROWD_POLLING, ["polling"], timeout=60)
        names = list(opened)
        who = await clients.emit(names, "whoami", timeout=30)
        assert {name: who[name]["id"] for name in names} == \
            {name: opened[name]["id"] for name in names}
        joined = await clients.emit(names, "join", CROWD_ROOM, timeout=30)
        assert joined == {name: who[name]["worker"] for name in names}
        even, vip = frozenset(names[::2]), frozenset(names[::5])
        await clients.emit(sorted(even), "join", "even", timeout=30)
        await clients.emit(sorted(vip), "join", "vip", timeout=30)
        yield Crowd(clients, names, {name: who[name]["worker"] for name in names},
                    {name: who[name]["id"] for name in names}, even, vip)


async def test_crowd_is_spread_over_every_worker(crowd: Crowd) -> None:
    spread = Counter(crowd.worker.values())
    assert set(spread) == WORKER_IDS, spread
    assert min(spread.values()) >= CROWD // WORKERS // 3, spread


async def test_broadcast_reaches_each_client_exactly_once(crowd: Crowd) -> None:
    clients, names = crowd.clients, crowd.names
    # one broadcast from a client of each worker: every client gets each exactly once
    for worker in sorted(WORKER_IDS):
        sender = crowd.on_worker(worker)
        assert await clients.emit([sender], "bcast", CROWD_ROOM, None, "all", worker) == \
            {sender: "sent"}
    await clients.wait(names, "all", WORKERS)

    # rooms and except: to "even" except "vip"; then a marker from the same sender, which
    # reaches each client after the broadcast if that one was meant for it
    sender = crowd.on_worker("3")
    await clients.emit([sender], "bcast", "even", "vip", "evens", "x")
    await clients.emit([sender], "bcast", CROWD_ROOM, None, "marker", 1)
    await clients.wait(names, "marker", 1)

    stats = await clients.stats(names)
    for name in names:
        assert sorted(received(stats[name], "all")) == sorted(WORKER_IDS), name
        expected = ["x"] if name in crowd.even and name not in crowd.vip else []
        assert received(stats[name], "evens") == expected, name
        assert received(stats[name], "marker") == [1], name


async def test_broadcast_acks_are_counted_from_every_worker(crowd: Crowd) -> None:
    """``io.to(room).timeout(t).emit_with_ack`` counts every client of the room, the sender
    included (200); ``socket.to(room)`` leaves the sender out (199)."""
    senders = [crowd.on_worker(worker) for worker in sorted(WORKER_IDS)]
    for include_self, expected in ((True, CROWD), (False, CROWD - 1)):
        for sender in senders:
            acks = await crowd.clients.emit([sender], "bcast_ack", CROWD_ROOM, include_self, 5,
                                            timeout=15)
            assert acks == {sender: {"count": expected, "timed_out": False}}, (sender, acks)


async def test_fetch_sockets_and_server_side_emit_span_every_worker(crowd: Crowd) -> None:
    senders = [crowd.on_worker(worker) for worker in sorted(WORKER_IDS)]
    everyone = set(crowd.ids.values())

    in_room = await crowd.clients.emit(senders, "fetch", CROWD_ROOM)
    for sender in senders:
        assert in_room[sender]["count"] == CROWD, sender
        assert sorted(in_room[sender]["ids"]) == sorted(everyone), sender

    all_sockets = await crowd.clients.emit(senders, "fetch", None)
    for sender in senders:
        ids = all_sockets[sender]["ids"]
        assert all_sockets[sender]["count"] == len(ids) == len(set(ids)), sender
        assert everyone <= set(ids), sender  # with the soak's clients, and others

    answers = await crowd.clients.emit(senders, "sse")
    for sender in senders:
        # each of the three other workers answers once, with its id
        assert sorted(answers[sender]) == sorted(WORKER_IDS - {crowd.worker[sender]}), answers


async def test_fetched_sockets_have_one_shape_on_every_worker(crowd: Crowd) -> None:
    """What fetch_sockets returns is used the same way whether the socket is this worker's or
    another's: ``await s.join(room)``, ``s.handshake.address``."""
    sender = crowd.on_worker("1")
    shape = await crowd.clients.emit([sender], "fetch_join", "vip", "vip-fetched")
    assert shape[sender]["local"] > 0 and shape[sender]["remote"] > 0, shape
    assert shape[sender]["local"] + shape[sender]["remote"] == len(crowd.vip), shape
    assert shape[sender]["addresses"] == ["127.0.0.1"], shape
    fetched = await crowd.clients.emit([sender], "fetch", "vip-fetched")
    assert sorted(fetched[sender]["ids"]) == sorted(crowd.ids[name] for name in crowd.vip)


async def test_sockets_join_and_disconnect_sockets_span_every_worker(crowd: Crowd) -> None:
    clients, names = crowd.clients, crowd.names
    sender = crowd.on_worker("2")
    assert await clients.emit([sender], "join_all", "joined", "even") == {sender: "done"}
    fetched = await clients.emit([sender], "fetch", "joined")
    assert sorted(fetched[sender]["ids"]) == sorted(crowd.ids[name] for name in crowd.even)
    await clients.emit([sender], "bcast", "joined", None, "to_joined", "j")
    await clients.emit([sender], "bcast", CROWD_ROOM, None, "marker2", 2)
    await clients.wait(names, "marker2", 1)
    stats = await clients.stats(names)
    for name in names:
        assert received(stats[name], "to_joined") == (["j"] if name in crowd.even else []), name

    # every socket of the room, on every worker, is disconnected by the server
    await clients.emit_no_ack([crowd.on_worker("3")], "disconnect_all", CROWD_ROOM)
    await clients.wait(names, "$disconnect", 1)
    stats = await clients.stats(names)
    for name in names:
        assert received(stats[name], "$disconnect") == ["io server disconnect"], name
        assert len(received(stats[name], "$connect")) == 1, name  # nobody came back


# --- upgrades that land on another worker --------------------------------------------------------


@pytest.mark.usefixtures("soak")
async def test_upgrade_that_lands_on_another_worker(cluster: ServerProcess) -> None:
    count = 12
    async with node_clients(cluster) as clients:
        opened = await clients.open("up", count, ["polling", "websocket"])
        await clients.wait("up", "$upgrade", 1)
        stats = await clients.stats("up")
        names = sorted(stats)
        landed = forwarded(cluster.log_text())
        moved = [name for name in names
                 if any(kind == "websocket upgrade" for _, kind in landed[stats[name]["sid"]])]
        # each upgrade is a new TCP connection: about three in four land on another worker
        assert moved, "no upgrade landed on another worker than the session's owner"

        for name in names:
            client = stats[name]
            assert client["transport"] == "websocket", (name, client)
            assert client["sid"] == opened[name]["sid"], name  # the same session, upgraded
            assert received(client, "$upgrade") == ["websocket"], name

        # messages flow both ways over the upgraded transport: each client sends to all others
        await clients.emit("up", "join", "up")
        await clients.emit("up", "bcast", "up", "$id", "uchat", "$name")
        await clients.wait("up", "uchat", count - 1)
        who = await clients.emit("up", "whoami")  # answered by the owner
        stats = await clients.stats("up")
        for name in names:
            client = stats[name]
            assert who[name]["worker"] == owner_worker(client["sid"]), name
            assert sorted(received(client, "uchat")) == sorted(set(names) - {name}), name
            assert client["transport"] == "websocket", name
            assert len(received(client, "$connect")) == 1, name
            assert received(client, "$disconnect") == [], name


# --- the soak ------------------------------------------------------------------------------------


async def test_polling_clients_stay_connected_while_requests_land_on_every_worker(
    cluster: ServerProcess, soak: asyncio.Task[SoakResult]
) -> None:
    result = await asyncio.wait_for(soak, SOAK_SECONDS + scaled(60))
    assert result.seconds >= SOAK_SECONDS
    names = sorted(result.stats)
    assert len(names) == SOAK_CLIENTS
    for name in names:
        client = result.stats[name]
        # one connection, never lost, never another
        assert received(client, "$connect") == [result.opened[name]["sid"]], (name, client)
        assert received(client, "$disconnect") == [], (name, client)
        assert client["connected"] and client["transport"] == "polling", (name, client)
        # every message of every other client, exactly once
        chats = Counter((chat["round"], chat["from"]) for chat in received(client, "chat"))
        expected = Counter((r, other) for r in range(result.rounds) for other in names
                           if other != name)
        assert chats == expected, name

    log = cluster.log_text()
    landed = forwarded(log)
    sids = [result.stats[name]["sid"] for name in names]
    assert len({owner_worker(sid) for sid in sids}) >= 3, sids  # sessions of several owners
    forwarders: set[str] = set()
    for sid in sids:
        via = {worker for worker, _ in landed[sid]}
        assert owner_worker(sid) not in via, (sid, landed[sid])  # never to itself
        # its requests came in through at least two other workers, and were answered
        assert len(via) >= 2, (sid, landed[sid])
        forwarders |= via
    assert forwarders == WORKER_IDS
    assert "Traceback" not in log, log


async def served_by(clients: Clients, pid: int) -> JsonObject:
    """Open new clients (groups n0, n1, ...) until the worker process ``pid`` serves one:
    that client's whoami."""
    for batch in range(6):
        group = f"n{batch}"
        await clients.open(group, 8, ["websocket"])
        answers = await clients.emit(group, "whoami")
        served = next((a for a in answers.values() if a["pid"] == pid), None)
        if served is not None:
            return served
    raise AssertionError(f"no new client was served by the new worker (pid {pid})")


# --- a worker killed -----------------------------------------------------------------------------


async def test_killed_worker_is_replaced_and_only_its_clients_reconnect(tmp_path: Path) -> None:
    """kill -9 of one worker: its clients (websocket only, so a client's one connection is on
    its owner) reconnect and carry on; the other clients see nothing; the master restarts the
    worker and the new one serves."""
    server = await cluster_server(tmp_path / "server.log")
    try:
        async with node_clients(server) as clients:
            await clients.open("k", 32, ["websocket"])
            who = await clients.emit("k", "whoami")
            names = sorted(who)
            spread = Counter(who[name]["worker"] for name in names)
            victim = spread.most_common(1)[0][0]
            victims = [name for name in names if who[name]["worker"] == victim]
            others = [name for name in names if who[name]["worker"] != victim]
            assert others, spread
            (pid,) = started_pids(server.log_text(), victim)
            assert {who[name]["pid"] for name in victims} == {pid}

            os.kill(pid, signal.SIGKILL)
            await clients.wait(victims, "$connect", 2, timeout=15)  # reconnected
            await server.wait_for_log(
                rf"\[master\] WARNING sio_core\.supervisor: worker #{victim} \(pid {pid}\)"
                r" exited with -9; restarting")
            await server.wait_for_log(  # the new worker #N, ready
                rf"(?s)exited with -9; restarting.*started worker #{victim} \(pid \d+\)"
                rf".*\[worker #{victim}\] INFO sio_core: listening on", timeout=15)
            new_pid = started_pids(server.log_text(), victim)[-1]
            assert new_pid != pid

            # everyone carries on: the reconnected clients answer, a broadcast reaches all once
            again = await clients.emit(victims, "whoami")
            assert all(again[name]["pid"] != pid for name in victims), again
            await clients.emit([others[0]], "bcast", None, None, "after", 1)
            await clients.wait(names, "after", 1)
            stats = await clients.stats(names)
            for name in names:
                assert received(stats[name], "after") == [1], name
            for name in others:
                assert len(received(stats[name], "$connect")) == 1, name
                assert received(stats[name], "$disconnect") == [], name

            served = await served_by(clients, new_pid)
            assert served["worker"] == victim
        assert "Traceback" not in server.log_text()
    finally:
        await server.stop()


async def health_by_owner(http: aiohttp.ClientSession, url: str,
                          until: Callable[[dict[str, JsonObject]], bool],
                          timeout: float) -> dict[str, JsonObject]:
    """GET /_sio_core/health again and again (each lands on whichever worker the kernel
    picks) until ``until(owner -> that worker's last answer)``; those answers."""
    seen: dict[str, JsonObject] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + scaled(timeout)
    while not until(seen):
        assert loop.time() < deadline, f"health answers: {seen}"
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(url + "/_sio_core/health") as resp:
                health = await resp.json()
            seen[health["owner"]] = health
    return seen


async def raw_long_poll(host: str, port: int, path_and_query: str) -> bytes:
    """One GET on a connection of its own, by hand: what came back before the connection
    ended (b"" if nothing). Unlike aiohttp, which retries a GET whose connection closed
    before the answer, this tells the test what happened to that one request."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path_and_query} HTTP/1.1\r\nHost: {host}\r\n"
                     "Connection: close\r\n\r\n".encode())
        return await reader.read()
    except ConnectionError:
        return b""
    finally:
        writer.close()


async def test_a_dead_relay_leaves_the_owners_sessions_working(tmp_path: Path) -> None:
    """kill -9 of a worker that relays long-poll GETs of sessions owned by other workers.

    Each of those GETs had its TCP connection on the dead worker: it ends without an answer.
    What follows is the client's: the official clients (node's socket.io-client,
    python-socketio) take a failed poll for a transport error, drop the session and
    reconnect (see the next test). A client that polls again carries on: the owner has
    released the GET that can no longer be answered (once it has heard that the relay is
    gone: the hub's word), so the next GET is not an "overlapping GET" that would close the
    session, and what the session had to send waits for it instead of going to the dead
    relay."""
    server = await cluster_server(tmp_path / "server.log", "--log-level", "debug")
    url = server.url + PATH
    query = {"EIO": "4", "transport": "polling"}
    try:
        connector = aiohttp.TCPConnector(force_close=True)  # each request: a new connection
        async with aiohttp.ClientSession(connector=connector) as http:
            sids = []
            # 32 sessions: each GET lands on another worker than its owner 3 times in 4, so
            # fewer than the 8 forwarded GETs awaited below is a chance of ~4e-10 (with 16 it
            # was ~0.7%, and CI met it once)
            for _ in range(32):
                async with http.get(url, params=query) as resp:
                    sids.append(json.loads((await resp.text())[1:])["sid"])
            owners = set(await health_by_owner(http, server.url, lambda seen: len(seen) == 4,
                                               timeout=10))
            polls = {sid: asyncio.create_task(raw_long_poll(
                server.host, server.port, f"{PATH}?EIO=4&transport=polling&sid={sid}"))
                for sid in sids}
            try:
                # most GETs land on another worker than the session's owner: wait for those
                await server.wait_for_log(r"(?s)(forwarding GET of .*){8}")
                relayed: dict[str, list[str]] = defaultdict(list)  # relay -> sids
                for sid, via in forwarded(server.log_text()).items():
                    relayed[via[0][0]].append(sid)
                relay, orphans = max(relayed.items(), key=lambda item: len(item[1]))
                (dead,) = (owner for owner in owners if f"-w{relay}-" in owner)
                (pid,) = started_pids(server.log_text(), relay)
                os.kill(pid, signal.SIGKILL)
                for sid in orphans:
                    assert await asyncio.wait_for(polls[sid], scaled(10)) == b"", sid
                # their owners have heard that the relay is gone
                await health_by_owner(
                    http, server.url,
                    lambda seen: all(owner in seen and dead not in seen[owner]["peers"]
                                     for owner in {sid.partition(".")[2] for sid in orphans}),
                    timeout=10)

                for sid in orphans:
                    params = {**query, "sid": sid}
                    # a Socket.IO CONNECT: the owner's answer is queued for the next GET ...
                    async with http.post(url, params=params, data=b"40") as resp:
                        assert resp.status == 200, (sid, await resp.text())
                    # ... which a live worker takes (before, the session was closed as
                    # soon as that GET reached its owner: "overlapping GET")
                    async with asyncio.timeout(scaled(5)), \
                            http.get(url, params=params) as resp:
                        body = await resp.text()
                    assert resp.status == 200 and body.startswith('40{"sid":'), (sid, body)
            finally:
                for task in polls.values():
                    task.cancel()
                await asyncio.gather(*polls.values(), return_exceptions=True)
                for sid in sids:  # the clients leave ("1"), or the drain would wait for them
                    for _ in range(3):  # a connection may meet a listener that is going
                        with contextlib.suppress(aiohttp.ClientError):
                            async with http.post(url, params={**query, "sid": sid}, data=b"1"):
                                break
    finally:
        await server.stop()


async def test_polling_clients_relayed_through_a_killed_worker_reconnect(
    tmp_path: Path
) -> None:
    """kill -9 of one worker while polling clients (official node clients) make requests
    through every worker. Its own clients lose their sessions and reconnect. A client of
    another worker whose GET or POST was relayed by the killed one at that moment sees that
    request fail: socket.io-client takes a failed poll or post for a "transport error"
    (engine.io-client closes the transport on "xhr poll error" / "xhr post error", it never
    repeats the request), drops the session and reconnects with a new one. Nothing in the
    server can spare that client its error (its TCP connection was on the dead worker);
    every other client sees nothing. Whatever happened, every client is connected and
    answering afterwards, and none was told anything but a reason it reconnects on."""
    server = await cluster_server(tmp_path / "server.log", "--ping-interval", "1",
                                  "--ping-timeout", "5")
    try:
        async with node_clients(server) as clients:
            await clients.open("p", 16, ["polling"])
            who = await clients.emit("p", "whoami")
            names = sorted(who)
            victim = Counter(who[name]["worker"] for name in names).most_common()[-1][0]
            (pid,) = started_pids(server.log_text(), victim)
            os.kill(pid, signal.SIGKILL)
            victims = [name for name in names if who[name]["worker"] == victim]
            await clients.wait(victims, "$connect", 2, timeout=15)
            await server.wait_for_log(rf"(?s)exited with -9; restarting.*started worker"
                                      rf" #{victim} .*\[worker #{victim}\] INFO sio_core:"
                                      r" listening on", timeout=15)
            after = await clients.emit(names, "whoami")  # answered once connected again
            assert all(answer["pid"] != pid for answer in after.values()), after
            stats = await clients.stats(names)
            collateral = []
            for name in names:
                reasons = received(stats[name], "$disconnect")
                assert set(reasons) <= {"transport error", "transport close"}, (name, reasons)
                assert len(received(stats[name], "$connect")) == len(reasons) + 1, name
                assert stats[name]["connected"], name
                if reasons and name not in victims:
                    collateral.append(name)
            print(f"{len(victims)} clients of the killed worker and {len(collateral)} of"
                  f" {len(names) - len(victims)} others reconnected")
        assert "Traceback" not in server.log_text()
    finally:
        await server.stop()


# --- a hung worker ------------------------------------------------------------------------------

#: SupervisorOptions' liveness ping interval and timeout (the defaults: serve has no option)
LIVENESS_INTERVAL, LIVENESS_TIMEOUT = 2.0, 10.0


@pytest.mark.parametrize("store", ["hub", "redis"])
async def test_hung_worker_is_replaced_whatever_the_store(
    store: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A worker whose event loop stops (SIGSTOP: the process is there, its listener too, and
    nothing answers) is killed and replaced by the master within the liveness timeout, with
    the hub as the store and with Redis (where the workers never meet in the master); its
    clients reconnect and new clients are served, by the new worker too."""
    options: list[str] = []
    if store == "redis":
        redis_url: str = request.getfixturevalue("redis_url")
        prefix: str = request.getfixturevalue("redis_prefix")
        options = ["--store", redis_url, "--store-key", prefix]
    server = await cluster_server(tmp_path / "server.log", *options, workers=2)
    try:
        async with node_clients(server) as clients:
            await clients.open("h", 12, ["websocket"])
            who = await clients.emit("h", "whoami")
            victims = [name for name, answer in who.items() if answer["worker"] == "1"]
            (pid,) = started_pids(server.log_text(), "1")

            os.kill(pid, signal.SIGSTOP)
            try:
                await server.wait_for_log(
                    rf"\[master\] ERROR sio_core\.supervisor: worker #1 \(pid {pid}\) stopped"
                    r" answering; replacing it",
                    timeout=LIVENESS_TIMEOUT + LIVENESS_INTERVAL + 5)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)  # gone by now; if not, let it be stopped
            await server.wait_for_log(
                r"(?s)stopped answering; replacing it.*started worker #1 \(pid \d+\)"
                r".*\[worker #1\] INFO sio_core: listening on", timeout=15)
            await poll_until(lambda: not pid_alive(pid), "the hung worker's end", 5)
            new_pid = started_pids(server.log_text(), "1")[-1]

            await clients.wait(victims, "$connect", 2, timeout=15)  # its clients came back
            again = await clients.emit("h", "whoami")
            assert all(answer["pid"] != pid for answer in again.values()), again
            await served_by(clients, new_pid)
        assert "Traceback" not in server.log_text()
    finally:
        await server.stop()


# --- SIGTERM to the master -----------------------------------------------------------------------


async def test_sigterm_drains_every_client_cleanly_and_they_reconnect(tmp_path: Path) -> None:
    """SIGTERM to the master: every client is told in a way on which the official client
    reconnects (the polling ones "transport error": their GET ends with ``6`` and the next one
    finds the session gone; the websocket ones "transport close" after a
    closing handshake, code 1000), even one that reads slowly and has megabytes still to
    read; the master exits 0 within --shutdown-timeout; and a server started again on the
    same port gets every client back."""
    shutdown_timeout = 8.0
    flood_count, flood_size = 24, 500_000  # 12 MB for the slow reader: more than the kernel holds
    server = await cluster_server(tmp_path / "server.log",
                                  "--shutdown-timeout", str(shutdown_timeout))
    again: ServerProcess | None = None
    try:
        async with node_clients(server) as clients:
            names = [*await clients.open("tw", 12, ["websocket"]),
                     *await clients.open("tp", 12, ["polling"]),
                     *await clients.open("slow", 1, ["websocket"])]
            who = await clients.emit(names, "whoami")
            assert len({answer["worker"] for answer in who.values()}) >= 3, who  # spread
            await clients.pause("slow")
            await clients.emit_no_ack("slow", "flood", flood_count, flood_size)
            await server.wait_for_log(rf"flooded {who['slow0']['id']} with {flood_count} x")
            # traffic while the signal comes: the polling clients are between two GETs now
            # and then, and their next GET must still find a worker to give it the "1"
            await clients.emit_no_ack([name for name in names if name.startswith("tw")],
                                      "bcast", None, None, "tick", 1)

            loop = asyncio.get_running_loop()
            started = loop.time()
            server.send_signal(signal.SIGTERM)
            fast = [name for name in names if name != "slow0"]
            await clients.wait(fast, "$disconnect", 1, timeout=shutdown_timeout)
            # the slow reader reads again only now: its worker must still be there, writing
            await clients.resume("slow")
            await clients.wait("slow", "$disconnect", 1, timeout=shutdown_timeout)
            await poll_until(lambda: server.returncode is not None, "the master's exit",
                             shutdown_timeout + 5)
            seconds = loop.time() - started
            assert server.returncode == 0, server.log_text()
            assert seconds <= scaled(shutdown_timeout) + 1.0, f"exited after {seconds:.1f}s"
            first = {name: lines[0] for name, lines in clients.disconnects().items()}
            assert sorted(first) == sorted(names)
            for name, line in first.items():
                if name.startswith("tp"):
                    assert line["reason"] == "transport error", line
                else:
                    assert line["reason"] == "transport close", line
                    assert line["code"] == 1000, line  # a closing handshake, not a cut
            stats = await clients.stats("slow")
            assert len(received(stats["slow0"], "flood")) == flood_count

            # they did not give up: a server on the same port gets every one of them back
            again = await cluster_server(tmp_path / "again.log", port=server.port)
            await clients.wait(names, "$connect", 2, timeout=20)
            answers = await clients.emit(names, "whoami")
            assert sorted(answers) == sorted(names)
            # stopped while its clients are there (else a polling session closed after its
            # client went away would wait the drain's whole timeout for a GET)
            assert await again.stop() == 0, again.log_text()
        log = server.log_text()
        assert "received SIGTERM: draining workers" in log, log
        assert "all workers stopped" in log, log
        assert "Traceback" not in log, log
    finally:
        await server.stop()
        if again is not None:
            await again.stop()
    assert not server.leftovers_killed, "workers outlived the master"


# --- SIGHUP: a rolling replacement ---------------------------------------------------------------


async def handshake(http: aiohttp.ClientSession, url: str) -> None:
    async with http.get(url, params={"EIO": "4", "transport": "polling"}) as resp:
        body = await resp.text()
        assert resp.status == 200 and body.startswith("0{"), (resp.status, body)
    sid = json.loads(body[1:])["sid"]
    # end the session at once (a close packet), so the workers being replaced have none to drain
    with contextlib.suppress(aiohttp.ClientError):
        async with http.post(url, params={"EIO": "4", "transport": "polling", "sid": sid},
                             data=b"1") as resp:
            await resp.read()


def tcp_migrate_req() -> bool:
    """net.ipv4.tcp_migrate_req (Linux 5.14+): a closing SO_REUSEPORT listener hands the
    connections still in its accept queue to another listener of the port, instead of
    resetting them."""
    try:
        return Path("/proc/sys/net/ipv4/tcp_migrate_req").read_text().strip() == "1"
    except OSError:
        return False


def reset_by_the_kernel(exc: BaseException) -> bool:
    """A connection reset before any HTTP answer (what a closing listener does to its queue)."""
    return isinstance(exc, aiohttp.ClientOSError) and exc.errno == errno.ECONNRESET


async def test_sighup_replaces_workers_one_at_a_time_while_answering(tmp_path: Path) -> None:
    """SIGHUP: each worker is replaced (the new one ready before the old one goes), one at a
    time, while loops of handshakes keep going. A handshake that reaches an old worker after
    it stopped listening (on a connection it accepted just before) is handed to another
    worker, not refused (a 503 here once failed CI).

    Known limit: each worker binds its own SO_REUSEPORT listener, and when the old worker closes
    it, Linux resets the connections that were still in that listener's accept queue (unless
    net.ipv4.tcp_migrate_req=1). A handshake loop meets that now and then (about one run in
    ten here); those resets are counted and bounded (at most one per loop per replaced worker),
    and refused outright where tcp_migrate_req is set. Every other failure fails the test."""
    loops = 2
    server = await cluster_server(tmp_path / "server.log", "--shutdown-timeout", "3")
    try:
        url = server.url + PATH
        old = {worker: started_pids(server.log_text(), worker)[-1] for worker in WORKER_IDS}
        answered = 0
        failures: list[BaseException] = []
        stop = asyncio.Event()

        async def keep_handshaking(http: aiohttp.ClientSession) -> None:
            nonlocal answered
            while not stop.is_set():
                try:
                    await handshake(http, url)
                except (aiohttp.ClientError, AssertionError, TimeoutError) as exc:
                    failures.append(exc)
                else:
                    answered += 1

        connector = aiohttp.TCPConnector(force_close=True)
        timeout = aiohttp.ClientTimeout(total=scaled(5))
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            await handshake(http, url)
            tasks = [asyncio.create_task(keep_handshaking(http)) for _ in range(loops)]
            try:
                server.send_signal(signal.SIGHUP)
                await server.wait_for_log(r"SIGHUP: replacing workers one at a time")
                # the last old worker has been told to stop, and is gone
                await server.wait_for_log(
                    r"(?s)SIGHUP: replacing.*started worker #4 .*\[worker #4\] INFO sio_core:"
                    r" shutting down", timeout=40)
                await poll_until(lambda: not any(map(pid_alive, old.values())),
                                 "the old workers' exit", 10)
                during = answered + len(failures)
                await handshake(http, url)  # and after
            finally:
                stop.set()
                await asyncio.gather(*tasks)

        others = [exc for exc in failures if not reset_by_the_kernel(exc)]
        assert not others, f"{len(others)} of {answered + len(failures)} handshakes failed:" \
            f" {others!r}"
        resets = len(failures) - len(others)
        if tcp_migrate_req():
            assert resets == 0, f"{resets} connections reset despite tcp_migrate_req=1"
        else:
            assert resets <= loops * WORKERS, f"{resets} connections reset"
        assert during >= 20, f"only {during} handshakes during the reload"

        log = server.log_text()
        reload = log[log.index("SIGHUP: replacing"):]
        steps = [("start", m[1]) if m[1] else ("stop", m[2]) for m in re.finditer(
            r"started worker #(\d+)|\[worker #(\d+)\] INFO sio_core: shutting down", reload)]
        # each new worker before its predecessor goes, and one at a time
        assert steps == [(step, worker) for worker in sorted(WORKER_IDS)
                         for step in ("start", "stop")], steps
        new = {worker: started_pids(log, worker)[-1] for worker in WORKER_IDS}
        assert all(pid_alive(pid) for pid in new.values())
        assert not set(new.values()) & set(old.values())
        assert "Traceback" not in log, log
    finally:
        await server.stop()
