"""The admin UI's protocol across workers: ``serve tests.apps.admin_app:io --workers 4``.

The application's clients and the UI's connection are official socket.io-client connections
(``tests/js/cluster_clients.js``): the UI's is made as ``@socket.io/admin-ui``'s page makes it
(namespace ``/admin``, ``auth`` with the credentials or a session id) and prints every event
it receives with all its arguments. A socket's worker is read from its Engine.IO sid (its
owner, ``...-w<N>-...``).

What is checked: a wrong login is refused with the UI's "invalid credentials"; ``all_sockets``
lists the sockets of every worker with what the owning worker knows of them (client id,
transport); ``server_stats`` come from every worker; the UI's actions (``join``, ``leave``,
``emit``, ``_disconnect``) act on a socket of another worker, whose worker reports the
result; a session made by one worker is accepted by the others.

The module's server is shared; each test has its own node process, so its own clients.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.apps.admin_app import PASSWORD, USERNAME
from tests.support import JsonObject, ServerProcess, start_node
from tests.test_cluster import CLIENTS_JS, WORKER_IDS, Clients, cluster_server, owner_worker
from tests.test_redis import assert_clean_log, start_node_server

pytestmark = [pytest.mark.interop, pytest.mark.asyncio(loop_scope="module")]

APP = "tests.apps.admin_app:io"
LOGIN = {"username": USERNAME, "password": PASSWORD}
#: the UI's connection, as cluster_clients.js opens it
UI = {"namespace": "/admin", "all_args": True, "reconnection": False}
REFUSED = "invalid credentials"
SESSION_ID = re.compile(r"[0-9a-f]{32}")
ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    log_path = tmp_path_factory.mktemp("admin") / "server.log"
    server = await cluster_server(log_path, app=APP)
    try:
        yield server
    finally:
        await server.stop()
    log = server.log_text()
    assert "Traceback" not in log and " ERROR " not in log, log


@pytest_asyncio.fixture(loop_scope="module")
async def clients(server: ServerProcess) -> AsyncIterator[Clients]:
    async with await start_node(CLIENTS_JS, server.url) as node:
        yield Clients(node)


async def ui_event(clients: Clients, name: str, event: str, *args: Any,
                   timeout: float = 10.0) -> list[Any]:
    """The next ``event`` the UI connection ``name`` receives whose arguments begin with
    ``args``: all its arguments."""
    found = await clients.node.next_event(
        lambda e: e.get("ev") == "event" and e["name"] == name and e["event"] == event
        and e["args"][:len(args)] == list(args), timeout)
    received: list[Any] = found["args"]
    return received


async def refused(clients: Clients, group: str, auth: JsonObject) -> str:
    """Open one UI connection that the server must refuse; the CONNECT_ERROR's message."""
    await clients.node.send({"op": "open", "group": group, "count": 1,
                             "transports": ["websocket"], "auth": auth, **UI})
    event = await clients.node.next_event({"ev": "connect_error", "name": f"{group}0"})
    message: str = event["message"]
    return message


async def open_ui(clients: Clients, group: str, auth: JsonObject) -> JsonObject:
    [ui] = (await clients.open(group, 1, ["websocket"], auth=auth, **UI)).values()
    return ui


@pytest.mark.parametrize("auth", [
    {"username": USERNAME, "password": "wrong"},
    {"username": "root", "password": PASSWORD},
    {"username": USERNAME},
    {"username": USERNAME, "password": 12},
    {},
    {"sessionId": "0" * 32},                       # well-formed: every worker is asked
    {"sessionId": "../../etc", "password": PASSWORD},
], ids=["wrong-password", "wrong-username", "no-password", "password-not-a-string", "nothing",
        "unknown-session", "bad-session"])
async def test_a_wrong_login_is_refused(clients: Clients, auth: JsonObject) -> None:
    assert await refused(clients, "ui", auth) == REFUSED


async def test_all_sockets_lists_the_sockets_of_every_worker(clients: Clients) -> None:
    app = await clients.open("app", 8, ["websocket"])
    workers = {owner_worker(c["sid"]) for c in app.values()}
    assert len(workers) >= 2, f"the kernel put all 8 clients on worker {workers}"
    ui = await open_ui(clients, "ui", LOGIN)

    [session] = await ui_event(clients, "ui0", "session")
    assert SESSION_ID.fullmatch(session)
    [config] = await ui_event(clients, "ui0", "config")
    assert config == {"supportedFeatures": [
        "EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT",
        "AGGREGATED_EVENTS", "ALL_EVENTS"]}
    [sockets] = await ui_event(clients, "ui0", "all_sockets")
    listed = {s["id"]: s for s in sockets}
    for client in app.values():
        # what the owning worker knows: its client id (the Engine.IO sid) and transport
        shown = listed[client["id"]]
        assert shown["nsp"] == "/" and shown["rooms"] == [client["id"]]
        assert shown["clientId"] == client["sid"][:12]
        assert shown["transport"] == "websocket"
        assert shown["data"] == {}
        assert shown["handshake"]["address"] == "127.0.0.1"
        assert shown["handshake"]["query"]["EIO"] == "4"
    me = listed[ui["id"]]
    assert me["nsp"] == "/admin" and "auth" not in me["handshake"]

    stats: dict[str, JsonObject] = {}
    while len(stats) < len(WORKER_IDS):  # one server per worker
        [report] = await ui_event(clients, "ui0", "server_stats")
        assert report["serverId"] == f"{report['hostname']}#{report['pid']}"
        stats[report["serverId"]] = report
    assert sum(s["clientsCount"] for s in stats.values()) >= len(app) + 1
    for report in stats.values():
        assert {n["name"] for n in report["namespaces"]} == {"/", "/admin"}


async def test_the_ui_acts_on_a_socket_of_another_worker(clients: Clients) -> None:
    app = await clients.open("app", 8, ["websocket"])
    ui = await open_ui(clients, "ui", LOGIN)
    mine = owner_worker(ui["sid"])
    names = [name for name, c in app.items() if owner_worker(c["sid"]) != mine]
    assert names, f"every client is on the UI's worker {mine}"
    target = names[0]
    target_id = app[target]["id"]
    witness = next(name for name in app if name != target)

    await clients.emit_no_ack(["ui0"], "join", "/", "vip", target_id)
    joined = await ui_event(clients, "ui0", "room_joined", "/", "vip", target_id)
    assert ISO_TIME.fullmatch(joined[3])
    assert (await clients.emit([witness], "fetch", "vip"))[witness]["ids"] == [target_id]

    await clients.emit_no_ack(["ui0"], "emit", "/", target_id, "from-admin", {"n": 1})
    await clients.wait([target], "from-admin", 1)
    await clients.emit_no_ack(["ui0"], "leave", "/", "vip", target_id)
    await ui_event(clients, "ui0", "room_left", "/", "vip", target_id)
    assert (await clients.emit([witness], "fetch", "vip"))[witness]["ids"] == []

    # no filter: every socket of the namespace, on every worker
    await clients.emit_no_ack(["ui0"], "join", "/", "everyone")
    for client in app.values():  # reported by each socket's worker
        await ui_event(clients, "ui0", "room_joined", "/", "everyone", client["id"])
    assert set((await clients.emit([witness], "fetch", "everyone"))[witness]["ids"]) >= \
        {c["id"] for c in app.values()}

    await clients.emit_no_ack(["ui0"], "_disconnect", "/", False, target_id)
    event = await clients.node.next_event({"ev": "disconnect", "name": target})
    assert event["reason"] == "io server disconnect"
    await ui_event(clients, "ui0", "socket_disconnected", "/", target_id,
                   "server namespace disconnect")
    stats = await clients.stats(list(app))
    assert [name for name, c in stats.items() if "from-admin" in c["received"]] == [target]
    assert [name for name, c in stats.items() if not c["connected"]] == [target]


async def test_a_session_is_good_on_every_worker(clients: Clients) -> None:
    first = await open_ui(clients, "login", LOGIN)
    [session] = await ui_event(clients, "login0", "session")
    issuer = owner_worker(first["sid"])
    # the kernel picks each connection's worker: connect until one lands on another worker
    for attempt in range(16):
        again = await open_ui(clients, f"again{attempt}-", {"sessionId": session})
        await ui_event(clients, f"again{attempt}-0", "config")
        if owner_worker(again["sid"]) != issuer:
            break
    else:
        pytest.fail(f"16 connections all landed on worker {issuer}")
    assert await refused(clients, "forged", {"sessionId": session[::-1]}) == REFUSED


async def test_an_upgrade_is_reported_by_the_socket_s_worker(clients: Clients) -> None:
    await open_ui(clients, "ui", LOGIN)
    [app] = (await clients.open("app", 1, ["polling", "websocket"])).values()
    # reported by the worker that owns the socket, which notices at its next stats tick
    await clients.node.next_event({"ev": "event", "name": "ui0", "event": "socket_updated",
                                   "args": [{"id": app["id"], "nsp": "/",
                                             "transport": "websocket"}]})


@pytest.mark.redis
async def test_the_ui_spans_nodes_through_redis(redis_url: str, redis_prefix: str,
                                                tmp_path: Path) -> None:
    """Two nodes of one worker each, on a private Redis: the UI on node A sees and acts on the
    sockets of node B, and node B accepts the session that node A made."""
    args = (APP, "--store", redis_url, "--store-key", redis_prefix, "--shutdown-timeout", "5")
    node_a = await start_node_server(*args, workers=1, name="A", log_path=tmp_path / "a.log")
    node_b = await start_node_server(*args, workers=1, name="B", log_path=tmp_path / "b.log")
    try:
        async with await start_node(CLIENTS_JS, node_a.url) as on_a, \
                await start_node(CLIENTS_JS, node_b.url) as on_b:
            at_a, at_b = Clients(on_a), Clients(on_b)
            apps = await at_b.open("app", 3, ["websocket"])
            await open_ui(at_a, "ui", LOGIN)
            [sockets] = await ui_event(at_a, "ui0", "all_sockets")
            listed = {s["id"]: s for s in sockets}
            for app in apps.values():
                assert listed[app["id"]]["clientId"] == app["sid"][:12]
            name, target = next(iter(apps.items()))
            await at_a.emit_no_ack(["ui0"], "_disconnect", "/", False, target["id"])
            event = await on_b.next_event({"ev": "disconnect", "name": name}, timeout=10)
            assert event["reason"] == "io server disconnect"
            await ui_event(at_a, "ui0", "socket_disconnected", "/", target["id"])

            [session] = await ui_event(at_a, "ui0", "session")
            await open_ui(at_b, "again", {"sessionId": session})
            await ui_event(at_b, "again0", "config")
    finally:
        await node_a.stop()
        await node_b.stop()
    assert_clean_log(node_a)
    assert_clean_log(node_b)
