"""The master hub: the workers of one machine meet through the master process.

How this works: the master runs a :class:`Hub` on a Unix socket; each worker's
:class:`HubStore` connects and says who it is (READY with its owner address). Frames are
a 4-byte big-endian length and a packed :class:`~sio_core.stores.base.Envelope`. The hub
relays an envelope to its target, or to every other worker when it has none; a request
for a worker that is not connected gets NO_PEER at once. Whenever the set of workers
changes, every worker is sent the new list (PEERS). (Liveness is not the hub's: the master
pings each worker on a channel of its own, sio_core/control.py, whatever the store.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import AsyncIterator, Callable

from .base import MAX_ENVELOPE, BadMessage, BusKind, Drops, Envelope, Store
from .log import LOG_KINDS, LogKeeper, LogLimits, RelayedLog

logger = logging.getLogger("sio_core.hub")

_LENGTH = struct.Struct(">I")


#: how much one read takes from the socket: many frames of a burst of broadcasts at once
_READ_SIZE = 256 * 1024


def frame(envelope: Envelope) -> bytes:
    data = envelope.pack()
    return _LENGTH.pack(len(data)) + data


async def read_frames(reader: asyncio.StreamReader) -> AsyncIterator[list[bytes]]:
    """The frames that arrive, a batch per read (one await for a whole burst, not two per
    frame); ends at EOF, on a connection error, or at a frame longer than MAX_ENVELOPE."""
    buffer = bytearray()
    while True:
        try:
            data = await reader.read(_READ_SIZE)
        except ConnectionError:
            return
        if not data:
            return
        buffer += data
        frames: list[bytes] = []
        start, end = 0, len(buffer)
        while end - start >= 4:
            (length,) = _LENGTH.unpack_from(buffer, start)
            if length > MAX_ENVELOPE:
                return
            if end - start - 4 < length:
                break
            frames.append(bytes(buffer[start + 4:start + 4 + length]))
            start += 4 + length
        del buffer[:start]
        if frames:
            yield frames


class _Worker:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.owner: str | None = None

    def write(self, data: bytes) -> None:
        # written at once, not coalesced per loop turn: the receiving worker starts its
        # share of a burst of broadcasts while the sender is still producing it
        if not self.writer.is_closing():
            self.writer.write(data)


class Hub:
    """The master's side."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.workers: dict[str, _Worker] = {}
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[_Worker] = set()
        #: frames that were not envelopes of this version (see Drops)
        self.dropped = Drops()
        #: connection state recovery's log, kept here so that it outlives any worker
        self.log = LogKeeper(self._write_to, lambda: list(self.workers))

    def _write_to(self, owner: str, envelope: Envelope) -> None:
        worker = self.workers.get(owner)
        if worker is not None:
            worker.write(frame(envelope))

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, path=self.path)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for worker in list(self._connections):
            worker.writer.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        worker = _Worker(writer)
        self._connections.add(worker)
        try:
            async for frames in read_frames(reader):
                for data in frames:
                    try:
                        envelope = Envelope.unpack(data)
                    except BadMessage as exc:
                        self.dropped(exc, f"worker {worker.owner}")
                        continue
                    self._route(worker, envelope, data)
        except asyncio.CancelledError:
            pass  # the master is shutting down
        finally:
            self._connections.discard(worker)
            if worker.owner is not None and self.workers.get(worker.owner) is worker:
                del self.workers[worker.owner]
                self._announce()
            writer.close()

    def _route(self, worker: _Worker, envelope: Envelope, data: bytes) -> None:
        kind = envelope.kind
        if kind == BusKind.READY:
            if worker.owner is not None or envelope.origin in self.workers:
                # a connection names itself once, and a name in use stays with its worker:
                # otherwise one worker could take another's traffic and speak for it
                logger.warning("refused READY as %r (connection of %r)", envelope.origin,
                               worker.owner)
                return
            worker.owner = envelope.origin
            self.workers[envelope.origin] = worker
            self._announce()
            return
        if worker.owner is None or envelope.origin != worker.owner:
            return  # a worker speaks only for itself
        if kind == BusKind.PEERS or kind == BusKind.NO_PEER:
            return  # the hub's word, never a worker's (a forged PEERS would blind the others)
        if kind in LOG_KINDS:
            self.log.handle(envelope)
            return
        raw = _LENGTH.pack(len(data)) + data
        if envelope.target is None:
            for owner, other in self.workers.items():
                if owner != worker.owner:
                    other.write(raw)
            return
        target = self.workers.get(envelope.target)
        if target is not None:
            target.write(raw)
        elif envelope.request_id is not None and kind != BusKind.REPLY:
            worker.write(frame(Envelope(BusKind.NO_PEER, envelope.target, None, worker.owner,
                                        envelope.request_id)))

    def _announce(self) -> None:
        data = frame(Envelope(BusKind.PEERS, "hub", list(self.workers)))
        for worker in self.workers.values():
            worker.write(data)


class HubStore(Store):
    """A worker's side of the master hub: the store of the workers of one machine when no
    Redis is given (``python -m sio_core serve --workers N`` makes one per worker).

    Args:
        owner: this worker's address, in its session ids.
        path: the hub's Unix socket, which the master listens on.
        start_timeout: how long start() waits for the hub's first list of workers.
    """

    def __init__(self, owner: str, path: str, *, start_timeout: float = 10.0) -> None:
        super().__init__(owner)
        self.path = path
        #: how long start() waits for the hub's first list of workers: the master answers
        #: within milliseconds, and a worker that cannot join must not start (the
        #: supervisor's startup_timeout, 30 s, is the outer bound)
        self.start_timeout = start_timeout
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._peers_known: asyncio.Event | None = None
        self.on_lost: Callable[[], None] = lambda: None

    async def start(self) -> None:
        await self._connect()
        assert self._peers_known is not None
        await asyncio.wait_for(self._peers_known.wait(), self.start_timeout)

    async def _connect(self) -> None:
        """Connect to the hub and say who we are; the hub's PEERS follows."""
        reader, writer = await asyncio.open_unix_connection(self.path)
        self._writer = writer
        self._peers_known = asyncio.Event()
        writer.write(frame(Envelope(BusKind.READY, self.owner)))
        self._reader_task = asyncio.get_running_loop().create_task(self._read(reader))

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()
        await super().close()

    def packet_log(self, limits: LogLimits) -> RelayedLog:
        """The master keeps the log: a reconnect may land on any worker, and a worker
        killed with -9 loses nothing of it."""
        return RelayedLog(self, limits)

    def _transmit(self, envelope: Envelope) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(frame(envelope))
            self.messages_sent += 1

    async def _read(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await self._read_frames(reader)
            self._lost()

    def _lost(self) -> None:
        """The connection to the hub ended (not by close())."""
        logger.error("lost the connection to the master hub")
        self.on_lost()

    async def _read_frames(self, reader: asyncio.StreamReader) -> None:
        async for frames in read_frames(reader):
            for data in frames:
                envelope = self.deliver_packed(data, "the hub")
                if envelope is None:
                    continue
                if envelope.kind == BusKind.PEERS and self._peers_known is not None:
                    self._peers_known.set()
