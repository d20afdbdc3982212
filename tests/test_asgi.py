"""sio_core under other servers, in this process: ``ASGIApp`` served by uvicorn (with a FastAPI
application beside it), ``attach`` on an aiohttp application, and the workers' meeting point
(sio_core/stores/meeting.py).

The servers are real (uvicorn's and aiohttp's, on a free port, in the test's event loop); so are
the clients: aiohttp's HTTP client for the raw requests, python-socketio's client, and the
official socket.io-client run by node (tests/js/cluster_clients.js) for the aiohttp interop.
Several workers under uvicorn, Redis and a browser: tests/test_asgi_cluster.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import tempfile
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
import uvicorn
import websockets.asyncio.client
from aiohttp import web
from fastapi import FastAPI

from sio_core import Server, Socket
from sio_core.aiohttp import attach
from sio_core.asgi import ASGIApp
from sio_core.stores.meeting import MeetingStore, meeting_point
from tests.support import REPO_ROOT, free_port, scaled, start_node

CLIENTS_JS = REPO_ROOT / "tests" / "js" / "cluster_clients.js"
HANDSHAKE = "/socket.io/?EIO=4&transport=polling"
SESSION_UNKNOWN = {"code": 1, "message": "Session ID unknown"}


def chat(**options: Any) -> Server:
    """A Socket.IO application: ``echo`` acks its argument, ``bcast(ev, x)`` sends ``ev`` to
    everyone else, ``whoami`` acks the socket's id; the sockets that left are in ``io.left``."""
    io = Server(**options)
    left: list[str] = []

    def connection(socket: Socket) -> None:
        def echo(data: Any) -> Any:
            return data

        async def bcast(event: str, payload: Any) -> str:
            await socket.broadcast.emit(event, payload)
            return "sent"

        def whoami() -> dict[str, str]:
            return {"id": socket.id, "worker": "1"}

        socket.on("echo", echo)
        socket.on("bcast", bcast)
        socket.on("whoami", whoami)
        socket.on("disconnect", lambda reason: left.append(reason))

    io.on("connection", connection)
    io.left = left  # type: ignore[attr-defined]
    return io


def meeting() -> str:
    """A meeting name of this test's own (the workers of one test)."""
    return f"test-{secrets.token_hex(6)}"


@contextlib.asynccontextmanager
async def uvicorn_serving(app: Any) -> AsyncIterator[str]:
    """``app`` served by uvicorn in this event loop (lifespan on, unless ``app`` is a
    uvicorn.Config); its URL."""
    config = app if isinstance(app, uvicorn.Config) else uvicorn.Config(
        app, host="127.0.0.1", port=free_port(), lifespan="on", log_level="warning")
    port = config.port
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise AssertionError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)  # uvicorn reports its start by this flag only
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, scaled(10))


@contextlib.asynccontextmanager
async def aiohttp_serving(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def serving(server: str, io: Server) -> contextlib.AbstractAsyncContextManager[str]:
    """``io`` alone, by ASGIApp under uvicorn or attached to an aiohttp application."""
    if server == "uvicorn":
        return uvicorn_serving(ASGIApp(io, meeting=meeting()))
    app = web.Application()
    attach(io, app, meeting=meeting())
    return aiohttp_serving(app)


async def get_json(http: aiohttp.ClientSession, url: str, method: str = "GET",
                   data: bytes | None = None) -> tuple[int, Any]:
    async with http.request(method, url, data=data) as response:
        text = await response.text()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, text


def handshake_sid(text: str) -> str:
    assert text.startswith("0{"), text
    sid: str = json.loads(text[1:])["sid"]
    return sid


# --- ASGI under uvicorn --------------------------------------------------------------------------


def recording_api(events: list[str]) -> FastAPI:
    """A FastAPI application whose lifespan records "startup" and "shutdown" in ``events``."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    return FastAPI(lifespan=lifespan)


async def test_fastapi_app_beside_socketio_and_the_reference_errors() -> None:
    events: list[str] = []
    api = recording_api(events)

    @api.get("/api/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    io = chat(max_payload=1000)
    page = Path(__file__).parent.parent / "sio_core" / "demo" / "static" / "index.html"
    mounted = ASGIApp(io, api, static_files={"/chat": str(page)}, meeting=meeting())
    async with uvicorn_serving(mounted) as url, aiohttp.ClientSession() as http:
        assert events == ["startup"]  # the other application's lifespan, forwarded
        assert mounted.engine is not None  # ours started with it
        assert await get_json(http, url + "/api/hello") == (200, {"hello": "world"})
        assert (await get_json(http, url + "/nothing"))[0] == 404  # FastAPI's answer
        async with http.get(url + "/chat") as response:  # static_files
            assert response.status == 200 and "<html" in (await response.text()).lower()

        status, text = await get_json(http, url + HANDSHAKE)
        assert status == 200
        sid = handshake_sid(text)
        assert (await get_json(http, f"{url}{HANDSHAKE}&sid={sid}", "POST", b"40")) == (200, "ok")
        status, text = await get_json(http, f"{url}{HANDSHAKE}&sid={sid}")
        assert status == 200 and text.startswith("40{"), text  # the namespace's CONNECT

        assert await get_json(http, f"{url}{HANDSHAKE}&sid=nope") == (400, SESSION_UNKNOWN)
        assert await get_json(http, f"{url}{HANDSHAKE}&sid=x.forged-w1-0000") == (
            400, SESSION_UNKNOWN)  # an owner that is no worker: unknown at once
        assert await get_json(http, url + "/socket.io/?EIO=4&transport=carrier-pigeon") == (
            400, {"code": 0, "message": "Transport unknown"})
        assert await get_json(http, url + "/socket.io/?EIO=3&transport=polling") == (
            400, {"code": 5, "message": "Unsupported protocol version"})
        assert await get_json(http, url + "/socket.io/?EIO=4&transport=websocket") == (
            400, {"code": 3, "message": "Bad request"})  # websocket without an upgrade
        status, _ = await get_json(http, f"{url}{HANDSHAKE}&sid={sid}", "POST", b"x" * 5000)
        assert status == 413  # past max_payload
        async with http.get(url + "/socket.io/socket.io.js") as response:
            assert response.status == 200
            assert "javascript" in response.headers["Content-Type"]
        # the client closes its session (else the shutdown would wait for it: the drain)
        assert (await get_json(http, f"{url}{HANDSHAKE}&sid={sid}", "POST", b"1")) == (200, "ok")
    assert events == ["startup", "shutdown"]


async def test_refused_websocket_gets_the_engines_answer() -> None:
    async with uvicorn_serving(ASGIApp(chat(), meeting=meeting())) as url, \
            aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{url}/socket.io/?EIO=4&transport=websocket&sid=nope")
        assert refused.value.status == 400
        # no other application: anything else is ours to refuse
        assert (await get_json(http, url + "/")) == (404, "Not Found")


@pytest.mark.interop
@pytest.mark.parametrize("transports", [["polling"], ["websocket"], ["polling", "websocket"]])
async def test_python_socketio_client_through_uvicorn(transports: list[str]) -> None:
    io = chat()
    async with uvicorn_serving(ASGIApp(io, FastAPI(), meeting=meeting())) as url:
        clients = [socketio.AsyncClient(reconnection=False) for _ in range(2)]
        got: asyncio.Queue[Any] = asyncio.Queue()
        clients[1].on("news", got.put_nowait)
        try:
            for client in clients:
                await client.connect(url, transports=transports, wait_timeout=scaled(5))
            assert await clients[0].call("echo", {"n": [1, "two"]}, timeout=scaled(5)) == {
                "n": [1, "two"]}
            assert await clients[0].call("echo", b"\x00\xff", timeout=scaled(5)) == b"\x00\xff"
            assert await clients[0].call("bcast", ("news", "hi"), timeout=scaled(5)) == "sent"
            assert await asyncio.wait_for(got.get(), scaled(5)) == "hi"
            assert clients[0].transport() == transports[-1]
        finally:
            for client in clients:
                await client.disconnect()
        await wait_until(lambda: len(io.left) == 2)  # type: ignore[attr-defined]
        # as on our own server: python-socketio's client closes a websocket before its
        # DISCONNECT is read
        assert set(io.left) <= {"client namespace disconnect",  # type: ignore[attr-defined]
                                "transport close"}, io.left  # type: ignore[attr-defined]


async def wait_until(check: Any, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + scaled(timeout)
    while not check():
        assert loop.time() < deadline, "not within the timeout"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("server", ["uvicorn", "aiohttp"])
async def test_oversize_websocket_message_closes_with_1009(server: str) -> None:
    async with serving(server, chat(max_payload=100)) as url, \
            aiohttp.ClientSession() as http, \
            http.ws_connect(f"{url}/socket.io/?EIO=4&transport=websocket") as ws:
        assert (await ws.receive_str()).startswith("0{")
        await ws.send_str("40")
        assert (await ws.receive_str()).startswith("40{")
        await ws.send_str('451-1["echo",{"_placeholder":true,"num":0}]')
        await ws.send_bytes(b"\x00\xff")  # an attachment: a binary frame back
        assert await ws.receive_str() == '461-1[{"_placeholder":true,"num":0}]'
        assert await ws.receive_bytes() == b"\x00\xff"
        await ws.send_str("4" + "x" * 200)
        message = await ws.receive(timeout=scaled(5))
        assert message.type is aiohttp.WSMsgType.CLOSE
        assert message.data == 1009


# --- aiohttp -------------------------------------------------------------------------------------


@pytest.mark.interop
async def test_aiohttp_attach_with_the_official_and_python_clients() -> None:
    io = chat()
    app = web.Application()

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"hello": "aiohttp"})

    app.router.add_get("/hello", hello)
    mounted = attach(io, app, meeting=meeting())
    async with aiohttp_serving(app) as url, aiohttp.ClientSession() as http:
        assert await get_json(http, url + "/hello") == (200, {"hello": "aiohttp"})
        assert await get_json(http, f"{url}{HANDSHAKE}&sid=nope") == (400, SESSION_UNKNOWN)
        async with http.get(url + "/socket.io/socket.io.js") as response:
            assert response.status == 200

        python = socketio.AsyncClient(reconnection=False)
        from_python: list[Any] = []
        python.on("chat", from_python.append)
        await python.connect(url, wait_timeout=scaled(5))
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(python.disconnect)
            node = await stack.enter_async_context(await start_node(CLIENTS_JS, url))
            await node.send({"op": "open", "group": "p", "count": 5, "transports": ["polling"]})
            await node.next_event({"ev": "opened", "group": "p"}, timeout=scaled(15))
            await node.send({"op": "open", "group": "u", "count": 5})
            await node.next_event({"ev": "opened", "group": "u"}, timeout=scaled(15))
            await node.send({"op": "wait", "tag": "up", "group": "u", "event": "$upgrade",
                             "count": 1})
            await node.next_event({"ev": "waited", "tag": "up"}, timeout=scaled(10))
            await node.send({"op": "emit", "tag": "b", "group": ["p", "u"], "event": "bcast",
                             "args": ["chat", "$name"], "ack": True})
            acks = await node.next_event({"ev": "acks", "tag": "b"}, timeout=scaled(10))
            assert set(acks["acks"].values()) == {"sent"}
            await node.send({"op": "wait", "tag": "w", "group": ["p", "u"], "event": "chat",
                             "count": 9})
            await node.next_event({"ev": "waited", "tag": "w"}, timeout=scaled(10))
            await node.send({"op": "stats", "tag": "s", "group": ["p", "u"]})
            stats = (await node.next_event({"ev": "stats", "tag": "s"}))["clients"]
            names = sorted(stats)
            for name, client in stats.items():
                assert client["transport"] == ("polling" if name[0] == "p" else "websocket")
                assert len(client["sids"]) == 1, name
                # every other client's message, exactly once
                assert Counter(client["received"]["chat"]) == Counter(
                    other for other in names if other != name), name
            await wait_until(lambda: len(from_python) == 10)
            assert sorted(from_python) == names
            assert [e for e in node.events
                    if e.get("ev") in ("disconnect", "connect_error", "error")] == []
            await node.send({"op": "close", "group": ["p", "u"]})
            assert mounted.engine is not None
            await wait_until(lambda: len(mounted.engine.sockets) == 1)  # python's left


# --- the workers' meeting point ------------------------------------------------------------------


@pytest.fixture
def point() -> AsyncIterator[Path]:
    with tempfile.TemporaryDirectory(prefix="sio-meet-") as directory:  # short: a socket path
        yield meeting_point("test", directory)


async def test_workers_meet_and_another_hosts_when_the_host_goes(point: Path) -> None:
    stores = [MeetingStore(f"w{i}", point) for i in range(3)]
    try:
        for store in stores:
            await store.start()
        first, second, third = stores
        assert first.hub is not None and second.hub is None and third.hub is None
        await wait_until(lambda: all(len(s.peers) == 2 for s in stores))
        second.on("test_ping", lambda envelope: ["pong", envelope.origin])
        assert await first.request("w1", "test_ping", None, scaled(5)) == [
            "pong", "w0"]

        await first.close()  # the host goes: one of the others takes over
        await wait_until(lambda: second.peers == {"w2"} and third.peers == {"w1"})
        assert (second.hub is None) != (third.hub is None)
        assert await third.request("w1", "test_ping", None, scaled(5)) == [
            "pong", "w2"]
        newcomer = MeetingStore("w3", point)
        stores.append(newcomer)
        await newcomer.start()
        await wait_until(lambda: newcomer.peers == {"w1", "w2"})
    finally:
        for store in stores:
            await store.close()
    assert list(point.parent.iterdir()) == []  # the last host leaves nothing behind


async def test_a_lone_worker_hosts_its_own_hub(point: Path) -> None:
    store = MeetingStore("alone", point)
    await store.start()
    try:
        assert store.hub is not None and store.peers == set()
    finally:
        await store.close()


# --- the lifespan, mounting, a client that goes away --------------------------------------------


class Lifespan:
    """An ASGI server's side of the lifespan protocol, driven by the test."""

    def __init__(self) -> None:
        self.to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        return await self.to_app.get()

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    async def run(self, app: Any, *messages: str) -> list[dict[str, Any]]:
        for message in messages:
            self.to_app.put_nowait({"type": message})
        await asyncio.wait_for(app({"type": "lifespan"}, self.receive, self.send), scaled(10))
        return self.sent


@pytest.mark.parametrize("other", [False, True])
async def test_a_store_that_cannot_be_reached_fails_the_start_up(other: bool) -> None:
    ran: list[str] = []
    port = free_port()  # nothing listens there
    mounted = ASGIApp(chat(), recording_api(ran) if other else None,
                      store=f"redis://127.0.0.1:{port}/0")
    sent = await Lifespan().run(mounted, "lifespan.startup", "lifespan.shutdown")
    assert [m["type"] for m in sent] == ["lifespan.startup.failed"]
    assert str(port) in sent[0]["message"] and "Traceback" not in sent[0]["message"]
    # told to stop at once (Starlette's runs its start-up and its shutdown), unheard
    assert ran == (["startup", "shutdown"] if other else [])


async def test_lifespan_alone() -> None:
    name = meeting()
    mounted = ASGIApp(chat(), meeting=name)
    sent = await Lifespan().run(mounted, "lifespan.startup", "lifespan.shutdown")
    assert [m["type"] for m in sent] == ["lifespan.startup.complete",
                                         "lifespan.shutdown.complete"]
    # it hosted its workers' hub, and left nothing behind
    assert not meeting_point(name).with_suffix(".sock").exists()


async def test_mounted_under_a_prefix_and_started_by_the_first_request() -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    io = chat()
    mounted = ASGIApp(io, meeting=meeting())
    outer = Starlette(routes=[Mount("/chat", mounted)])
    config = uvicorn.Config(outer, host="127.0.0.1", port=free_port(), lifespan="off",
                            log_level="warning")
    async with uvicorn_serving(config) as url, aiohttp.ClientSession() as http:
        assert mounted.engine is None  # no lifespan: nothing started yet
        status, text = await get_json(http, url + "/chat" + HANDSHAKE)
        assert status == 200 and handshake_sid(text)
        assert mounted.engine is not None
        with pytest.raises(aiohttp.WSServerHandshakeError):  # not ours, and no other app
            await http.ws_connect(url + "/chat/elsewhere")
        # a long-poll whose client goes away is withdrawn: the session closes, as the
        # reference's does ("poll connection closed prematurely")
        sid = handshake_sid(text)
        await get_json(http, f"{url}/chat{HANDSHAKE}&sid={sid}", "POST", b"40")
        await get_json(http, f"{url}/chat{HANDSHAKE}&sid={sid}")  # the CONNECT
        with pytest.raises(TimeoutError):
            async with http.get(f"{url}/chat{HANDSHAKE}&sid={sid}",
                                timeout=aiohttp.ClientTimeout(total=0.3)) as response:
                await response.read()
        await wait_until(lambda: io.left != [])  # type: ignore[attr-defined]
        assert io.left == ["transport error"], io.left  # type: ignore[attr-defined]
        await mounted.shutdown()


@pytest.mark.parametrize("server", ["uvicorn", "aiohttp"])
async def test_the_applications_headers_reach_the_101(server: str) -> None:
    io = chat()

    def initial(headers: dict[str, str], request: Any) -> None:
        headers["X-Served-By"] = "sio_core"

    io.engine_hooks.on("initial_headers", initial)
    async with serving(server, io) as url:
        ws_url = url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
        async with websockets.asyncio.client.connect(ws_url) as ws:
            assert ws.response is not None
            assert ws.response.headers["X-Served-By"] == "sio_core"
            assert str(await ws.recv()).startswith("0{")


async def test_two_workers_forward_to_each_other() -> None:
    """Two ASGI apps of one meeting, each under its own uvicorn, in this process: the requests
    of a session of A that come to B are forwarded to A (a POST, a GET, an oversize POST, the
    websocket upgrade)."""
    name = meeting()
    a_io, b_io = chat(max_payload=1000), chat(max_payload=1000)
    a_app, b_app = ASGIApp(a_io, meeting=name), ASGIApp(b_io, meeting=name)
    async with uvicorn_serving(a_app) as a, uvicorn_serving(b_app) as b, \
            aiohttp.ClientSession() as http:
        assert a_app.engine is not None and b_app.engine is not None
        store = b_app.engine.store
        assert store is not None
        await wait_until(lambda: store.peers == {a_app.engine.owner})  # type: ignore[union-attr]
        sid = handshake_sid((await get_json(http, a + HANDSHAKE))[1])
        session = f"{HANDSHAKE}&sid={sid}"
        assert await get_json(http, b + session, "POST", b"40") == (200, "ok")
        status, text = await get_json(http, b + session)
        assert status == 200 and text.startswith("40{"), text
        assert (await get_json(http, b + session, "POST", b"x" * 5000))[0] == 413  # A's verdict
        ws_url = f"{b}/socket.io/?EIO=4&transport=websocket&sid={sid}"
        async with http.ws_connect(ws_url) as ws:
            await ws.send_str("2probe")
            assert await ws.receive_str(timeout=scaled(5)) == "3probe"
            await ws.send_str("5")
            await ws.send_str('421["echo","through B"]')
            assert await ws.receive_str(timeout=scaled(5)) == '431["through B"]'
        await wait_until(lambda: a_io.left == ["transport close"])  # type: ignore[attr-defined]


async def test_websocket_refused_by_a_server_with_no_http_answer() -> None:
    """Under a server that does not offer the websocket.http.response extension (driven by
    hand here), a refused websocket is closed before it is accepted (the server's 403)."""
    mounted = ASGIApp(chat(), meeting=meeting())
    scope = {"type": "websocket", "path": "/socket.io/", "headers": [], "extensions": {},
             "query_string": b"EIO=4&transport=websocket&sid=nope"}

    async def run(*incoming: dict[str, Any]) -> list[dict[str, Any]]:
        queue = list(incoming)
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return queue.pop(0)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await mounted(scope, receive, send)
        return sent

    assert await run({"type": "websocket.connect"}) == [{"type": "websocket.close",
                                                           "code": 1008}]
    assert await run({"type": "websocket.disconnect", "code": 1006}) == []  # gone at once
    await mounted.shutdown()


async def test_a_meeting_directory_others_can_enter_is_refused(point: Path) -> None:
    point.parent.chmod(0o777)
    store = MeetingStore("w0", point)
    with pytest.raises(PermissionError, match="0700"):
        await store.start()
    await store.close()


async def test_a_worker_that_cannot_host_lets_go_of_the_lock(
    point: Path, caplog: pytest.LogCaptureFixture
) -> None:
    point.with_suffix(".sock").mkdir()  # nothing can listen there
    store = MeetingStore("w0", point, start_timeout=0.3)
    with pytest.raises(TimeoutError):
        await store.start()
    await store.close()
    assert "cannot host the workers' hub" in caplog.text
    assert store.hub is None
    other = MeetingStore("w1", point)
    assert other._take_lock()  # free for another worker to try
    other._release_lock()


async def test_a_first_request_that_cannot_start_it_is_a_503() -> None:
    """With no lifespan, the first request starts Socket.IO: a store that cannot be reached
    makes it (and every later one) a 503, logged once each, never a traceback."""
    mounted = ASGIApp(chat(), store=f"redis://127.0.0.1:{free_port()}/0")
    config = uvicorn.Config(mounted, host="127.0.0.1", port=free_port(), lifespan="off",
                            log_level="warning")
    async with uvicorn_serving(config) as url, aiohttp.ClientSession() as http:
        for _ in range(2):
            assert (await get_json(http, url + HANDSHAKE)) == (503, "Service Unavailable")
