"""Broadcast operators: ``io.to(room).except_(other).volatile.timeout(5).emit(...)``.

How this works: a :class:`BroadcastOperator` is an immutable description of the
recipients (a namespace, rooms, rooms excepted, flags); each chained call returns a new
one. Terminal calls build the Socket.IO packet and hand it, with
:class:`~sio_core.socketio.adapter.BroadcastOptions`, to the namespace, which delivers it
on this worker and (with a cluster store) publishes it to the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..exceptions import AckTimeoutError, ReservedEventError
from ..protocol import socketio as sio
from .adapter import BroadcastOptions
from .handlers import DONE

if TYPE_CHECKING:
    from .namespace import Namespace
    from .socket import FetchedSocket


def rooms_of(rooms: tuple[str | Iterable[str], ...]) -> frozenset[str]:
    out: set[str] = set()
    for room in rooms:
        if isinstance(room, str):
            out.add(room)
        else:
            out.update(room)
    return frozenset(out)


def event_packet(namespace: str, event: str, args: tuple[Any, ...],
                 ack_id: int | None = None) -> sio.Packet:
    if not isinstance(event, str):
        raise TypeError("an event name is a str")
    if event in sio.RESERVED_EVENTS:
        raise ReservedEventError(f"{event!r} is a reserved event name")
    return sio.Packet(sio.PacketType.EVENT, namespace, [event, *args], ack_id)


class AckGather:
    """Collects the acks of a broadcast: done when every recipient answered, or at the
    timeout. Recipients are counted in several steps (one per server), and the servers may
    be counted while their counts come in (as the JavaScript server's broadcast does)."""

    def __init__(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        self.future: asyncio.Future[list[Any]] = loop.create_future()
        self.responses: list[Any] = []
        self.expected = 0
        #: counts still to come: this worker's, to begin with, plus those of the servers
        #: added by add_servers (below zero if theirs come before they are counted)
        self.pending_counts = 1
        #: the other servers are being counted: not done before add_servers
        self.counting = False
        self._timer = loop.call_later(timeout, self._timeout)

    def add_servers(self, count: int) -> None:
        """The other servers were counted: each will send a count of its clients."""
        self.pending_counts += count
        self.counting = False
        self._check()

    def add_expected(self, count: int, *, final: bool = True) -> None:
        self.expected += count
        if final:
            self.pending_counts -= 1
        self._check()

    def add_response(self, args: list[Any]) -> None:
        if self.future.done():
            return  # late: the list the caller got is final
        self.responses.append(args[0] if len(args) == 1 else (tuple(args) if args else None))
        self._check()

    def _check(self) -> None:
        if (not self.counting and self.pending_counts <= 0
                and len(self.responses) >= self.expected and not self.future.done()):
            self._timer.cancel()
            self.future.set_result(self.responses)

    def _timeout(self) -> None:
        if not self.future.done():
            self.future.set_exception(AckTimeoutError(list(self.responses)))


class BroadcastOperator:
    """The recipients of an event: a namespace, rooms, rooms excepted and flags. Immutable:
    each chained call returns a new one, and the last one acts.

    Got from the operators of a server, namespace or socket (``io.to("room")``,
    ``socket.broadcast``), not built by applications.

    Args:
        namespace: the namespace it sends in.
        opts: the recipients and flags so far.

    Example::

        await io.to("room1").to("room2").except_("muted").emit("news", item)
        await io.of("/admin").volatile.emit("tick", now)
        answers = await io.timeout(5).emit_with_ack("survey", question)
        sockets = await io.in_("room1").fetch_sockets()
        await io.in_("room1").sockets_join("room2")
        await io.in_("room1").disconnect_sockets()
    """

    __slots__ = ("_namespace", "_opts")

    def __init__(self, namespace: Namespace, opts: BroadcastOptions | None = None) -> None:
        self._namespace = namespace
        self._opts = opts or BroadcastOptions()

    def _with(self, **changes: Any) -> BroadcastOperator:
        return BroadcastOperator(self._namespace, replace(self._opts, **changes))

    # -- chaining ---------------------------------------------------------------------------

    def to(self, *rooms: str | Iterable[str]) -> BroadcastOperator:
        return self._with(rooms=self._opts.rooms | rooms_of(rooms))

    def in_(self, *rooms: str | Iterable[str]) -> BroadcastOperator:
        """The same as :meth:`to` (a method of its own: mypyc compiles no method alias)."""
        return self.to(*rooms)

    def except_(self, *rooms: str | Iterable[str]) -> BroadcastOperator:
        return self._with(except_rooms=self._opts.except_rooms | rooms_of(rooms))

    @property
    def volatile(self) -> BroadcastOperator:
        return self._with(volatile=True)

    @property
    def local(self) -> BroadcastOperator:
        """Only the clients of this worker."""
        return self._with(local=True)

    def timeout(self, seconds: float) -> BroadcastOperator:
        return self._with(timeout=seconds)

    def compress(self, value: bool = True) -> BroadcastOperator:
        """Whether the event may be compressed (``compress(False)``: never), as the
        reference's: permessage-deflate (``per_message_deflate``) and the gzip of polling
        answers (``http_compression``)."""
        return self._with(compress=value)

    @property
    def options(self) -> BroadcastOptions:
        return self._opts

    # -- emitting ---------------------------------------------------------------------------

    def emit(self, event: str, *args: Any,
             callback: Callable[..., Any] | None = None) -> Awaitable[None]:
        """Send an event to every matching client. With ``callback`` the clients' acks are
        gathered: ``callback(err, responses)`` once all answered (err None) or at the
        timeout (err an AckTimeoutError, responses the ones that came)."""
        if callback is None:
            packet = event_packet(self._namespace.name, event, args)
            return self._namespace.broadcast(packet, self._opts)
        future = self._emit_with_ack(event, args)

        def done(f: asyncio.Future[list[Any]]) -> None:
            exc = f.exception()
            if exc is None:
                callback(None, f.result())
            else:
                callback(exc, getattr(exc, "responses", []))

        future.add_done_callback(done)
        return DONE

    def send(self, *args: Any, callback: Callable[..., Any] | None = None) -> Awaitable[None]:
        return self.emit("message", *args, callback=callback)

    async def emit_with_ack(self, event: str, *args: Any) -> list[Any]:
        """Emit and wait for every recipient's ack (the timeout is ``.timeout(s)``, else
        ``config.ack_timeout``). Raises AckTimeoutError (with ``.responses``) on timeout."""
        return await self._emit_with_ack(event, args)

    def _emit_with_ack(self, event: str, args: tuple[Any, ...]) -> asyncio.Future[list[Any]]:
        namespace = self._namespace
        timeout = self._opts.timeout
        if timeout is None:
            timeout = namespace.server.config.ack_timeout
        packet = event_packet(namespace.name, event, args, namespace.next_ack_id())
        gather = AckGather(timeout)
        namespace.broadcast_with_ack(packet, self._opts, gather)
        return gather.future

    # -- acting on the matching sockets ----------------------------------------------------

    async def fetch_sockets(self) -> list[FetchedSocket]:
        return await self._namespace.do_fetch_sockets(self._opts)

    def sockets_join(self, *rooms: str | Iterable[str]) -> Awaitable[None]:
        return self._namespace.do_sockets_join(self._opts, rooms_of(rooms))

    def sockets_leave(self, *rooms: str | Iterable[str]) -> Awaitable[None]:
        return self._namespace.do_sockets_leave(self._opts, rooms_of(rooms))

    def disconnect_sockets(self, close: bool = False) -> Awaitable[None]:
        return self._namespace.do_disconnect_sockets(self._opts, close)
