"""Unit tests of sio_core.http.connection: its helpers, and HTTPConnection in-process over
loopback sockets with a handler of the test's own, where the test must see the server's side
(its write buffer, its connections). The whole server is driven over real sockets in
test_http_errors.py, test_http_exchanges.py and the interop tests."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Self
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sio_core.config import Config
from sio_core.http import connection
from sio_core.http.connection import Handler, HTTPConnection
from sio_core.http.messages import Deferred, Request, Response, parse_query
from tests.support import scaled


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", {}),
        (b"EIO=4&transport=polling&t=PZx1&sid=abc.def-w1-00",
         {"EIO": "4", "transport": "polling", "t": "PZx1", "sid": "abc.def-w1-00"}),
        (b"a&b=&&c=1=2", {"a": "", "b": "", "c": "1=2"}),
        (b"x=1&x=2", {"x": "2"}),  # the last one wins, as dict(parse_qsl(...))
        (b"name=a%20b+c", {"name": "a b c"}),  # escapes: parse_qsl's path
    ],
)
def test_parse_query(raw: bytes, expected: dict[str, str]) -> None:
    assert parse_query(raw) == expected


@given(st.text(alphabet="ab=&%+;2 \x00\xe9", max_size=40))
def test_parse_query_is_parse_qsl(text: str) -> None:
    raw = text.encode("latin-1")
    try:
        expected = dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))
    except ValueError:
        expected = {}
    assert parse_query(raw) == expected


# --- HTTPConnection in-process, over loopback sockets -------------------------------------------


def test_header_names_are_decoded_once_and_their_table_is_bounded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A name's lower-case string is made once and shared (thousands of idle connections
    keep their handshake's headers); made-up names cannot grow the table past its bound."""
    name = connection._header_name(b"X-Shared-Name")
    assert name == "x-shared-name"
    assert connection._NAMES[b"X-Shared-Name"] is name
    assert connection._header_name(b"x-shared-NAME") is name  # another spelling: the same
    monkeypatch.setattr(connection, "_MAX_NAMES", len(connection._NAMES))
    assert connection._header_name(b"X-Made-Up") == "x-made-up"
    assert b"X-Made-Up" not in connection._NAMES

class Served:
    """``HTTPConnection``s with ``handler`` on a free loopback port; ``connections`` holds the
    live ones (each leaves it in connection_lost), and ``until_closed`` awaits the last one's
    connection_lost."""

    def __init__(self, handler: Handler, config: Config,
                 protocol: Callable[[Served], asyncio.Protocol] | None = None) -> None:
        self.handler = handler
        self.config = config
        self.protocol = protocol or TrackedConnection
        self.connections: set[HTTPConnection] = set()
        self.server: asyncio.Server | None = None
        self.port = 0
        self.all_closed = asyncio.Event()

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: self.protocol(self), "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.server is not None
        self.server.close()
        for conn in list(self.connections):
            conn.close()
        await self.server.wait_closed()

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)

    async def until_closed(self, timeout: float = 5.0) -> None:
        """Until the server has no connection left."""
        await asyncio.wait_for(self.all_closed.wait(), scaled(timeout))


class TrackedConnection(asyncio.Protocol):
    """An HTTPConnection that tells its Served when the last connection is lost. (Around one,
    not a subclass: the mypyc build's HTTPConnection takes none.)"""

    def __init__(self, served: Served) -> None:
        self.conn = HTTPConnection(served.handler, served.config, connections=served.connections)
        self.served = served
        self.connection_made = self.conn.connection_made  # type: ignore[method-assign]
        self.data_received = self.conn.data_received  # type: ignore[method-assign]
        self.eof_received = self.conn.eof_received  # type: ignore[method-assign]
        self.pause_writing = self.conn.pause_writing  # type: ignore[method-assign]
        self.resume_writing = self.conn.resume_writing  # type: ignore[method-assign]

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.connection_lost(exc)
        if not self.served.connections:
            self.served.all_closed.set()


class FedWhileHandling(TrackedConnection):
    """Whose reads are handed on while an exception is being handled (as from an except
    block of the code around a protocol)."""

    def __init__(self, served: Served) -> None:
        super().__init__(served)
        feed = self.conn.data_received

        def data_received(data: bytes) -> None:
            try:
                raise LookupError("being handled")
            except LookupError:
                feed(data)
        self.data_received = data_received  # type: ignore[method-assign]


async def read_answer(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    match = re.search(rb"Content-Length: (\d+)", head)
    assert match is not None, head
    return head, await reader.readexactly(int(match.group(1)))


async def barrier(served: Served) -> None:
    """Once a request on a new connection is answered, the server has processed what reached
    it before on the others (it reads its connections in order)."""
    reader, writer = await served.connect()
    writer.write(b"GET /barrier HTTP/1.1\r\nHost: x\r\n\r\n")
    await read_answer(reader)
    writer.close()


async def test_pipelined_answers_wait_while_the_write_buffer_is_full() -> None:
    """A thousand pipelined requests, read by the server before the client reads any answer
    (20 KB each, 20 MB in all): no answer is made while the transport's write buffer is over
    its high-water mark, so that buffer never holds more than the mark plus one answer; and
    the client gets every answer, in order."""
    size, count = 20_000, 1000
    buffered: list[int] = []
    limits: list[tuple[int, int]] = []

    def handler(request: Request, conn: HTTPConnection) -> Response:
        assert conn.transport is not None
        buffered.append(conn.transport.get_write_buffer_size())
        limits.append(conn.transport.get_write_buffer_limits())
        return Response(200, [], request.path.encode().ljust(size, b"."))

    async with Served(handler, Config()) as served:
        reader, writer = await served.connect()
        writer.write(b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(count)))
        await writer.drain()
        await barrier(served)  # the server has read the pipelined requests
        for index in range(count):
            _, body = await read_answer(reader)
            assert body.startswith(b"/%d." % index), (index, body[:20])
        writer.close()
    high_water = limits[0][1]
    assert max(buffered) <= high_water, (max(buffered), high_water)


async def test_lingering_close_ends_at_lingering_timeout() -> None:
    """After a 413 the server shuts its side (the client reads the answer, then EOF) but keeps
    reading what the client still sends, until lingering_timeout: then it closes."""
    config = Config(max_payload=1000, lingering_timeout=scaled(0.5), lingering_bytes=None)
    async with Served(lambda request, conn: Response(200), config) as served:
        reader, writer = await served.connect()
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n"
                     + b"x" * 5000)
        head, _ = await read_answer(reader)
        assert head.startswith(b"HTTP/1.1 413 ") and b"Connection: close" in head, head
        assert await reader.read() == b""  # our side is shut...
        assert served.connections  # ...but the connection is not closed yet: it lingers
        writer.write(b"x" * 5000)  # still read (and thrown away), no reset
        await writer.drain()
        await served.until_closed()
        writer.close()


async def test_lingering_close_ends_at_lingering_bytes() -> None:
    """A client that goes on sending after its 413 is cut off once lingering_bytes are read."""
    config = Config(max_payload=1000, lingering_timeout=60, lingering_bytes=100_000)
    async with Served(lambda request, conn: Response(200), config) as served:
        reader, writer = await served.connect()
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n")
        head, _ = await read_answer(reader)
        assert head.startswith(b"HTTP/1.1 413 "), head
        sent = 0
        with pytest.raises(OSError):  # the reset, once the server stops reading
            while sent < 100_000_000:
                writer.write(b"x" * 65536)
                await writer.drain()
                sent += 65536
        await served.until_closed()
        writer.close()


class Waiting:
    """A handler whose answers wait until ``release``; it notes the ones cancelled."""

    def __init__(self) -> None:
        self.released = asyncio.Event()
        self.cancelled: list[str] = []

    def __call__(self, request: Request, conn: HTTPConnection) -> Response | Awaitable[Response]:
        if request.path == "/barrier":
            return Response(200)
        return self.answer(request)

    async def answer(self, request: Request) -> Response:
        try:
            await self.released.wait()
        except asyncio.CancelledError:
            self.cancelled.append(request.path)
            raise
        return Response(200, [], b"answer to " + request.path.encode())


async def test_a_post_is_answered_after_the_clients_eof() -> None:
    """The client shuts its side after a POST whose answer waits: it still gets the answer
    (as from Node's http server), then the server closes."""
    handler = Waiting()
    async with Served(handler, Config()) as served:
        reader, writer = await served.connect()
        writer.write(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n40")
        writer.write_eof()
        await barrier(served)
        handler.released.set()
        _, body = await read_answer(reader)
        assert body == b"answer to /p"
        assert await reader.read() == b""
        await served.until_closed()
        writer.close()
    assert handler.cancelled == []


class Later:
    """A handler whose answers to ``/later...`` are Deferreds, given by the test; it notes
    the ones cancelled."""

    def __init__(self) -> None:
        self.waiting: list[Deferred[Response]] = []
        self.cancelled: list[str] = []

    def __call__(self, request: Request, conn: HTTPConnection) -> Response | Deferred[Response]:
        if not request.path.startswith("/later"):
            return Response(200, [], b"to " + request.path.encode())
        deferred: Deferred[Response] = Deferred(
            lambda _: self.cancelled.append(request.path))
        self.waiting.append(deferred)
        return deferred


async def test_a_deferred_answer_is_written_when_given_then_the_ones_behind_it() -> None:
    handler = Later()
    async with Served(handler, Config()) as served:
        reader, writer = await served.connect()
        writer.write(b"GET /later HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
        await barrier(served)
        assert len(handler.waiting) == 1  # /b waits behind it, not handled yet
        handler.waiting[0].set_result(Response(200, [], b"given"))
        expected = ok(b"given") + ok(b"to /b")
        async with asyncio.timeout(scaled(5)):
            assert await reader.readexactly(len(expected)) == expected
        writer.close()
    assert handler.cancelled == []


async def test_a_connection_idle_after_a_deferred_answer_is_closed() -> None:
    """The keep-alive timeout runs from a long-poll's answer, as from any other."""
    handler = Later()
    config = Config(keepalive_timeout=scaled(0.1))
    async with Served(handler, config) as served:
        reader, writer = await served.connect()
        writer.write(b"GET /later HTTP/1.1\r\n\r\n")
        await barrier(served)
        handler.waiting[0].set_result(Response(200, [], b"given"))
        async with asyncio.timeout(scaled(5)):
            assert await reader.read() == ok(b"given")  # then the close
        writer.close()
        await served.until_closed()


async def test_a_future_answer_is_written_from_its_callback() -> None:
    """A Future (a request forwarded to another worker) is answered with no task: its
    result, or a 500 for its exception, then the requests behind it."""
    futures: list[asyncio.Future[Response]] = []
    arrived = asyncio.Event()

    def handler(request: Request, conn: HTTPConnection) -> Response | Awaitable[Response]:
        if request.path == "/barrier" or request.path == "/b":
            return Response(200, [], b"to " + request.path.encode())
        futures.append(asyncio.get_running_loop().create_future())
        arrived.set()
        return futures[-1]

    async with Served(handler, Config()) as served:
        reader, writer = await served.connect()
        writer.write(b"GET /f1 HTTP/1.1\r\n\r\nGET /f2 HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
        await barrier(served)
        arrived.clear()  # /f2 is handled once /f1 is answered
        futures[0].set_result(Response(200, [], b"forwarded"))
        async with asyncio.timeout(scaled(5)):
            expected = ok(b"forwarded")
            assert await reader.readexactly(len(expected)) == expected
            await arrived.wait()
            futures[1].set_exception(RuntimeError("the owner's bug"))
            expected = ERROR_500 + ok(b"to /b")
            assert await reader.readexactly(len(expected)) == expected
        writer.close()


@pytest.mark.parametrize("handler_kind", [Waiting, Later])
async def test_a_waiting_get_is_given_up_at_the_clients_eof(
        handler_kind: type[Waiting] | type[Later]) -> None:
    """A GET whose answer waits (a long-poll), by a task or a Deferred, is cancelled when its
    client's EOF comes: the client is most likely gone, and the session must learn it."""
    handler = handler_kind()
    async with Served(handler, Config()) as served:
        reader, writer = await served.connect()
        writer.write(b"GET /later-g HTTP/1.1\r\nHost: x\r\n\r\n")
        writer.write_eof()
        assert await reader.read() == b""
        await served.until_closed()
        writer.close()
    assert handler.cancelled == ["/later-g"]
    if isinstance(handler, Later):
        handler.waiting[0].set_result(Response(200))  # too late: nothing happens


# --- exchanges byte for byte --------------------------------------------------------------------


def answering(request: Request, conn: HTTPConnection) -> Response | Awaitable[Response]:
    """``/raise`` raises, ``/later-raise`` fails later; the others are answered with their
    path (``/later...`` a loop turn later)."""
    if request.path == "/raise":
        raise RuntimeError("a handler's bug")
    if request.path.startswith("/later"):
        return answer_later(request)
    return Response(200, [], b"to " + request.path.encode() + b" " + request.body)


async def answer_later(request: Request) -> Response:
    await asyncio.sleep(0)
    if request.path == "/later-raise":
        raise RuntimeError("a handler's bug")
    return Response(200, [], b"to " + request.path.encode())


def ok(body: bytes, *headers: bytes, close: bool = False) -> bytes:
    """A 200 as written: its headers, Content-Length, Connection: close if it closes."""
    head = [b"HTTP/1.1 200 OK", *headers, b"Content-Length: %d" % len(body)]
    if close:
        head.append(b"Connection: close")
    return b"\r\n".join(head) + b"\r\n\r\n" + body


ERROR_500 = (b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain; charset=UTF-8\r\n"
             b"Content-Length: 21\r\n\r\nInternal Server Error")
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

#: (name, what the client writes at once, what it reads; then whether the server closes)
EXCHANGES = [
    ("keep-alive", b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
     ok(b"to /a ") + ok(b"to /b "), False),
    ("a handler that raises: 500, and the connection goes on",
     b"GET /raise HTTP/1.1\r\n\r\nGET /later-raise HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n",
     ERROR_500 + ERROR_500 + ok(b"to /c "), False),
    ("HTTP/1.0 keep-alive is answered so",
     b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
     ok(b"to /a ", b"Connection: keep-alive", b"Keep-Alive: timeout=5"), False),
    ("HTTP/1.0 closes", b"GET /a HTTP/1.0\r\n\r\n", ok(b"to /a ", close=True), True),
    ("nothing after Connection: close is answered",
     b"GET /a HTTP/1.1\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
     ok(b"to /a ", close=True), True),
    ("a body over max_payload, announced", b"POST /p HTTP/1.1\r\nContent-Length: 101\r\n\r\n",
     b"HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
     True),
    ("a body over max_payload, chunked", b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"65\r\n" + b"x" * 101 + b"\r\n0\r\n\r\n",
     b"HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
     True),
    ("an expectation other than 100-continue",
     b"POST /p HTTP/1.1\r\nExpect: the-moon\r\nContent-Length: 1\r\n\r\nx",
     b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", True),
    ("an HTTP/1.0 expectation is ignored",
     b"POST /p HTTP/1.0\r\nExpect: the-moon\r\nContent-Length: 1\r\n\r\nx",
     ok(b"to /p x", close=True), True),
    ("100-continue", b"POST /p HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
     CONTINUE, False),
    ("100-continue behind a request that is answered later",
     b"GET /later HTTP/1.1\r\n\r\nPOST /p HTTP/1.1\r\nExpect: 100-continue\r\n"
     b"Content-Length: 1\r\n\r\n", ok(b"to /later") + CONTINUE, False),
    ("not HTTP", b"\x16\x03\x01\x00", b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
     b"Connection: close\r\n\r\n", True),
]


@pytest.mark.parametrize(("name", "sent", "expected", "closes"), EXCHANGES,
                         ids=[row[0] for row in EXCHANGES])
async def test_exchanges(name: str, sent: bytes, expected: bytes, closes: bool) -> None:
    async with Served(answering, Config(max_payload=100)) as served:
        reader, writer = await served.connect()
        writer.write(sent)
        async with asyncio.timeout(scaled(5)):
            if closes:
                assert await reader.read() == expected
            else:
                assert await reader.readexactly(len(expected)) == expected
        writer.close()


@pytest.mark.parametrize(("sent", "status"), [
    (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 3 + b"\r\n", b"431"),
    (b"GET /" + b"a" * 40 + b" HTTP/1.1\r\n\r\n", b"414"),
    (b"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", b"413"),
])
async def test_a_refusal_is_answered_while_an_exception_is_handled(sent: bytes,
                                                                   status: bytes) -> None:
    """A parser callback's refusal keeps its status though another exception is being
    handled as the bytes are fed: httptools reports the callback's exception as the
    ``__context__`` of its own, which Python then sets to the one being handled (the
    compiled build's full run answered a header flood 400 so)."""
    config = Config(max_payload=100, max_header_count=2, max_request_line=32)
    async with Served(answering, config, FedWhileHandling) as served:
        reader, writer = await served.connect()
        writer.write(sent)
        async with asyncio.timeout(scaled(5)):
            answer = await reader.read()
        assert answer.startswith(b"HTTP/1.1 " + status + b" "), answer
        writer.close()


async def test_a_100_continue_then_the_body() -> None:
    async with Served(answering, Config()) as served:
        reader, writer = await served.connect()
        writer.write(b"POST /p HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        assert await reader.readexactly(len(CONTINUE)) == CONTINUE
        writer.write(b"body")
        expected = ok(b"to /p body")
        assert await reader.readexactly(len(expected)) == expected
        writer.close()


async def test_a_slow_request_head_is_answered_408() -> None:
    async with Served(answering, Config(request_timeout=scaled(0.1))) as served:
        reader, writer = await served.connect()
        writer.write(b"GET /slow HTTP/1.1\r\nHost:")
        async with asyncio.timeout(scaled(5)):
            assert await reader.read() == (b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0"
                                           b"\r\nConnection: close\r\n\r\n")
        writer.close()
        await served.until_closed()


async def test_an_idle_keep_alive_connection_is_closed() -> None:
    config = Config(keepalive_timeout=scaled(0.1), request_timeout=scaled(0.05))
    async with Served(answering, config) as served:
        reader, writer = await served.connect()
        writer.write(b"GET /a HTTP/1.1\r\n\r\n")
        async with asyncio.timeout(scaled(5)):
            assert await reader.read() == ok(b"to /a ")  # then the close, no 408
        writer.close()
        await served.until_closed()
