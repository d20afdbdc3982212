"""The application of the connection state recovery tests (``tests/test_recovery.py``).

``Server(connection_state_recovery=...)``, ``max_disconnection_duration`` from
``SIO_TEST_RECOVERY_SECONDS`` (default 120). A socket that connects fresh joins the room named
by its auth (``{"room": ...}``), records ``socket.data["room"]`` and is sent ``welcome`` (its
first offset); a recovered one gets nothing new: its rooms and data come back on their own.
Every worker logs ``connected <id> recovered=<bool>``.

=========================  ===================================================================
event (client -> server)   what the server does; what the ack carries
=========================  ===================================================================
whoami                     acks {"id", "recovered", "rooms", "data", "worker"}
publish(room, start, n)    ``io.to(room).emit("msg", i)`` for i in start..start+n-1; acks n
direct(n)                  ``socket.emit("direct", n)``; acks n
=========================  ===================================================================
"""

from __future__ import annotations

import logging
import os
from typing import Any

from sio_core import Server, Socket

logger = logging.getLogger("tests.apps.recovery_app")

WORKER = os.environ.get("SIO_CORE_WORKER_ID", "1")

io = Server(cors_allowed_origins="*", connection_state_recovery={
    "max_disconnection_duration": float(os.environ.get("SIO_TEST_RECOVERY_SECONDS", "120")),
    "skip_middlewares": True,
})


@io.use
def middleware(socket: Socket) -> None:
    # skipped for a recovered socket (skip_middlewares): counted in its data to show it
    socket.data["middlewares"] = socket.data.get("middlewares", 0) + 1


@io.on("connection")
def connection(socket: Socket) -> None:
    logger.info("connected %s recovered=%s worker=%s", socket.id, socket.recovered, WORKER)
    if not socket.recovered:
        room = socket.handshake.auth.get("room")
        if isinstance(room, str):
            socket.join(room)
            socket.data["room"] = room
        socket.emit("welcome", socket.id)

    @socket.on("whoami")
    def whoami() -> dict[str, Any]:
        return {"id": socket.id, "recovered": socket.recovered, "rooms": sorted(socket.rooms),
                "data": socket.data, "worker": WORKER}

    @socket.on("publish")
    def publish(room: str, start: int, n: int) -> int:
        for i in range(start, start + n):
            io.to(room).emit("msg", i)
        return n

    @socket.on("direct")
    def direct(n: int) -> int:
        socket.emit("direct", n)
        return n
