"""Request order of one session: requests that enter through one worker are handled by the
session's owner in the order that worker received them.

The requests are written by hand on raw TCP connections, back to back with no waiting
between them (a GET on one connection, a POST or a WebSocket frame on another right after),
and each sequence has one right answer when the order is kept:

- GET, then POST ``1`` (the client's close): the GET was pending, so it is answered ``6``
  (reference: a client close ends the pending poll with a noop); the POST ``ok``. Were the
  POST handled first, the GET would find no session (400).
- After the upgrade probe: GET, then ``5`` on the websocket: the GET is answered ``6`` at
  once (every poll ends at once once probed); were the ``5`` handled first, the GET would be
  polling after the upgrade (400). And ``5`` then GET: the GET is that 400.

Each sequence is repeated many times on one worker, on ``serve --workers 4`` with every
request entering through one worker that does not own the session (forwarded to the owner
through the master hub), and on two nodes sharing a redis-server behind the round-robin proxy
(forwarded through Redis). With SO_REUSEPORT (or the proxy) a client cannot choose its worker,
but a keep-alive connection stays on the one it landed on: ``GET /_sio_core/health`` on it
names that worker (``owner``), so the tests open connections until they hold the ones they
need.

Also here: a second WebSocket for a session that already has one (upgraded, upgrading, or
opened on one) is accepted and closed at once with an empty close frame, the first one
untouched: the reference's answer, on one worker and when that WebSocket lands on another
worker than the owner. And, in-process, a GET whose connection is lost before the HTTP
layer's task for it runs is withdrawn (the session closes, as for any dropped poll).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from sio_core.echo import EchoApp
from sio_core.engine.server import EngineServer
from sio_core.http.connection import HTTPConnection
from tests.engine_harness import HandTransport
from tests.proxy import RoundRobinProxy
from tests.support import ServerProcess, scaled
from tests.test_http_errors import WS_HEADERS, Answer, RawConnection, http_request
from tests.test_redis import start_node_server

# one event loop for the module: its servers are started once, for every test
pytestmark = pytest.mark.asyncio(loop_scope="module")

#: the Engine.IO echo application: the order is an Engine.IO matter
APP = "sio_core.echo:app"

PATH = "/socket.io/"
HEALTH = "/_sio_core/health"
#: how many times each back-to-back sequence is repeated per configuration
REPEATS = 100
#: connections opened, at most, to find one that landed on a given worker
MAX_TRIES = 200

GOT_NOOP = (200, b"6")
POSTED = (200, b"ok")
BAD_REQUEST = (400, b'{"code":3,"message":"Bad request"}')


def polling(sid: str | None = None) -> str:
    target = f"{PATH}?EIO=4&transport=polling"
    return target if sid is None else f"{target}&sid={sid}"



# --- where the requests enter --------------------------------------------------------------------
@dataclass(frozen=True)
class Front:
    """Where clients connect: a server's port, or the proxy in front of several nodes."""

    host: str
    port: int

    async def connect(self) -> tuple[RawConnection, str]:
        """A keep-alive connection, and the worker (``owner``) it landed on."""
        reader, writer = await asyncio.open_connection(self.host, self.port)
        conn = RawConnection(reader, writer)
        answer = await conn.request("GET", HEALTH)
        assert answer.status == 200, answer
        return conn, str(answer.json()["owner"])

    async def connect_to(self, wanted: Callable[[str], bool]) -> tuple[RawConnection, str]:
        """A connection on a worker that ``wanted(owner)``: opened until one lands there."""
        for _ in range(MAX_TRIES):
            conn, landed = await self.connect()
            if wanted(landed):
                return conn, landed
            await conn.close()
        raise AssertionError(f"no connection landed on a wanted worker in {MAX_TRIES} tries")

    async def connect_on(self, worker: str) -> RawConnection:
        conn, _ = await self.connect_to(lambda landed: landed == worker)
        return conn


class RawWebSocket:
    """The client side of an accepted WebSocket on a RawConnection: masked frames out (with a
    zero key), the server's unmasked frames in."""

    def __init__(self, conn: RawConnection) -> None:
        self.conn = conn

    @staticmethod
    def frame(text: str, opcode: int = 0x1) -> bytes:
        data = text.encode()
        assert len(data) < 126
        return bytes([0x80 | opcode, 0x80 | len(data)]) + b"\0\0\0\0" + data

    async def send(self, text: str) -> None:
        await self.conn.send(self.frame(text))

    async def receive(self, timeout: float = 5.0) -> tuple[int, bytes]:
        """(opcode, payload) of the next frame."""
        reader = self.conn.reader
        async with asyncio.timeout(scaled(timeout)):
            first, second = await reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack(">H", await reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack(">Q", await reader.readexactly(8))
            return first & 0x0F, await reader.readexactly(length)

    async def probe(self) -> None:
        """The upgrade's probe, answered."""
        await self.send("2probe")
        assert await self.receive() == (TEXT, b"3probe")

    async def echoes(self, text: str) -> None:
        """The session is alive on this websocket: the echo app sends a message back."""
        await self.send(text)
        assert await self.receive() == (TEXT, text.encode())

    async def closed_at_once(self) -> None:
        """The server closes it: a close frame with no status code (as the reference's
        ``websocket.close()``) and, once the client answers it (the closing handshake of
        RFC 6455 section 7.1.1), the end of the connection."""
        assert await self.receive() == (CLOSE, b"")
        await self.conn.send(self.frame("", CLOSE))
        assert await self.conn.closed_by_server()

    async def close(self) -> None:
        await self.conn.close()


TEXT, CLOSE = 0x1, 0x8


@dataclass
class Entries:
    """The connections of one configuration. ``owner`` makes the handshakes, so its worker
    owns the sessions; ``get`` and ``post`` are on the ``entry`` worker, through which every
    other request of a session enters: the owner itself on one worker, another worker (which
    forwards to the owner) in a cluster."""

    front: Front
    owner_name: str
    owner: RawConnection
    entry: str
    get: RawConnection
    post: RawConnection

    async def handshake(self) -> str:
        answer = await self.owner.request("GET", polling())
        assert answer.status == 200 and answer.body.startswith(b"0"), answer
        sid: str = json.loads(answer.body[1:])["sid"]
        assert sid.endswith("." + self.owner_name), sid
        return sid

    async def websocket(self, sid: str | None, worker: str | None = None) -> RawWebSocket:
        """A WebSocket (an upgrade of ``sid``, or a new session) opened on ``worker`` (by
        default the entry worker)."""
        conn = await self.front.connect_on(worker or self.entry)
        target = f"{PATH}?EIO=4&transport=websocket" + (f"&sid={sid}" if sid else "")
        answer = await conn.request("GET", target, headers=WS_HEADERS)
        assert answer.status == 101, answer
        return RawWebSocket(conn)

    async def probed(self, sid: str) -> RawWebSocket:
        """A websocket that has begun the upgrade of ``sid``."""
        ws = await self.websocket(sid)
        try:
            await ws.probe()
        except BaseException:
            await ws.close()
            raise
        return ws

    async def barrier(self) -> None:
        """Return once the entry worker has polled its connections since the last answer
        it wrote. Needed before back-to-back requests on two connections that follow an
        answer on one of them (the probe's): with level-triggered epoll a connection just
        reported stays first in the kernel's ready list until the worker's next poll, so a
        client quick enough to write on it and on another one before that poll has the
        worker read them in the other order, whatever the server does. A request on a
        third connection of the entry worker, answered, is that next poll."""
        answer = await self.post.request("GET", HEALTH)
        assert answer.status == 200, answer

    async def aclose(self) -> None:
        for conn in (self.owner, self.get, self.post):
            await conn.close()


@contextlib.asynccontextmanager
async def open_entries(front: Front, *, forwarded: bool) -> AsyncIterator[Entries]:
    """With ``forwarded``, the entry worker is another than the owner."""
    owner, owner_name = await front.connect()
    get, entry = await front.connect_to(
        lambda landed: (landed != owner_name) if forwarded else (landed == owner_name))
    found = Entries(front, owner_name, owner, entry, get, await front.connect_on(entry))
    try:
        yield found
    finally:
        await found.aclose()


async def back_to_back(first: tuple[bytes, RawConnection], second: tuple[bytes, RawConnection],
                       *answers: Awaitable[Answer]) -> list[tuple[int, bytes]]:
    """Write two requests (bytes, connection) with nothing between them, then collect the
    answers."""
    for data, conn in (first, second):
        conn.writer.write(data)
    results = await asyncio.gather(*answers)
    return [(answer.status, answer.body) for answer in results]


# --- the sequences -------------------------------------------------------------------------------


async def get_then_close(entries: Entries) -> None:
    """GET, then POST "1": the pending GET is ended with a noop."""
    get, post = entries.get, entries.post
    for attempt in range(REPEATS):
        sid = await entries.handshake()
        got, posted = await back_to_back(
            (http_request("GET", polling(sid)), get),
            (http_request("POST", polling(sid), b"1"), post),
            get.answer(), post.answer())
        assert (got, posted) == (GOT_NOOP, POSTED), (attempt, got, posted)


async def get_and_upgrade(entries: Entries, *, get_first: bool) -> None:
    """After the probe, a GET and "5" on the websocket: GET first, it is answered with a
    noop (once probed, every poll ends at once); "5" first, the GET is polling after the
    upgrade: 400."""
    for attempt in range(REPEATS):
        sid = await entries.handshake()
        ws = await entries.probed(sid)
        try:
            await entries.barrier()
            get = (http_request("GET", polling(sid)), entries.get)
            upgrade = (ws.frame("5"), ws.conn)
            (got,) = await back_to_back(*((get, upgrade) if get_first else (upgrade, get)),
                                        entries.get.answer())
            assert got == (GOT_NOOP if get_first else BAD_REQUEST), (attempt, got)
            await ws.echoes("4upgraded")
        finally:
            await ws.close()


SEQUENCES: dict[str, Callable[[Entries], Awaitable[None]]] = {
    "get_then_close": get_then_close,
    "get_then_upgrade": functools.partial(get_and_upgrade, get_first=True),
    "upgrade_then_get": functools.partial(get_and_upgrade, get_first=False),
}


async def second_websocket_is_closed(entries: Entries) -> None:
    """A second websocket for a session that has one: accepted, then closed at once (the
    reference's answer); the first one carries the session on."""
    async with contextlib.AsyncExitStack() as stack:

        async def opened(sid: str | None, worker: str | None = None) -> RawWebSocket:
            ws = await entries.websocket(sid, worker)
            stack.push_async_callback(ws.close)
            return ws

        # upgraded
        sid = await entries.handshake()
        first = await opened(sid)
        await first.probe()
        await first.send("5")
        await (await opened(sid)).closed_at_once()
        await first.echoes("4upgraded")
        # still upgrading (probed, no "5" yet): the upgrade goes on on the first
        sid = await entries.handshake()
        first = await opened(sid)
        await first.probe()
        await (await opened(sid)).closed_at_once()
        await first.send("5")
        await first.echoes("4upgraded")
        # a session that began on websocket (stricter than the reference, which would let the
        # second websocket take the session over by an upgrade)
        first = await opened(None, entries.owner_name)
        opcode, open_packet = await first.receive()
        assert opcode == TEXT and open_packet.startswith(b"0{"), open_packet
        sid = json.loads(open_packet[1:])["sid"]
        await (await opened(sid)).closed_at_once()
        await first.echoes("4native")


# --- the configurations --------------------------------------------------------------------------
@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def one_worker(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    log_path = tmp_path_factory.mktemp("one") / "server.log"
    async with ServerProcess(APP, log_path=log_path) as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def four_workers(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    log_path = tmp_path_factory.mktemp("four") / "server.log"
    async with ServerProcess(APP, "--workers", "4", log_path=log_path,
                             stop_timeout=15) as server:
        await server.wait_for_log(r"\[master\] INFO sio_core\.supervisor: 4 workers ready",
                                  timeout=30)
        yield server


@dataclass(frozen=True)
class RedisNodes:
    proxy: RoundRobinProxy
    nodes: tuple[ServerProcess, ServerProcess]


@pytest_asyncio.fixture(loop_scope="module")
async def two_redis_nodes(redis_url: str, redis_prefix: str,
                          tmp_path: Path) -> AsyncIterator[RedisNodes]:
    """Two nodes of one worker each, sharing a private redis-server, behind the proxy (one
    pair per test: the redis fixtures are the test's own)."""
    args = (APP, "--store", redis_url, "--store-key", redis_prefix, "--shutdown-timeout", "5")
    async with contextlib.AsyncExitStack() as stack:
        nodes = []
        for name in "AB":
            node = await start_node_server(*args, workers=1, name=name,
                                           log_path=tmp_path / f"{name}.log")
            stack.push_async_callback(node.stop)
            nodes.append(node)
        proxy = await stack.enter_async_context(
            RoundRobinProxy([(node.host, node.port) for node in nodes]))
        yield RedisNodes(proxy, (nodes[0], nodes[1]))


def assert_clean_log(*servers: ServerProcess) -> None:
    for server in servers:
        assert "Traceback" not in server.log_text(), server.log_text()


# --- one worker ----------------------------------------------------------------------------------
@pytest.mark.parametrize("sequence", SEQUENCES)
async def test_back_to_back_requests_on_one_worker(one_worker: ServerProcess,
                                                   sequence: str) -> None:
    async with open_entries(Front(one_worker.host, one_worker.port), forwarded=False) as found:
        await SEQUENCES[sequence](found)
    assert_clean_log(one_worker)


async def test_second_websocket_is_closed_on_one_worker(one_worker: ServerProcess) -> None:
    async with open_entries(Front(one_worker.host, one_worker.port), forwarded=False) as found:
        await second_websocket_is_closed(found)
    assert_clean_log(one_worker)


async def test_a_get_taken_in_is_withdrawn_when_its_connection_is_lost_at_once() -> None:
    """In-process, with the connection driven by hand: a GET is pending as soon as the
    HTTP layer hands it over (not a loop turn later, in its task); and if its connection is
    lost before that task even starts, the GET is withdrawn as one whose connection went
    away while it waited: the session closes (reference: "poll connection closed
    prematurely"), rather than keep a GET that nobody will read."""
    server = EngineServer(EchoApp())

    def connection() -> tuple[HTTPConnection, HandTransport]:
        conn = HTTPConnection(server.handle, server.config)
        transport = HandTransport()
        conn.connection_made(transport)
        return conn, transport

    conn, transport = connection()
    conn.data_received(http_request("GET", polling()))
    sid = json.loads(transport.written.partition(b"\r\n\r\n")[2][1:])["sid"]
    socket = server.sockets[sid]
    conn, _ = connection()
    conn.data_received(http_request("GET", polling(sid)))
    assert socket.core.poll_pending
    conn.connection_lost(None)
    async with asyncio.timeout(scaled(5)):
        while sid in server.sockets:
            await asyncio.sleep(0)
    assert socket.core.close_reason is not None
    assert socket.core.close_reason.value == "transport error"


# --- four workers: forwarded through the master hub ----------------------------------------------
@pytest.mark.parametrize("sequence", SEQUENCES)
async def test_back_to_back_requests_through_another_worker(four_workers: ServerProcess,
                                                            sequence: str) -> None:
    async with open_entries(Front(four_workers.host, four_workers.port),
                            forwarded=True) as found:
        await SEQUENCES[sequence](found)
    assert_clean_log(four_workers)


async def test_second_websocket_through_another_worker_is_closed(
        four_workers: ServerProcess) -> None:
    async with open_entries(Front(four_workers.host, four_workers.port),
                            forwarded=True) as found:
        await second_websocket_is_closed(found)
    assert_clean_log(four_workers)


# --- two nodes: forwarded through Redis ----------------------------------------------------------
@pytest.mark.redis
@pytest.mark.parametrize("sequence", SEQUENCES)
async def test_back_to_back_requests_through_another_node(two_redis_nodes: RedisNodes,
                                                          sequence: str) -> None:
    proxy = two_redis_nodes.proxy
    async with open_entries(Front(proxy.host, proxy.port), forwarded=True) as found:
        await SEQUENCES[sequence](found)
    assert_clean_log(*two_redis_nodes.nodes)


@pytest.mark.redis
async def test_second_websocket_through_another_node_is_closed(
        two_redis_nodes: RedisNodes) -> None:
    proxy = two_redis_nodes.proxy
    async with open_entries(Front(proxy.host, proxy.port), forwarded=True) as found:
        await second_websocket_is_closed(found)
    assert_clean_log(*two_redis_nodes.nodes)
