"""The per-worker Engine.IO server (sio_core/server.py, forwarding.py and transports/ are
to move here: see the layers in DESIGN.md); for now, its metrics (metrics/)."""
