"""What the Socket.IO layer counts for the metrics (sio_core/engine/metrics): integers.

How this works: the places that do the work add to these counters as they go (``+= 1``, a
few tens of nanoseconds, no lock, no call): the server counts the messages in and out, each
namespace its sockets, events, broadcasts and handlers. A broadcast is counted once, with
its recipients (deliveries) added in one step, not once per recipient. At scrape time
:func:`families` turns them into metric families.

A child of a dynamic namespace (``io.of(re.compile(...))``, or a matcher) counts in its
parent's counters, labelled with the parent's regex pattern (or the matcher's name): the
children come and go with the clients' choice of names, and a label per child would give
the metrics one series per name ever seen.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..engine.metrics.families import COUNTER, GAUGE, HISTOGRAM, Family, Histogram, by_label, family

if TYPE_CHECKING:
    from .server import Server


class NamespaceCounters:
    """One namespace's (or one dynamic namespace's children's) counts."""

    __slots__ = ("broadcasts", "connected", "deliveries", "disconnected", "events_received",
                 "events_sent", "handler_errors", "handler_seconds", "label")

    def __init__(self, label: str) -> None:
        self.label = label
        self.connected = 0
        self.disconnected = 0
        self.events_received = 0
        self.events_sent = 0
        self.broadcasts = 0
        self.deliveries = 0
        self.handler_errors = 0
        #: async event handlers, from their task's start to their end (handlers.py)
        self.handler_seconds = Histogram()


class ServerCounters:
    """A server's counts: Engine.IO messages in and out, refused CONNECTs, and its namespaces'."""

    __slots__ = ("connect_errors", "messages_received", "messages_sent", "namespaces",
                 "received_bytes", "sent_bytes")

    def __init__(self) -> None:
        # An Engine.IO message is a Socket.IO packet or one binary attachment of it; a text
        # message is counted by its length in characters (its size in bytes for the ASCII of
        # most JSON, as the JavaScript admin UI counts it): encoding it again to count its
        # bytes would cost more than the counting is worth
        self.messages_received = 0
        self.received_bytes = 0
        self.messages_sent = 0
        self.sent_bytes = 0
        self.connect_errors = 0
        self.namespaces: dict[str, NamespaceCounters] = {}

    def namespace(self, label: str) -> NamespaceCounters:
        counters = self.namespaces.get(label)
        if counters is None:
            counters = self.namespaces[label] = NamespaceCounters(label)
        return counters


def parent_label(matcher: re.Pattern[str] | Callable[..., Any]) -> str:
    """The label of a dynamic namespace's children: its regex, or its matcher's name."""
    if isinstance(matcher, re.Pattern):
        return matcher.pattern
    return getattr(matcher, "__qualname__", None) or type(matcher).__qualname__


def families(server: Server) -> list[Family]:
    counters = server.counters
    sockets: dict[str, int] = dict.fromkeys(counters.namespaces, 0)
    for namespace in server.namespaces.values():
        label = namespace.counters.label
        sockets[label] = sockets.get(label, 0) + len(namespace.sockets)
    out = [
        family("sio_core_messages_received", COUNTER,
               "Engine.IO messages from clients (Socket.IO packets and binary attachments)"
               ).set(counters.messages_received),
        family("sio_core_received_bytes", COUNTER,
               "Size of the messages from clients (text in characters)"
               ).set(counters.received_bytes),
        family("sio_core_messages_sent", COUNTER,
               "Engine.IO messages to clients, each recipient of a broadcast counted"
               ).set(counters.messages_sent),
        family("sio_core_sent_bytes", COUNTER,
               "Size of the messages to clients (text in characters)").set(counters.sent_bytes),
        family("sio_core_connect_errors", COUNTER,
               "CONNECTs refused (middleware, unknown namespace, too many namespaces)"
               ).set(counters.connect_errors),
        by_label(family("sio_core_sockets", GAUGE, "Connected Socket.IO sockets", "namespace"),
                 sockets),
    ]
    per_namespace: list[tuple[str, str, Callable[[NamespaceCounters], int]]] = [
        ("sio_core_sockets_connected", "Sockets that joined the namespace",
         lambda c: c.connected),
        ("sio_core_sockets_disconnected", "Sockets that left the namespace",
         lambda c: c.disconnected),
        ("sio_core_events_received", "Events from clients", lambda c: c.events_received),
        ("sio_core_events_sent", "Events emitted to one socket (socket.emit)",
         lambda c: c.events_sent),
        ("sio_core_broadcasts", "Broadcasts emitted on this worker (io.emit, io.to(room).emit,"
         " socket.broadcast...), each counted once", lambda c: c.broadcasts),
        ("sio_core_broadcast_deliveries", "Sockets of this worker that a broadcast (from any"
         " worker or node) was sent to", lambda c: c.deliveries),
        ("sio_core_handler_errors", "Exceptions raised by event, connection, disconnect and"
         " ack handlers", lambda c: c.handler_errors),
    ]
    namespaces = counters.namespaces.values()
    for name, help, value in per_namespace:
        out.append(by_label(family(name, COUNTER, help, "namespace"),
                            {c.label: value(c) for c in namespaces}))
    durations = family("sio_core_handler_duration_seconds", HISTOGRAM,
                       "Time async event handlers took, awaits included (sync handlers are"
                       " not timed)", "namespace", bounds=Histogram().bounds)
    for c in namespaces:
        durations.set(c.handler_seconds, c.label)
    out.append(durations)
    return out

