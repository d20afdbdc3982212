"""The Socket.IO application the integration tests drive (node's socket.io-client, python-socketio).

Served with ``python -m sio_core serve tests.apps.sio_app:io --host 127.0.0.1 --port P``. The same
events exist on every namespace ("/", "/admin", the dynamic "/dyn-<digits>"):

=================  =========================================================================
event              what the server does
=================  =========================================================================
echo(data)         async handler; its return value acks ``data`` back (bytes included)
echo_many(*args)   sync handler; calls the ``ack`` callable (its keyword parameter ``ack``)
                   with every argument
echo_args(*args)   returns ``args``: a ``*args`` handler is never handed the ack callable
optional(x=None)   acks {"x": x}: a parameter with a default is never handed the ack callable
js_style(d, cb)    ``cb(d)``: one more required parameter than the client sent takes the ack,
                   as the JavaScript server's ``(data, callback) => ...``
callback(d)        ``callback(d)``: a parameter named ``callback`` (or ``ack``) gets the ack
                   callable by keyword, or None when the client asked for no ack (then it
                   logs ``callback-less <d>``)
swap(a, b)         returns the tuple ``(b, a)``: an ack with two arguments
emit_back(e, *a)   emits event ``e`` with arguments ``a`` to this client; acks "sent"
server_ack(*a)     ``await socket.emit_with_ack("ask", *a)``, then acks the client's answer
join(room)         joins ``room``; acks the socket's rooms, sorted
leave(room)        leaves ``room``; acks the socket's rooms, sorted
to_room(o)         ``socket.to(o["room"]).except_(o["except"]).emit("room_message", o["msg"])``
                   (``io``'s operator, sender included, when ``o["include_self"]``); acks "sent"
marker(room, v)    ``io.to(room).emit("marker", v)`` in the namespace: once a client sees the
                   marker, it has seen every earlier room_message meant for it
disconnect_me      ``socket.disconnect()``: the client gets DISCONNECT for this namespace
close_me           ``socket.disconnect(True)``: every namespace, then the connection, ends
close_conn         ``socket.conn.close()``: the Engine.IO session ends under the sockets
boom               raises: the error is logged and the connection must survive
whoami             acks {"id", "nsp", "auth", "query"} of this socket
peer               acks {"address", "secure"} of the socket's handshake, and "owner": the
                   worker that owns its Engine.IO session
reasons(ids)       acks the disconnect reason recorded for each socket id (null if none yet)
watch              joins the room "watchers" of "/": it gets ``disconnected`` {"nsp", "id",
                   "reason"} for every socket that disconnects, in any namespace
=================  =========================================================================

"/admin" has a middleware: ``socket.handshake.auth["token"]`` must be "s3cret", else the client
gets CONNECT_ERROR {"message": "not authorized", "data": {"code": 42}}.

Every disconnect is recorded, told to the watchers, and logged as one line,
``disconnect nsp=<nsp> id=<id> reason=<reason>`` (for what no watcher can see: a server shutting
down).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from sio_core import ConnectionRefusedError, Server, Socket
from sio_core.protocol.sid import owner_of

logger = logging.getLogger("tests.apps.sio_app")

ADMIN_TOKEN = "s3cret"
WATCHERS = "watchers"

io = Server(cors_allowed_origins="*")

#: socket id -> the reason its "disconnect" handler received
reasons: dict[str, str] = {}


def sorted_rooms(socket: Socket) -> list[str]:
    return sorted(socket.rooms)


def setup(socket: Socket) -> None:
    nsp = socket.namespace.name
    logger.info("connect nsp=%s id=%s", nsp, socket.id)

    @socket.on("echo")
    async def echo(data: Any) -> Any:
        return data

    @socket.on("echo_many")
    def echo_many(*args: Any, ack: Any = None) -> None:
        if ack is not None:
            ack(*args)

    @socket.on("echo_args")
    def echo_args(*args: Any) -> tuple[Any, ...]:
        return args

    @socket.on("optional")
    def optional(x: Any = None) -> dict[str, Any]:
        return {"x": x}

    @socket.on("js_style")
    def js_style(data: Any, cb: Any) -> None:
        cb(data)

    @socket.on("callback")
    def named(data: Any, callback: Any) -> None:
        if callback is None:
            logger.info("callback-less %s", data)
        else:
            callback(data)

    @socket.on("swap")
    def swap(a: Any, b: Any) -> tuple[Any, Any]:
        return b, a

    @socket.on("emit_back")
    async def emit_back(event: str, *args: Any) -> str:
        await socket.emit(event, *args)
        return "sent"

    @socket.on("server_ack")
    async def server_ack(*args: Any, ack: Any = None) -> Any:
        answer = await socket.emit_with_ack("ask", *args, timeout=10)
        if ack is not None:
            ack(answer)

    @socket.on("join")
    def join(room: str) -> list[str]:
        socket.join(room)
        return sorted_rooms(socket)

    @socket.on("leave")
    def leave(room: str) -> list[str]:
        socket.leave(room)
        return sorted_rooms(socket)

    @socket.on("to_room")
    async def to_room(options: dict[str, Any]) -> str:
        operator = socket.namespace if options.get("include_self") else socket
        target = operator.to(options["room"])
        if options.get("except"):
            target = target.except_(options["except"])
        await target.emit("room_message", options["msg"])
        return "sent"

    @socket.on("marker")
    async def marker(room: str, value: Any) -> str:
        await socket.namespace.to(room).emit("marker", value)
        return "sent"

    @socket.on("disconnect_me")
    def disconnect_me() -> None:
        socket.disconnect()

    @socket.on("close_me")
    def close_me() -> None:
        socket.disconnect(True)

    @socket.on("close_conn")
    def close_conn() -> None:
        socket.conn.close()

    @socket.on("boom")
    def boom(*args: Any) -> None:
        raise RuntimeError("boom: a handler failed on purpose")

    @socket.on("peer")
    def peer() -> dict[str, Any]:
        return {"address": socket.handshake.address, "secure": socket.handshake.secure,
                "owner": owner_of(socket.client.conn.sid)}

    @socket.on("whoami")
    def whoami() -> dict[str, Any]:
        return {
            "id": socket.id,
            "nsp": nsp,
            "auth": socket.handshake.auth,
            "query": {k: v for k, v in socket.handshake.query.items() if k.startswith("x-")},
        }

    @socket.on("reasons")
    def get_reasons(ids: list[str]) -> list[str | None]:
        return [reasons.get(sid) for sid in ids]

    @socket.on("watch")
    def watch() -> str:
        socket.join(WATCHERS)
        return "ok"

    @socket.on("disconnect")
    def disconnect(reason: str) -> None:
        reasons[socket.id] = reason
        logger.info("disconnect nsp=%s id=%s reason=%s", nsp, socket.id, reason)
        io.to(WATCHERS).emit("disconnected", {"nsp": nsp, "id": socket.id, "reason": reason})


def check_token(socket: Socket) -> None:
    if socket.handshake.auth.get("token") != ADMIN_TOKEN:
        raise ConnectionRefusedError("not authorized", {"code": 42})


io.on("connection", setup)

admin = io.of("/admin")
admin.use(check_token)
admin.on("connection", setup)

dynamic = io.of(re.compile(r"^/dyn-\d+$"))
dynamic.on("connection", setup)
