"""Long-polling: an Engine.IO session carried by HTTP requests (engine.io's
``transports/polling.ts``).

How this works: a GET takes what the session has for the client, as one payload: at once
when there is some, or else it waits (it is *pending*) until there is (a message, the next
ping, the session's close). A POST carries a payload of the client's packets, which are
fed to the session in order. At most one GET may be pending and one POST in progress per
session: an overlapping one is answered 400 and closes the session, the pending GET
answered with ``1`` (reference behaviour); the session's core enforces this
(:meth:`~sio_core.protocol.session.EngineSession.begin_poll`, ``begin_post``), and this
module turns it into HTTP answers. A pending GET whose connection goes away closes the
session ("poll connection closed prematurely", as the reference).

The transport itself (:class:`Polling`) is only the pending GET: ``send_packets``
answers it. The same functions serve a GET or POST that another worker forwarded to this
one, the session's owner (forwarding.py): only the form of the answer differs.

A GET may be *held*: taken in (pending, as any), but given nothing until a check is done.
The owner holds a GET that came another way than the previous answer went out, while that
answer's relay is asked whether it is still there (forwarding.py, ``vouching``): if it
died with the answer, the client may be retrying the same GET, and the packets it carried
are lost. Then the session is closed and the held GET answered as the session's next
request would be (400, "Session ID unknown"), so that the client reconnects (and with
connection state recovery gets what it missed, once): python-socketio's client does on a
failed GET, not on a ``1``. Else the GET takes what is queued, as it would have at once.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from ..config import Config
from ..exceptions import (
    BadRequest,
    EngineIOProtocolError,
    HTTPError,
    PayloadTooLarge,
    UnknownSession,
)
from ..http.compression import HTTPCompression
from ..http.messages import Deferred, Response, error_response
from ..protocol import engineio
from ..protocol.engineio import Packet
from ..protocol.session import CloseReason
from .socket import EngineSocket
from .transport import CloseCallback, MessageCallback

#: the Content-Type of a payload (the reference's, for a text payload of any packets)
PLAIN = "text/plain; charset=UTF-8"

T = TypeVar("T")


def _no_answer(_: object) -> Any:
    return None


def _no_abort() -> None:
    pass


class Polling:
    """The polling transport of one session (a :class:`~sio_core.engine.transport.Transport`):
    the pending GET, if any, which ``send_packets`` answers."""

    __slots__ = ("_answer", "_on_abort", "_refuse", "_waiter", "held")

    name = "polling"

    def __init__(self) -> None:
        #: the pending GET: its answer to come, what makes the answer of packets (an HTTP
        #: response, or a forwarded GET's reply), and what its abort calls
        self._waiter: Deferred[Any] | None = None
        self._answer: Callable[[list[Packet]], Any] = _no_answer
        self._on_abort: Callable[[], None] = _no_abort
        self._refuse: Callable[[HTTPError], Any] = _no_answer
        #: the check a pending GET waits for before it takes anything (see the module's
        #: doc); None: the GET is not held
        self.held: asyncio.Future[Any] | None = None

    @property
    def writable(self) -> bool:
        waiter = self._waiter
        return waiter is not None and not waiter.done() and self.held is None

    def bind(self, on_message: MessageCallback, on_close: CloseCallback) -> None:
        pass  # its input comes in POSTs (receive), and it has no end of its own

    def send_packets(self, packets: list[Packet]) -> None:
        """Answer the pending GET, held or not."""
        waiter, self._waiter = self._waiter, None
        self.held = None
        if waiter is not None and not waiter.done():
            # the HTTP connection writes it now (Deferred): no task, no loop turn
            waiter.set_result(self._answer(packets))

    def refuse(self, error: HTTPError) -> None:
        """Answer the pending GET, held or not, with an HTTP error rather than packets."""
        waiter, self._waiter = self._waiter, None
        self.held = None
        if waiter is not None and not waiter.done():
            waiter.set_result(self._refuse(error))

    def close(self) -> None:
        self.held = None  # the session's end is told at once
        if self.writable:
            self.send_packets([engineio.CLOSE])

    def wait(self, answer: Callable[[list[Packet]], T], on_abort: Callable[[], None],
             held: asyncio.Future[Any] | None = None,
             refuse: Callable[[HTTPError], T] = _no_answer) -> Deferred[T]:
        """The GET waits: the answer to come, ``answer(packets)`` (not before ``held`` is
        done) or ``refuse(error)``. Cancelling it (the GET's connection went away) calls
        ``on_abort``."""
        waiter: Deferred[T] = Deferred(self._cancelled)
        self._waiter = waiter
        self.held = held
        self._answer = answer
        self._refuse = refuse
        self._on_abort = on_abort
        return waiter

    def _cancelled(self, waiter: Deferred[Any]) -> None:
        if self._waiter is waiter:
            self._waiter = None
            self._on_abort()


def poll(socket: EngineSocket, answer: Callable[[list[Packet]], T],
         vouching: asyncio.Future[Any] | None = None,
         refuse: Callable[[HTTPError], T] = _no_answer) -> T | Deferred[T]:
    """Take a GET in, now (see :meth:`EngineSocket.begin_poll`): ``answer(packets)`` at
    once if output is queued, or else the answer to come, given when there is some.
    Cancelling it (the GET's connection went away) aborts the poll, which closes the
    session. Raises BadRequest for a GET the session refuses. With ``vouching``, the GET
    is held until it is done; if it fails, the session is closed and the GET answered
    ``refuse(UnknownSession())`` (see the module's doc)."""
    ready = socket.begin_poll(held=vouching is not None)
    if ready is not None:
        return answer(ready)
    transport = socket.transport
    # begin_poll refuses a GET once a websocket carries the session
    assert isinstance(transport, Polling)
    waiter = transport.wait(answer, socket.abort_poll, vouching, refuse)
    if vouching is not None:
        vouching.add_done_callback(functools.partial(_vouched, socket, transport))
    return waiter


def _vouched(socket: EngineSocket, transport: Polling, vouching: asyncio.Future[Any]) -> None:
    if vouching.cancelled() or vouching.exception() is not None:
        # the previous answer's relay is gone, and the answer may be too: the held GET (if
        # nothing answered it meanwhile) is refused as the session's next request will be
        transport.refuse(UnknownSession())
        socket.release_poll()  # (answered: no "1" is due to it)
        socket.close(CloseReason.TRANSPORT_ERROR, notify=False)
    elif transport.held is vouching:  # (else answered meanwhile: its own relay is gone)
        transport.held = None
        socket.flush()


def get(socket: EngineSocket, headers: list[tuple[str, str]],
        compression: HTTPCompression | None = None,
        vouching: asyncio.Future[Any] | None = None) -> Response | Deferred[Response]:
    """A GET of this worker's session: its answer now, or the answer to come (cancelling
    it withdraws the GET; ``vouching``: see poll). Raises BadRequest for a GET the session
    refuses."""
    return poll(socket, lambda packets: payload_response(packets, headers, compression),
                vouching, _no_answer if vouching is None
                else lambda error: error_response(error, headers))


def post(socket: EngineSocket, body: bytes, headers: list[tuple[str, str]],
         config: Config) -> Response:
    """A POST of this worker's session: its packets are processed before the answer."""
    receive(socket, body, config)
    return post_response(headers)


def receive(socket: EngineSocket, body: bytes, config: Config) -> None:
    """The packets of a POST, received by this worker or forwarded to it. Raises
    PayloadTooLarge, or BadRequest for an overlapping POST or a payload that does not
    decode (which closes the session: a parse error)."""
    if len(body) > config.max_payload:
        raise PayloadTooLarge()
    socket.begin_post()
    try:
        try:
            packets = engineio.decode_payload(body, max_packets=config.max_packets_per_payload)
        except EngineIOProtocolError:
            socket.protocol_error()
            raise BadRequest() from None
        socket.receive(packets)
    finally:
        socket.end_post()


def payload_response(packets: list[Packet], headers: list[tuple[str, str]],
                     compression: HTTPCompression | None = None) -> Response:
    """A GET's answer (or the handshake's): the packets as one payload, compressed unless
    every packet says not to (``compress(False)``, as the reference)."""
    if compression is not None and not any(packet.compress for packet in packets):
        compression = None
    return body_response(engineio.encode_payload(packets).encode(), headers, compression)


def body_response(body: bytes, headers: list[tuple[str, str]],
                  compression: HTTPCompression | None = None) -> Response:
    """A GET's answer from an encoded payload (the owner's, for a forwarded GET), compressed
    as the client accepts (``http_compression``): by the worker that answers the client."""
    headers = [("Content-Type", PLAIN), *headers]
    if compression is not None:
        body, headers = compression.apply(body, headers)
    return Response(200, headers, body)


def post_response(headers: list[tuple[str, str]]) -> Response:
    """A POST's answer once its packets are processed (the reference's ``ok``)."""
    return Response(200, [("Content-Type", "text/html"), *headers], b"ok")
