"""The master's own channel to each worker: liveness, readiness, and the two-phase drain.

How this works: for each worker the master makes a socketpair and passes one end at spawn
(its descriptor number in ``SIO_CORE_CONTROL_FD``). One word per line travels on it:

- master -> worker: ``ping`` (the worker's event loop answers ``pong``: a loop that is
  blocked, or a process that is stopped, does not, and the master replaces the worker);
  ``exit`` (every worker being stopped has drained: stop listening and exit now);
  ``retire`` (SIGHUP: this worker alone goes, the others stay: stop listening at once,
  as they take the new connections, then drain and exit).
- worker -> master: ``ready`` (it listens), ``pong``, ``drained`` (every session of it is
  closed and its client told, every websocket it carried has closed).

It does not go through the store: under ``--store redis://`` the workers never meet in
the master, and a hung worker must be found all the same. End of file on either side
means the other is gone: a worker whose master died stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable

logger = logging.getLogger("sio_core.control")

ENV_CONTROL_FD = "SIO_CORE_CONTROL_FD"

PING, PONG, READY, DRAINED, EXIT, RETIRE = "ping", "pong", "ready", "drained", "exit", "retire"

#: the longest line read: the words above are short, anything longer ends the channel
_MAX_LINE = 64


class Channel:
    """One end of a control channel: ``on_word`` for each line, ``on_lost`` at its end."""

    def __init__(self, sock: socket.socket, on_word: Callable[[str], None],
                 on_lost: Callable[[], None]) -> None:
        self._sock = sock
        self._on_word = on_word
        self._on_lost = on_lost
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        #: what was sent before the connection was open (it opens in start's task)
        self._early: list[bytes] = []

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            reader, self._writer = await asyncio.open_unix_connection(sock=self._sock,
                                                                      limit=_MAX_LINE)
            self._writer.write(b"".join(self._early))
            self._early.clear()
            while line := await reader.readline():
                self._on_word(line.decode("ascii", "replace").strip())
        except (OSError, ValueError):
            pass  # a reset, or a line past _MAX_LINE: the channel is over either way
        except asyncio.CancelledError:
            return  # closed by this side: not a loss
        self._on_lost()

    def send(self, word: str) -> None:
        line = word.encode("ascii") + b"\n"
        writer = self._writer
        if writer is None:
            self._early.append(line)
        elif not writer.is_closing():
            writer.write(line)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._writer is not None:
            self._writer.close()
        else:
            self._sock.close()


class WorkerControl:
    """The worker's end: answers pings, says ready and drained, waits for exit.
    ``on_stop`` is called when the worker must stop: it is retired, or the master is gone."""

    def __init__(self, sock: socket.socket, on_stop: Callable[[], None]) -> None:
        self._exit = asyncio.Event()
        self._stop = on_stop
        #: the master retires this worker alone (SIGHUP): it stops listening at once
        self.retiring = False
        self.channel = Channel(sock, self._on_word, self._on_lost)
        self.channel.start()

    @classmethod
    def from_environment(cls, on_stop: Callable[[], None]) -> WorkerControl | None:
        """The channel the master passed at spawn; None for a worker started on its own."""
        fd = os.environ.get(ENV_CONTROL_FD)
        if not fd:
            return None
        return cls(socket.socket(fileno=int(fd)), on_stop)

    def _on_word(self, word: str) -> None:
        if word == PING:
            self.channel.send(PONG)
        elif word == EXIT:
            self._exit.set()
        elif word == RETIRE:
            self.retiring = True
            self._exit.set()
            self._stop()

    def _on_lost(self) -> None:
        logger.error("lost the channel to the master")
        self._exit.set()
        self._stop()

    def ready(self) -> None:
        self.channel.send(READY)

    async def drained(self, timeout: float) -> None:
        """Say so, then wait (at most ``timeout``) until the master says every worker
        being stopped has drained: until then this one keeps listening, so that a polling
        client of another worker still finds a listener for the GET that collects its
        ``1`` (a closed SO_REUSEPORT listener refuses it, or resets it in its queue)."""
        self.channel.send(DRAINED)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._exit.wait(), max(0.0, timeout))

    def close(self) -> None:
        self.channel.close()
