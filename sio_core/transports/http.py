"""HTTP/1.1 server connections on asyncio, parsed by httptools (llhttp, Node.js's parser).

How this works: one :class:`HTTPConnection` per TCP connection feeds bytes to the parser,
whose callbacks build a :class:`Request` and enforce the limits of
:class:`~sio_core.config.Config` (request line, header count and bytes, body size, slow
requests). Complete requests are handled one at a time, in order (keep-alive and
pipelining), by ``handler(request, connection)``, called at once: it returns the
Response, or None once it has taken the connection over (a WebSocket upgrade, through
:meth:`HTTPConnection.take_over`), or an awaitable of either when the answer must wait
(a long-poll, a request forwarded to another worker). Only then is a task made, and if
the connection is lost meanwhile it is cancelled (a pending long-poll must learn that
its client is gone). Most requests so cost no task and no extra loop turn.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import parse_qsl

import httptools

from ..config import Config

logger = logging.getLogger("sio_core.http")


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names; repeated fields joined with ", "
    body: bytes = b""
    client: tuple[str, int] | None = None
    raw_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    raw_url: bytes = b""
    http_version: str = "1.1"
    upgrade: bool = False
    #: bytes that followed an upgrade request (the first WebSocket frames)
    trailing: bytes = b""


@dataclass(slots=True)
class Response:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    close: bool = False

    def serialize(self, keep_alive: bool) -> bytes:
        reason = _REASONS.get(self.status, "Unknown")
        lines = [f"HTTP/1.1 {self.status} {reason}"]
        for name, value in self.headers:
            lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {len(self.body)}")
        if not keep_alive:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head + self.body


_REASONS = {s.value: s.phrase for s in HTTPStatus}


def text_response(status: int, text: str, content_type: str = "text/plain; charset=UTF-8",
                  headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, [("Content-Type", content_type), *(headers or [])],
                    text.encode("utf-8"))


class ConnectionHandler(Protocol):
    """What takes a connection over after an upgrade."""

    def data_received(self, data: bytes) -> None: ...

    def connection_lost(self, exc: Exception | None) -> None: ...

    def pause_writing(self) -> None: ...

    def resume_writing(self) -> None: ...


Handler = Callable[[Request, "HTTPConnection"],
                   "Response | Awaitable[Response | None] | None"]


class _Refuse(Exception):
    """Raised inside a parser callback to stop parsing and answer with a status."""

    def __init__(self, status: int) -> None:
        self.status = status


class HTTPConnection(asyncio.Protocol):
    # slots: thousands of these live as long as their websockets do
    __slots__ = ("_body", "_body_size", "_client", "_closing", "_config", "_connections",
                 "_drain_waiter", "_handler", "_header_bytes", "_headers", "_loop", "_parser",
                 "_pending", "_queue", "_taken_over", "_task", "_timer", "_timer_at", "_url",
                 "_write_paused", "transport")

    def __init__(self, handler: Handler, config: Config, *,
                 connections: set[HTTPConnection] | None = None) -> None:
        self._handler = handler
        self._config = config
        self._loop = asyncio.get_running_loop()
        self._connections = connections
        self.transport: asyncio.Transport | None = None
        #: None once the connection is taken over: nothing after an upgrade is HTTP
        self._parser: Any = httptools.HttpRequestParser(self)
        self._client: tuple[str, int] | None = None
        # the request being parsed
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._body_size = 0
        # complete requests waiting for the handler, and the handler's task
        self._queue: list[Request] = []  # a few at most: see on_message_complete
        self._task: asyncio.Task[None] | None = None
        #: the awaitable the task will await, until it starts: a task cancelled before its
        #: first step never awaits it, so connection_lost closes it
        self._pending: Awaitable[Response | None] | None = None
        # One timer, re-armed lazily: each request moves the deadline (_timer_at) and the
        # timer, when it fires early, sleeps on until it; a call_later plus a cancel per
        # request would cost more than parsing the request does.
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._taken_over: ConnectionHandler | None = None
        self._closing = False
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self._client = (str(peer[0]), int(peer[1]))
        if self._connections is not None:
            self._connections.add(self)
        self._set_timer(self._config.request_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._drop_timer()
        if self._connections is not None:
            self._connections.discard(self)
        if self._taken_over is not None:
            self._taken_over.connection_lost(exc)
            return
        if self._task is not None and not self._task.done():
            self._task.cancel()
        pending, self._pending = self._pending, None
        if inspect.iscoroutine(pending):
            pending.close()  # its task never started: nothing ran, nothing to undo
        elif isinstance(pending, asyncio.Future):
            pending.cancel()  # a request taken in at once (a long-poll): withdrawn
        self._queue.clear()
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True
        if self._taken_over is not None:
            self._taken_over.pause_writing()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._taken_over is not None:
            self._taken_over.resume_writing()
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._taken_over is not None:
            self._taken_over.data_received(data)
            return
        if self._closing:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args and isinstance(exc.args[0], int) else len(data)
            if self._queue:
                self._queue[-1].upgrade = True
                self._queue[-1].trailing = data[offset:]
            # nothing after an upgrade request is HTTP any more: stop reading until the
            # handler decides (it takes the connection over, or answers and closes)
            assert self.transport is not None
            self.transport.pause_reading()
        except httptools.HttpParserCallbackError as exc:
            ctx = exc.__context__
            status = ctx.status if isinstance(ctx, _Refuse) else 400
            self._refuse(status)
            return
        except httptools.HttpParserError:
            self._refuse(400)
            return
        self._serve_queue()

    # -- parser callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._header_bytes = 0
        self._body = []
        self._body_size = 0
        self._set_timer(self._config.request_timeout)

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self._config.max_request_line:
            raise _Refuse(414)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        self._header_bytes += len(name) + len(value) + 4
        if (len(self._headers) > self._config.max_header_count
                or self._header_bytes > self._config.max_header_bytes):
            raise _Refuse(431)

    def on_headers_complete(self) -> None:
        length = self._parser_content_length()
        if length is not None and length > self._config.max_payload:
            raise _Refuse(413)

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self._config.max_payload:
            raise _Refuse(413)
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._cancel_timer()
        parsed = httptools.parse_url(self._url)
        path = parsed.path.decode("latin-1")
        raw_query = parsed.query or b""
        query = parse_query(raw_query)
        headers: dict[str, str] = {}
        for name, value in self._headers:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        self._queue.append(Request(
            method=self._parser.get_method().decode("latin-1"),
            path=path,
            query=query,
            headers=headers,
            body=b"".join(self._body),
            client=self._client,
            raw_headers=self._headers,
            raw_url=bytes(self._url),
            http_version=self._parser.get_http_version(),
        ))
        self._body = []
        self._url = b""
        self._headers = []
        # pipelining: do not buffer more than a few requests ahead of the handler
        if len(self._queue) > 8 and self.transport is not None:
            self.transport.pause_reading()

    def _parser_content_length(self) -> int | None:
        for name, value in self._headers:
            if name.lower() == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return None
        return None

    # -- handling -----------------------------------------------------------------------

    def _serve_queue(self, answered: bool = False) -> None:
        """Answer the queued requests, in order, until one must wait (it gets a task).
        Once the queue is answered the connection is idle: the keep-alive timeout runs."""
        if self._task is not None and not self._task.done():
            return  # the waiting one's task carries on with the queue when it is answered
        self._task = None
        while self._queue and not self._closing:
            request = self._queue.pop(0)
            keep_alive = self._parser.should_keep_alive() and not request.upgrade
            try:
                result = self._handler(request, self)
            except Exception:
                logger.exception("error handling %s %s", request.method, request.path)
                result = text_response(500, "Internal Server Error")
            if result is not None and not isinstance(result, Response):
                self._pending = result
                self._task = self._loop.create_task(self._wait(request, result, keep_alive))
                return
            if not self._answer(request, result, keep_alive):
                return
            answered = True
        if answered and not self._closing:
            self._set_timer(self._config.keepalive_timeout)

    async def _wait(self, request: Request, pending: Awaitable[Response | None],
                    keep_alive: bool) -> None:
        self._pending = None
        try:
            response = await pending
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("error handling %s %s", request.method, request.path)
            response = text_response(500, "Internal Server Error")
        if self._answer(request, response, keep_alive):
            self._task = None
            self._serve_queue(answered=True)

    def _answer(self, request: Request, response: Response | None, keep_alive: bool) -> bool:
        """Write the response; whether the connection goes on serving HTTP."""
        if response is None:  # taken over
            return False
        if response.close or request.upgrade:
            keep_alive = False
        self.write(response.serialize(keep_alive))
        if not keep_alive:
            self.close()
            return False
        if self.transport is not None and not self._closing:
            self.transport.resume_reading()
        return True

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self._closing:
            self.transport.write(data)

    async def drain(self) -> None:
        if self._write_paused and not self._closing:
            self._drain_waiter = self._loop.create_future()
            await self._drain_waiter

    def close(self) -> None:
        if self.transport is not None and not self._closing:
            self._closing = True
            self._drop_timer()
            self.transport.close()

    def take_over(self, handler: ConnectionHandler, trailing: bytes = b"") -> None:
        """Hand the raw connection to ``handler`` (after an upgrade)."""
        self._drop_timer()
        self._taken_over = handler
        # what only HTTP needed: released, as the connection may now live for hours
        self._parser = None
        self._task = None  # the handler's task, if any: it returns right after this
        self._headers = []
        if self.transport is not None and not self._closing:
            self.transport.resume_reading()
        if trailing:
            handler.data_received(trailing)

    @property
    def client(self) -> tuple[str, int] | None:
        return self._client

    # -- errors and timers --------------------------------------------------------------

    def _refuse(self, status: int) -> None:
        self.write(text_response(status, _REASONS.get(status, "Bad Request")).serialize(False))
        self.close()

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
        if self._task is not None and not self._task.done():
            return  # a handler is running (e.g. a long-poll): not idle
        if self._taken_over is None:
            # a slow request head/body answers 408; an idle keep-alive just closes
            if self._url or self._headers:
                self._refuse(408)
            else:
                self.close()


def parse_query(raw: bytes) -> dict[str, str]:
    """``dict(parse_qsl(...))`` of a query string, blank values kept; the usual Engine.IO
    query (``EIO=4&transport=polling&t=...&sid=...``) has nothing to unescape and is
    split directly, at a quarter of parse_qsl's cost."""
    text = raw.decode("latin-1")
    if "%" in text or "+" in text:
        try:
            return dict(parse_qsl(text, keep_blank_values=True))
        except ValueError:
            return {}
    query: dict[str, str] = {}
    for part in text.split("&"):
        if part:
            name, _, value = part.partition("=")
            query[name] = value
    return query


def serve_kwargs(handler: Handler, config: Config,
                 connections: set[HTTPConnection]) -> dict[str, Any]:
    """``protocol_factory`` for loop.create_server."""
    return {"protocol_factory": lambda: HTTPConnection(handler, config, connections=connections)}
