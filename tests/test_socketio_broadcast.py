"""sio_core.socketio.broadcast: broadcast operators, and the gathering of a broadcast's acks.

The operators as values (each chained call a new one), the packets they build, and
:class:`AckGather`'s rule: done once every counted recipient answered and every server's count
came, else the timeout with what came. Deliveries over the fake engine (tests/fake_engine.py);
what the operators deliver in every combination is in tests/test_socketio_server.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import pytest

from sio_core import AckTimeoutError, BroadcastOperator, Server
from sio_core.exceptions import ReservedEventError
from sio_core.protocol import socketio as sio
from sio_core.socketio.adapter import BroadcastOptions
from sio_core.socketio.broadcast import AckGather, event_packet, rooms_of
from sio_core.socketio.handlers import DONE
from tests.fake_engine import connect
from tests.support import scaled


@pytest.mark.parametrize(
    ("rooms", "expected"),
    [
        ((), set()),
        (("a",), {"a"}),
        (("a", "b", "a"), {"a", "b"}),
        ((["a", "b"], "c"), {"a", "b", "c"}),
        (({"a"}, ("b",), frozenset({"c"})), {"a", "b", "c"}),
        (("",), {""}),
    ],
)
def test_rooms_of(rooms: tuple[str | Iterable[str], ...], expected: set[str]) -> None:
    assert rooms_of(rooms) == frozenset(expected)


def test_event_packet() -> None:
    assert event_packet("/n", "x", (1, "a"), 7) == sio.Packet(sio.PacketType.EVENT, "/n",
                                                              ["x", 1, "a"], 7)
    assert event_packet("/", "x", ()) == sio.Packet(sio.PacketType.EVENT, "/", ["x"], None)
    with pytest.raises(ReservedEventError, match="'disconnect' is a reserved event name"):
        event_packet("/", "disconnect", ())
    with pytest.raises(TypeError):
        event_packet("/", b"x", ())  # type: ignore[arg-type]


def test_operators_are_values() -> None:
    io = Server()
    base = io.to("a")
    assert isinstance(base, BroadcastOperator)
    chained = base.to("b", ["c"]).except_("x").except_(["y"]).volatile.local.timeout(3)
    assert base.options == BroadcastOptions(rooms=frozenset({"a"}))
    assert chained.options == BroadcastOptions(
        rooms=frozenset("abc"), except_rooms=frozenset("xy"), volatile=True, local=True,
        timeout=3)
    assert chained.in_("d").options.rooms == frozenset("abcd")
    assert chained.options.compress and not chained.compress(False).options.compress
    assert chained.compress(False).options == replace(chained.options, compress=False)
    assert io.volatile.options.volatile and io.local.options.local
    assert io.except_("z").options.except_rooms == {"z"} and io.timeout(1).options.timeout == 1


async def test_emits_are_done_at_once() -> None:
    io = Server()
    assert io.emit("x") is DONE
    assert io.to("r").send("y", callback=lambda err, responses: None) is DONE


async def test_a_broadcast_with_acks_to_nobody_is_answered_at_once() -> None:
    io = Server(ack_timeout=scaled(5))
    assert await io.emit_with_ack("x") == []
    assert await io.to("nobody").timeout(scaled(5)).emit_with_ack("x") == []


async def test_a_broadcast_with_acks_takes_a_fresh_ack_id_each_time() -> None:
    io = Server()
    conn, _ = await connect(io)
    for _ in range(2):
        io.timeout(60).emit("q", callback=print)
    conn.receive("31[]")
    assert conn.take() == ['21["q"]', '22["q"]']


async def test_the_callback_gets_the_responses() -> None:
    io = Server()
    conn, _ = await connect(io)
    result: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    io.timeout(scaled(5)).send("q", callback=lambda *args: result.set_result(args))
    conn.receive('31[{"a":1}]')
    assert await result == (None, [{"a": 1}])


# --- AckGather ------------------------------------------------------------------------------------


async def test_a_gather_is_done_once_every_count_and_every_ack_came() -> None:
    gather = AckGather(scaled(5))
    gather.add_expected(2)  # this worker's clients
    gather.add_response([1])
    assert not gather.future.done()
    gather.add_response(["a", "b"])
    assert await gather.future == [1, ("a", "b")]
    gather.add_response([])  # late: changes nothing
    assert gather.future.result() == [1, ("a", "b")]


async def test_a_gather_waits_for_the_other_servers_counts() -> None:
    gather = AckGather(scaled(5))
    gather.counting = True  # the other servers are being counted
    gather.add_expected(0)
    assert not gather.future.done()
    # a server's count and acks may come before the servers are counted
    gather.add_expected(1)
    gather.add_response([])
    assert not gather.future.done()
    gather.add_servers(2)
    assert not gather.future.done()  # one more server's count to come
    gather.add_expected(0)
    assert await gather.future == [None]


async def test_a_gather_with_no_recipients_anywhere() -> None:
    gather = AckGather(scaled(5))
    gather.counting = True
    gather.add_expected(0)
    gather.add_servers(0)
    assert await gather.future == []


async def test_a_gather_times_out_with_what_came() -> None:
    gather = AckGather(0.001)
    gather.add_expected(3)
    gather.add_response(["only"])
    with pytest.raises(AckTimeoutError) as raised:
        await gather.future
    assert raised.value.responses == ["only"]
    assert isinstance(raised.value, TimeoutError)
