"""The master hub: the workers of one machine meet through the master process.

How this works: the master runs a :class:`Hub` on a Unix socket; each worker's
:class:`HubStore` connects and says who it is (READY with its owner address). Frames are
a 4-byte big-endian length and a packed :class:`~sio_core.stores.base.Envelope`. The hub
relays an envelope to its target, or to every other worker when it has none; a request
for a worker that is not connected gets NO_PEER at once. Whenever the set of workers
changes, every worker is sent the new list (PEERS). (Liveness is not the hub's: the master
pings each worker on a channel of its own, sio_core/control.py, whatever the store.)

Batching: a worker writes what it transmitted in one loop turn in one write, at the end of
that turn (or every FLUSH_SIZE bytes of a long burst); a run of envelopes to one target (or
to all) goes as one BATCH envelope whose payload is their wire lists. The hub routes a BATCH
as one envelope, unopened (only the NO_PEER of requests to a worker that is gone looks into
it); its receiver checks that everything in it has the batch's origin and target and is a
kind the hub relays. Order is kept: a worker's envelopes reach each other worker in the order
it transmitted them, whichever frames carried them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

from .base import (
    MAX_ENVELOPE,
    BadMessage,
    BusKind,
    Drops,
    Envelope,
    Store,
    checked_wire,
    unpack_head,
    unpack_wire,
)
from .log import LOG_KINDS, LogKeeper, LogLimits, RelayedLog

logger = logging.getLogger("sio_core.hub")

_LENGTH = struct.Struct(">I")


#: a worker's envelopes of one loop turn go in one write, up to this many bytes (then the
#: rest of a long burst in further writes of this size, so the others start on it)
FLUSH_SIZE = 64 * 1024

#: how much one read takes from the socket: many frames of a burst of broadcasts at once
_READ_SIZE = 256 * 1024


def frame(envelope: Envelope) -> bytes:
    data = envelope.pack()
    return _LENGTH.pack(len(data)) + data


#: what no batch may carry: the kinds the hub itself handles or says (a worker's batch is
#: relayed unopened, so its receiver checks that none is in it)
_NOT_BATCHED = frozenset({BusKind.READY, BusKind.PEERS, BusKind.NO_PEER, BusKind.BATCH,
                          *LOG_KINDS})


def batch_frame(origin: str, target: str | None, packed: list[bytes]) -> bytes:
    """One frame of a BATCH envelope whose payload is the envelopes ``packed`` (their
    msgpack, as Envelope.pack made them): a msgpack array is its header and its items'
    bytes, so the envelopes are not packed again."""
    head = _pack_head(origin, target)  # ends with an empty array, 0x90
    count = len(packed)
    if count < 16:
        size = bytes((0x90 | count,))
    elif count < 0x10000:
        size = b"\xdc" + count.to_bytes(2, "big")
    else:
        size = b"\xdd" + count.to_bytes(4, "big")
    body = b"".join(packed)
    length = len(head) - 1 + len(size) + len(body)
    return b"".join((_LENGTH.pack(length), head[:-1], size, body))


def _pack_head(origin: str, target: str | None) -> bytes:
    return Envelope(BusKind.BATCH, origin, [], target).pack()


#: a worker's _out entry that is never batched (kinds the hub handles, a large envelope)
_ALONE = object()


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
    __slots__ = ("owner", "pending", "writer")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.owner: str | None = None
        #: what the batch being routed has for this worker (see Hub._route_batch)
        self.pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    def flush(self) -> None:
        pending = self.pending
        if pending:
            self.pending = []
            self.write(pending[0] if len(pending) == 1 else b"".join(pending))


class Hub:
    """The master's side.

    Relaying: what one read from a worker brought (often a whole burst of broadcasts) is
    routed frame by frame, in order, and what it has for each other worker goes out in one
    write per worker at the end of that read: no frame waits for anything that has not
    arrived yet, and a burst costs the master and each receiver one write and one wake-up
    rather than one per frame. A frame is routed on its envelope's header (kind, origin,
    target, request id, checked); no Envelope is made of a frame that is only relayed.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.workers: dict[str, _Worker] = {}
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[_Worker] = set()
        #: frames that were not envelopes of this version (see Drops)
        self.dropped = Drops()
        #: connection state recovery's log, kept here so that it outlives any worker
        self.log = LogKeeper(self._write_to, lambda: list(self.workers))
        #: while a read's frames are routed: the workers with frames pending (else None:
        #: what is sent is written at once)
        self._batch: list[_Worker] | None = None

    def _send(self, worker: _Worker, data: bytes) -> None:
        batch = self._batch
        if batch is None:
            worker.write(data)
        else:
            if not worker.pending:
                batch.append(worker)
            worker.pending.append(data)

    def _write_to(self, owner: str, envelope: Envelope) -> None:
        worker = self.workers.get(owner)
        if worker is not None:
            self._send(worker, frame(envelope))

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
                self._route_batch(worker, frames)
        except asyncio.CancelledError:
            pass  # the master is shutting down
        finally:
            self._connections.discard(worker)
            if worker.owner is not None and self.workers.get(worker.owner) is worker:
                del self.workers[worker.owner]
                self._announce()
            writer.close()

    def _route_batch(self, worker: _Worker, frames: list[bytes]) -> None:
        """The frames of one read from ``worker``, in order; then one write per worker that
        got some (everything sent meanwhile, the log's answers too, keeps its order)."""
        self._batch = batch = list[_Worker]()
        try:
            for data in frames:
                self._route(worker, data)
        finally:
            self._batch = None
            for target in batch:
                target.flush()

    def _route(self, worker: _Worker, data: bytes) -> None:
        try:
            _, kind, origin, target, request_id, _ = unpack_head(data)
        except BadMessage as exc:
            self.dropped(exc, f"worker {worker.owner}")
            return
        if kind == BusKind.READY:
            if worker.owner is not None or origin in self.workers:
                # a connection names itself once, and a name in use stays with its worker:
                # otherwise one worker could take another's traffic and speak for it
                logger.warning("refused READY as %r (connection of %r)", origin,
                               worker.owner)
                return
            worker.owner = origin
            self.workers[origin] = worker
            self._announce()
            return
        if worker.owner is None or origin != worker.owner:
            return  # a worker speaks only for itself
        if kind == BusKind.PEERS or kind == BusKind.NO_PEER:
            return  # the hub's word, never a worker's (a forged PEERS would blind the others)
        if kind in LOG_KINDS:
            envelope = self._opened(worker, data)
            if envelope is not None:
                self.log.handle(envelope)
            return
        if kind == BusKind.BATCH and target is not None and target not in self.workers:
            # relayed unopened, but the requests in it get their NO_PEER as one alone would
            envelope = self._opened(worker, data)
            payload = None if envelope is None else envelope.payload
            for inner in payload if type(payload) is list else ():
                if (type(inner) is list and len(inner) == 6 and type(inner[4]) is int
                        and inner[1] != BusKind.REPLY):
                    self._send(worker, frame(Envelope(BusKind.NO_PEER, target, None, origin,
                                                      inner[4])))
            return
        if target is None:
            length = _LENGTH.pack(len(data))
            for owner, other in self.workers.items():
                if owner != origin:
                    self._send(other, length)
                    self._send(other, data)
            return
        to = self.workers.get(target)
        if to is not None:
            self._send(to, _LENGTH.pack(len(data)))
            self._send(to, data)
        elif request_id is not None and kind != BusKind.REPLY:
            self._send(worker, frame(Envelope(BusKind.NO_PEER, target, None, origin,
                                              request_id)))

    def _opened(self, worker: _Worker, data: bytes) -> Envelope | None:
        """A frame the master reads whole (its header was checked by unpack_head); None, and
        dropped, if its payload does not decode."""
        try:
            return Envelope.unpack(data)
        except BadMessage as exc:
            self.dropped(exc, f"worker {worker.owner}")
            return None

    def _announce(self) -> None:
        data = frame(Envelope(BusKind.PEERS, "hub", list(self.workers)))
        for worker in self.workers.values():
            self._send(worker, data)


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
        #: what this loop turn transmitted, written at its end (or at FLUSH_SIZE)
        self._out: list[tuple[object, bytes]] = []
        self._out_size = 0
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
        self._flush()
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
        writer = self._writer
        if writer is None or writer.is_closing():
            return
        data = envelope.pack()
        self.messages_sent += 1
        out = self._out
        if not out:
            # the rest of this loop turn (a burst of broadcasts) goes in the same write
            asyncio.get_running_loop().call_soon(self._flush)
        alone = envelope.kind in _NOT_BATCHED or len(data) > FLUSH_SIZE
        out.append((_ALONE if alone else envelope.target, data))
        self._out_size += len(data)
        if self._out_size >= FLUSH_SIZE:
            self._flush()  # a long burst goes out in pieces: the others start on it

    def _flush(self) -> None:
        """What was transmitted since the last flush, in one write: each run of envelopes
        to one target (or to all) as one BATCH frame, the rest as frames of their own."""
        out = self._out
        if not out:
            return
        self._out, self._out_size = [], 0
        writer = self._writer
        if writer is None or writer.is_closing():
            return
        chunks: list[bytes] = []
        start, end = 0, len(out)
        while start < end:
            target, data = out[start]
            stop = start + 1
            if target is not _ALONE:
                while stop < end and out[stop][0] == target:
                    stop += 1
            if stop - start == 1:
                chunks += (_LENGTH.pack(len(data)), data)
            else:
                chunks.append(batch_frame(self.owner, target,  # type: ignore[arg-type]
                                          [item[1] for item in out[start:stop]]))
            start = stop
        writer.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))

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
                try:
                    item = unpack_wire(data)
                except BadMessage as exc:
                    self.dropped(exc, "the hub")
                    continue
                _, kind, origin, target, request_id, payload = item
                if kind == BusKind.BATCH:
                    self._deliver_batch(origin, target, payload)
                    continue
                self.deliver(Envelope(kind, origin, payload, target, request_id))
                if kind == BusKind.PEERS and self._peers_known is not None:
                    self._peers_known.set()

    def _deliver_batch(self, origin: str, target: str | None, payload: Any) -> None:
        """The envelopes of a BATCH, in order. The hub checked the batch's origin, not what
        is in it: each must be from that origin, to that target, of a kind it relays."""
        if type(payload) is not list:
            self.dropped(BadMessage("malformed batch"), origin)
            return
        envelopes = []
        for inner in payload:
            try:
                _, kind, inner_origin, inner_target, request_id, data = checked_wire(inner)
                if inner_origin != origin or inner_target != target or kind in _NOT_BATCHED:
                    raise BadMessage("malformed batch")
            except BadMessage as exc:
                self.dropped(exc, origin)
                continue
            envelopes.append(Envelope(kind, origin, data, target, request_id))
        self.deliver_all(envelopes)
