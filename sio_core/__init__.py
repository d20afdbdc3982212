"""sio_core: a Socket.IO server on asyncio that scales across workers without sticky sessions."""

__version__ = "0.1.0"
