"""In-process microbenchmark of a room broadcast within one worker and across workers.

    .venv/bin/python benchmarks/bus_paths.py                       best-of-N CPU times
    .venv/bin/python benchmarks/bus_paths.py --instructions        callgrind: instructions
    .venv/bin/python benchmarks/bus_paths.py --profile hub_100     cProfile of one scenario

Every part is the real one, in one process and one event loop: Socket.IO ``Server``s under
``EngineServer``s, their websocket clients on stand-in transports (hot_paths.py's: writes are
kept, not sent), and for the scenarios across workers the master's ``Hub`` on a real Unix
socket with one ``HubStore`` per worker. What is counted is everything every server process
would run (the sending worker, the hub, the receiving worker), without the kernel's work.

A scenario sends bursts of 100 (``--burst-size``) broadcasts ``io.to("room").emit("m", i)`` (with
``.except_(a member)`` for ``*_except``) from a worker's loop turn, as benchmarks/run.py's
``bcast_room`` does, and waits until the last member of the last worker has the last one.
Members are spread evenly over the workers: ``one_M`` (1 worker, M members), ``hub_M`` (2
workers, M/2 members each), ``redis_M`` (2 workers on the Redis of ``--redis``, default
127.0.0.1:6379, under a key prefix of their own: what redis-server does is not counted);
``hubaway_M``: 2 workers on the hub, every member on the sender's (the other worker's cost
is a broadcast that reaches nobody there).

``--instructions`` runs each scenario under ``valgrind --tool=callgrind`` for 3 and 9
bursts and prints the difference per broadcast and per delivery: the same on a loaded
machine, so two versions of the code compare exactly.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import pstats
import sys
import tempfile
import time
from typing import Any

from hot_paths import UPGRADE_HEADERS, StandIn, client_frame, collected, request

from sio_core import Server, Socket
from sio_core.http.connection import HTTPConnection
from sio_core.stores.hub import Hub, HubStore
from sio_core.stores.redis import RedisStore

#: broadcasts sent in one loop turn (``--burst-size``): what a busy server's turn may carry
BURST = 100
HOUR = 3600.0

#: scenario -> (bus, members in all, except one member); bus: "one" (one worker), "hub" or
#: "redis" (two workers, the members on both), "hubaway" (two workers on the hub, every
#: member on the sender's: what a worker with no member of the room costs)
SCENARIOS = {
    f"{bus}_{members}{'_except' if except_one else ''}": (bus, members, except_one)
    for bus in ("one", "hub", "redis", "hubaway") for members in (100, 1000)
    for except_one in (False, True)}


def application() -> Server:
    """The benchmark application's part that matters here: a client of ``?room=`` joins it."""
    io = Server()
    # no timer may fire while the paths run (under callgrind they run 50x slower)
    io.configure(ping_interval=HOUR, ping_timeout=HOUR, connect_timeout=HOUR,
                 request_timeout=HOUR, keepalive_timeout=HOUR)

    @io.on("connection")
    def connection(socket: Socket) -> None:
        room = socket.handshake.query.get("room")
        if room:
            socket.join(room)

    return io


class Watched(StandIn):
    """The last member: its write that ends with ``expected`` completes ``done``."""

    __slots__ = ("done", "expected")

    def __init__(self, protocol: HTTPConnection) -> None:
        super().__init__(protocol)
        self.done: asyncio.Future[None] | None = None
        self.expected = b""

    def write(self, data: bytes) -> None:
        super().write(data)
        done = self.done
        if done is not None and data.endswith(self.expected) and not done.done():
            done.set_result(None)


class Worker:
    def __init__(self, io: Server) -> None:
        self.io = io
        self.members: list[StandIn] = []

    async def member(self, kind: type[StandIn] = StandIn) -> StandIn:
        engine = self.io.engine
        assert engine is not None
        conn = kind(HTTPConnection(engine.handle, engine.config,
                                      connections=engine.connections))
        conn.protocol.data_received(request(
            "GET", "/socket.io/?EIO=4&transport=websocket&room=room", headers=UPGRADE_HEADERS))
        conn.protocol.data_received(client_frame("40"))
        await asyncio.sleep(0)
        assert b'40{"sid":"' in conn.last, conn.last
        self.members.append(conn)
        return conn


async def cluster(bus: str, members: int, redis: str) -> list[Worker]:
    """The workers; the last member made (of the last worker that has members) is a
    Watched."""
    workers = 1 if bus == "one" else 2
    apps = [application() for _ in range(workers)]
    if bus == "one":
        await apps[0].start()
    elif bus in ("hub", "hubaway"):
        path = os.path.join(tempfile.mkdtemp(), "hub.sock")
        await Hub(path).start()
        for index, io in enumerate(apps):
            owner = f"bench-w{index + 1}-0000"
            await io.start(store=HubStore(owner, path), owner=owner)
    else:
        key = f"bus-paths-{os.getpid()}"
        for index, io in enumerate(apps):
            owner = f"bench-w{index + 1}-0000"
            await io.start(store=RedisStore(redis, owner=owner, key=key), owner=owner)
        while any(len(io.engine.store.peers) < 1 for io in apps):  # type: ignore[union-attr]
            await asyncio.sleep(0.05)
    out = [Worker(io) for io in apps]
    spread = 1 if bus == "hubaway" else workers
    for index in range(members):
        await out[index % spread].member(Watched if index == members - 1 else StandIn)
    return out


async def scenario(name: str, redis: str, size: int = BURST) -> tuple[Any, int]:
    """run(n): n bursts of ``size`` broadcasts; and the deliveries per broadcast."""
    bus, members, except_one = SCENARIOS[name]
    nodes = await cluster(bus, members, redis)
    sender = nodes[0].io
    last = [node for node in nodes if node.members][-1].members[-1]
    assert isinstance(last, Watched)
    operator = sender.to("room")
    if except_one:
        excepted = next(iter(sender.sockets.sockets.values()))
        operator = sender.to("room").except_(excepted.id)
    loop = asyncio.get_running_loop()

    async def run(n: int) -> None:
        for burst in range(n):
            last.done = done = loop.create_future()
            last.expected = f'42["m",{burst * size + size - 1}]'.encode()
            for i in range(burst * size, burst * size + size):
                await operator.emit("m", i)
            await done

    await run(1)
    return run, members - (1 if except_one else 0)


async def main(args: argparse.Namespace) -> None:
    gc.set_threshold(10_000, *gc.get_threshold()[1:])  # as `serve` sets it
    run, deliveries = await scenario(args.scenario, args.redis, args.burst_size)
    gc.collect()
    gc.freeze()
    if args.count is not None:
        await run(args.count)
        return
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        await run(args.bursts)
        profiler.disable()
        pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.lines)
        return
    best = float("inf")
    for _ in range(args.rounds):
        start = time.process_time()
        await run(args.bursts)
        best = min(best, time.process_time() - start)
    per = best / (args.bursts * args.burst_size)
    print(f"{args.scenario:16s} {per * 1e6:8.2f} us of CPU per broadcast,"
          f" {per / deliveries * 1e9:7.1f} ns per delivery", flush=True)


def instructions(names: list[str], redis: str, size: int) -> None:
    """Instructions per broadcast and per delivery, from callgrind runs of 300 and 900
    broadcasts (in bursts of ``size``)."""
    for name in names:
        totals = [collected([os.path.abspath(__file__), "--scenario", name, "--count",
                             str(n * BURST // size), "--redis", redis, "--burst-size", str(size)])
                  for n in (3, 9)]
        per = (totals[1] - totals[0]) / (6 * BURST)
        _, members, except_one = SCENARIOS[name]
        print(f"{name:16s} {per:12,.0f} instructions per broadcast,"
              f" {per / (members - except_one):8,.0f} per delivery", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="hub_100")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--bursts", type=int, default=20)
    parser.add_argument("--count", type=int)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--lines", type=int, default=40)
    parser.add_argument("--instructions", nargs="*", choices=sorted(SCENARIOS))
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--burst-size", type=int, default=BURST, choices=[1, 10, BURST])
    args = parser.parse_args()
    if args.instructions is not None:
        instructions(args.instructions or list(SCENARIOS), args.redis, args.burst_size)
        sys.exit()
    asyncio.run(main(args))
