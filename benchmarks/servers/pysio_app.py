"""The benchmark application on python-socketio (the same events as sio_app.py).

Served with ``uvicorn benchmarks.servers.pysio_app:app --port P`` (an ASGI app; uvicorn picks
uvloop, httptools and websockets when they are installed, as they are here).
"""

from __future__ import annotations

from typing import Any

import socketio

sio = socketio.AsyncServer(async_mode="asgi")
app = socketio.ASGIApp(sio)


@sio.on("echo")
async def echo(sid: str, data: Any) -> Any:
    return data


@sio.on("bcast")
async def bcast(sid: str, n: int, payload: Any) -> int:
    for _ in range(n):
        await sio.emit("m", payload)
    return n


@sio.on("ready")
async def ready(sid: str) -> str:
    return "ok"
