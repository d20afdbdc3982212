"""Applications the integration tests serve (``python -m sio_core serve tests.apps.X:io``)."""
