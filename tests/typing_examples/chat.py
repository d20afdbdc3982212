"""A chat server: handlers, acks, rooms, broadcast operators, middleware."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, assert_type

from sio_core import BroadcastOperator, ConnectionRefusedError, Namespace, Server, Socket

io = Server(ping_interval=10, cors_allowed_origins="*")


@io.use
async def authenticate(socket: Socket) -> None:
    token = socket.handshake.auth.get("token")
    if token != "s3cret":
        raise ConnectionRefusedError("not authorized", {"hint": "send a token"})
    socket.data["user"] = socket.handshake.query.get("user", "anon")


@io.on("connection")
async def connection(socket: Socket) -> None:
    await socket.join("lobby")

    @socket.on("message")
    async def message(text: str) -> str:
        await socket.to("lobby").emit("message", socket.data["user"], text)
        return "delivered"  # the client's ack

    @socket.on("join")
    def join(room: str, ack: Any) -> None:
        socket.join(room)
        ack({"rooms": sorted(socket.rooms)})

    @socket.on("ask")
    async def ask(question: str) -> Any:
        answer = await socket.timeout(5).emit_with_ack("question", question)
        return answer

    @socket.on("disconnect")
    def disconnect(reason: str) -> None:
        print(socket.id, "left:", reason)

    if TYPE_CHECKING:
        # the decorators keep each handler's type: these calls are wrong, and mypy says so
        _ = message(42)  # type: ignore[arg-type]
        join("room")  # type: ignore[call-arg]


async def announce(text: str) -> None:
    operator = io.to("lobby").except_("muted").volatile.timeout(2).compress(False)
    assert_type(operator, BroadcastOperator)
    await operator.emit("announcement", text)
    answers = await io.timeout(5).emit_with_ack("poll", "still there?")
    assert_type(answers, list[Any])
    await io.in_("lobby").sockets_join("everyone")
    await io.of("/").local.emit("local-only")
    admin = io.of("/admin")
    assert_type(admin, Namespace)
    await admin.emit("stats", len(admin.sockets))


if TYPE_CHECKING:
    _ = connection("not a socket")  # type: ignore[arg-type]
