"""The reference's options and hooks, each against a real client: ``allow_request``, the
``cookie``, the engine events (``connection_error``, ``initial_headers``, ``headers``),
``socket.use`` (per-packet middleware), the any-listeners (``on_any_outgoing``,
``prepend_any``, ``listeners_any``...), the server's ``new_namespace`` event,
``compress(False)`` on every operator, and class-based namespaces (python-socketio's shape).

In-process: a real server on a free loopback port (``await io.serve``), driven by
python-socketio's client, by the official JavaScript client (node, tests/js/sio_client.js)
and, for what only raw HTTP shows (a status, a header of the 101), by aiohttp or a raw socket.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import socketio

from sio_core import (
    AsyncNamespace,
    ConnectionErrorEvent,
    ConnectionRefusedError,
    Cookie,
    Namespace,
    Request,
    Server,
    Socket,
)
from tests.support import free_port, scaled
from tests.test_socketio_interop import SioClient, start_client

HOST = "127.0.0.1"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=scaled(10))) as session:
        yield session


class Serving:
    def __init__(self, io: Server) -> None:
        self.io = io
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.clients: list[socketio.AsyncClient] = []
        self.nodes: list[SioClient] = []

    async def client(self, namespace: str = "/", **options: Any) -> socketio.AsyncClient:
        """A python-socketio client connected to ``namespace``."""
        client = socketio.AsyncClient(reconnection=False)
        self.clients.append(client)
        await client.connect(self.url, namespaces=[namespace],
                             wait_timeout=int(scaled(5)) + 1, **options)
        return client

    async def node(self) -> SioClient:
        client = await start_client(self.url)
        self.nodes.append(client)
        return client


@pytest.fixture
async def serving() -> AsyncIterator[Any]:
    started: list[Serving] = []

    async def serve(io: Server) -> Serving:
        server = Serving(io)
        await io.serve(HOST, server.port)
        started.append(server)
        return server

    yield serve
    for server in started:
        for client in server.clients:
            await client.disconnect()
        for node in server.nodes:
            await node.node.aclose()
        await server.io.close(scaled(2))


def waiter() -> tuple[asyncio.Future[Any], Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def set_result(*args: Any) -> None:
        if not future.done():
            future.set_result(args[0] if len(args) == 1 else args)
    return future, set_result


async def handshake(http: aiohttp.ClientSession, url: str,
                    **headers: str) -> tuple[int, dict[str, Any], aiohttp.typedefs.LooseHeaders]:
    async with http.get(f"{url}/socket.io/?EIO=4&transport=polling", headers=headers) as resp:
        text = await resp.text()
        body = json.loads(text[1:] if text.startswith("0") else text)
        return resp.status, body, resp.headers


# -- allow_request ---------------------------------------------------------------------------


async def test_allow_request_refuses_with_403_forbidden_as_the_reference(
        serving: Any, http: aiohttp.ClientSession) -> None:
    seen: list[Request] = []

    def allow(request: Request) -> bool:
        seen.append(request)
        return request.headers.get("x-token") == "ok"

    errors: list[ConnectionErrorEvent] = []
    io = Server(allow_request=allow)
    io.engine_hooks.on("connection_error", errors.append)
    server = await serving(io)
    status, body, _ = await handshake(http, server.url)
    assert (status, body) == (403, {"code": 4, "message": "Forbidden"})
    assert [(e.code, e.message) for e in errors] == [(4, "Forbidden")]
    assert errors[0].request is seen[0] and seen[0].query["transport"] == "polling"
    status, body, _ = await handshake(http, server.url, **{"X-Token": "ok"})
    assert status == 200 and "sid" in body
    # python-socketio's client is refused, then let in with the header
    with pytest.raises(socketio.exceptions.ConnectionError):
        await server.client()
    client = await server.client(headers={"X-Token": "ok"})
    assert client.connected
    # only handshakes are asked: the session's later requests were not
    assert all("sid" not in r.query for r in seen)


async def test_allow_request_async_and_its_message(serving: Any,
                                                   http: aiohttp.ClientSession) -> None:
    async def allow(request: Request) -> bool:
        await asyncio.sleep(0)
        if request.query.get("who") == "mallory":
            raise ConnectionRefusedError("go away")
        return True

    server = await serving(Server(allow_request=allow))
    async with http.get(f"{server.url}/socket.io/?EIO=4&transport=polling&who=mallory") as resp:
        assert resp.status == 403
        assert await resp.json() == {"code": 4, "message": "go away"}
    # the official client, over a websocket first: let in after the async verdict
    node = await server.node()
    assert (await node.connect("a", transports=["websocket"]))["ev"] == "connect"
    refused = await node.connect("b", transports=["websocket"], query={"who": "mallory"})
    assert refused["ev"] == "connect_error"


async def test_allow_request_comes_after_the_references_own_checks(
        serving: Any, http: aiohttp.ClientSession) -> None:
    io = Server(allow_request=lambda request: False)
    errors: list[ConnectionErrorEvent] = []
    io.engine_hooks.on("connection_error", errors.append)
    server = await serving(io)
    async with http.get(f"{server.url}/socket.io/?EIO=4&transport=carrier-pigeon") as resp:
        assert resp.status == 400
        assert await resp.json() == {"code": 0, "message": "Transport unknown"}
    async with http.post(f"{server.url}/socket.io/?EIO=4&transport=polling") as resp:
        assert await resp.json() == {"code": 2, "message": "Bad handshake method"}
    async with http.get(f"{server.url}/socket.io/?EIO=4&transport=polling&sid=nope") as resp:
        assert await resp.json() == {"code": 1, "message": "Session ID unknown"}
    assert [(e.code, e.context) for e in errors] == [
        (0, {"transport": "carrier-pigeon"}), (2, {"method": "POST"}), (1, {"sid": "nope"})]


# -- cookie and headers ---------------------------------------------------------------------


async def test_cookie_and_initial_headers_on_the_handshake_headers_on_every_answer(
        serving: Any, http: aiohttp.ClientSession) -> None:
    io = Server(cookie=Cookie())

    @io.engine_hooks.on("initial_headers")
    def initial(headers: dict[str, str], request: Request) -> None:
        headers["X-Initial"] = "1"

    @io.engine_hooks.on("headers")
    def every(headers: dict[str, str], request: Request) -> None:
        headers["X-Every"] = request.method

    server = await serving(io)
    async with http.get(f"{server.url}/socket.io/?EIO=4&transport=polling") as resp:
        text = await resp.text()
        sid = json.loads(text[1:])["sid"]
        assert resp.headers.getall("Set-Cookie") == [f"io={sid}; Path=/; HttpOnly; SameSite=Lax"]
        assert resp.headers["X-Initial"] == "1" and resp.headers["X-Every"] == "GET"
    session = f"{server.url}/socket.io/?EIO=4&transport=polling&sid={sid}"
    async with http.post(session, data="40") as resp:
        assert resp.status == 200
        assert "X-Initial" not in resp.headers and "Set-Cookie" not in resp.headers
        assert resp.headers["X-Every"] == "POST"
    async with http.get(session) as resp:
        assert (await resp.text()).startswith("40{")
        assert resp.headers["X-Every"] == "GET"
    async with http.post(session, data="1") as resp:  # gone: nothing left for the drain
        assert resp.status == 200
    # a websocket's 101 carries them too (the cookie names the new session)
    head = await raw_upgrade(server.port, "/socket.io/?EIO=4&transport=websocket")
    assert head.startswith("HTTP/1.1 101")
    assert re.search(r"(?im)^set-cookie: io=[^;\s]+; Path=/; HttpOnly; SameSite=Lax\r$", head)
    assert re.search(r"(?im)^x-initial: 1\r$", head) and re.search(r"(?im)^x-every: GET\r$",
                                                                   head)
    # the official client connects through all this
    node = await server.node()
    assert (await node.connect("a"))["ev"] == "connect"


async def test_cookie_options(serving: Any, http: aiohttp.ClientSession) -> None:
    server = await serving(Server(cookie=Cookie(name="affinity", path="/app", http_only=False,
                                                same_site="Strict", secure=True,
                                                max_age=60)))
    async with http.get(f"{server.url}/socket.io/?EIO=4&transport=polling") as resp:
        sid = json.loads((await resp.text())[1:])["sid"]
        assert resp.headers["Set-Cookie"] == \
            f"affinity={sid}; Max-Age=60; Path=/app; Secure; SameSite=Strict"
    with pytest.raises(ValueError, match="cookie"):
        Cookie(name="bad name")


async def raw_upgrade(port: int, target: str) -> str:
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write((f"GET {target} HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), scaled(5))
    writer.close()
    return head.decode("latin-1")


# -- socket.use, the any-listeners ----------------------------------------------------------


async def test_socket_use_runs_per_packet_and_its_error_reaches_the_socket(
        serving: Any) -> None:
    io = Server()

    @io.on("connection")
    def connection(socket: Socket) -> None:
        @socket.use
        def stamp(packet: list[Any]) -> None:
            if packet[0] == "forbidden":
                raise ValueError("not allowed")
            packet.append("stamped")

        @socket.use
        async def slow(packet: list[Any]) -> None:
            await asyncio.sleep(0)
            if packet[0] == "late-refusal":
                raise PermissionError("refused late")

        @socket.on("error")
        def error(exc: Exception) -> None:
            socket.emit("refused", type(exc).__name__, str(exc))

        socket.on("echo", lambda *args: list(args))
        socket.on("forbidden", lambda *args: "must not run")
        socket.on("late-refusal", lambda *args: "must not run")

    server = await serving(io)
    client = await server.client()
    refused: asyncio.Queue[Any] = asyncio.Queue()
    client.on("refused", lambda *args: refused.put_nowait(args))
    assert await client.call("echo", "hi", timeout=scaled(5)) == ["hi", "stamped"]
    await client.emit("forbidden", 1)
    assert await asyncio.wait_for(refused.get(), scaled(5)) == ("ValueError", "not allowed")
    await client.emit("late-refusal")
    assert await asyncio.wait_for(refused.get(), scaled(5)) == \
        ("PermissionError", "refused late")
    # the official client: the same middlewares, an ack through them
    node = await server.node()
    await node.connected("a")
    assert await node.call("a", "echo", 1) == [[1, "stamped"]]
    await node.emit("a", "forbidden")
    assert (await node.event("a", "refused"))["args"] == ["ValueError", "not allowed"]


async def test_any_listeners_incoming_and_outgoing(serving: Any) -> None:
    io = Server()
    log: list[Any] = []

    @io.on("connection")
    def connection(socket: Socket) -> None:
        first = socket.on_any(lambda event, *args: log.append(("in", event, *args)))
        socket.prepend_any(lambda event, *args: log.append(("in-first", event)))
        socket.on_any_outgoing(lambda event, *args: log.append(("out", event, *args)))
        socket.prepend_any_outgoing(lambda event, *args: log.append(("out-first", event)))
        assert len(socket.listeners_any()) == 2 and len(socket.listeners_any_outgoing()) == 2
        assert socket.listeners_any()[1] is first

        @socket.on("go")
        async def go() -> None:
            await socket.emit("direct", 1)
            await io.emit("broadcast", 2)
            await io.to(socket.id).emit("to-room", 3)
            socket.off_any_outgoing()
            socket.off_any(first)
            await socket.emit("unheard", 4)
            await socket.emit("done")

    server = await serving(io)
    client = await server.client()
    done, on_done = waiter()
    client.on("done", on_done)
    await client.emit("go")
    await asyncio.wait_for(done, scaled(5))
    assert log == [("in-first", "go"), ("in", "go"),
                   ("out-first", "direct"), ("out", "direct", 1),
                   ("out-first", "broadcast"), ("out", "broadcast", 2),
                   ("out-first", "to-room"), ("out", "to-room", 3)]


# -- the server's new_namespace event, compress --------------------------------------------


async def test_new_namespace_event_for_of_and_dynamic_children(serving: Any) -> None:
    io = Server()
    created: list[str] = []

    @io.on("new_namespace")
    def new_namespace(namespace: Namespace) -> None:
        created.append(namespace.name)

    io.of("/static")
    io.of(re.compile(r"/room-\d+")).on("connection", lambda socket: None)
    server = await serving(io)
    await server.client("/room-7")
    await server.client("/room-7")
    assert created == ["/static", "/room-7"]
    io.off("new_namespace")
    io.of("/unheard")
    assert created == ["/static", "/room-7"]


async def test_compress_false_on_every_operator(serving: Any) -> None:
    io = Server()

    @io.on("connection")
    async def connection(socket: Socket) -> None:
        await socket.compress(False).emit("a", 1)
        await socket.volatile.compress(False).emit("b", 2)
        await socket.broadcast.compress(False).emit("c", 3)
        await io.compress(False).to(socket.id).emit("d", 4)
        await io.of("/").except_("nobody").compress(True).emit("e", 5)

    server = await serving(io)
    queue: asyncio.Queue[Any] = asyncio.Queue()
    client = socketio.AsyncClient(reconnection=False)
    client.on("*", lambda event, *args: queue.put_nowait((event, *args)))
    server.clients.append(client)
    await client.connect(server.url)
    got = [await asyncio.wait_for(queue.get(), scaled(5)) for _ in range(4)]
    assert got == [("a", 1), ("b", 2), ("d", 4), ("e", 5)]


# -- class-based namespaces -----------------------------------------------------------------


class Chat(AsyncNamespace):
    def __init__(self, namespace: str) -> None:
        super().__init__(namespace)
        self.left: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.environ: dict[str, Any] = {}

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: dict[str, Any]) -> bool:
        if auth.get("token") != "s3cret":
            return False
        if auth.get("name") == "mallory":
            raise ConnectionRefusedError("banned", {"why": "spam"})
        self.environ = environ
        async with self.session(sid) as session:
            session["name"] = auth.get("name", "anon")
        await self.enter_room(sid, "lobby")
        await self.emit("welcome", f"hello {auth.get('name')}", to=sid)  # after its CONNECT
        return True

    async def on_message(self, sid: str, text: str) -> str:
        session = await self.get_session(sid)
        await self.emit("message", (session["name"], text), room="lobby", skip_sid=sid)
        return "delivered"

    def on_whoami(self, sid: str) -> tuple[str, list[str]]:
        return sid, self.rooms(sid)

    async def on_ask_back(self, sid: str, question: str) -> Any:
        return await self.call("question", question, to=sid, timeout=scaled(5))

    async def on_leave_lobby(self, sid: str) -> None:
        await self.leave_room(sid, "lobby")

    async def on_kick(self, sid: str) -> None:
        await self.disconnect(sid)

    def on_disconnect(self, sid: str, reason: str) -> None:
        self.left.put_nowait((sid, reason))


async def refusal(server: Serving, auth: dict[str, Any]) -> Any:
    """What python-socketio's client's connect_error handler gets."""
    client = socketio.AsyncClient(reconnection=False)
    error, on_error = waiter()
    client.on("connect_error", on_error, namespace="/chat")
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(server.url, namespaces=["/chat"], auth=auth,
                             wait_timeout=int(scaled(5)) + 1)
    return await asyncio.wait_for(error, scaled(5))


async def test_class_based_namespace_with_python_socketio(serving: Any) -> None:
    io = Server()
    chat = Chat("/chat")
    io.register_namespace(chat)
    server = await serving(io)

    assert await refusal(server, {"token": "wrong"}) == \
        {"message": "Connection rejected by server"}
    assert await refusal(server, {"token": "s3cret", "name": "mallory"}) == \
        {"message": "banned", "data": {"why": "spam"}}

    alice = socketio.AsyncClient(reconnection=False)
    welcome, on_welcome = waiter()
    alice.on("welcome", on_welcome, namespace="/chat")
    alice.on("question", lambda q: f"answer to {q}", namespace="/chat")
    server.clients.append(alice)
    await alice.connect(server.url, namespaces=["/chat"], auth={"token": "s3cret",
                                                                "name": "alice"},
                        headers={"X-Agent": "test"})
    assert await asyncio.wait_for(welcome, scaled(5)) == "hello alice"
    assert chat.environ["HTTP_X_AGENT"] == "test"
    assert "EIO=4" in chat.environ["QUERY_STRING"].split("&")
    bob = await server.client("/chat", auth={"token": "s3cret", "name": "bob"})
    heard, on_heard = waiter()
    alice.on("message", on_heard, namespace="/chat")
    assert await bob.call("message", "hi all", namespace="/chat",
                          timeout=scaled(5)) == "delivered"
    assert await asyncio.wait_for(heard, scaled(5)) == ("bob", "hi all")  # two arguments
    sid, rooms = await alice.call("whoami", namespace="/chat", timeout=scaled(5))
    assert sorted(rooms) == sorted([sid, "lobby"])
    assert await alice.call("ask_back", "life", namespace="/chat",
                            timeout=scaled(10)) == "answer to life"
    await alice.call("leave_lobby", namespace="/chat", timeout=scaled(5))
    assert (await alice.call("whoami", namespace="/chat", timeout=scaled(5)))[1] == [sid]
    await alice.emit("kick", namespace="/chat")
    assert await asyncio.wait_for(chat.left.get(), scaled(5)) == \
        (sid, "server namespace disconnect")


async def test_class_based_namespace_with_the_official_client(serving: Any) -> None:
    io = Server()
    chat = Chat("/chat")
    io.register_namespace(chat)
    server = await serving(io)
    node = await server.node()
    refused = await node.connect("x", "/chat", auth={"token": "s3cret", "name": "mallory"})
    assert (refused["ev"], refused["message"], refused["data"]) == \
        ("connect_error", "banned", {"why": "spam"})
    sid = await node.connected("a", "/chat", auth={"token": "s3cret", "name": "ann"})
    assert (await node.event("a", "welcome"))["args"] == ["hello ann"]
    assert await node.call("a", "message", "yo") == ["delivered"]
    await node.connected("b", "/chat", auth={"token": "s3cret", "name": "ben"})
    await node.emit("b", "message", "hey")
    assert (await node.event("a", "message"))["args"] == ["ben", "hey"]
    # a server->client call(): the driver acks with {"got": [args]}
    assert await node.call("a", "ask_back", "q") == [{"got": ["q"]}]
    await node.command("disconnect", "a")
    assert await asyncio.wait_for(chat.left.get(), scaled(5)) == \
        (sid, "client namespace disconnect")


async def test_engine_hooks_misuse_and_failures(serving: Any, http: aiohttp.ClientSession,
                                                caplog: pytest.LogCaptureFixture) -> None:
    def broken(request: Request) -> bool:
        raise RuntimeError("bug in allow_request")

    io = Server(allow_request=broken)
    with pytest.raises(ValueError, match="unknown engine event"):
        io.engine_hooks.on("connection")
    errors: list[ConnectionErrorEvent] = []
    io.engine_hooks.on("connection_error", errors.append)

    @io.engine_hooks.on("connection_error")
    def failing(event: ConnectionErrorEvent) -> None:
        raise KeyError("a listener's bug")

    server = await serving(io)
    # a bug in allow_request refuses (logged), the listeners' bug is logged, the answer goes
    status, body, _ = await handshake(http, server.url)
    assert (status, body) == (403, {"code": 4, "message": "Forbidden"})
    assert "allow_request raised" in caplog.text and "a listener's bug" in caplog.text
    io.engine_hooks.off("connection_error", failing)
    io.engine_hooks.allow_request = None
    async with http.get(f"{server.url}/socket.io/?EIO=3&transport=polling") as resp:
        assert await resp.json() == {"code": 5, "message": "Unsupported protocol version"}
    assert [(e.code, e.context) for e in errors] == [(4, {"message": "Forbidden"}),
                                                     (5, {"protocol": "3"})]
    io.engine_hooks.off("connection_error")
    async with http.get(f"{server.url}/socket.io/?EIO=3&transport=polling") as resp:
        assert resp.status == 400
    assert len(errors) == 2


async def test_server_events_once_and_off_and_a_dynamic_namespaces_operators() -> None:
    io = Server()
    created: list[str] = []
    io.once("new_namespace", lambda namespace: created.append(namespace.name))
    io.of("/a")
    io.of("/b")
    assert created == ["/a"]
    parent = io.of(re.compile(r"/dyn-\d+"))
    await parent.compress(False).to("room").emit("x")
    with pytest.raises(ValueError, match="no acks"):
        await parent.emit_with_ack("x")
    once = io.once("connection")(lambda socket: None)
    io.off("connection", once)
    assert io.sockets.listeners("connection") == []
