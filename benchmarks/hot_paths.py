"""In-process microbenchmark of the Socket.IO layer's hot paths: a broadcast's fan-out, an echo.

    .venv/bin/python benchmarks/hot_paths.py [--rounds N] [--sizes 1000,5000]

A real Server and real Engine.IO sessions over a stand-in websocket transport that frames and
joins what it is given as the real one does but writes nothing (no sockets): what is timed is
the Socket.IO layer, the Engine.IO session's queue and the write path up to the syscall, so that
a few tens of nanoseconds per message show above the noise. Timed in CPU time of this process
(``time.process_time``), which another process on a loaded machine disturbs less than the wall
clock. To compare two versions of the code, run it in each one's checkout (with that checkout's
.venv: an editable install is found before PYTHONPATH); on a loaded machine, alternate the runs.
Prints the best of ``--rounds`` runs of each scenario: nanoseconds per delivery (a broadcast
to the whole namespace, to a room of every client, to the room except one client; about
200,000 deliveries a run, as bursts of broadcasts in one loop turn) and per echoed message.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any

from servers import sio_app as benchmark_app  # benchmarks/servers: this script's directory

from sio_core import Server
from sio_core.engine.socket import EngineSocket
from sio_core.engine.websocket import frame_of
from sio_core.protocol import engineio
from sio_core.protocol.session import EngineSession, Timing, Transport

DELIVERIES = 200_000
ECHOES = 20_000

_sids = itertools.count()


class NullWebSocket:
    """A websocket transport that frames and joins its packets, as the real one, and drops
    the bytes."""

    name = "websocket"
    writable = True

    def bind(self, on_message: Any, on_close: Any) -> None:
        pass

    def send_packets(self, packets: list[engineio.Packet]) -> None:
        if len(packets) == 1:
            frame_of(packets[0])
        else:
            b"".join([p.ws_frame or frame_of(p) for p in packets])

    def close(self) -> None:
        pass


def session(io: Server) -> EngineSocket:
    """A client connected to "/" (its CONNECT reply taken)."""
    core = EngineSession(f"s{next(_sids)}", Transport.WEBSOCKET, Timing(25, 20), 0.0)
    conn = EngineSocket(core, io, lambda _: None, NullWebSocket())
    conn.opened()
    conn.receive([engineio.message("0")])
    core.take_output()
    return conn


async def best(rounds: int, run: Callable[[], float]) -> float:
    times = []
    for _ in range(rounds):
        start = time.process_time()
        count = run()
        await asyncio.sleep(0)  # the end-of-turn flush: every recipient's write
        times.append((time.process_time() - start) / count * 1e9)
    return min(times)


async def fan_out(rounds: int, size: int) -> None:
    io = Server()
    for _ in range(size):
        session(io)
    sockets = list(io.sockets.sockets.values())
    for socket in sockets:
        socket.join("room")
    sockets[0].join("one")
    payload = {"user": "bench", "text": "hello, world", "n": 12345}
    broadcasts = max(1, DELIVERIES // size)
    targets = {"namespace": io.sockets, "room": io.to("room"),
               "room except one": io.to("room").except_("one")}
    for name, target in targets.items():
        def burst(target: Any = target) -> float:
            for _ in range(broadcasts):
                target.emit("m", payload)
            return broadcasts * size

        print(f"broadcast to {name:<16} {await best(rounds, burst):7.1f} ns per delivery "
              f"({size} recipients, {broadcasts} broadcasts a turn)")


async def echo(rounds: int) -> None:
    sender = session(benchmark_app.io)  # the benchmark's application: "echo" acks its data
    message = [engineio.message('21["echo","hello"]')]

    def run() -> float:
        for _ in range(ECHOES):
            sender.receive(message)
        return ECHOES

    print(f"echo (sync handler, ack): {await best(rounds, run):7.1f} ns per message")


async def main(rounds: int, sizes: list[int]) -> None:
    for size in sizes:
        await fan_out(rounds, size)
    await echo(rounds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--sizes", default="100,1000,5000,10000")
    args = parser.parse_args()
    asyncio.run(main(args.rounds, [int(n) for n in args.sizes.split(",")]))
