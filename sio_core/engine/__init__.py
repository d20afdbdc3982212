"""The per-worker Engine.IO server, as node's ``engine.io`` package: routing and handshakes
(server.py), the session's I/O loop (socket.py), its transports (polling.py, websocket.py,
and remote.py for a websocket accepted by another worker), forwarding a request to the
worker that owns its session (forwarding.py), and the metrics of the workers (metrics/)."""
