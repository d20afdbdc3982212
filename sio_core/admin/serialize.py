"""Sockets as the admin UI shows them: the ``SerializedSocket`` of ``@socket.io/admin-ui``.

How this works: a socket of this worker is read live (its Engine.IO session gives the
client id and the transport). A socket of another worker (a RemoteSocket from
fetch_sockets) carries only its ``data``, so, as the JavaScript admin does, the
instrumented worker that owns a socket keeps the two in ``socket.data["_admin"]``
(:data:`ADMIN_KEY`), which every worker's answer to fetch_sockets includes and which the
UI never sees. Application data is made plain (what Socket.IO can carry: JSON and bytes;
anything else becomes its ``repr``) so that no value of an application can make a report
fail.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from ..socketio.socket import Handshake, Socket

#: the key of socket.data where the owning worker keeps what the UI needs of a socket
#: (the JavaScript admin's name, so that both read each other's sockets on a shared Redis)
ADMIN_KEY = "_admin"
#: nesting kept of application data; deeper values are shown as their repr
MAX_DEPTH = 20
#: how much of the Engine.IO session id the UI gets as the client id (the JavaScript
#: admin's ``clientId.substring(0, 12)``)
CLIENT_ID_LENGTH = 12


def timestamp() -> str:
    """Now, as JSON.stringify writes a JavaScript Date (what the UI expects)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def plain(value: Any, depth: int = 0) -> Any:
    """``value`` as Socket.IO can send it: JSON values and bytes; anything else its repr."""
    if value is None or isinstance(value, str | int | bytes):  # bool is an int
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if depth < MAX_DEPTH:
        if isinstance(value, dict):
            return {str(key): plain(item, depth + 1) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [plain(item, depth + 1) for item in value]
    return repr(value)


def admin_info(client_id: str, transport: str) -> dict[str, str]:
    """What ``socket.data["_admin"]`` holds."""
    return {"clientId": client_id[:CLIENT_ID_LENGTH], "transport": transport}


def serialize_data(data: Any) -> dict[str, Any]:
    """A socket's data as the UI shows it: without the admin's own key."""
    if not isinstance(data, dict):
        return {}
    return {str(key): plain(value, 1) for key, value in data.items() if key != ADMIN_KEY}


def address(handshake: Handshake) -> str | None:
    """The client's address: a proxy's header first, as the JavaScript admin reads it."""
    headers = handshake.headers
    return headers.get("cf-connecting-ip") or headers.get("x-forwarded-for") or \
        handshake.address


def serialize_socket(socket: Any) -> dict[str, Any]:
    """A Socket of this worker, or a RemoteSocket of another, for ``all_sockets`` and
    ``socket_connected``."""
    if isinstance(socket, Socket):
        conn = socket.conn
        client_id, transport = conn.sid[:CLIENT_ID_LENGTH], conn.core.transport.value
    else:
        data = socket.data if isinstance(socket.data, dict) else {}
        info = data.get(ADMIN_KEY)
        info = info if isinstance(info, dict) else {}
        client_id, transport = info.get("clientId"), info.get("transport")
    hs: Handshake = socket.handshake
    return {
        "id": socket.id,
        "clientId": client_id,
        "transport": transport,
        "nsp": socket.namespace.name,
        "data": serialize_data(socket.data),
        # as the JavaScript admin: not the auth (credentials, tokens)
        "handshake": {"address": address(hs), "headers": plain(hs.headers),
                      "query": plain(hs.query), "issued": hs.issued, "secure": hs.secure,
                      "time": hs.time, "url": hs.url, "xdomain": hs.xdomain},
        "rooms": sorted(socket.rooms),
    }
