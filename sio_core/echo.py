"""An Engine.IO echo application: every message comes back to its sender.

Used by the Engine.IO tests (``serve sio_core.echo:app``); it exercises the transports
without the Socket.IO layer.
"""

from __future__ import annotations

import logging

from .engine.socket import EngineSocket
from .protocol.session import CloseReason

logger = logging.getLogger("sio_core.echo")


class EchoApp:
    """Implements :class:`~sio_core.engine.socket.EngineHandler`."""

    def on_open(self, socket: EngineSocket) -> None:
        logger.info("open %s via %s", socket.sid, socket.transport.name)

    def on_message(self, socket: EngineSocket, data: str | bytes) -> None:
        if data == "close me":
            socket.close()
            return
        socket.send(data)

    def on_close(self, socket: EngineSocket, reason: CloseReason) -> None:
        logger.info("close %s: %s", socket.sid, reason.value)


app = EchoApp()
