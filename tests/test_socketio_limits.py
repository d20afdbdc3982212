"""What a client can make the Socket.IO layer hold, and the bounds on it (sio_core.Config).

In-process: a real :class:`~sio_core.Server` over fake Engine.IO sessions
(tests/fake_engine.py): the test feeds the client's messages in and reads the server's out.
The running-server side of the same limits (memory under attack) is in
``tests/test_abuse.py``.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from sio_core import ConnectionRefusedError, Server, Socket
from sio_core.protocol.session import CloseReason
from sio_core.stores.memory import MemoryStore
from tests.fake_engine import FakeEngineSocket, connect
from tests.support import scaled


def connect_error(nsp: str, message: str) -> str:
    prefix = "" if nsp == "/" else nsp + ","
    return "4" + prefix + json.dumps({"message": message}, separators=(",", ":"))


async def settle() -> None:
    """Let connects with async middlewares (tasks) finish."""
    for _ in range(5):
        await asyncio.sleep(0)


def dynamic_server(**options: Any) -> Server:
    io = Server(**options)
    io.of(re.compile(r"^/room-\d+$"))
    io.of(lambda name, auth: name.startswith("/user-"))
    return io


# --- dynamic namespaces: removed once empty, and bounded -----------------------------------------


@pytest.mark.parametrize("prefix", ["/room-", "/user-"])  # a regex; a matcher callable
async def test_empty_child_namespaces_are_removed(prefix: str) -> None:
    io = dynamic_server()
    static = set(io.namespaces)
    sessions = []
    for n in range(200):
        session = FakeEngineSocket(io)
        session.receive(f"0{prefix}{n},")
        sessions.append(session)
    await settle()
    assert len(io.namespaces) == len(static) + 200
    assert io.stats() == {"namespaces": len(static) + 200, "dynamic_namespaces": 200}
    for n, session in enumerate(sessions):
        if n % 2:
            session.receive(f"1{prefix}{n},")  # leaves the namespace
        else:
            session.receive_close()  # closes the connection
    assert set(io.namespaces) == static
    assert io.stats() == {"namespaces": len(static), "dynamic_namespaces": 0}
    # a name that comes back gets a fresh child that works
    again = FakeEngineSocket(io)
    again.receive(f"0{prefix}7,")
    await settle()
    assert again.take()[0].startswith(f"0{prefix}7,")
    assert f"{prefix}7" in io.namespaces


async def test_a_child_stays_while_it_has_a_socket() -> None:
    io = dynamic_server()
    first, second = FakeEngineSocket(io), FakeEngineSocket(io)
    first.receive("0/room-1,")
    second.receive("0/room-1,")
    await settle()
    first.receive("1/room-1,")
    assert "/room-1" in io.namespaces
    second.receive_close()
    assert "/room-1" not in io.namespaces


async def test_a_child_refused_by_a_middleware_is_removed() -> None:
    io = Server()
    parent = io.of(re.compile(r"^/room-\d+$"))

    async def refuse(socket: Socket) -> None:
        raise ConnectionRefusedError("no")

    parent.use(refuse)
    session = FakeEngineSocket(io)
    for n in range(50):
        session.receive(f"0/room-{n},")
    await settle()
    assert session.take() == [connect_error(f"/room-{n}", "no") for n in range(50)]
    assert set(io.namespaces) == {"/"}


async def test_a_child_is_not_removed_under_a_connect_in_its_middlewares() -> None:
    io = Server()
    parent = io.of(re.compile(r"^/room-\d+$"))
    gate = asyncio.Event()

    async def wait_for_gate(socket: Socket) -> None:
        if socket.handshake.auth.get("slow"):
            await gate.wait()
        elif socket.handshake.auth.get("refuse"):
            raise ConnectionRefusedError("no")

    parent.use(wait_for_gate)
    slow, refused = FakeEngineSocket(io), FakeEngineSocket(io)
    slow.receive('0/room-1,{"slow":true}')
    await settle()
    refused.receive('0/room-1,{"refuse":true}')
    await settle()
    assert refused.take() == [connect_error("/room-1", "no")]
    # the slow CONNECT still holds the child: the namespace it joins is the server's
    child = io.namespaces["/room-1"]
    gate.set()
    await settle()
    assert slow.take()[0].startswith("0/room-1,")
    assert io.namespaces["/room-1"] is child
    assert len(child.sockets) == 1


async def test_the_cluster_forgets_a_removed_child() -> None:
    """The cluster's link hears of every namespace (RedisStore's follows the JavaScript
    servers' requests per namespace) and of an emptied dynamic child's removal."""
    io = dynamic_server()
    io.attach_store(MemoryStore())
    assert io.cluster is not None
    link = io.cluster.link
    followed: set[str] = {"/"}
    added, removed = link.namespace_added, link.namespace_removed

    def on_added(name: str) -> None:
        followed.add(name)
        added(name)

    def on_removed(name: str) -> None:
        followed.discard(name)
        removed(name)

    link.namespace_added = on_added  # type: ignore[method-assign]
    link.namespace_removed = on_removed  # type: ignore[method-assign]
    session = FakeEngineSocket(io)
    session.receive("0/room-1,", "0/user-1,")
    await settle()
    assert followed == {"/", "/room-1", "/user-1"}
    session.receive("1/room-1,")
    assert followed == {"/", "/user-1"}


async def test_cleanup_can_be_turned_off_as_in_the_reference() -> None:
    io = dynamic_server(cleanup_empty_child_namespaces=False)
    session = FakeEngineSocket(io)
    session.receive("0/room-1,")
    await settle()
    session.receive_close()
    assert "/room-1" in io.namespaces


async def test_dynamic_namespaces_are_bounded() -> None:
    io = dynamic_server(max_dynamic_namespaces=10)
    sessions = [FakeEngineSocket(io) for _ in range(12)]
    for n, session in enumerate(sessions):
        session.receive(f"0/room-{n},")
    await settle()
    answers = [session.take() for session in sessions]
    assert all(answer[0].startswith(f"0/room-{n},") for n, answer in enumerate(answers[:10]))
    # past the bound: what the reference answers for a namespace that does not exist
    assert answers[10:] == [[connect_error(f"/room-{n}", "Invalid namespace")]
                            for n in (10, 11)]
    assert io.stats()["dynamic_namespaces"] == 10
    # an existing child still takes sockets; once one is gone, a new name is accepted
    sessions[10].send("0/room-3,")
    sessions[0].receive_close()
    sessions[11].send("0/room-11,")
    await settle()
    assert sessions[10].take()[0].startswith("0/room-3,")
    assert sessions[11].take()[0].startswith("0/room-11,")


# --- namespaces per client -----------------------------------------------------------------------


async def test_namespaces_per_client_are_bounded() -> None:
    io = dynamic_server(max_namespaces_per_client=5)
    session = FakeEngineSocket(io)
    session.receive("0", *[f"0/room-{n}," for n in range(10)])
    await settle()
    answers = session.take()
    # the refusals are immediate; the dynamic CONNECTs are answered after a match (a task)
    assert [a[:9] for a in answers if isinstance(a, str) and a.startswith("0")] == [
        '0{"sid":"', *[f"0/room-{n}," for n in range(4)]]
    assert [a for a in answers if isinstance(a, str) and a.startswith("4")] == [
        connect_error(f"/room-{n}", "Too many namespaces") for n in range(4, 10)]
    assert not session.closed
    assert io.stats()["dynamic_namespaces"] == 4
    # leaving one makes room for another
    session.receive("1/room-0,", "0/room-9,")
    await settle()
    assert session.take()[0].startswith("0/room-9,")


async def test_connects_in_middlewares_count_towards_the_bound() -> None:
    io = Server(max_namespaces_per_client=3)
    parent = io.of(re.compile(r"^/room-\d+$"))
    gate = asyncio.Event()

    async def wait(socket: Socket) -> None:
        await gate.wait()

    parent.use(wait)
    session = FakeEngineSocket(io)
    session.receive(*[f"0/room-{n}," for n in range(5)])
    await settle()
    assert session.take() == [connect_error(f"/room-{n}", "Too many namespaces")
                                  for n in (3, 4)]
    gate.set()
    await settle()
    assert len(session.take()) == 3


# --- acks the client owes ------------------------------------------------------------------------


async def test_pending_acks_are_bounded_oldest_given_up() -> None:
    io = Server(max_pending_acks=10)
    session, socket = await connect(io)
    plain: list[Any] = []
    for n in range(15):
        socket.emit("ask", n, callback=plain.append)
    assert len(socket._acks) == 10  # the five oldest were dropped
    assert len(session.take()) == 15  # every event went out
    # the client answers the newest: its callback runs; an answer to a dropped id is ignored
    session.receive("314[14]", "30[0]")
    assert plain == [14]
    assert len(socket._acks) == 9


async def test_a_given_up_ack_fails_its_waiter() -> None:
    io = Server(max_pending_acks=3)
    _, socket = await connect(io)
    waiting = asyncio.ensure_future(socket.emit_with_ack("ask"))
    await settle()
    timed: list[Any] = []
    socket.timeout(60).emit("ask", callback=lambda *args: timed.append(args))
    socket.emit("ask", callback=print)
    assert not waiting.done() and not timed
    socket.emit("ask", callback=print)  # the 4th: the oldest (emit_with_ack) is given up
    with pytest.raises(TimeoutError):
        await waiting
    socket.emit("ask", callback=print)  # the 5th: the timed callback is told
    assert len(timed) == 1 and isinstance(timed[0][0], TimeoutError)
    assert len(socket._acks) == 3


async def test_a_timed_out_ack_is_forgotten() -> None:
    """As the reference's registerAckCallback: once timed out, the socket stops waiting."""
    io = Server()
    _, socket = await connect(io)
    done = asyncio.Event()
    results: list[Any] = []

    def callback(*args: Any) -> None:
        results.append(args)
        done.set()

    socket.timeout(0.01).emit("ask", callback=callback)
    assert len(socket._acks) == 1
    await asyncio.wait_for(done.wait(), scaled(5))
    assert isinstance(results[0][0], TimeoutError)
    assert socket._acks == {}


async def test_broadcast_acks_a_client_never_answers_are_bounded() -> None:
    io = Server(max_pending_acks=20)
    _, socket = await connect(io)
    for _ in range(50):
        io.timeout(60).emit("ask", callback=lambda err, responses: None)
    assert len(socket._acks) == 20


# --- the decoder's bounds reach the connection --------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        # one attachment named twice (the reference parser would accept it)
        '51-["e",{"_placeholder":true,"num":0},{"_placeholder":true,"num":0}]',
        # nested deeper than max_json_depth
        '2["e",' + "[" * 100 + "]" * 100 + "]",
    ],
)
async def test_a_refused_packet_closes_the_connection(message: str) -> None:
    session = FakeEngineSocket(Server())
    session.receive("0")
    await settle()
    session.receive(message)
    # as for any undecodable packet (the sockets hear of it once the client has the close)
    assert session.closed
    assert session.close_reason is CloseReason.FORCED_CLOSE


async def test_nothing_after_a_refused_packet_is_handled() -> None:
    """Packets behind a refused one in the same polling payload are dropped: the session is
    closing (the reference's engine drops packets once its socket is not open)."""
    io = Server()
    events: list[Any] = []

    @io.on("connection")
    def connection(socket: Socket) -> None:
        socket.on("after", events.append)

    session = FakeEngineSocket(io)
    session.receive("0")
    await settle()
    session.receive('2["after",1]', "2{}", '2["after",2]', "0/other,")
    await settle()
    assert events == [1]
    assert session.closed


@pytest.mark.parametrize(
    "option",
    [{"max_json_depth": 0}, {"max_namespaces_per_client": 0}, {"max_pending_acks": -1},
     {"max_dynamic_namespaces": -1}],
)
def test_bounds_are_checked(option: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=next(iter(option))):
        Server(**option)
