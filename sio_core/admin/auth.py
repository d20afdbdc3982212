"""Who may open the admin namespace: a username and a bcrypt-hashed password, then a session.

How this works, as ``@socket.io/admin-ui``'s basic authentication: the UI connects with
``auth = {username, password}``; a match (the username compared in constant time, the
password checked against the bcrypt hash in a thread, since a check costs ~50 ms of CPU at
cost 10) admits the socket, which then receives ``session`` with a new session id; the UI
keeps it and, when the page is loaded again, connects with ``auth = {sessionId}`` instead.
Anything else is refused with CONNECT_ERROR "invalid credentials", the UI's cue to ask
again.

Sessions across workers and nodes: a session is kept by the worker that made it (the
JavaScript admin's InMemoryStore). A worker that does not know a session id asks the
others (a server-side emit with ack on the admin namespace: the hub, or Redis) and keeps
the answer, so the UI's reconnections may land on any worker. Sessions expire after
``session_duration`` (the JavaScript RedisStore's one day) and a worker keeps at most
``max_sessions`` (the oldest goes first).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import secrets
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..exceptions import ConnectionRefusedError

if TYPE_CHECKING:
    from ..socketio.namespace import Namespace
    from ..socketio.socket import Socket

logger = logging.getLogger("sio_core.admin")

#: the modular crypt format of bcrypt (the variants bcryptjs and the bcrypt package write)
BCRYPT_HASH = re.compile(r"\$2[abxy]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}")
#: bcrypt reads at most 72 bytes of a password; bcryptjs (the JavaScript admin's) drops the
#: rest silently, the bcrypt package refuses longer ones: cut as bcryptjs does, so that a
#: hash made by either tool checks the same
BCRYPT_MAX_BYTES = 72
#: the server-side event by which a worker asks the others about a session id
SESSION_LOOKUP = "sio_core:admin-session"
#: a session id as :meth:`Sessions.create` makes them (anything else is not looked up)
SESSION_ID = re.compile(r"[0-9a-f]{32}")
#: what the UI is told when it is refused (its own cue to show the login form again)
REFUSED = "invalid credentials"


@dataclass(frozen=True, slots=True)
class BasicAuth:
    username: str
    password_hash: bytes

    @classmethod
    def from_option(cls, auth: Any) -> BasicAuth | None:
        """The ``auth`` option of instrument: ``False`` (no authentication) or, as in
        JavaScript, ``{"type": "basic", "username": ..., "password": <bcrypt hash>}``."""
        if auth is False:
            logger.warning("the admin UI's authentication is disabled")
            return None
        if not isinstance(auth, Mapping) or auth.get("type") != "basic":
            raise ValueError("auth: False, or {'type': 'basic', 'username': ..., 'password':"
                             " <bcrypt hash>}")
        username, password = auth.get("username"), auth.get("password")
        if not isinstance(username, str) or not username:
            raise ValueError("auth: the username must be a non-empty str")
        if not isinstance(password, str) or not BCRYPT_HASH.fullmatch(password):
            raise ValueError("auth: the password must be a bcrypt hash ($2b$...), not the"
                             " password itself")
        try:  # the one way to know that bcrypt reads it (its salt, its cost): use it once
            _bcrypt().checkpw(b"", password.encode())
        except ValueError:
            raise ValueError("auth: the password is not a valid bcrypt hash") from None
        return cls(username, password.encode())

    async def check(self, username: Any, password: Any) -> bool:
        if not isinstance(username, str) or not isinstance(password, str):
            return False
        if not hmac.compare_digest(username.encode(), self.username.encode()):
            return False
        secret = password.encode()[:BCRYPT_MAX_BYTES]
        return await asyncio.to_thread(_bcrypt().checkpw, secret, self.password_hash)


def _bcrypt() -> Any:
    try:
        import bcrypt
    except ImportError:
        raise RuntimeError("the admin UI's basic authentication needs the bcrypt package:"
                           " pip install 'sio_core[admin]'") from None
    return bcrypt


class Sessions:
    def __init__(self, namespace: Namespace, duration: float, limit: int,
                 timeout: float) -> None:
        self._namespace = namespace
        self._duration = duration
        self._limit = limit
        self._timeout = timeout
        #: session id -> when it expires (time.time()); oldest first
        self._expiry: dict[str, float] = {}
        namespace.on(SESSION_LOOKUP, self._answer)

    def create(self) -> str:
        session_id = secrets.token_hex(16)
        self._keep(session_id, time.time() + self._duration)
        return session_id

    def _keep(self, session_id: str, expiry: float) -> None:
        expiries = self._expiry
        if len(expiries) >= self._limit:
            del expiries[next(iter(expiries))]
        expiries[session_id] = expiry

    def _known(self, session_id: str) -> float | None:
        expiry = self._expiry.get(session_id)
        if expiry is not None and expiry <= time.time():
            del self._expiry[session_id]
            return None
        return expiry

    def _answer(self, session_id: Any) -> float | None:
        """Another worker asks: when the session expires, if it is ours."""
        return self._known(session_id) if isinstance(session_id, str) else None

    async def exists(self, session_id: str) -> bool:
        if not SESSION_ID.fullmatch(session_id):
            return False
        if self._known(session_id) is not None:
            return True
        answers = await self._namespace.server_side_emit_with_ack(
            SESSION_LOOKUP, session_id, timeout=self._timeout)
        now = time.time()
        expiry = max((a for a in answers if isinstance(a, int | float) and a > now),
                     default=None)
        if expiry is None:
            return False
        self._keep(session_id, min(expiry, now + self._duration))
        return True


class Authenticator:
    """The admin namespace's middleware; a socket it admits by password gets a session."""

    def __init__(self, auth: BasicAuth, sessions: Sessions) -> None:
        self._auth = auth
        self._sessions = sessions
        self._issued: weakref.WeakKeyDictionary[Socket, str] = weakref.WeakKeyDictionary()

    async def __call__(self, socket: Socket) -> None:
        given = socket.handshake.auth
        # credentials are not kept where fetch_sockets would hand them to every worker
        session_id = given.pop("sessionId", None)
        password = given.pop("password", None)
        if isinstance(session_id, str) and await self._sessions.exists(session_id):
            return
        if await self._auth.check(given.get("username"), password):
            self._issued[socket] = self._sessions.create()
            return
        raise ConnectionRefusedError(REFUSED)

    def take_session(self, socket: Socket) -> str | None:
        """The session made for this socket's login, if it logged in by password."""
        return self._issued.pop(socket, None)
