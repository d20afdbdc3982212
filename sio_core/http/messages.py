"""HTTP messages as the server sees them: a parsed :class:`Request`, the :class:`Response`
to write, and the few answers every part of the server makes (text, an error's JSON).

A Request is built once by the connection's parser (sio_core/http/connection.py) and then
only read; a Response is serialized once, with its Content-Length, and the connection adds
``Connection: close`` when it ends the connection after it (RFC 9112 §9.6).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from http import HTTPStatus
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
