"""A plain round-robin TCP proxy for the tests: no stickiness, on purpose.

Each new client connection goes to the next backend in turn, whatever it carries, so the
requests of one long-polling session (and its WebSocket upgrade) land on different nodes: the
servers behind it must cope without sticky sessions.

Bounded: at most ``max_connections`` pairs at a time (more are closed at once), and bytes are
copied through one bounded read at a time with ``drain()``, so a slow side slows the other side
instead of filling memory. ``close()`` stops accepting, closes every open pair and waits for the
copying tasks; use it as ``async with RoundRobinProxy([...]) as proxy:``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Sequence
from types import TracebackType
from typing import Self

#: bytes per read; with drain() this bounds what the proxy holds per direction
_CHUNK = 64 * 1024


class RoundRobinProxy:
    def __init__(
        self,
        backends: Sequence[tuple[str, int]],
        host: str = "127.0.0.1",
        port: int = 0,
        max_connections: int = 1000,
        connect_timeout: float = 5.0,
    ) -> None:
        if not backends:
            raise ValueError("a proxy needs at least one backend")
        self.backends = list(backends)
        self.host = host
        self.port = port
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        #: how many client connections went to each backend (index in ``backends``)
        self.counts = [0] * len(self.backends)
        #: client connections refused (over the bound, or the backend did not answer)
        self.refused = 0
        self._next = itertools.cycle(range(len(self.backends)))
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def active(self) -> int:
        return len(self._tasks)

    async def start(self) -> Self:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._tasks) >= self.max_connections:
            self.refused += 1
            await _close(writer)
            return
        self._tasks.add(task)
        try:
            await self._pipe(reader, writer)
        except asyncio.CancelledError:
            pass  # close() gave up waiting: this task is asyncio's, end it quietly
        finally:
            self._tasks.discard(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = next(self._next)
        host, port = self.backends[index]
        self._writers.add(writer)
        try:
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port), self.connect_timeout
                )
            except (OSError, TimeoutError):
                self.refused += 1
                return
            self.counts[index] += 1
            self._writers.add(up_writer)
            try:
                copies = [
                    asyncio.ensure_future(_copy(reader, up_writer)),
                    asyncio.ensure_future(_copy(up_reader, writer)),
                ]
                try:
                    # either side closing ends the pair (a half-close is passed on first)
                    await asyncio.wait(copies, return_when=asyncio.FIRST_EXCEPTION)
                finally:
                    for copy in copies:
                        copy.cancel()
                    await asyncio.gather(*copies, return_exceptions=True)
            finally:
                self._writers.discard(up_writer)
                await _close(up_writer)
        finally:
            self._writers.discard(writer)
            await _close(writer)

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.close()
        tasks = list(self._tasks)
        if tasks:  # closed transports end the copies; a pair that still hangs is cancelled
            _, pending = await asyncio.wait(tasks, timeout=5.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if server is not None:
            with contextlib.suppress(Exception):
                await server.wait_closed()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close the other side; an error is raised (it ends the pair)."""
    while data := await reader.read(_CHUNK):
        writer.write(data)
        await writer.drain()
    # EOF from one side: pass the half-close on; the pair lives until the other side ends too
    if writer.can_write_eof():
        writer.write_eof()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, asyncio.CancelledError):
        await writer.wait_closed()
