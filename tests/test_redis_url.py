"""The URL forms of RedisStore (sio_core/stores/redis_url.py): what each reads, what is refused."""

from __future__ import annotations

import pytest

from sio_core.stores.redis_url import Mode, RedisTarget, parse

GOOD = [
    ("redis://127.0.0.1:6379/0", RedisTarget(Mode.STANDALONE, "redis://127.0.0.1:6379/0")),
    ("rediss://u:p@h:6380/2", RedisTarget(Mode.STANDALONE, "rediss://u:p@h:6380/2")),
    ("unix:///run/redis.sock", RedisTarget(Mode.STANDALONE, "unix:///run/redis.sock")),
    ("redis+sentinel://h1:26379,h2:26380/mymaster/3",
     RedisTarget(Mode.SENTINEL, "redis+sentinel://h1:26379,h2:26380/mymaster/3",
                 (("h1", 26379), ("h2", 26380)), "mymaster", 3)),
    ("redis+sentinel://:s%40cret@h1/mymaster",
     RedisTarget(Mode.SENTINEL, "redis+sentinel://:s%40cret@h1/mymaster", (("h1", 26379),),
                 "mymaster", 0, None, "s@cret")),
    ("redis+cluster://h1:7000,[::1]:7001,h3",
     RedisTarget(Mode.CLUSTER, "redis+cluster://h1:7000,[::1]:7001,h3",
                 (("h1", 7000), ("::1", 7001), ("h3", 6379)))),
    ("redis+cluster://user:pw@h1:7000/0",
     RedisTarget(Mode.CLUSTER, "redis+cluster://user:pw@h1:7000/0", (("h1", 7000),), "", 0,
                 "user", "pw")),
]  # fmt: skip

BAD = [
    ("memcached://h", "unsupported store URL"),
    ("redis+sentinel://h1:26379", "name the master"),
    ("redis+sentinel://h1:26379/", "name the master"),
    ("redis+sentinel://h1/m/0/extra", "name the master"),
    ("redis+sentinel://h1/m/x", "the db must be a number"),
    ("redis+cluster://h1:7000/1", "only db 0"),
    ("redis+cluster://h1:7000,", "'' is not host:port"),
    ("redis+cluster://h1:0", "is not host:port"),
    ("redis+cluster://h1:port", "is not host:port"),
    ("redis+cluster://[::1", "is not host:port"),
    ("redis+cluster://h1?timeout=1", "no query or fragment"),
]


@pytest.mark.parametrize(("url", "expected"), GOOD, ids=[url for url, _ in GOOD])
def test_url_forms(url: str, expected: RedisTarget) -> None:
    assert parse(url) == expected


@pytest.mark.parametrize(("url", "message"), BAD, ids=[url for url, _ in BAD])
def test_bad_urls_are_refused_with_a_reason(url: str, message: str) -> None:
    with pytest.raises(ValueError, match="store URL") as info:
        parse(url)
    assert message in str(info.value)
    assert repr(url) in str(info.value)
