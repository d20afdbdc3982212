"""The application of the running-server abuse tests (``tests/test_abuse.py``).

Served with ``python -m sio_core serve tests.apps.fuzz_app:io [--workers 2]``. Short timings, so
that every session a hostile client opens and abandons ends within a few seconds (the test then
checks that every worker is back to zero sessions); every handler takes any arguments (a fuzzer
sends any), so an error logged by the server is the server's, never the application's.

Namespaces: "/", "/admin" (a middleware: ``auth.token`` must be "s3cret"), the dynamic
``^/dyn-\\d+$`` (a regex) and ``/m-*`` (a matcher callable). Events, on every namespace:

=================  =========================================================================
event              what the server does
=================  =========================================================================
echo(*args)        async; acks its arguments back (bytes included)
echo_sync(*args)   sync; calls the ``ack`` callable with its arguments
shout(*args)       broadcasts "shout" with its arguments to the namespace (every worker)
join(room)         joins ``room`` if it is a string; acks the socket's room count
ask(*args)         emits "ask" to this client with a 1 s ack timeout (the answer is dropped)
gather(*args)      ``io.timeout(1).emit_with_ack("ask", *args)``; acks how many answered
=================  =========================================================================
"""

from __future__ import annotations

import re
from typing import Any

from sio_core import AckTimeoutError, Server, Socket
from tests.apps.sio_app import check_token  # auth.token must be "s3cret"

io = Server(
    cors_allowed_origins="*",
    ping_interval=1.0,
    # 5 s, not 1: during test_dynamic_namespaces_do_not_accumulate's 5,000 joins at once (under
    # coverage, on a slow machine) clients were closed for a ping timeout, failing that test in
    # two full runs of the suite of two (it passes alone); abandoned sessions still end within
    # wait_until_idle's 20 s
    ping_timeout=5.0,
    upgrade_timeout=2.0,
    close_timeout=1.0,
    connect_timeout=3.0,
    request_timeout=3.0,
    keepalive_timeout=2.0,
)


def without_ack(args: tuple[Any, ...]) -> tuple[Any, ...]:
    return args[:-1] if args and callable(args[-1]) else args


def setup(socket: Socket) -> None:
    @socket.on("echo")
    async def echo(*args: Any) -> tuple[Any, ...]:
        return without_ack(args)

    @socket.on("echo_sync")
    def echo_sync(*args: Any) -> None:
        if args and callable(args[-1]):
            args[-1](*args[:-1])

    @socket.on("shout")
    async def shout(*args: Any) -> None:
        await socket.broadcast.emit("shout", *without_ack(args))

    @socket.on("join")
    def join(*args: Any) -> int:
        if args and isinstance(args[0], str):
            socket.join(args[0])
        return len(socket.rooms)

    @socket.on("ask")
    def ask(*args: Any) -> None:
        socket.timeout(1).emit("ask", *without_ack(args), callback=lambda *_: None)

    @socket.on("gather")
    async def gather(*args: Any) -> int:
        try:
            return len(await io.timeout(1).emit_with_ack("ask", *without_ack(args)))
        except AckTimeoutError as exc:
            return len(exc.responses)


admin = io.of("/admin")
admin.use(check_token)
for namespace in (io, admin, io.of(re.compile(r"^/dyn-\d+$")),
                  io.of(lambda name, auth: name.startswith("/m-"))):
    namespace.on("connection", setup)
