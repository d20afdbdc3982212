"""sio_core.Emitter: emitting to a cluster from a program that runs no server, through Redis.

- The wire format: the same calls made by ``tests/emitter_ops.py`` (sio_core.Emitter, a plain
  sync script) and ``tests/js/emitter_ops.js`` (the JavaScript ``@socket.io/redis-emitter``) are
  captured by a raw Redis subscriber: the same channels, the same messages once decoded (the
  broadcasts byte for byte), the same reserved names refused.
- Two sio_core nodes of two workers each (``--store redis://``), official socket.io-client
  clients owned by every worker: the script's emits reach them (to all, to a room, except a
  room, to a namespace, bytes, sockets_join then an emit to the joined room, sockets_leave,
  server_side_emit, disconnect_sockets).
- The same script against the reference JavaScript server on ``@socket.io/redis-adapter``.
- In-process: the asyncio client, the reserved names, chaining, the lazy export.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from sio_core import Emitter
from sio_core.exceptions import ReservedEventError
from sio_core.protocol.socketio import RESERVED_EVENTS
from tests.support import (
    REPO_ROOT,
    JsonObject,
    free_port,
    parse_json_lines,
    run_node,
    scaled,
    start_node,
)
from tests.test_redis import (
    CLUSTER_CLIENTS,
    Clients,
    assert_clean_log,
    redis_args,
    redis_client,
    start_node_server,
    start_peer,
    wait_sessions_gone,
)

EMITTER_SCRIPT = REPO_ROOT / "tests" / "emitter_ops.py"
JS_EMITTER_SCRIPT = REPO_ROOT / "tests" / "js" / "emitter_ops.js"

#: every byte value, and a size past msgpack's bin8 (256 bytes: bin16)
BLOB = bytes(range(256)) * 2


def as_json(data: bytes) -> JsonObject:
    return {"$bin": base64.b64encode(data).decode()}


# --- the scripts ---------------------------------------------------------------------------------


async def run_python_emitter(redis_url: str, key: str, calls: list[JsonObject]) -> list[JsonObject]:
    """tests/emitter_ops.py in a process of its own (a plain script: no event loop); its lines."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(EMITTER_SCRIPT), redis_url, key, json.dumps(calls),
        cwd=REPO_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), scaled(30))
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, stderr.decode()
    return parse_json_lines(stdout.decode())


async def run_js_emitter(redis_url: str, key: str, calls: list[JsonObject]) -> list[JsonObject]:
    result = (await run_node(JS_EMITTER_SCRIPT, redis_url, key, json.dumps(calls), timeout=30))
    return result.check().lines()


# --- 1. the wire format, against the JavaScript emitter ------------------------------------------

WIRE_CALLS: list[JsonObject] = [
    {"call": "emit", "args": ["hello", 1, "two", {"a": [1, 2.5, None, True, -5, 2**40]}]},
    {"call": "emit", "args": ["text", "é" * 40, "x" * 300]},
    {"call": "emit", "to": ["room1"], "args": ["one room"]},
    {"call": "emit", "to": ["r1", "r2"], "except": ["x1", "x2"], "args": ["rooms", 3]},
    {"call": "emit", "to": ["r1", "r1"], "args": ["the same room twice"]},
    {"call": "emit", "nsp": "/admin", "args": ["nsp"]},
    {"call": "emit", "nsp": "admin", "to": ["r"], "args": ["nsp without its slash"]},
    {"call": "emit", "args": ["bin", as_json(BLOB), {"nested": [as_json(b"\x00\x01")]}]},
    {"call": "emit", "flags": {"volatile": True, "compress": False}, "args": ["flags"]},
    {"call": "sockets_join", "to": ["room1"], "except": ["x"], "args": [["room2", "room3"]]},
    {"call": "sockets_leave", "nsp": "/admin", "args": [["room1"]]},
    {"call": "disconnect_sockets", "to": ["r"], "args": [True]},
    {"call": "disconnect_sockets", "args": []},
    {"call": "server_side_emit", "args": ["hello", 1, {"a": "é"}]},
    {"call": "server_side_emit", "nsp": "/admin", "args": ["hello"]},
    *({"call": "emit", "args": [name, 1]} for name in sorted(RESERVED_EVENTS)),
]


@contextlib.asynccontextmanager
async def captured(redis_url: str, prefix: str) -> AsyncIterator[list[tuple[str, bytes]]]:
    """Every message published on ``<prefix>...`` while in the block, as (channel, data)."""
    messages: list[tuple[str, bytes]] = []
    async with redis_client(redis_url) as client:
        pubsub = client.pubsub()
        await pubsub.psubscribe(f"{prefix}*")
        async with asyncio.timeout(scaled(10)):  # subscribed once Redis says so
            while (await pubsub.get_message(timeout=1.0) or {}).get("type") != "psubscribe":
                pass
        fence = f"{prefix}-fence"
        yield messages
        # one more message of our own: once it is in, so is everything published before it
        await client.publish(fence, b"")
        async with asyncio.timeout(scaled(10)):
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is None or message["type"] != "pmessage":
                    continue
                channel = message["channel"].decode()
                if channel == fence:
                    break
                messages.append((channel, message["data"]))
        await pubsub.aclose()


def decoded(channel: str, data: bytes) -> Any:
    """As the servers decode it: a request in JSON if it starts with "{", else msgpack."""
    if "-request#" in channel and data[:1] == b"{":
        return json.loads(data)
    return msgpack.unpackb(data, raw=False)


@pytest.mark.interop
async def test_messages_are_those_of_the_javascript_emitter(
    redis_url: str, redis_prefix: str
) -> None:
    async with captured(redis_url, redis_prefix + "js") as from_js:
        js_lines = await run_js_emitter(redis_url, redis_prefix + "js", WIRE_CALLS)
    async with captured(redis_url, redis_prefix + "py") as from_py:
        py_lines = await run_python_emitter(redis_url, redis_prefix + "py", WIRE_CALLS)

    # the same names refused, and nothing published for them
    [reserved] = [line for line in js_lines if line.get("ev") == "reserved"]
    assert set(reserved["names"]) == RESERVED_EVENTS
    js_refused = ["refused" in line for line in js_lines if "call" in line]
    py_refused = ["refused" in line for line in py_lines]
    assert js_refused == py_refused == [False] * (len(WIRE_CALLS) - len(RESERVED_EVENTS)) + [
        True
    ] * len(RESERVED_EVENTS)
    assert all("ReservedEventError" in line["refused"] for line in py_lines if "refused" in line)

    assert len(from_js) == len(from_py) == len(WIRE_CALLS) - len(RESERVED_EVENTS)
    for call, (js_channel, js_data), (py_channel, py_data) in zip(
        WIRE_CALLS, from_js, from_py, strict=False
    ):
        assert js_channel.removeprefix(redis_prefix + "js") == py_channel.removeprefix(
            redis_prefix + "py"
        ), call
        assert decoded(py_channel, py_data) == decoded(js_channel, js_data), call
        if "-request#" not in py_channel:
            assert py_data == js_data, call  # the broadcasts even byte for byte
    # spot checks of what both sent, against the adapter's documented shapes
    channel, data = from_py[2]
    assert channel == f"{redis_prefix}py#/#room1#"
    assert decoded(channel, data) == [
        "emitter", {"type": 2, "data": ["one room"], "nsp": "/"},
        {"rooms": ["room1"], "flags": {}, "except": []},
    ]  # fmt: skip
    channel, data = from_py[7]
    assert decoded(channel, data)[1]["data"] == ["bin", BLOB, {"nested": [b"\x00\x01"]}]
    channel, data = from_py[9]
    assert channel == f"{redis_prefix}py-request#/#"
    assert json.loads(data) == {
        "type": 2, "opts": {"rooms": ["room1"], "except": ["x"]}, "rooms": ["room2", "room3"]
    }  # fmt: skip


# --- 2. two sio_core nodes of two workers ---------------------------------------------------------

ROOT_CALLS: list[JsonObject] = [
    {"call": "emit", "args": ["all", "everyone"]},
    {"call": "emit", "to": ["room1"], "args": ["room", "r"]},
    {"call": "emit", "except": ["vip"], "args": ["not_vip", "n"]},
    {"call": "emit", "nsp": "/admin", "args": ["admin", "a"]},
    {"call": "emit", "args": ["bin", as_json(BLOB)]},
    {"call": "emit", "args": ["bin_nested", {"raw": as_json(BLOB), "list": [1, as_json(b"\0")]}]},
    {"call": "sockets_join", "to": ["room1"], "args": [["joined"]]},
    {"call": "emit", "to": ["joined"], "args": ["in_joined", "j"]},
    {"call": "sockets_leave", "to": ["room1"], "args": [["room1"]]},
    {"call": "emit", "to": ["room1"], "args": ["after_leave", "x"]},
    {"call": "server_side_emit", "args": ["hello", "emitter", as_json(b"\x00\x01\xff")]},
    {"call": "disconnect_sockets", "to": ["vip"], "args": [True]},
    {"call": "emit", "args": ["fence", 1]},
    {"call": "emit", "nsp": "/admin", "args": ["fence", 1]},
]

#: what each root client receives, by its rooms (room1, vip, or none)
ALWAYS = {"all": ["everyone"], "bin": [as_json(BLOB)],
          "bin_nested": [{"raw": as_json(BLOB), "list": [1, as_json(b"\0")]}]}  # fmt: skip
EXPECTED = {
    "room1": {**ALWAYS, "room": ["r"], "not_vip": ["n"], "in_joined": ["j"], "fence": [1]},
    "vip": {**ALWAYS, "$disconnect": ["io server disconnect"]},
    "": {**ALWAYS, "not_vip": ["n"], "fence": [1]},
}
ADMIN_EXPECTED = {"admin": ["a"], "fence": [1]}


class Audience:
    """The clients of a scenario: cluster_clients.js processes, each client's process and the
    worker that owns its session."""

    def __init__(self) -> None:
        self.owner: dict[str, str] = {}
        self.process: dict[str, Clients] = {}

    async def open(self, clients: Clients, group: str, count: int) -> list[str]:
        await clients.node.send(
            {"op": "open", "group": group, "count": count, "reconnection": False}
        )
        await clients.node.next_event({"ev": "opened", "group": group}, timeout=15)
        names = [f"{group}{i}" for i in range(count)]
        for name in names:
            self.process[name] = clients
        return names

    def names(self, clients: Clients) -> list[str]:
        return [name for name, process in self.process.items() if process is clients]


async def check_scenario(
    redis_url: str, prefix: str, root: Audience, admin: Audience, subscribers: int
) -> None:
    """Put the root clients in rooms (per owner: the first in room1, the second in vip), run
    ROOT_CALLS from the script, and check what every client received, exactly."""
    rooms: dict[str, str] = dict.fromkeys(root.owner, "")
    for owner in sorted(set(root.owner.values())):
        first, second = sorted(n for n, o in root.owner.items() if o == owner)[:2]
        rooms[first], rooms[second] = "room1", "vip"
    for name, room in rooms.items():
        if room:
            await root.process[name].command(
                "acks", op="emit", names=[name], event="join", args=[room], ack=True
            )

    lines = await run_python_emitter(redis_url, prefix, ROOT_CALLS)
    # every call reached every server's subscription (nothing was refused)
    assert [line.get("result") for line in lines] == [subscribers] * len(ROOT_CALLS), lines

    for audience in (root, admin):
        for clients in set(audience.process.values()):
            names = audience.names(clients)
            waiting = [n for n in names if rooms.get(n) != "vip"]
            await clients.command("waited", op="wait", names=waiting, event="fence", count=1)
            vips = [n for n in names if rooms.get(n) == "vip"]
            if vips:
                await clients.command("waited", op="wait", names=vips, event="$disconnect", count=1)
            stats = (await clients.command("stats", op="stats", names=names))["clients"]
            for name, client in stats.items():
                got = {
                    k: v for k, v in client["received"].items() if k not in ("$connect", "$upgrade")
                }
                expected = EXPECTED[rooms[name]] if audience is root else ADMIN_EXPECTED
                assert got == expected, (name, rooms.get(name), audience.owner.get(name))


@pytest.mark.interop
async def test_a_script_reaches_every_worker_of_two_nodes(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    args = redis_args(redis_url, redis_prefix)
    async with contextlib.AsyncExitStack() as stack:
        nodes = []
        for name in "AB":
            node = await start_node_server(
                *args, workers=2, name=name, log_path=tmp_path / f"{name}.log"
            )
            stack.push_async_callback(node.stop)
            nodes.append(node)
        root, admin = Audience(), Audience()
        for node in nodes:
            clients = Clients(await stack.enter_async_context(
                await start_node(CLUSTER_CLIENTS, node.url)))  # fmt: skip
            # clients until each worker of the node owns two (the kernel spreads connections
            # among the workers' listeners by a hash: a few rounds at most)
            for round_ in range(10):
                names = await root.open(clients, f"n{node.port}r{round_}c", 4)
                acks = await clients.command(
                    "acks", op="emit", names=names, event="whoami", ack=True
                )
                for name, who in acks["acks"].items():
                    root.owner[name] = f"{who['node']}-w{who['worker']}"
                owned = Counter(root.owner[n] for n in root.names(clients))
                if len(owned) == 2 and min(owned.values()) >= 2:
                    break
            else:
                pytest.fail(f"the kernel gave every connection to one worker: {owned}")
            admin_clients = Clients(await stack.enter_async_context(
                await start_node(CLUSTER_CLIENTS, node.url + "/admin")))  # fmt: skip
            await admin.open(admin_clients, f"admin{node.port}c", 2)
        assert sorted(set(root.owner.values())) == ["A-w1", "A-w2", "B-w1", "B-w2"]

        await check_scenario(redis_url, redis_prefix, root, admin, subscribers=4)

        # the server-side emit: the application's io.on("hello") on every worker, bytes intact
        for node in nodes:
            await node.wait_for_log(
                r'(?s)(server-side hello \["emitter", \{"\$bin": "AAH/"\}\].*){2}'
            )
        for clients in {*root.process.values(), *admin.process.values()}:
            assert [e for e in clients.troubles() if e.get("ev") != "disconnect"] == []
            await clients.command(None, op="exit")
        await wait_sessions_gone(*nodes)
        for node in nodes:
            await node.stop()
            assert node.returncode == 0
            assert_clean_log(node)


# --- 3. the reference JavaScript server ----------------------------------------------------------


@pytest.mark.interop
async def test_a_script_reaches_a_javascript_server(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    port = free_port()
    async with contextlib.AsyncExitStack() as stack:
        peer = await stack.enter_async_context(
            await start_peer(tmp_path, redis_url, redis_prefix, str(port))
        )
        url = f"http://127.0.0.1:{port}"
        root, admin = Audience(), Audience()
        clients = Clients(await stack.enter_async_context(await start_node(CLUSTER_CLIENTS, url)))
        for name in await root.open(clients, "c", 4):
            root.owner[name] = "js"
        admin_clients = Clients(
            await stack.enter_async_context(await start_node(CLUSTER_CLIENTS, url + "/admin"))
        )
        await admin.open(admin_clients, "admin", 2)

        await check_scenario(redis_url, redis_prefix, root, admin, subscribers=1)

        # the server-side emit in msgpack (it has bytes): a Buffer for the JavaScript server
        event = await peer.next_event({"ev": "server_side"}, timeout=5)
        assert event["args"] == ["emitter", {"$bin": "AAH/"}]
        assert [e for e in peer.events if e.get("ev") in ("error", "redis_error")] == []


# --- 4. in-process -------------------------------------------------------------------------------


class Recorder:
    """A Publisher that keeps what it is given (for the checks that need no Redis)."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []

    def publish(self, channel: str, message: bytes) -> int:
        self.published.append((channel, message))
        return 0


@pytest.mark.parametrize("name", sorted(RESERVED_EVENTS))
def test_reserved_names_are_refused_and_nothing_is_published(name: str) -> None:
    recorder = Recorder()
    emitter = Emitter(recorder)
    with pytest.raises(ReservedEventError):
        emitter.to("room").emit(name, 1)
    assert recorder.published == []


def test_chaining_leaves_the_emitter_as_it_was() -> None:
    recorder = Recorder()
    emitter = Emitter(recorder, key="k")
    in_room = emitter.to("a", ["b", "a"]).except_("c")
    in_room.volatile.emit("x")
    emitter.emit("y")
    emitter.of("admin").to("a").emit("z")
    [(c1, m1), (c2, m2), (c3, m3)] = recorder.published
    assert c1 == "k#/#" and msgpack.unpackb(m1)[2] == {
        "rooms": ["a", "b"], "flags": {"volatile": True}, "except": ["c"]
    }  # fmt: skip
    assert c2 == "k#/#" and msgpack.unpackb(m2)[2] == {"rooms": [], "flags": {}, "except": []}
    assert c3 == "k#/admin#a#" and msgpack.unpackb(m3)[1]["nsp"] == "/admin"


async def test_an_asyncio_client_makes_every_call_awaitable(
    redis_url: str, redis_prefix: str
) -> None:
    async with redis_client(redis_url) as client, captured(redis_url, redis_prefix) as messages:
        emitter = Emitter(client, key=redis_prefix)
        assert await emitter.to("r").emit("x", b"\x00") == 1  # our capture subscribes
        assert await emitter.of("/admin").disconnect_sockets(close=True) == 1
        assert await emitter.server_side_emit("hello", b"\x01") == 1
    assert messages == [
        (f"{redis_prefix}#/#r#", msgpack.packb([
            "emitter", {"type": 2, "data": ["x", b"\x00"], "nsp": "/"},
            {"rooms": ["r"], "flags": {}, "except": []}])),
        (f"{redis_prefix}-request#/admin#",
         b'{"type":4,"opts":{"rooms":[],"except":[]},"close":true}'),
        (f"{redis_prefix}-request#/#",
         msgpack.packb({"uid": "emitter", "type": 6, "data": ["hello", b"\x01"]})),
    ]  # fmt: skip


def test_an_unreachable_redis_raises_at_the_call() -> None:
    with Emitter(f"redis://127.0.0.1:{free_port()}/0") as emitter, pytest.raises(
        RedisConnectionError
    ):
        emitter.emit("x")


def test_importing_sio_core_does_not_import_redis() -> None:
    code = (
        "import sys, sio_core\n"
        "assert 'redis' not in sys.modules, 'redis imported'\n"
        "from sio_core import Emitter\n"
        "assert 'redis' in sys.modules and Emitter.__module__ == 'sio_core.emitter'\n"
        "try:\n    sio_core.Nothing\nexcept AttributeError:\n    pass\n"
        "else:\n    raise SystemExit('sio_core.Nothing exists')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=scaled(30)
    )
    assert done.returncode == 0, done.stderr
