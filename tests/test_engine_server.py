"""In-process tests of sio_core.engine.server: routing, handshakes, the errors of each
request, health, drain and close. An EngineServer runs in the test's own event loop on a
loopback port (tests/engine_harness.py); requests are literal bytes and so are the answers
compared with them."""

from __future__ import annotations

import asyncio
import json
import logging
import socket

import pytest

from sio_core.config import Config
from sio_core.protocol.session import CloseReason
from sio_core.stores.memory import MemoryStore
from tests.engine_harness import (
    CLOSE_1000,
    ERR_BAD,
    ERR_METHOD,
    ERR_SID,
    ERR_TRANSPORT,
    ERR_VERSION,
    OK,
    WS_HEADERS,
    Recorder,
    answer_bytes,
    error_bytes,
    open_packet,
    payload_bytes,
    polling,
    raw_answer,
    serving,
    text,
    websocket,
)
from tests.support import scaled
from tests.test_http_errors import CASES, check_case, http_request

UPGRADE = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n" \
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"

#: (name, request, answer): ``{sid}`` is a live polling session of owner w1
ROWS = [
    ("no query", b"GET /socket.io/ HTTP/1.1\r\n\r\n", error_bytes(ERR_TRANSPORT)),
    ("no transport", b"GET /socket.io/?EIO=4 HTTP/1.1\r\n\r\n", error_bytes(ERR_TRANSPORT)),
    ("unknown transport", b"GET /socket.io/?EIO=4&transport=flash HTTP/1.1\r\n\r\n",
     error_bytes(ERR_TRANSPORT)),
    ("the path without its slash", b"GET /socket.io?EIO=4 HTTP/1.1\r\n\r\n",
     error_bytes(ERR_TRANSPORT)),
    ("not a sid", b"GET /socket.io/?EIO=4&transport=polling&sid=nope HTTP/1.1\r\n\r\n",
     error_bytes(ERR_SID)),
    ("a sid of ours that is not live",
     b"GET /socket.io/?EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAA.w1 HTTP/1.1\r\n\r\n",
     error_bytes(ERR_SID)),
    ("another worker's sid, and no store to forward it",
     b"GET /socket.io/?EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAA.w2 HTTP/1.1\r\n\r\n",
     error_bytes(ERR_SID)),
    ("POST without sid",
     b"POST /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nContent-Length: 2\r\n\r\n4x",
     error_bytes(ERR_METHOD)),
    ("EIO=3", b"GET /socket.io/?EIO=3&transport=polling HTTP/1.1\r\n\r\n",
     error_bytes(ERR_VERSION)),
    ("no EIO", b"GET /socket.io/?transport=polling HTTP/1.1\r\n\r\n", error_bytes(ERR_VERSION)),
    ("websocket without an upgrade", b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n\r\n",
     error_bytes(ERR_BAD)),
    ("websocket without an upgrade, live sid",
     b"GET /socket.io/?EIO=4&transport=websocket&sid={sid} HTTP/1.1\r\n\r\n",
     error_bytes(ERR_BAD)),
    ("PUT, live sid", b"PUT /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\n"
     b"Content-Length: 0\r\n\r\n", error_bytes(ERR_BAD)),
    ("websocket upgrade, unknown sid: the connection is not kept",
     f"GET /socket.io/?EIO=4&transport=websocket&sid=nope HTTP/1.1\r\n{UPGRADE}\r\n".encode(),
     error_bytes(ERR_SID, close=True)),
    ("websocket upgrade, EIO=3",
     f"GET /socket.io/?EIO=3&transport=websocket HTTP/1.1\r\n{UPGRADE}\r\n".encode(),
     error_bytes(ERR_VERSION, close=True)),
    ("an upgrade elsewhere", f"GET /chat HTTP/1.1\r\n{UPGRADE}\r\n".encode(),
     answer_bytes("400 Bad Request", b"Bad Request", "text/plain; charset=UTF-8", close=True)),
    ("a path that is no file", b"GET /index.html HTTP/1.1\r\n\r\n",
     answer_bytes("404 Not Found", b"Not Found", "text/plain; charset=UTF-8")),
]


@pytest.mark.parametrize(("name", "request_bytes", "expected"), ROWS, ids=[r[0] for r in ROWS])
async def test_each_request_gets_its_exact_answer(name: str, request_bytes: bytes,
                                                  expected: bytes) -> None:
    async with serving() as engine:
        sid = await engine.handshake()
        answer = await engine.exchange(request_bytes.replace(b"{sid}", sid.encode()))
        assert answer == expected
        assert engine.recorder.closed == {}  # none of them touches the live session


async def test_the_http_errors_table_in_process() -> None:
    """tests/test_http_errors.py's table of bad requests, against an in-process server set
    up as its subprocess is (max_payload 1000, one CORS origin, the demo page)."""
    config = Config(max_payload=1000, cors_allowed_origins="http://example.com",
                    static_dir="sio_core/demo/static")
    async with serving(config) as engine:
        sid = await engine.handshake()
        # check_case needs an endpoint (host, port): the in-process server is one
        results = await asyncio.gather(*(check_case(engine, case, sid, "w1")  # type: ignore[arg-type]
                                         for case in CASES))
        failures = [f"{case.name}: {problems}" for case, problems in zip(CASES, results,
                                                                         strict=True) if problems]
        assert not failures, "\n".join(failures)


async def test_no_static_files_at_all() -> None:
    async with serving(Config(serve_client=False)) as engine:
        assert not engine.server.static
        assert await engine.exchange(b"GET /socket.io/socket.io.js HTTP/1.1\r\n\r\n") \
            == error_bytes(ERR_TRANSPORT)  # under the path, it is Engine.IO's
        assert await engine.exchange(b"GET /index.html HTTP/1.1\r\n\r\n") == answer_bytes(
            "404 Not Found", b"Not Found", "text/plain; charset=UTF-8")


async def test_polling_handshake() -> None:
    async with serving() as engine:
        answer = await engine.exchange(b"GET /socket.io/?EIO=4&transport=polling&t=Pq1 HTTP/1.1\r\n"
                                       b"Host: x\r\n\r\n")
        [sid] = engine.recorder.sockets
        assert answer == payload_bytes(open_packet(sid))
        assert sid.endswith(".w1") and len(sid) == 19
        socket = engine.recorder.sockets[sid]
        assert socket.transport.name == "polling"
        assert socket.request.query == {"EIO": "4", "transport": "polling", "t": "Pq1"}
        assert socket.request.headers == {"host": "x"}


async def test_an_empty_sid_is_a_handshake() -> None:
    async with serving() as engine:
        answer = await engine.exchange(
            b"GET /socket.io/?EIO=4&transport=polling&sid= HTTP/1.1\r\n\r\n")
        [sid] = engine.recorder.sockets
        assert answer == payload_bytes(open_packet(sid))


@pytest.mark.parametrize("config", [Config(allow_upgrades=False), Config(transports=("polling",))],
                         ids=["upgrades off", "polling only"])
async def test_no_upgrade_is_offered(config: Config) -> None:
    async with serving(config) as engine:
        answer = await engine.exchange(http_request("GET", polling()))
        [sid] = engine.recorder.sockets
        assert answer == payload_bytes(open_packet(sid, upgrades="[]"))


async def test_the_handshake_tells_the_configured_timings_in_milliseconds() -> None:
    config = Config(ping_interval=0.3, ping_timeout=1.25, max_payload=5000)
    async with serving(config) as engine:
        answer = await engine.exchange(http_request("GET", polling()))
        [sid] = engine.recorder.sockets
        assert answer == payload_bytes(
            open_packet(sid, ping_interval=300, ping_timeout=1250, max_payload=5000))


async def test_a_transport_not_offered_is_unknown() -> None:
    async with serving(Config(transports=("websocket",))) as engine:
        assert await engine.exchange(http_request("GET", polling())) \
            == error_bytes(ERR_TRANSPORT)
    async with serving(Config(transports=("polling",))) as engine:
        assert await engine.exchange(http_request("GET", websocket(), headers=WS_HEADERS)) \
            == error_bytes(ERR_TRANSPORT, close=True)


async def test_websocket_handshake() -> None:
    async with serving() as engine, await engine.open_websocket() as ws:
        _, payload = await ws.read_frame()
        [sid] = engine.recorder.sockets
        assert text(payload.decode()) == text(open_packet(sid, upgrades="[]").decode())
        assert engine.recorder.sockets[sid].transport.name == "websocket"
        await ws.send("4hi")
        await ws.expect(text("4hi"))


async def test_a_websocket_request_websockets_refuses_is_answered_and_closed() -> None:
    """The handshake's own checks (RFC 6455 section 4.2.1) are websockets': a bad version
    is refused with its status and text, and the connection is not kept."""
    headers = {**WS_HEADERS, "Sec-WebSocket-Version": "8"}
    async with serving() as engine, await engine.connect() as conn:
        await conn.send(http_request("GET", websocket(), headers=headers))
        assert await raw_answer(conn) == answer_bytes(
            "400 Bad Request", b"Failed to open a WebSocket connection: invalid"
            b" Sec-WebSocket-Version header: 8.\n", "text/plain", close=True)
        assert await conn.closed_by_server()
        assert engine.recorder.sockets == {}


async def test_health() -> None:
    async with serving() as engine:
        sid = await engine.handshake()
        answer = await engine.request("GET", "/_sio_core/health")
        assert answer.status == 200
        assert answer.headers["content-type"] == "application/json"
        assert answer.headers["cache-control"] == "no-cache"
        assert answer.json() == {"owner": "w1", "sessions": 1, "connections": 1,
                                 "store": None, "peers": [], "store_health": None}
        assert sid in engine.server.sockets


class WithStats(Recorder):
    def stats(self) -> dict[str, int]:
        return {"namespaces": 3}


async def test_health_with_a_store_and_the_handlers_stats() -> None:
    store = MemoryStore("w1")
    recorder = WithStats()
    async with serving(store=store, recorder=recorder, health=recorder.stats) as engine:
        answer = await engine.request("GET", "/_sio_core/health")
        assert answer.json() == {"owner": "w1", "sessions": 0, "connections": 1,
                                 "store": "MemoryStore", "peers": [], "store_health": None,
                                 "namespaces": 3}
    await store.close()


async def test_health_is_off_when_its_path_is_none() -> None:
    async with serving(Config(health_path=None)) as engine:
        answer = await engine.request("GET", "/_sio_core/health")
        assert answer.status == 404


async def test_a_handlers_errors_are_logged_and_the_session_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    async with serving() as engine:
        sid = await engine.handshake()
        assert await engine.exchange(http_request("POST", polling(sid), b"4raise\x1e4after")) == OK
        assert await engine.exchange(http_request("GET", polling(sid))) \
            == payload_bytes(b"4after")
        assert "error in message handler (sid " + sid + ")" in caplog.text
        engine.recorder.sockets[sid].context = "raise on close"
        assert await engine.exchange(http_request("POST", polling(sid), b"1")) == OK
        assert await engine.recorder.close_reason(sid) is CloseReason.TRANSPORT_CLOSE
        assert "error in close handler (sid " + sid + ")" in caplog.text
        assert sid not in engine.server.sockets


async def test_listen_on_a_socket_of_ones_own() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    async with serving(sock=sock) as engine:
        assert engine.port == sock.getsockname()[1]
        sid = await engine.handshake()
        assert sid in engine.server.sockets


# --- drain and close ---------------------------------------------------------------------------


async def test_drain_closes_every_session_and_refuses_new_ones() -> None:
    async with serving() as engine:
        polled = await engine.handshake()
        conn, poll = await engine.start_poll(polled)
        ws = await engine.open_websocket()
        await ws.read_frame()  # its open packet
        drained = asyncio.ensure_future(engine.server.drain(scaled(5)))
        # the pending GET carries the session's end: a noop, and the session is gone for
        # the next GET (a "1" would stop python-socketio's client from reconnecting)
        assert (await poll).body == b"6"
        await ws.expect(CLOSE_1000)
        await ws.send(b"")  # a binary frame after the close: ignored, no error
        await ws.conn.send(b"\x88\x82\0\0\0\0\x03\xe8")  # the client's close frame
        assert await ws.closed_by_server()
        assert await drained is True
        assert set(engine.recorder.closed.values()) == {CloseReason.SERVER_SHUTTING_DOWN}
        # still listening, but a handshake is turned away: 503, no body
        assert await engine.exchange(http_request("GET", polling())) \
            == answer_bytes("503 Service Unavailable")
        await conn.close()
        await ws.close()


async def test_drain_times_out_while_a_polling_session_waits_for_its_get(
        caplog: pytest.LogCaptureFixture) -> None:
    """A session closed by the server waits close_timeout for a GET to collect its end
    (a "6" when the server shuts down)."""
    async with serving(Config(close_timeout=scaled(5))) as engine:
        sid = await engine.handshake()
        assert await engine.server.drain(scaled(0.1)) is False
        assert "drain timed out: 1 session(s), 0 websocket(s) left" in caplog.text
        # the GET comes: the session ends, and with it the drain
        assert await engine.exchange(http_request("GET", polling(sid))) == payload_bytes(b"6")
        assert await engine.server.drain(scaled(5)) is True


async def test_close_ends_every_connection() -> None:
    async with serving() as engine:
        idle = await engine.connect()
        assert (await idle.request("GET", "/_sio_core/health")).status == 200
        ws = await engine.open_websocket()
        await ws.read_frame()
        draining = asyncio.ensure_future(engine.server.drain(scaled(0.2)))
        await ws.expect(CLOSE_1000)  # the client does not answer: the drain times out
        assert await draining is False
        await engine.server.close(scaled(0.2))  # drained already: flush and cut
        assert await idle.closed_by_server()
        assert await ws.closed_by_server()
        assert engine.server.connections == set()
        assert engine.server.websockets == set()
        await idle.close()
        await ws.close()


async def test_a_session_that_outlives_its_server_close_is_cut(
        caplog: pytest.LogCaptureFixture) -> None:
    """A connection still open after the flush timeout is aborted."""
    caplog.set_level(logging.WARNING)
    async with serving(Config(close_timeout=scaled(5))) as engine:
        await engine.handshake()
        conn = await engine.connect()
        await conn.send(b"GET /_sio_core/health HTTP/1.1\r\n")  # half a request head
        await engine.server.close(scaled(0.1))  # its drain (and the flush) time out
        assert await conn.closed_by_server()
        await conn.close()
    assert "drain timed out" in caplog.text


async def test_answers_are_raw_bytes_on_one_connection() -> None:
    """Keep-alive: several exchanges on one connection, each answer exact."""
    async with serving() as engine, await engine.connect() as conn:
        await conn.send(http_request("GET", polling()))
        answer = await raw_answer(conn)
        [sid] = engine.recorder.sockets
        assert answer == payload_bytes(open_packet(sid))
        await conn.send(http_request("POST", polling(sid), b"4one\x1e4two"))
        assert await raw_answer(conn) == OK
        await conn.send(http_request("GET", polling(sid)))
        assert await raw_answer(conn) == payload_bytes(b"4one\x1e4two")
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1][1:])["sid"] == sid
