"""Instructions the server process spends per websocket echo and per connection, with real
sockets, on each event loop: what the loop costs beside our code (hot_paths.py has no I/O).

    .venv/bin/python benchmarks/served_instructions.py [--loops asyncio uvloop]

The benchmark application (servers/sio_app.py) is served by a process under
``valgrind --tool=callgrind``; this process is its client (raw websockets over loopback, not
measured), and the difference between two runs of n and 2n operations is the server's
user-space instructions per operation (the kernel's work is not counted: it is the same on
either loop). Each operation is one echo with ack over 20 connections, or one connection
opened (upgrade, Socket.IO CONNECT) and kept.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = """
import asyncio, sys
sys.path.insert(0, {here!r})
from servers.sio_app import io
async def main():
    io.configure(ping_interval=3600, ping_timeout=3600)
    await io.serve("127.0.0.1", {port})
    print("ready", flush=True)
    await asyncio.Event().wait()
if {loop!r} == "uvloop":
    import uvloop
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
try:
    asyncio.run(main())
except KeyboardInterrupt:
    pass
"""
MASK = b"\x11\x22\x33\x44"
UPGRADE = (b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n"
           b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")


def frame(text: str) -> bytes:
    data = text.encode()
    return (bytes([0x81, 0x80 | len(data)]) + MASK
            + bytes(b ^ MASK[i % 4] for i, b in enumerate(data)))


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readexactly(2)
    size = head[1] & 0x7F
    if size == 126:
        size = int.from_bytes(await reader.readexactly(2), "big")
    return await reader.readexactly(size)


async def client(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(UPGRADE)
    await reader.readuntil(b"\r\n\r\n")
    await read_frame(reader)  # OPEN
    writer.write(frame("40"))
    await read_frame(reader)  # CONNECT
    return reader, writer


async def drive(port: int, scenario: str, n: int) -> None:
    if scenario == "connect":
        kept = [await client(port) for _ in range(n)]
        for _, writer in kept:
            writer.close()
        return
    clients = [await client(port) for _ in range(20)]
    echo = frame('421["echo","hello"]')

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(n // 20):
            writer.write(echo)
            assert await read_frame(reader) == b'431["hello"]'

    await asyncio.gather(*(run(r, w) for r, w in clients))
    for _, writer in clients:
        writer.close()


def measure(loop: str, scenario: str, n: int, port: int) -> int:
    code = SERVER.format(here=HERE, port=port, loop=loop)
    server = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONHASHSEED": "0"})
    assert server.stdout is not None
    assert server.stdout.readline().strip() == "ready"
    asyncio.run(drive(port, scenario, n))
    server.send_signal(signal.SIGINT)
    _, err = server.communicate(timeout=600)
    match = re.search(r"Collected : (\d+)", err)
    assert match is not None, err
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loops", nargs="+", default=["asyncio", "uvloop"])
    parser.add_argument("--scenarios", nargs="+", default=["ws_echo", "connect"])
    parser.add_argument("--port", type=int, default=38417)
    args = parser.parse_args()
    counts = {"ws_echo": 2000, "connect": 200}
    for scenario in args.scenarios:
        n = counts[scenario]
        for loop in args.loops:
            small = measure(loop, scenario, n, args.port)
            large = measure(loop, scenario, 2 * n, args.port)
            print(f"{scenario:8s} {loop:8s} {(large - small) / n:12,.0f} instructions per op",
                  flush=True)


if __name__ == "__main__":
    main()
