"""In-process microbenchmark of the Socket.IO layer's hot paths: a broadcast's fan-out, an echo.

    .venv/bin/python benchmarks/hot_paths.py [--rounds N]

A real Server and real Engine.IO sessions with no transport under them (as in the in-process
tests): what is timed is the Socket.IO layer and the Engine.IO session's queue, without sockets,
so that a few tens of nanoseconds per message (what the metrics' counters add) show above the
noise. To compare two versions of the code, run it in each one's checkout (with that checkout's
.venv: an editable install is found before PYTHONPATH); on a loaded machine, alternate the runs.
Prints the best of ``--rounds`` runs of each scenario: nanoseconds per delivery (broadcast) and
per echoed message.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections.abc import Callable

from servers import sio_app as benchmark_app  # benchmarks/servers: this script's directory

from sio_core import Server
from sio_core.protocol import engineio
from sio_core.protocol.session import EngineSession, Timing, Transport
from sio_core.transports.engine_socket import EngineSocket

RECIPIENTS = 1000
BROADCASTS = 200
ECHOES = 20_000

_sids = itertools.count()


def session(io: Server) -> EngineSocket:
    """A client connected to "/" (its CONNECT reply taken)."""
    core = EngineSession(f"s{next(_sids)}", Transport.WEBSOCKET, Timing(25, 20), 0.0)
    conn = EngineSocket(core, io, lambda _: None)
    conn.opened()
    conn.receive([engineio.message("0")])
    core.take_output()
    return conn


def best(rounds: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(rounds))


async def main(rounds: int) -> None:
    io = benchmark_app.io  # the benchmark's application: "echo" acks its data
    conns = [session(io) for _ in range(RECIPIENTS)]

    def fan_out() -> float:
        start = time.perf_counter()
        for n in range(BROADCASTS):
            io.emit("m", n)
        elapsed = time.perf_counter() - start
        for conn in conns:
            conn.core.take_output()
        return elapsed / (BROADCASTS * RECIPIENTS) * 1e9

    sender = conns[0]
    message = [engineio.message('21["echo","hello"]')]

    def echo() -> float:
        # the ack goes out through the session's pump (no websocket under it: dropped)
        start = time.perf_counter()
        for _ in range(ECHOES):
            sender.receive(message)
        return (time.perf_counter() - start) / ECHOES * 1e9

    print(f"broadcast fan-out: {best(rounds, fan_out):7.1f} ns per delivery"
          f" ({RECIPIENTS} recipients)")
    print(f"echo (sync handler, ack): {best(rounds, echo):7.1f} ns per message")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    asyncio.run(main(parser.parse_args().rounds))
