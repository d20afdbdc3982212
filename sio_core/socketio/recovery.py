"""Connection state recovery: a client that lost its connection gets its socket back.

How this works (the reference's ``connectionStateRecovery``, over the store's log):

- **Offsets.** Every packet kept (an EVENT without ack, not volatile: a broadcast, or an
  emit to one socket) goes to the store's :class:`~sio_core.stores.log.PacketLog` instead
  of out at once. The log gives it an offset and hands it back to every worker in log
  order; each delivers it to its matching sockets with the offset added as the last
  argument (what the official client reads as its last offset).
- **Sessions.** The CONNECT reply carries a private ``pid`` beside the ``sid``. A socket's
  id, rooms and data are persisted as a session when it connects, when its rooms change,
  every third of ``max_disconnection_duration`` while connected (so that the sockets of a
  worker killed with -9 are kept too) and when it disconnects for a reason the reference
  calls recoverable (kept ``max_disconnection_duration`` from then).
- **Restore.** A CONNECT whose auth has ``pid`` (and ``offset``, the last one the client
  saw; without it, the log's end when the session began) asks the log. Its answer comes
  in order with the entries, and the socket is admitted in that same turn: it gets its
  id, rooms and data back, the CONNECT reply, the packets it missed in log order, then
  every later entry live, none twice. The middlewares are skipped (``skip_middlewares``),
  or run and followed by a second read for what came meanwhile. A socket still connected
  (here, or on a live worker: SOCKET_RELEASE) is made to let go first, and the session read
  again. A session that is unknown, expired, ended on purpose, or whose packets the log no
  longer has or has too many of gives a fresh socket: ``socket.recovered`` is False.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgpack

from ..config import ConnectionStateRecovery
from ..protocol import socketio as sio
from ..protocol.session import CloseReason
from ..protocol.sid import new_id
from ..stores.base import Envelope, Store
from ..stores.log import LocalLog, LogLimits, PacketLog, Restored, Status
from .adapter import BroadcastOptions
from .messages import SocketRelease
from .namespace import run_middlewares
from .socket import Socket

if TYPE_CHECKING:
    from .client import Client
    from .namespace import Namespace
    from .server import Server

logger = logging.getLogger("sio_core.socketio")

#: disconnect reasons after which a session is kept (the reference's
#: RECOVERABLE_DISCONNECT_REASONS); after any other (the client or the server leaving the
#: namespace on purpose) it ends
RECOVERABLE = frozenset({"transport error", "transport close", "forced close", "ping timeout",
                         "server shutting down", "forced server close"})

#: how long a worker is given to let go of a socket recovered elsewhere: a live worker
#: answers within a round trip; one that was killed never does (with Redis it stays among
#: the peers until its entry expires), and its client waits this long for its socket
RELEASE_TIMEOUT = 1.0

# the states of a persisted session
LIVE, AWAY, ENDED = "live", "away", "ended"


def _pack(value: Any) -> bytes | None:
    try:
        return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]
    except Exception:
        return None


def _unpack(data: bytes) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception:
        return None


def keeps(packet: sio.Packet, opts: BroadcastOptions) -> bool:
    """Which packets the log keeps (the reference's SessionAwareAdapter): events without
    an ack (an ack cannot be called back on another server), not volatile ones."""
    return (packet.id is None and not opts.volatile
            and packet.type in (sio.PacketType.EVENT, sio.PacketType.BINARY_EVENT))


@dataclass(slots=True)
class Session:
    """A socket as persisted: what a reconnect gets back."""

    sid: str
    pid: str
    rooms: list[str]
    data: Any
    state: str
    owner: str | None

    @staticmethod
    def of(socket: Socket, state: str, owner: str | None) -> Session:
        return Session(socket.id, socket.pid or "", sorted(socket.rooms), socket.data, state,
                       owner)

    def pack(self) -> bytes | None:
        return _pack([self.sid, self.pid, self.rooms, self.data, self.state, self.owner])

    @staticmethod
    def unpack(data: bytes | None) -> Session | None:
        item = _unpack(data) if data is not None else None
        if (isinstance(item, list) and len(item) == 6 and isinstance(item[0], str)
                and isinstance(item[1], str) and isinstance(item[2], list)
                and all(isinstance(r, str) for r in item[2]) and isinstance(item[4], str)
                and (item[5] is None or isinstance(item[5], str))):
            return Session(*item)
        return None


@dataclass(slots=True)
class _Pending:
    client: Client
    name: str
    auth: dict[str, Any]
    pid: str
    offset: str | None
    #: the first answer, when the middlewares run between two reads of the log
    first: tuple[Session, list[tuple[str, bytes]]] | None = None
    #: its old socket, still connected, was asked to let go (once)
    released: bool = False


class Recovery:
    """The server's connection state recovery (``server.recovery``, None when off)."""

    def __init__(self, server: Server, config: ConnectionStateRecovery) -> None:
        self.server = server
        self.config = config
        self.limits = LogLimits.of(config)
        self.log: PacketLog = LocalLog(self.limits)
        self._bind()
        self._store: Store | None = None
        self._requests = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._dirty: dict[str, Socket] = {}
        self._flush: asyncio.Handle | None = None
        self._refresh: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._appended: tuple[bytes, list[Any]] | None = None
        #: entries from the store's log not yet delivered (see _on_entry)
        self._entries: list[tuple[str, bytes]] = []

    def use_store(self, store: Store) -> None:
        """Keep the log where the store's workers meet (the master's hub, Redis), if the
        store keeps one."""
        log = store.packet_log(self.limits)
        if log is not None:
            self.log = log
            self._bind()
        self._store = store
        store.on(SocketRelease.KIND, self._on_release)

    def _bind(self) -> None:
        self.log.on_entry = self._on_entry
        self.log.on_restored = self._on_restored

    @property
    def owner(self) -> str | None:
        return self._store.owner if self._store is not None else None

    # -- keeping packets --------------------------------------------------------------------

    def broadcast(self, namespace: Namespace, packet: sio.Packet,
                  opts: BroadcastOptions) -> bool:
        """Keep a broadcast in the log, which delivers it (True); False: not one it keeps,
        to be sent as usual."""
        if not keeps(packet, opts):
            return False
        return self._append(namespace.name, packet.data, opts.rooms, opts.except_rooms,
                            here=opts.local, compress=opts.compress)

    def emit(self, socket: Socket, packet: sio.Packet, *, compress: bool = True) -> bool:
        """An emit to one socket without ack, kept as a broadcast to its room (as the
        reference does); delivered by this worker only, the socket's."""
        return self._append(socket.namespace.name, packet.data, frozenset({socket.id}),
                            frozenset(), here=True, compress=compress)

    def _append(self, nsp: str, data: list[Any], rooms: frozenset[str],
                except_rooms: frozenset[str], *, here: bool, compress: bool) -> bool:
        rooms_list, except_list = sorted(rooms), sorted(except_rooms)
        item = [nsp, data, rooms_list, except_list, compress]
        entry = _pack(item)
        if entry is None:
            return False  # data msgpack cannot carry: sent as usual, not kept
        # the log of one process hands this very entry back at once: not decoded again
        self._appended = (entry, item)
        self.log.append(nsp, rooms_list, except_list, entry, here=here)
        self._appended = None
        return True

    def _on_entry(self, offset: str, entry: bytes) -> None:
        """An entry the log hands back: the one just appended to this process's own log
        at once (decoded already); the store log's at the end of the loop turn that read
        it (or before a restore is answered, which replays the log up to there), so that
        a burst's runs to the same sockets are delivered in one pass each."""
        appended = self._appended
        if appended is not None and appended[0] is entry:
            self._deliver([(offset, appended[1])])
            return
        if not self._entries:
            asyncio.get_running_loop().call_soon(self._deliver_held)
        self._entries.append((offset, entry))

    def _deliver_held(self) -> None:
        entries, self._entries = self._entries, []
        if entries:
            self._deliver([(offset, _unpack(entry)) for offset, entry in entries])

    def _deliver(self, items: list[tuple[str, Any]]) -> None:
        """Entries in log order, each a broadcast with its offset as the last argument:
        each run of them to the same sockets in one pass (Adapter.broadcast_run)."""
        entries = [(offset, item) for offset, item in items
                   if isinstance(item, list) and len(item) == 5 and isinstance(item[0], str)
                   and isinstance(item[1], list) and item[1] and isinstance(item[1][0], str)]
        for (nsp, rooms, excepted, compress), group in itertools.groupby(entries, _recipients):
            namespace = self.server.namespace_now(nsp)
            if namespace is not None:
                namespace.adapter.broadcast_run(
                    [sio.Packet(sio.PacketType.EVENT, nsp, [*item[1], offset])
                     for offset, item in group],
                    BroadcastOptions(frozenset(rooms), frozenset(excepted), compress=compress))

    # -- sessions ---------------------------------------------------------------------------

    def connected(self, socket: Socket) -> str:
        """A socket is joining: its pid (a recovered one keeps its own), for the CONNECT
        reply. It is persisted as live once in its room (:meth:`touch`), and every third of
        max_disconnection_duration while connected."""
        if socket.pid is None:
            socket.pid = new_id()
        if self._refresh is None:
            interval = self.config.max_disconnection_duration / 3
            self._refresh = asyncio.get_running_loop().call_later(interval, self._refresh_all)
        return socket.pid

    def touch(self, socket: Socket) -> None:
        """The socket's rooms changed: persisted again at the end of this loop turn (once,
        whatever else changes in it)."""
        if socket.pid is None or not socket.connected:
            return
        self._dirty[socket.id] = socket
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_soon(self._flush_dirty)

    def _flush_dirty(self) -> None:
        self._flush = None
        dirty, self._dirty = self._dirty, {}
        for socket in dirty.values():
            if socket.connected:
                self._persist(socket, LIVE)

    def _refresh_all(self) -> None:
        self._refresh = None
        sockets = [s for ns in self.server.namespaces.values() for s in ns.sockets.values()]
        for socket in sockets:
            if socket.pid is not None and socket.connected:
                self._persist(socket, LIVE)
        if sockets:
            self._refresh = asyncio.get_running_loop().call_later(
                self.config.max_disconnection_duration / 3, self._refresh_all)

    def closed(self, socket: Socket, reason: str) -> None:
        """The socket is leaving (its rooms still joined): kept if the reason is one a
        reconnect may recover from, else ended."""
        if socket.pid is not None:
            self._dirty.pop(socket.id, None)
            self._persist(socket, AWAY if reason in RECOVERABLE else ENDED)

    def _persist(self, socket: Socket, state: str) -> None:
        session = Session.of(socket, state, self.owner)
        packed = session.pack()
        if packed is None:
            logger.warning("%r: its data cannot be kept for recovery (msgpack types only)",
                           socket)
            session.data = None
            packed = session.pack()
            assert packed is not None
        self.log.persist(session.pid, socket.namespace.name, session.rooms, packed,
                         self.config.max_disconnection_duration)

    # -- restoring --------------------------------------------------------------------------

    def connect(self, client: Client, name: str, auth: dict[str, Any]) -> bool:
        """A CONNECT: if it asks to recover a session, the log is asked (True); the
        connection goes on when it answers. False: an ordinary CONNECT."""
        pid, offset = auth.get("pid"), auth.get("offset")
        if not isinstance(pid, str) or not (offset is None or isinstance(offset, str)):
            return False
        pending = _Pending(client, name, auth, pid, offset)
        client.connecting(name)
        if self.server.namespace_now(name) is not None:
            self._restore(pending)
        else:  # a dynamic namespace's child, made first (the log's answer is acted on at once)
            task = asyncio.get_running_loop().create_task(self._child_then_restore(pending))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return True

    def _restore(self, pending: _Pending) -> None:
        request = next(self._requests)
        self._pending[request] = pending
        self.log.restore(request, pending.pid, pending.offset)

    async def _child_then_restore(self, pending: _Pending) -> None:
        try:
            namespace = await self.server.find_namespace(pending.name, pending.auth)
        except Exception:
            logger.exception("error matching namespace %s", pending.name)
            namespace = None
        if namespace is None:
            pending.client.connected_or_refused(pending.name)
            pending.client.refuse(pending.name, "Invalid namespace", None)
            return
        self._restore(pending)

    def _on_restored(self, restored: Restored) -> None:
        self._deliver_held()  # before: the log's answer replays up to there
        pending = self._pending.pop(restored.request, None)
        if pending is None:
            return
        client = pending.client
        if client.conn.closed:
            client.connected_or_refused(pending.name)
            return
        session = Session.unpack(restored.session) if restored.status == Status.OK else None
        namespace = self.server.namespace_now(pending.name)
        if pending.first is not None:  # the second read, after the middlewares
            first, missed = pending.first
            self._admit(namespace, pending, first,
                        missed + (restored.packets if session is not None else []))
            return
        if session is None or namespace is None or session.state == ENDED:
            logger.debug("not recovered (%s): %s", restored.status, pending.pid)
            client.connected_or_refused(pending.name)
            client.connect_fresh(pending.name, pending.auth)
            return
        if not pending.released and self._held(session, namespace):
            # its old socket is still connected (the client came back before the server
            # noticed its connection die, or its requests went through a worker that died):
            # let go of it first, then read the session as that left it
            pending.released = True
            self._release(session, namespace, pending)
            return
        if self.config.skip_middlewares or not namespace.middlewares:
            self._admit(namespace, pending, session, restored.packets)
            return
        task = asyncio.get_running_loop().create_task(
            self._middlewares(namespace, pending, session, restored.packets))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _held(self, session: Session, namespace: Namespace) -> bool:
        """Whether the session's socket is still connected here or on a live worker (one
        that is gone, killed, left its sockets LIVE: they are free)."""
        if session.sid in namespace.sockets:
            return True
        store = self._store
        return (session.state == LIVE and store is not None and session.owner is not None
                and session.owner != store.owner and session.owner in store.peers)

    def _release(self, session: Session, namespace: Namespace, pending: _Pending) -> None:
        """Have the old socket let go (persisted AWAY), then ask the log again."""
        def again(answer: asyncio.Future[Any] | None = None) -> None:
            if answer is not None and not answer.cancelled():
                answer.exception()  # a worker that is gone does not answer: taken anyway
            self._restore(pending)

        socket = namespace.sockets.get(session.sid)
        if socket is not None:
            release(socket)
            again()
            return
        assert self._store is not None and session.owner is not None
        future = self._store.ask(session.owner, SocketRelease.KIND,
                                 SocketRelease(namespace.name, session.sid).to_wire(),
                                 RELEASE_TIMEOUT)
        future.add_done_callback(again)  # answered, failed or timed out: read it again

    def _on_release(self, envelope: Envelope) -> bool:
        """Another worker recovers one of our sockets: let go of it."""
        message = SocketRelease.from_wire(envelope.payload)
        namespace = self.server.namespace_now(message.namespace)
        socket = namespace.sockets.get(message.sid) if namespace is not None else None
        if socket is not None:
            release(socket)
            return True
        return False

    async def _middlewares(self, namespace: Namespace, pending: _Pending, session: Session,
                           missed: list[tuple[str, bytes]]) -> None:
        socket = self._socket(namespace, pending, session)
        if not await run_middlewares(namespace, pending.client, socket):
            pending.client.connected_or_refused(pending.name)
            return
        pending.first = (session, missed)
        if missed:
            pending.offset = missed[-1][0]
        self._restore(pending)

    def _socket(self, namespace: Namespace, pending: _Pending, session: Session) -> Socket:
        socket = Socket(namespace, pending.client, pending.auth)
        socket.id = session.sid
        socket.pid = session.pid
        socket.data = session.data if session.data is not None else {}
        socket.recovered = True
        return socket

    def _admit(self, namespace: Namespace | None, pending: _Pending, session: Session,
               missed: list[tuple[str, bytes]]) -> None:
        client = pending.client
        client.connected_or_refused(pending.name)
        if namespace is None:
            return
        socket = self._socket(namespace, pending, session)
        socket.restored = (session.rooms, missed)
        namespace.admit(client, socket)

    def replay(self, socket: Socket) -> None:
        """Right after the CONNECT reply of a recovered socket: its rooms back, then what
        it missed, in order, each with its offset."""
        restored, socket.restored = socket.restored, None
        if restored is None:
            return
        rooms, missed = restored
        socket.join(rooms)
        for offset, entry in missed:
            item = _unpack(entry)
            if isinstance(item, list) and len(item) == 5 and isinstance(item[1], list):
                socket.client.send_packet(
                    sio.Packet(sio.PacketType.EVENT, socket.namespace.name, [*item[1], offset]))


def _recipients(entry: tuple[str, list[Any]]) -> tuple[Any, ...]:
    """Where a log entry goes: its namespace, rooms, rooms excepted and compress flag."""
    nsp, _, rooms, excepted, compress = entry[1]
    return nsp, rooms, excepted, compress is not False


def release(socket: Socket) -> None:
    """A socket whose client came back on another connection: it leaves as if its
    connection had closed (kept for recovery), and that connection, dead or not, ends."""
    socket.on_close("transport close")
    socket.client.conn.close(CloseReason.FORCED_CLOSE)
