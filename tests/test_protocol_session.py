"""Tests for sio_core.protocol.session: the Engine.IO session state machine, time injected.

Every test drives the machine the way the I/O layer does (feed packets, poll, take output,
fire the timer at ``next_deadline``) with a fake clock starting at ``T0``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sio_core.exceptions import BadRequest, EngineIOProtocolError
from sio_core.protocol.engineio import (
    CLOSE,
    NOOP,
    PING,
    PONG,
    Packet,
    PacketType,
    decode_packet,
    encode_packet,
    message,
)
from sio_core.protocol.session import CloseReason, EngineSession, State, Timing, Transport

T0 = 1000.0  # an arbitrary clock origin: nothing may assume time starts at 0
INTERVAL = 0.3
TIMEOUT = 0.2
EPS = 1e-6
UPGRADE_TIMEOUT = 0.1
CLOSE_TIMEOUT = 0.05

POLLING = Transport.POLLING
WEBSOCKET = Transport.WEBSOCKET

HELLO = message("hello")
WORLD = message("world")
BLOB = message(b"\x01\x02")
PROBE_PING = decode_packet("2probe")
PROBE_PONG = Packet(PacketType.PONG, "probe")
UPGRADE = decode_packet("5")


def session(transport: Transport = POLLING, now: float = T0) -> EngineSession:
    timing = Timing(INTERVAL, TIMEOUT, upgrade_timeout=UPGRADE_TIMEOUT, close_timeout=CLOSE_TIMEOUT)
    return EngineSession("sid1", transport, timing, now)


def upgraded(now: float = T0) -> EngineSession:
    """A session that started on polling and completed the upgrade at ``now``."""
    s = session(POLLING, now)
    s.begin_upgrade(now)
    assert s.receive_upgrade(PROBE_PING, now) == PROBE_PONG
    assert s.receive_upgrade(UPGRADE, now) is None
    return s


def assert_ended(s: EngineSession, reason: CloseReason) -> None:
    assert s.state is State.CLOSED
    assert s.closed
    assert s.close_reason is reason
    assert s.next_deadline() is None
    assert not s.writable
    assert not s.send(HELLO)


# ----------------------------------------------------------------------------------- handshake

HANDSHAKE_CASES: list[tuple[float, float, list[str], int, str]] = [
    (
        0.3,
        0.2,
        ["websocket"],
        1_000_000,
        '{"sid":"sid1","upgrades":["websocket"],"pingInterval":300,"pingTimeout":200,'
        '"maxPayload":1000000}',
    ),
    (
        25.0,
        20.0,
        ["websocket"],
        1_000_000,
        '{"sid":"sid1","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,'
        '"maxPayload":1000000}',
    ),
    (
        0.1,
        0.7,
        [],
        100,
        '{"sid":"sid1","upgrades":[],"pingInterval":100,"pingTimeout":700,"maxPayload":100}',
    ),
    (
        0.035,
        1.001,
        [],
        0,
        '{"sid":"sid1","upgrades":[],"pingInterval":35,"pingTimeout":1001,"maxPayload":0}',
    ),
]


@pytest.mark.parametrize(("interval", "timeout", "upgrades", "max_payload", "json"),
                         HANDSHAKE_CASES)
def test_handshake_json_is_exact(
    interval: float, timeout: float, upgrades: list[str], max_payload: int, json: str
) -> None:
    s = EngineSession("sid1", POLLING, Timing(interval, timeout), T0)
    packet = s.handshake(upgrades=upgrades, max_payload=max_payload)
    assert packet == Packet(PacketType.OPEN, json)
    assert encode_packet(packet) == "0" + json


def test_timing_defaults() -> None:
    # reference defaults: upgradeTimeout 10 s; closeTimeout 30 s
    assert Timing(25, 20) == Timing(25, 20, upgrade_timeout=10.0, close_timeout=30.0)


@pytest.mark.parametrize("transport", [POLLING, WEBSOCKET])
def test_a_new_session_is_open_and_quiet(transport: Transport) -> None:
    s = session(transport)
    assert s.state is State.OPEN
    assert not s.closed
    assert s.close_reason is None
    assert s.transport is transport
    assert not s.has_output()
    assert s.queued() == 0
    assert s.take_output() == []
    # a websocket always takes output; polling only while a GET is pending
    assert s.writable is (transport is WEBSOCKET)


# ----------------------------------------------------------------------------------- heartbeat


@pytest.mark.parametrize("transport", [POLLING, WEBSOCKET])
def test_first_ping_is_due_exactly_at_ping_interval(transport: Transport) -> None:
    s = session(transport)
    assert s.next_deadline() == T0 + INTERVAL
    s.on_timer(T0 + INTERVAL - EPS)  # a timer that fires early changes nothing
    assert not s.has_output()
    assert s.next_deadline() == T0 + INTERVAL
    s.on_timer(T0 + INTERVAL)
    assert s.queued() == 1
    if transport is POLLING:
        s.begin_poll()
    assert s.take_output() == [PING]
    # the pong is now due within ping_timeout
    assert s.next_deadline() == T0 + INTERVAL + TIMEOUT


@pytest.mark.parametrize("transport", [POLLING, WEBSOCKET])
def test_pong_resets_the_heartbeat(transport: Transport) -> None:
    s = session(transport)
    now = T0
    for _round in range(3):
        ping_at = now + INTERVAL
        assert s.next_deadline() == ping_at
        s.on_timer(ping_at)
        assert s.queued() == 1
        assert s.take_output() == [PING]
        now = ping_at + TIMEOUT - EPS  # answered just in time
        assert s.receive(PONG, now) == []
        assert s.state is State.OPEN
    assert s.next_deadline() == now + INTERVAL
    s.on_timer(now + INTERVAL - EPS)
    assert s.state is State.OPEN
    assert not s.has_output()


def test_a_silent_client_is_gone_exactly_at_interval_plus_timeout() -> None:
    # PROTOCOL.md: with 300/200 ms a silent client is gone at 500 ms, not earlier.
    s = session(WEBSOCKET)
    s.on_timer(T0 + INTERVAL)
    assert s.take_output() == [PING]
    deadline = T0 + INTERVAL + TIMEOUT
    assert s.next_deadline() == deadline
    s.on_timer(deadline - EPS)
    assert s.state is State.OPEN
    assert s.close_reason is None
    s.on_timer(deadline)
    assert_ended(s, CloseReason.PING_TIMEOUT)


def test_ping_timeout_over_polling_without_a_pending_get_ends_at_once() -> None:
    s = session(POLLING)
    s.on_timer(T0 + INTERVAL)
    s.begin_poll()
    assert s.take_output() == [PING]
    s.on_timer(T0 + INTERVAL + TIMEOUT)
    assert_ended(s, CloseReason.PING_TIMEOUT)


def test_ping_timeout_over_polling_answers_the_pending_get_with_close() -> None:
    s = session(POLLING)
    s.on_timer(T0 + INTERVAL)
    s.begin_poll()
    assert s.take_output() == [PING]
    s.begin_poll()
    s.send(HELLO)
    s.on_timer(T0 + INTERVAL + TIMEOUT)
    assert s.state is State.CLOSING
    assert s.close_reason is CloseReason.PING_TIMEOUT
    assert s.take_output() == [CLOSE]  # an error: queued output is dropped
    assert_ended(s, CloseReason.PING_TIMEOUT)


def test_a_late_timer_still_sends_one_ping_and_waits_a_full_timeout() -> None:
    s = session(WEBSOCKET)
    late = T0 + 10 * INTERVAL
    s.on_timer(late)
    assert s.take_output() == [PING]
    assert s.next_deadline() == late + TIMEOUT
    s.on_timer(late + TIMEOUT - EPS)
    assert s.state is State.OPEN


def test_an_unsolicited_pong_postpones_the_next_ping() -> None:
    # reference: a pong refreshes the ping interval timer, whenever it comes
    s = session(WEBSOCKET)
    s.receive(PONG, T0 + 0.1)
    assert s.next_deadline() == T0 + 0.1 + INTERVAL


# ------------------------------------------------------------------------------------- polling


def test_poll_takes_everything_queued_in_order() -> None:
    s = session(POLLING)
    assert s.send(HELLO)
    assert s.send(BLOB)
    assert s.queued() == 2
    assert s.has_output()
    assert not s.writable
    s.begin_poll()
    assert s.poll_pending
    assert s.writable
    assert s.take_output() == [HELLO, BLOB]
    assert not s.poll_pending
    assert not s.writable
    assert not s.has_output()
    assert s.queued() == 0


def test_a_pending_poll_waits_for_output() -> None:
    s = session(POLLING)
    s.begin_poll()
    assert not s.has_output()  # the I/O layer holds the GET
    s.send(WORLD)
    assert s.has_output()
    assert s.take_output() == [WORLD]
    s.begin_poll()  # the next GET is fine once the first was answered
    assert s.poll_pending


@pytest.mark.parametrize("queued", [[], [HELLO, WORLD]])
def test_a_second_pending_get_closes_the_session(queued: list[Packet]) -> None:
    # reference: the second GET gets 400, the first is answered with "1" alone
    s = session(POLLING)
    for packet in queued:
        s.send(packet)
    s.begin_poll()
    with pytest.raises(BadRequest):
        s.begin_poll()
    assert s.state is State.CLOSING
    assert s.close_reason is CloseReason.TRANSPORT_ERROR
    assert s.has_output()
    assert s.take_output() == [CLOSE]
    assert_ended(s, CloseReason.TRANSPORT_ERROR)
    with pytest.raises(BadRequest):
        s.begin_poll()


def test_abort_poll_closes_the_session() -> None:
    # reference: "poll connection closed prematurely" is a transport error
    s = session(POLLING)
    s.send(HELLO)
    s.begin_poll()
    s.abort_poll()
    assert not s.poll_pending
    assert_ended(s, CloseReason.TRANSPORT_ERROR)


def test_abort_poll_without_a_pending_get_does_nothing() -> None:
    s = session(POLLING)
    s.abort_poll()
    assert s.state is State.OPEN


def test_abort_poll_while_closing_finishes_the_close() -> None:
    s = session(POLLING)
    s.begin_poll()
    s.close(CloseReason.FORCED_CLOSE)
    assert s.state is State.CLOSING
    s.abort_poll()  # the GET that was to carry the "1" is gone
    assert_ended(s, CloseReason.FORCED_CLOSE)


def test_release_poll_keeps_the_session_and_its_output_for_the_next_get() -> None:
    # the worker that relayed the GET is gone: not the client's fault (engine/forwarding.py)
    s = session(POLLING)
    s.begin_poll()
    s.release_poll()
    assert not s.poll_pending
    assert s.state is State.OPEN
    s.send(HELLO)
    s.begin_poll()  # not an overlapping GET
    assert s.take_output() == [HELLO]


def test_release_poll_while_closing_keeps_the_1_for_the_next_get() -> None:
    s = session(POLLING)
    s.begin_poll()
    s.close(CloseReason.FORCED_CLOSE)
    s.release_poll()  # unlike abort_poll: the client may still come for its "1"
    assert s.state is State.CLOSING
    s.begin_poll()
    assert s.take_output() == [CLOSE]
    assert_ended(s, CloseReason.FORCED_CLOSE)


def test_shutdown_ends_the_poll_with_a_noop_so_that_clients_reconnect() -> None:
    # python-socketio's client reads a "1" as a server disconnect and never reconnects; a
    # "6" and then an unknown session (400) is a transport error to both official clients
    s = session(POLLING)
    s.send(HELLO)
    s.close(CloseReason.SERVER_SHUTTING_DOWN)
    s.begin_poll()
    assert s.take_output() == [HELLO]  # what was queued first, as for a "1"
    assert s.state is State.CLOSING
    s.begin_poll()
    assert s.take_output() == [NOOP]
    assert_ended(s, CloseReason.SERVER_SHUTTING_DOWN)


def test_posts_in_sequence_are_fine() -> None:
    s = session(POLLING)
    for _ in range(3):
        s.begin_post()
        assert s.post_pending
        s.end_post()
        assert not s.post_pending
    assert s.state is State.OPEN


def test_an_overlapping_post_closes_the_session() -> None:
    s = session(POLLING)
    s.begin_post()
    with pytest.raises(BadRequest):
        s.begin_post()
    assert_ended(s, CloseReason.TRANSPORT_ERROR)


def test_an_overlapping_post_answers_the_pending_get_with_close() -> None:
    s = session(POLLING)
    s.send(HELLO)
    s.begin_poll()
    s.begin_post()
    with pytest.raises(BadRequest):
        s.begin_post()
    assert s.state is State.CLOSING
    assert s.take_output() == [CLOSE]
    assert_ended(s, CloseReason.TRANSPORT_ERROR)


def test_receive_many_returns_the_messages() -> None:
    s = session(POLLING)
    packets = [HELLO, PONG, BLOB, NOOP, WORLD, message("")]
    assert s.receive_many(packets, T0) == ["hello", b"\x01\x02", "world", ""]
    assert s.state is State.OPEN


@pytest.mark.parametrize("packet", [PING, PROBE_PING])
def test_client_ping_is_a_transport_error(packet: Packet) -> None:
    # engine.io 6: "invalid heartbeat direction" closes the session
    s = session(POLLING)
    assert s.receive(packet, T0) == []
    assert_ended(s, CloseReason.TRANSPORT_ERROR)


@pytest.mark.parametrize("packet", [NOOP, UPGRADE, PROBE_PONG])
def test_other_client_packets_are_ignored(packet: Packet) -> None:
    s = session(POLLING)
    assert s.receive(packet, T0) == []
    assert s.state is State.OPEN
    assert not s.has_output()


def test_client_close_with_a_pending_get() -> None:
    # PROTOCOL.md: a client "1" sent by POST ends the session; a pending GET is answered "6"
    s = session(POLLING)
    s.send(WORLD)
    s.begin_poll()
    s.begin_post()
    assert s.receive_many([HELLO, CLOSE, BLOB], T0) == ["hello"]
    s.end_post()
    assert s.state is State.CLOSING
    assert s.close_reason is CloseReason.TRANSPORT_CLOSE
    assert not s.send(HELLO)
    assert s.take_output() == [NOOP]
    assert_ended(s, CloseReason.TRANSPORT_CLOSE)


def test_client_close_without_a_pending_get() -> None:
    s = session(POLLING)
    s.send(WORLD)
    assert s.receive_many([CLOSE, HELLO], T0) == []
    assert_ended(s, CloseReason.TRANSPORT_CLOSE)
    assert not s.has_output()
    assert s.receive(HELLO, T0) == []


@pytest.mark.parametrize("pending_at_close", [True, False])
def test_server_close_delivers_the_queue_then_close(pending_at_close: bool) -> None:
    s = session(POLLING)
    s.send(HELLO)
    if pending_at_close:
        s.begin_poll()
    s.close(CloseReason.FORCED_CLOSE)
    assert s.state is State.CLOSING
    assert s.close_reason is CloseReason.FORCED_CLOSE
    assert not s.send(WORLD)  # nothing new once closing
    assert s.receive(WORLD, T0) == []  # nor anything from the client
    if not pending_at_close:
        s.begin_poll()
    # the queue drains in a response of its own, "1" in the next (reference behaviour)
    assert s.take_output() == [HELLO]
    assert s.state is State.CLOSING
    assert s.has_output()
    s.begin_poll()
    assert s.take_output() == [CLOSE]
    assert_ended(s, CloseReason.FORCED_CLOSE)
    with pytest.raises(BadRequest):
        s.begin_poll()


def test_post_while_closing_is_refused() -> None:
    s = session(POLLING)
    s.close(CloseReason.FORCED_CLOSE)
    with pytest.raises(BadRequest):
        s.begin_post()


def test_close_is_idempotent_and_keeps_the_first_reason() -> None:
    s = session(POLLING)
    s.close(CloseReason.FORCED_CLOSE)
    s.close(CloseReason.PING_TIMEOUT, notify=False)
    s.protocol_error()
    assert s.state is State.CLOSING
    assert s.close_reason is CloseReason.FORCED_CLOSE
    s.begin_poll()
    assert s.take_output() == [CLOSE]
    s.close(CloseReason.SERVER_SHUTTING_DOWN)
    assert_ended(s, CloseReason.FORCED_CLOSE)


def test_close_timer_bounds_the_wait_for_a_get() -> None:
    s = session(POLLING)
    s.start_close_timer(T0)  # only a CLOSING session has one
    assert s.next_deadline() == T0 + INTERVAL
    s.close(CloseReason.FORCED_CLOSE)
    assert s.next_deadline() is None  # the heartbeat stops with the close
    s.start_close_timer(T0 + 1)
    assert s.next_deadline() == T0 + 1 + CLOSE_TIMEOUT
    s.start_close_timer(T0 + 2)  # a second call does not push the deadline back
    assert s.next_deadline() == T0 + 1 + CLOSE_TIMEOUT
    s.on_timer(T0 + 1 + CLOSE_TIMEOUT - EPS)
    assert s.state is State.CLOSING
    s.on_timer(T0 + 1 + CLOSE_TIMEOUT)
    assert_ended(s, CloseReason.FORCED_CLOSE)


def test_a_closing_session_answered_in_time_is_closed() -> None:
    s = session(POLLING)
    s.close(CloseReason.SERVER_SHUTTING_DOWN)
    s.start_close_timer(T0)
    s.begin_poll()
    assert s.take_output() == [NOOP]
    assert_ended(s, CloseReason.SERVER_SHUTTING_DOWN)
    s.on_timer(T0 + CLOSE_TIMEOUT)  # a stale timer after the end is harmless
    assert_ended(s, CloseReason.SERVER_SHUTTING_DOWN)


# ----------------------------------------------------------------------------------- websocket


def test_websocket_output_is_written_at_once() -> None:
    s = session(WEBSOCKET)
    s.send(HELLO)
    s.send(BLOB)
    assert s.writable
    assert s.take_output() == [HELLO, BLOB]
    assert s.take_output() == []


def test_websocket_server_close_keeps_the_queue_for_the_last_write() -> None:
    s = session(WEBSOCKET)
    s.send(HELLO)
    s.close(CloseReason.FORCED_CLOSE)
    assert s.state is State.CLOSED
    assert s.close_reason is CloseReason.FORCED_CLOSE
    assert s.has_output()
    assert s.take_output() == [HELLO]  # no "1": the websocket close frame says it
    assert_ended(s, CloseReason.FORCED_CLOSE)


def test_websocket_client_close_drops_the_queue() -> None:
    s = session(WEBSOCKET)
    s.send(WORLD)
    assert s.receive_many([HELLO, CLOSE, HELLO], T0) == ["hello"]
    assert_ended(s, CloseReason.TRANSPORT_CLOSE)
    assert not s.has_output()


def test_websocket_lost() -> None:
    s = session(WEBSOCKET)
    s.send(WORLD)
    s.transport_lost()
    assert_ended(s, CloseReason.TRANSPORT_CLOSE)
    assert not s.has_output()
    s.transport_lost()  # twice is harmless
    assert_ended(s, CloseReason.TRANSPORT_CLOSE)


def test_transport_lost_while_closing_finishes_the_close() -> None:
    s = session(POLLING)
    s.close(CloseReason.FORCED_CLOSE)
    s.transport_lost()
    assert_ended(s, CloseReason.FORCED_CLOSE)


@pytest.mark.parametrize(
    "make", [lambda: session(WEBSOCKET), upgraded], ids=["started on websocket", "upgraded"]
)
def test_polling_requests_on_a_websocket_session_are_refused(
    make: Callable[[], EngineSession],
) -> None:
    s = make()
    with pytest.raises(BadRequest):
        s.begin_poll()
    with pytest.raises(BadRequest):
        s.begin_post()
    assert s.state is State.OPEN  # a 400, not the end of the session
    assert s.close_reason is None


# ------------------------------------------------------------------------------------- upgrade


def test_upgrade_with_a_pending_poll() -> None:
    s = session(POLLING)
    s.begin_poll()
    s.begin_upgrade(T0)
    assert s.state is State.UPGRADING
    assert s.transport is POLLING
    assert not s.has_output()
    assert s.receive_upgrade(PROBE_PING, T0) == PROBE_PONG
    assert encode_packet(PROBE_PONG) == "3probe"
    # the pending poll ends with "6" so the client can pause polling
    assert s.has_output()
    assert s.take_output() == [NOOP]
    # ... and so does every poll until the upgrade completes
    s.begin_poll()
    assert s.take_output() == [NOOP]
    assert s.receive_upgrade(UPGRADE, T0) is None
    assert s.state is State.OPEN
    assert s.transport is WEBSOCKET
    assert not s.poll_pending
    assert s.writable
    # no stray "6" on the websocket after "5"
    assert not s.has_output()
    assert s.take_output() == []
    s.send(HELLO)
    assert s.take_output() == [HELLO]


def test_upgrade_without_a_pending_poll_ends_the_next_one() -> None:
    s = session(POLLING)
    s.begin_upgrade(T0)
    assert s.receive_upgrade(PROBE_PING, T0) == PROBE_PONG
    s.begin_poll()
    assert s.take_output() == [NOOP]
    assert s.receive_upgrade(UPGRADE, T0) is None
    assert s.transport is WEBSOCKET
    assert not s.has_output()


def test_upgrade_with_the_noop_still_due() -> None:
    # "5" before the client's next poll: the NOOP is not written on the websocket
    s = session(POLLING)
    s.begin_upgrade(T0)
    s.receive_upgrade(PROBE_PING, T0)
    assert s.has_output()
    s.receive_upgrade(UPGRADE, T0)
    assert not s.has_output()
    assert s.take_output() == []


def test_output_queued_during_the_upgrade_is_not_lost() -> None:
    s = session(POLLING)
    s.begin_upgrade(T0)
    s.send(HELLO)
    s.begin_poll()  # before the probe, polling works as usual
    assert s.take_output() == [HELLO]
    s.receive_upgrade(PROBE_PING, T0)
    s.begin_poll()
    s.send(WORLD)
    assert s.take_output() == [WORLD, NOOP]
    s.send(BLOB)
    s.receive_upgrade(UPGRADE, T0)
    assert s.take_output() == [BLOB]


def test_messages_keep_flowing_over_polling_during_the_upgrade() -> None:
    s = session(POLLING)
    s.begin_upgrade(T0)
    s.receive_upgrade(PROBE_PING, T0)
    s.begin_post()
    assert s.receive_many([HELLO, BLOB], T0) == ["hello", b"\x01\x02"]
    s.end_post()
    assert s.state is State.UPGRADING


def test_the_heartbeat_goes_on_during_the_upgrade() -> None:
    timing = Timing(INTERVAL, TIMEOUT, upgrade_timeout=10.0)
    s = EngineSession("sid1", POLLING, timing, T0)
    s.begin_upgrade(T0)
    assert s.next_deadline() == T0 + INTERVAL
    s.on_timer(T0 + INTERVAL)
    s.begin_poll()
    assert s.take_output() == [PING]
    s.receive_upgrade(PROBE_PING, T0 + INTERVAL)
    s.receive_upgrade(UPGRADE, T0 + INTERVAL)
    assert s.receive(PONG, T0 + INTERVAL + 0.1) == []
    assert s.next_deadline() == T0 + INTERVAL + 0.1 + INTERVAL


def test_upgrade_timeout_falls_back_to_polling() -> None:
    s = session(POLLING)
    s.begin_upgrade(T0)
    assert s.next_deadline() == T0 + UPGRADE_TIMEOUT  # before the first ping
    s.receive_upgrade(PROBE_PING, T0)
    s.on_timer(T0 + UPGRADE_TIMEOUT - EPS)
    assert s.state is State.UPGRADING
    s.on_timer(T0 + UPGRADE_TIMEOUT)
    assert s.state is State.OPEN
    assert s.transport is POLLING
    assert s.close_reason is None
    assert not s.has_output()  # polls no longer end with "6"
    s.begin_poll()
    assert not s.has_output()
    assert s.next_deadline() == T0 + INTERVAL
    with pytest.raises(EngineIOProtocolError):
        s.receive_upgrade(UPGRADE, T0 + UPGRADE_TIMEOUT)  # too late


def test_a_failed_upgrade_may_be_tried_again() -> None:
    s = session(POLLING)
    s.begin_upgrade(T0)
    s.receive_upgrade(PROBE_PING, T0)
    s.fail_upgrade()  # the upgrading websocket closed
    assert s.state is State.OPEN
    assert s.transport is POLLING
    assert not s.has_output()
    s.fail_upgrade()  # harmless when not upgrading
    s.begin_upgrade(T0 + 1)
    assert s.receive_upgrade(PROBE_PING, T0 + 1) == PROBE_PONG
    assert s.receive_upgrade(UPGRADE, T0 + 1) is None
    assert s.transport is WEBSOCKET


# (name, packets fed on the upgrading websocket; the last one is refused)
BAD_UPGRADES: list[tuple[str, list[Packet]]] = [
    ("5 before the probe", [UPGRADE]),
    ("message before the probe", [HELLO]),
    ("binary before the probe", [BLOB]),
    ("ping without probe", [PING]),
    ("ping with other data", [Packet(PacketType.PING, "probes")]),
    ("pong probe", [PROBE_PONG]),
    ("close", [CLOSE]),
    ("open", [Packet(PacketType.OPEN)]),
    ("noop", [NOOP]),
    ("two probes", [PROBE_PING, PROBE_PING]),
    ("message after the probe", [PROBE_PING, HELLO]),
    ("pong after the probe", [PROBE_PING, PONG]),
]


@pytest.mark.parametrize(("name", "packets"), BAD_UPGRADES)
def test_unexpected_packet_during_upgrade(name: str, packets: list[Packet]) -> None:
    s = session(POLLING)
    s.send(HELLO)
    s.begin_upgrade(T0)
    for packet in packets[:-1]:
        s.receive_upgrade(packet, T0)
    with pytest.raises(EngineIOProtocolError):
        s.receive_upgrade(packets[-1], T0)
    # the websocket is refused; the session goes on over polling
    assert s.state is State.OPEN
    assert s.transport is POLLING
    assert s.close_reason is None
    s.begin_poll()
    assert s.take_output() == [HELLO]  # no "6" left over from the probe
    assert s.next_deadline() == T0 + INTERVAL


def test_receive_upgrade_when_not_upgrading() -> None:
    s = session(POLLING)
    with pytest.raises(EngineIOProtocolError):
        s.receive_upgrade(PROBE_PING, T0)
    assert s.state is State.OPEN


def test_a_second_upgrade_is_refused() -> None:
    s = session(POLLING)
    s.begin_upgrade(T0)
    s.receive_upgrade(PROBE_PING, T0)
    with pytest.raises(BadRequest):
        s.begin_upgrade(T0)
    # the first upgrade is undisturbed
    assert s.state is State.UPGRADING
    assert s.receive_upgrade(UPGRADE, T0) is None
    assert s.transport is WEBSOCKET


def _closing() -> EngineSession:
    s = session(POLLING)
    s.close(CloseReason.FORCED_CLOSE)
    return s


def _closed() -> EngineSession:
    s = session(POLLING)
    s.close(CloseReason.FORCED_CLOSE, notify=False)
    return s


@pytest.mark.parametrize(
    "make",
    [lambda: session(WEBSOCKET), upgraded, _closing, _closed],
    ids=["websocket session", "already upgraded", "closing", "closed"],
)
def test_upgrade_is_refused(make: Callable[[], EngineSession]) -> None:
    s = make()
    state, transport = s.state, s.transport
    with pytest.raises(BadRequest):
        s.begin_upgrade(T0)
    assert (s.state, s.transport) == (state, transport)


def test_close_during_the_upgrade() -> None:
    s = session(POLLING)
    s.begin_upgrade(T0)
    s.receive_upgrade(PROBE_PING, T0)
    s.send(HELLO)
    s.close(CloseReason.SERVER_SHUTTING_DOWN)
    assert s.state is State.CLOSING
    assert s.next_deadline() is None  # no upgrade timer any more
    with pytest.raises(EngineIOProtocolError):
        s.receive_upgrade(UPGRADE, T0)
    s.begin_poll()
    assert s.take_output() == [HELLO]
    s.begin_poll()
    assert s.take_output() == [NOOP]  # the shutdown's "6" (not the upgrade's)
    assert_ended(s, CloseReason.SERVER_SHUTTING_DOWN)


def test_client_close_by_post_during_the_upgrade() -> None:
    s = session(POLLING)
    s.begin_poll()
    s.begin_upgrade(T0)
    s.receive(CLOSE, T0)
    assert s.state is State.CLOSING
    assert s.take_output() == [NOOP]
    assert_ended(s, CloseReason.TRANSPORT_CLOSE)


def test_upgraded_session_closes_like_a_websocket_one() -> None:
    s = upgraded()
    s.send(HELLO)
    s.close(CloseReason.FORCED_CLOSE)
    assert s.take_output() == [HELLO]
    assert_ended(s, CloseReason.FORCED_CLOSE)


# ---------------------------------------------------------------------------- every close path


def _double_get(s: EngineSession) -> None:
    s.begin_poll()
    with pytest.raises(BadRequest):
        s.begin_poll()


def _double_post(s: EngineSession) -> None:
    s.begin_post()
    with pytest.raises(BadRequest):
        s.begin_post()


def _dropped_get(s: EngineSession) -> None:
    s.begin_poll()
    s.abort_poll()


def _silent_client(s: EngineSession) -> None:
    s.on_timer(T0 + INTERVAL)
    s.on_timer(T0 + INTERVAL + TIMEOUT)


# (name, transport, what happens, the reason the session ends with, whether a polling session
# then waits for a GET to tell the client). Only the server's own close waits for the next GET;
# every other end is immediate unless a GET is already pending to carry the "1" / "6"
# (reference: an error closes the socket at once and only a writable poll gets the "1").
CLOSE_PATHS: list[tuple[str, Transport, Callable[[EngineSession], object], CloseReason, bool]] = [
    ("client 1 over polling", POLLING, lambda s: s.receive(CLOSE, T0),
     CloseReason.TRANSPORT_CLOSE, False),
    ("client 1 over websocket", WEBSOCKET, lambda s: s.receive(CLOSE, T0),
     CloseReason.TRANSPORT_CLOSE, False),
    ("websocket lost", WEBSOCKET, lambda s: s.transport_lost(), CloseReason.TRANSPORT_CLOSE, False),
    ("second pending GET", POLLING, _double_get, CloseReason.TRANSPORT_ERROR, True),
    ("overlapping POST", POLLING, _double_post, CloseReason.TRANSPORT_ERROR, False),
    ("GET dropped", POLLING, _dropped_get, CloseReason.TRANSPORT_ERROR, False),
    ("undecodable polling body", POLLING, lambda s: s.protocol_error(),
     CloseReason.PARSE_ERROR, False),
    ("undecodable frame", WEBSOCKET, lambda s: s.protocol_error(), CloseReason.PARSE_ERROR, False),
    ("client sends OPEN", POLLING, lambda s: s.receive(decode_packet("0"), T0),
     CloseReason.PARSE_ERROR, False),
    ("no pong over polling", POLLING, _silent_client, CloseReason.PING_TIMEOUT, False),
    ("no pong over websocket", WEBSOCKET, _silent_client, CloseReason.PING_TIMEOUT, False),
    ("server close", POLLING, lambda s: s.close(CloseReason.FORCED_CLOSE),
     CloseReason.FORCED_CLOSE, True),
    ("server close, websocket", WEBSOCKET, lambda s: s.close(CloseReason.FORCED_CLOSE),
     CloseReason.FORCED_CLOSE, False),
    ("shutdown", POLLING, lambda s: s.close(CloseReason.SERVER_SHUTTING_DOWN),
     CloseReason.SERVER_SHUTTING_DOWN, True),
]


def test_close_paths_cover_every_reason() -> None:
    assert {path[3] for path in CLOSE_PATHS} == set(CloseReason)


# each path as it is, and over polling again with a GET already pending when it happens
CLOSE_CASES = [
    pytest.param(transport, action, reason, waits, get_pending, id=f"{name}{suffix}")
    for name, transport, action, reason, waits in CLOSE_PATHS
    for get_pending, suffix in [(False, ""), (True, ", GET pending")]
    if not get_pending or (transport is POLLING and action not in (_double_get, _dropped_get))
]


@pytest.mark.parametrize(("transport", "action", "reason", "waits", "get_pending"), CLOSE_CASES)
def test_close_path(
    transport: Transport,
    action: Callable[[EngineSession], object],
    reason: CloseReason,
    waits: bool,
    get_pending: bool,
) -> None:
    s = session(transport)
    s.send(HELLO)
    if get_pending:
        s.begin_poll()
    action(s)
    assert s.close_reason is reason
    if get_pending or waits:
        assert s.state is State.CLOSING
        if not s.poll_pending:
            s.begin_poll()
        last = s.take_output()
        if reason in (CloseReason.FORCED_CLOSE, CloseReason.SERVER_SHUTTING_DOWN):
            # the server's close delivers what it queued, then "1" in the next response
            # ("6" when it shuts down: the session is unknown to the GET after it)
            assert last == [HELLO]
            s.begin_poll()
            assert s.take_output() == [
                NOOP if reason is CloseReason.SERVER_SHUTTING_DOWN else CLOSE]
        elif reason is CloseReason.TRANSPORT_CLOSE:
            assert last == [NOOP]  # PROTOCOL.md: the client's own "1" ends the GET with "6"
        else:
            assert last == [CLOSE]
    elif transport is WEBSOCKET and reason is CloseReason.FORCED_CLOSE:
        assert s.take_output() == [HELLO]  # written before the close frame
    else:
        assert not s.has_output()
    assert_ended(s, reason)
    s.on_timer(T0 + 100)
    assert_ended(s, reason)


# ---------------------------------------------------------------------------------- invariants


def test_no_transition_out_of_closed() -> None:
    s = _closed()
    for state in State:
        with pytest.raises(AssertionError):
            s._set_state(state)
    assert s.state is State.CLOSED


@pytest.mark.parametrize("transport", [POLLING, WEBSOCKET])
def test_send_many_queues_in_order_until_the_session_closes(transport: Transport) -> None:
    s = session(transport)
    s.send(HELLO)
    assert s.send_many([WORLD, HELLO])
    if transport is POLLING:
        s.begin_poll()
    assert s.take_output() == [HELLO, WORLD, HELLO]
    s.close(CloseReason.FORCED_CLOSE)
    assert not s.send_many([WORLD])  # closing or closed: refused, nothing queued
    assert WORLD not in s.take_output()


def test_a_poll_carries_at_most_max_packets_per_poll() -> None:
    # python-socketio's client drops its connection on a payload of more than 16 packets
    s = EngineSession("sid", POLLING, Timing(INTERVAL, TIMEOUT, max_packets_per_poll=3), T0)
    for _ in range(5):
        s.send(HELLO)
    s.begin_poll()
    assert s.take_output() == [HELLO] * 3
    assert s.has_output()  # the rest: at once for the next GET
    s.begin_poll()
    assert s.take_output() == [HELLO] * 2
