"""The Engine.IO v4 session state machine (sans-I/O).

How this works: the I/O layer creates an :class:`EngineSession` at the handshake, then
runs a thin loop around it: feed it what arrives (:meth:`receive`, :meth:`begin_poll`,
:meth:`receive_upgrade`), write what :meth:`take_output` returns whenever
:attr:`writable`, arm one timer at :meth:`next_deadline` and call :meth:`on_timer` when
it fires, and finish up once :attr:`state` is ``CLOSED``. Time is always an argument.

States and the only transitions::

    OPEN --begin_upgrade--> UPGRADING --"5"--> OPEN (transport now websocket)
                            UPGRADING --fail/timeout--> OPEN (still polling)
    OPEN|UPGRADING --close(reason)--> CLOSING (polling, output still to deliver)
    OPEN|UPGRADING|CLOSING --> CLOSED

All state changes go through :meth:`_set_state`.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

from ..exceptions import BadRequest, EngineIOProtocolError
from .engineio import CLOSE, NOOP, PING, PONG, PROBE, Packet, PacketType

#: the OPEN packet's JSON, as ``json.dumps(..., separators=...)`` writes it (which builds an
#: encoder per call: one per handshake)
_encode_json = json.JSONEncoder(separators=(",", ":")).encode


class State(enum.Enum):
    OPEN = "open"
    UPGRADING = "upgrading"
    CLOSING = "closing"
    CLOSED = "closed"


class Transport(enum.Enum):
    POLLING = "polling"
    WEBSOCKET = "websocket"


class CloseReason(enum.StrEnum):
    """Why a session ended, in the reference server's words."""

    TRANSPORT_CLOSE = "transport close"  # the client sent "1" or closed its websocket
    TRANSPORT_ERROR = "transport error"  # e.g. a second pending GET, a dropped poll
    PARSE_ERROR = "parse error"  # a malformed packet
    PING_TIMEOUT = "ping timeout"
    FORCED_CLOSE = "forced close"  # the server closed it (session.close())
    SERVER_SHUTTING_DOWN = "server shutting down"


_ALLOWED = {
    State.OPEN: {State.UPGRADING, State.CLOSING, State.CLOSED},
    State.UPGRADING: {State.OPEN, State.CLOSING, State.CLOSED},
    State.CLOSING: {State.CLOSED},
    State.CLOSED: set(),
}


@dataclass(frozen=True, slots=True)
class Timing:
    ping_interval: float
    ping_timeout: float
    upgrade_timeout: float = 10.0
    close_timeout: float = 30.0
    #: the most packets one poll's answer carries (the rest wait for the next GET); None:
    #: all of them (see Config.max_packets_per_poll)
    max_packets_per_poll: int | None = None


class EngineSession:
    """One Engine.IO session, whatever transport carries it."""

    # slots: a broadcast touches every recipient's session; the smaller, the more of them
    # stay in the CPU's cache
    __slots__ = ("_close_due", "_closing_by", "_noop_due", "_ping_at", "_pong_by", "_probed",
                 "_upgrade_by", "accepting", "close_reason", "outbox", "poll_pending",
                 "post_pending", "sid", "state", "timing", "transport")

    def __init__(self, sid: str, transport: Transport, timing: Timing, now: float) -> None:
        self.sid = sid
        self.transport = transport
        self.timing = timing
        self.state = State.OPEN
        self.close_reason: CloseReason | None = None
        #: the packets queued for the client, in order. A broadcast appends its packets to
        #: many sessions' outboxes in one loop (sio_core/engine/socket.py, fan_out), where
        #: only :attr:`accepting` is checked: nothing else may guard an append
        self.outbox: list[Packet] = []
        #: whether output is queued: not once the session is CLOSING or CLOSED
        self.accepting = True
        #: polling only: a GET is waiting for output
        self.poll_pending = False
        #: polling only: a POST is being processed (the reference refuses overlapping POSTs)
        self.post_pending = False
        # heartbeat: the next ping is due at _ping_at; once sent, a pong is due by _pong_by
        self._ping_at: float | None = now + timing.ping_interval
        self._pong_by: float | None = None
        # upgrade: probe seen, and the time by which "5" must arrive
        self._probed = False
        self._upgrade_by: float | None = None
        # a NOOP must end the current/next poll (after the probe: reference behaviour)
        self._noop_due = False
        self._close_due = False  # a CLOSE must be written to the next poll
        self._closing_by: float | None = None

    # -- state ------------------------------------------------------------------------------

    def _set_state(self, state: State) -> None:
        if state not in _ALLOWED[self.state]:
            raise AssertionError(f"illegal transition {self.state} -> {state}")
        self.state = state
        self.accepting = state is not State.CLOSING and state is not State.CLOSED

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

    def handshake(self, *, upgrades: list[str], max_payload: int) -> Packet:
        """The OPEN packet that starts the session."""
        body = _encode_json(
            {
                "sid": self.sid,
                "upgrades": upgrades,
                # milliseconds, exact for sub-second values (0.3 s -> 300)
                "pingInterval": round(self.timing.ping_interval * 1000),
                "pingTimeout": round(self.timing.ping_timeout * 1000),
                "maxPayload": max_payload,
            },
        )
        return Packet(PacketType.OPEN, body)

    # -- output -----------------------------------------------------------------------------

    def send(self, packet: Packet) -> bool:
        """Queue a packet for the client. False if the session no longer takes packets."""
        if not self.accepting:
            return False
        self.outbox.append(packet)
        return True

    def send_many(self, packets: list[Packet]) -> bool:
        """Queue several packets (a broadcast's); as :meth:`send`."""
        if not self.accepting:
            return False
        self.outbox.extend(packets)
        return True

    @property
    def writable(self) -> bool:
        """Whether the current transport can take output now."""
        if self.state is State.CLOSED:
            return False
        if self.transport is Transport.WEBSOCKET:
            return True
        return self.poll_pending

    def has_output(self) -> bool:
        return bool(self.outbox) or self._noop_due or self._close_due

    def take_output(self) -> list[Packet]:
        """Everything to write now, in order. For polling this answers the pending GET."""
        out, self.outbox = self.outbox, []
        if self.transport is Transport.POLLING:
            limit = self.timing.max_packets_per_poll
            if limit is not None:
                limit = max(1, limit - self._noop_due)  # room for the noop, if one is due
                if len(out) > limit:
                    out, self.outbox = out[:limit], out[limit:]
            if self._close_due:
                # reference (engine.io's Socket.close()): what is queued drains first, in a
                # response of its own, and the "1" goes in the next one, so a client reads
                # those packets before it sees the session end
                if not out:
                    # a server that shuts down ends the poll with a noop, and the session is
                    # gone for the next GET (400): both official clients take that for a
                    # transport error and reconnect, where python-socketio's client takes a
                    # "1" for a server disconnect and never reconnects
                    out.append(NOOP if self.close_reason is CloseReason.SERVER_SHUTTING_DOWN
                               else CLOSE)
                    self._close_due = self._noop_due = False
            elif self._noop_due:
                out.append(NOOP)
                # after the probe every poll ends at once: the client is pausing polling
                self._noop_due = self.state is State.UPGRADING and self._probed
            self.poll_pending = False
            if self.state is State.CLOSING and not self._close_due:
                self._set_state(State.CLOSED)
        return out

    def queued(self) -> int:
        return len(self.outbox)

    # -- polling ----------------------------------------------------------------------------

    def begin_poll(self) -> None:
        """A GET arrived. A second pending GET is an error (reference: 400, session closed,
        the first GET answered with ``1``)."""
        if self.transport is not Transport.POLLING:
            raise BadRequest("polling request after upgrade")
        if self.poll_pending:
            self.close(CloseReason.TRANSPORT_ERROR, notify=False)
            raise BadRequest("overlapping GET")
        if self.state is State.CLOSED:
            raise BadRequest("session closed")
        self.poll_pending = True

    def abort_poll(self) -> None:
        """The pending GET's connection went away before it was answered: the reference
        closes the session ("poll connection closed prematurely")."""
        if self.poll_pending:
            self.poll_pending = False
            if self.state is State.CLOSING:
                self._set_state(State.CLOSED)
            else:
                self.close(CloseReason.TRANSPORT_ERROR, notify=False)

    def release_poll(self) -> None:
        """The pending GET can no longer be answered, through no fault of the client (the
        worker that relayed it is gone): it is forgotten and the session goes on; what is
        queued waits for the client's next GET. (Unlike :meth:`abort_poll`, this closes
        nothing.)"""
        if self.poll_pending:
            self.poll_pending = False
            if self.state is State.CLOSING and not self._close_due:
                self._set_state(State.CLOSED)  # that GET was to carry the session's last word

    def begin_post(self) -> None:
        if self.transport is not Transport.POLLING:
            raise BadRequest("polling request after upgrade")
        if self.post_pending:
            self.close(CloseReason.TRANSPORT_ERROR, notify=False)
            raise BadRequest("overlapping POST")
        if self.state is State.CLOSING or self.state is State.CLOSED:
            raise BadRequest("session closed")
        self.post_pending = True

    def end_post(self) -> None:
        self.post_pending = False

    # -- input ------------------------------------------------------------------------------

    def receive(self, packet: Packet, now: float) -> list[str | bytes]:
        """A packet from the client over the session's transport. Returns the messages
        for the application."""
        if self.state is State.CLOSED or self.state is State.CLOSING:
            return []
        ptype = packet.type
        if ptype is PacketType.MESSAGE:
            return [packet.data]
        if ptype is PacketType.PONG:
            # answered in time: the next ping is due ping_interval from now
            self._pong_by = None
            self._ping_at = now + self.timing.ping_interval
        elif ptype is PacketType.CLOSE:
            self.close(CloseReason.TRANSPORT_CLOSE, notify=False)
        elif ptype is PacketType.OPEN:
            # a client never sends OPEN: protocol error (reference: parse error)
            self.close(CloseReason.PARSE_ERROR, notify=False)
        elif ptype is PacketType.PING:
            # v4 heartbeats go server -> client only; the reference (engine.io 6) closes
            # with "transport error" ("invalid heartbeat direction")
            self.close(CloseReason.TRANSPORT_ERROR, notify=False)
        # NOOP and a stray UPGRADE are ignored, as the reference does
        return []

    def receive_many(self, packets: list[Packet], now: float) -> list[str | bytes]:
        messages: list[str | bytes] = []
        for packet in packets:
            messages.extend(self.receive(packet, now))
            if self.state is State.CLOSED:
                break
        return messages

    def protocol_error(self) -> None:
        """The transport could not decode what the client sent."""
        self.close(CloseReason.PARSE_ERROR, notify=False)

    def transport_lost(self) -> None:
        """The websocket carrying the session closed or failed."""
        if self.state is not State.CLOSED:
            if self.state is State.CLOSING:
                self._set_state(State.CLOSED)
            else:
                self.close(CloseReason.TRANSPORT_CLOSE, notify=False)

    # -- upgrade ----------------------------------------------------------------------------

    def begin_upgrade(self, now: float) -> None:
        """A websocket arrived for this polling session."""
        if self.transport is not Transport.POLLING or self.state is not State.OPEN:
            # a second websocket, or one after the upgrade: refused
            raise BadRequest("upgrade not possible")
        self._set_state(State.UPGRADING)
        self._probed = False
        self._upgrade_by = now + self.timing.upgrade_timeout

    def receive_upgrade(self, packet: Packet, now: float) -> Packet | None:
        """A packet on the websocket that is upgrading. Returns a packet to write on that
        websocket. Raises EngineIOProtocolError if the upgrade fails (close the websocket;
        the session goes on over polling)."""
        if self.state is not State.UPGRADING:
            raise EngineIOProtocolError("not upgrading")
        if packet.type is PacketType.PING and packet.data == PROBE and not self._probed:
            self._probed = True
            self._noop_due = True  # end the pending (or next) poll so the client can pause
            return Packet(PacketType.PONG, PROBE)
        if packet.type is PacketType.UPGRADE and self._probed:
            self._set_state(State.OPEN)
            self.transport = Transport.WEBSOCKET
            self._upgrade_by = None
            self._noop_due = False  # never a stray NOOP on the websocket after "5"
            self.poll_pending = False
            return None
        self.fail_upgrade()
        raise EngineIOProtocolError("unexpected packet during upgrade")

    def fail_upgrade(self) -> None:
        """The upgrading websocket closed or timed out: carry on over polling."""
        if self.state is State.UPGRADING:
            self._set_state(State.OPEN)
            self._upgrade_by = None
            self._probed = False
            self._noop_due = False

    # -- closing ----------------------------------------------------------------------------

    def close(self, reason: CloseReason, *, notify: bool = True) -> None:
        """End the session. With ``notify`` the client is told: over polling, the pending
        or next GET gets what is queued and then ``1`` (``6`` when the server shuts down,
        and the session is unknown to the GET after it); a websocket is closed after the
        queue is written. Without it (the client's own close, a timeout, an error) queued
        output is dropped, and only a pending GET is answered with ``1`` / ``6``."""
        if self.state is State.CLOSED or self.state is State.CLOSING:
            return
        self.close_reason = reason
        self._upgrade_by = None
        self._ping_at = self._pong_by = None
        if self.transport is Transport.WEBSOCKET:
            if not notify:
                self.outbox.clear()
            self._set_state(State.CLOSED)
            return
        if not notify:
            self.outbox.clear()
            if not self.poll_pending:
                self._set_state(State.CLOSED)
                return
            # reference: a client "1" ends the pending GET with NOOP, other ends with CLOSE
            if reason is CloseReason.TRANSPORT_CLOSE:
                self._noop_due = True
            else:
                self._close_due = True
        else:
            self._close_due = True
        self._set_state(State.CLOSING)

    # -- time -------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        # the earliest of the deadlines set (asked after every input: no list built)
        deadline = self._ping_at
        for other in (self._pong_by, self._upgrade_by,
                      self._closing_by if self.state is State.CLOSING else None):
            if other is not None and (deadline is None or other < deadline):
                deadline = other
        return deadline

    def on_timer(self, now: float) -> None:
        if self.state is State.CLOSED:
            return
        if self.state is State.CLOSING:
            if self._closing_by is not None and now >= self._closing_by:
                self._set_state(State.CLOSED)
            return
        if self._upgrade_by is not None and now >= self._upgrade_by:
            self.fail_upgrade()
        if self._pong_by is not None and now >= self._pong_by:
            self.close(CloseReason.PING_TIMEOUT, notify=False)
            return
        if self._ping_at is not None and now >= self._ping_at:
            self.outbox.append(PING)
            self._ping_at = None
            self._pong_by = now + self.timing.ping_timeout

    def start_close_timer(self, now: float) -> None:
        """Bound how long a CLOSING polling session waits for a GET."""
        if self.state is State.CLOSING and self._closing_by is None:
            self._closing_by = now + self.timing.close_timeout


__all__ = [
    "PING",
    "PONG",
    "CloseReason",
    "EngineSession",
    "State",
    "Timing",
    "Transport",
]
