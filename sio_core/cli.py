"""``python -m sio_core serve [APP] [options]``: run a server.

APP is ``module:attribute`` (like uvicorn's app argument): the attribute is an application
object, or a callable returning one. Without APP the chat demo (sio_core.demo) is served.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import inspect
import logging
import os
import re
import signal
import socket
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from . import __version__, build
from .config import (
    MAX_SECONDS,
    PARSER_NAMES,
    Config,
    check_count,
    check_forwarded_allow_ips,
    check_path,
    check_seconds,
    check_transports,
)
from .exceptions import ServeError
from .listen import bind_unix, tls_context
from .logs import JSONFormatter
from .protocol.sid import new_owner
from .stores.redis_url import SUBSCRIPTION_MODES
from .stores.redis_url import parse as parse_store_url

if TYPE_CHECKING:
    from .engine.server import Service
    from .stores.base import Store
    from .stores.redis import RedisStore

logger = logging.getLogger("sio_core")

DEFAULT_APP = "sio_core.demo.app:io"
#: see --gc-threshold: 10,000 gives most of the gain (Python 3.13 itself moved to 2,000)
GC_THRESHOLD = 10_000
#: with it, the second threshold (young collections per middle one; Python's is 10): at
#: 10,000 open connections the middle collections, and the full ones they lead to, still
#: cost a fifth of opening one (README, "One process-wide setting")
GC_THRESHOLD_1 = 100
_NODE_ID = re.compile(r"[A-Za-z0-9_~-]{1,48}")


def tune_gc(first: int) -> None:
    """``--gc-threshold``: the collector's first threshold, and with it the second
    (:data:`GC_THRESHOLD_1`); 0 leaves Python's own. Set by the program, never by the
    library. Python 3.11's 700 runs a young collection every 700 allocations, and each tenth
    a middle one, which may lead to a full pass over every live object: with thousands of
    connections that was ~20% of opening one (benchmarks/RESULTS.md), and at 10,000 the
    middle collections every tenth of 10,000-allocation young ones still cost ~20%
    (connections/s, 2,700-3,200 against ~3,470 with a middle one every hundredth; PROFILE.md).
    Cyclic garbage only lives a little longer."""
    if first > 0:
        gc.set_threshold(first, GC_THRESHOLD_1, gc.get_threshold()[2])


class _Parser(argparse.ArgumentParser):
    """A bad option is one line on stderr and exit 2 (argparse's own status), without the
    usage block: the line names the option and what it must be; --help has the rest."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _checked(parse: Callable[[str], Any], check: Callable[[Any], Any],
             what: str) -> Callable[[str], Any]:
    """An argparse type: ``parse`` the text (else "'x' is not <what>"), then ``check`` the
    value with the Config's own rule (its ValueError says what it must be)."""
    def convert(text: str) -> Any:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        try:
            return check(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return convert


def _port(text: str) -> int:
    port = int(text) if text.isdigit() else -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text if port >= 0 else repr(text)} is not a TCP"
                                         " port (1-65535)")
    return port


def _workers(text: str) -> int:
    if text == "auto":
        return os.cpu_count() or 1
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number, or 'auto'")
    if int(text) < 1:
        raise argparse.ArgumentTypeError("must be a whole number of at least 1, or 'auto'")
    return int(text)


def _drain_seconds(value: float) -> float:
    if not 0 <= value <= MAX_SECONDS:
        raise ValueError(f"must be a number of seconds, 0 or more (got {value!r})")
    return value


def _node_id(text: str) -> str:
    # it is part of every sid's owner, "<node>-w<N>-<nonce>" (sio_core/protocol/sid.py)
    if not _NODE_ID.fullmatch(text):
        raise argparse.ArgumentTypeError(f"must be 1-48 characters of [A-Za-z0-9_~-] (got"
                                         f" {text!r})")
    return text


def _store_url(text: str) -> str:
    try:
        parse_store_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _store_key(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _directory(text: str) -> str:
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"not a directory: {text!r}")
    return text


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


_transports = _comma_list


def _file(text: str) -> str:
    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"not a file: {text!r}")
    return text


def _socket_path(text: str) -> str:
    if not text or len(os.fsencode(text)) > 107:  # sun_path: 108 bytes with the NUL
        raise argparse.ArgumentTypeError(f"must be a path of 1-107 bytes (got {text!r})")
    return text


SECONDS = _checked(float, check_seconds, "a number of seconds")


def _endpoint_path(text: str) -> str:
    check_path(text)  # as an Engine.IO path, but kept as given: it is matched exactly
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m sio_core")
    parser.add_argument("--version", action="version", version=f"sio_core {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("app", nargs="?", default=None,
                       help="module:attribute of the application (default: the chat demo)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="the address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    serve.add_argument("--port", type=_port, default=3000, help="the TCP port (default 3000)")
    serve.add_argument("--uds", default=None, metavar="PATH", type=_socket_path,
                       help="listen on this unix socket instead of host:port (made 0o666; a"
                            " stale one is replaced)")
    serve.add_argument("--ssl-certfile", default=None, type=_file, metavar="PEM",
                       help="serve HTTPS and WSS with this certificate (chain)")
    serve.add_argument("--ssl-keyfile", default=None, type=_file, metavar="PEM",
                       help="the certificate's private key (default: in --ssl-certfile)")
    serve.add_argument("--forwarded-allow-ips", default=None, metavar="LIST",
                       type=_checked(_comma_list, check_forwarded_allow_ips, "a list"),
                       help="comma-separated proxies whose X-Forwarded-For/-Proto are trusted"
                            " (addresses, networks, 'unix', or '*'; default: none)")
    serve.add_argument("--log-level", default="info",
                       choices=["critical", "error", "warning", "info", "debug"],
                       help="the least severe messages logged (default info)")
    serve.add_argument("--log-format", default="text", choices=["text", "json"],
                       help="text lines, or one JSON object per line (default text)")
    serve.add_argument("--path", default=None, type=_checked(str, check_path, "a path"),
                       help="Engine.IO path (default /socket.io/)")
    serve.add_argument("--transports", default=None,
                       type=_checked(_transports, check_transports, "a list of transports"),
                       help="comma-separated allowed transports (polling,websocket)")
    serve.add_argument("--ping-interval", type=SECONDS, default=None, help="seconds")
    serve.add_argument("--ping-timeout", type=SECONDS, default=None, help="seconds")
    serve.add_argument("--max-payload", type=_checked(int, check_count, "a whole number"),
                       default=None, help="bytes")
    serve.add_argument("--parser", default=None, choices=PARSER_NAMES,
                       help="how Socket.IO packets are written: default (JSON) or msgpack (the"
                            " clients use socket.io-msgpack-parser / serializer='msgpack')")
    serve.add_argument("--per-message-deflate", action="store_true",
                       help="compress WebSocket messages with clients that offer it"
                            " (permessage-deflate; costs CPU per message and memory per"
                            " connection)")
    serve.add_argument("--no-http-compression", action="store_true",
                       help="never gzip/deflate long-polling answers (by default those of"
                            " 1024 bytes or more are, for clients that accept it)")
    serve.add_argument("--cors-origin", action="append", default=None,
                       help="allowed CORS origin ('*' for any); repeatable")
    serve.add_argument("--static", default=None, type=_directory,
                       help="directory served at /")
    metrics = serve.add_mutually_exclusive_group()
    metrics.add_argument("--metrics-path", default=None,
                         type=_checked(str, _endpoint_path, "a path"),
                         help="where GET answers the Prometheus metrics of every worker"
                              " (default /metrics)")
    metrics.add_argument("--no-metrics", action="store_true",
                         help="serve no metrics (the workers are never asked for theirs)")
    serve.add_argument("--admin-ui", action="store_true",
                       help="serve the Socket.IO admin UI at /admin/ (the application calls"
                            " sio_core.admin.instrument)")
    serve.add_argument("--workers", default="1", type=_workers,
                       help="worker processes on one port: a number, or 'auto' (one per CPU)")
    serve.add_argument("--store", default=None, type=_store_url,
                       help="cluster store URL, e.g. redis://host:6379/0 (default: with "
                            "several workers, the master process relays)")
    serve.add_argument("--store-key", default="socket.io", type=_store_key,
                       help="key prefix of the store's channels and keys (the JavaScript "
                            "redis adapter's `key`; default socket.io)")
    serve.add_argument("--store-subscription-mode", default="dynamic",
                       choices=SUBSCRIPTION_MODES,
                       help="on a Redis Cluster, the subscriptionMode of the JavaScript "
                            "createShardedAdapter servers sharing it (default dynamic, theirs:"
                            " each room's own channel is read too; static for sio_core alone)")
    serve.add_argument("--shutdown-timeout", type=_checked(float, _drain_seconds,
                                                           "a number of seconds"),
                       default=10.0, help="seconds to drain on SIGTERM before workers are killed")
    serve.add_argument("--node-id", default=None, type=_node_id,
                       help="this node's id in a cluster")
    serve.add_argument(
        "--gc-threshold", type=_checked(int, lambda n: check_count(n, 0), "a whole number"),
        default=GC_THRESHOLD, metavar="N",
        help="the garbage collector's first threshold in each worker (default "
             f"{GC_THRESHOLD}, and then the second {GC_THRESHOLD_1}; 0 keeps Python's own,"
             " 700 and 10)")
    serve.add_argument(
        "--loop", choices=("auto", "uvloop", "asyncio"), default="auto",
        help="each worker's event loop: auto (the default) is uvloop when it is installed,"
             " which runs fewer instructions per message and per connection (README, Speed),"
             " else asyncio's own")
    return parser


def check_together(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What one option's check cannot see: options that go together (exit 2, one line)."""
    if args.ssl_keyfile and not args.ssl_certfile:
        parser.error("argument --ssl-keyfile: needs --ssl-certfile")
    if args.ssl_certfile:
        try:
            tls(args)
        except (OSError, ssl.SSLError) as exc:
            parser.error(f"argument --ssl-certfile: cannot load the certificate and key: {exc}")


def load_app(spec: str) -> Service:
    """The application ``module:attribute`` names: a Socket.IO ``Server`` or an
    ``EngineServer`` as it is, a bare Engine.IO handler (``on_open``, ``on_message``,
    ``on_close``) under an EngineServer of its own; a class or another callable is called
    first, to make one."""
    from .engine.server import EngineServer
    from .engine.socket import is_engine_handler
    from .socketio.server import Server

    module_name, _, attr = spec.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in (attr or "app").split("."):
        obj = getattr(obj, part)
    ready = isinstance(obj, Server | EngineServer) or is_engine_handler(obj)
    if inspect.isclass(obj) or (callable(obj) and not ready):
        obj = obj()
    if isinstance(obj, Server | EngineServer):
        return obj
    if is_engine_handler(obj):
        return EngineServer(obj)
    raise TypeError(f"a {type(obj).__name__}, not a Server, an EngineServer or an Engine.IO"
                    " handler")


def config_changes(args: argparse.Namespace, base: Config) -> dict[str, Any]:
    """The Config fields the command line sets: only the options given, merged into the
    application's own Config (Service.configure), whose other fields stay."""
    changes: dict[str, Any] = {}
    if args.path:
        changes["path"] = args.path
    if args.transports:
        changes["transports"] = args.transports
    if args.ping_interval is not None:
        changes["ping_interval"] = args.ping_interval
    if args.ping_timeout is not None:
        changes["ping_timeout"] = args.ping_timeout
    if args.max_payload is not None:
        changes["max_payload"] = args.max_payload
    if args.parser:
        changes["parser"] = args.parser
    if args.forwarded_allow_ips is not None:
        changes["forwarded_allow_ips"] = args.forwarded_allow_ips
    if args.per_message_deflate:
        changes["per_message_deflate"] = True
    if args.no_http_compression:
        changes["http_compression"] = False
    if args.cors_origin:
        changes["cors_allowed_origins"] = "*" if "*" in args.cors_origin else args.cors_origin
    if args.static:
        changes["static_dir"] = args.static
    if args.no_metrics:
        changes["metrics_path"] = None
    elif args.metrics_path:
        changes["metrics_path"] = args.metrics_path
    if args.admin_ui:
        from .admin.ui import ui_files

        changes["static_files"] = {**base.static_files, **ui_files()}
    return changes


async def _serve(args: argparse.Namespace, app: Service) -> int:
    """One worker: ``app.serve()`` until SIGTERM or SIGINT (or the master's word), then
    drain and ``app.close()`` within --shutdown-timeout. Under a master the drain has two
    phases, told over its control channel (sio_core/control.py)."""
    from .control import WorkerControl
    from .supervisor import ENV_OWNER, ENV_REUSE_PORT

    app.configure(**config_changes(args, app.config))
    stop = asyncio.Event()
    owner = os.environ.get(ENV_OWNER) or new_owner(args.node_id)
    try:
        sock = listening_socket(args, app.config.backlog)
    except OSError as exc:
        logger.error("cannot listen on %s: %s", args.uds, exc.strerror or exc)
        return 1
    try:
        await app.serve(args.host, args.port, store=pick_store(args, owner, on_lost=stop.set),
                        owner=owner, reuse_port=os.environ.get(ENV_REUSE_PORT) == "1",
                        sock=sock, ssl=tls(args))
    except ServeError as exc:
        logger.error("%s", exc)
        return 1
    logger.info("listening on %s%s", where(args), app.config.path)
    if not os.environ.get(ENV_OWNER):
        build.announce()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    if os.environ.get(ENV_OWNER):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the master decides; it sends SIGTERM
    else:
        loop.add_signal_handler(signal.SIGINT, stop.set)
    # the master's channel (liveness, readiness, the drain's second phase); its loss means
    # the master is gone, and so are we
    control = WorkerControl.from_environment(on_stop=stop.set)
    if control is not None:
        control.ready()
    await stop.wait()
    logger.info("shutting down")
    # the master kills what is left at shutdown_timeout: keep a second for closing
    deadline = loop.time() + max(0.0, args.shutdown_timeout - 1)
    if control is not None and control.retiring:
        app.retire()  # the other workers take the new connections (and handshakes)
    await app.drain(deadline - loop.time())
    if control is not None:
        await control.drained(deadline - loop.time())
    await app.close(max(0.0, deadline - loop.time()) + 0.5)
    if control is not None:
        control.close()
    if args.uds and control is None:
        with contextlib.suppress(OSError):
            os.unlink(args.uds)  # bound here (with workers, the master removes it)
    return 0


def listening_socket(args: argparse.Namespace, backlog: int) -> socket.socket | None:
    """The unix socket to serve on: the master's (inherited, with --workers), or bound here
    with --uds; None for host:port."""
    from .supervisor import ENV_LISTEN_FD

    inherited = os.environ.get(ENV_LISTEN_FD)
    if inherited:
        return socket.socket(fileno=int(inherited))
    if args.uds:
        return bind_unix(args.uds, backlog)
    return None


def tls(args: argparse.Namespace) -> ssl.SSLContext | None:
    """The TLS context of --ssl-certfile / --ssl-keyfile (main() checked they load)."""
    return tls_context(args.ssl_certfile, args.ssl_keyfile) if args.ssl_certfile else None


def where(args: argparse.Namespace) -> str:
    """Where the server listens, for the log: a URL, or the unix socket."""
    scheme = "https" if args.ssl_certfile else "http"
    if args.uds:
        return f"{scheme} on unix socket {args.uds}, path "
    return f"{scheme}://{args.host}:{args.port}"


def pick_store(args: argparse.Namespace, owner: str,
               on_lost: Callable[[], None]) -> Store | None:
    """This worker's store: Redis with --store; else the master's hub when a master runs
    the workers; else none (a lone worker)."""
    from .supervisor import ENV_HUB

    if args.store:
        return make_store(args.store, owner, args.store_key, args.store_subscription_mode)
    hub = os.environ.get(ENV_HUB)
    if not hub:
        return None
    from .stores.hub import HubStore

    store = HubStore(owner, hub)
    store.on_lost = on_lost  # the master is gone: so are we
    return store


def make_store(url: str, owner: str, key: str = "socket.io",
               subscription_mode: str = "dynamic") -> RedisStore:
    """A RedisStore for any of its URL forms (ValueError naming what is wrong)."""
    from .stores.redis import RedisStore

    return RedisStore(url, owner=owner, key=key, subscription_mode=subscription_mode)


def check_store(url: str) -> str | None:
    """One line saying why the store cannot be used, or None."""
    try:
        store = make_store(url, "check")
    except ValueError as exc:
        return str(exc)

    async def ping() -> str | None:
        try:
            await store.ping()
        except ConnectionError as exc:
            return str(exc)
        finally:
            await store.close_clients()
        return None

    return asyncio.run(ping())


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_together(parser, args)
    from .supervisor import ENV_OWNER, ENV_WORKER_ID

    worker_id = os.environ.get(ENV_WORKER_ID)
    role = f"worker #{worker_id}" if worker_id else "master"
    if args.log_format == "json":
        handler = logging.StreamHandler()
        handler.setFormatter(JSONFormatter(role))
        logging.basicConfig(level=args.log_level.upper(), handlers=[handler])
    else:
        logging.basicConfig(level=args.log_level.upper(),
                            format=f"%(asctime)s [{role}] %(levelname)s %(name)s: %(message)s")

    # one line per websocket opened is noise at any scale
    logging.getLogger("websockets").setLevel(max(logging.WARNING, logging.root.level))
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        app = load_app(args.app or DEFAULT_APP)
    except Exception as exc:
        logger.error("cannot load application %r: %s: %s", args.app, type(exc).__name__, exc)
        return 2
    workers: int = args.workers
    if args.admin_ui:
        from .admin.ui import ui_files

        try:
            ui_files()
        except FileNotFoundError as exc:
            logger.error("--admin-ui: %s", exc)
            return 2
    if args.store and not os.environ.get(ENV_OWNER):
        problem = check_store(args.store)
        if problem is not None:
            logger.error("%s", problem)
            return 1
    if workers > 1 and not os.environ.get(ENV_OWNER):
        return _supervise(args, argv, workers)
    tune_gc(args.gc_threshold)
    if args.loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if args.loop == "uvloop":
                logger.error("--loop uvloop: uvloop is not installed (pip install uvloop)")
                return 2
        else:
            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        return asyncio.run(_serve(args, app))
    except KeyboardInterrupt:
        return 0


def _supervise(args: argparse.Namespace, argv: list[str] | None, workers: int) -> int:
    from .supervisor import SupervisorOptions, run

    worker_args = list(sys.argv[1:] if argv is None else argv)
    opts = SupervisorOptions(workers=workers, host=args.host, port=args.port,
                             worker_args=worker_args, shutdown_timeout=args.shutdown_timeout,
                             use_hub=not args.store, uds=args.uds, where=where(args))
    if args.node_id:
        opts.node_id = args.node_id
    return run(opts)


if __name__ == "__main__":
    sys.exit(main())
