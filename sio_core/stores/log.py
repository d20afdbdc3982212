"""The store side of connection state recovery: one ordered log of packets, and sessions.

How this works: the Socket.IO layer (sio_core/socketio/recovery.py) hands every packet it
keeps to a :class:`PacketLog` instead of delivering it at once. The log gives it an
**offset** and hands it back to every worker (``on_entry``), each worker delivering it to
its own matching sockets, in the order of the log: every client then receives the packets
in log order, so the last offset it saw says exactly which ones it missed. A socket that
goes away is kept as a session (``persist``); a reconnect asks for it (``restore``) and
gets its state and the packets after its offset, through the same ordered channel as the
entries, so that the restored socket misses nothing and gets nothing twice. What the log
keeps is bounded (:class:`LogLimits`): past its limits a client is told it was not
recovered.

Where the log lives, so that a reconnect may land on any worker or node:

- one process (no store, or a lone MemoryStore): :class:`LocalLog`, a :class:`MemoryLog`
  called directly;
- the workers of a machine: the master's hub (or a MemoryBus, for the tests) keeps the
  MemoryLog (:class:`LogKeeper`), and each worker's :class:`RelayedLog` speaks to it in
  LOG_* envelopes; a worker killed with ``-9`` loses nothing the master has;
- many nodes: Redis (sio_core/stores/redis_log.py).
"""

from __future__ import annotations

import collections
import enum
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..config import ConnectionStateRecovery
from .base import Envelope, Store


@dataclass(frozen=True, slots=True)
class LogLimits:
    """What the log keeps: packets and bytes in all, and for how long (also how long a
    disconnected session is kept); the most packets one restore may hand back."""

    max_packets: int = 100_000
    max_bytes: int = 64 * 1024 * 1024
    max_age: float = 120.0
    max_missed: int = 10_000

    @staticmethod
    def of(config: ConnectionStateRecovery) -> LogLimits:
        return LogLimits(config.max_log_packets, config.max_log_bytes,
                         config.max_disconnection_duration, config.max_missed_packets)

    def to_wire(self) -> list[Any]:
        return [self.max_packets, self.max_bytes, self.max_age, self.max_missed]

    @staticmethod
    def from_wire(value: Any) -> LogLimits | None:
        if (isinstance(value, list) and len(value) == 4
                and all(isinstance(v, int | float) and not isinstance(v, bool) and v > 0
                        for v in value)):
            return LogLimits(int(value[0]), int(value[1]), float(value[2]), int(value[3]))
        return None


class Status:
    """Why a restore found nothing to restore (the client gets a fresh session)."""

    OK = "ok"
    UNKNOWN = "unknown"  # no such session, or it expired
    GONE = "gone"  # its offset is no longer in the log (too old, or never was)
    TOO_MANY = "too_many"  # it missed more than max_missed packets


@dataclass(frozen=True, slots=True)
class Restored:
    """The answer to a restore: the session as it was persisted, and the packets after its
    offset that its rooms match, as ``(offset, entry)`` in log order."""

    request: int
    status: str
    session: bytes | None = None
    packets: list[tuple[str, bytes]] = field(default_factory=list)

    def to_wire(self) -> list[Any]:
        return [self.request, self.status, self.session, [list(p) for p in self.packets]]

    @staticmethod
    def from_wire(value: Any) -> Restored | None:
        if not (isinstance(value, list) and len(value) == 4 and isinstance(value[0], int)
                and isinstance(value[1], str)
                and (value[2] is None or isinstance(value[2], bytes))
                and isinstance(value[3], list)):
            return None
        packets = []
        for item in value[3]:
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
                    and isinstance(item[1], bytes)):
                return None
            packets.append((item[0], item[1]))
        return Restored(value[0], value[1], value[2], packets)


def matches(session_rooms: frozenset[str], rooms: list[str], except_rooms: list[str]) -> bool:
    """Whether a packet sent to ``rooms`` but ``except_rooms`` reaches a socket in
    ``session_rooms`` (the reference's shouldIncludePacket)."""
    included = not rooms or any(room in session_rooms for room in rooms)
    return included and not any(room in session_rooms for room in except_rooms)


@dataclass(slots=True)
class _Entry:
    seq: int
    at: float
    nsp: str
    rooms: list[str]
    except_rooms: list[str]
    entry: bytes


@dataclass(slots=True)
class _Session:
    nsp: str
    rooms: frozenset[str]
    session: bytes
    start: int  # the last sequence number of the log when the session was first persisted
    expires: float


class MemoryLog:
    """The log and the sessions in memory: one process's, or the master's for a machine.
    Offsets are ``<epoch>:<n>``, the epoch new with every log, so that an offset from
    another log (a restarted master) is never taken for one of this one."""

    def __init__(self, limits: LogLimits | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits or LogLimits()
        self.clock = clock
        self.epoch = secrets.token_hex(4)
        self.entries: collections.deque[_Entry] = collections.deque()
        #: the sequence number of the next entry; entries[0] has next - len(entries)
        self.next = 1
        self.bytes = 0
        self.sessions: dict[str, _Session] = {}
        self._sweep_at = 0.0

    def offset(self, seq: int) -> str:
        return f"{self.epoch}:{seq}"

    def _seq(self, offset: str) -> int | None:
        epoch, _, number = offset.partition(":")
        if epoch != self.epoch or not number.isdigit():
            return None
        return int(number)

    def append(self, nsp: str, rooms: list[str], except_rooms: list[str],
               entry: bytes) -> str:
        now = self.clock()
        seq = self.next
        self.next += 1
        self.entries.append(_Entry(seq, now, nsp, rooms, except_rooms, entry))
        self.bytes += len(entry)
        self._trim(now)
        return self.offset(seq)

    def _trim(self, now: float) -> None:
        limits, entries = self.limits, self.entries
        oldest = now - limits.max_age
        while entries and (len(entries) > limits.max_packets or self.bytes > limits.max_bytes
                           or entries[0].at < oldest):
            self.bytes -= len(entries.popleft().entry)
        if now >= self._sweep_at:
            self._sweep_at = now + 1.0
            for pid in [p for p, s in self.sessions.items() if s.expires <= now]:
                del self.sessions[pid]

    def persist(self, pid: str, nsp: str, rooms: list[str], session: bytes,
                ttl: float) -> None:
        now = self.clock()
        known = self.sessions.get(pid)
        start = known.start if known is not None and known.expires > now else self.next - 1
        self.sessions[pid] = _Session(nsp, frozenset(rooms), session, start, now + ttl)
        self._trim(now)

    def restore(self, request: int, pid: str, offset: str | None) -> Restored:
        now = self.clock()
        session = self.sessions.get(pid)
        if session is None or session.expires <= now:
            return Restored(request, Status.UNKNOWN)
        seq = session.start if offset is None else self._seq(offset)
        first = self.next - len(self.entries)  # the oldest sequence number still kept
        # the packets after seq are all here if seq is one the log gave and nothing after
        # it has been trimmed (seq itself may have been: the reference needs it kept, which
        # only makes a client that missed nothing fail)
        if seq is None or seq >= self.next or seq < first - 1:
            return Restored(request, Status.GONE)
        packets: list[tuple[str, bytes]] = []
        limit = self.limits.max_missed
        for item in list(self.entries)[seq - first + 1:]:
            if item.nsp == session.nsp and matches(session.rooms, item.rooms,
                                                   item.except_rooms):
                if len(packets) >= limit:
                    return Restored(request, Status.TOO_MANY)
                packets.append((self.offset(item.seq), item.entry))
        return Restored(request, Status.OK, session.session, packets)


class PacketLog:
    """A worker's side of the log (the contract every backend implements).

    ``on_entry(offset, entry)`` is called for every entry appended by any worker whose
    packet may reach this worker's sockets, in log order; ``on_restored(restored)`` with
    the answer of each :meth:`restore` of this worker, in order with the entries: entries
    before it were appended before the restore read the log, entries after it after."""

    def __init__(self) -> None:
        self.on_entry: Callable[[str, bytes], None] = _ignore_entry
        self.on_restored: Callable[[Restored], None] = _ignore_restored

    def append(self, nsp: str, rooms: list[str], except_rooms: list[str], entry: bytes,
               *, here: bool = False) -> None:
        """Keep ``entry`` (a packet to ``nsp``, ``rooms`` but ``except_rooms``) and hand
        it back to every worker. ``here``: only this worker's sockets can match (an emit
        to one of its sockets), so only this worker is handed it."""
        raise NotImplementedError

    def persist(self, pid: str, nsp: str, rooms: list[str], session: bytes,
                ttl: float) -> None:
        """Keep a session for ``ttl`` seconds (replacing what ``pid`` had)."""
        raise NotImplementedError

    def restore(self, request: int, pid: str, offset: str | None) -> None:
        """Ask for session ``pid`` and the packets after ``offset`` (None: after the log's
        end when the session was first persisted); answered by ``on_restored``."""
        raise NotImplementedError


def _ignore_entry(offset: str, entry: bytes) -> None:
    pass


def _ignore_restored(restored: Restored) -> None:
    pass


class LocalLog(PacketLog):
    """The log of one process: everything happens at once, in the caller's turn."""

    def __init__(self, limits: LogLimits) -> None:
        super().__init__()
        self.log = MemoryLog(limits)

    def append(self, nsp: str, rooms: list[str], except_rooms: list[str], entry: bytes,
               *, here: bool = False) -> None:
        self.on_entry(self.log.append(nsp, rooms, except_rooms, entry), entry)

    def persist(self, pid: str, nsp: str, rooms: list[str], session: bytes,
                ttl: float) -> None:
        self.log.persist(pid, nsp, rooms, session, ttl)

    def restore(self, request: int, pid: str, offset: str | None) -> None:
        self.on_restored(self.log.restore(request, pid, offset))


# -- the workers of a machine: the master keeps the log -----------------------------------


class LogKind(enum.StrEnum):
    """The envelopes between the workers and the master's log: the bus's own (the store
    keeps the log), beside :class:`~sio_core.stores.base.BusKind`."""

    LOG_LIMITS = "log_limits"
    LOG_APPEND = "log_append"
    LOG_ENTRY = "log_entry"
    LOG_PERSIST = "log_persist"
    LOG_RESTORE = "log_restore"
    LOG_RESTORED = "log_restored"


#: what the master's log handles (LOG_ENTRY and LOG_RESTORED are its word, never a worker's)
LOG_KINDS = frozenset(LogKind)


class LogKeeper:
    """The master's side (the hub, or a MemoryBus): keeps the MemoryLog and answers the
    workers' LOG_* envelopes. ``send(target, envelope)`` writes to one worker."""

    def __init__(self, send: Callable[[str, Envelope], None],
                 workers: Callable[[], list[str]]) -> None:
        self.log = MemoryLog()
        self._send = send
        self._workers = workers

    def handle(self, envelope: Envelope) -> None:
        kind, payload, origin = envelope.kind, envelope.payload, envelope.origin
        if not isinstance(payload, list):
            return
        log = self.log
        if kind == LogKind.LOG_APPEND and len(payload) == 5:
            nsp, rooms, except_rooms, entry, here = payload
            if not (isinstance(nsp, str) and _strings(rooms) and _strings(except_rooms)
                    and isinstance(entry, bytes)):
                return
            offset = log.append(nsp, rooms, except_rooms, entry)
            out = Envelope(LogKind.LOG_ENTRY, "hub", [offset, entry])
            for worker in [origin] if here else self._workers():
                self._send(worker, out)
        elif kind == LogKind.LOG_PERSIST and len(payload) == 5:
            pid, nsp, rooms, session, ttl = payload
            if (isinstance(pid, str) and isinstance(nsp, str) and _strings(rooms)
                    and isinstance(session, bytes) and isinstance(ttl, int | float)
                    and 0 < ttl <= log.limits.max_age * 2):
                log.persist(pid, nsp, rooms, session, float(ttl))
        elif kind == LogKind.LOG_RESTORE and len(payload) == 3:
            request, pid, offset = payload
            if (isinstance(request, int) and isinstance(pid, str)
                    and (offset is None or isinstance(offset, str))):
                restored = log.restore(request, pid, offset)
                self._send(origin, Envelope(LogKind.LOG_RESTORED, "hub", restored.to_wire()))
        elif kind == LogKind.LOG_LIMITS:
            limits = LogLimits.from_wire(payload)
            if limits is not None:
                log.limits = limits


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


class RelayedLog(PacketLog):
    """A worker's side of the master's log (HubStore, MemoryStore on a MemoryBus): every
    call is one envelope to the master, whose answers come in order on the worker's one
    connection to it."""

    def __init__(self, store: Store, limits: LogLimits) -> None:
        super().__init__()
        self._store = store
        self._limits: LogLimits | None = limits
        store.on(LogKind.LOG_ENTRY, self._on_entry)
        store.on(LogKind.LOG_RESTORED, self._on_restored)

    def _transmit(self, kind: LogKind, payload: Any) -> None:
        store = self._store
        if self._limits is not None:
            # the master learns the limits (the application's config) from the workers,
            # before their first use of the log (the store is not connected before that)
            limits, self._limits = self._limits, None
            store._transmit(Envelope(LogKind.LOG_LIMITS, store.owner, limits.to_wire()))
        store._transmit(Envelope(kind, store.owner, payload))

    def append(self, nsp: str, rooms: list[str], except_rooms: list[str], entry: bytes,
               *, here: bool = False) -> None:
        self._transmit(LogKind.LOG_APPEND, [nsp, rooms, except_rooms, entry, here])

    def persist(self, pid: str, nsp: str, rooms: list[str], session: bytes,
                ttl: float) -> None:
        self._transmit(LogKind.LOG_PERSIST, [pid, nsp, rooms, session, ttl])

    def restore(self, request: int, pid: str, offset: str | None) -> None:
        self._transmit(LogKind.LOG_RESTORE, [request, pid, offset])

    def _on_entry(self, envelope: Envelope) -> None:
        payload = envelope.payload
        if (isinstance(payload, list) and len(payload) == 2 and isinstance(payload[0], str)
                and isinstance(payload[1], bytes)):
            self.on_entry(payload[0], payload[1])

    def _on_restored(self, envelope: Envelope) -> None:
        restored = Restored.from_wire(envelope.payload)
        if restored is not None:
            self.on_restored(restored)
