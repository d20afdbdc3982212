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

The same functions serve a GET or POST that another worker forwarded to this one, the
session's owner (forwarding.py): only the form of the answer differs.
"""

from __future__ import annotations

import asyncio

from ..config import Config
from ..exceptions import BadRequest, EngineIOProtocolError, PayloadTooLarge
from ..http.messages import Response
from ..protocol import engineio
from ..protocol.engineio import Packet
from .socket import EngineSocket

#: the Content-Type of a payload (the reference's, for a text payload of any packets)
PLAIN = "text/plain; charset=UTF-8"


def get(socket: EngineSocket, headers: list[tuple[str, str]]
        ) -> Response | asyncio.Future[Response]:
    """A GET of this worker's session: its answer now, or a future of it (cancelling it
    withdraws the GET). Raises BadRequest for a GET the session refuses."""
    return socket.poll(lambda packets: payload_response(packets, headers))


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
    socket.post_begin()
    try:
        try:
            packets = engineio.decode_payload(body, max_packets=config.max_packets_per_payload)
        except EngineIOProtocolError:
            socket.protocol_error()
            raise BadRequest() from None
        socket.receive(packets)
    finally:
        socket.post_end()


def payload_response(packets: list[Packet], headers: list[tuple[str, str]]) -> Response:
    """A GET's answer (or the handshake's): the packets as one payload."""
    return body_response(engineio.encode_payload(packets).encode(), headers)


def body_response(body: bytes, headers: list[tuple[str, str]]) -> Response:
    """A GET's answer from an encoded payload (the owner's, for a forwarded GET)."""
    return Response(200, [("Content-Type", PLAIN), *headers], body)


def post_response(headers: list[tuple[str, str]]) -> Response:
    """A POST's answer once its packets are processed (the reference's ``ok``)."""
    return Response(200, [("Content-Type", "text/html"), *headers], b"ok")
