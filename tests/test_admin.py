"""sio_core.admin in-process: instrument()'s options, the login, sessions across workers, what is
reported to the UI in each mode, the UI's actions and what malformed ones do.

A real :class:`~sio_core.Server` and real Engine.IO sessions with no transport under them (the
``Session`` below): the test feeds the clients' Socket.IO messages in and
decodes what the server sends out. Several workers are Servers whose MemoryStores share a
MemoryBus (envelopes packed and unpacked on the way, as on the hub). The same protocol against a
running ``--workers 4`` server, with the official client, is tests/test_admin_cluster.py; the UI
itself in Chromium, tests/test_admin_browser.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from sio_core import Server
from sio_core.admin import instrument, ui_files
from sio_core.admin.auth import BasicAuth, Sessions
from sio_core.admin.events import EventBuffer
from sio_core.admin.observer import AdminObserver
from sio_core.admin.serialize import ADMIN_KEY, plain, serialize_socket
from sio_core.protocol import socketio as sio
from sio_core.protocol.session import Transport
from sio_core.socketio import client as client_module
from sio_core.socketio import handlers
from sio_core.stores.memory import MemoryBus, MemoryStore
from tests.engine_session import Session
from tests.support import NODE_MODULES
from tests.test_socketio_limits import settle

#: bcrypt.hashpw(b"correct horse", bcrypt.gensalt(4))
HASH = "$2b$04$jlM4FkEeFuB3yKa3alnKdOLcBME2PgQjYduxi40ERX1i8deU5.dsK"
AUTH = {"type": "basic", "username": "admin", "password": HASH}
LOGIN = {"username": "admin", "password": "correct horse"}
#: bcryptjs (the JavaScript admin's) hashSync("p" * 72 + "-and-then-some", 4): it reads 72 bytes
LONG_PASSWORD = "p" * 72 + "-and-then-some"
LONG_HASH = "$2a$04$tJ6OhzuRJHJuBiOzrLWJEud8agY2pM46ARG0/JOyH5d8pEL5ZvBdW"
ACTIONS = ["EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT"]
#: no stats tick during a test but the one instrument() sends at once
NO_TICKS = 1000.0


class Peer:
    """A client of ``io`` (a Session), its Socket.IO packets decoded."""

    def __init__(self, io: Server) -> None:
        self.session = Session(io)
        self._decoder = sio.Decoder()

    def connect(self, nsp: str = "/", auth: dict[str, Any] | None = None) -> None:
        prefix = "" if nsp == "/" else nsp + ","
        self.session.send("0" + prefix + (json.dumps(auth) if auth is not None else ""))

    def emit(self, nsp: str, *data: Any) -> None:
        prefix = "" if nsp == "/" else nsp + ","
        self.session.send("2" + prefix + json.dumps(list(data)))

    def packets(self) -> list[sio.Packet]:
        out = []
        for message in self.session.received():
            assert isinstance(message, str)
            packet = self._decoder.feed_text(message)
            assert packet is not None
            out.append(packet)
        return out

    def events(self) -> list[list[Any]]:
        """The events received since the last call: [name, *args] each."""
        return [p.data for p in self.packets() if p.type is sio.PacketType.EVENT]


def named(events: list[list[Any]], name: str) -> list[list[Any]]:
    """The arguments of each ``name`` event."""
    return [event[1:] for event in events if event[0] == name]


async def connected() -> None:
    """Until the CONNECTs that went through middlewares (the login: bcrypt runs in a thread) and
    the handlers they started (all_sockets: a query of every worker) are done."""
    await asyncio.gather(*list(client_module._connects))
    await asyncio.gather(*list(handlers._tasks))


@pytest.fixture
def io() -> Server:
    return Server()


async def ui(io: Server, auth: dict[str, Any] | None = None) -> Peer:
    peer = Peer(io)
    peer.connect("/admin", auth)
    await connected()
    return peer


# --- options --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("auth", "options", "error"), [
    (None, {}, "auth: False, or"),
    (True, {}, "auth: False, or"),
    ({"type": "basic", "username": "admin", "password": "correct horse"}, {}, "bcrypt hash"),
    ({"type": "basic", "username": "", "password": HASH}, {}, "username"),
    ({"type": "basic", "username": "admin", "password": HASH[:28] + "z" + HASH[29:]}, {},
     "not a valid bcrypt hash"),                                      # its salt is not one
    ({"type": "jwt"}, {}, "auth: False, or"),
    (False, {"mode": "debug"}, "mode"),
    (False, {"namespace_name": "admin"}, "namespace_name"),
    (False, {"stats_interval": 0}, "stats_interval"),
    (False, {"max_sessions": 0}, "max_sessions"),
])  # fmt: skip
def test_options_are_checked(io: Server, auth: Any, options: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        instrument(io, auth=auth, **options)
    assert io.observer is None


def test_auth_must_be_given_and_a_server_is_instrumented_once(io: Server) -> None:
    with pytest.raises(TypeError):
        instrument(io)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        instrument(io, auth=False, colour="blue")
    assert Server().observer is None
    instrument(io, auth=False)
    with pytest.raises(RuntimeError, match="instrumented already"):
        instrument(io, auth=False)


# --- the login ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("username", "password", "ok"), [
    ("admin", "correct horse", True),
    ("admin", "correct horse ", False),
    ("Admin", "correct horse", False),
    ("admin", None, False),
    (["admin"], "correct horse", False),
    ("admin", "x" * 1000, False),          # longer than bcrypt reads: cut, not an error
])  # fmt: skip
async def test_basic_auth_checks_username_and_password(username: Any, password: Any,
                                                       ok: bool) -> None:
    auth = BasicAuth.from_option(AUTH)
    assert auth is not None
    assert await auth.check(username, password) is ok


async def test_a_hash_made_by_bcryptjs_checks_a_long_password_as_there() -> None:
    auth = BasicAuth.from_option({"type": "basic", "username": "a", "password": LONG_HASH})
    assert auth is not None
    assert await auth.check("a", LONG_PASSWORD)
    assert await auth.check("a", LONG_PASSWORD[:72])      # bcryptjs reads 72 bytes, so do we
    assert not await auth.check("a", LONG_PASSWORD[:71])


async def test_login_then_session(io: Server) -> None:
    instrument(io, auth=AUTH, stats_interval=NO_TICKS)
    refused = await ui(io, {"username": "admin", "password": "wrong"})
    [error] = refused.packets()
    assert error.type is sio.PacketType.CONNECT_ERROR
    assert error.data == {"message": "invalid credentials"}

    peer = await ui(io, dict(LOGIN))
    packets = peer.packets()
    assert packets[0].type is sio.PacketType.CONNECT
    events = [p.data for p in packets[1:]]
    [[session]] = named(events, "session")
    # its own connection is reported to it too, as to any admin socket
    assert [e[0] for e in events] == ["room_joined", "socket_connected", "session", "config",
                                      "all_sockets"]
    admin_socket = next(iter(io.namespaces["/admin"].sockets.values()))
    assert admin_socket.handshake.auth == {"username": "admin"}  # the password is not kept

    again = await ui(io, {"sessionId": session})
    assert [e[0] for e in again.events()] == ["room_joined", "socket_connected", "config",
                                              "all_sockets"]
    assert [s.handshake.auth for s in io.namespaces["/admin"].sockets.values()] == [
        {"username": "admin"}, {}]
    forged = await ui(io, {"sessionId": session[::-1]})
    assert forged.packets()[0].type is sio.PacketType.CONNECT_ERROR


@pytest.fixture
async def workers() -> AsyncIterator[list[Server]]:
    """Two workers of one machine: Servers whose stores share a bus, instrumented alike."""
    bus = MemoryBus()
    servers, stores = [], []
    for owner in ("w1", "w2"):
        io, store = Server(), MemoryStore(owner, bus)
        io.attach_store(store)
        await store.start()
        instrument(io, auth=AUTH, stats_interval=NO_TICKS)
        servers.append(io)
        stores.append(store)
    yield servers
    for store in stores:
        await store.close()


async def test_a_session_made_by_one_worker_is_good_on_another(workers: list[Server]) -> None:
    first, second = workers
    [[session]] = named((await ui(first, dict(LOGIN))).events(), "session")
    peer = await ui(second, {"sessionId": session})
    assert peer.packets()[0].type is sio.PacketType.CONNECT
    refused = await ui(second, {"sessionId": "f" * 32})
    assert refused.packets()[0].type is sio.PacketType.CONNECT_ERROR


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """The wall clock the sessions read, moved by hand: ``clock[0] += seconds``."""
    now = [1_000_000.0]
    monkeypatch.setattr("sio_core.admin.auth.time.time", lambda: now[0])
    yield now


async def test_sessions_expire_and_are_bounded(io: Server, clock: list[float]) -> None:
    sessions = Sessions(io.of("/admin"), duration=60.0, limit=3, timeout=1.0)
    first = sessions.create()
    assert await sessions.exists(first)
    clock[0] += 61
    assert not await sessions.exists(first)
    made = [sessions.create() for _ in range(4)]
    assert [await sessions.exists(s) for s in made] == [False, True, True, True]
    assert not await sessions.exists("../../../etc/passwd")


# --- what is reported ---------------------------------------------------------------------------


async def test_development_mode_reports_sockets_rooms_and_events(io: Server) -> None:
    instrument(io, auth=False, stats_interval=NO_TICKS)
    admin = await ui(io)
    assert named(admin.events(), "config") == [[{"supportedFeatures": [
        *ACTIONS, "AGGREGATED_EVENTS", "ALL_EVENTS"]}]]

    app = Peer(io)
    app.connect()
    [socket] = io.sockets.sockets.values()
    events = admin.events()
    assert [e[:3] for e in named(events, "room_joined")] == [["/", socket.id, socket.id]]
    [[shown, when]] = named(events, "socket_connected")
    assert shown == serialize_socket(socket)
    assert shown["clientId"] == socket.conn.sid[:12] and shown["transport"] == "polling"
    assert when.endswith("Z")

    socket.join("lobby")
    socket.data["user"] = "ann"
    app.emit("/", "hello", {"n": 1})
    socket.emit("welcome", 1)
    io.emit("news", "all")
    admin.emit("/admin", "whatever")  # the admin's own events are not reported
    socket.leave("lobby")
    socket.disconnect()
    events = admin.events()
    assert [e[0] for e in events] == [
        "room_joined", "socket_updated", "event_received", "event_sent", "event_sent",
        "room_left", "room_left", "socket_disconnected"]
    assert named(events, "room_joined")[0][:3] == ["/", "lobby", socket.id]
    assert named(events, "socket_updated") == [[{"id": socket.id, "nsp": "/",
                                                 "data": {"user": "ann"}}]]
    assert named(events, "event_received")[0][:3] == ["/", socket.id, ["hello", {"n": 1}]]
    assert [e[:3] for e in named(events, "event_sent")] == [
        ["/", socket.id, ["welcome", 1]], ["/", socket.id, ["news", "all"]]]
    assert named(events, "socket_disconnected")[0][:3] == ["/", socket.id,
                                                           "server namespace disconnect"]


async def test_production_mode_reports_stats_only(io: Server) -> None:
    instrument(io, auth=False, mode="production", stats_interval=NO_TICKS)
    admin = await ui(io)
    events = admin.events()
    assert named(events, "config") == [[{"supportedFeatures": [*ACTIONS, "AGGREGATED_EVENTS"]}]]
    assert named(events, "all_sockets") == []
    app = Peer(io)
    app.connect()
    app.emit("/", "hello")
    [socket] = io.sockets.sockets.values()
    socket.join("lobby")
    assert ADMIN_KEY not in socket.data
    assert admin.events() == []


async def test_readonly_offers_and_does_nothing(io: Server) -> None:
    instrument(io, auth=False, readonly=True, stats_interval=NO_TICKS)
    admin = await ui(io)
    assert named(admin.events(), "config") == [[{"supportedFeatures": [
        "AGGREGATED_EVENTS", "ALL_EVENTS"]}]]
    app = Peer(io)
    app.connect()
    [socket] = io.sockets.sockets.values()
    admin.emit("/admin", "join", "/", "lobby", socket.id)
    admin.emit("/admin", "_disconnect", "/", True, socket.id)
    assert socket.connected and socket.rooms == {socket.id}


async def test_stats_count_clients_traffic_and_upgrades(io: Server) -> None:
    observer = instrument(io, auth=False, stats_interval=NO_TICKS, server_id="here")
    admin = await ui(io)
    app = Peer(io)
    app.connect()
    app.emit("/", "x", "12345")  # 2["x", "12345"]
    [socket] = io.sockets.sockets.values()
    app.session.core.transport = Transport.WEBSOCKET  # as an upgrade leaves it
    admin.events()
    observer.tick()
    events = admin.events()
    assert named(events, "socket_updated") == [[{"id": socket.id, "nsp": "/",
                                                 "transport": "websocket"}]]
    assert socket.data[ADMIN_KEY]["transport"] == "websocket"  # what other workers read
    [[stats]] = named(events, "server_stats")
    assert stats["serverId"] == "here" and stats["clientsCount"] == 2
    assert stats["pollingClientsCount"] == 1
    assert stats["namespaces"] == [{"name": "/", "socketsCount": 1},
                                   {"name": "/admin", "socketsCount": 1}]
    counted = {e["type"]: e["count"] for e in stats["aggregatedEvents"]}
    received = ["0/admin,", "0", '2["x", "12345"]']
    assert counted["rawConnection"] == 2
    assert counted["packetsIn"] == len(received)
    assert counted["bytesIn"] == sum(map(len, received))
    assert counted["packetsOut"] >= 1 and counted["bytesOut"] >= 1


async def test_all_sockets_spans_the_workers(workers: list[Server]) -> None:
    first, second = workers
    apps = [Peer(first), Peer(second), Peer(second)]
    for app in apps:
        app.connect()
    [here] = first.sockets.sockets.values()
    here.data["user"] = object()  # shown as its repr
    peer = await ui(first, dict(LOGIN))
    [[sockets]] = named(peer.events(), "all_sockets")
    by_id = {s["id"]: s for s in sockets if s["nsp"] == "/"}
    expected = {s.id: s for io in workers for s in io.sockets.sockets.values()}
    assert set(by_id) == set(expected)
    for sid, socket in expected.items():
        assert by_id[sid]["clientId"] == socket.conn.sid[:12]
        assert by_id[sid]["transport"] == "polling"
    assert by_id[here.id]["data"]["user"].startswith("<object object")


# --- the UI's actions ---------------------------------------------------------------------------


async def test_actions_on_one_socket_and_on_all(io: Server) -> None:
    instrument(io, auth=False, stats_interval=NO_TICKS)
    admin = await ui(io)
    apps = [Peer(io), Peer(io)]
    for app in apps:
        app.connect()
        app.packets()
    one, other = io.sockets.sockets.values()
    admin.emit("/admin", "join", "/", "vip", one.id)
    admin.emit("/admin", "emit", "/", "vip", "hi", 1, {"a": [2]})
    assert [p.data for p in apps[0].packets()] == [["hi", 1, {"a": [2]}]]
    assert apps[1].packets() == []
    admin.emit("/admin", "join", "/", "all")
    assert one.rooms == {one.id, "vip", "all"} and other.rooms == {other.id, "all"}
    admin.emit("/admin", "leave", "/", "vip")
    admin.emit("/admin", "_disconnect", "/", False, one.id)
    assert not one.connected and other.connected and other.rooms == {other.id, "all"}


@pytest.mark.parametrize("request_", [
    ["join"], ["join", "/"], ["join", 1, "room"], ["join", "/", ["room"]],
    ["join", "/", "room", 5], ["leave", None, None], ["_disconnect", "/"],
    ["_disconnect", "/,x", True], ["emit", "/", None], ["emit", "/", None, 7],
    ["emit", "/", None, "connect"],
    ["emit", "/nope", None, "x"], ["_disconnect", "/nope", True, None], ["unknown", 1],
])  # fmt: skip
async def test_malformed_actions_are_ignored(io: Server, request_: list[Any],
                                             caplog: pytest.LogCaptureFixture) -> None:
    instrument(io, auth=False, stats_interval=NO_TICKS)
    admin = await ui(io)
    app = Peer(io)
    app.connect()
    [socket] = io.sockets.sockets.values()
    app.packets()
    admin.session.send("2/admin," + json.dumps(request_, allow_nan=True))
    await settle()
    assert socket.connected and socket.rooms == {socket.id}
    assert app.packets() == []
    assert set(io.namespaces) == {"/", "/admin"}  # no namespace made by the UI's say-so
    assert not admin.session.closed
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


# --- pieces -------------------------------------------------------------------------------------


def test_plain_makes_any_data_sendable() -> None:
    class Thing:
        def __repr__(self) -> str:
            return "<thing>"

    nested: Any = "bottom"
    for _ in range(30):
        nested = [nested]
    value = plain({"a": (1, 2.5, None, True), 3: b"\x00", "bad": math.nan, "t": Thing(),
                   "deep": nested, "ba": bytearray(b"x")})
    assert value["a"] == [1, 2.5, None, True] and value["3"] == b"\x00"
    assert value["bad"] == "nan" and value["t"] == "<thing>" and value["ba"] == b"x"
    sio.encode(sio.Packet(sio.PacketType.EVENT, "/", ["x", value]))  # does not raise


def test_event_buffer_counts_per_second_and_empties(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.4]
    monkeypatch.setattr("sio_core.admin.events.time.time", lambda: now[0])
    buffer = EventBuffer()
    buffer.push("bytesIn", count=10)
    buffer.push("bytesIn", count=5)
    buffer.push("rawDisconnection", "ping timeout")
    now[0] = 101.0
    buffer.push("bytesIn")
    assert buffer.take() == [
        {"timestamp": 100_000, "type": "bytesIn", "count": 15},
        {"timestamp": 100_000, "type": "rawDisconnection", "subType": "ping timeout", "count": 1},
        {"timestamp": 101_000, "type": "bytesIn", "count": 1},
    ]
    assert buffer.take() == []


def test_ui_files_map_the_package_under_a_path() -> None:
    dist = NODE_MODULES / "@socket.io" / "admin-ui" / "ui" / "dist"
    files = ui_files("/ops/admin/", dist)
    assert files["/ops/admin/"] == str(dist / "index.html")
    assert files["/ops/admin/index.html"] == str(dist / "index.html")
    assert files["/ops/admin/favicon.png"] == str(dist / "favicon.png")
    scripts = [url for url in files if url.startswith("/ops/admin/js/")]
    assert scripts and all(url.endswith(".js") for url in scripts)  # no source maps
    assert ui_files() == ui_files("/admin/", dist)  # found in node_modules
    with pytest.raises(ValueError, match="mount"):
        ui_files("/admin")
    with pytest.raises(FileNotFoundError, match="npm ci"):
        ui_files("/admin/", Path("/nonexistent"))


def test_the_observer_is_the_server_s(io: Server) -> None:
    observer = instrument(io, auth=False)
    assert isinstance(observer, AdminObserver) and io.observer is observer
