"""In-process microbenchmark of the server's hot paths, whole stack, no sockets.

    .venv/bin/python benchmarks/hot_paths.py [--rounds N]            best-of-N timings
    .venv/bin/python benchmarks/hot_paths.py --profile ws_echo       cProfile of one path
    .venv/bin/python benchmarks/hot_paths.py --instructions          callgrind: instructions/op

The real objects of a served application (``benchmarks/servers/sio_app.py``'s Socket.IO
``Server`` under an ``EngineServer``, one ``HTTPConnection`` per TCP connection) are fed the
bytes a client sends, through a stand-in asyncio transport whose ``write`` only keeps the
last answer (checked once per scenario, so what is measured is a working echo). What is
measured is the server's Python (and the C it calls) alone, without the kernel's TCP work;
the event loop's share is in where a path needs a loop turn (a long-poll GET that waits).

Scenarios, per operation:

- ``ws_echo``: one masked WebSocket frame ``421["echo","hello"]`` in, the ack frame out at
  the end of the loop turn (one turn per echo: the worst case, where no other client's
  answer shares the turn);
- ``polling_echo``: a long-poll GET that waits (one connection), a POST of the same packet
  (another), answered ``ok``, and the GET answered with the ack: two requests, as a client
  that always keeps a GET pending (engine.io-client) makes them;
- ``connect``: a new TCP connection, its WebSocket upgrade (101 and the OPEN packet), and the
  Socket.IO CONNECT of "/" answered (a loop turn); the connections stay open;
- ``fan_out``: one ``io.emit`` to 1000 websocket clients, per delivery.

``--instructions`` runs each scenario under ``valgrind --tool=callgrind`` at two operation
counts and prints the difference per operation: instruction counts are the same on a loaded
machine (timings are not), so two versions of the code compare exactly. Run it in each
one's checkout, with that checkout's .venv.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import pstats
import re
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from servers import sio_app as benchmark_app  # benchmarks/servers: this script's directory

from sio_core.engine.server import EngineServer
from sio_core.http.connection import HTTPConnection

_HERE = os.path.dirname(os.path.abspath(__file__))
_MASK = b"\x37\xfa\x21\x3d"  # a client's frames are masked (RFC 6455 section 5.3)


def client_frame(text: str, opcode: int = 0x1) -> bytes:
    payload = text.encode()
    assert len(payload) < 126
    masked = bytes(b ^ _MASK[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + _MASK + masked


def request(method: str, target: str, body: bytes = b"",
            headers: dict[str, str] | None = None) -> bytes:
    """A request as engine.io-client (in node) sends it."""
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1:3000", "Accept: */*",
             "Connection: keep-alive"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if method == "POST":
        lines += ["Content-Type: text/plain;charset=UTF-8", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


UPGRADE_HEADERS = {"Upgrade": "websocket", "Connection": "Upgrade",
                   "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                   "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"}
ECHO = '421["echo","hello"]'
ACK = '431["hello"]'


class StandIn:
    """The asyncio transport under one HTTPConnection: writes are kept, not sent."""

    __slots__ = ("closing", "last", "protocol", "writes")

    def __init__(self, protocol: HTTPConnection) -> None:
        self.protocol = protocol
        self.last = b""
        self.writes = 0
        self.closing = False
        protocol.connection_made(self)  # type: ignore[arg-type]

    def write(self, data: bytes) -> None:
        self.last = data
        self.writes += 1

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    abort = close


class Bench:
    def __init__(self) -> None:
        self.io = benchmark_app.io
        # no timer may fire while the paths run (under callgrind they run 50x slower): it
        # would make the counts vary, or close the polling client's connections
        hour = 3600.0
        self.io.configure(ping_interval=hour, ping_timeout=hour, connect_timeout=hour,
                          request_timeout=hour, keepalive_timeout=hour)
        self.engine = EngineServer(self.io, self.io.config)
        self.io.engine = self.engine

    def connection(self) -> StandIn:
        return StandIn(HTTPConnection(self.engine.handle, self.engine.config,
                                      connections=self.engine.connections))

    async def websocket(self) -> StandIn:
        """A connected websocket client of "/"."""
        conn = self.connection()
        conn.protocol.data_received(request("GET", "/socket.io/?EIO=4&transport=websocket",
                                            headers=UPGRADE_HEADERS))
        conn.protocol.data_received(client_frame("40"))
        await asyncio.sleep(0)  # the loop turn that writes what the input was answered
        assert conn.last.startswith(b'\x81') and b'40{"sid":"' in conn.last, conn.last
        return conn

    async def polling(self) -> tuple[str, StandIn, StandIn]:
        """A polling client connected to "/": its sid, and the connections of its GETs
        and POSTs."""
        gets, posts = self.connection(), self.connection()
        gets.protocol.data_received(request("GET", "/socket.io/?EIO=4&transport=polling&t=a1"))
        sid = re.search(rb'"sid":"([^"]+)"', gets.last).group(1).decode()  # type: ignore[union-attr]
        posts.protocol.data_received(request("POST", self.target(sid, "b1"), b"40"))
        gets.protocol.data_received(request("GET", self.target(sid, "b2")))
        await asyncio.sleep(0)
        assert gets.last.endswith(b'40{"sid":"' + gets.last.split(b'"sid":"')[-1]), gets.last
        return sid, gets, posts

    @staticmethod
    def target(sid: str, t: str) -> str:
        return f"/socket.io/?EIO=4&transport=polling&t={t}&sid={sid}"


async def scenarios(bench: Bench) -> dict[str, tuple[Callable[[int], Any], int]]:
    """name -> (run(n) doing n operations, coroutine or not; operations per unit of n)."""
    ws = await bench.websocket()
    frame = client_frame(ECHO)
    receive = ws.protocol.data_received

    async def ws_echo(n: int) -> None:
        for _ in range(n):
            receive(frame)
            await asyncio.sleep(0)  # the loop turn that writes the ack

    await ws_echo(1)
    assert ws.last == b"\x81" + bytes([len(ACK)]) + ACK.encode(), ws.last

    sid, gets, posts = await bench.polling()
    # the client's t= changes per request (yeast): one per request, made beforehand
    get_bytes = [request("GET", bench.target(sid, f"g{i:06d}")) for i in range(1000)]
    post_bytes = [request("POST", bench.target(sid, f"p{i:06d}"), ECHO.encode())
                  for i in range(1000)]
    get_in, post_in = gets.protocol.data_received, posts.protocol.data_received
    loop = asyncio.get_running_loop()

    async def polling_echo(n: int) -> None:
        for i in range(n):
            get_in(get_bytes[i % 1000])  # waits: the session has nothing for it yet
            post_in(post_bytes[i % 1000])  # answered "ok"; the ack answers the GET
            waiter = loop.create_future()
            loop.call_soon(waiter.set_result, None)
            await waiter  # one loop turn: the GET's task writes its answer

    await polling_echo(1)
    assert gets.last.endswith(b"\r\n\r\n" + ACK.encode()), gets.last
    assert posts.last.endswith(b"\r\n\r\nok"), posts.last

    async def connect(n: int) -> None:
        for _ in range(n):
            await bench.websocket()

    recipients = [await bench.websocket() for _ in range(1000)]

    async def fan_out(n: int) -> None:
        for i in range(n):
            bench.io.emit("m", i)
            await asyncio.sleep(0)  # the flush: one write per recipient

    await fan_out(1)
    assert recipients[-1].last == b"\x81\x09" + b'42["m",0]', recipients[-1].last
    # connect last: its connections would join the fan-out
    return {"ws_echo": (ws_echo, 1), "polling_echo": (polling_echo, 1),
            "fan_out": (fan_out, len(recipients)), "connect": (connect, 1)}


async def run_n(run: Callable[[int], Any], n: int) -> float:
    start = time.perf_counter()
    result = run(n)
    if asyncio.iscoroutine(result):
        await result
    return time.perf_counter() - start


COUNTS = {"ws_echo": 20_000, "polling_echo": 5_000, "fan_out": 100, "connect": 2_000}


async def main(args: argparse.Namespace) -> None:
    gc.set_threshold(10_000, *gc.get_threshold()[1:])  # as `serve` sets it
    bench = Bench()
    paths = await scenarios(bench)
    # what the scenarios set up is never collected: a collection then costs what the
    # operations allocated, not the harness's heap (which would make counts vary by 10%)
    gc.collect()
    gc.freeze()
    if args.count is not None:  # one scenario, n operations (under callgrind)
        run, _ = paths[args.scenario]
        await run_n(run, args.count)
        return
    if args.profile:
        run, _ = paths[args.profile]
        profiler = cProfile.Profile()
        profiler.enable()
        await run_n(run, COUNTS[args.profile])
        profiler.disable()
        pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.lines)
        return
    for name, (run, per) in paths.items():
        n = COUNTS[name]
        best = min([await run_n(run, n) for _ in range(args.rounds)])
        print(f"{name:13s} {best / (n * per) * 1e6:8.2f} us per op")


def collected(args: list[str]) -> int:
    """The instructions a Python process of ``args`` ran, counted by callgrind."""
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
           *args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "0"}).stderr
    match = re.search(r"Collected : (\d+)", out)
    assert match is not None, out
    return int(match.group(1))


def instructions(scenarios_: list[str], loop: str) -> None:
    """Instructions per operation of each scenario, from two callgrind runs."""
    for name in scenarios_:
        small = COUNTS[name] // 10
        totals = [collected([os.path.abspath(__file__), "--scenario", name, "--count", str(n),
                             "--loop", loop]) for n in (small, 2 * small)]
        per = (totals[1] - totals[0]) / small
        if name == "fan_out":
            per /= 1000
        print(f"{name:13s} {per:12,.0f} instructions per op", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", choices=sorted(COUNTS))
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--lines", type=int, default=40)
    parser.add_argument("--instructions", nargs="*", choices=sorted(COUNTS))
    parser.add_argument("--scenario", choices=sorted(COUNTS))
    parser.add_argument("--count", type=int)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = parser.parse_args()
    if args.instructions is not None:
        instructions(args.instructions or list(COUNTS), args.loop)
        sys.exit()
    if args.loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(main(args))
