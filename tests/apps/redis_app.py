"""The Socket.IO application of the Redis tests (``tests/test_redis.py``).

Served with ``python -m sio_core serve tests.apps.redis_app:io --store redis://... --store-key K``
on several nodes (``SIO_TEST_NODE`` names the node in what the app reports). The same events exist
on "/" and "/admin":

=======================  =========================================================================
event (client -> server)  what the server does; what the ack carries
=======================  =========================================================================
whoami                    acks {"node", "worker", "id"}: who owns this socket
join(room)                joins ``room``; acks the node
chat(msg)                 ``socket.broadcast.emit("chat", msg)`` (everyone else, on every node);
                          acks "sent"
bcast(room, event, x)     ``nsp.to(room).emit(event, x)`` (no ``to`` when ``room`` is null, sender
                          included); acks "sent"
fetch(room)               ``await nsp.in_(room).fetch_sockets()``; acks {"ids", "addresses"}:
                          the sockets' ids and their handshakes' distinct addresses
bcast_acks(room, t)       ``await nsp.to(room).timeout(t).emit_with_ack("ping")``; acks
                          {"responses" (sorted), "timed_out"}
sse_ack                   ``await io.server_side_emit_with_ack("hello", NODE)``; acks the answers
=======================  =========================================================================

Server-side events (``io.serverSideEmit`` of another server, sio_core or JavaScript, or of an
emitter): ``hello`` logs one line ``server-side hello <args as JSON>`` (bytes as
``{"$bin": "<base64>"}``) and answers (for the ack form) with
{"node", "worker"}.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from typing import Any

from sio_core import AckTimeoutError, Server, Socket

logger = logging.getLogger("tests.apps.redis_app")

NODE = os.environ.get("SIO_TEST_NODE", "?")
#: set by the supervisor for each worker process; a single process is worker #1
WORKER = os.environ.get("SIO_CORE_WORKER_ID", "1")

io = Server(cors_allowed_origins="*")


def setup(socket: Socket) -> None:
    nsp = socket.namespace

    @socket.on("whoami")
    def whoami() -> dict[str, Any]:
        return {"node": NODE, "worker": WORKER, "id": socket.id}

    @socket.on("join")
    def join(room: str) -> str:
        socket.join(room)
        return NODE

    @socket.on("chat")
    async def chat(msg: Any) -> str:
        await socket.broadcast.emit("chat", msg)
        return "sent"

    @socket.on("fetch")
    async def fetch(room: str) -> dict[str, Any]:
        sockets = await nsp.in_(room).fetch_sockets()
        return {"ids": [s.id for s in sockets],
                "addresses": sorted({s.handshake.address for s in sockets})}

    @socket.on("bcast_acks")
    async def bcast_acks(room: str, timeout: float) -> dict[str, Any]:
        try:
            responses = await nsp.to(room).timeout(timeout).emit_with_ack("ping")
        except AckTimeoutError as exc:
            return {"responses": sorted(exc.responses), "timed_out": True}
        return {"responses": sorted(responses), "timed_out": False}

    @socket.on("sse_ack")
    async def sse_ack() -> list[Any]:
        return await io.server_side_emit_with_ack("hello", NODE)

    @socket.on("bcast")
    async def bcast(room: str | None, event: str, payload: Any) -> str:
        target: Any = nsp.to(room) if room is not None else nsp
        await target.emit(event, payload)
        return "sent"


def _bytes_as_json(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$bin": base64.b64encode(value).decode()}
    raise TypeError(f"{type(value).__name__} is not JSON")


@io.on("hello")
def hello(*args: Any) -> dict[str, str]:
    logger.info("server-side hello %s", json.dumps(args, default=_bytes_as_json))
    return {"node": NODE, "worker": WORKER}


io.on("connection", setup)
io.of("/admin").on("connection", setup)
