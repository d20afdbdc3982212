"""WebSocket connections, framed by the ``websockets`` package's sans-I/O ServerProtocol.

How this works: the HTTP layer has parsed the upgrade request; :func:`accept` hands the
headers websockets reads, as its :class:`websockets.http11.Request`, to a fresh
:class:`websockets.server.ServerProtocol` (whose ``accept`` validates the handshake,
negotiates extensions and makes the 101), and the :class:`WebSocketConnection` then takes
the TCP connection over:
bytes in -> frames -> ``on_message(str | bytes)``; ``send(...)`` -> frames -> bytes out.
Fragmented messages are reassembled here; ping/pong/close frames are answered by the
protocol object. Each Engine.IO packet travels in one frame.

Closing is a closing handshake (RFC 6455 section 7.1.1): the server sends its close frame,
reads on until the client's close frame comes back, and then closes the TCP connection
first. Closing the TCP connection right after the close frame would have the client's
answer (or anything it sent meanwhile) meet a closed socket, which the kernel answers
with a reset, and a reset can destroy the close frame before the client has read it.
A client that does not answer within ``websocket_close_timeout`` is cut off.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Iterable

from websockets.datastructures import Headers
from websockets.exceptions import InvalidHeaderValue
from websockets.extensions import ServerExtensionFactory
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame, Opcode
from websockets.http11 import Request as WSRequest
from websockets.protocol import State as WSState
from websockets.server import ServerProtocol

from ..config import Config
from ..http.connection import HTTPConnection
from ..http.messages import Request, Response
from ..protocol.engineio import TYPE_CHARS, Packet
from .transport import CloseCallback, MessageCallback, WebSocket, ignore_close, ignore_message

logger = logging.getLogger("sio_core.websocket")

def _frame(packet: Packet) -> Frame:
    data = packet.data
    if isinstance(data, bytes):
        return Frame(Opcode.BINARY, data)
    return Frame(Opcode.TEXT, (TYPE_CHARS[packet.type] + data).encode("utf-8"))


#: the header websockets' Frame.serialize writes for an unmasked, unfragmented, uncompressed
#: frame, by opcode and payload length: such a frame is its header and then its payload as it
#: is (RFC 6455 section 5.2), so the header is serialized once per length and not per frame
#: (Frame.serialize costs ~10k instructions, a fifth of the Python of a websocket echo's
#: output). Lengths past _HEADER_CACHE_LENGTHS are framed by Frame.serialize each time.
_HEADERS: dict[Opcode, dict[int, bytes]] = {Opcode.TEXT: {}, Opcode.BINARY: {}}
_HEADER_CACHE_LENGTHS = 4096


def _serialized(opcode: Opcode, payload: bytes) -> bytes:
    length = len(payload)
    headers = _HEADERS[opcode]
    header = headers.get(length)
    if header is None:
        if length >= _HEADER_CACHE_LENGTHS:
            return Frame(opcode, payload).serialize(mask=False)
        serialized = Frame(opcode, bytes(length)).serialize(mask=False)
        header = headers[length] = serialized[:len(serialized) - length]
    return header + payload


def frame_of(packet: Packet) -> bytes:
    """The packet's WebSocket frame (as websockets' Frame serializes it), made once per
    packet."""
    cached = packet.ws_frame
    if cached is None:
        data = packet.data
        if isinstance(data, bytes):
            cached = _serialized(Opcode.BINARY, data)
        else:
            cached = _serialized(Opcode.TEXT, (TYPE_CHARS[packet.type] + data).encode("utf-8"))
        packet.ws_frame = cached  # a cache slot, see Packet
    return cached


# permessage-deflate (RFC 7692). The server always answers server_no_context_takeover, so
# each message it sends is compressed on its own: the compressed frame depends only on the
# message and the window size, and a broadcast is compressed once for every recipient that
# negotiated the default window (15 bits: what browsers and node's ws offer). Compression is
# websockets' own extension, used here without a connection, as a frame encoder.
_WINDOW_BITS = 15


def _deflater(window_bits: int) -> PerMessageDeflate:
    return PerMessageDeflate(remote_no_context_takeover=True, local_no_context_takeover=True,
                             remote_max_window_bits=15, local_max_window_bits=window_bits)


_DEFLATE = _deflater(_WINDOW_BITS)


def deflated_frame_of(packet: Packet, threshold: int) -> bytes:
    """The packet's frame for a connection with permessage-deflate: compressed when its
    payload has at least ``threshold`` bytes (else :func:`frame_of`), made once per packet."""
    cached = packet.ws_deflated
    if cached is None:
        frame = _frame(packet)
        if len(frame.data) < threshold:
            return frame_of(packet)
        cached = frame.serialize(mask=False, extensions=[_DEFLATE])
        packet.ws_deflated = cached  # a cache slot, see Packet
    return cached


def server_extensions(config: Config) -> list[ServerExtensionFactory] | None:
    """What a websocket's handshake may negotiate: permessage-deflate with
    ``per_message_deflate``."""
    if not config.per_message_deflate:
        return None
    return [ServerPerMessageDeflateFactory(server_no_context_takeover=True)]


#: the request headers websockets' ServerProtocol reads to validate and answer a handshake,
#: as websockets names them; the others are not handed to it
_HANDSHAKE_HEADERS = {name.lower().encode(): name for name in (
    "Connection", "Upgrade", "Sec-WebSocket-Key", "Sec-WebSocket-Version",
    "Sec-WebSocket-Extensions", "Sec-WebSocket-Protocol", "Origin")}

#: what each ServerProtocol would look up by name (logging.getLogger) per connection
_WS_LOGGER = logging.getLogger("websockets.server")


def _handshake_request(request: Request) -> WSRequest:
    """The upgrade request as websockets' sans-I/O API takes it: made from the headers the
    HTTP layer parsed, not parsed again. Repeated fields stay repeated (websockets refuses
    a repeated key, version or origin). Raises InvalidHeaderValue for a value websockets
    finds unsafe. The method and version are GET and HTTP/1.1, as the engine checked."""
    headers = Headers()
    for name, value in request.raw_headers:
        canonical = _HANDSHAKE_HEADERS.get(name.lower())
        if canonical is not None:
            headers[canonical] = value.decode("latin-1")
    return WSRequest(request.raw_url.decode("latin-1"), headers)


class WebSocketConnection:
    """One accepted WebSocket: a :class:`~sio_core.engine.transport.Transport`, and the
    HTTP layer's ConnectionHandler once it has taken the connection over."""

    __slots__ = ("_close_timer", "_closed", "_config", "_deflate", "_fragment_text", "_fragments",
                 "_head", "_http", "_protocol", "_registry", "_shared_deflate", "on_close",
                 "on_message")

    def __init__(self, http: HTTPConnection, protocol: ServerProtocol, config: Config,
                 registry: set[WebSocket] | None = None, head: bytes = b"") -> None:
        self._http = http
        self._protocol = protocol
        self._config = config
        #: the 101 answer, until the first write carries it: with the Engine.IO open packet
        #: (or whatever comes first) in one write, one send(2) per handshake fewer
        self._head = head
        self.on_message: MessageCallback = ignore_message
        self.on_close: CloseCallback = ignore_close
        self._fragments: list[bytes] = []
        self._fragment_text = False
        self._closed = False
        self._close_timer: asyncio.TimerHandle | None = None
        #: the server's set of open websockets (a drain waits for it to empty)
        self._registry = registry
        if registry is not None:
            registry.add(self)
        #: permessage-deflate, when negotiated: the encoder of this connection's window, and
        #: whether it is the default one, whose compressed frames are shared (see above)
        negotiated = next((e for e in protocol.extensions if isinstance(e, PerMessageDeflate)),
                          None)
        window = negotiated.local_max_window_bits if negotiated is not None else None
        self._deflate = None if window is None else _deflater(window)
        self._shared_deflate = window == _WINDOW_BITS

    name = "websocket"
    #: output is written at once; a client that does not read it is cut off past
    #: max_outbound_buffer (send_packets)
    writable = True

    def bind(self, on_message: MessageCallback, on_close: CloseCallback) -> None:
        self.on_message = on_message
        self.on_close = on_close

    def start(self, trailing: bytes = b"") -> None:
        if self._head:
            self._write(b"")  # the 101, if nothing carried it yet
        self._http.take_over(self, trailing)

    @property
    def client(self) -> tuple[str, int] | None:
        return self._http.client

    # -- input --------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        self._protocol.receive_data(data)
        events = self._protocol.events_received()
        self._flush()
        for event in events:
            if self._closed:
                break
            if isinstance(event, Frame):
                self._frame(event)
        protocol = self._protocol
        # eof_sent: the closing handshake is complete (or the connection failed), and the
        # server closes the TCP connection first; CLOSED: the client's TCP is gone
        if protocol.eof_sent or protocol.state is WSState.CLOSED:
            self._close_transport()

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                self._deliver(opcode is Opcode.TEXT, bytes(frame.data))
            else:
                self._fragment_text = opcode is Opcode.TEXT
                self._fragments = [bytes(frame.data)]
        elif opcode is Opcode.CONT:
            self._fragments.append(bytes(frame.data))
            if frame.fin:
                data = b"".join(self._fragments)
                self._fragments = []
                self._deliver(self._fragment_text, data)

    def _deliver(self, text: bool, data: bytes) -> None:
        if text:
            try:
                message: str | bytes = data.decode("utf-8")
            except UnicodeDecodeError:  # ServerProtocol validates UTF-8; belt and braces
                self.close(1007)
                return
        else:
            message = data
        self.on_message(message)

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()
        if not self._closed:
            self._closed = True
            self.on_close()

    def _forget(self) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if self._registry is not None:
            self._registry.discard(self)

    # A websocket writes on when the transport's buffer is over its high-water mark: what a
    # client does not read is bounded by max_outbound_buffer instead (send_packets).

    def pause_writing(self) -> None:
        pass

    def resume_writing(self) -> None:
        pass

    # -- output -------------------------------------------------------------------------

    def send_many(self, messages: Iterable[str | bytes], plain: Collection[int] = ()) -> None:
        """Write encoded Engine.IO packets (another worker's, relayed), one frame each; those
        at the indices in ``plain`` never compressed (compress(False))."""
        frames = []
        for index, message in enumerate(messages):
            frame = (Frame(Opcode.TEXT, message.encode("utf-8")) if isinstance(message, str)
                     else Frame(Opcode.BINARY, message))
            frames.append(frame.serialize(mask=False) if index in plain
                          else self._serialize(frame))
        self._write(b"".join(frames))

    def send_packets(self, packets: list[Packet]) -> None:
        """Write Engine.IO packets, one frame each, in one write. The frames are built
        once per packet (see frame_of) rather than by the protocol object per client."""
        if len(packets) == 1:
            self._write(frame_of(packets[0]) if self._deflate is None
                        else self._deflated(packets[0]))
        elif self._deflate is None:
            # the cached frame read inline: a broadcast's packets were framed by the first
            # recipient's write; a call per packet and recipient would cost more than the join
            self._write(b"".join([p.ws_frame or frame_of(p) for p in packets]))
        else:
            self._write(b"".join([self._deflated(p) for p in packets]))

    def _deflated(self, packet: Packet) -> bytes:
        if not packet.compress:  # compress(False)
            return frame_of(packet)
        if self._shared_deflate:
            return deflated_frame_of(packet, self._config.per_message_deflate_threshold)
        return self._serialize(_frame(packet))  # a window of its own: compressed for it

    def _serialize(self, frame: Frame) -> bytes:
        """A frame of this connection: compressed if permessage-deflate was negotiated and
        the payload has per_message_deflate_threshold bytes or more."""
        deflate = self._deflate
        if deflate is None or len(frame.data) < self._config.per_message_deflate_threshold:
            return frame.serialize(mask=False)
        return frame.serialize(mask=False, extensions=[deflate])

    def _write(self, data: bytes) -> None:
        if self._closed or self._protocol.state is not WSState.OPEN:
            return
        transport = self._http.transport
        if transport is None or transport.is_closing():
            return
        if self._head:
            data, self._head = self._head + data, b""
        transport.write(data)
        limit = self._config.max_outbound_buffer
        if limit is not None and transport.get_write_buffer_size() > limit:
            logger.warning("closing a websocket whose client does not read (%s)", self.client)
            self.abort()

    def close(self, code: int | None = 1000, reason: str = "") -> None:
        """Start the closing handshake; the TCP connection closes once it completes (see
        the module's docstring), or after websocket_close_timeout. ``code`` None sends a
        close frame with no status code (RFC 6455 section 5.5.1)."""
        if self._closed or self._close_timer is not None:
            return
        if self._protocol.state is not WSState.OPEN:
            self._close_transport()
            return
        self._protocol.send_close(code, reason)
        self._flush()
        self._close_timer = asyncio.get_running_loop().call_later(
            self._config.websocket_close_timeout, self.abort)

    def abort(self) -> None:
        transport = self._http.transport
        if transport is not None:
            transport.abort()
        self.connection_lost(None)

    def _flush(self) -> None:
        data = self._protocol.data_to_send()
        if not data:
            return
        transport = self._http.transport
        if transport is None or transport.is_closing():
            return
        eof = False
        if data[-1] == b"":
            eof = True
            data = data[:-1]
        if self._head:
            data.insert(0, self._head)
            self._head = b""
        if data:
            transport.write(b"".join(data) if len(data) > 1 else data[0])
        if eof and transport.can_write_eof():
            transport.write_eof()

    def _close_transport(self) -> None:
        # the closing handshake is over: end the TCP stream once what is queued is written
        # (the registry lets go when the TCP connection is gone: connection_lost)
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        transport = self._http.transport
        if transport is not None and not transport.is_closing():
            transport.close()
        if not self._closed:
            self._closed = True
            self.on_close()


def accept(
    request: Request, http: HTTPConnection, config: Config,
    registry: set[WebSocket] | None = None,
    headers: list[tuple[str, str]] | None = None,
) -> WebSocketConnection | Response:
    """Validate the upgrade request and answer 101 (with ``headers`` added); or return the
    refusal to send. The accepted connection is in ``registry`` until its TCP connection is
    gone; its 101 is written with its first output (or by ``start``)."""
    # OPEN from the start: the request is handed to websockets rather than parsed by it from
    # bytes, so the protocol's parser reads frames from the first byte
    protocol = ServerProtocol(max_size=config.max_payload, extensions=server_extensions(config),
                              state=WSState.OPEN, logger=_WS_LOGGER)
    try:
        ws_request = _handshake_request(request)
    except InvalidHeaderValue:
        return Response(400, [("Content-Type", "text/plain")], b"Bad WebSocket request",
                        close=True)
    try:
        accept_value, extensions, subprotocol = protocol.process_request(ws_request)
    except Exception:
        # refused: websockets' accept() answers it (it checks the request again, and maps
        # each error to its status and text)
        response = protocol.accept(ws_request)
        return Response(response.status_code, [("Content-Type", "text/plain")],
                        bytes(response.body or b""), close=True)
    return WebSocketConnection(http, protocol, config, registry,
                               _switching(accept_value, extensions, subprotocol, headers))


def _switching(accept_value: str, extensions: str | None, subprotocol: str | None,
               headers: list[tuple[str, str]] | None) -> bytes:
    """The 101 answer (RFC 6455 section 4.2.2) to a handshake websockets' process_request
    found valid, with its Sec-WebSocket-Accept and negotiated extensions and subprotocol,
    and ``headers`` added. Made here rather than by its accept(): no Headers object, and no
    Date, which a 1xx answer need not carry (RFC 9110 section 6.6.1) and Node's ws does
    not send."""
    head = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_value}\r\n")
    if extensions is not None:
        head += f"Sec-WebSocket-Extensions: {extensions}\r\n"
    if subprotocol is not None:
        head += f"Sec-WebSocket-Protocol: {subprotocol}\r\n"
    if not headers:
        return (head + "\r\n").encode("latin-1")
    # the application's headers, checked by websockets' Headers (a value with a line break
    # is refused: InvalidHeaderValue)
    return head.encode("latin-1") + Headers(headers).serialize()
