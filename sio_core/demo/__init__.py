"""The chat demo, shipped in the package: ``python -m sio_core serve`` with no application
serves it (``sio_core.demo.app:io``), its page from ``static/``."""
