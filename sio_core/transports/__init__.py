"""asyncio I/O glue: HTTP/1.1 connections, long-polling, WebSocket, and the I/O side of an
Engine.IO session (timers, the pending poll, the websocket that carries it)."""
