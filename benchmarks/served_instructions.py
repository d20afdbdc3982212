"""Instructions the server process spends per websocket echo and per connection, with real
sockets, on each event loop: what the loop costs beside our code (hot_paths.py has no I/O).

    .venv/bin/python benchmarks/served_instructions.py [--loops asyncio uvloop] [--servers sio asgi]

The benchmark application (servers/sio_app.py) is served by a process under
``valgrind --tool=callgrind``; this process is its client (raw websockets over loopback, not
measured), and the difference between two runs of n and 2n operations is the server's
user-space instructions per operation (the kernel's work is not counted: it is the same on
either loop). Each operation is one echo with ack over 20 connections (``ws_echo``), one
long-polling echo of 20 clients (``polling_echo``: a GET left pending, then a POST of the
event, answered ``ok``, and the GET answered with the ack, on two keep-alive connections per
client, as engine.io-client makes them), or one connection opened (upgrade, Socket.IO
CONNECT) and kept.
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
import asyncio, signal, sys
sys.path.insert(0, {here!r})
from servers.sio_app import io
async def main():
    # no timer may fire (under callgrind the server runs ~50x slower): no ping, and no idle
    # keep-alive connection of a polling client closed while the others connect
    io.configure(ping_interval=3600, ping_timeout=3600, keepalive_timeout=3600,
                 request_timeout=3600)
    await io.serve("127.0.0.1", {port})
    # SIGINT through the loop: Python's own handler may never run in an idle uvloop
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
    print("ready", flush=True)
    await stop.wait()
if {loop!r} == "uvloop":
    import uvloop
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
asyncio.run(main())
"""
#: the same application through sio_core's ASGI path (servers/asgi_app.py) under uvicorn
ASGI_SERVER = """
import asyncio, sys
sys.path.insert(0, {root!r})
import uvicorn
from benchmarks.servers.asgi_app import app, io
async def main():
    io.configure(ping_interval=3600, ping_timeout=3600)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port={port}, loop="none",
                                           log_level="warning", access_log=False,
                                           ws_ping_interval=None, ws_ping_timeout=None))
    serving = asyncio.ensure_future(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    print("ready", flush=True)
    await serving
if {loop!r} == "uvloop":
    import uvloop
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
asyncio.run(main())
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


async def read_http(reader: asyncio.StreamReader) -> bytes:
    """An answer's body (the server always sends Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    match = re.search(rb"Content-Length: (\d+)", head)
    assert head.startswith(b"HTTP/1.1 200 ") and match is not None, head
    return await reader.readexactly(int(match.group(1)))


def http(method: str, target: str, body: bytes = b"") -> bytes:
    head = f"{method} {target} HTTP/1.1\r\nHost: x\r\n"
    if method == "POST":
        head += f"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode() + body


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def polling_client(port: int) -> tuple[str, Conn, Conn]:
    """A polling client connected to "/": its URL with the sid, its GET and POST connections."""
    gets = await asyncio.open_connection("127.0.0.1", port)
    posts = await asyncio.open_connection("127.0.0.1", port)
    gets[1].write(http("GET", "/socket.io/?EIO=4&transport=polling"))
    found = re.search(rb'"sid":"([^"]+)"', await read_http(gets[0]))
    assert found is not None
    url = f"/socket.io/?EIO=4&transport=polling&sid={found.group(1).decode()}"
    posts[1].write(http("POST", url, b"40"))
    assert await read_http(posts[0]) == b"ok"
    gets[1].write(http("GET", url))
    assert (await read_http(gets[0])).startswith(b"40")
    return url, gets, posts


async def drive_polling(port: int, n: int) -> None:
    clients = [await polling_client(port) for _ in range(20)]

    async def run(url: str, gets: Conn, posts: Conn) -> None:
        get, post = http("GET", url), http("POST", url, b'421["echo","hello"]')
        for _ in range(n // 20):
            gets[1].write(get)  # pending (as a rule: it is written first)
            posts[1].write(post)
            assert await read_http(posts[0]) == b"ok"
            assert await read_http(gets[0]) == b'431["hello"]'

    await asyncio.gather(*(run(*client) for client in clients))
    for _, gets, posts in clients:
        gets[1].close()
        posts[1].close()


async def drive(port: int, scenario: str, n: int) -> None:
    if scenario == "polling_echo":
        await drive_polling(port, n)
        return
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


def measure(loop: str, scenario: str, n: int, port: int, server_kind: str = "sio") -> int:
    code = (SERVER.format(here=HERE, port=port, loop=loop) if server_kind == "sio"
            else ASGI_SERVER.format(root=os.path.dirname(HERE), port=port, loop=loop))
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
    parser.add_argument("--servers", nargs="+", default=["sio"], choices=["sio", "asgi"],
                        help="sio: sio_core's own server; asgi: its ASGI path under uvicorn")
    parser.add_argument("--port", type=int, default=38417)
    args = parser.parse_args()
    counts = {"ws_echo": 2000, "polling_echo": 400, "connect": 200}
    for scenario in args.scenarios:
        n = counts[scenario]
        for server in args.servers:
            for loop in args.loops:
                small = measure(loop, scenario, n, args.port, server)
                large = measure(loop, scenario, 2 * n, args.port, server)
                print(f"{scenario:8s} {server:5s} {loop:8s} {(large - small) / n:12,.0f}"
                      " instructions per op", flush=True)


if __name__ == "__main__":
    main()
