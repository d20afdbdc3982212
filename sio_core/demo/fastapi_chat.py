"""The chat demo mounted in a FastAPI application: ``uvicorn sio_core.demo.fastapi_chat:app
--workers 4`` (the same page and handlers as ``python -m sio_core serve``).

FastAPI serves the page (and whatever API the application has); ``ASGIApp`` serves
Socket.IO under ``/socket.io/``. The workers find each other on their own (one of them
hosts their hub); with ``SIO_CORE_STORE=redis://...`` they meet in Redis instead, with
the workers of other machines. No sticky sessions either way.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse

from sio_core import Server
from sio_core.asgi import ASGIApp
from sio_core.demo.app import connection

PAGE = Path(__file__).parent / "static" / "index.html"

io = Server()
io.on("connection", connection)

api = FastAPI()


@api.get("/")
async def page() -> FileResponse:
    return FileResponse(PAGE)


app = ASGIApp(io, api, store=os.environ.get("SIO_CORE_STORE"))
