"""Engine.IO session ids that carry their owner.

``<token>.<owner>``: the token has 96 random bits from :mod:`secrets` (16 URL-safe
characters), so a sid cannot be guessed; the owner names the worker (and node) that holds
the session, so any worker can route a request without a lookup. Both parts use only
URL-unreserved characters, so a sid needs no escaping in a query string.
"""

from __future__ import annotations

import re
import secrets

SEPARATOR = "."
MAX_LENGTH = 128
_OWNER = re.compile(r"[A-Za-z0-9_~-]{1,64}")
_SID = re.compile(r"[A-Za-z0-9_-]{16}\.[A-Za-z0-9_~-]{1,64}")


def new_owner(node: str | None = None, worker: int = 1) -> str:
    """A worker's address, ``<node>-w<worker>-<nonce>``: the node (a random one if None),
    the worker's number on it, and a nonce new at every start, so that requests for the
    sessions of a worker that was restarted are "unknown" rather than misrouted."""
    return f"{node or secrets.token_hex(3)}-w{worker}-{secrets.token_hex(2)}"


def new_sid(owner: str) -> str:
    if not _OWNER.fullmatch(owner):
        raise ValueError(f"owner {owner!r} must be 1-64 characters of [A-Za-z0-9_~-]")
    return secrets.token_urlsafe(12) + SEPARATOR + owner


def owner_of(sid: str) -> str | None:
    """The owner a sid names, or None if the sid is not one of ours."""
    if len(sid) > MAX_LENGTH or not _SID.fullmatch(sid):
        return None
    return sid.partition(SEPARATOR)[2]


def new_id() -> str:
    """A Socket.IO socket id: 20 URL-safe characters (120 random bits), like the reference's."""
    return secrets.token_urlsafe(15)
