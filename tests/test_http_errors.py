"""Bad HTTP requests against a running server, and the exact answer each one gets.

The requests are written by hand on raw TCP connections (asyncio streams), byte for byte, so
nothing normalises them on the way: missing or bad Engine.IO query fields, unknown sids, wrong
methods, garbage packets, oversize bodies, header floods, slow heads, CORS preflights and static
path traversal. Engine.IO errors answer 400 with ``{"code": N, "message": ...}`` (the reference
server's codes); the limits answer with the HTTP status for them (413, 414, 431, 408).

After the bad requests, the server must still work: a fresh handshake succeeds and the log
holds no traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, Self

import aiohttp
import pytest

from sio_core.config import Config
from sio_core.echo import EchoApp
from sio_core.engine.server import EngineServer
from tests.conftest import ServerFactory
from tests.support import ServerProcess, scaled

APP = "sio_core.echo:app"
PATH = "/socket.io/"
MAX_PAYLOAD = 1000
ORIGIN = "http://example.com"
#: every test server: a small --max-payload, CORS for one origin, the demo page as static files
SERVER_ARGS = (APP, "--max-payload", str(MAX_PAYLOAD), "--cors-origin", ORIGIN,
               "--static", "sio_core/demo/static",
               # a failed test may leave a polling session behind: do not wait long for it
               "--shutdown-timeout", "2")

#: The request timeout has no command-line flag: this app is an EngineServer with a Config of
#: its own, which ``serve`` starts from (``serve tests.test_http_errors:QUICK_TIMEOUT_APP``).
REQUEST_TIMEOUT = 0.5

QUICK_TIMEOUT_APP = EngineServer(EchoApp(), Config(request_timeout=scaled(REQUEST_TIMEOUT)))


# --- a raw HTTP/1.1 client -----------------------------------------------------------------------


def http_request(method: str, target: str, body: bytes = b"",
                 headers: Mapping[str, str] | None = None) -> bytes:
    """One request as bytes: Host always, Content-Length when there is a body or a method
    that carries one."""
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
    lines.extend(f"{name}: {value}" for name, value in (headers or {}).items())
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class Endpoint(Protocol):
    """Where a server listens (a ServerProcess, or the reference server)."""

    host: str
    port: int


class RawConnection:
    """One TCP connection to the server; requests go out exactly as given. Answers are read
    by Content-Length (the server under test always sends one), by chunks, or up to the
    server's close, as the reference server sends them."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, server: Endpoint) -> Self:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self, timeout: float = 5.0) -> Answer:
        async with asyncio.timeout(scaled(timeout)):
            status_line = await self.reader.readline()
            if not status_line:
                raise ConnectionError("closed by the server before an answer")
            status = int(status_line.split()[1])
            headers: dict[str, str] = {}
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await self._body(status, headers)
        return Answer(status, headers, body)

    async def _body(self, status: int, headers: dict[str, str]) -> bytes:
        if status < 200:  # an interim answer (100 Continue) has none
            return b""
        if "content-length" in headers:
            return await self.reader.readexactly(int(headers["content-length"]))
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while size := int((await self.reader.readline()).split(b";")[0], 16):
                chunks.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)  # CRLF
            await self.reader.readline()  # the (empty) trailer section
            return b"".join(chunks)
        return await self.reader.read()  # delimited by the close (an HTTP/1.0 answer)

    async def request(self, method: str, target: str, body: bytes = b"",
                      headers: Mapping[str, str] | None = None, timeout: float = 5.0) -> Answer:
        await self.send(http_request(method, target, body, headers))
        return await self.answer(timeout)

    async def closed_by_server(self, timeout: float = 5.0) -> bool:
        """Whether the server ends the connection (EOF, or a reset) within ``timeout``, with
        nothing more sent."""
        try:
            async with asyncio.timeout(scaled(timeout)):
                rest = await self.reader.read()
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        assert rest == b"", rest
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def request(server: Endpoint, method: str, target: str, body: bytes = b"",
                  headers: Mapping[str, str] | None = None, timeout: float = 5.0) -> Answer:
    """One request on a connection of its own."""
    async with await RawConnection.open(server) as conn:
        return await conn.request(method, target, body, headers, timeout)


def polling(sid: str | None = None, eio: str = "4") -> str:
    target = f"{PATH}?EIO={eio}&transport=polling"
    return target if sid is None else f"{target}&sid={sid}"


async def handshake(server: Endpoint) -> str:
    answer = await request(server, "GET", polling())
    assert answer.status == 200 and answer.body.startswith(b"0"), answer
    sid: str = json.loads(answer.body[1:])["sid"]
    return sid


async def close_session(server: ServerProcess, sid: str) -> None:
    """The client's "1": the session ends at once (a server stopping would otherwise wait
    for the polling client to collect its close)."""
    answer = await request(server, "POST", polling(sid), b"1")
    assert (answer.status, answer.body) == (200, b"ok"), answer


async def assert_unknown(server: ServerProcess, sid: str) -> None:
    answer = await request(server, "GET", polling(sid))
    assert (answer.status, answer.json()) == (400, ERR_SID), answer


async def assert_healthy(server: ServerProcess) -> None:
    """A fresh session works end to end, and nothing so far made the server log a traceback."""
    sid = await handshake(server)
    answer = await request(server, "POST", polling(sid), b"4still fine")
    assert (answer.status, answer.body) == (200, b"ok"), answer
    assert (await request(server, "GET", polling(sid))).body == b"4still fine"
    await close_session(server, sid)
    assert "Traceback" not in server.log_text()


ERR_TRANSPORT = {"code": 0, "message": "Transport unknown"}
ERR_SID = {"code": 1, "message": "Session ID unknown"}
ERR_METHOD = {"code": 2, "message": "Bad handshake method"}
ERR_BAD = {"code": 3, "message": "Bad request"}
ERR_VERSION = {"code": 5, "message": "Unsupported protocol version"}


# --- the table -----------------------------------------------------------------------------------

WS_HEADERS = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


@dataclass(frozen=True)
class Case:
    """A request and the answer it must get. In ``target``, ``{sid}`` is a live polling
    session's sid, ``{owner}`` the owner part of sids this server makes."""

    name: str
    method: str = "GET"
    target: str = PATH
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    #: the whole request as bytes instead (method/target/body/headers unused)
    raw: bytes | None = None
    status: int = 400
    #: the JSON body, if it is one
    json: dict[str, Any] | None = None
    #: headers the answer must carry (name lower-case -> value)
    answer_headers: Mapping[str, str] = field(default_factory=dict)
    #: headers the answer must not carry with this value (None: not at all)
    not_answer_headers: Mapping[str, str | None] = field(default_factory=dict)
    #: True: the server closes the connection after answering; False: it stays open
    closes: bool = False


TRAVERSALS = [
    "/../app.py",  # sio_core/demo/app.py exists, one level above its static/
    "/../../pyproject.toml",
    "/../../etc/passwd",
    "/../../../../../../../../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/%2e%2e/app.py",
    "/%2E%2E/%2E%2E/pyproject.toml",
    "/..%2f..%2fpyproject.toml",
    "/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/index.html/../../app.py",
    "/.%2e/app.py",
    "//etc/passwd",
    "/%2fetc%2fpasswd",
    "/..%5c..%5cpyproject.toml",
    "/%00../app.py",
]

CASES = [
    # -- protocol version, checked after transport, sid and method (the reference's order)
    Case("no EIO", target=f"{PATH}?transport=polling", json=ERR_VERSION),
    Case("EIO=3", target=polling(eio="3"), json=ERR_VERSION),
    Case("EIO=5", target=polling(eio="5"), json=ERR_VERSION),
    Case("EIO empty", target=polling(eio=""), json=ERR_VERSION),
    Case("EIO=3, unknown transport", target=f"{PATH}?EIO=3&transport=flash",
         json=ERR_TRANSPORT),
    Case("EIO=3, POST without sid", method="POST", target=polling(eio="3"), body=b"4x",
         json=ERR_METHOD),
    Case("EIO=3, unknown sid", target=polling("nope", eio="3"), json=ERR_SID),
    # -- transport
    Case("no query at all", target=PATH, json=ERR_TRANSPORT),
    Case("no transport", target=f"{PATH}?EIO=4", json=ERR_TRANSPORT),
    Case("empty transport", target=f"{PATH}?EIO=4&transport=", json=ERR_TRANSPORT),
    Case("unknown transport", target=f"{PATH}?EIO=4&transport=flashsocket",
         json=ERR_TRANSPORT),
    Case("webtransport (not offered)", target=f"{PATH}?EIO=4&transport=webtransport",
         json=ERR_TRANSPORT),
    Case("transport in upper case", target=f"{PATH}?EIO=4&transport=POLLING",
         json=ERR_TRANSPORT),
    # -- sid
    Case("unknown sid", target=polling("nope"), json=ERR_SID),
    Case("forged sid of our format", target=polling("AAAAAAAAAAAAAAAA.{owner}"),
         json=ERR_SID),
    Case("forged sid, other owner", target=polling("AAAAAAAAAAAAAAAA.elsewhere-w9"),
         json=ERR_SID),
    Case("live sid with a suffix", target=polling("{sid}x"), json=ERR_SID),
    Case("very long sid", target=polling("A" * 4000), json=ERR_SID),
    Case("POST to an unknown sid", method="POST", target=polling("nope"), body=b"4x",
         json=ERR_SID),
    # -- handshake method
    Case("POST without sid", method="POST", target=polling(), body=b"4hello",
         json=ERR_METHOD),
    Case("PUT without sid", method="PUT", target=polling(), body=b"4hello", json=ERR_METHOD),
    Case("DELETE without sid", method="DELETE", target=polling(), json=ERR_METHOD),
    # -- websocket transport without an upgrade
    Case("websocket without Upgrade", target=f"{PATH}?EIO=4&transport=websocket",
         json=ERR_BAD),
    Case("websocket without Upgrade, live sid",
         target=f"{PATH}?EIO=4&transport=websocket&sid={{sid}}", json=ERR_BAD),
    # -- websocket upgrades the server refuses: 400, and the connection is not kept
    Case("websocket upgrade, EIO=3", target=f"{PATH}?EIO=3&transport=websocket",
         headers=WS_HEADERS, closes=True),
    Case("websocket upgrade, unknown sid", target=f"{PATH}?EIO=4&transport=websocket&sid=nope",
         headers=WS_HEADERS, closes=True),
    Case("websocket upgrade without a key", target=f"{PATH}?EIO=4&transport=websocket",
         headers={k: v for k, v in WS_HEADERS.items() if k != "Sec-WebSocket-Key"},
         closes=True),
    # -- CORS
    Case("preflight from the allowed origin", method="OPTIONS", target=polling(),
         headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
         status=204, answer_headers={"access-control-allow-origin": ORIGIN}),
    Case("preflight from another origin", method="OPTIONS", target=polling(),
         headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
         status=204,
         not_answer_headers={"access-control-allow-origin": "http://evil.example"}),
    Case("an error still carries CORS headers", target=f"{PATH}?EIO=4",
         headers={"Origin": ORIGIN}, json=ERR_TRANSPORT,
         answer_headers={"access-control-allow-origin": ORIGIN}),
    # -- HTTP limits: answered, then the connection is closed
    Case("header flood (500 fields)", raw=http_request(
        "GET", polling(), headers={f"X-Flood-{i}": "x" for i in range(500)}),
        status=431, closes=True),
    Case("one huge header (20 KiB)", raw=http_request(
        "GET", polling(), headers={"X-Huge": "x" * 20_000}), status=431, closes=True),
    Case("request line over 8 KiB", raw=http_request(
        "GET", polling() + "&pad=" + "x" * 9000), status=414, closes=True),
    Case("not HTTP at all", raw=b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 64,
         status=400, closes=True),
    Case("bad request line", raw=b"GET  HTTP/1.1\r\n\r\n", status=400, closes=True),
    # -- static files: never anything outside sio_core/demo/static
    *[Case(f"traversal {target}", target=target, status=404) for target in TRAVERSALS],
]


async def check_case(server: ServerProcess, case: Case, sid: str, owner: str) -> list[str]:
    """Send the case's request on a fresh connection; the list of what differs."""
    problems = []
    async with await RawConnection.open(server) as conn:
        if case.raw is not None:
            await conn.send(case.raw)
        else:
            target = case.target.replace("{sid}", sid).replace("{owner}", owner)
            await conn.send(http_request(case.method, target, case.body, case.headers))
        try:
            answer = await conn.answer()
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError) as exc:
            return [f"no answer: {exc!r}"]
        if answer.status != case.status:
            problems.append(
                f"status {answer.status}, expected {case.status} ({answer.text[:200]!r})"
            )
        if case.json is not None:
            try:
                body = answer.json()
            except ValueError:
                body = answer.text
            if body != case.json:
                problems.append(f"body {body!r}, expected {case.json!r}")
            if answer.headers.get("content-type") != "application/json":
                problems.append(f"content-type {answer.headers.get('content-type')!r}")
        if case.status == 404 and b"root:" in answer.body:
            problems.append("served /etc/passwd")
        for name, value in case.answer_headers.items():
            if answer.headers.get(name) != value:
                problems.append(f"header {name}: {answer.headers.get(name)!r}, expected {value!r}")
        for name, bad in case.not_answer_headers.items():
            got = answer.headers.get(name)
            if got is not None and (bad is None or got == bad):
                problems.append(f"header {name}: {got!r} should not be there")
        if case.closes:
            if not await conn.closed_by_server():
                problems.append("the connection stayed open")
        elif answer.headers.get("connection", "").lower() == "close":
            problems.append("the connection was closed (HTTP/1.1 keep-alive expected)")
    return problems


async def test_bad_requests_get_their_exact_answers(server_factory: ServerFactory) -> None:
    server = await server_factory(*SERVER_ARGS)
    sid = await handshake(server)
    owner = sid.partition(".")[2]
    # all at once: the server must also cope with them concurrently
    results = await asyncio.gather(*(check_case(server, case, sid, owner) for case in CASES))
    failures = [f"{case.name}: {'; '.join(problems)}"
                for case, problems in zip(CASES, results, strict=True) if problems]
    assert not failures, "\n".join(failures)
    # none of that hurt the live session, nor the server
    answer = await request(server, "POST", polling(sid), b"4alive")
    assert (answer.status, answer.body) == (200, b"ok"), answer
    assert (await request(server, "GET", polling(sid))).body == b"4alive"
    await close_session(server, sid)
    await assert_healthy(server)


async def test_static_files_are_served_from_the_static_directory(
    server_factory: ServerFactory,
) -> None:
    """The positive control of the traversal cases: static files are on."""
    server = await server_factory(*SERVER_ARGS)
    for target in ("/", "/index.html"):
        answer = await request(server, "GET", target)
        assert answer.status == 200, (target, answer)
        assert answer.headers["content-type"].startswith("text/html")
        assert b"<html" in answer.body.lower()


async def test_errors_keep_the_connection_alive(server_factory: ServerFactory) -> None:
    """Engine.IO errors are ordinary answers: on one keep-alive connection, pipelined bad
    requests are all answered, in order, and a handshake after them works."""
    server = await server_factory(*SERVER_ARGS)
    async with await RawConnection.open(server) as conn:
        await conn.send(
            http_request("GET", f"{PATH}?EIO=4")
            + http_request("GET", polling("nope"))
            + http_request("POST", polling(), b"4x")
            + http_request("GET", polling(eio="3"))
            + http_request("GET", polling())
        )
        answers = [await conn.answer() for _ in range(5)]
        assert [(a.status, a.json()) for a in answers[:4]] == [
            (400, ERR_TRANSPORT), (400, ERR_SID), (400, ERR_METHOD), (400, ERR_VERSION),
        ]  # fmt: skip
        assert answers[4].status == 200 and answers[4].body.startswith(b"0")
        sid = json.loads(answers[4].body[1:])["sid"]
        # the session works over the same connection too
        assert (await conn.request("POST", polling(sid), b"4same")).body == b"ok"
        assert (await conn.request("GET", polling(sid))).body == b"4same"
        assert (await conn.request("POST", polling(sid), b"1")).body == b"ok"
    await assert_healthy(server)


# --- errors that end a session -------------------------------------------------------------------


async def start_poll(server: ServerProcess, sid: str) -> tuple[RawConnection, asyncio.Task[Answer]]:
    """A GET that the server holds (nothing is queued), on a connection of its own.

    A request on another connection, answered after this one was sent, is the barrier that
    makes sure the server has taken the GET in: connections are accepted and read in order.
    """
    conn = await RawConnection.open(server)
    await conn.send(http_request("GET", polling(sid)))
    pending = asyncio.ensure_future(conn.answer())
    assert (await request(server, "GET", "/index.html")).status == 200
    assert not pending.done(), pending
    return conn, pending


async def test_second_pending_get_closes_the_session(server_factory: ServerFactory) -> None:
    server = await server_factory(*SERVER_ARGS)
    sid = await handshake(server)
    first_conn, first = await start_poll(server, sid)
    async with first_conn:
        second = await request(server, "GET", polling(sid))
        # reference: 400, the session closes, and the first GET is answered with "1"
        assert second.status == 400, second
        assert (await first).body == b"1"
    await assert_unknown(server, sid)
    await server.wait_for_log(rf"close {re.escape(sid)}: transport error")
    await assert_healthy(server)


@pytest.mark.parametrize(
    "body",
    # ("b" alone is no garbage: an empty binary message)
    [b"9abc", b"b!!!", b"", b"4ok\x1e9x", b"4ok\x1e", b"\xff\xfe", b"x", b"b!\x1e4ok"],
    ids=repr,
)
async def test_garbage_post_closes_the_session(server_factory: ServerFactory, body: bytes) -> None:
    server = await server_factory(*SERVER_ARGS)
    sid = await handshake(server)
    poll_conn, poll = await start_poll(server, sid)
    async with poll_conn:
        answer = await request(server, "POST", polling(sid), body)
        assert (answer.status, answer.json()) == (400, ERR_BAD), answer
        # the held GET learns that the session is over; nothing of the body was echoed
        assert (await poll).body == b"1"
    await assert_unknown(server, sid)
    await server.wait_for_log(rf"close {re.escape(sid)}: parse error")
    await assert_healthy(server)


async def test_oversize_post_is_refused(server_factory: ServerFactory) -> None:
    server = await server_factory(*SERVER_ARGS)
    sid = await handshake(server)
    exact = b"4" + b"x" * (MAX_PAYLOAD - 1)
    assert (await request(server, "POST", polling(sid), exact)).status == 200
    too_big = exact + b"x"
    assert (await request(server, "POST", polling(sid), too_big)).status == 413
    # the same without a Content-Length: a chunked body grows past the limit
    async with await RawConnection.open(server) as conn:
        head = (f"POST {polling(sid)} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Transfer-Encoding: chunked\r\n\r\n").encode()
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part)
                          for part in (too_big[:600], too_big[600:])) + b"0\r\n\r\n"
        await conn.send(head + chunks)
        assert (await conn.answer()).status == 413
    # the refusals did not end the session (as with the reference server): what fitted is
    # delivered, and the session goes on
    assert (await request(server, "POST", polling(sid), b"4after")).status == 200
    assert (await request(server, "GET", polling(sid))).body == exact + b"\x1e4after"
    await close_session(server, sid)
    await assert_healthy(server)


async def test_polling_after_the_upgrade_is_refused(server_factory: ServerFactory) -> None:
    server = await server_factory(*SERVER_ARGS)
    sid = await handshake(server)
    poll_conn, poll = await start_poll(server, sid)
    ws_url = f"{server.url}{PATH}?EIO=4&transport=websocket&sid={sid}"
    async with poll_conn, aiohttp.ClientSession() as http:
        async with http.ws_connect(ws_url) as ws:
            await ws.send_str("2probe")
            assert await ws.receive_str(timeout=scaled(5)) == "3probe"
            # the held GET is ended with a noop, so the client can pause polling
            assert (await poll).body == b"6"
            await ws.send_str("5")
            # reference: 400 code 3 for the old transport once the session has moved
            for method, body in (("GET", b""), ("POST", b"4x")):
                answer = await request(server, method, polling(sid), body)
                assert (answer.status, answer.json()) == (400, ERR_BAD), (method, answer)
            # a second websocket for the session is refused or closed at once
            try:
                async with http.ws_connect(ws_url) as second:
                    message = await second.receive(timeout=scaled(5))
                    assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            except aiohttp.WSServerHandshakeError as exc:
                assert exc.status == 400
            # the session lives on, over the websocket
            await ws.send_str("4over websocket")
            assert await ws.receive_str(timeout=scaled(5)) == "4over websocket"
        # the websocket closed: the session is over
        await server.wait_for_log(rf"close {re.escape(sid)}: transport close")
    await assert_unknown(server, sid)
    await assert_healthy(server)


# --- slow requests -------------------------------------------------------------------------------


async def test_slow_request_head_is_timed_out(server_factory: ServerFactory) -> None:
    server = await server_factory("tests.test_http_errors:QUICK_TIMEOUT_APP")
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with (
        await RawConnection.open(server) as partial_head,
        await RawConnection.open(server) as partial_body,
        await RawConnection.open(server) as silent,
    ):
        await partial_head.send(b"GET " + polling().encode() + b" HTTP/1.1\r\nHost: x\r\n")
        await partial_body.send(b"POST " + polling("nope").encode()
                                + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n4ab")
        # a request started and not finished in time: 408, then the connection is closed
        for conn in (partial_head, partial_body):
            assert (await conn.answer(timeout=5.0)).status == 408
            assert await conn.closed_by_server()
        # a connection that never sends anything is just closed
        assert await silent.closed_by_server()
        elapsed = loop.time() - start
    assert REQUEST_TIMEOUT * 0.8 <= elapsed <= scaled(REQUEST_TIMEOUT + 2.0), elapsed
    await assert_healthy(server)



async def test_post_right_behind_a_get_answers_that_get(server_factory: ServerFactory) -> None:
    """A GET and a POST written back to back on two open connections (so that the server
    reads both in one loop turn, GET first): the POST's echo answers that GET. A regression
    test: a GET taken in but not yet waiting must still receive what the POST queued."""
    server = await server_factory(*SERVER_ARGS)
    sid = await handshake(server)
    async with await RawConnection.open(server) as get_conn, \
            await RawConnection.open(server) as post_conn:
        for attempt in range(20):
            get_conn.writer.write(http_request("GET", polling(sid)))
            post_conn.writer.write(http_request("POST", polling(sid), f"4m{attempt}".encode()))
            await asyncio.gather(get_conn.writer.drain(), post_conn.writer.drain())
            posted, polled = await asyncio.gather(post_conn.answer(), get_conn.answer())
            assert (posted.status, posted.body) == (200, b"ok"), posted
            assert (polled.status, polled.body) == (200, f"4m{attempt}".encode()), polled
    await close_session(server, sid)
    await assert_healthy(server)
