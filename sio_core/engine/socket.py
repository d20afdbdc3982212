"""The I/O side of one Engine.IO session.

How this works: :class:`EngineSocket` owns a sans-I/O
:class:`~sio_core.protocol.session.EngineSession` (its core) and the transport that carries
it, and runs the loop around the core, in the shape of websockets' ``data_received``: feed
the core what arrived, act on what it returns, write its output, arm its timer. Whatever
happens (a packet, a GET, a send, a timer) ends in :meth:`EngineSocket._pump`, which writes
what the core has for the client through the transport when the transport is writable,
arms the one timer at the core's next deadline, and finishes the socket once the core is
CLOSED. Sends are coalesced: many ``send`` calls in one loop turn become one pump, so one
websocket write / one poll answer.

The socket knows its transport only as a :class:`~sio_core.engine.transport.Transport`;
polling.py drives the steps of a GET and a POST (:meth:`EngineSocket.begin_poll`, ...).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from ..protocol import engineio
from ..protocol.engineio import NOOP, Packet, PacketType
from ..protocol.session import CloseReason, EngineSession, State
from .transport import Transport

logger = logging.getLogger("sio_core.engine")


class EngineHandler(Protocol):
    """What the layer above (Socket.IO) receives from Engine.IO sessions. (Not
    ``runtime_checkable``, which mypyc cannot compile: ``python -m sio_core serve`` tells a
    bare handler by :func:`is_engine_handler`.)"""

    def on_open(self, socket: EngineSocket) -> None: ...

    def on_message(self, socket: EngineSocket, data: str | bytes) -> None: ...

    def on_close(self, socket: EngineSocket, reason: CloseReason) -> None: ...


def is_engine_handler(obj: object) -> bool:
    """Whether ``obj`` has what an EngineHandler has (as ``isinstance`` of a runtime-checkable
    Protocol would tell)."""
    return all(hasattr(obj, name) for name in ("on_open", "on_message", "on_close"))


class EngineSocket:
    """One Engine.IO session as the application sees it: ``send``, ``close``."""

    __slots__ = ("_finished", "_flusher", "_loop", "_on_finished", "_pump_scheduled",
                 "_timer", "_timer_at", "_upgrading", "answered_via", "context", "core",
                 "handler", "request", "sid", "transport")

    def __init__(self, core: EngineSession, handler: EngineHandler,
                 on_finished: Callable[[EngineSocket], None], transport: Transport, *,
                 request_info: Any = None) -> None:
        self.core = core
        self.sid = core.sid
        self.handler = handler
        #: what the handshake request carried (headers, query, address): the HTTP Request
        self.request = request_info
        #: free for the layer above (the Socket.IO client object)
        self.context: Any = None
        self._on_finished = on_finished
        self._loop = asyncio.get_running_loop()
        #: its loop's (looked up once: a weak dictionary's get per message costs ~0.5 us)
        self._flusher = _flusher(self._loop)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._pump_scheduled = False
        #: what carries the session now, and the websocket being probed during an upgrade
        self.transport = transport
        #: the worker that relayed this session's last answered GET, until the next GET
        #: shows the client got it (forwarding.py closes the session if that worker dies
        #: meanwhile: what the answer carried may be lost)
        self.answered_via: str | None = None
        self._upgrading: Transport | None = None
        self._finished = False
        transport.bind(self._message, self._transport_closed)

    # -- the API for the layer above ----------------------------------------------------

    @property
    def closed(self) -> bool:
        """CLOSING or CLOSED (what the core's ``accepting`` says the other way round)."""
        return not self.core.accepting

    def send(self, data: str | bytes, compress: bool = True) -> bool:
        """Queue one message; written at the end of this loop turn."""
        if not self.core.send(engineio.message(data, compress)):
            return False
        if not self._pump_scheduled:  # (while a handler answers input: the input's pump)
            self._schedule_pump()
        return True

    def send_packet(self, packet: Packet) -> bool:
        if not self.core.send(packet):
            return False
        self._schedule_pump()
        return True

    def send_packets(self, packets: list[Packet]) -> bool:
        """Queue packets that may be shared with other sockets (a broadcast): they are
        framed once, whoever writes them first. (Many sockets at once: :func:`fan_out`.)"""
        if not self.core.send_many(packets):
            return False
        if not self._pump_scheduled:
            self._schedule_pump()
        return True

    def close(self, reason: CloseReason = CloseReason.FORCED_CLOSE, *,
              notify: bool = True) -> None:
        """Close the session; the client is told (``1`` over polling, a close frame), or
        with ``notify=False`` not (its next request finds the session unknown)."""
        self.core.close(reason, notify=notify)
        self._pump()

    # -- events from the transports -----------------------------------------------------

    def opened(self) -> None:
        self.handler.on_open(self)
        self._pump()

    def receive(self, packets: list[Packet]) -> None:
        core = self.core
        messages = core.receive_many(packets, self._loop.time())
        # what the handlers send now is written by the pump below, in the same write: no
        # end-of-turn pump needs scheduling for it (the pump clears the flag)
        self._pump_scheduled = True
        # the messages before a close in this input are delivered (the reference emits them
        # before its close); the core has dropped the ones after it
        closed_by_input = not core.accepting
        for data in messages:
            if not closed_by_input and not core.accepting:
                # closed meanwhile by a handler (e.g. a refused packet): the rest is dropped,
                # as the reference's engine drops packets once its socket is not open
                break
            self._deliver(data)
        self._pump()

    def _deliver(self, data: str | bytes) -> None:
        try:
            self.handler.on_message(self, data)
        except Exception:
            logger.exception("error in message handler (sid %s)", self.sid)

    def protocol_error(self) -> None:
        self.core.protocol_error()
        self._pump()

    def _message(self, data: str | bytes) -> None:
        """One packet from a websocket (every websocket message's path)."""
        try:
            packet = engineio.decode_packet(data)
        except Exception:
            self.protocol_error()
            return
        core = self.core
        if packet.type is PacketType.MESSAGE and core.accepting:
            # what the handlers send is written at the end of this loop turn (send schedules
            # the pump), with what every other websocket read in this turn answers: the
            # client side then wakes once for a batch of answers rather than once per
            # answer (a write per read woke the load generator per ack: see PROFILE.md)
            self._deliver(packet.data)
        else:
            core.receive(packet, self._loop.time())
            self._pump()

    def _transport_closed(self) -> None:
        self.core.transport_lost()
        self._pump()

    # polling (polling.py drives these)

    def begin_poll(self, held: bool = False) -> list[Packet] | None:
        """Take a GET in, now: a request handled after this one finds it pending (the
        reference handles a session's requests in arrival order). Returns the packets to
        answer it with at once, if output is queued (and the GET is not ``held``: see
        polling.poll); else None: the GET waits, and the transport's ``send_packets``
        answers it. Raises BadRequest for a GET the session refuses (an overlapping one
        also closes the session, the pending GET told ``1``)."""
        core = self.core
        self.answered_via = None  # a GET: the previous answer reached the client
        try:
            core.begin_poll()
        except Exception:
            self._pump()
            raise
        if not held and core.has_output():
            out = core.take_output()
            self._pump()
            return out
        self._arm_timer()
        return None

    def abort_poll(self) -> None:
        """The pending GET's connection went away before its answer: the reference closes
        the session ("poll connection closed prematurely")."""
        self.core.abort_poll()
        self._pump()

    def release_poll(self) -> None:
        """The pending GET will never reach its client (it was relayed by a worker that is
        gone): end its wait with nothing, and keep the session; see
        :meth:`EngineSession.release_poll`."""
        if self.core.poll_pending:
            self.core.release_poll()
            self.transport.send_packets([])  # held or not (polling.poll)
            self._pump()

    def flush(self) -> None:
        """Write what is queued, now (to a GET that was held: polling.poll)."""
        self._pump()

    def begin_post(self) -> None:
        try:
            self.core.begin_post()
        except Exception:
            self._pump()
            raise

    def end_post(self) -> None:
        self.core.end_post()

    # upgrade

    def begin_upgrade(self, ws: Transport) -> None:
        """A websocket for this polling session: it is probed, then carries the session
        once the client sends ``5``. Raises BadRequest if the session cannot upgrade."""
        self.core.begin_upgrade(self._loop.time())
        self._upgrading = ws
        ws.bind(lambda data: self._upgrade_message(ws, data), lambda: self._upgrade_closed(ws))
        self._arm_timer()

    def _upgrade_message(self, ws: Transport, data: str | bytes) -> None:
        try:
            packet = engineio.decode_packet(data)
            reply = self.core.receive_upgrade(packet, self._loop.time())
        except Exception:
            self._upgrading = None
            ws.close()
            self._pump()
            return
        if reply is not None:
            ws.send_packets([reply])  # the probe's answer
        else:
            # "5": the websocket carries the session from now on; a GET still pending ends
            # (the client has paused polling)
            self._upgrading = None
            polling, self.transport = self.transport, ws
            ws.bind(self._message, self._transport_closed)
            if polling.writable:
                polling.send_packets([NOOP])
            polling.close()
        self._pump()

    def _upgrade_closed(self, ws: Transport) -> None:
        if self._upgrading is ws:
            self._upgrading = None
            self.core.fail_upgrade()
            self._pump()

    # -- the loop around the core -------------------------------------------------------

    def _schedule_pump(self) -> None:
        if not self._pump_scheduled:
            self._pump_scheduled = True
            self._flusher.add(self)

    def _pump(self) -> None:
        self._pump_scheduled = False
        core = self.core
        if core.has_output():
            transport = self.transport
            if transport.writable:
                transport.send_packets(core.take_output())
        if core.state is State.CLOSING:
            core.start_close_timer(self._loop.time())
        if core.state is State.CLOSED:
            self._finish()
        else:
            self._arm_timer()

    def _arm_timer(self) -> None:
        deadline = self.core.next_deadline()
        if deadline is None:
            return
        if self._timer is not None:
            if self._timer_at is not None and self._timer_at <= deadline:
                return  # fires no later than needed; it re-arms itself then
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        self.core.on_timer(self._loop.time())
        if self._upgrading is not None and self.core.state is not State.UPGRADING:
            ws, self._upgrading = self._upgrading, None
            ws.close()
        self._pump()

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        # polling: a GET still pending is told "1"; a websocket: the closing handshake
        self.transport.close()
        if self._upgrading is not None:
            self._upgrading.close()
        reason = self.core.close_reason or CloseReason.TRANSPORT_CLOSE
        try:
            self.handler.on_close(self, reason)
        except Exception:
            logger.exception("error in close handler (sid %s)", self.sid)
        self._on_finished(self)


def fan_out(sockets: Iterable[Any], packets: list[Packet], *,
            volatile: bool = False) -> int:
    """Queue the same packets (a broadcast's, framed once whoever writes them first) on
    every socket of ``sockets`` that takes output, and have each written at the end of
    this loop turn; returns how many took them. ``volatile``: only the sockets whose
    transport can write now (a polling session without a pending GET is skipped).

    This is the loop a broadcast's cost per recipient is: one pass, no call per recipient
    but the list's extend, nothing allocated per recipient (the sockets to pump are marked
    and handed to the flusher in one list). ``sockets`` may be a live view (a room's
    members): nothing here runs code that could change it. A socket of another class (a
    test's stand-in) is sent to through its own ``send_packets`` (hence ``Any``: a compiled
    build would refuse a stand-in where an EngineSocket is declared)."""
    count = 0
    dirty: list[EngineSocket] = []
    mark = dirty.append
    for socket in sockets:
        core = socket.core
        if type(socket) is not EngineSocket:
            if not (volatile and not core.writable) and socket.send_packets(packets):
                count += 1
            continue
        if not core.accepting or (volatile and not core.writable):
            continue
        core.outbox += packets
        count += 1
        if not socket._pump_scheduled:
            socket._pump_scheduled = True
            mark(socket)
    if dirty:
        dirty[0]._flusher.add_many(dirty)
    return count


class _Flusher:
    """One callback per loop turn pumps every socket that got output in that turn (rather
    than one callback per socket): the write-coalescing point of a broadcast."""

    # it keeps no reference to its loop: the table below holds loops weakly, and a value
    # that held its key would keep every loop alive
    __slots__ = ("_dirty", "_scheduled")

    def __init__(self) -> None:
        self._dirty: list[EngineSocket] = []
        self._scheduled = False

    def add(self, socket: EngineSocket) -> None:
        self._dirty.append(socket)
        if not self._scheduled:
            self._scheduled = True
            socket._loop.call_soon(self._run)

    def add_many(self, sockets: list[EngineSocket]) -> None:
        self._dirty += sockets
        if not self._scheduled:
            self._scheduled = True
            sockets[0]._loop.call_soon(self._run)

    def _run(self) -> None:
        dirty, self._dirty = self._dirty, []
        self._scheduled = False
        for socket in dirty:
            if not socket._pump_scheduled:
                continue  # pumped since it was added (e.g. right after its input)
            try:
                socket._pump()
            except Exception:
                logger.exception("error writing to %s", socket.sid)


_flushers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Flusher] = (
    weakref.WeakKeyDictionary())


def _flusher(loop: asyncio.AbstractEventLoop) -> _Flusher:
    """The flusher of ``loop`` (made on first use)."""
    flusher = _flushers.get(loop)
    if flusher is None:
        flusher = _flushers[loop] = _Flusher()
    return flusher
