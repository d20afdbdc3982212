"""The benchmark application on sio_core (the same events as js_server.js and pysio_app.py).

Served with ``python -m sio_core serve benchmarks.servers.sio_app:io --port P``;
``SIO_BENCH_RECOVERY=1`` turns connection state recovery on.

=====================  =====================================================================
event                  what the server does
=====================  =====================================================================
echo(data)             acks ``data`` back (the echo scenarios)
bcast(n, payload)      ``io.emit("m", payload)`` n times, to every client, then acks n: one
                       request from the load generator starts a whole round of fan-out, so
                       the client -> server path is not what is measured
bcast_room(n, payload, ``io.to("room").emit("m", payload)`` n times (``.except_(socket.id)``:
  except_sender)       all but the sender, when ``except_sender``), then acks n
ready                  acks "ok" (a round trip through the Socket.IO layer)
=====================  =====================================================================

A client whose handshake query has ``room=<name>`` joins that room when it connects.
"""

from __future__ import annotations

import os
from typing import Any

from sio_core import Server, Socket

#: SIO_BENCH_RECOVERY=1: connection state recovery on (the "recovery" scenario of run.py)
io = Server(connection_state_recovery=True if os.environ.get("SIO_BENCH_RECOVERY") else None)


@io.on("connection")
def connection(socket: Socket) -> None:
    room = socket.handshake.query.get("room")
    if room:
        socket.join(room)

    @socket.on("echo")
    def echo(data: Any) -> Any:
        return data

    @socket.on("bcast")
    async def bcast(n: int, payload: Any) -> int:
        for _ in range(n):
            await io.emit("m", payload)
        return n

    @socket.on("bcast_room")
    async def bcast_room(n: int, payload: Any, except_sender: bool) -> int:
        op = io.to("room").except_(socket.id) if except_sender else io.to("room")
        for _ in range(n):
            await op.emit("m", payload)
        return n

    @socket.on("ready")
    def ready() -> str:
        return "ok"
