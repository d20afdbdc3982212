"""A running server under hostile input, on one worker and on two (``serve --workers 2``).

The server is ``python -m sio_core serve tests.apps.fuzz_app:io`` (short timings: a session
that is abandoned ends within seconds; handlers that take any arguments). The peers are raw:
the ``websockets`` client, aiohttp and plain TCP, which send what no official client would.

- Memory: what one client can make a worker hold. Each attack runs under a watch of the
  workers' memory: their peak RSS (``VmHWM``, reset before the attack through
  ``/proc/<pid>/clear_refs``) must stay under a documented bound above the RSS before the
  attack; and if a worker grows past a hard cap meanwhile, the server is killed at once (a
  regression fails the test instead of exhausting the machine).
- Fuzzing: a few thousand seeded random cases (``SIO_FUZZ_SEED`` to replay one run) over raw
  HTTP, long-polling and websocket: mutated and garbage Engine.IO and Socket.IO packets, bad
  queries and methods, truncated bodies, random bytes on websockets, binary placeholders, huge
  numbers, deep JSON. No answer may be a 5xx.

After each test: every worker is alive and back to zero sessions and zero dynamic namespaces
(``GET /_sio_core/health``), the server logged no traceback and no error, and the official
client (node's socket.io-client) still connects and gets its ack, over both transports.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp
import pytest
import pytest_asyncio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support import REPO_ROOT, ServerProcess, scaled, start_node

pytestmark = [pytest.mark.interop, pytest.mark.asyncio(loop_scope="module")]

APP = "tests.apps.fuzz_app:io"
SIO_CLIENT = REPO_ROOT / "tests" / "js" / "sio_client.js"
SEED = int(os.environ.get("SIO_FUZZ_SEED", "1202"))
MAX_PAYLOAD = 1_000_000  # Config.max_payload, the default
MiB = 1 << 20
#: a worker growing past this during an attack is killed (the test then fails)
HARD_CAP = 1024 * MiB
#: Python's own cyclic-GC cadence rather than serve's 10,000: a closed connection's objects
#: form cycles (a socket and its handlers' closures), and with the raised threshold they wait
#: for a rare full collection (~20 MB per 5,000 sockets, measured), which would hide what a
#: worker keeps under when it collects
GC_DEFAULT = ("--gc-threshold", "0")


# --- the server and its workers ------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=[1, 2], ids=["1w", "2w"])
async def server(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    workers: int = request.param
    log = tmp_path_factory.mktemp(f"abuse-{workers}w") / "server.log"
    async with ServerProcess(APP, "--workers", str(workers), *GC_DEFAULT, log_path=log) as srv:
        if workers > 1:
            await srv.wait_for_log(rf"{workers} workers ready", timeout=30)
        srv.workers = workers  # type: ignore[attr-defined]
        yield srv


def worker_pids(server: ServerProcess) -> list[int]:
    """The processes that serve clients: the server itself, or its workers."""
    if server.workers == 1:  # type: ignore[attr-defined]
        return [server.pid]
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    return [int(pid) for pid in children]


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class MemoryWatch:
    """``async with MemoryWatch(server) as watch``: the workers' peak RSS above what it was
    before (``watch.growth``, bytes), with the server killed past HARD_CAP."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.pids = worker_pids(server)
        self.before: dict[int, int] = {}
        self.growth = 0
        self.killed: int | None = None
        self._sampler: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        for pid in self.pids:
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
            self.before[pid] = memory_kib(pid, "VmRSS") * 1024
        self._sampler = asyncio.get_running_loop().create_task(self._sample())
        return self

    async def _sample(self) -> None:
        while True:
            for pid in self.pids:
                if memory_kib(pid, "VmRSS") * 1024 - self.before[pid] > HARD_CAP:
                    self.killed = pid
                    os.killpg(self.server.pid, signal.SIGKILL)
                    return
            await asyncio.sleep(0.01)  # a cadence, not a deadline

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        assert self._sampler is not None
        self._sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._sampler
        if self.killed is not None:
            raise AssertionError(f"worker {self.killed} grew past {HARD_CAP >> 20} MiB during"
                                 " the attack: the server was killed") from exc
        self.growth = max(memory_kib(pid, "VmHWM") * 1024 - self.before[pid]
                          for pid in self.pids)


# --- raw peers -----------------------------------------------------------------------------------


def ws_url(server: ServerProcess, sid: str | None = None) -> str:
    url = f"ws://{server.host}:{server.port}/socket.io/?EIO=4&transport=websocket"
    return url + (f"&sid={sid}" if sid else "")


def polling_url(server: ServerProcess, sid: str | None = None) -> str:
    url = f"{server.url}/socket.io/?EIO=4&transport=polling"
    return url + (f"&sid={sid}" if sid else "")


class RawSocket:
    """An Engine.IO websocket session by hand: answers pings, queues everything else."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.messages: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, server: ServerProcess) -> RawSocket:
        ws = await connect(ws_url(server), max_size=None, compression=None,
                           open_timeout=scaled(10))
        raw = cls(ws)
        opening = await raw.next()
        assert isinstance(opening, str) and opening.startswith("0{"), opening
        return raw

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                if message == "2":
                    await self.ws.send("3")
                elif isinstance(message, str) or len(message) < 1024:
                    self.messages.put_nowait(message)
                else:  # kept short: a server that floods a client cannot grow the test
                    self.messages.put_nowait(b"<%d bytes>" % len(message))
        except ConnectionClosed:
            pass
        finally:
            self.messages.put_nowait(None)

    async def next(self, timeout: float = 10) -> str | bytes | None:
        """The next message; None once the server has closed the connection."""
        return await asyncio.wait_for(self.messages.get(), scaled(timeout))

    async def closed_by_server(self, timeout: float = 10) -> None:
        """Wait for the server to close the connection (what comes meanwhile is dropped)."""
        async with asyncio.timeout(scaled(timeout)):
            while await self.messages.get() is not None:
                pass
            await self.ws.wait_closed()

    async def aclose(self) -> None:
        await self.ws.close()
        await self._reader


def placeholders(count: int, num: int = 0) -> str:
    return ",".join([f'{{"_placeholder":true,"num":{num}}}'] * count)


# --- after every test ----------------------------------------------------------------------------


async def health_of_each_worker(server: ServerProcess) -> dict[str, dict[str, Any]]:
    """Each worker's health answer (a request lands on any worker: ask until each answered)."""
    owners: dict[str, dict[str, Any]] = {}
    # a new connection each time, so the kernel may pick another worker
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        for _ in range(200):
            async with http.get(f"{server.url}/_sio_core/health") as response:
                assert response.status == 200, (response.status, await response.text())
                body = await response.json()
            owners[body["owner"]] = body
            if len(owners) == server.workers:  # type: ignore[attr-defined]
                return owners
    raise AssertionError(f"only {len(owners)} workers answered")


async def wait_until_idle(server: ServerProcess, timeout: float = 20) -> None:
    """Every worker at zero sessions and zero dynamic namespaces (abandoned sessions end by
    their ping timeout, or the close timeout, both 1 s in the fuzz app)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + scaled(timeout)
    while True:
        healths = await health_of_each_worker(server)
        busy = {owner: (h["sessions"], h["dynamic_namespaces"]) for owner, h in healths.items()
                if h["sessions"] or h["dynamic_namespaces"]}
        if not busy:
            return
        if loop.time() > deadline:
            raise AssertionError(f"workers still busy (sessions, dynamic namespaces): {busy}")
        await asyncio.sleep(0.2)  # a cadence, not a deadline


async def official_client_works(server: ServerProcess) -> None:
    """node's socket.io-client connects over each transport and gets its ack."""
    node = await start_node(SIO_CLIENT, server.url)
    async with node:
        await node.next_event({"ev": "ready"})
        for transport in ("websocket", "polling"):
            await node.send({"op": "connect", "name": transport, "nsp": "/dyn-1",
                             "transports": [transport]})
            event = await node.next_event({"name": transport}, timeout=10)
            assert event["ev"] == "connect", event
            await node.send({"op": "emit", "name": transport, "event": "echo",
                             "args": ["hi", {"$bin": base64.b64encode(b"\x00\x01").decode()}],
                             "ack": True, "tag": transport})
            ack = await node.next_event({"ev": "ack", "tag": transport}, timeout=10)
            assert ack["args"] == ["hi", {"$bin": "AAE="}], ack
            await node.send({"op": "disconnect", "name": transport})


def assert_clean_log(server: ServerProcess) -> None:
    log = server.log_text()
    bad = [line for line in log.splitlines()
           if "Traceback" in line or " ERROR " in line or " CRITICAL " in line
           or "restarting" in line or "died" in line]
    assert not bad, "the server logged:\n" + "\n".join(bad[:20]) + "\n--- log tail ---\n" + \
        "\n".join(log.splitlines()[-40:])


async def assert_healthy(server: ServerProcess) -> None:
    assert server.returncode is None, "the server exited"
    await wait_until_idle(server)
    await official_client_works(server)
    await wait_until_idle(server)
    assert_clean_log(server)


# --- memory: what one client can make a worker hold ----------------------------------------------

#: A refused packet costs its decoding: Python objects for the JSON of up to max_payload bytes
#: (a placeholder object costs ~10x its ~30 bytes of text), plus the bytes received and the
#: interpreter's free lists. Measured ~15 MB for 1 MB of placeholders; the bound leaves room.
PACKET_BOUND = 40 * MAX_PAYLOAD


async def test_one_attachment_named_many_times_is_refused(server: ServerProcess) -> None:
    """A 900 KB attachment named by 33,000 placeholders (a 1.9 MB packet) decoded to data
    worth 29 GB for an echo: each attachment must now be named exactly once."""
    attachment = random.Random(SEED).randbytes(900_000)
    header = '451-1["echo",[' + placeholders(33_000) + "]]"
    assert len(header) < MAX_PAYLOAD
    async with MemoryWatch(server) as watch:
        raw = await RawSocket.open(server)
        await raw.ws.send("40")
        connected = await raw.next()
        assert isinstance(connected, str) and connected.startswith("40{"), connected
        await raw.ws.send(header)
        with contextlib.suppress(ConnectionClosed):
            await raw.ws.send(attachment)
        await raw.closed_by_server()  # as for any packet that breaks the protocol
    assert watch.growth < PACKET_BOUND, f"peak RSS grew by {watch.growth >> 20} MiB"
    await assert_healthy(server)


async def test_one_attachment_named_many_times_over_polling(server: ServerProcess) -> None:
    attachment = random.Random(SEED).randbytes(250_000)
    body = ('451-1["echo",' + placeholders(20_000) + "]\x1eb"
            + base64.b64encode(attachment).decode())
    assert len(body) < MAX_PAYLOAD
    async with MemoryWatch(server) as watch, aiohttp.ClientSession() as http:
        async with http.get(polling_url(server)) as response:
            sid = json.loads((await response.text())[1:])["sid"]
        async with http.post(polling_url(server, sid), data="40") as response:
            assert response.status == 200
        async with http.get(polling_url(server, sid)) as response:
            assert (await response.text()).startswith("40{")
        async with http.post(polling_url(server, sid), data=body) as response:
            assert response.status == 200
        async with asyncio.timeout(scaled(10)):
            while True:  # until the close (pings may come first)
                async with http.get(polling_url(server, sid)) as response:
                    packets = (await response.read()).split(b"\x1e")
                    if packets[-1] == b"1":
                        break
    assert watch.growth < PACKET_BOUND, f"peak RSS grew by {watch.growth >> 20} MiB"
    await assert_healthy(server)


#: 50 clients in 100 dynamic namespaces each: 5,000 sockets and namespaces at once, ~6 KB
#: each (measured ~30 MB above the baseline). Each round uses new names: a worker that kept
#: the empty namespaces grew by ~5 MB per round (measured), one that removes them by < 1 MB
#: over five rounds.
CLIENTS = 50
NAMESPACES_PER_CLIENT = 100  # Config.max_namespaces_per_client
ROUNDS = 6
ROUND_BOUND = 64 * MiB
LEAK_BOUND = 8 * MiB


async def one_round(server: ServerProcess, first: int) -> None:
    async def client(index: int) -> None:
        raw = await RawSocket.open(server)
        base = first + index * NAMESPACES_PER_CLIENT
        names = [f"/dyn-{base + n}" for n in range(NAMESPACES_PER_CLIENT)]
        for name in names:
            await raw.ws.send(f"40{name},")
        for _ in names:
            answer = await raw.next()
            assert isinstance(answer, str) and answer.startswith("40/dyn-"), answer
        await raw.aclose()

    await asyncio.gather(*[client(index) for index in range(CLIENTS)])
    await wait_until_idle(server)  # every namespace removed with its last socket


async def test_dynamic_namespaces_do_not_accumulate(server: ServerProcess) -> None:
    """5,000 clients joining 5,000 names of a dynamic namespace left 5,001 namespaces behind:
    now an empty child namespace is removed, and the memory of a round is given back."""
    per_round = CLIENTS * NAMESPACES_PER_CLIENT
    async with MemoryWatch(server) as first:
        await one_round(server, 0)
    assert first.growth < ROUND_BOUND, f"peak RSS grew by {first.growth >> 20} MiB"
    async with MemoryWatch(server) as rest:
        for round_ in range(1, ROUNDS):
            await one_round(server, round_ * per_round)
    # later rounds reuse what the first one freed: a worker keeping namespaces would not
    assert rest.growth < LEAK_BOUND, f"peak RSS grew by {rest.growth >> 20} MiB more"
    await assert_healthy(server)
