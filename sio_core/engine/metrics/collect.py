"""What a worker's Engine.IO server, forwarding and store report, as metric families.

Read at scrape time from what those objects keep anyway (their sessions, connections, the
counts they add to as they go: see EngineServer.sessions_opened, Forwarding.forwarded,
Store.messages_sent, RedisStore.health); nothing here runs on a request of a client.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from typing import Any, Protocol

from ...config import Config
from ...protocol.session import CloseReason, Transport
from ...stores.base import Store
from .families import COUNTER, GAUGE, Family, by_label, family


class WorkerServer(Protocol):
    """What the metrics read of a worker's EngineServer (which imports this package: the
    server is described here, not imported)."""

    @property
    def owner(self) -> str: ...
    @property
    def config(self) -> Config: ...
    @property
    def handler(self) -> Any: ...
    @property
    def store(self) -> Store | None: ...
    @property
    def forwarding(self) -> Any: ...  # its ``forwarded`` counts; None without a store
    @property
    def sockets(self) -> Mapping[str, Any]: ...  # sid -> EngineSocket
    @property
    def connections(self) -> Collection[Any]: ...
    @property
    def sessions_opened(self) -> Counter[Transport]: ...
    @property
    def sessions_closed(self) -> Counter[CloseReason | None]: ...

_TRANSPORTS = [t.value for t in Transport]
_REASONS = [r.name.lower() for r in CloseReason]
#: RedisStore.health's counts of what was lost or failed (README: "Redis: ... health")
_STORE_ERRORS = ("publish_failed", "queue_dropped")


def engine_families(server: WorkerServer) -> list[Family]:
    open_now = Counter(socket.core.transport.value for socket in server.sockets.values())
    out = [
        by_label(family("sio_core_connections", GAUGE,
                        "Open Engine.IO sessions owned by this worker, by current transport",
                        "transport"), open_now, _TRANSPORTS),
        by_label(family("sio_core_connections_opened", COUNTER,
                        "Engine.IO sessions opened (handshakes), by first transport",
                        "transport"),
                 {t.value: n for t, n in server.sessions_opened.items()}, _TRANSPORTS),
        by_label(family("sio_core_connections_closed", COUNTER,
                        "Engine.IO sessions closed, by reason", "reason"),
                 {r.name.lower() if r else "unknown": n
                  for r, n in server.sessions_closed.items()}, _REASONS),
        family("sio_core_http_connections", GAUGE,
               "Open TCP connections: HTTP, and the websockets they became"
               ).set(len(server.connections)),
    ]
    forwarding = server.forwarding
    if forwarding is not None:
        out.append(by_label(family(
            "sio_core_forwarded_requests", COUNTER,
            "Requests of sessions owned by another worker, forwarded to their owner (and"
            " handshakes a retiring worker handed over)",
            "request"), forwarding.forwarded, ("poll", "post", "websocket", "handshake")))
    if server.store is not None:
        out.extend(store_families(server.store))
    return out


def store_families(store: Store) -> list[Family]:
    out = [
        family("sio_core_store_messages_sent", COUNTER,
               "Messages this worker put on the bus (the hub, or published to Redis)"
               ).set(store.messages_sent),
        family("sio_core_store_messages_received", COUNTER,
               "Messages this worker received from the bus").set(store.messages_received),
        family("sio_core_store_peers", GAUGE,
               "Other workers (and with Redis, other nodes' workers) this worker knows"
               ).set(len(store.peers)),
    ]
    health: Any = getattr(store, "health", None)
    if isinstance(health, dict):
        out += [
            family("sio_core_store_connected", GAUGE,
                   "Whether the store is connected (1) or not (0)"
                   ).set(1 if health["connected"] else 0),
            family("sio_core_store_reconnects", COUNTER,
                   "Times the subscription to Redis was lost and made again"
                   ).set(health["reconnects"]),
            family("sio_core_store_failovers", COUNTER,
                   "Sentinel failovers heard").set(health["failovers"]),
            family("sio_core_store_subscriber_down_seconds", COUNTER,
                   "Time the subscription to Redis was down (what was published then is lost)"
                   ).set(health["subscriber_down_seconds"]),
            by_label(family("sio_core_store_errors", COUNTER,
                            "Messages lost (publish failed, queue full)", "error"),
                     {name: health[name] for name in _STORE_ERRORS}),
            family("sio_core_store_queued_messages", GAUGE,
                   "Messages waiting to be published").set(health["queued"]),
        ]
    return out
