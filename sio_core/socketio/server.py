"""The Socket.IO server object users build their application on.

``io = Server(ping_interval=10)`` takes any :class:`~sio_core.config.Config` field as a
keyword. ``io.on("connection")``, ``io.use(...)``, ``io.emit(...)`` and the broadcast
operators act on the main namespace "/", as in the JavaScript server; ``io.of(name)``
gives another namespace. ``await io.serve(host, port)`` serves it through an
:class:`~sio_core.engine.server.EngineServer`, whose handler it is: each new Engine.IO
session gets a :class:`~sio_core.socketio.client.Client`; ``await io.close()`` stops.
``python -m sio_core serve app:io`` does the same (sio_core/cli.py).
"""

from __future__ import annotations

import logging
import re
import socket as socket_module
from collections.abc import Awaitable, Callable
from dataclasses import replace
from ssl import SSLContext
from typing import Any, TypeVar, overload

from ..config import Config
from ..engine.hooks import AllowRequest, EngineHooks
from ..engine.metrics.families import Family
from ..engine.server import EngineServer
from ..protocol.parsers import PARSERS, Parser
from ..protocol.session import CloseReason
from ..stores.base import Store
from . import handlers
from .broadcast import BroadcastOperator
from .class_namespace import AsyncNamespace
from .client import Client, Session
from .cluster import Cluster
from .counters import ServerCounters, families
from .handlers import EventEmitter
from .namespace import Matcher, Middleware, Namespace, ParentNamespace, _Operators
from .observer import Observer
from .recovery import Recovery

logger = logging.getLogger("sio_core.socketio")

F = TypeVar("F", bound=Callable[..., Any])

#: events of the server itself, not of its main namespace
SERVER_EVENTS = frozenset({"new_namespace"})


class Server(_Operators[BroadcastOperator]):
    """A Socket.IO server: the object an application is built on.

    It holds the namespaces, "/" first (``io.sockets``). ``io.on``, ``io.use``, ``io.emit``
    and the broadcast operators (``to``, ``in_``, ``except_``, ``volatile``, ``local``,
    ``timeout``, ``compress``) act on "/", as in the JavaScript server; ``io.of(name)``
    gives another namespace. ``await io.serve(host, port)`` serves it from a program and
    ``await io.close()`` stops it; ``python -m sio_core serve module:io`` serves it with
    workers.

    Args:
        config: the limits, timings and options (see :class:`~sio_core.config.Config`);
            ``Config()`` if not given.
        allow_request: called with each Engine.IO handshake request
            (:class:`~sio_core.http.messages.Request`), sync or async: a false result
            refuses it with 403 ``{"code":4,"message":"Forbidden"}``, raising
            ConnectionRefusedError(message) with that message (the reference's
            ``allowRequest``).
        **options: any Config field, replacing the config's (``Server(ping_interval=10)``).

    Attributes:
        config: the Config in force.
        sockets: the main namespace "/" (:class:`~sio_core.socketio.namespace.Namespace`).
        engine_hooks: ``allow_request`` and the engine's events ``connection_error``,
            ``initial_headers``, ``headers`` (:class:`~sio_core.engine.hooks.EngineHooks`).
        engine: the Engine.IO server under this one, once serving.

    Example::

        from sio_core import Server, Socket

        io = Server(cors_allowed_origins="*")

        @io.on("connection")
        async def connection(socket: Socket) -> None:
            await socket.join("lobby")

            @socket.on("chat")
            async def chat(text: str) -> str:
                await socket.to("lobby").emit("chat", text)
                return "ok"  # the client's ack

        # in a program: await io.serve("0.0.0.0", 3000); ... await io.close()
    """

    def __init__(self, config: Config | None = None, *,
                 allow_request: AllowRequest | None = None, **options: Any) -> None:
        base = config or Config()
        self.config = replace(base, **options) if options else base
        #: how packets are written and read (config.parser)
        self.parser: Parser = PARSERS[self.config.parser]
        #: the Engine.IO handshake's hooks: ``allow_request`` and the engine's events
        #: (``connection_error``, ``initial_headers``, ``headers``), as the reference's
        #: ``allowRequest`` option and ``io.engine.on(...)``; usable before serve()
        self.engine_hooks = EngineHooks(allow_request)
        self._namespaces: dict[str, Namespace] = {}
        #: Socket.IO across workers; set by attach_store
        self.cluster: Cluster | None = None
        self._parents: list[ParentNamespace] = []
        self._warned_full = False
        #: told of connections, sockets, rooms and events (the admin UI's instrumentation)
        self.observer: Observer | None = None
        #: the Engine.IO server under this one, from serve() on
        self.engine: EngineServer | None = None
        #: what the metrics report (sio_core/socketio/counters.py)
        self.counters = ServerCounters()
        #: connection state recovery (config.connection_state_recovery), None when off
        self.recovery: Recovery | None = None
        self._recovery_from_config()
        #: the server's own events (new_namespace)
        self._events = EventEmitter()
        #: the main namespace, as ``io.sockets`` in the JavaScript server
        self.sockets: Namespace = self.of("/")

    # -- serving ----------------------------------------------------------------------------

    def configure(self, **changes: Any) -> None:
        """Change fields of the Config (each checked as Config checks it); before serve().
        ``python -m sio_core serve`` merges its options into the application's so."""
        if self.engine is not None:
            raise RuntimeError("configure() must come before serve()")
        self.config = replace(self.config, **changes)
        self.parser = PARSERS[self.config.parser]
        self._recovery_from_config()

    def _recovery_from_config(self) -> None:
        recovery = self.config.connection_state_recovery
        self.recovery = Recovery(self, recovery) if recovery is not None else None

    async def serve(self, host: str = "127.0.0.1", port: int = 3000, *,
                    store: Store | None = None, owner: str | None = None,
                    reuse_port: bool = False,
                    sock: socket_module.socket | None = None,
                    ssl: SSLContext | None = None) -> None:
        """Serve this application on ``host:port`` (Engine.IO at ``config.path``); returns
        once listening. With a ``store``, broadcasts, acks and socket queries span every
        worker and node of it, and a request for another worker's session is forwarded to
        it. See :meth:`EngineServer.serve <sio_core.engine.server.EngineServer.serve>` for
        the rest; :meth:`close` stops."""
        engine = self._engine_for(store)
        await engine.serve(host, port, store=store, owner=owner, reuse_port=reuse_port,
                           sock=sock, ssl=ssl)
        if self.observer is not None:
            self.observer.serving()

    async def start(self, *, store: Store | None = None,
                    owner: str | None = None) -> EngineServer:
        """serve() without listening: the Engine.IO server that answers another server's
        requests (sio_core.asgi and sio_core.aiohttp hand them to its ``handle``)."""
        engine = self._engine_for(store)
        await engine.start(store=store, owner=owner)
        if self.observer is not None:
            self.observer.serving()
        return engine

    def _engine_for(self, store: Store | None) -> EngineServer:
        if self.engine is not None:
            raise RuntimeError("serve() was called already")
        engine = EngineServer(self, self.config, health=self.stats, hooks=self.engine_hooks)
        if store is not None:
            self.attach_store(store)  # before the store starts: its handlers must be there
        self.engine = engine
        return engine

    async def drain(self, timeout: float) -> bool:
        """The first phase of close(), for a supervisor that stops its workers in two (see
        :meth:`EngineServer.drain <sio_core.engine.server.EngineServer.drain>`)."""
        return await self._engine().drain(timeout)

    def retire(self) -> None:
        """Stop listening before a drain, the other workers staying (see
        :meth:`EngineServer.retire <sio_core.engine.server.EngineServer.retire>`)."""
        self._engine().retire()

    async def close(self, timeout: float | None = None) -> None:
        """Stop serving: every client is told, within ``timeout`` seconds (default
        ``config.shutdown_timeout``); then the store serve() was given is closed."""
        await self._engine().close(timeout)

    def _engine(self) -> EngineServer:
        if self.engine is None:
            raise RuntimeError("not serving: call serve() first")
        return self.engine

    # -- namespaces -------------------------------------------------------------------------

    @overload
    def of(self, name: str) -> Namespace: ...
    @overload
    def of(self, name: re.Pattern[str] | Matcher) -> ParentNamespace: ...

    def of(self, name: str | re.Pattern[str] | Matcher) -> Namespace | ParentNamespace:
        """A namespace by name (created on first use), or a dynamic parent namespace for a
        regex or a ``matcher(name, auth) -> bool`` callable (sync or async): a client's
        CONNECT to a name it matches creates that child namespace."""
        if isinstance(name, str):
            if not name.startswith("/"):
                name = "/" + name
            namespace = self._namespaces.get(name)
            if namespace is None:
                namespace = Namespace(self, name, self.counters.namespace(name))
                self._added(namespace)
            return namespace
        parent = ParentNamespace(self, name)
        self._parents.append(parent)
        return parent

    def _added(self, namespace: Namespace) -> None:
        self._namespaces[namespace.name] = namespace
        if self.cluster is not None:
            self.cluster.namespace_added(namespace.name)
        for listener in self._events._take("new_namespace"):
            handlers.call(listener.fn, (namespace,), "new_namespace")

    def register_namespace(self, handler: AsyncNamespace) -> None:
        """Serve a class-based namespace (python-socketio's shape, see
        :class:`~sio_core.socketio.class_namespace.AsyncNamespace`): its ``on_<event>``
        methods handle the events of the namespace of its name."""
        handler.attach(self)

    @property
    def namespaces(self) -> dict[str, Namespace]:
        return dict(self._namespaces)

    def namespace_now(self, name: str) -> Namespace | None:
        """The namespace of that name if it exists already (no dynamic match needed)."""
        return self._namespaces.get(name)

    async def find_namespace(self, name: str, auth: dict[str, Any]) -> Namespace | None:
        namespace = self._namespaces.get(name)
        if namespace is not None:
            return namespace
        for parent in self._parents:
            if await parent.matches(name, auth):
                namespace = self._namespaces.get(name)  # another client may have made it
                if namespace is None:
                    if self._dynamic_namespaces_full():
                        return None  # answered as an unknown namespace
                    namespace = parent.create_child(name)
                    self._added(namespace)
                return namespace
        return None

    def _dynamic_namespaces_full(self) -> bool:
        limit = self.config.max_dynamic_namespaces
        if limit is None or sum(len(p.children) for p in self._parents) < limit:
            self._warned_full = False
            return False
        if not self._warned_full:  # once per episode: refusals must not flood the log
            self._warned_full = True
            logger.warning("refusing new dynamic namespaces: %d exist (max_dynamic_namespaces)",
                           limit)
        return True

    def forget_namespace(self, namespace: Namespace) -> None:
        """An empty child namespace goes (cleanup_empty_child_namespaces)."""
        name = namespace.name
        if self._namespaces.get(name) is namespace:
            del self._namespaces[name]
            if self.cluster is not None:
                self.cluster.namespace_removed(name)

    # -- the main namespace -----------------------------------------------------------------

    @overload
    def on(self, event: str) -> Callable[[F], F]: ...
    @overload
    def on(self, event: str, handler: F) -> F: ...

    def on(self, event: str, handler: F | None = None) -> F | Callable[[F], F]:
        """Listen on the main namespace (``io.on("connection")``), or, for
        ``"new_namespace"``, on the server: ``handler(namespace)`` for each namespace
        created after it was added (by ``of()`` or a dynamic match), as the reference's."""
        if event in SERVER_EVENTS:
            return self._events.on(event) if handler is None else self._events.on(event, handler)
        return self.sockets.on(event) if handler is None else self.sockets.on(event, handler)

    @overload
    def once(self, event: str) -> Callable[[F], F]: ...
    @overload
    def once(self, event: str, handler: F) -> F: ...

    def once(self, event: str, handler: F | None = None) -> F | Callable[[F], F]:
        emitter = self._events if event in SERVER_EVENTS else self.sockets
        return emitter.once(event) if handler is None else emitter.once(event, handler)

    def off(self, event: str | None = None, handler: Callable[..., Any] | None = None) -> None:
        if event in SERVER_EVENTS:
            self._events.off(event, handler)
        else:
            self.sockets.off(event, handler)

    def use(self, middleware: Middleware) -> Middleware:
        self.sockets.use(middleware)
        return middleware

    def _operator(self) -> BroadcastOperator:
        return BroadcastOperator(self.sockets)

    def attach_store(self, store: Store) -> None:
        """Make broadcasts, acks and socket queries span every worker of the store."""
        self.cluster = Cluster(self, store)
        if self.recovery is not None:
            self.recovery.use_store(store)

    def server_side_emit(self, event: str, *args: Any) -> Awaitable[None]:
        return self.sockets.server_side_emit(event, *args)

    async def server_side_emit_with_ack(self, event: str, *args: Any,
                                        timeout: float | None = None) -> list[Any]:
        return await self.sockets.server_side_emit_with_ack(event, *args, timeout=timeout)

    # -- the Engine.IO handler --------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """Added to the worker's health answer: a leak of namespaces shows there."""
        return {"namespaces": len(self._namespaces),
                "dynamic_namespaces": sum(len(p.children) for p in self._parents)}

    def metric_families(self) -> list[Family]:
        """Added to the worker's metrics (sio_core/engine/metrics)."""
        return families(self)

    def on_open(self, socket: Session) -> None:
        client = socket.context = Client(self, socket)
        if self.observer is not None:
            self.observer.client_opened(client)

    def on_message(self, socket: Session, data: str | bytes) -> None:
        client: Client = socket.context
        client.on_message(data)  # counted there (a compiled module)

    def on_close(self, socket: Session, reason: CloseReason) -> None:
        client: Client | None = socket.context
        if client is not None:
            client.on_close(reason)
            if self.observer is not None:
                self.observer.client_closed(client, reason)
