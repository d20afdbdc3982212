"""The cluster tests' application (``tests/apps/cluster_app.py``: its events are listed there),
instrumented for the Socket.IO admin UI (``tests/test_admin_cluster.py``,
``tests/test_admin_browser.py``).

Served with ``python -m sio_core serve tests.apps.admin_app:io --workers 4 --admin-ui``: each
worker imports this module, so each is instrumented alike and reports on its own sockets.
"""

from __future__ import annotations

from sio_core.admin import instrument
from tests.apps.cluster_app import io

USERNAME = "admin"
PASSWORD = "correct horse"
#: bcrypt.hashpw(PASSWORD, bcrypt.gensalt(6)): a low cost, for quick tests (the default is 12)
PASSWORD_HASH = "$2b$06$5igZwsmhz9ZBvsh/Ieoz7.cEHkSxdIz7trtfIMQRr93b9Y3Xz38KC"

# each worker is a server of its own in the UI: "<hostname>#<pid>" (the default server_id)
instrument(io, auth={"type": "basic", "username": USERNAME, "password": PASSWORD_HASH})

__all__ = ["io"]
