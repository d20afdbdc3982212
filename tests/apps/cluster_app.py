"""The Socket.IO application of the cluster tests (``tests/test_cluster.py``).

Served with ``python -m sio_core serve tests.apps.cluster_app:io --workers 4 ...``: every worker
imports it, so every handler below runs on whichever worker owns the socket, and everything that
reaches other workers goes through the cluster store (the master hub).

=========================  ========================================================================
event (client -> server)   what the server does; what the ack carries
=========================  ========================================================================
whoami                     acks {"worker", "pid", "id"}: the worker (SIO_CORE_WORKER_ID) and process
                           that own this socket
join(room)                 joins ``room``; acks the worker id
bcast(room, exc, ev, x)    ``io.to(room).except_(exc).emit(ev, x)`` (``room``/``exc`` may be null:
                           no ``to`` / no ``except_``); acks "sent"
bcast_ack(room, self, t)   ``await op.timeout(t).emit_with_ack("ping")`` with ``op`` =
                           ``io.to(room)`` (sender included) when ``self`` is true, else
                           ``socket.to(room)`` (sender excluded); acks {"count", "timed_out"}
fetch(room)                ``await io.in_(room).fetch_sockets()`` (every socket when ``room`` is
                           null); acks {"count", "ids"}
fetch_join(room, to)       ``await s.join(to)`` for each ``s`` of
                           ``await io.in_(room).fetch_sockets()`` (this worker's Sockets and
                           the others' RemoteSockets alike); acks
                           {"local", "remote", "addresses"}: how many of each kind, and the
                           distinct ``s.handshake.address``
sse                        ``await io.server_side_emit_with_ack("hello")``; acks the answers (each
                           other worker's ``hello`` listener returns its worker id)
join_all(room, within)     ``io.in_(within).sockets_join(room)`` (``io.sockets_join(room)`` when
                           ``within`` is null); acks "done"
flood(n, size)             emits ``n`` "flood" events of ``size`` characters to this socket, then
                           logs "flooded <id> with <n> x <size>"; acks n
disconnect_all(room)       ``io.in_(room).disconnect_sockets()`` (``io.disconnect_sockets()``
                           when ``room`` is null); no ack (the sender may be among the
                           disconnected)
=========================  ========================================================================

Clients answer the server's ``ping`` (sent by bcast_ack) with an ack of their own.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from sio_core import AckTimeoutError, Server, Socket

logger = logging.getLogger("tests.apps.cluster_app")

#: set by the supervisor for each worker process
WORKER = os.environ.get("SIO_CORE_WORKER_ID", "1")

io = Server(cors_allowed_origins="*")


@io.on("hello")
def hello() -> str:
    """A server-side event from another worker: answer with who we are."""
    return WORKER


@io.on("connection")
def connection(socket: Socket) -> None:
    logger.info("connected by worker #%s (%s)", WORKER, socket.id)

    @socket.on("whoami")
    def whoami() -> dict[str, Any]:
        return {"worker": WORKER, "pid": os.getpid(), "id": socket.id}

    @socket.on("join")
    def join(room: str) -> str:
        socket.join(room)
        return WORKER

    @socket.on("bcast")
    async def bcast(room: str | None, excepted: str | None, event: str, payload: Any) -> str:
        target: Any = io.to(room) if room is not None else io
        if excepted is not None:
            target = target.except_(excepted)
        await target.emit(event, payload)
        return "sent"

    @socket.on("bcast_ack")
    async def bcast_ack(room: str, include_self: bool, timeout: float) -> dict[str, Any]:
        operator = io.to(room) if include_self else socket.to(room)
        try:
            responses = await operator.timeout(timeout).emit_with_ack("ping")
        except AckTimeoutError as exc:
            return {"count": len(exc.responses), "timed_out": True}
        return {"count": len(responses), "timed_out": False}

    @socket.on("fetch")
    async def fetch(room: str | None) -> dict[str, Any]:
        sockets = await (io.in_(room) if room is not None else io).fetch_sockets()
        return {"count": len(sockets), "ids": [s.id for s in sockets]}

    @socket.on("fetch_join")
    async def fetch_join(room: str, to: str) -> dict[str, Any]:
        sockets = await io.in_(room).fetch_sockets()
        for fetched in sockets:
            await fetched.join(to)  # one shape: the same code for a Socket and a RemoteSocket
        local = sum(isinstance(fetched, Socket) for fetched in sockets)
        return {"local": local, "remote": len(sockets) - local,
                "addresses": sorted({fetched.handshake.address for fetched in sockets})}

    @socket.on("sse")
    async def sse() -> list[Any]:
        return await io.server_side_emit_with_ack("hello")

    @socket.on("join_all")
    async def join_all(room: str, within: str | None) -> str:
        await (io.in_(within) if within is not None else io).sockets_join(room)
        return "done"

    @socket.on("flood")
    def flood(count: int, size: int) -> int:
        payload = "x" * size
        for _ in range(count):
            socket.emit("flood", payload)
        logger.info("flooded %s with %d x %d", socket.id, count, size)
        return count

    @socket.on("disconnect_all")
    async def disconnect_all(room: str | None) -> None:
        await (io.in_(room) if room is not None else io).disconnect_sockets()

    @socket.on("disconnect")
    def disconnect(reason: str) -> None:
        logger.info("disconnected from worker #%s (%s): %s", WORKER, socket.id, reason)
