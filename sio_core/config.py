"""Every limit and timing of the server, in one place, each default with its reason.

``None`` means unlimited where a field says so. Times are in seconds (the Engine.IO
handshake carries them in milliseconds; the conversion happens on the wire only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

TRANSPORTS = ("polling", "websocket")


@dataclass(frozen=True, slots=True)
class Config:
    # -- Engine.IO -------------------------------------------------------------------------
    #: URL prefix of the Engine.IO endpoint; a Socket.IO server uses /socket.io/.
    path: str = "/socket.io/"
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
    #: The largest POST body / WebSocket message a client may send, in bytes; announced
    #: as ``maxPayload``. Reference default (maxHttpBufferSize): 1e6.
    max_payload: int = 1_000_000
    #: The most packets one polling body may carry: bounds the work one request can cause
    #: (a 1 MB body of 2-byte packets would otherwise be 333k objects). None: no cap.
    max_packets_per_payload: int | None = 10_000
    #: Bytes queued for one client beyond which further *volatile* packets are dropped and
    #: a websocket that does not read is closed (a slow consumer must not grow memory
    #: without bound). None: unlimited.
    max_outbound_buffer: int | None = 16 * 1024 * 1024

    # -- Socket.IO -------------------------------------------------------------------------
    #: A client that has not sent CONNECT for any namespace by then is disconnected.
    #: Reference default (connectTimeout): 45 s.
    connect_timeout: float = 45.0
    #: Binary attachments one Socket.IO packet may announce (each is held in memory until
    #: the packet completes). python-socketio and socket.io-parser have similar caps.
    max_attachments: int = 10
    #: Default time to wait for a client's ack when a broadcast uses .timeout().
    ack_timeout: float = 10.0

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

    # -- CORS ------------------------------------------------------------------------------
    #: None: no CORS headers (same-origin only); "*": any origin (echoed back, as the
    #: reference's ``cors: {origin: true}``); or a list of allowed origins.
    cors_allowed_origins: str | Sequence[str] | None = None
    cors_credentials: bool = False

    # -- Operations ------------------------------------------------------------------------
    #: GET here answers JSON about this worker (sessions, connections, store health);
    #: None disables it.
    health_path: str | None = "/_sio_core/health"

    # -- Static files ----------------------------------------------------------------------
    #: A directory served at "/" (the chat page); None: no static files.
    static_dir: str | None = None
    #: Extra (URL path -> file path) mappings.
    static_files: dict[str, str] = field(default_factory=dict)
    #: Serve the official client bundle at ``<path>socket.io.js`` (and .min.js, .map), as
    #: the reference's serveClient does, from the npm package ``socket.io-client``.
    serve_client: bool = True
    #: Where that package's ``dist`` directory is; None: look in ./node_modules and in the
    #: node_modules of the sio_core checkout.
    client_dist_dir: str | None = None

    def __post_init__(self) -> None:
        for name in self.transports:
            if name not in TRANSPORTS:
                raise ValueError(f"unknown transport {name!r}; choose from {TRANSPORTS}")
        if not self.transports:
            raise ValueError("at least one transport is needed")
        if self.ping_interval <= 0 or self.ping_timeout <= 0:
            raise ValueError("ping_interval and ping_timeout must be positive")
        if not self.path.startswith("/"):
            raise ValueError("path must start with '/'")
        if not self.path.endswith("/"):
            object.__setattr__(self, "path", self.path + "/")
