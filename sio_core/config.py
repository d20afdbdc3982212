"""Every limit and timing of the server, in one place, each default with its reason.

``None`` means unlimited where a field says so. Times are in seconds (the Engine.IO
handshake carries them in milliseconds; the conversion happens on the wire only). Every
field is checked when a Config is built or replaced: a float field is a time (positive,
finite), an int field a size or a count (at least 1 unless ``_MINIMUM`` says otherwise).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from functools import partial
from typing import Any

TRANSPORTS = ("polling", "websocket")
#: the Socket.IO parsers (sio_core/protocol/parsers.py)
PARSER_NAMES = ("default", "msgpack")

#: the longest time the client is told (pingInterval + pingTimeout, in ms): a JavaScript
#: timer of more than 2**31 - 1 ms fires at once (setTimeout's overflow), which would make
#: the official client time out right away
MAX_SECONDS = (2**31 - 1) / 1000 / 2
#: an Engine.IO path: "/" and then the unreserved and sub-delims characters of a URL path
#: (RFC 3986, 3.3), so that it matches a request's path as sent, with no escaping
_PATH = re.compile(r"/[A-Za-z0-9._~!$&'()*+,;=:@/-]*")

#: the int fields whose least value is not 1
_MINIMUM = {"max_attachments": 0, "max_dynamic_namespaces": 0, "http_compression_threshold": 0,
            "per_message_deflate_threshold": 0}


def check_seconds(value: float) -> float:
    """A positive, finite number of seconds (raises ValueError saying what it must be)."""
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not 0 < value <= MAX_SECONDS:
        raise ValueError(f"must be a positive number of seconds, at most {int(MAX_SECONDS)}"
                         f" (got {value!r})")
    return value


def check_count(value: int, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"must be a whole number of at least {minimum} (got {value!r})")
    return value


def check_transports(names: Sequence[str]) -> tuple[str, ...]:
    if isinstance(names, str):
        raise ValueError("must be a sequence of transport names, not one string")
    for name in names:
        if name not in TRANSPORTS:
            raise ValueError(f"unknown transport {name!r}; choose from {', '.join(TRANSPORTS)}")
    if not names:
        raise ValueError("at least one transport is needed")
    return tuple(names)


def check_parser(name: str) -> str:
    if name not in PARSER_NAMES:
        raise ValueError(f"unknown parser {name!r}; choose from {', '.join(PARSER_NAMES)}")
    return name


def check_forwarded_allow_ips(items: Sequence[str]) -> tuple[str, ...]:
    """Addresses, networks, "unix" or "*" (sio_core/http/proxy.py)."""
    if isinstance(items, str):
        raise ValueError("must be a sequence of addresses or networks, not one string")
    for item in items:
        if item in ("*", "unix"):
            continue
        try:
            ipaddress.ip_network(item, strict=False)
        except (TypeError, ValueError):
            raise ValueError(f"{item!r} is not an IP address or network, 'unix' or '*'"
                             ) from None
    return tuple(items)


def check_path(path: str) -> str:
    """An Engine.IO path, with its trailing "/" added if missing."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"must start with '/' (got {path!r})")
    if not _PATH.fullmatch(path):
        raise ValueError(f"may only have URL path characters, unescaped (got {path!r})")
    return path if path.endswith("/") else path + "/"


@dataclass(frozen=True, slots=True)
class Cookie:
    """The session cookie of the reference's ``cookie`` option: with ``Config(cookie=Cookie())``
    the answer to each handshake sets a cookie holding the Engine.IO session id (for a load
    balancer's affinity; sio_core itself needs none).

    Args:
        name: the cookie's name ("io", as the reference's).
        path: its Path ("/").
        http_only: HttpOnly (on, as the reference's).
        same_site: "Lax" (the reference's), "Strict", "None", or None for no SameSite.
        secure: Secure.
        domain: its Domain, if any.
        max_age: its Max-Age in seconds, if any (None: a session cookie).
    """

    name: str = "io"
    path: str | None = "/"
    http_only: bool = True
    same_site: str | None = "Lax"
    secure: bool = False
    domain: str | None = None
    max_age: int | None = None

    def __post_init__(self) -> None:
        if not _TOKEN.fullmatch(self.name):
            raise ValueError(f"cookie: {self.name!r} is not a cookie name")
        for value in (self.path, self.domain):
            if value is not None and not _COOKIE_VALUE.fullmatch(value):
                raise ValueError(f"cookie: {value!r} is not a valid path or domain")
        if self.same_site not in (None, "Lax", "Strict", "None"):
            raise ValueError(f"cookie: same_site must be 'Lax', 'Strict', 'None' or None"
                             f" (got {self.same_site!r})")

    def serialize(self, value: str) -> str:
        """The Set-Cookie value for ``value``, attributes in the order the reference's
        ``cookie.serialize`` writes them."""
        parts = [f"{self.name}={value}"]
        if self.max_age is not None:
            parts.append(f"Max-Age={self.max_age}")
        if self.domain is not None:
            parts.append(f"Domain={self.domain}")
        if self.path is not None:
            parts.append(f"Path={self.path}")
        if self.http_only:
            parts.append("HttpOnly")
        if self.secure:
            parts.append("Secure")
        if self.same_site is not None:
            parts.append(f"SameSite={self.same_site}")
        return "; ".join(parts)


#: RFC 6265 / RFC 7230: a cookie name is a token; a path or domain has no controls or ";"
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_COOKIE_VALUE = re.compile(r"[\x20-\x3a\x3c-\x7e]+")


@dataclass(frozen=True, slots=True)
class Config:
    """Every limit, timing and option of a server, each field's default with its reason.

    Immutable; every field is checked when it is built (a ValueError names the field).
    ``Server(**fields)`` and ``Server(Config(...))`` take them, ``io.configure(**fields)``
    changes them before serving, and ``python -m sio_core serve`` sets them from its flags.
    Times are in seconds; ``None`` means unlimited where a field says so.

    Example::

        config = Config(ping_interval=10, max_payload=100_000,
                        cors_allowed_origins=["https://example.com"], cookie=Cookie())
        io = Server(config)
        quick = dataclasses.replace(config, ping_timeout=5)
    """

    # -- Engine.IO -------------------------------------------------------------------------
    #: URL prefix of the Engine.IO endpoint; a Socket.IO server uses /socket.io/.
    path: str = "/socket.io/"
    #: The session cookie set by each handshake's answer (the reference's ``cookie``
    #: option; off by default, as there). See :class:`Cookie`.
    cookie: Cookie | None = None
    #: Transports a client may use, like the reference server's ``transports`` option.
    transports: Sequence[str] = TRANSPORTS
    #: Offer the polling -> websocket upgrade in the handshake.
    allow_upgrades: bool = True
    #: Heartbeat: the server pings every ping_interval and drops a client that has not
    #: answered ping_timeout later. 25 s / 20 s are the reference server's defaults.
    ping_interval: float = 25.0
    ping_timeout: float = 20.0
    #: A websocket that has not finished the upgrade (probe, then ``5``) in this time is
    #: closed; the session goes on over polling. Reference default: 10 s.
    upgrade_timeout: float = 10.0
    #: A server-closed polling session waits this long for a GET to deliver the ``1``.
    #: Reference default (closeTimeout): 30 s.
    close_timeout: float = 30.0
    #: A websocket the server closes waits this long for the client's close frame (the
    #: closing handshake, RFC 6455 section 7.1.1) before its TCP connection is cut. The
    #: reference's ws library waits 30 s; a client that follows the RFC answers within a
    #: round trip, and a shutdown waits for these handshakes.
    websocket_close_timeout: float = 5.0
    #: The largest POST body / WebSocket message a client may send, in bytes; announced
    #: as ``maxPayload``. Reference default (maxHttpBufferSize): 1e6.
    max_payload: int = 1_000_000
    #: The most packets one polling body may carry: bounds the work one request can cause
    #: (a 1 MB body of 2-byte packets would otherwise be 333k objects). None: no cap.
    max_packets_per_payload: int | None = 10_000
    #: The most packets one polling GET is answered with; the rest go with the next GET.
    #: python-socketio's client (python-engineio's ``Payload.max_decode_packets``) refuses a
    #: payload of more than 16 packets and drops its connection, so a burst of broadcasts
    #: would disconnect it; the official JavaScript client takes any number (so does the
    #: reference server send). None: everything queued.
    max_packets_per_poll: int | None = 16
    #: Bytes written to a websocket that its client has not read yet (the transport's write
    #: buffer) beyond which the websocket is closed: a client that does not read must not
    #: grow the server's memory without bound. Volatile packets are not measured against
    #: it: as in the reference, they are dropped only while the transport cannot take
    #: output at once (a polling session with no GET pending; a websocket always takes
    #: it). A polling session keeps its output for the next GET, which the heartbeat
    #: bounds in time. None: unlimited.
    max_outbound_buffer: int | None = 16 * 1024 * 1024

    #: gzip / deflate a long-polling answer (a GET's payload) of at least
    #: http_compression_threshold bytes for a client whose Accept-Encoding allows it, as the
    #: reference's ``httpCompression`` (on by default there, threshold 1024 bytes). Smaller
    #: answers cost more to compress than they save.
    http_compression: bool = True
    http_compression_threshold: int = 1024
    #: Compress WebSocket messages (permessage-deflate, RFC 7692) with clients that offer
    #: it, as the reference's ``perMessageDeflate`` (off by default there too: it costs CPU
    #: for each message, and memory for each connection: a decompressor (~40 KiB) for what
    #: the client sends). Messages under per_message_deflate_threshold bytes are sent as they
    #: are (the reference's threshold: 1024). The server compresses each message on its own
    #: (it always asks for server_no_context_takeover), so a broadcast is compressed once
    #: and the same frame written to every recipient.
    per_message_deflate: bool = False
    per_message_deflate_threshold: int = 1024

    # -- Socket.IO -------------------------------------------------------------------------
    #: A client that has not sent CONNECT for any namespace by then is disconnected.
    #: Reference default (connectTimeout): 45 s.
    connect_timeout: float = 45.0
    #: Binary attachments one Socket.IO packet may announce (each is held in memory until
    #: the packet completes). python-socketio and socket.io-parser have similar caps. Each
    #: must be named by exactly one placeholder (stricter than socket.io-parser, which allows
    #: repeats: 30,000 placeholders naming one 1 MB attachment would decode to 30 GB of data
    #: to copy or re-send), so this also caps the placeholders of a packet.
    max_attachments: int = 10
    #: How deep the JSON of one packet may nest (its argument array is level 1). Python's
    #: json recurses once per level against the interpreter's recursion limit (1000): data
    #: nested ~970 deep decodes, but a handler a few calls deeper fails to send it back.
    #: Application data nests a few levels; 100 leaves room to wrap it. None: unlimited.
    max_json_depth: int | None = 100
    #: Namespaces one client (Engine.IO session) may have joined or be joining at once. Each
    #: CONNECT of a few bytes costs a socket (~2-3 KB); past this the CONNECT is answered with
    #: CONNECT_ERROR. The reference has no cap; applications use a handful. None: unlimited.
    max_namespaces_per_client: int | None = 100
    #: Acks one socket may owe the server (emits with a callback it has not answered).
    #: A client that never answers would otherwise grow the socket's table with every emit or
    #: broadcast with ack (the reference's never shrinks); past this the oldest is given up:
    #: it fails with TimeoutError (a timed callback is called with one) or is dropped.
    #: None: unlimited.
    max_pending_acks: int | None = 1000
    #: Remove a child namespace of a dynamic namespace (``io.of(regex)`` or a matcher) once
    #: its last socket has left, as the reference's ``cleanupEmptyChildNamespaces`` (which is
    #: off by default there): otherwise clients connecting to ever new matching names grow
    #: the server forever (~3 KB per namespace). Namespaces made by ``io.of(name)`` stay.
    cleanup_empty_child_namespaces: bool = True
    #: Child namespaces of dynamic namespaces that may exist at once on a worker; a CONNECT
    #: that would create one more is answered with CONNECT_ERROR "Invalid namespace", as for
    #: an unknown namespace. ~3 KB each: 10,000 is ~30 MB. None: unlimited.
    max_dynamic_namespaces: int | None = 10_000
    #: Default time to wait for a client's ack when a broadcast uses .timeout().
    ack_timeout: float = 10.0
    #: Connection state recovery (see :class:`ConnectionStateRecovery`; a dict of its
    #: fields is taken too): off by default, as in the reference.
    connection_state_recovery: ConnectionStateRecovery | None = None
    #: How Socket.IO packets are written: "default" (JSON text with binary attachments,
    #: npm socket.io-parser) or "msgpack" (one MessagePack binary message per packet, npm
    #: socket.io-msgpack-parser and python-socketio's ``serializer="msgpack"``). Every client
    #: must use the server's parser, as with the reference's ``parser`` option.
    parser: str = "default"

    # -- Cluster (workers and nodes meeting through a store) ------------------------------
    #: How long a request forwarded to the worker that owns its session (a POST's packets,
    #: a websocket upgrade) waits for the owner's answer before it is answered "Session ID
    #: unknown"; a forwarded GET waits ping_interval + ping_timeout longer, as the owner
    #: answers it by its next ping at the latest. A round trip over the hub or Redis takes
    #: milliseconds, and an owner that is gone is known sooner (it leaves the store's peers).
    forward_timeout: float = 10.0
    #: How long a cluster query (fetch_sockets) waits for the other servers; those that
    #: have not answered by then are left out. The JavaScript redis adapter's
    #: requestsTimeout: 5 s.
    requests_timeout: float = 5.0

    # -- HTTP ------------------------------------------------------------------------------
    #: Request line (method + URL) length. 8 KiB is what nginx and Node.js allow.
    max_request_line: int = 8192
    #: Header fields per request. Node.js: 2000 (maxHeadersCount), h11/Go/Apache ~100;
    #: a Socket.IO client sends about 10.
    max_header_count: int = 100
    #: Total bytes of the request head. h11 uses 16 KiB; Node.js 16 KiB (max-http-header-size).
    max_header_bytes: int = 16 * 1024
    #: A request head (or the body after it) must arrive within this time (slowloris).
    request_timeout: float = 10.0
    #: An idle keep-alive connection is closed after this long. Node.js: 5 s.
    keepalive_timeout: float = 5.0
    #: Lingering close (RFC 9112 §9.6): after its last answer (a 413 while the client is
    #: still sending its body, ``Connection: close``, a refusal) a connection is shut on our
    #: side, and what the client still sends is read and thrown away until it closes, so
    #: that it reads the answer rather than a reset. This bounds how long: nginx lingers
    #: 5 s between reads (lingering_timeout) and 30 s in all; this is the whole time.
    lingering_timeout: float = 5.0
    #: ... and how many bytes are read for nothing (a client may send an oversize body in
    #: full before it reads the 413: 16 MiB covers any plausible Socket.IO message).
    #: Node.js reads and discards an unwanted body without a bound. None: unlimited.
    lingering_bytes: int | None = 16 * 1024 * 1024
    #: Complete requests of one connection parsed ahead of their answers; with this many
    #: waiting, the socket is not read until they are answered. A client that pipelines
    #: requests without reading the answers so costs a few parsed requests, not every
    #: request it sends. Browsers do not pipeline; the Engine.IO clients send a GET and a
    #: POST at most, on two connections.
    max_pipelined_requests: int = 8
    #: A large read is parsed this many bytes at a time, and no further while
    #: max_pipelined_requests wait: one 256 KiB read of tiny pipelined requests cannot
    #: queue thousands of them. 16 KiB holds a request head of max_header_bytes.
    parse_slice: int = 16 * 1024
    #: Connections the kernel queues for each listening socket until they are accepted
    #: (listen(2)'s backlog; uvicorn's default): a burst of clients reconnecting at once, as
    #: after a restart, waits there rather than being refused. The kernel caps it at
    #: net.core.somaxconn.
    backlog: int = 2048

    #: Peers whose X-Forwarded-For / X-Forwarded-Proto are believed (a reverse proxy in
    #: front of the server): IP addresses, networks ("10.0.0.0/8"), "unix" (a peer on a unix
    #: socket, --uds) or "*" (any peer). The client's address then goes into
    #: ``handshake.address`` and its TLS into ``handshake.secure``; from other peers the
    #: headers are ignored (anyone can send them). uvicorn's --forwarded-allow-ips trusts
    #: 127.0.0.1 by default; here none is trusted unless named.
    forwarded_allow_ips: Sequence[str] = ()

    # -- CORS ------------------------------------------------------------------------------
    #: None: no CORS headers (same-origin only); "*": any origin (echoed back, as the
    #: reference's ``cors: {origin: true}``); or a list of allowed origins.
    cors_allowed_origins: str | Sequence[str] | None = None
    cors_credentials: bool = False

    # -- Operations ------------------------------------------------------------------------
    #: GET here answers JSON about this worker (sessions, connections, store health);
    #: None disables it.
    health_path: str | None = "/_sio_core/health"
    #: The longest ``close()`` takes: the drain (new sessions refused, every session closed
    #: and its client told, the websockets' closing handshakes), then what the connections
    #: still have to write; what is left then is cut. 10 s, as the command line's
    #: ``--shutdown-timeout``, which bounds a worker's whole shutdown and is passed to
    #: ``close()`` by the CLI instead.
    shutdown_timeout: float = 10.0
    #: GET here answers the Prometheus metrics of every worker of this machine (see
    #: sio_core/engine/metrics); None disables it (nothing is served, the other workers are
    #: never asked; the counters themselves cost a few additions per message either way).
    metrics_path: str | None = "/metrics"
    #: How long the scraped worker waits for the other workers' metrics. A healthy worker
    #: answers within milliseconds; one that has not answered by then is left out of the
    #: scrape (sio_core_metrics_workers_missing says so) rather than stalling it: Prometheus
    #: gives a whole scrape 10 s by default (scrape_timeout).
    metrics_timeout: float = 1.0

    # -- Static files ----------------------------------------------------------------------
    #: A directory served at "/" (the chat page); None: no static files.
    static_dir: str | None = None
    #: Extra (URL path -> file path) mappings.
    static_files: dict[str, str] = field(default_factory=dict)
    #: Serve the official client bundle at ``<path>socket.io.js`` (and .min.js, .map), as
    #: the reference's serveClient does, from the npm package ``socket.io-client``.
    serve_client: bool = True
    #: Where that package's ``dist`` directory is; None: the copy a wheel of sio_core ships
    #: (sio_core/client_dist), else ./node_modules, else the sio_core checkout's.
    client_dist_dir: str | None = None

    def __post_init__(self) -> None:
        # every field is checked here, so that a library user gets the same clear
        # ValueError as the command line (which checks its options with these functions)
        object.__setattr__(self, "transports",
                           _checked("transports", self.transports, check_transports))
        object.__setattr__(self, "path", _checked("path", self.path, check_path))
        object.__setattr__(self, "connection_state_recovery", _checked(
            "connection_state_recovery", self.connection_state_recovery, recovery_of))
        _checked("parser", self.parser, check_parser)
        object.__setattr__(self, "forwarded_allow_ips", _checked(
            "forwarded_allow_ips", self.forwarded_allow_ips, check_forwarded_allow_ips))
        # by type, so that a new field is checked too: every float field is a time in
        # seconds, every int field a size or a count (None, where allowed: unlimited)
        for item in fields(self):
            value = getattr(self, item.name)
            if item.type == "float":
                _checked(item.name, value, check_seconds)
            elif item.type == "int" or (item.type == "int | None" and value is not None):
                _checked(item.name, value, partial(check_count,
                                                   minimum=_MINIMUM.get(item.name, 1)))
        for name in ("health_path", "metrics_path"):
            if getattr(self, name) is not None:
                _checked(name, getattr(self, name), check_path)
        origins = self.cors_allowed_origins
        if not (origins is None or isinstance(origins, str) or (
                isinstance(origins, Sequence) and all(isinstance(o, str) for o in origins))):
            raise ValueError("cors_allowed_origins: None, '*' or a sequence of origins")


@dataclass(frozen=True, slots=True)
class ConnectionStateRecovery:
    """``Server(connection_state_recovery={...})``: what a client that lost its connection
    gets back when it reconnects (the reference's ``connectionStateRecovery``, whose names
    and defaults the first two fields take). The log of packets and the sessions live in
    the store (this process, the master hub, or Redis), so a reconnect may land on any
    worker or node. Past any limit the client gets a fresh session (``recovered`` false)."""

    #: How long a disconnected socket's id, rooms and data, and the packets sent meanwhile,
    #: are kept. The reference's ``maxDisconnectionDuration``: 2 minutes.
    max_disconnection_duration: float = 120.0
    #: A recovered socket does not run the middlewares again (the reference's default).
    skip_middlewares: bool = True
    #: The most packets one reconnecting socket may have missed: a client away through a
    #: flood gets a fresh session rather than a replay it cannot absorb.
    max_missed_packets: int = 10_000
    #: Packets the log keeps in all (the oldest go first; a client whose offset has gone
    #: gets a fresh session). With Redis, the stream's MAXLEN (approximate, ``~``).
    max_log_packets: int = 100_000
    #: Bytes of packets the log keeps in all (the master hub and one process; with Redis,
    #: ``max_log_packets`` and the time bound it). 64 MiB at the default count is 670 bytes
    #: a packet.
    max_log_bytes: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        _checked("max_disconnection_duration", self.max_disconnection_duration,
                 check_seconds)
        for name in ("max_missed_packets", "max_log_packets", "max_log_bytes"):
            _checked(name, getattr(self, name), check_count)
        if not isinstance(self.skip_middlewares, bool):
            raise ValueError(f"skip_middlewares: must be True or False "
                             f"(got {self.skip_middlewares!r})")


def recovery_of(value: Any) -> ConnectionStateRecovery | None:
    """``connection_state_recovery`` as given: None/False (off), True (the defaults), a
    dict of the fields (the reference's camelCase names too), or the dataclass."""
    if value is None or value is False:
        return None
    if value is True:
        return ConnectionStateRecovery()
    if isinstance(value, ConnectionStateRecovery):
        return value
    if isinstance(value, dict):
        names = {"maxDisconnectionDuration": "max_disconnection_duration",
                 "skipMiddlewares": "skip_middlewares"}
        options: dict[str, Any] = {names.get(str(k), str(k)): v for k, v in value.items()}
        # the reference's option is in milliseconds
        if "maxDisconnectionDuration" in value:
            options["max_disconnection_duration"] = value["maxDisconnectionDuration"] / 1000
        known = {f.name for f in fields(ConnectionStateRecovery)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(unknown)}")
        return ConnectionStateRecovery(**options)
    raise ValueError(f"must be a dict of options, True or None (got {value!r})")


def _checked(name: str, value: Any, check: Callable[[Any], Any]) -> Any:
    try:
        return check(value)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
