"""A real Engine.IO session with no transport under it, for in-process tests of what sits on
the engine (the admin UI, the metrics): what the server sends stays in the session's core."""

from __future__ import annotations

import asyncio
import itertools

from sio_core import Server
from sio_core.engine.polling import Polling
from sio_core.engine.socket import EngineSocket
from sio_core.protocol import engineio
from sio_core.protocol.session import EngineSession, Timing, Transport

_sids = itertools.count()


class Session:
    """One client's Engine.IO session on ``server``, over polling with no GET ever pending:
    what the server sends stays in the core, for ``received``."""

    def __init__(self, server: Server) -> None:
        loop = asyncio.get_running_loop()
        core = EngineSession(f"s{next(_sids)}", Transport.POLLING, Timing(25, 20), loop.time())
        self.core = core
        self.conn = EngineSocket(core, server, lambda _: None, Polling())
        self.conn.opened()

    def send(self, *messages: str | bytes) -> None:
        self.conn.receive([engineio.message(m) for m in messages])

    def leave(self) -> None:
        """The client closes its Engine.IO session ("1")."""
        self.conn.receive([engineio.CLOSE])

    def received(self) -> list[str | bytes]:
        """The Socket.IO messages the server sent since the last call."""
        return [p.data for p in self.core.take_output() if p.type is engineio.PacketType.MESSAGE]

    @property
    def closed(self) -> bool:
        return self.conn.closed
