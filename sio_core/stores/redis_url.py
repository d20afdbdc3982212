"""The URL forms of RedisStore, parsed (no redis import: the CLI checks a URL with this).

- ``redis://[[user]:password@]host:port/db`` (``rediss://`` with TLS, ``unix:///path``): one
  Redis server, as redis-py's ``from_url`` reads it.
- ``redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db]``: the master of
  ``service``, as the Sentinels listed tell it (port 26379 when left out); the credentials are
  the Redis servers', the Sentinels are asked without any.
- ``redis+cluster://[[user]:password@]host:port[,host:port...]``: a Redis Cluster, reached
  through any of the seed nodes listed (port 6379 when left out); db 0 only, the one a
  cluster has.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from urllib.parse import unquote

#: the JavaScript sharded adapter's subscription modes (RedisStore's ``subscription_mode``;
#: here, where the CLI reads them without importing the redis client)
SUBSCRIPTION_MODES = ("dynamic", "dynamic-private", "static")

SENTINEL_PORT = 26379
REDIS_PORT = 6379


class Mode(enum.Enum):
    STANDALONE = "standalone"
    SENTINEL = "sentinel"
    CLUSTER = "cluster"


_SCHEMES = {"redis://": Mode.STANDALONE, "rediss://": Mode.STANDALONE,
            "unix://": Mode.STANDALONE, "redis+sentinel://": Mode.SENTINEL,
            "redis+cluster://": Mode.CLUSTER}
#: the URL prefixes a store URL may start with
SCHEMES = tuple(_SCHEMES)
USAGE = ("use redis://host:port/db, redis+sentinel://host:port[,host:port...]/service[/db]"
         " or redis+cluster://host:port[,host:port...]")


@dataclass(frozen=True, slots=True)
class RedisTarget:
    mode: Mode
    url: str
    #: the Sentinels, or the cluster's seed nodes (empty for one server: ``url`` says it all)
    hosts: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None


def parse(url: str) -> RedisTarget:
    """Read a store URL; ValueError naming what is wrong with it."""
    mode = next((m for prefix, m in _SCHEMES.items() if url.startswith(prefix)), None)
    if mode is None:
        raise ValueError(f"unsupported store URL {url!r} ({USAGE})")
    if mode is Mode.STANDALONE:
        return RedisTarget(mode, url)
    rest = url.split("://", 1)[1]
    if "?" in rest or "#" in rest:
        raise ValueError(f"store URL {url!r}: no query or fragment is read here ({USAGE})")
    netloc, _, path = rest.partition("/")
    username = password = None
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    default_port = SENTINEL_PORT if mode is Mode.SENTINEL else REDIS_PORT
    hosts = tuple(_host_port(part, default_port, url) for part in netloc.split(","))
    parts = [p for p in path.split("/") if p]
    service, db = "", "0"
    if mode is Mode.SENTINEL:
        if not parts or len(parts) > 2:
            raise ValueError(f"store URL {url!r}: name the master after the Sentinels, as in"
                             " redis+sentinel://host:26379/mymaster/0")
        service = unquote(parts[0])
        db = parts[1] if len(parts) == 2 else "0"
    elif parts:
        db = parts[0]
        if len(parts) > 1 or db != "0":
            raise ValueError(f"store URL {url!r}: a Redis Cluster has only db 0")
    if not db.isdigit():
        raise ValueError(f"store URL {url!r}: the db must be a number (got {db!r})")
    return RedisTarget(mode, url, hosts, service, int(db), username, password)


def _host_port(text: str, default_port: int, url: str) -> tuple[str, int]:
    host, port = text, ""
    if text.startswith("["):  # [IPv6]:port
        host, bracket, after = text[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            host = ""
        port = after[1:]
    elif ":" in text:
        host, port = text.rsplit(":", 1)
    if not host or not (port == "" or (port.isdigit() and 0 < int(port) < 65536)):
        raise ValueError(f"store URL {url!r}: {text!r} is not host:port")
    return host, int(port) if port else default_port
