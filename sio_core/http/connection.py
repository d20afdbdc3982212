"""HTTP/1.1 server connections on asyncio, parsed by httptools (llhttp, Node.js's parser).

How this works: one :class:`HTTPConnection` per TCP connection feeds bytes to the parser,
whose callbacks build a :class:`Request` and enforce the limits of
:class:`~sio_core.config.Config` (request line, header count and bytes, body size, slow
requests). Complete requests are handled one at a time, in order (keep-alive and
pipelining), by ``handler(request, connection)``, called at once: it returns the
Response, or None once it has taken the connection over (a WebSocket upgrade, through
:meth:`HTTPConnection.take_over`), or the answer to come when it must wait: a
:class:`~sio_core.http.messages.Deferred` (a long-poll, written the moment it is given:
no task, no loop turn), a Future (a request forwarded to another worker, written from
its callback) or another awaitable (run as a task). If the connection is lost meanwhile
the wait is cancelled (a pending long-poll must learn that its client is gone).

A connection's life is :class:`ConnState`, changed in few places::

    READING --(Connection: close, HTTP/1.0, an upgrade, a refusal)--> LAST
    LAST --(all answered)--> LINGERING --(client's EOF, lingering bounds)--> CLOSED
    READING/LAST --(the client's EOF, all answered)--> CLOSED
    READING/LAST --(take_over)--> TAKEN_OVER;  any --(close, connection lost)--> CLOSED

Back-pressure: answers are written as they are made, but while the transport's write
buffer is over its high-water mark (pause_writing) no further request is answered, and
once a few are queued the socket is no longer read: a client that pipelines requests and
does not read the answers costs a few parsed requests (``max_pipelined_requests``, and at
most one ``parse_slice`` of them more) and the high-water mark plus one answer, not every
answer.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import httptools

from ..config import Config
from .messages import Deferred, Request, Response, parse_query, text_response
from .proxy import TrustedProxies, forwarded_secure

logger = logging.getLogger("sio_core.http")

#: RFC 9110 §10.1.1: the interim answer to ``Expect: 100-continue``.
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class ConnectionHandler(Protocol):
    """What takes a connection over after an upgrade."""

    def data_received(self, data: bytes) -> None: ...

    def connection_lost(self, exc: Exception | None) -> None: ...

    def pause_writing(self) -> None: ...

    def resume_writing(self) -> None: ...


Handler = Callable[[Request, "HTTPConnection"],
                   "Response | Awaitable[Response | None] | None"]


class ConnState(enum.Enum):
    #: requests are read and answered
    READING = "reading"
    #: no further request is read (RFC 9112 §9.6: none is processed after a ``close``);
    #: the queued ones are answered, then the refusal that ended the reading, if any
    LAST = "last"
    #: every answer written and our side shut: what the client still sends is read and
    #: discarded until its EOF or the lingering bounds, so that it reads the last answer
    #: rather than a reset (RFC 9112 §9.6, "close in stages")
    LINGERING = "lingering"
    #: no longer HTTP (a WebSocket)
    TAKEN_OVER = "taken over"
    CLOSED = "closed"


# module globals: a global's lookup is cheaper than an enum member's, on every request
_READING, _LAST, _LINGERING = ConnState.READING, ConnState.LAST, ConnState.LINGERING
_TAKEN_OVER, _CLOSED = ConnState.TAKEN_OVER, ConnState.CLOSED


#: the usual methods' names, not decoded anew for each request
_METHODS = {name.encode(): name for name in ("GET", "POST", "OPTIONS", "HEAD", "PUT")}


#: header names as the Request's dict has them (decoded, lower case), by their bytes as they
#: came: each name is decoded once, and the idle connections' requests (kept for
#: socket.handshake) share one string per name instead of a copy each
_NAMES: dict[bytes, str] = {}
#: what _NAMES holds at most (a client sending made-up names cannot grow it further)
_MAX_NAMES = 512


def _header_name(raw: bytes) -> str:
    """The name of ``raw`` (not in _NAMES yet), kept there under its spelling and its
    lower-case one while there is room: "Host" and "host" share one string."""
    lower = raw.lower()
    name = _NAMES.get(lower) or raw.decode("latin-1").lower()
    if len(_NAMES) < _MAX_NAMES - 1:
        _NAMES[lower] = _NAMES[raw] = name
    return name


class _Refuse(Exception):
    """Raised inside a parser callback to stop parsing (see HTTPConnection._stop)."""


class HTTPConnection(asyncio.Protocol):
    # slots: thousands of these live as long as their websockets do
    __slots__ = ("_body", "_body_size", "_client", "_config", "_connections", "_continue",
                 "_discarded", "_eof", "_handler", "_header_bytes", "_headers", "_loop",
                 "_parser", "_pending", "_proxies", "_queue", "_reading_paused", "_refusal",
                 "_secure", "_state", "_stop_status",
                 "_taken_over", "_task", "_timer", "_timer_at", "_unparsed", "_url",
                 "_waiting", "_waiting_get", "_write_paused", "transport")

    def __init__(self, handler: Handler, config: Config, *,
                 connections: set[HTTPConnection] | None = None,
                 proxies: TrustedProxies | None = None) -> None:
        self._handler = handler
        #: whose X-Forwarded-* headers are believed: None once the peer is known not to be
        #: one of them (connection_made)
        self._proxies = proxies
        self._secure = False
        self._config = config
        self._loop = asyncio.get_running_loop()
        self._connections = connections
        self.transport: asyncio.Transport | None = None
        self._state = _READING
        #: None once the connection is taken over: nothing after an upgrade is HTTP
        self._parser: Any = httptools.HttpRequestParser(self)
        self._client: tuple[str, int] | None = None
        # the request being parsed
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._body_size = 0
        #: its ``Expect: 100-continue`` is due once the answers before it are written
        self._continue = False
        # complete requests waiting for the handler, and the handler's task
        self._queue: list[Request] = []  # a few at most: see _feed
        #: the rest of a read, parsed once the queue drains
        self._unparsed = b""
        self._task: asyncio.Task[None] | None = None
        #: the request whose answer is awaited (the queue waits behind it)
        self._waiting: Request | None = None
        #: it is a GET (see eof_received)
        self._waiting_get = False
        #: what connection_lost cancels: the Deferred or Future of the answer, or the
        #: awaitable the task will await, until it starts (a task cancelled before its
        #: first step never awaits it, so connection_lost closes it)
        self._pending: Awaitable[Response | None] | Deferred[Response | None] | None = None
        #: the answer that ended the reading (413, 431, ...), sent after the queued ones
        self._refusal: Response | None = None
        #: the status a parser callback stopped parsing with (400: a callback that failed)
        self._stop_status = 400
        # One timer, re-armed lazily: each request moves the deadline (_timer_at) and the
        # timer, when it fires early, sleeps on until it; a call_later plus a cancel per
        # request would cost more than parsing the request does.
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._taken_over: ConnectionHandler | None = None
        self._write_paused = False
        self._reading_paused = False
        #: the client sent its EOF (a half-close): nothing more comes
        self._eof = False
        #: bytes read and thrown away since the reading ended
        self._discarded = 0

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self._client = (str(peer[0]), int(peer[1]))
        self._secure = transport.get_extra_info("sslcontext") is not None
        proxies = self._proxies
        if proxies is not None and not proxies.trusts(
                self._client[0] if self._client else None):
            self._proxies = None
        if self._connections is not None:
            self._connections.add(self)
        self._set_timer(self._config.request_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._state = _CLOSED
        self._drop_timer()
        if self._connections is not None:
            self._connections.discard(self)
        if self._taken_over is not None:
            self._taken_over.connection_lost(exc)
            return
        self._waiting = None
        if self._task is not None and not self._task.done():
            self._task.cancel()
        pending, self._pending = self._pending, None
        if inspect.iscoroutine(pending):
            pending.close()  # its task never started: nothing ran, nothing to undo
        elif isinstance(pending, (Deferred, asyncio.Future)):
            pending.cancel()  # a request taken in at once (a long-poll): withdrawn
        self._queue.clear()
        self._unparsed = b""

    def eof_received(self) -> bool | None:
        """The client sends nothing more (it closed, or shut its side only): what it asked
        for is answered, as Node's http server does, the transport kept open for it. But a
        GET whose answer waits (a long-poll) is given up, the connection closed: its client
        is most likely gone, and the session must learn it (the reference closes it, "poll
        connection closed prematurely"); a GET can be asked again, a POST's outcome not."""
        self._eof = True
        if self._waiting is not None and self._waiting_get:
            return None
        state = self._state
        if state is _LAST or (state is _READING and (
                self._queue or self._unparsed or self._waiting is not None)):
            return True
        return None  # nothing to answer (or lingering, or a websocket): close

    def pause_writing(self) -> None:
        self._write_paused = True
        if self._taken_over is not None:
            self._taken_over.pause_writing()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._taken_over is not None:
            self._taken_over.resume_writing()
        elif self._queue or self._unparsed:
            self._serve_queue()  # answering stopped for the client to read: carry on

    def data_received(self, data: bytes) -> None:
        if self._taken_over is not None:
            self._taken_over.data_received(data)
            return
        state = self._state
        if state is _READING:
            self._feed(data)
            self._serve_queue()
        elif state is _LAST or state is _LINGERING:
            self._discard(len(data))

    # -- parsing ------------------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        """Parse ``data`` into queued requests. A large read is parsed a slice at a time and
        kept for later once max_pipelined_requests wait; the socket is then not read until
        the queue drains."""
        parser = self._parser
        queue = self._queue
        config = self._config
        most, step = config.max_pipelined_requests, config.parse_slice
        size = len(data)
        pos = 0
        while pos < size and self._state is _READING:
            if len(queue) >= most:
                self._unparsed = data[pos:]
                break
            if size <= step:  # the usual read: at once
                chunk = data
                pos = size
            else:
                chunk = data[pos:pos + step]
                pos += step
            try:
                parser.feed_data(chunk)
            except httptools.HttpParserUpgrade as exc:
                offset = exc.args[0] if exc.args and isinstance(exc.args[0], int) else len(chunk)
                if queue:
                    queue[-1].upgrade = True
                    queue[-1].trailing = chunk[offset:] + data[pos:]
                # nothing after an upgrade request is HTTP any more: stop reading until the
                # handler decides (it takes the connection over, or answers and closes)
                self._state = _LAST
                self._pause_reading()
                return
            except httptools.HttpParserCallbackError:
                self._refuse(self._stop_status)
                return
            except httptools.HttpParserError:
                # after a request with ``Connection: close`` llhttp refuses any more data;
                # we ignore it (RFC 9112 §9.6), the reference answers 400 instead
                if self._state is _READING:
                    self._refuse(400)
                return
        if len(queue) >= most or self._unparsed:
            self._pause_reading()

    def _discard(self, size: int) -> None:
        """Input after the last request (a refused body, data after ``Connection: close``),
        read only so that closing does not reset the connection; bounded."""
        self._discarded += size
        limit = self._config.lingering_bytes
        if limit is not None and self._discarded > limit:
            self._abort()

    # -- parser callbacks ---------------------------------------------------------------

    def _stop(self, status: int) -> _Refuse:
        """What a callback raises to stop parsing and have ``status`` answered. The status
        is kept here, not on the exception: httptools hands that back as the ``__context__``
        of its HttpParserCallbackError, which Python sets, as it raises it, to whatever
        exception is being handled at the time, if any."""
        self._stop_status = status
        return _Refuse()

    def on_message_begin(self) -> None:
        # the request's parts start empty: from __init__, then on_message_complete
        self._set_timer(self._config.request_timeout)

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self._config.max_request_line:
            raise self._stop(414)

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self._headers
        headers.append((name, value))
        size = self._header_bytes + len(name) + len(value) + 4
        self._header_bytes = size
        config = self._config
        if size > config.max_header_bytes or len(headers) > config.max_header_count:
            raise self._stop(431)

    def on_headers_complete(self) -> None:
        length = expect = None
        for name, value in self._headers:
            size = len(name)  # lower-cased only when it may be one of the two
            if size == 14 and name.lower() == b"content-length":
                length = value
            elif size == 6 and name.lower() == b"expect":
                expect = value
        # answered at once, before the body (and so without a 100 Continue: RFC 9110
        # §10.1.1 "an immediate response with a final status code"); the reference
        # answers after reading max_payload bytes of it
        if length is not None and int(length) > self._config.max_payload:
            raise self._stop(413)
        if expect is not None and self._parser.get_http_version() != "1.0":
            self._expect(expect)

    def _expect(self, value: bytes) -> None:
        """RFC 9110 §10.1.1, as Node's http server answers it: ``100-continue`` gets the
        interim 100, any other expectation 417 (HTTP/1.0 expectations are ignored)."""
        if b"100-continue" not in [token.strip() for token in value.lower().split(b",")]:
            raise self._stop(417)
        if self._queue or self._waiting is not None:
            self._continue = True  # after the answers before it (_serve_queue)
        else:
            self.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self._config.max_payload:
            raise self._stop(413)
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._cancel_timer()
        self._continue = False  # the body is here: a 100 is moot
        # Any: httptools' stub says the query is bytes, but it is None when there is none (and
        # the mypyc build checks what the stub says)
        url = self._url
        parsed: Any = httptools.parse_url(url)
        raw = self._headers
        headers: dict[str, str] = {}
        for name, value in raw:
            key = _NAMES.get(name) or _header_name(name)
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        client, secure = self._client, self._secure
        if self._proxies is not None:
            client, secure = self._forwarded(headers, client, secure)
        parser = self._parser
        # read here: llhttp resets its flags once the message is complete
        keep_alive = parser.should_keep_alive()
        method = parser.get_method()
        body = self._body
        self._queue.append(Request(
            _METHODS.get(method) or method.decode("latin-1"),
            parsed.path.decode("latin-1"),
            parse_query(parsed.query or b""),
            headers,
            b"".join(body) if body else b"",
            client,
            secure,
            raw,
            url,
            parser.get_http_version(),
            keep_alive,
        ))
        if body:
            self._body = []
            self._body_size = 0
        self._url = b""
        self._headers = []
        self._header_bytes = 0
        if not keep_alive:
            self._state = _LAST

    def _forwarded(self, headers: dict[str, str], client: tuple[str, int] | None,
                   secure: bool) -> tuple[tuple[str, int] | None, bool]:
        """The client and its TLS as a trusted proxy says (sio_core/http/proxy.py)."""
        proxies = self._proxies
        assert proxies is not None
        forwarded_for = headers.get("x-forwarded-for")
        if forwarded_for:
            host = proxies.client(forwarded_for)
            if host is not None:
                client = (host, 0)
        forwarded_proto = headers.get("x-forwarded-proto")
        if forwarded_proto:
            secure = forwarded_secure(forwarded_proto)
        return client, secure

    # -- handling -----------------------------------------------------------------------

    def _serve_queue(self, answered: bool = False) -> None:
        """Answer the queued requests, in order, until one must wait (it gets a task) or
        the client is not reading its answers (the write buffer is over its high-water
        mark: resume_writing carries on). Then parse what a read left over; and once all
        is answered, read on (the keep-alive timeout runs), or end the connection."""
        if self._waiting is not None:
            return  # carried on with once the waiting one is answered (_resolved)
        queue = self._queue
        while True:
            while queue:
                if self._write_paused or self._state is _CLOSED:
                    return
                request = queue.pop(0)
                try:
                    result = self._handler(request, self)
                except Exception:
                    logger.exception("error handling %s %s", request.method, request.path)
                    result = text_response(500, "Internal Server Error")
                if result is not None and not isinstance(result, Response):
                    self._waiting = request
                    self._pending = result
                    waiting_get = request.method == "GET" or request.method == "HEAD"
                    self._waiting_get = waiting_get
                    if isinstance(result, Deferred):
                        result.listen(self._resolved)
                    elif isinstance(result, asyncio.Future):
                        result.add_done_callback(self._settled)
                    else:
                        self._task = self._loop.create_task(self._wait(request, result))
                    if waiting_get and self._eof:
                        self.close()  # given up, as in eof_received: connection_lost cancels
                    return
                if not self._answer(request, result):
                    return
                answered = True
            if not self._unparsed or self._state is not _READING:
                break
            data, self._unparsed = self._unparsed, b""
            self._feed(data)
        state = self._state
        if state is _LAST or (state is _READING and self._eof):
            self._finish()
        elif state is _READING:
            if self._continue:
                self._continue = False
                self.write(_CONTINUE)
            if answered:
                self._set_timer(self._config.keepalive_timeout)
            if self._reading_paused:
                self._reading_paused = False
                assert self.transport is not None
                self.transport.resume_reading()

    async def _wait(self, request: Request, pending: Awaitable[Response | None]) -> None:
        self._pending = None
        try:
            response = await pending
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("error handling %s %s", request.method, request.path)
            response = text_response(500, "Internal Server Error")
        self._task = None
        self._resolved(response)

    def _settled(self, future: asyncio.Future[Response | None]) -> None:
        if future.cancelled():
            return  # the connection was lost: connection_lost cancelled it
        exc = future.exception()
        if exc is None:
            self._resolved(future.result())
            return
        request = self._waiting
        logger.error("error handling %s %s", request and request.method,
                     request and request.path, exc_info=exc)
        self._resolved(text_response(500, "Internal Server Error"))

    def _resolved(self, response: Response | None) -> None:
        """The waiting request's answer: written now. This may run inside another
        connection's handling (a POST's packets answer a long-poll): the requests queued
        behind it are then answered on the next loop turn, not nested in there."""
        request, self._waiting = self._waiting, None
        self._pending = None
        if request is None or self._state is _CLOSED:
            return  # lost meanwhile, or taken over
        if self._answer(request, response):
            if self._queue or self._unparsed:
                self._loop.call_soon(self._serve_queue, True)
            else:
                self._serve_queue(True)  # the keep-alive timeout runs from now

    def _answer(self, request: Request, response: Response | None) -> bool:
        """Write the response; whether the connection goes on with HTTP."""
        if response is None:  # taken over
            return False
        keep_alive = request.keep_alive and not response.close and not request.upgrade
        if keep_alive and request.http_version == "1.0":
            # HTTP/1.0 persists only when the answer says so (RFC 9112 §C.2.2); the
            # reference's Node http server also tells the keep-alive timeout
            response = Response(response.status, [
                *response.headers, ("Connection", "keep-alive"),
                ("Keep-Alive", f"timeout={int(self._config.keepalive_timeout)}"),
            ], response.body)
        self.write(response.serialize(keep_alive))
        if not keep_alive:
            # nothing after a close is answered (RFC 9112 §9.6)
            if self._state is _READING:
                self._state = _LAST
            self._queue.clear()
            self._unparsed = b""
            self._refusal = None
        return self._state is not _CLOSED

    def _finish(self) -> None:
        """Every request is answered and no other follows: send the refusal that ended the
        reading, if any, then close in stages (RFC 9112 §9.6): shut our side, read and
        discard what the client still sends until its EOF, or until lingering_bytes or
        lingering_timeout, then close; a client still sending (an oversize body) so reads
        its answer instead of a reset, as with nginx's and Node's lingering close."""
        refusal, self._refusal = self._refusal, None
        if refusal is not None:
            self.write(refusal.serialize(False))
        transport = self.transport
        if self._eof or transport is None:
            self.close()  # the client sends nothing more: nothing can reset
            return
        self._state = _LINGERING
        if transport.can_write_eof():
            transport.write_eof()
        self._set_timer(self._config.lingering_timeout)
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()

    def _pause_reading(self) -> None:
        if not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()

    def write(self, data: bytes) -> None:
        if self.transport is not None and self._state is not _CLOSED:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None and self._state is not _CLOSED:
            self._state = _CLOSED
            self._drop_timer()
            self.transport.close()

    def _abort(self) -> None:
        if self.transport is not None and self._state is not _CLOSED:
            self._state = _CLOSED
            self._drop_timer()
            self.transport.abort()

    def take_over(self, handler: ConnectionHandler, trailing: bytes = b"") -> None:
        """Hand the raw connection to ``handler`` (after an upgrade)."""
        self._drop_timer()
        self._taken_over = handler
        # what only HTTP needed: released, as the connection may now live for hours
        self._parser = None
        self._task = None  # the handler's task, if any: it returns right after this
        self._waiting = None
        self._headers = []
        if self._state is not _CLOSED:
            self._state = _TAKEN_OVER
            if self._reading_paused and self.transport is not None:
                self._reading_paused = False
                self.transport.resume_reading()
        if trailing:
            handler.data_received(trailing)

    @property
    def client(self) -> tuple[str, int] | None:
        return self._client

    # -- errors and timers --------------------------------------------------------------

    def _refuse(self, status: int) -> None:
        """Read no further request: once the queued ones are answered, answer ``status``
        (with an empty body, as Node's http server and engine.io do) and close."""
        self._refusal = Response(status)
        self._state = _LAST
        self._unparsed = b""

    def _set_timer(self, delay: float) -> None:
        deadline = self._loop.time() + delay
        self._timer_at = deadline
        timer = self._timer
        if timer is not None:
            if timer.when() <= deadline:
                return  # it fires first and sleeps on until the deadline
            timer.cancel()
        self._timer = self._loop.call_at(deadline, self._on_timer)

    def _cancel_timer(self) -> None:
        self._timer_at = None  # a pending timer fires once more and finds nothing to do

    def _drop_timer(self) -> None:
        """Cancel for good (the connection ends, or is no longer HTTP)."""
        self._timer_at = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        self._timer = None
        deadline = self._timer_at
        if deadline is None:
            return
        if self._loop.time() < deadline:
            self._timer = self._loop.call_at(deadline, self._on_timer)
            return
        self._timer_at = None
        self._on_timeout()

    def _on_timeout(self) -> None:
        state = self._state
        if state is _LINGERING:
            self._abort()  # the client neither closed nor stopped sending in time
        elif state is _READING and self._waiting is None and not self._queue:
            # a slow request head/body answers 408; an idle keep-alive just closes
            if self._url or self._headers:
                self._refuse(408)
                self._serve_queue()
            else:
                self.close()
