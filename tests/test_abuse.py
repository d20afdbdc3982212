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
import re
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Self

import aiohttp
import pytest
import pytest_asyncio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from tests.support import REPO_ROOT, ServerProcess, health_of_each_worker, scaled, start_node

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
        yield srv


def worker_pids(server: ServerProcess) -> list[int]:
    """The processes that serve clients: the server itself, or its workers."""
    if server.workers == 1:
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


async def wait_until_idle(server: ServerProcess, timeout: float = 20) -> None:
    """Every worker at zero sessions and zero dynamic namespaces (abandoned sessions end by
    their ping timeout, 1 + 5 s in the fuzz app, or its 1 s close timeout)."""
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
#: each (measured: 15-27 MB above the baseline, whatever the round). Each round uses new names.
CLIENTS = 50
NAMESPACES_PER_CLIENT = 100  # Config.max_namespaces_per_client
ROUNDS = 8
ROUND_BOUND = 64 * MiB
#: A worker that kept the empty namespaces was left ~5 MB larger by each round (measured,
#: one worker: 60, 65, 70, 73, 79, 83 MB after rounds 1-6); one that removes them stays
#: within ~1 MB of where the first round left it.
LEAK_BOUND = 12 * MiB


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
    now an empty child namespace is removed (the health answer counts them: back to zero
    after every round), and what a round costs is given back.

    The RSS a round leaves behind is compared on one worker only: with two, the kernel spreads
    each round's connections differently, and a worker that gets more of them than before
    grows without keeping anything."""
    per_round = CLIENTS * NAMESPACES_PER_CLIENT
    pids = worker_pids(server)
    async with MemoryWatch(server) as watch:
        await one_round(server, 0)
        after_first = {pid: memory_kib(pid, "VmRSS") * 1024 for pid in pids}
        for round_ in range(1, ROUNDS):
            await one_round(server, round_ * per_round)
        left = max(memory_kib(pid, "VmRSS") * 1024 - after_first[pid] for pid in pids)
    assert watch.growth < ROUND_BOUND, f"peak RSS grew by {watch.growth >> 20} MiB"
    if len(pids) == 1:
        assert left < LEAK_BOUND, f"{ROUNDS - 1} more rounds left {left >> 20} MiB behind"
    await assert_healthy(server)


# --- fuzzing -------------------------------------------------------------------------------------

#: cases per configuration, and how many run at once
CASES = 2400
CONCURRENCY = 24
#: a request the server has all of is answered within this (a long-poll within the 1 s ping
#: interval; a truncated one with 408 after the 3 s request timeout); scaled
ANSWER_WITHIN = 8.0

EVENTS = ["echo", "echo_sync", "shout", "join", "ask", "gather", "connect", "disconnect",
          "message", "x", ""]
NAMESPACES = ["", "/", "/admin", "/dyn-1", "/dyn-77", "/m-a", "/m-", "/nope", "/dyn-x",
              "/" + "n" * 300, "/a,b", "admin"]


class Fuzz:
    """Seeded generators of hostile input; one case = one connection or request sequence."""

    def __init__(self, server: ServerProcess, seed: int) -> None:
        self.server = server
        self.rng = random.Random(seed)
        self.failures: list[str] = []
        self.live_sids: list[str] = []  # sids of sessions some case opened

    # -- values ---------------------------------------------------------------------------------

    def json_text(self, depth: int = 0) -> str:
        """Mostly valid JSON: deep, huge, odd; now and then not JSON at all."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.03:
            return rng.choice(["NaN", "Infinity", "-Infinity", "1e400", "01", "[1,]", "{", "]",
                               '"\\ud800"', '"\\u12"', "tru", "'x'", "\x00", ""])
        if roll < 0.06:
            return "1" * rng.choice([20, 400, 4300, 4301, 20_000])  # Python caps int digits
        if roll < 0.09:
            # around 970 the recursion limit ends decoding, or a handler sending it back
            depth_ = rng.choice([50, 99, 100, 101, 2000, 100_000, rng.randrange(950, 990)])
            return "[" * depth_ + "]" * depth_
        if roll < 0.12:
            num = rng.choice([0, 1, 2, -1, 10**9, True, None, "0"])
            return json.dumps({"_placeholder": True, "num": num})
        if depth < 4 and roll < 0.4:
            items = [self.json_text(depth + 1) for _ in range(rng.randrange(4))]
            if rng.random() < 0.5:
                return "[" + ",".join(items) + "]"
            keys = [json.dumps(self.text(8)) for _ in items]
            return "{" + ",".join(f"{k}:{v}" for k, v in zip(keys, items, strict=True)) + "}"
        return json.dumps(rng.choice([
            None, True, False, 0, -1, 2**53, 2**64, -(2**63), 1.5, 1e308, -0.0, 5e-324,
            self.text(20), self.text(2000), "\u2028", "😀",
        ]), ensure_ascii=rng.random() < 0.5)

    def text(self, size: int) -> str:
        rng = self.rng
        alphabet = rng.choice(["abc", "\x00\x1e\x7f", "é✓😀", "[]{}\",:\\", "0123456789-/"])
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(size + 1)))

    def mutate(self, text: str) -> str:
        rng = self.rng
        if not text or rng.random() < 0.6:
            return text
        at = rng.randrange(len(text) + 1)
        how = rng.randrange(4)
        if how == 0:
            return text[:at]  # truncated
        if how == 1:
            return text[:at] + rng.choice("0123456789-,/[]{}\"\x1eb") + text[at:]
        if how == 2:
            return text[:at] + text[at + 1:]
        return text[:at] + text[at:] * 2

    # -- packets --------------------------------------------------------------------------------

    def sio_packet(self) -> tuple[str, list[bytes]]:
        """A Socket.IO packet (text) and the attachments to send after it."""
        rng = self.rng
        ptype = rng.choice("0012222333456667")
        header = ptype
        attachments: list[bytes] = []
        if ptype in "56":
            count = rng.choice([1, 1, 2, 3, 0, 11, 10**10])
            header += f"{count}-"
            attachments = [rng.randbytes(rng.choice([0, 1, 100, 70_000]))
                           for _ in range(min(count, 3) if rng.random() < 0.8 else 1)]
        nsp = rng.choice(NAMESPACES)
        if nsp:
            header += nsp + ","
        if rng.random() < 0.4:
            header += rng.choice(["1", "0", str(rng.randrange(2**53)), "9" * 20, "-1"])
        if ptype == "0":
            payload = rng.choice(["", "{}", '{"token":"s3cret"}', self.json_text()])
        elif ptype in "25":
            event = json.dumps(rng.choice(EVENTS))
            args = [self.json_text() for _ in range(rng.randrange(3))]
            if ptype == "5":
                args += [json.dumps({"_placeholder": True, "num": rng.choice([0, 0, 1, 2, 5])})
                         for _ in range(rng.choice([1, 1, 2, 3, 1000]))]
            payload = "[" + ",".join([event, *args]) + "]"
        elif ptype in "36":
            payload = "[" + ",".join(self.json_text() for _ in range(rng.randrange(3))) + "]"
        else:
            payload = rng.choice(["", self.json_text()])
        return self.mutate(header + payload), attachments

    def eio_messages(self) -> list[str | bytes]:
        """Engine.IO packets for one websocket message each, or one polling payload."""
        rng = self.rng
        out: list[str | bytes] = []
        for _ in range(rng.randrange(1, 5)):
            roll = rng.random()
            if roll < 0.7:
                text, attachments = self.sio_packet()
                out.append("4" + text)
                out.extend(attachments)
            elif roll < 0.8:
                out.append(rng.randbytes(rng.randrange(40)))
            else:
                out.append(rng.choice(["2", "3", "2probe", "5", "6", "1", "0", "7", "", "4",
                                       "9", "b", "3probe", self.text(30)]))
        return out

    def payload(self, messages: list[str | bytes]) -> bytes:
        rng = self.rng
        parts = []
        for message in messages:
            if isinstance(message, bytes):
                encoded = base64.b64encode(message).decode()
                parts.append("b" + (encoded if rng.random() < 0.9 else encoded[:-1] + "*"))
            else:
                parts.append(message)
        body = "\x1e".join(parts).encode("utf-8", "surrogatepass")
        if rng.random() < 0.05:
            body += rng.choice([b"\xff\xfe", b"\xc3", b"\x1e"])
        return body

    # -- cases ----------------------------------------------------------------------------------

    def fail(self, case: str, what: str) -> None:
        self.failures.append(f"{case}: {what}")

    async def run(self, count: int) -> None:
        cases = [self.websocket_case, self.polling_case, self.http_case, self.frames_case]
        weights = [35, 30, 25, 10]
        plan = [(index, self.rng.choices(cases, weights)[0]) for index in range(count)]
        queue = iter(plan)

        async def worker() -> None:
            for index, case in queue:
                name = f"case {index} ({case.__name__}, seed {SEED})"
                try:
                    async with asyncio.timeout(scaled(ANSWER_WITHIN * 2)):
                        await case(name)
                except TimeoutError:
                    self.fail(name, "no end in time (a hang)")
                except (OSError, ConnectionClosed, InvalidHandshake, aiohttp.ClientError):
                    pass  # the server closed on us: an answer too

        await asyncio.gather(*[worker() for _ in range(CONCURRENCY)])

    async def websocket_case(self, name: str) -> None:
        rng = self.rng
        sid = rng.choice([None, None, None, *self.live_sids[-5:]])
        async with connect(ws_url(self.server, sid), max_size=None, compression=None,
                           open_timeout=scaled(ANSWER_WITHIN)) as ws:
            if sid is not None:
                await ws.send(rng.choice(["2probe", "5", "4x", "2probe"]))
            elif rng.random() < 0.7:
                await ws.send("40" + rng.choice(["", "/dyn-3,", "/admin,", '{"x":1}']))
            for message in self.eio_messages():
                await ws.send(message)
            if rng.random() < 0.5:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.2):
                        async for _ in ws:
                            pass
            if rng.random() < 0.3:  # abandoned: no close frame, the TCP connection just goes
                ws.transport.abort()

    async def polling_case(self, name: str) -> None:
        rng = self.rng
        connector = aiohttp.TCPConnector(force_close=True)  # any request may land on any worker
        timeout = aiohttp.ClientTimeout(total=scaled(ANSWER_WITHIN))
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            async with http.get(polling_url(self.server)) as response:
                text = await response.text()
            sid = json.loads(text[1:])["sid"]
            self.live_sids.append(sid)
            if rng.random() < 0.2:
                sid = rng.choice([sid + "x", sid.split(".")[0], "", "." + sid.split(".")[1],
                                  sid.split(".")[0] + ".000000-w9-0000", self.text(40)])
            for _ in range(rng.randrange(1, 4)):
                roll = rng.random()
                if roll < 0.6:
                    body = self.payload(self.eio_messages())
                    if rng.random() < 0.1:
                        body = rng.randbytes(rng.choice([0, 10, 1000]))
                    headers = {"Content-Type": rng.choice(["text/plain;charset=UTF-8",
                                                           "application/octet-stream", "x/y"])}
                    async with http.post(polling_url(self.server, sid), data=body,
                                         headers=headers) as response:
                        await self.check_status(name, "POST", response)
                elif roll < 0.9:
                    async with http.get(polling_url(self.server, sid)) as response:
                        await self.check_status(name, "GET", response)
                else:  # two GETs at once: the second is a protocol error
                    await asyncio.gather(*[self.get(http, name, sid) for _ in range(2)])

    async def get(self, http: aiohttp.ClientSession, name: str, sid: str) -> None:
        async with http.get(polling_url(self.server, sid)) as response:
            await self.check_status(name, "GET", response)

    async def check_status(self, name: str, what: str, response: aiohttp.ClientResponse) -> None:
        body = await response.read()
        if response.status >= 500:
            self.fail(name, f"{what} answered {response.status} {body[:200]!r}")

    def http_request(self) -> tuple[bytes, bool]:
        """A raw request, and whether all of it is sent (else the body is cut short)."""
        rng = self.rng
        method = rng.choice(["GET", "GET", "POST", "POST", "OPTIONS", "PUT", "DELETE", "HEAD",
                             "PATCH", "TRACE", "FOO", "get", "G\x00T"])
        path = rng.choice(["/socket.io/", "/socket.io/", "/socket.io", "/", "/_sio_core/health",
                           "/socket.io/socket.io.js", "/socket.io/x", "//socket.io/", "*",
                           "/" + self.text(50)])
        params = {"EIO": rng.choice(["4", "4", "3", "5", "", "x", "4\x00"]),
                  "transport": rng.choice(["polling", "websocket", "flashsocket", ""]),
                  "sid": rng.choice([None, *self.live_sids[-3:], "x" * 2000, "%zz", "a.b"]),
                  "b64": rng.choice([None, "1", "true"]), "t": rng.choice([None, "x"])}
        query = "&".join(f"{k}={v}" for k, v in params.items()
                         if v is not None and rng.random() < 0.9)
        if rng.random() < 0.05:
            query += "&" + "a=1&" * rng.choice([10, 3000])
        target = path + ("?" + query if query else "")
        body = self.payload(self.eio_messages()) if method == "POST" else b""
        if method == "POST" and rng.random() < 0.03:
            body = rng.randbytes(1_100_000)  # past max_payload: 413
        headers = [f"Host: {self.server.host}:{self.server.port}"]
        if rng.random() < 0.3:
            headers.append("Content-Type: " + rng.choice(["text/plain", "application/json",
                                                          "application/octet-stream"]))
        if rng.random() < 0.2:
            headers.append(rng.choice(["Connection: close", "Connection: keep-alive",
                                       "Connection: Upgrade", "Upgrade: websocket",
                                       "Origin: http://evil.example", "Expect: 100-continue"]))
        if rng.random() < 0.05:
            headers += [f"X-{n}: {'v' * rng.choice([1, 100])}"
                        for n in range(rng.choice([50, 150]))]
        if rng.random() < 0.03:
            headers.append("X-Long: " + "v" * 20_000)
        complete = True
        length_roll = rng.random()
        if body or method == "POST":
            if length_roll < 0.7:
                headers.append(f"Content-Length: {len(body)}")
            elif length_roll < 0.8:
                headers.append(f"Content-Length: {len(body) + rng.randrange(1, 100)}")
                complete = False
            elif length_roll < 0.85:
                headers.append(rng.choice(["Content-Length: -1", "Content-Length: x",
                                           "Content-Length: 99999999999999999999"]))
            elif length_roll < 0.95:
                headers.append("Transfer-Encoding: chunked")
                body = (f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
                        if rng.random() < 0.8 else b"zz\r\n" + body)
        version = rng.choice(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1 x"])
        head = f"{method} {target} {version}\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n"
        raw = head.encode("utf-8", "surrogatepass") + body
        if rng.random() < 0.05:  # cut anywhere
            raw = raw[: rng.randrange(len(raw) + 1)]
            complete = False
        return raw, complete

    async def http_case(self, name: str) -> None:
        raw, complete = self.http_request()
        reader, writer = await asyncio.open_connection(self.server.host, self.server.port)
        try:
            writer.write(raw)
            await writer.drain()
            try:
                async with asyncio.timeout(scaled(ANSWER_WITHIN)):
                    status_line = await reader.readline()
            except TimeoutError:
                if complete:
                    self.fail(name, f"no answer to {raw[:120]!r}")
                return
            match = re.match(rb"HTTP/1\.[01] (\d{3}) ", status_line)
            if status_line and match is None:
                self.fail(name, f"not an HTTP answer: {status_line[:100]!r}")
            elif match is not None and int(match[1]) >= 500:
                self.fail(name, f"{status_line.strip()!r} to {raw[:200]!r}")
        finally:
            writer.transport.abort()

    def ws_frame(self) -> bytes:
        """One WebSocket frame from a client, often broken (RFC 6455 section 5.2)."""
        rng = self.rng
        payload = rng.choice([b"40", b"42[\"echo\",1]", b"\xff\xfe", rng.randbytes(30),
                              b"4" + self.sio_packet()[0].encode("utf-8", "surrogatepass")])
        opcode = rng.choice([1, 1, 2, 0, 8, 9, 10, 3, 11, 15])
        first = (0x80 if rng.random() < 0.9 else 0) | (rng.choice([0, 0, 0, 1, 4]) << 4) | opcode
        masked = rng.random() < 0.9
        length = len(payload)
        mask_bit = 0x80 if masked else 0
        if length < 126:
            header = bytes([first, mask_bit | length])
        elif length < 65536:
            header = bytes([first, mask_bit | 126]) + length.to_bytes(2, "big")
        else:
            header = bytes([first, mask_bit | 127]) + length.to_bytes(8, "big")
        if rng.random() < 0.05:  # a length it will never send
            header = bytes([first, 0xFF]) + (2**63 - 1).to_bytes(8, "big")
        if not masked:
            return header + payload
        key = rng.randbytes(4)
        return header + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))

    async def frames_case(self, name: str) -> None:
        rng = self.rng
        reader, writer = await asyncio.open_connection(self.server.host, self.server.port)
        try:
            key = base64.b64encode(rng.randbytes(16)).decode()
            writer.write((f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                          f"Host: {self.server.host}\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                          f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
            async with asyncio.timeout(scaled(ANSWER_WITHIN)):
                status_line = await reader.readline()
            if not status_line.startswith(b"HTTP/1.1 101"):
                self.fail(name, f"upgrade answered {status_line!r}")
                return
            if rng.random() < 0.3:
                writer.write(rng.randbytes(rng.randrange(1, 2000)))
            else:
                writer.write(b"".join(self.ws_frame() for _ in range(rng.randrange(1, 6))))
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.2):
                    while await reader.read(65536):
                        pass
        finally:
            writer.transport.abort()


async def test_fuzz(server: ServerProcess) -> None:
    fuzz = Fuzz(server, SEED + server.workers)
    await fuzz.run(CASES)
    assert not fuzz.failures, f"{len(fuzz.failures)} failures:\n" + "\n".join(fuzz.failures[:20])
    await assert_healthy(server)
