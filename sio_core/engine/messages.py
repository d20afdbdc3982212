"""The engine's messages between workers: forwarding a session's requests to its owner.

How this works: each message is a frozen dataclass with its kind (:class:`EngineKind`, the
kinds the engine registers on the store), ``to_wire()`` (a short list of plain msgpack
values: the store packs it into its envelope) and ``from_wire(value)``, which returns the
message or raises :class:`~sio_core.stores.base.BadMessage` (the store drops the envelope
and logs it). Everything that crosses the bus for the engine is encoded and checked here,
and nowhere else. The payloads' version is the envelope's (``stores.base.VERSION``).

- The receiving worker asks the owner: :class:`Poll`, :class:`Post`, :class:`WsOpen` (each
  answered by a :class:`Verdict`), :class:`PollAbort` when its client went away.
- A retiring worker hands a polling handshake to another worker: :class:`Open` (answered
  by a :class:`Verdict` with the open packet).
- A relayed websocket: :class:`WsIn` (a frame from the client, proxy -> owner),
  :class:`WsOut` (frames to the client, owner -> proxy), :class:`WsClose` (either way).
- ``ALIVE``: the owner of a session asks the worker that relayed its last answer whether
  it is still there (no payload; answered ``True``: see polling.py on held GETs).
- ``METRICS``: a scrape asks the other workers of its machine for their metric families
  (no payload; the answer is checked by sio_core/engine/metrics/endpoint.py's parse_reply).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..stores.base import BadMessage


class EngineKind(enum.StrEnum):
    POLL = "poll"
    POLL_ABORT = "poll_abort"
    POST = "post"
    WS_OPEN = "ws_open"
    WS_IN = "ws_in"
    WS_OUT = "ws_out"
    WS_CLOSE = "ws_close"
    OPEN = "open"
    ALIVE = "alive"
    METRICS = "metrics"


def _fields(value: Any, count: int, kind: str) -> list[Any]:
    if not isinstance(value, list) or len(value) != count:
        raise BadMessage(f"malformed {kind}")
    return value


def _str(value: Any, kind: str) -> str:
    if not isinstance(value, str):
        raise BadMessage(f"malformed {kind}")
    return value


def _int(value: Any, kind: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadMessage(f"malformed {kind}")
    return value


@dataclass(frozen=True, slots=True)
class Poll:
    """A GET for ``sid``: the owner long-polls as if it were its own. ``token`` names it for
    a PollAbort (unique per relaying worker)."""

    KIND: ClassVar[EngineKind] = EngineKind.POLL
    sid: str
    token: int

    def to_wire(self) -> list[Any]:
        return [self.sid, self.token]

    @staticmethod
    def from_wire(value: Any) -> Poll:
        sid, token = _fields(value, 2, "poll")
        return Poll(_str(sid, "poll"), _int(token, "poll"))


@dataclass(frozen=True, slots=True)
class PollAbort:
    """The client of the relayed GET ``token`` went away."""

    KIND: ClassVar[EngineKind] = EngineKind.POLL_ABORT
    token: int

    def to_wire(self) -> list[Any]:
        return [self.token]

    @staticmethod
    def from_wire(value: Any) -> PollAbort:
        (token,) = _fields(value, 1, "poll_abort")
        return PollAbort(_int(token, "poll_abort"))


@dataclass(frozen=True, slots=True)
class Post:
    """A POST's body for ``sid``."""

    KIND: ClassVar[EngineKind] = EngineKind.POST
    sid: str
    body: bytes

    def to_wire(self) -> list[Any]:
        return [self.sid, self.body]

    @staticmethod
    def from_wire(value: Any) -> Post:
        sid, body = _fields(value, 2, "post")
        if not isinstance(body, bytes):
            raise BadMessage("malformed post")
        return Post(_str(sid, "post"), body)


@dataclass(frozen=True, slots=True)
class WsOpen:
    """A websocket upgrade for ``sid``, accepted by the proxy ``proxy_id`` if the owner
    agrees."""

    KIND: ClassVar[EngineKind] = EngineKind.WS_OPEN
    sid: str
    proxy_id: str

    def to_wire(self) -> list[Any]:
        return [self.sid, self.proxy_id]

    @staticmethod
    def from_wire(value: Any) -> WsOpen:
        sid, proxy_id = _fields(value, 2, "ws_open")
        return WsOpen(_str(sid, "ws_open"), _str(proxy_id, "ws_open"))


@dataclass(frozen=True, slots=True)
class WsIn:
    """One frame from the client of proxy ``proxy_id``."""

    KIND: ClassVar[EngineKind] = EngineKind.WS_IN
    proxy_id: str
    data: str | bytes

    def to_wire(self) -> list[Any]:
        return [self.proxy_id, self.data]

    @staticmethod
    def from_wire(value: Any) -> WsIn:
        proxy_id, data = _fields(value, 2, "ws_in")
        if not isinstance(data, str | bytes):
            raise BadMessage("malformed ws_in")
        return WsIn(_str(proxy_id, "ws_in"), data)


@dataclass(frozen=True, slots=True)
class WsOut:
    """Frames for the client of proxy ``proxy_id``; those at the indices in ``plain`` are
    never compressed (``compress(False)``)."""

    KIND: ClassVar[EngineKind] = EngineKind.WS_OUT
    proxy_id: str
    frames: list[str | bytes]
    plain: list[int] = field(default_factory=list)

    def to_wire(self) -> list[Any]:
        return [self.proxy_id, self.frames, self.plain]

    @staticmethod
    def from_wire(value: Any) -> WsOut:
        proxy_id, frames, plain = _fields(value, 3, "ws_out")
        if (not isinstance(frames, list) or not all(isinstance(f, str | bytes) for f in frames)
                or not isinstance(plain, list) or not all(type(i) is int for i in plain)):
            raise BadMessage("malformed ws_out")
        return WsOut(_str(proxy_id, "ws_out"), frames, plain)


@dataclass(frozen=True, slots=True)
class WsClose:
    """The websocket of proxy ``proxy_id`` is closed (by its client, or by the owner)."""

    KIND: ClassVar[EngineKind] = EngineKind.WS_CLOSE
    proxy_id: str

    def to_wire(self) -> list[Any]:
        return [self.proxy_id]

    @staticmethod
    def from_wire(value: Any) -> WsClose:
        (proxy_id,) = _fields(value, 1, "ws_close")
        return WsClose(_str(proxy_id, "ws_close"))


def _str_dict(value: Any, kind: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise BadMessage(f"malformed {kind}")
    return value


@dataclass(frozen=True, slots=True)
class Open:
    """A polling handshake that reached a retiring worker, for the worker ``sid`` names
    (the retiring one chose it): open the session as if the handshake were its own. What
    it carries of the request is what the session keeps of it (``socket.handshake``)."""

    KIND: ClassVar[EngineKind] = EngineKind.OPEN
    sid: str
    path: str
    raw_url: bytes
    query: dict[str, str]
    headers: dict[str, str]
    client: tuple[str, int] | None
    secure: bool

    def to_wire(self) -> list[Any]:
        client = list(self.client) if self.client is not None else None
        return [self.sid, self.path, self.raw_url, self.query, self.headers, client,
                self.secure]

    @staticmethod
    def from_wire(value: Any) -> Open:
        sid, path, raw_url, query, headers, client, secure = _fields(value, 7, "open")
        if client is not None:
            host, port = _fields(client, 2, "open")
            client = (_str(host, "open"), _int(port, "open"))
        if not isinstance(raw_url, bytes) or not isinstance(secure, bool):
            raise BadMessage("malformed open")
        return Open(_str(sid, "open"), _str(path, "open"), raw_url, _str_dict(query, "open"),
                    _str_dict(headers, "open"), client, secure)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The owner's answer to a Poll, Post, WsOpen or Open: the HTTP status, the Engine.IO error
    code of a refusal (None: none), the body of a poll's answer and whether it may be
    compressed (not when every packet in it said ``compress(False)``), and for a websocket
    accepted (101) whether to close it at once (the session has one already)."""

    status: int
    code: int | None = None
    body: bytes = b""
    close: bool = False
    compress: bool = True

    def to_wire(self) -> list[Any]:
        return [self.status, self.code, self.body, self.close, self.compress]

    @staticmethod
    def from_wire(value: Any) -> Verdict:
        status, code, body, close, compress = _fields(value, 5, "verdict")
        if (not (code is None or isinstance(code, int)) or not isinstance(body, bytes)
                or not isinstance(close, bool) or not isinstance(compress, bool)):
            raise BadMessage("malformed verdict")
        return Verdict(_int(status, "verdict"), code, body, close, compress)
