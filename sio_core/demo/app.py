"""The chat demo from the original story: what one client sends, everyone sees.

Run with ``python -m sio_core serve`` (this is the default application). It uses only the
public API of sio_core. The page loads the official client from ``/socket.io/socket.io.js``,
which the server hands out (Config.serve_client).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sio_core import Server, Socket

logger = logging.getLogger("chat")

#: set by the supervisor for each worker process; a single process is worker #1
WORKER = os.environ.get("SIO_CORE_WORKER_ID", "1")

io = Server(static_dir=str(Path(__file__).parent / "static"))


async def connection(socket: Socket) -> None:
    logger.info("connected by worker #%s (%s)", WORKER, socket.id)

    async def message(msg: object) -> None:
        logger.info("message processed by worker #%s", WORKER)
        await socket.send(msg)            # back to the sender
        await socket.broadcast.send(msg)  # and to everyone else, on every worker

    def disconnect(reason: str) -> None:
        logger.info("disconnected from worker #%s (%s): %s", WORKER, socket.id, reason)

    # registered by call rather than as decorators: `on` returns Any, which mypy --strict
    # (run on the whole package, this demo included) calls an untyped decorator
    socket.on("message", message)
    socket.on("disconnect", disconnect)


io.on("connection", connection)
