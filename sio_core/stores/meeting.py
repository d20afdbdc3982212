"""The workers of one machine that no master of ours runs (``uvicorn --workers N``,
gunicorn): they meet at a hub that one of them hosts.

How this works: the workers agree on a meeting point, a directory and a name (the
ASGI app derives the name from what its workers share: their parent process and the
Engine.IO path). Each worker tries to take the lock file ``<name>.lock`` (``fcntl.flock``,
never blocking); the one that holds it hosts the :class:`~sio_core.stores.hub.Hub` on the
Unix socket ``<name>.sock``, and every worker, the host too, connects a
:class:`~sio_core.stores.hub.HubStore` to it. The kernel drops a lock with the process
that held it: when the host dies, the others lose their connection (their peers are
gone at once: requests for those sessions fail as "unknown"), try the lock again, one of
them hosts a new hub at the same path and the others reconnect to it. Nothing to install,
nothing to configure; the lock and socket are the user's own (a 0700 directory).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import tempfile
from pathlib import Path

from .hub import Hub, HubStore

logger = logging.getLogger("sio_core.meeting")

#: between two attempts to take the lock or reach the hub: the host needs milliseconds
#: to start one; the attempts back off to RETRY_MAX
RETRY_MIN = 0.02
RETRY_MAX = 0.5


def meeting_point(name: str, directory: str | None = None) -> Path:
    """Where the workers that share ``name`` meet: ``<directory>/<hash of name>`` (the
    lock file and socket add their suffix). The default directory is a 0700 one of the
    user's under $XDG_RUNTIME_DIR or the temporary directory; a Unix socket's path must
    stay under 108 bytes, hence the hash."""
    if directory is None:
        base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
        directory = os.path.join(base, f"sio_core-{os.getuid()}")
    return Path(directory) / hashlib.sha256(name.encode()).hexdigest()[:16]


def _private_directory(path: Path) -> None:
    """Make the meeting's directory, or check that the one there is the user's alone: in a
    shared temporary directory another user could have made it first, to listen in."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    status = path.stat()
    if status.st_uid != os.getuid() or status.st_mode & 0o077:
        raise PermissionError(f"{path} is not a directory of this user's alone (0700)")


class MeetingStore(HubStore):
    """A worker's store among the workers that meet at ``point`` (see meeting_point):
    it hosts the hub while it holds the lock, and reconnects when the host is gone."""

    def __init__(self, owner: str, point: Path, *, start_timeout: float = 10.0) -> None:
        super().__init__(owner, str(point.with_suffix(".sock")), start_timeout=start_timeout)
        self.lock_path = point.with_suffix(".lock")
        #: the hub this worker hosts, while it holds the lock
        self.hub: Hub | None = None
        self._lock_fd: int | None = None
        self._closing = False
        self._meeting: asyncio.Task[None] | None = None

    async def start(self) -> None:
        _private_directory(self.lock_path.parent)
        await asyncio.wait_for(self._meet(), self.start_timeout)
        assert self._peers_known is not None
        await asyncio.wait_for(self._peers_known.wait(), self.start_timeout)

    async def _meet(self) -> None:
        """Host the hub if the lock is free, and connect to the hub (retrying while its
        host starts it, or while a new host is elected)."""
        delay = RETRY_MIN
        while True:
            if self.hub is None and self._take_lock():
                try:
                    await self._host()
                except OSError as exc:  # let another worker try: this one only connects
                    logger.error("cannot host the workers' hub at %s: %s", self.path, exc)
                    self._release_lock()
            try:
                await self._connect()
                return
            except OSError:  # no hub yet, or a dead host's socket
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)

    def _take_lock(self) -> bool:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # a host that closed cleanly removes the file: a lock on its old inode is no
            # lock on the path (another worker may hold the new file's)
            if os.fstat(fd).st_ino != os.stat(self.lock_path).st_ino:
                raise BlockingIOError
        except OSError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    async def _host(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # a dead host's socket
        self.hub = Hub(self.path)
        await self.hub.start()
        logger.info("hosting the workers' hub at %s", self.path)

    def _lost(self) -> None:
        if self._closing:
            return
        logger.warning("lost the workers' hub; meeting again")
        if self._writer is not None:
            self._writer.close()
        self._set_peers([])  # their sessions are unknown until the hub is back
        self._meeting = asyncio.get_running_loop().create_task(self._meet())

    async def close(self) -> None:
        self._closing = True
        if self._meeting is not None:
            self._meeting.cancel()
        await super().close()
        if self.hub is not None:
            await self.hub.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
                os.unlink(self.lock_path)  # while still held: see _take_lock
        self._release_lock()

    def _release_lock(self) -> None:
        self.hub = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
