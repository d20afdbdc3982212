"""sio_core.http.compression: Accept-Encoding negotiation (a table), and long-polling answers
compressed by a served EngineServer (raw HTTP, decompressed and compared), on the worker that
owns the session and through another worker."""

from __future__ import annotations

import gzip
import zlib

import pytest

from sio_core.config import Config
from sio_core.http.compression import HTTPCompression, negotiate
from tests.engine_harness import OK, post, serving
from tests.engine_harness import polling as polling_target
from tests.test_engine_forwarding import workers

NEGOTIATED = [
    ("gzip, deflate, br", "gzip"),
    ("deflate", "deflate"),
    ("br, deflate;q=0.5", "deflate"),
    ("gzip;q=0.2, deflate;q=0.8", "deflate"),
    ("gzip;q=0.5, deflate;q=0.5", "gzip"),  # a tie: the reference's order
    ("GZIP", "gzip"),
    ("*", "gzip"),
    ("gzip;q=0, *", "deflate"),
    ("gzip;q=0, deflate;q=0", None),
    ("gzip;q=oops", None),
    ("identity", None),
    ("br", None),
    ("", None),
    (None, None),
    (" , ;q=1", None),
]


@pytest.mark.parametrize(("header", "encoding"), NEGOTIATED)
def test_negotiate(header: str | None, encoding: str | None) -> None:
    found = negotiate(header, 1024)
    assert (found.encoding if found else None) == encoding


def test_negotiate_off_without_a_threshold() -> None:
    assert negotiate("gzip", None) is None


def test_apply_compresses_from_the_threshold() -> None:
    body = b"4" + b"a" * 99
    assert HTTPCompression("gzip", 101).apply(body, []) == (body, [])
    packed, headers = HTTPCompression("gzip", 100).apply(body, [("X", "y")])
    assert headers == [("X", "y"), ("Content-Encoding", "gzip")]
    assert gzip.decompress(packed) == body
    packed, headers = HTTPCompression("deflate", 0).apply(body, [])
    assert headers == [("Content-Encoding", "deflate")]
    assert zlib.decompress(packed) == body  # the zlib format, as HTTP's "deflate"


BIG = b"4" + "compress me, ü ".encode() * 200  # 3.4 KB: above the default 1024


def decoded(body: bytes, encoding: str | None) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body


@pytest.mark.parametrize(("accept", "expected"), [
    ("gzip, deflate", "gzip"), ("deflate", "deflate"), (None, None), ("br", None)])
async def test_a_long_poll_answer_is_compressed_as_accepted(
        accept: str | None, expected: str | None) -> None:
    async with serving() as engine:
        sid = await engine.handshake()
        assert await engine.exchange(post(sid, BIG)) == OK  # the harness echoes it back
        headers = {"Accept-Encoding": accept} if accept else {}
        answer = await engine.request("GET", polling_target(sid), headers=headers)
        assert answer.status == 200
        assert answer.headers.get("content-encoding") == expected
        assert decoded(answer.body, expected) == BIG
        if expected:
            assert len(answer.body) < len(BIG) // 4


async def test_small_answers_and_compression_off_are_sent_as_they_are() -> None:
    async with serving() as engine:
        sid = await engine.handshake()
        assert await engine.exchange(post(sid, b"4small")) == OK
        answer = await engine.request("GET", polling_target(sid),
                                      headers={"Accept-Encoding": "gzip"})
        assert ("content-encoding" in answer.headers, answer.body) == (False, b"4small")
    async with serving(Config(http_compression=False)) as engine:
        sid = await engine.handshake()
        assert await engine.exchange(post(sid, BIG)) == OK
        answer = await engine.request("GET", polling_target(sid),
                                      headers={"Accept-Encoding": "gzip"})
        assert ("content-encoding" in answer.headers, answer.body) == (False, BIG)
    async with serving(Config(http_compression_threshold=5)) as engine:
        sid = await engine.handshake()
        assert await engine.exchange(post(sid, b"4small")) == OK
        answer = await engine.request("GET", polling_target(sid),
                                      headers={"Accept-Encoding": "gzip"})
        assert answer.headers.get("content-encoding") == "gzip"
        assert gzip.decompress(answer.body) == b"4small"


async def test_a_forwarded_long_poll_is_compressed_by_the_worker_that_answers() -> None:
    """The relay's own setting and the client's Accept-Encoding decide (the owner's
    compression is off here)."""
    async with workers(Config(http_compression=False)) as (owner, relay, _, _):
        sid = await owner.handshake()
        assert await owner.exchange(post(sid, BIG)) == OK
        answer = await relay.request("GET", polling_target(sid),
                                     headers={"Accept-Encoding": "deflate"})
        assert answer.headers.get("content-encoding") == "deflate"
        assert zlib.decompress(answer.body) == BIG


async def test_a_forwarded_long_poll_of_packets_not_to_compress() -> None:
    """compress(False) on every packet: the owner says so, and the relay does not compress."""
    async with workers() as (owner, relay, _, _):
        sid = await owner.handshake()
        socket = owner.server.sockets[sid]
        assert socket.send(BIG[1:].decode(), compress=False)
        answer = await relay.request("GET", polling_target(sid),
                                     headers={"Accept-Encoding": "gzip"})
        assert ("content-encoding" in answer.headers, answer.body) == (False, BIG)
        assert socket.send(BIG[1:].decode())
        answer = await relay.request("GET", polling_target(sid),
                                     headers={"Accept-Encoding": "gzip"})
        assert gzip.decompress(answer.body) == BIG
