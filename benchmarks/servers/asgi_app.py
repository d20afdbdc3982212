"""The benchmark application on sio_core (benchmarks/servers/sio_app.py) served through its ASGI
path: ``uvicorn benchmarks.servers.asgi_app:app --port P``, the way a FastAPI application would
mount it (sio_core.asgi.ASGIApp). Beside sio_core's own server, the rows measure what the ASGI
path costs; beside python-socketio's ASGI app, the same server under the same uvicorn.
"""

from __future__ import annotations

from benchmarks.servers.sio_app import io
from sio_core.asgi import ASGIApp

app = ASGIApp(io)
