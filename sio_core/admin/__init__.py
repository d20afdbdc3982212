"""The server side of the Socket.IO admin UI (npm ``@socket.io/admin-ui``), across workers.

::

    from sio_core.admin import instrument

    instrument(io, auth={"type": "basic", "username": "admin",
                         "password": "$2b$10$..."})   # a bcrypt hash of the password

then ``python -m sio_core serve app:io --admin-ui`` and open ``http://host:port/admin/``.

- :mod:`~sio_core.admin.instrument`: ``instrument()``, its options, the UI's actions;
- :mod:`~sio_core.admin.auth`: the login (bcrypt) and its sessions across workers;
- :mod:`~sio_core.admin.observer`: what each worker reports (sockets, rooms, events, stats);
- :mod:`~sio_core.admin.serialize`: sockets as the UI shows them;
- :mod:`~sio_core.admin.events`: the per-second counts behind the dashboard's charts;
- :mod:`~sio_core.admin.ui`: the UI's page, served from the npm package's files.
"""

from .instrument import AdminOptions, instrument
from .ui import ui_files

__all__ = ["AdminOptions", "instrument", "ui_files"]
