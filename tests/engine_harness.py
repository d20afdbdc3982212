"""In-process plumbing for the engine tests (tests/test_engine_*.py): EngineServers in the
test's own event loop, listening on loopback ports, driven with literal wire bytes.

- :class:`Recorder`: an EngineHandler that notes what the sessions do (opened, messages,
  close reasons) and echoes messages back; ``await recorder.until(...)`` waits for a note.
- :func:`serving`: an EngineServer (owner ``w1`` unless told) on 127.0.0.1, a free port,
  closed at the end; with ``store=`` it forwards to the other workers of that store's bus.
- :class:`WsClient`: a WebSocket client written by hand over a raw connection, so that the
  test writes and reads frames byte for byte. Its frames are masked with the zero key (RFC
  6455 section 5.3: any key is valid), so ``b"\\x81\\x86\\0\\0\\0\\x002probe"`` carries
  ``2probe`` readably.

Answers are read with tests/test_http_errors.py's RawConnection (by Content-Length).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket as socket_module
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Self

from sio_core.config import Config
from sio_core.engine.server import EngineServer
from sio_core.engine.socket import EngineSocket
from sio_core.protocol.session import CloseReason
from sio_core.stores.base import Store
from tests.support import scaled
from tests.test_http_errors import Answer, RawConnection, http_request

PATH = "/socket.io/"
#: the key and accept value of RFC 6455 section 1.3's example handshake
WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
WS_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
WS_HEADERS = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
              "Sec-WebSocket-Key": WS_KEY}

ERR_TRANSPORT = b'{"code":0,"message":"Transport unknown"}'
ERR_SID = b'{"code":1,"message":"Session ID unknown"}'
ERR_METHOD = b'{"code":2,"message":"Bad handshake method"}'
ERR_BAD = b'{"code":3,"message":"Bad request"}'
ERR_VERSION = b'{"code":5,"message":"Unsupported protocol version"}'

#: a server's close frame with status 1000 (RFC 6455 section 5.5.1), and with no status
CLOSE_1000 = b"\x88\x02\x03\xe8"
CLOSE_NO_STATUS = b"\x88\x00"


#: the client's close frame, status 1000
CLIENT_CLOSE = b"\x88\x82\0\0\0\0\x03\xe8"


def polling(sid: str | None = None) -> str:
    target = f"{PATH}?EIO=4&transport=polling"
    return target if sid is None else f"{target}&sid={sid}"


def websocket(sid: str | None = None) -> str:
    target = f"{PATH}?EIO=4&transport=websocket"
    return target if sid is None else f"{target}&sid={sid}"


def get(sid: str) -> bytes:
    """A long-poll GET of the session, as bytes."""
    return http_request("GET", polling(sid))


def post(sid: str, body: bytes) -> bytes:
    """A POST of packets to the session, as bytes."""
    return http_request("POST", polling(sid), body)


def open_packet(sid: str, upgrades: str = '["websocket"]', ping_interval: int = 25000,
                ping_timeout: int = 20000, max_payload: int = 1_000_000) -> bytes:
    """The handshake's OPEN packet, byte for byte as the server writes it."""
    return (f'0{{"sid":"{sid}","upgrades":{upgrades},"pingInterval":{ping_interval},'
            f'"pingTimeout":{ping_timeout},"maxPayload":{max_payload}}}').encode()


class Recorder:
    """An EngineHandler that notes everything and echoes each message to its sender (the
    message ``"close me"`` closes the session instead, ``"raise"`` raises)."""

    def __init__(self) -> None:
        self.sockets: dict[str, EngineSocket] = {}
        self.messages: list[tuple[str, str | bytes]] = []
        self.closed: dict[str, CloseReason] = {}
        self._changed = asyncio.Event()

    def on_open(self, socket: EngineSocket) -> None:
        self.sockets[socket.sid] = socket
        self._changed.set()

    def on_message(self, socket: EngineSocket, data: str | bytes) -> None:
        self.messages.append((socket.sid, data))
        self._changed.set()
        if data == "close me":
            socket.close()
        elif data == "raise":
            raise RuntimeError("a handler's bug")
        else:
            socket.send(data)

    def on_close(self, socket: EngineSocket, reason: CloseReason) -> None:
        self.closed[socket.sid] = reason
        self._changed.set()
        if socket.context == "raise on close":
            raise RuntimeError("a close handler's bug")

    def received(self, sid: str) -> list[str | bytes]:
        return [data for owner, data in self.messages if owner == sid]

    async def until(self, predicate: Callable[[], object], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` is true (checked after each note)."""
        async with asyncio.timeout(scaled(timeout)):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    async def close_reason(self, sid: str, timeout: float = 5.0) -> CloseReason:
        await self.until(lambda: sid in self.closed, timeout)
        return self.closed[sid]


#: how often :func:`eventually` looks (a cadence, not a deadline: not scaled)
_CADENCE = 0.005


class HandTransport:
    """Just enough of an asyncio transport for an HTTPConnection driven by hand (in process,
    no socket): what is written is kept, write by write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closing = False

    @property
    def written(self) -> bytes:
        return b"".join(self.writes)

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("127.0.0.1", 50000) if name == "peername" else default

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    abort = close

    def get_write_buffer_size(self) -> int:
        return 0  # nothing waits: it is all in writes

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def eventually(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    """Wait until ``predicate()`` is true, for a state that no event announces (the
    server's sets of connections and websockets)."""
    async with asyncio.timeout(scaled(timeout)):
        while not predicate():
            await asyncio.sleep(_CADENCE)


@dataclass
class Engine:
    """A served EngineServer: ``host``/``port`` make it an Endpoint for RawConnection."""

    server: EngineServer
    recorder: Recorder
    host: str
    port: int

    async def connect(self) -> RawConnection:
        return await RawConnection.open(self)

    async def request(self, method: str, target: str, body: bytes = b"",
                      headers: dict[str, str] | None = None) -> Answer:
        async with await self.connect() as conn:
            return await conn.request(method, target, body, headers)

    async def exchange(self, data: bytes) -> bytes:
        """Send ``data`` on a connection of its own; the answer as it came, head and body."""
        async with await self.connect() as conn:
            await conn.send(data)
            return await raw_answer(conn)

    async def handshake(self) -> str:
        answer = await self.request("GET", polling())
        assert answer.status == 200 and answer.body.startswith(b'0{"sid":"'), answer
        sid: str = json.loads(answer.body[1:])["sid"]
        return sid

    async def start_poll(self, sid: str) -> tuple[RawConnection, asyncio.Task[Answer]]:
        """A GET that the server holds, on a connection of its own, and the task reading
        its answer; it is pending once this returns (a POST on another connection comes
        after it)."""
        conn = await self.connect()
        await conn.send(http_request("GET", polling(sid)))
        socket = self.server.sockets.get(sid)
        if socket is not None:
            async with asyncio.timeout(scaled(5)):
                while not socket.core.poll_pending:
                    await asyncio.sleep(0)  # the server's read of it is a few turns away
        return conn, asyncio.ensure_future(conn.answer())

    async def open_websocket(self, target: str | None = None) -> WsClient:
        """A websocket (a new session unless ``target`` names one); the 101 is read."""
        conn = await self.connect()
        ws = WsClient(conn)
        await ws.upgrade(target or websocket())
        return ws


async def raw_answer(conn: RawConnection, timeout: float = 5.0) -> bytes:
    """The next answer on ``conn`` as it came (framed by its Content-Length)."""
    async with asyncio.timeout(scaled(timeout)):
        head = await conn.reader.readuntil(b"\r\n\r\n")
        match = re.search(rb"\r\nContent-Length: (\d+)\r\n", head)
        assert match is not None, head
        return head + await conn.reader.readexactly(int(match.group(1)))


def answer_bytes(status: str, body: bytes = b"", content_type: str | None = None,
                 headers: tuple[str, ...] = (), close: bool = False) -> bytes:
    """An answer as the server writes it: status line, Content-Type, other headers,
    Content-Length, Connection: close if it closes."""
    lines = [f"HTTP/1.1 {status}"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    lines.extend(headers)
    lines.append(f"Content-Length: {len(body)}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def error_bytes(body: bytes, headers: tuple[str, ...] = (), close: bool = False) -> bytes:
    """An Engine.IO error answer: 400 and its JSON."""
    return answer_bytes("400 Bad Request", body, "application/json", headers, close)


def payload_bytes(body: bytes, headers: tuple[str, ...] = ()) -> bytes:
    """A GET's (or handshake's) answer: a payload of packets."""
    return answer_bytes("200 OK", body, "text/plain; charset=UTF-8", headers)


OK = answer_bytes("200 OK", b"ok", "text/html")


@contextlib.asynccontextmanager
async def serving(config: Config | None = None, *, owner: str = "w1",
                  store: Store | None = None,
                  recorder: Recorder | None = None,
                  health: Callable[[], dict[str, Any]] | None = None,
                  sock: socket_module.socket | None = None) -> AsyncIterator[Engine]:
    """``health``: the EngineServer's extra health counts; ``sock``: listen on it."""
    recorder = recorder or Recorder()
    server = EngineServer(recorder, config or Config(), health=health)
    if store is not None:
        server.join(store)  # the caller starts and closes it
    else:
        server.owner = owner
    await server.serve("127.0.0.1", 0, sock=sock)
    port = server._servers[0].sockets[0].getsockname()[1]
    try:
        yield Engine(server, recorder, "127.0.0.1", port)
    finally:
        # no drain: what a test leaves open is cut (a polling session would otherwise wait
        # close_timeout for the GET that collects its "1")
        await server.drain(0)
        server.store = None  # the caller's to close
        await server.close(scaled(1))


def mask_zero(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A client frame (masked, with the zero key: the payload shows as is)."""
    first = (0x80 if fin else 0) | opcode
    size = len(payload)
    if size < 126:
        head = bytes([first, 0x80 | size])
    elif size < 1 << 16:
        head = bytes([first, 0x80 | 126]) + size.to_bytes(2, "big")
    else:
        head = bytes([first, 0x80 | 127]) + size.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


def server_frame(opcode: int, payload: bytes) -> bytes:
    """A server frame (unmasked), as the server writes it."""
    size = len(payload)
    if size < 126:
        return bytes([0x80 | opcode, size]) + payload
    if size < 1 << 16:
        return bytes([0x80 | opcode, 126]) + size.to_bytes(2, "big") + payload
    return bytes([0x80 | opcode, 127]) + size.to_bytes(8, "big") + payload


def text(data: str) -> bytes:
    return server_frame(0x1, data.encode())


class WsClient:
    """A WebSocket client over a RawConnection; the test reads and writes frames as bytes."""

    def __init__(self, conn: RawConnection) -> None:
        self.conn = conn

    async def upgrade(self, target: str, headers: dict[str, str] | None = None,
                      trailing: bytes = b"") -> None:
        """The handshake request (and ``trailing`` frames in the same write); the 101."""
        await self.conn.send(http_request("GET", target, headers=headers or WS_HEADERS)
                             + trailing)
        answer = await self.conn.answer()
        assert answer.status == 101, answer
        assert answer.headers["sec-websocket-accept"] == WS_ACCEPT, answer

    async def send(self, data: str | bytes) -> None:
        if isinstance(data, str):
            await self.conn.send(mask_zero(0x1, data.encode()))
        else:
            await self.conn.send(mask_zero(0x2, data))

    async def probe(self) -> None:
        """The upgrade's probe and its answer."""
        await self.send("2probe")
        await self.expect(text("3probe"))

    async def complete_upgrade(self) -> None:
        """Probe, then "5": the session is on this websocket from now on."""
        await self.probe()
        await self.send("5")

    async def read(self, size: int, timeout: float = 5.0) -> bytes:
        """Exactly ``size`` bytes of what the server writes."""
        async with asyncio.timeout(scaled(timeout)):
            return await self.conn.reader.readexactly(size)

    async def expect(self, data: bytes, timeout: float = 5.0) -> None:
        """The server writes exactly these bytes next."""
        assert await self.read(len(data), timeout) == data

    async def read_frame(self, timeout: float = 5.0) -> tuple[int, bytes]:
        """The next server frame: its opcode and payload."""
        async with asyncio.timeout(scaled(timeout)):
            reader = self.conn.reader
            first, second = await reader.readexactly(2)
            assert second & 0x80 == 0, "a server frame is never masked"
            size = second & 0x7F
            if size == 126:
                size = int.from_bytes(await reader.readexactly(2), "big")
            elif size == 127:
                size = int.from_bytes(await reader.readexactly(8), "big")
            return first & 0x0F, await reader.readexactly(size)

    async def closed_by_server(self, timeout: float = 5.0) -> bool:
        return await self.conn.closed_by_server(timeout)

    async def close(self) -> None:
        await self.conn.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
