"""The chat demo from the original story: what one client sends, everyone sees.

Run with ``python -m sio_core serve`` (this is the default application). It uses only the
public API of sio_core.
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


@io.on("connection")
async def connection(socket: Socket) -> None:
    logger.info("connected by worker #%s (%s)", WORKER, socket.id)

    @socket.on("message")
    async def message(msg: object) -> None:
        logger.info("message processed by worker #%s", WORKER)
        await socket.send(msg)            # back to the sender
        await socket.broadcast.send(msg)  # and to everyone else, on every worker

    @socket.on("disconnect")
    def disconnect(reason: str) -> None:
        logger.info("disconnected from worker #%s (%s): %s", WORKER, socket.id, reason)
