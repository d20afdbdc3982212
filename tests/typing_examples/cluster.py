"""Across workers and nodes: fetch_sockets, server-side emits, dynamic namespaces, the
engine's hooks, and serving from a program."""

from __future__ import annotations

import asyncio
import re
from typing import Any, assert_type

from sio_core import (
    Config,
    ConnectionErrorEvent,
    Cookie,
    FetchedSocket,
    ParentNamespace,
    RemoteSocket,
    Request,
    Server,
    Socket,
)
from sio_core.stores.redis import RedisStore

io = Server(Config(ack_timeout=5), cookie=Cookie(name="affinity"),
            allow_request=lambda request: request.headers.get("origin") != "https://evil.test")


@io.engine_hooks.on("connection_error")
def refused(event: ConnectionErrorEvent) -> None:
    print("refused", event.code, event.message, event.request.path)


@io.engine_hooks.on("initial_headers")
def served_by(headers: dict[str, str], request: Request) -> None:
    headers["X-Served-By"] = "sio_core"


@io.on("new_namespace")
def new_namespace(namespace: Any) -> None:
    print("namespace", namespace.name)


@io.on("ping-all")
async def ping_all(origin: str) -> str:  # a server-side event from another server
    return f"pong from a server, asked by {origin}"


rooms = io.of(re.compile(r"^/room-\d+$"))
assert_type(rooms, ParentNamespace)


@rooms.on("connection")
def room_connection(socket: Socket) -> None:
    socket.use(lambda packet: None)  # per-packet middleware
    socket.on_any(lambda event, *args: print(event, args))
    socket.on_any_outgoing(lambda event, *args: print("sent", event))


async def kick_everyone_in(room: str) -> int:
    sockets = await io.in_(room).fetch_sockets()
    assert_type(sockets, list[FetchedSocket])
    for socket in sockets:  # local and remote alike
        print(socket.id, socket.handshake.address, sorted(socket.rooms), socket.data)
        await socket.emit("bye")
        await socket.leave(room)
        await socket.disconnect()
    answers = await io.server_side_emit_with_ack("ping-all", "me", timeout=2)
    await io.server_side_emit("hello", "servers")
    await rooms.to("x").emit("to every child")
    return len(sockets) + len(answers)


def alike(local: Socket, remote: RemoteSocket) -> list[FetchedSocket]:
    return [local, remote]  # both are what fetch_sockets returns


async def main() -> None:
    await io.serve("0.0.0.0", 3000, store=RedisStore("redis://127.0.0.1:6379/0"))
    try:
        await asyncio.Event().wait()
    finally:
        await io.close()
