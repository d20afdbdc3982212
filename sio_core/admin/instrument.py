"""``instrument(io, auth=...)``: the server side of the admin UI (``@socket.io/admin-ui``).

How this works: as the JavaScript ``instrument(io, options)``, this adds the admin
namespace (``/admin``), guarded by :mod:`sio_core.admin.auth`, and makes the server report
to it (:class:`~sio_core.admin.observer.AdminObserver`). A UI that connects gets
``session`` (after a password login), ``config`` (what it may do) and, in development
mode, ``all_sockets``: every socket of every namespace this worker has, on every worker
and node (fetch_sockets). Unless ``readonly``, the UI's actions are those of the
JavaScript admin, and act on the sockets of every worker and node through the cluster
operations:

=========================================  ===============================================
from the UI                                does
=========================================  ===============================================
``emit(nsp, filter, event, *args)``        ``io.of(nsp)[.in_(filter)].emit(event, *args)``
``join(nsp, room, filter)``                ``io.of(nsp)[.in_(filter)].sockets_join(room)``
``leave(nsp, room, filter)``               ``io.of(nsp)[.in_(filter)].sockets_leave(room)``
``_disconnect(nsp, close, filter)``        ``io.of(nsp)[.in_(filter)].disconnect_sockets(close)``
=========================================  ===============================================

(``filter``: a room, which is a socket id to act on one socket; none: the whole namespace.)
Anything malformed is ignored, as a UI of another version might send it. Every worker
must be instrumented alike: the application module that calls this is imported by each.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Literal

from ..config import check_count, check_seconds
from ..socketio.broadcast import BroadcastOperator
from ..socketio.namespace import Namespace
from .auth import Authenticator, BasicAuth, Sessions
from .observer import AdminObserver
from .serialize import serialize_socket

if TYPE_CHECKING:
    from ..socketio.server import Server
    from ..socketio.socket import Socket

logger = logging.getLogger("sio_core.admin")

#: what the UI may do (``config.supportedFeatures``), in the JavaScript admin's words
ACTIONS = ["EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT"]


@dataclass(frozen=True, slots=True)
class AdminOptions:
    """The options of :func:`instrument` (the JavaScript ones, in snake case), and its limits."""

    #: the namespace the UI connects to
    namespace_name: str = "/admin"
    #: the UI may look, not act
    readonly: bool = False
    #: this worker's name in the UI's server list; None: ``<hostname>#<pid>``, which tells
    #: the workers of a machine apart (a fixed one would make them one server in the UI)
    server_id: str | None = None
    #: "development": sockets, rooms and events as they happen; "production": the stats
    #: only (counts, no per-socket reports: the cost of the reports is one emit to the
    #: admin namespace, through the hub or Redis, per socket event)
    mode: Literal["development", "production"] = "development"
    #: how long a login lasts (the JavaScript RedisStore's default: one day)
    session_duration: float = 86_400.0
    #: logins a worker keeps; past it the oldest is forgotten (its UI must log in again).
    #: Each is ~150 bytes; only a correct password makes one.
    max_sessions: int = 10_000
    #: how often each worker sends its server_stats (the JavaScript admin: 2 s; the UI
    #: calls a server unhealthy after 10 s without)
    stats_interval: float = 2.0
    #: how long a worker that does not know a session id waits for the others' answers
    #: (as fetch_sockets waits: sio_core.socketio.cluster.REQUEST_TIMEOUT)
    request_timeout: float = 5.0

    def __post_init__(self) -> None:
        if not self.namespace_name.startswith("/"):
            raise ValueError(f"namespace_name: must start with '/' (got {self.namespace_name!r})")
        if self.mode not in ("development", "production"):
            raise ValueError(f"mode: 'development' or 'production' (got {self.mode!r})")
        for item in fields(self):
            value = getattr(self, item.name)
            try:
                if item.type == "float":
                    check_seconds(value)
                elif item.type == "int":
                    check_count(value)
            except ValueError as exc:
                raise ValueError(f"{item.name}: {exc}") from None


def instrument(io: Server, *, auth: Any, **options: Any) -> AdminObserver:
    """Serve the admin UI's namespace on ``io``; ``auth`` is required, as in JavaScript:
    ``{"type": "basic", "username": ..., "password": <bcrypt hash>}``, or ``False`` for
    none. ``options`` are :class:`AdminOptions` fields."""
    opts = replace(AdminOptions(), **options)
    if io.observer is not None:
        raise RuntimeError("this server is instrumented already")
    basic = BasicAuth.from_option(auth)
    admin: Namespace = io.of(opts.namespace_name)
    authenticator = None
    if basic is not None:
        sessions = Sessions(admin, opts.session_duration, opts.max_sessions,
                            opts.request_timeout)
        authenticator = Authenticator(basic, sessions)
        admin.use(authenticator)
    development = opts.mode == "development"
    features = [] if opts.readonly else list(ACTIONS)
    features.append("AGGREGATED_EVENTS")
    if development:
        features.append("ALL_EVENTS")
    observer = AdminObserver(io, admin, development=development, server_id=opts.server_id,
                             stats_interval=opts.stats_interval)
    io.observer = observer
    actions = None if opts.readonly else _UIActions(io)

    def connection(socket: Socket) -> Any:
        if actions is not None:
            actions.register(socket)
        session = authenticator.take_session(socket) if authenticator is not None else None
        if session is not None:
            socket.emit("session", session)
        socket.emit("config", {"supportedFeatures": features})
        return _send_all_sockets(io, socket) if development else None

    admin.on("connection", connection)
    try:  # else Server.serve() starts the stats, in its loop
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        observer.serving()
    return observer


async def _send_all_sockets(io: Server, socket: Socket) -> None:
    namespaces = list(io.namespaces.values())
    fetched = await asyncio.gather(*(namespace.fetch_sockets() for namespace in namespaces))
    socket.emit("all_sockets", [serialize_socket(s) for sockets in fetched for s in sockets])


class _UIActions:
    """The UI's requests, acted on across workers (see the module's table)."""

    def __init__(self, io: Server) -> None:
        self.io = io

    def register(self, socket: Socket) -> None:
        socket.on("emit", self.emit)
        socket.on("join", self.join)
        socket.on("leave", self.leave)
        socket.on("_disconnect", self.disconnect)

    def _target(self, nsp: Any, where: Any) -> BroadcastOperator | None:
        if not isinstance(nsp, str) or not nsp.startswith("/") or "," in nsp:
            return None
        # a namespace this worker lacks (a dynamic child that lives on other workers) is
        # reached through a namespace object of that name that this worker does not keep:
        # with no sockets here, what it does goes to the others
        namespace = self.io.namespace_now(nsp) or Namespace(self.io, nsp)
        operator = BroadcastOperator(namespace)
        if where is None or where == "":
            return operator
        return operator.to(where) if isinstance(where, str) else None

    def emit(self, *args: Any) -> None:
        if len(args) < 3 or not isinstance(args[2], str):
            return
        target = self._target(args[0], args[1])
        if target is not None:
            try:
                target.emit(args[2], *args[3:])
            except ValueError as exc:  # a reserved event name
                logger.warning("admin UI: cannot emit %r: %s", args[2], exc)

    def join(self, *args: Any) -> None:
        self._with_room(args, BroadcastOperator.sockets_join)

    def leave(self, *args: Any) -> None:
        self._with_room(args, BroadcastOperator.sockets_leave)

    def _with_room(self, args: tuple[Any, ...],
                   action: Callable[[BroadcastOperator, str], Awaitable[None]]) -> None:
        if len(args) >= 2 and isinstance(args[1], str):
            target = self._target(args[0], args[2] if len(args) > 2 else None)
            if target is not None:
                action(target, args[1])

    def disconnect(self, *args: Any) -> None:
        if len(args) >= 2:
            target = self._target(args[0], args[2] if len(args) > 2 else None)
            if target is not None:
                target.disconnect_sockets(bool(args[1]))
