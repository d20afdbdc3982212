"""``python -m sio_core serve [APP] [options]``: run a server.

APP is ``module:attribute`` (like uvicorn's app argument): the attribute is an application
object, or a callable returning one. Without APP the chat demo is served.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from .config import Config

logger = logging.getLogger("sio_core")

DEFAULT_APP = "web.app:io"
#: the repository root, where web/ lives (the demo is run from a checkout)
REPO_ROOT = Path(__file__).resolve().parent.parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sio_core")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("app", nargs="?", default=None,
                       help="module:attribute of the application (default: the chat demo)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=3000)
    serve.add_argument("--log-level", default="info",
                       choices=["critical", "error", "warning", "info", "debug"])
    serve.add_argument("--path", default=None, help="Engine.IO path (default /socket.io/)")
    serve.add_argument("--transports", default=None,
                       help="comma-separated allowed transports (polling,websocket)")
    serve.add_argument("--ping-interval", type=float, default=None, help="seconds")
    serve.add_argument("--ping-timeout", type=float, default=None, help="seconds")
    serve.add_argument("--max-payload", type=int, default=None, help="bytes")
    serve.add_argument("--cors-origin", action="append", default=None,
                       help="allowed CORS origin ('*' for any); repeatable")
    serve.add_argument("--static", default=None, help="directory served at /")
    return parser


def load_app(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in (attr or "app").split("."):
        obj = getattr(obj, part)
    if callable(obj) and not hasattr(obj, "on_message") and not hasattr(obj, "engine_handler"):
        obj = obj()
    return obj


def config_from_args(args: argparse.Namespace, base: Config) -> Config:
    changes: dict[str, Any] = {}
    if args.path:
        changes["path"] = args.path
    if args.transports:
        changes["transports"] = tuple(t.strip() for t in args.transports.split(",") if t.strip())
    if args.ping_interval is not None:
        changes["ping_interval"] = args.ping_interval
    if args.ping_timeout is not None:
        changes["ping_timeout"] = args.ping_timeout
    if args.max_payload is not None:
        changes["max_payload"] = args.max_payload
    if args.cors_origin:
        changes["cors_allowed_origins"] = "*" if "*" in args.cors_origin else args.cors_origin
    if args.static:
        changes["static_dir"] = args.static
    return replace(base, **changes)


async def _serve(args: argparse.Namespace, app: Any) -> int:
    from .server import EngineServer

    base = getattr(app, "config", None)
    config = config_from_args(args, base if isinstance(base, Config) else Config())
    handler = app.engine_handler(config) if hasattr(app, "engine_handler") else app
    server = EngineServer(handler, config)
    try:
        await server.listen(args.host, args.port)
    except OSError as exc:
        logger.error("cannot listen on %s:%s: %s", args.host, args.port, exc.strerror or exc)
        return 1
    logger.info("listening on http://%s:%s%s", args.host, args.port, config.path)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logger.info("shutting down")
    await server.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # one line per websocket opened is noise at any scale
    logging.getLogger("websockets").setLevel(max(logging.WARNING, logging.root.level))
    if args.app is None and str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        app = load_app(args.app or DEFAULT_APP)
    except Exception as exc:
        logger.error("cannot load application %r: %s: %s", args.app, type(exc).__name__, exc)
        return 2
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        return asyncio.run(_serve(args, app))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
