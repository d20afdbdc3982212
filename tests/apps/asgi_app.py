"""The cluster tests' Socket.IO application (tests/apps/cluster_app.py) mounted in a FastAPI
application, for ``uvicorn tests.apps.asgi_app:app --workers N`` (tests/test_asgi_cluster.py).

``SIO_CORE_STORE``: the store URL (Redis), ``SIO_CORE_STORE_KEY`` its key prefix; unset, the
workers meet on their own. ``SIO_TEST_SHORT_PINGS``: a 2 s heartbeat. Each log line
starts with the process id, and the forwarding's DEBUG lines are on: the tests tell from them
which worker (pid) each request of a session came through.
"""

from __future__ import annotations

import logging
import os

from fastapi import FastAPI

from sio_core.asgi import ASGIApp
from tests.apps.cluster_app import io

logging.basicConfig(level=logging.INFO, format="%(process)d %(levelname)s %(name)s: %(message)s")
logging.getLogger("sio_core.forwarding").setLevel(logging.DEBUG)

api = FastAPI()


@api.get("/api/pid")
async def pid() -> dict[str, int]:
    """The application's own route, beside Socket.IO."""
    return {"pid": os.getpid()}


if os.environ.get("SIO_TEST_SHORT_PINGS"):
    io.configure(ping_interval=2.0, ping_timeout=5.0, shutdown_timeout=5.0)
app = ASGIApp(io, api, store=os.environ.get("SIO_CORE_STORE"),
              store_key=os.environ.get("SIO_CORE_STORE_KEY", "socket.io"))
