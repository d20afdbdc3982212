"""HTTP messages as the server sees them: a parsed :class:`Request`, the :class:`Response`
to write, and the few answers every part of the server makes (text, an error's JSON).

A Request is built once by the connection's parser (sio_core/http/connection.py) and then
only read; a Response is serialized once, with its Content-Length, and the connection adds
``Connection: close`` when it ends the connection after it (RFC 9112 §9.6).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qsl

from ..exceptions import HTTPError


@dataclass(slots=True)
class Request:
    """An HTTP request as parsed (what ``allow_request`` and the engine's events receive).

    Attributes:
        method: "GET", "POST", ...
        path: the URL's path.
        query: its query parameters.
        headers: the headers, lower-case names (repeated fields joined with ", ").
        body: the body.
        client: the peer's (host, port).
        upgrade: whether it asks for an upgrade (a websocket).
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names; repeated fields joined with ", "
    body: bytes = b""
    client: tuple[str, int] | None = None
    #: the client used TLS: with this server, or (X-Forwarded-Proto from a trusted proxy,
    #: sio_core/http/proxy.py) with the proxy in front of it
    secure: bool = False
    raw_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    raw_url: bytes = b""
    http_version: str = "1.1"
    #: whether the client keeps the connection after this request (RFC 9112 §9.3: HTTP/1.1
    #: unless ``Connection: close``; HTTP/1.0 only with ``Connection: keep-alive``)
    keep_alive: bool = True
    upgrade: bool = False
    #: bytes that followed an upgrade request (the first WebSocket frames)
    trailing: bytes = b""

    def __init__(self, method: str, path: str, query: dict[str, str],
                 headers: dict[str, str], body: bytes = b"",
                 client: tuple[str, int] | None = None, secure: bool = False,
                 raw_headers: list[tuple[bytes, bytes]] | None = None, raw_url: bytes = b"",
                 http_version: str = "1.1", keep_alive: bool = True, upgrade: bool = False,
                 trailing: bytes = b"") -> None:
        # written out (see protocol/engineio.py's Packet)
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.client = client
        self.secure = secure
        self.raw_headers = [] if raw_headers is None else raw_headers
        self.raw_url = raw_url
        self.http_version = http_version
        self.keep_alive = keep_alive
        self.upgrade = upgrade
        self.trailing = trailing

    def parsed(self) -> Request:
        """The request without its bytes (raw headers, body, trailing data): what a session
        keeps of its handshake (``socket.handshake``). dataclasses.replace, written out."""
        return Request(self.method, self.path, self.query, self.headers, b"", self.client,
                       self.secure, [], self.raw_url, self.http_version, self.keep_alive,
                       self.upgrade)


@dataclass(slots=True)
class Response:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    close: bool = False

    def __init__(self, status: int = 200, headers: list[tuple[str, str]] | None = None,
                 body: bytes = b"", close: bool = False) -> None:
        # written out (see protocol/engineio.py's Packet)
        self.status = status
        self.headers = [] if headers is None else headers
        self.body = body
        self.close = close

    def serialize(self, keep_alive: bool) -> bytes:
        """The response as written, in one piece. The head up to the Content-Length's
        value, and what follows it, are made once for each status and headers (a
        long-poll's answers differ only in their bodies) and kept."""
        key = (self.status, keep_alive, *self.headers)
        parts = _HEADS.get(key)
        if parts is None:
            parts = _head(self.status, self.headers, keep_alive)
            if len(_HEADS) >= _MAX_HEADS:
                _HEADS.clear()  # headers that vary (a cookie's sid): keep the usual ones
            _HEADS[key] = parts
        return b"%s%d%s%s" % (parts[0], len(self.body), parts[1], self.body)


_REASONS = {s.value: s.phrase for s in HTTPStatus}
#: the parts of the heads written, by (status, keep-alive, headers): see serialize
_HEADS: dict[tuple[Any, ...], tuple[bytes, bytes]] = {}
_MAX_HEADS = 256


def _head(status: int, headers: list[tuple[str, str]], keep_alive: bool
          ) -> tuple[bytes, bytes]:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}"]
    for name, value in headers:
        lines.append(f"{name}: {value}")
    lines.append("Content-Length: ")
    tail = "\r\n\r\n" if keep_alive else "\r\nConnection: close\r\n\r\n"
    return "\r\n".join(lines).encode("latin-1"), tail.encode("latin-1")


T = TypeVar("T")

_PENDING, _DONE, _CANCELLED = 0, 1, 2


class Deferred(Generic[T]):
    """An answer that comes later (a long-poll's), given by whoever has it with
    :meth:`set_result`. Unlike a Future's, its listener (our HTTP connection, which writes
    the answer) is called there and then: no task, no loop turn. If the wait ends first
    (the client's connection went away), :meth:`cancel` calls ``on_cancel`` at once. Who
    cannot listen awaits it (an ASGI or aiohttp integration), or takes it as a Future
    (:meth:`as_future`: the store's reply to a forwarded GET)."""

    __slots__ = ("_listener", "_on_cancel", "_result", "_state")

    def __init__(self, on_cancel: Callable[[Deferred[T]], None] | None = None) -> None:
        self._state = _PENDING
        self._result: T | None = None
        self._listener: Callable[[T], None] | None = None
        self._on_cancel = on_cancel

    def done(self) -> bool:
        return self._state != _PENDING

    def cancelled(self) -> bool:
        return self._state == _CANCELLED

    def set_result(self, result: T) -> None:
        """The answer: given to the listener at once (a second answer, or one after a
        cancel, is ignored)."""
        if self._state != _PENDING:
            return
        self._state = _DONE
        self._result = result
        listener, self._listener = self._listener, None
        if listener is not None:
            listener(result)

    def cancel(self) -> bool:
        """Give the wait up: ``on_cancel`` is called now. False if it had ended already."""
        if self._state != _PENDING:
            return False
        self._state = _CANCELLED
        self._listener = None
        on_cancel, self._on_cancel = self._on_cancel, None
        if on_cancel is not None:
            on_cancel(self)
        return True

    def listen(self, listener: Callable[[T], None]) -> None:
        """Have ``listener`` called with the answer (at once if it is here)."""
        if self._state == _DONE:
            listener(self._result)  # type: ignore[arg-type]  # a T once done
        elif self._state == _PENDING:
            self._listener = listener

    def as_future(self) -> asyncio.Future[T]:
        """A Future of the answer; cancelling it cancels this."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        if self._state == _CANCELLED:
            future.cancel()
            return future

        def settle(result: T) -> None:
            if not future.done():
                future.set_result(result)

        def withdraw(future: asyncio.Future[T]) -> None:
            if future.cancelled():
                self.cancel()

        self.listen(settle)
        future.add_done_callback(withdraw)
        return future

    def __await__(self) -> Generator[Any, None, T]:
        return self.as_future().__await__()


def text_response(status: int, text: str, content_type: str = "text/plain; charset=UTF-8",
                  headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, [("Content-Type", content_type), *(headers or [])],
                    text.encode("utf-8"))


def error_response(exc: HTTPError, headers: list[tuple[str, str]] | None = None,
                   close: bool = False) -> Response:
    """The answer to a refused request: the error's status, with its JSON body
    (``{"code": N, "message": ...}``, fixed per class: never the exception's text) when it
    has one."""
    body = exc.body()
    if body is None:
        return Response(exc.status, list(headers or []), b"", close=close)
    return Response(exc.status, [("Content-Type", "application/json"), *(headers or [])],
                    json.dumps(body, separators=(",", ":")).encode(), close=close)


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
