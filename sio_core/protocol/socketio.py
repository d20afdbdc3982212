"""Sans-I/O codec for Socket.IO v5 packets (carried inside Engine.IO ``message`` packets).

A packet on the wire is one text header, then zero or more binary attachments::

    <type>[<attachments>-][<namespace>,][<ack id>][<JSON>]

:func:`encode` turns a :class:`Packet` into that list: the JSON is written compactly and without
ASCII escaping, as the JavaScript client's ``JSON.stringify`` writes it (byte for byte, except that
Python spells some floats differently: ``1.0`` for ``1``, ``1e+16``). Bytes found in an EVENT or
ACK payload are swapped for ``{"_placeholder":true,"num":N}`` while the JSON is
written (one pass), and the packet goes out as BINARY_EVENT / BINARY_ACK with the buffers after it.

:class:`Decoder` reads the header left to right, parses the JSON, checks the payload has the shape
its type requires, and returns a :class:`Packet`. A binary packet is held until all of its
attachments have arrived, then the placeholders are replaced by the buffers, in place. Where the
reference parser (npm ``socket.io-parser``) is lax, this one is stricter, never laxer: an EVENT
needs a payload and a string name, an ACK a payload and an ack id, ack ids stay below 2**53, numbers
are finite, placeholders are checked as soon as the header arrives, each attachment is referenced by
exactly one placeholder, and the JSON nests at most ``max_depth`` deep.

Why exactly one placeholder per attachment: the reference parser lets many placeholders name the
same attachment, so a 1 MB attachment named 30,000 times is a packet of 2 MB that decodes to data
worth 30 GB to any code that copies or re-sends it (an echo, a broadcast). Every encoder of the
protocol (socket.io-parser's ``deconstructPacket``, python-socketio's, :func:`encode`) writes one
placeholder per buffer, numbered in the order it meets them, so honest peers never send a repeat
or an unused attachment; refusing both makes a decoded packet exactly as large as what was received.

Decoding fails closed: any input either decodes or raises
:class:`~sio_core.exceptions.SocketIOProtocolError` (the connection carrying it is then closed).
Messages of that error are fixed strings and never quote the input.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sio_core.exceptions import SocketIOProtocolError

__all__ = [
    "MAX_ACK_ID",
    "RESERVED_EVENTS",
    "Decoder",
    "Packet",
    "PacketType",
    "encode",
]


class PacketType(enum.IntEnum):
    CONNECT = 0
    DISCONNECT = 1
    EVENT = 2
    ACK = 3
    CONNECT_ERROR = 4
    BINARY_EVENT = 5
    BINARY_ACK = 6


#: Event names applications may not emit (they are the library's own).
RESERVED_EVENTS: frozenset[str] = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)

#: The largest ack id accepted or written: ``Number.MAX_SAFE_INTEGER``, the largest integer the
#: JavaScript client holds exactly. Its 16 digits also bound the work spent reading an ack id.
MAX_ACK_ID = 2**53 - 1
_MAX_ACK_ID_DIGITS = len(str(MAX_ACK_ID))

# Bounds the digits read for an attachment count whatever max_attachments is, so int() never
# sees a huge string.
_MAX_COUNT_DIGITS = 9


@dataclass(slots=True)
class Packet:
    """One Socket.IO packet.

    ``data`` is the decoded JSON value (``None`` when the packet has no payload), with bytes put
    back where a binary packet had placeholders. ``id`` is the ack id.

    A decoded packet keeps the type it had on the wire, so a binary event arrives as BINARY_EVENT.
    :func:`encode` treats EVENT and BINARY_EVENT (ACK and BINARY_ACK) alike and picks the wire type
    from whether ``data`` holds bytes.

    A value, not frozen, with ``__init__`` written out: see protocol/engineio.py's Packet.
    """

    type: PacketType
    namespace: str = "/"
    data: Any = None
    id: int | None = None

    def __init__(self, type: PacketType, namespace: str = "/", data: Any = None,
                 id: int | None = None) -> None:
        self.type = type
        self.namespace = namespace
        self.data = data
        self.id = id


_TYPES: dict[str, PacketType] = {str(t.value): t for t in PacketType}
_ACK_CAPABLE = frozenset(
    {PacketType.EVENT, PacketType.ACK, PacketType.BINARY_EVENT, PacketType.BINARY_ACK}
)
_BINARY = frozenset({PacketType.BINARY_EVENT, PacketType.BINARY_ACK})
_TO_BINARY = {
    PacketType.EVENT: PacketType.BINARY_EVENT,
    PacketType.BINARY_EVENT: PacketType.BINARY_EVENT,
    PacketType.ACK: PacketType.BINARY_ACK,
    PacketType.BINARY_ACK: PacketType.BINARY_ACK,
}
_TO_TEXT = {
    PacketType.BINARY_EVENT: PacketType.EVENT,
    PacketType.BINARY_ACK: PacketType.ACK,
}

#: the header of a packet without attachments, by type (a BINARY_* without bytes goes out
#: as its plain type)
_TEXT_HEADERS = {t: str(_TO_TEXT.get(t, t).value) for t in PacketType}

_ASCII_DIGITS_RE = re.compile(r"[0-9]+")
_SURROGATE_RE = re.compile("[\\ud800-\\udfff]")  # re's escapes: mypyc takes no surrogate literal

_BytesLike = (bytes, bytearray, memoryview)


# --------------------------------------------------------------------------------------- encoding


class _Attachments:
    """``json.dumps`` ``default`` hook: swaps each bytes value for the next placeholder.

    The C encoder calls it depth first, in the order it writes values, so placeholder N is the
    N-th buffer collected.
    """

    __slots__ = ("buffers",)

    def __init__(self) -> None:
        self.buffers: list[bytes] = []

    def __call__(self, value: object) -> dict[str, Any]:
        if isinstance(value, _BytesLike):
            self.buffers.append(bytes(value))
            return {"_placeholder": True, "num": len(self.buffers) - 1}
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _refuse(value: object) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class _HasBinary(Exception):
    """Raised by the plain encoder's ``default`` hook: the data holds bytes."""


def _no_binary(value: object) -> Any:
    if isinstance(value, _BytesLike):
        raise _HasBinary
    return _refuse(value)


#: what the C encoder must write before it is used (see _encoder)
_PROBE = ["\u00e9\n", {"a": [1, -2.5, None, True, False], "": {}}, []]
_PROBE_JSON = '["\u00e9\\n",{"a":[1,-2.5,null,true,false],"":{}},[]]'


def _encoder(default: Any) -> Callable[[Any], str]:
    """``json.dumps`` with ``_dumps``' options but ``ensure_ascii=False``, built once: the
    C encoder that ``JSONEncoder.encode`` makes anew on every call (with a dict for its
    circular check: ~1.4 us of the ~2-3 us of a small event's JSON), made once and called
    directly. It does not check for circular references: one ends in RecursionError, and is
    then encoded again by the JSONEncoder, to raise what ``json.dumps`` raises. Where the C
    encoder is missing or writes otherwise (checked once, on ``_PROBE``), the JSONEncoder's
    ``encode`` itself."""
    encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                               default=default)
    try:
        make: Any = getattr(json.encoder, "c_make_encoder", None)
        iterencode = make(None, default, json.encoder.encode_basestring,
                          None, ":", ",", False, False, False)
        if "".join(iterencode(_PROBE, 0)) != _PROBE_JSON:
            return encoder.encode
    except TypeError:  # (None: no C encoder; or another signature)
        return encoder.encode
    join = "".join

    def encode(data: Any) -> str:
        try:
            return join(iterencode(data, 0))
        except RecursionError:
            return encoder.encode(data)  # circular: its ValueError; too deep: RecursionError

    return encode


#: the common case, written in one pass: data without bytes (the hook stops at the first)
_PLAIN = _encoder(_no_binary)
_NO_ATTACHMENTS = _encoder(_refuse)


def _dumps(data: Any, default: Any, ensure_ascii: bool) -> str:
    # allow_nan=False: JSON.parse rejects NaN/Infinity, and a client that cannot parse a packet
    # drops the connection. Better to fail at the emit that caused it.
    return json.dumps(
        data,
        separators=(",", ":"),
        ensure_ascii=ensure_ascii,
        allow_nan=False,
        default=default,
    )


def encode(packet: Packet) -> list[str | bytes]:
    """Wire form of ``packet``: the text header, then one ``bytes`` per attachment.

    EVENT and ACK whose ``data`` holds bytes, bytearray or memoryview anywhere (lists, tuples,
    dicts, nested) go out as BINARY_EVENT / BINARY_ACK with placeholders; BINARY_* without bytes
    go out as plain EVENT / ACK. ``data`` of ``None`` means no payload.

    Raises ``ValueError`` or ``TypeError`` for a packet that cannot be written faithfully: a
    namespace not starting with ``/`` or containing ``,``, an ack id that is not an int in
    ``0..MAX_ACK_ID``, data that is not JSON-able (NaN and infinities included).
    """
    ptype = packet.type
    namespace = packet.namespace
    ack_id = packet.id
    data = packet.data

    payload = ""
    buffers: list[bytes] = []
    if data is not None:
        if ptype in _ACK_CAPABLE:
            try:
                payload = _PLAIN(data)
            except _HasBinary:
                hook = _Attachments()
                payload = _dumps(data, hook, ensure_ascii=False)
                buffers = hook.buffers
            if not payload.isascii() and _SURROGATE_RE.search(payload):
                # A lone surrogate (e.g. from a client's "\ud800" escape) cannot be written as
                # UTF-8; escaped, it is valid JSON that JSON.parse reads back to the same string.
                hook = _Attachments()
                payload = _dumps(data, hook, ensure_ascii=True)
                buffers = hook.buffers
        else:
            payload = _NO_ATTACHMENTS(data)
            if not payload.isascii() and _SURROGATE_RE.search(payload):
                payload = _dumps(data, _refuse, ensure_ascii=True)

    if buffers:
        ptype = _TO_BINARY[ptype]
        header = f"{ptype.value}{len(buffers)}-"
    else:
        header = _TEXT_HEADERS[ptype]

    if namespace != "/":
        if not namespace.startswith("/") or "," in namespace:
            raise ValueError("a namespace starts with '/' and contains no ','")
        header += namespace + ","

    if ack_id is not None:
        # the field's own type (the mypyc build makes the narrowed ack_id a plain int): True
        # is no ack id
        if type(packet.id) is not int or not 0 <= ack_id <= MAX_ACK_ID:
            raise ValueError(f"an ack id is an int in 0..{MAX_ACK_ID}")
        header += str(ack_id)

    result: list[str | bytes] = [header + payload]
    result.extend(buffers)
    return result


# --------------------------------------------------------------------------------------- decoding


def _reject_constant(name: str) -> Any:
    # NaN, Infinity, -Infinity: Python's json reads them, JSON.parse does not.
    raise ValueError("not JSON")


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400: could never be written back as JSON
        raise ValueError("not a finite number")
    return value


_JSON = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_parse_float)


def _parse_json(text: str, pos: int) -> Any:
    """The JSON value that ``text`` holds from ``pos`` to its end, as ``json.loads`` reads it.

    A payload that starts and ends with its value (every client writes it so) is read in
    place, without the copy of ``text[pos:]`` and the two whitespace scans of ``decode``;
    anything else (surrounding whitespace, trailing data, bad JSON) is read by ``decode``,
    so what is accepted and what raises stays exactly ``json.loads``'s."""
    try:
        data, stop = _JSON.raw_decode(text, pos)
    except ValueError:
        stop = -1
    if stop == len(text):
        return data
    return _JSON.decode(text[pos:])

# Where a placeholder sits: (the list or dict holding it, its index or key, the attachment number).
_Slot = tuple[Any, Any, int]


def _find_placeholders(data: Any, count: int) -> list[_Slot]:
    """Every placeholder in ``data``: one per attachment, each of ``0..count-1`` exactly once.

    Iterative, so a deeply nested payload (which ``json`` already accepted) cannot raise
    RecursionError here. Any object with ``"_placeholder": true`` is a placeholder, as in the
    reference parser; its other keys are ignored. Stricter than the reference, which accepts
    repeats and unused attachments (see the module docstring for why).
    """
    slots: list[_Slot] = []
    seen: set[int] = set()
    stack: list[Any] = [data]
    while stack:
        node = stack.pop()
        items = enumerate(node) if isinstance(node, list) else node.items()
        for key, value in items:
            if isinstance(value, dict):
                if value.get("_placeholder") is True:
                    num = value.get("num")
                    if type(num) is not int or not 0 <= num < count or num in seen:
                        raise SocketIOProtocolError("invalid attachment placeholder")
                    seen.add(num)
                    slots.append((node, key, num))
                else:
                    stack.append(value)
            elif isinstance(value, list):
                stack.append(value)
    if len(slots) != count:
        raise SocketIOProtocolError("attachment without a placeholder")
    return slots


def deeper_than(data: Any, limit: int) -> bool:
    """Whether lists and dicts nest more than ``limit`` deep in ``data`` (itself is level 1).

    Level by level, iterative; ``json`` made every container, so the exact types suffice.
    """
    level: list[Any] = [data]
    for _ in range(limit):
        below: list[Any] = []
        append = below.append
        for node in level:
            for value in node if type(node) is list else node.values():
                if type(value) is list or type(value) is dict:
                    append(value)
        if not below:
            return False
        level = below
    return True


class _PendingBinary:
    """A binary packet whose header arrived and whose attachments are being collected."""

    __slots__ = ("ack_id", "buffers", "count", "data", "namespace", "slots", "type")

    def __init__(
        self,
        ptype: PacketType,
        namespace: str,
        data: Any,
        ack_id: int | None,
        count: int,
        slots: list[_Slot],
    ) -> None:
        self.type = ptype
        self.namespace = namespace
        self.data = data
        self.ack_id = ack_id
        self.count = count
        self.slots = slots
        self.buffers: list[bytes] = []

    def complete(self) -> Packet:
        buffers = self.buffers
        for container, key, num in self.slots:
            container[key] = buffers[num]
        return Packet(self.type, self.namespace, self.data, self.ack_id)


class Decoder:
    """One per connection: holds a binary packet until all its attachments arrived.

    ``max_attachments`` caps the attachment count a binary packet may announce (and so its
    placeholders, one per attachment), ``max_namespace_length`` the length of a namespace (its
    ``/`` included), ``max_depth`` how deep the JSON payload may nest (the payload itself is level
    1); ``None`` means unlimited. After a :class:`SocketIOProtocolError` the decoder holds nothing,
    but the connection should be closed anyway.
    """

    __slots__ = ("_depth_check_from", "_max_attachments", "_max_depth", "_max_namespace_length",
                 "_pending")

    def __init__(
        self,
        *,
        max_attachments: int | None = 10,
        max_namespace_length: int | None = 256,
        max_depth: int | None = 100,
    ) -> None:
        self._max_attachments = max_attachments
        self._max_namespace_length = max_namespace_length
        self._max_depth = max_depth
        # Nesting deeper than max_depth takes max_depth + 1 pairs of brackets: a shorter payload
        # (most packets) needs no check at all.
        self._depth_check_from = None if max_depth is None else 2 * (max_depth + 1)
        self._pending: _PendingBinary | None = None

    @property
    def awaiting(self) -> int:
        """Attachments still awaited (0 when no binary packet is held)."""
        pending = self._pending
        if pending is None:
            return 0
        return pending.count - len(pending.buffers)

    def feed_text(self, data: str) -> Packet | None:
        """Decode a text packet: a :class:`Packet`, or ``None`` if it awaits attachments."""
        if self._pending is not None:
            self._pending = None
            raise SocketIOProtocolError("text packet while binary attachments are awaited")
        return self._decode(data)

    def feed_binary(self, data: bytes | bytearray | memoryview) -> Packet | None:
        """Take one attachment: the completed :class:`Packet` after the last one, else ``None``."""
        pending = self._pending
        if pending is None:
            raise SocketIOProtocolError("binary data while no attachment is awaited")
        if type(data) is bytes:
            attachment = data
        elif isinstance(data, _BytesLike):
            attachment = bytes(data)
        else:
            raise TypeError("an attachment is bytes")
        pending.buffers.append(attachment)
        if len(pending.buffers) < pending.count:
            return None
        self._pending = None
        return pending.complete()

    def _decode(self, text: str) -> Packet | None:
        ptype = _TYPES.get(text[:1])
        if ptype is None:
            raise SocketIOProtocolError("unknown packet type")
        end = len(text)
        pos = 1

        count = 0
        if ptype in _BINARY:
            dash = text.find("-", pos, pos + _MAX_COUNT_DIGITS + 1)
            if dash == -1 or not _ASCII_DIGITS_RE.fullmatch(text, pos, dash):
                raise SocketIOProtocolError("invalid attachment count")
            count = int(text[pos:dash])
            # The reference parser refuses a binary packet with no attachment too.
            if count == 0:
                raise SocketIOProtocolError("invalid attachment count")
            if self._max_attachments is not None and count > self._max_attachments:
                raise SocketIOProtocolError("too many attachments")
            pos = dash + 1

        namespace = "/"
        if text.startswith("/", pos):
            limit = self._max_namespace_length
            # Bounded search: a missing comma is noticed without scanning the whole packet.
            stop = end if limit is None else pos + limit + 1
            comma = text.find(",", pos, stop)
            if comma == -1:
                # No comma: the namespace runs to the end ("0/admin"), if the packet ends there.
                if limit is not None and end - pos > limit:
                    raise SocketIOProtocolError("namespace too long")
                namespace = text[pos:]
                pos = end
            else:
                namespace = text[pos:comma]
                pos = comma + 1

        ack_id: int | None = None
        # One digit past the limit is enough to know there are too many.
        digits = _ASCII_DIGITS_RE.match(text, pos, pos + _MAX_ACK_ID_DIGITS + 1)
        stop = digits.end() if digits is not None else pos
        if stop > pos:
            if ptype not in _ACK_CAPABLE:
                raise SocketIOProtocolError("ack id on a packet type that takes none")
            if stop - pos > _MAX_ACK_ID_DIGITS:
                raise SocketIOProtocolError("ack id too long")
            ack_id = int(text[pos:stop])
            if ack_id > MAX_ACK_ID:
                raise SocketIOProtocolError("ack id too large")
            pos = stop

        if pos < end:
            try:
                data = _parse_json(text, pos)
            except (ValueError, RecursionError) as exc:
                # ValueError: bad JSON, NaN/Infinity, an int past Python's digit limit.
                raise SocketIOProtocolError("invalid JSON payload") from exc
            has_payload = True
        else:
            data = None
            has_payload = False

        self._check_shape(ptype, has_payload, data, ack_id)

        check_from = self._depth_check_from
        if check_from is not None and end - pos >= check_from:
            self._check_depth(text, pos, data)

        if ptype in _BINARY:
            slots = _find_placeholders(data, count)
            self._pending = _PendingBinary(ptype, namespace, data, ack_id, count, slots)
            return None
        return Packet(ptype, namespace, data, ack_id)

    def _check_depth(self, text: str, pos: int, data: Any) -> None:
        limit = self._max_depth
        assert limit is not None
        # Counting brackets is C-speed, and fewer than limit + 1 opening ones (those in strings
        # counted too) cannot nest deeper; only the rest is walked.
        if (text.count("[", pos) + text.count("{", pos) > limit
                and isinstance(data, list | dict) and deeper_than(data, limit)):
            raise SocketIOProtocolError("JSON payload nested too deep")

    @staticmethod
    def _check_shape(ptype: PacketType, has_payload: bool, data: Any, ack_id: int | None) -> None:
        if ptype is PacketType.CONNECT:
            # The client's auth object, if any.
            ok = not has_payload or isinstance(data, dict)
        elif ptype is PacketType.DISCONNECT:
            ok = not has_payload
        elif ptype is PacketType.EVENT or ptype is PacketType.BINARY_EVENT:
            # A reserved name is refused here, as by the reference parser: a client must not be
            # able to fire the application's "connect" or "disconnect" handler.
            ok = (
                isinstance(data, list)
                and len(data) > 0
                and isinstance(data[0], str)
                and data[0] not in RESERVED_EVENTS
            )
        elif ptype is PacketType.ACK or ptype is PacketType.BINARY_ACK:
            ok = isinstance(data, list) and ack_id is not None
        else:
            # CONNECT_ERROR: {"message": ..., "data"?: ...}; Socket.IO v4 servers sent a string.
            ok = isinstance(data, dict | str)
        if not ok:
            raise SocketIOProtocolError("payload does not fit the packet type")
