"""Engine.IO against the official ``engine.io-client`` 6.x (node), and raw clients for what the
official one will not do (stay silent on pings).

The server is ``python -m sio_core serve sio_core.echo:app``: every message comes back to its
sender, and the text ``close me`` makes the server close the session. The node side is
``tests/js/eio_client.js``, which runs a scenario of steps and prints each event as a JSON line.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import ServerFactory
from tests.support import REPO_ROOT, JsonObject, ServerProcess, run_node, scaled, start_node

pytestmark = pytest.mark.interop

EIO_CLIENT = REPO_ROOT / "tests" / "js" / "eio_client.js"
APP = "sio_core.echo:app"
PATH = "/socket.io/"

TEXT = "hello, wörld ✓ 😀"
#: every byte value, so a codec that mangles any of them (UTF-8, base64) shows
ALL_BYTES = bytes(range(256))
#: larger than 64 KiB: the WebSocket 8-byte length form, a long base64 body over polling
LARGE = random.Random(4).randbytes(70_000)

#: client mode -> (transports the client may use, the transport messages should travel on)
MODES: dict[str, tuple[list[str], str]] = {
    "polling": (["polling"], "polling"),
    "websocket": (["websocket"], "websocket"),
    "upgrade": (["polling", "websocket"], "websocket"),
}


def scenario(server: ServerProcess, mode: str, *steps: JsonObject,
             timeout: float = 10.0) -> JsonObject:
    transports, _ = MODES[mode]
    # the upgrade mode starts its steps once on websocket, the others once open
    first = {"wait": "upgrade"} if mode == "upgrade" else {"wait": "open"}
    return {
        "url": server.url,
        "path": PATH,
        "transports": transports,
        "upgrade": mode == "upgrade",
        "timeoutMs": round(scaled(timeout) * 1000),
        "steps": [first, *steps],
    }


class EioClient:
    """Runs tests/js/eio_client.js to completion. The scenario goes through a file: a large
    message does not fit in one command-line argument (128 KiB on Linux)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.runs = 0

    async def run(self, server: ServerProcess, mode: str, *steps: JsonObject,
                  timeout: float = 10.0) -> list[JsonObject]:
        self.runs += 1
        path = self.directory / f"scenario-{self.runs}.json"
        path.write_text(json.dumps(scenario(server, mode, *steps, timeout=timeout)))
        result = await run_node(EIO_CLIENT, f"@{path}", timeout=timeout + 5)
        result.check()
        events = result.lines()
        assert not [e for e in events if e["event"] in ("error", "timeout")], result.describe()
        return events


@pytest.fixture
def eio_client(tmp_path: Path) -> EioClient:
    return EioClient(tmp_path)


def only(events: list[JsonObject], name: str) -> list[JsonObject]:
    return [e for e in events if e["event"] == name]


def sid_of(events: list[JsonObject]) -> str:
    (opened,) = only(events, "open")
    sid: str = opened["sid"]
    return sid


def text_echo(transport: str, data: str) -> JsonObject:
    return {"event": "message", "transport": transport, "type": "text", "data": data}


def binary_echo(transport: str, data: bytes) -> JsonObject:
    return {"event": "message", "transport": transport, "type": "binary", "hex": data.hex(),
            "length": len(data)}


def polling_url(server: ServerProcess, sid: str | None = None) -> str:
    url = f"{server.url}{PATH}?EIO=4&transport=polling"
    return url if sid is None else f"{url}&sid={sid}"


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url) as response:
        return response.status, await response.text()


async def assert_session_unknown(server: ServerProcess, sid: str) -> None:
    """The server no longer knows ``sid``: a poll for it gets 400 code 1."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=scaled(5))) as http:
        status, body = await get(http, polling_url(server, sid))
    assert (status, json.loads(body)) == (400, {"code": 1, "message": "Session ID unknown"})


# --- messages both ways, on every transport --------------------------------------------------


@pytest.mark.parametrize("mode", list(MODES))
async def test_text_and_binary_messages_echo_exactly(
    server_factory: ServerFactory, eio_client: EioClient, mode: str
) -> None:
    server = await server_factory(APP)
    events = await eio_client.run(
        server, mode,
        {"send": TEXT}, {"wait": "message"},
        {"sendBinary": ALL_BYTES.hex()}, {"wait": "message"},
        {"sendBinary": LARGE.hex()}, {"wait": "message"},
        # several in one loop turn: one polling body joined with \x1e, or several frames
        {"send": "a"}, {"sendBinary": "00"}, {"send": "c"}, {"wait": "message", "count": 3},
        {"send": ""}, {"sendBinary": ""}, {"wait": "message", "count": 2},
    )  # fmt: skip
    _, transport = MODES[mode]
    assert only(events, "message") == [
        text_echo(transport, TEXT),
        binary_echo(transport, ALL_BYTES),
        binary_echo(transport, LARGE),
        text_echo(transport, "a"),
        binary_echo(transport, b"\x00"),
        text_echo(transport, "c"),
        # an empty text message reaches the client's handler as undefined
        {"event": "message", "transport": transport, "type": "empty"},
        binary_echo(transport, b""),
    ]
    sid = sid_of(events)
    started_on = "websocket" if mode == "websocket" else "polling"
    await server.wait_for_log(rf"open {re.escape(sid)} via {started_on}")
    await server.wait_for_log(rf"close {re.escape(sid)}: transport close")


@pytest.mark.parametrize("mode", ["polling", "websocket"])
async def test_client_without_upgrade_stays_on_its_transport(
    server_factory: ServerFactory, eio_client: EioClient, mode: str
) -> None:
    server = await server_factory(APP)
    events = await eio_client.run(server, mode, {"send": "x"}, {"wait": "message"})
    (handshake,) = only(events, "handshake")
    # the server offers the upgrade only to a session that started on polling
    assert handshake["data"]["upgrades"] == (["websocket"] if mode == "polling" else [])
    assert only(events, "upgrading") == only(events, "upgrade") == []
    assert {e["transport"] for e in only(events, "packet")} == {mode}


async def test_polling_upgrades_to_websocket(server_factory: ServerFactory) -> None:
    server = await server_factory(APP)
    steps = [
        {"wait": "upgrade"},
        {"stdin": True},  # the test checks the server side meanwhile
        {"send": TEXT}, {"wait": "message"},
        {"sendBinary": ALL_BYTES.hex()}, {"wait": "message"},
    ]  # fmt: skip
    script = json.dumps({"url": server.url, "path": PATH, "transports": ["polling", "websocket"],
                         "timeoutMs": round(scaled(10) * 1000), "steps": steps})
    async with await start_node(EIO_CLIENT, script) as node:
        opened = await node.next_event({"event": "open"})
        assert opened["transport"] == "polling"
        upgrade = await node.next_event({"event": "upgrade"})
        assert upgrade["transport"] == "websocket"
        await node.next_event({"event": "paused"})
        # the server agrees: polling requests for this sid are refused from now on
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=scaled(5))) as http:
            status, body = await get(http, polling_url(server, opened["sid"]))
        assert (status, json.loads(body)) == (400, {"code": 3, "message": "Bad request"})
        await node.send("go on")
        result = await node.wait()
    result.check()
    events = result.lines()
    assert only(events, "message") == [
        text_echo("websocket", TEXT),
        binary_echo("websocket", ALL_BYTES),
    ]
    # the pending poll was ended with a noop; none may follow on the websocket after "5"
    upgrade_at = events.index(upgrade)
    assert {"event": "packet", "type": "noop", "transport": "polling"} in events[:upgrade_at]
    assert [e for e in events[upgrade_at:] if e["event"] == "packet" and e["type"] == "noop"] == []
    await server.wait_for_log(rf"open {re.escape(opened['sid'])} via polling")


async def test_server_without_websocket_offers_no_upgrade(
    server_factory: ServerFactory, eio_client: EioClient
) -> None:
    server = await server_factory(APP, "--transports", "polling")
    events = await eio_client.run(server, "polling", {"send": "x"}, {"wait": "message"})
    (handshake,) = only(events, "handshake")
    assert handshake["data"]["upgrades"] == []


# --- heartbeat -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(MODES))
async def test_official_client_answers_pings_and_stays(
    server_factory: ServerFactory, eio_client: EioClient, mode: str
) -> None:
    server = await server_factory(APP, "--ping-interval", "0.2",
                                  "--ping-timeout", str(scaled(1.0)))
    events = await eio_client.run(server, mode, {"wait": "ping", "count": 3},
                              {"send": "still here"}, {"wait": "message"})
    (handshake,) = only(events, "handshake")
    assert handshake["data"]["pingInterval"] == 200  # milliseconds, exact
    _, transport = MODES[mode]
    assert only(events, "message") == [text_echo(transport, "still here")]
    # the only close is the client's own, at the end
    assert [e["reason"] for e in only(events, "close")] == ["forced close"]
    assert "ping timeout" not in server.log_text()


async def test_silent_polling_client_is_dropped_on_time(server_factory: ServerFactory) -> None:
    server = await server_factory(APP, "--ping-interval", "0.3", "--ping-timeout", "0.2")
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=scaled(5))) as http:
        start = loop.time()
        status, body = await get(http, polling_url(server))
        assert status == 200 and body.startswith("0"), body
        handshake = json.loads(body[1:])
        assert (handshake["pingInterval"], handshake["pingTimeout"]) == (300, 200)
        sid = handshake["sid"]
        # the first poll is held until the ping is due, 300 ms after the handshake
        assert await get(http, polling_url(server, sid)) == (200, "2")
        pinged_after = loop.time() - start
        # no pong: the next poll is held until the server gives up on us and closes
        assert await get(http, polling_url(server, sid)) == (200, "1")
        gone_after = loop.time() - start
    assert 0.25 <= pinged_after < gone_after, (pinged_after, gone_after)
    assert 0.4 <= gone_after <= scaled(1.0), gone_after
    await assert_session_unknown(server, sid)
    await server.wait_for_log(rf"close {re.escape(sid)}: ping timeout")


async def test_silent_websocket_client_is_dropped_on_time(server_factory: ServerFactory) -> None:
    server = await server_factory(APP, "--ping-interval", "0.3", "--ping-timeout", "0.2")
    loop = asyncio.get_running_loop()
    url = f"{server.url}{PATH}?EIO=4&transport=websocket"
    async with aiohttp.ClientSession() as http:
        start = loop.time()
        async with http.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_close=scaled(5))) as ws:
            opened = await ws.receive(timeout=scaled(5))
            assert opened.type is aiohttp.WSMsgType.TEXT and opened.data.startswith("0")
            sid = json.loads(opened.data[1:])["sid"]
            ping = await ws.receive(timeout=scaled(5))
            pinged_after = loop.time() - start
            assert (ping.type, ping.data) == (aiohttp.WSMsgType.TEXT, "2")
            # no pong: the next thing on the socket is the server closing it
            closing = await ws.receive(timeout=scaled(5))
            gone_after = loop.time() - start
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), closing
    assert 0.25 <= pinged_after < gone_after, (pinged_after, gone_after)
    assert 0.4 <= gone_after <= scaled(1.0), gone_after
    await assert_session_unknown(server, sid)
    await server.wait_for_log(rf"close {re.escape(sid)}: ping timeout")


# --- closing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(MODES))
async def test_client_close_ends_the_session(
    server_factory: ServerFactory, eio_client: EioClient, mode: str
) -> None:
    server = await server_factory(APP)
    events = await eio_client.run(server, mode, {"close": True}, {"wait": "close"})
    assert [e["reason"] for e in only(events, "close")] == ["forced close"]
    sid = sid_of(events)
    await server.wait_for_log(rf"close {re.escape(sid)}: transport close")
    await assert_session_unknown(server, sid)


@pytest.mark.parametrize("mode", list(MODES))
async def test_server_close_reaches_the_client(
    server_factory: ServerFactory, eio_client: EioClient, mode: str
) -> None:
    server = await server_factory(APP)
    events = await eio_client.run(server, mode, {"send": "close me"}, {"wait": "close"})
    closes: list[dict[str, Any]] = only(events, "close")
    assert [e["reason"] for e in closes] == ["transport close"], closes
    assert only(events, "message") == []
    sid = sid_of(events)
    await server.wait_for_log(rf"close {re.escape(sid)}: forced close")
    await assert_session_unknown(server, sid)
