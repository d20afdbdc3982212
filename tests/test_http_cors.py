"""In-process tests of sio_core.http.cors: which origin is allowed, the headers of an
answer, the OPTIONS preflight; and the same on the wire of an EngineServer in the test's
event loop (a preflight, a handshake and an error from another origin), byte for byte."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from sio_core.config import Config
from sio_core.http.cors import allowed_origin, cors_headers, preflight
from sio_core.http.messages import Request
from tests.engine_harness import (
    ERR_TRANSPORT,
    answer_bytes,
    error_bytes,
    open_packet,
    payload_bytes,
    serving,
)

SITE = "https://chat.example"


def request(origin: str | None, **headers: str) -> Request:
    fields = dict(headers)
    if origin is not None:
        fields["origin"] = origin
    return Request("OPTIONS", "/socket.io/", {}, fields)


@pytest.mark.parametrize(("allowed", "origin", "expected"), [
    (None, SITE, None),  # no CORS: same-origin only
    ("*", SITE, SITE),  # any origin, echoed (reference: origin: true)
    ("*", None, None),  # not a cross-origin request
    (SITE, SITE, SITE),
    (SITE, "https://evil.example", None),
    ([SITE, "https://other.example"], "https://other.example", "https://other.example"),
    ([SITE], "https://evil.example", None),
])
def test_allowed_origin(allowed: str | Sequence[str] | None, origin: str | None,
                        expected: str | None) -> None:
    assert allowed_origin(Config(cors_allowed_origins=allowed), request(origin)) == expected


def test_cors_headers() -> None:
    assert cors_headers(Config(cors_allowed_origins="*"), request(SITE)) \
        == [("Access-Control-Allow-Origin", SITE), ("Vary", "Origin")]
    assert cors_headers(Config(cors_allowed_origins="*", cors_credentials=True), request(SITE)) \
        == [("Access-Control-Allow-Origin", SITE), ("Vary", "Origin"),
            ("Access-Control-Allow-Credentials", "true")]
    assert cors_headers(Config(), request(SITE)) == []


def test_preflight() -> None:
    config = Config(cors_allowed_origins=[SITE])
    allowed = preflight(config, request(SITE, **{"access-control-request-headers": "x-token"}))
    assert (allowed.status, allowed.headers, allowed.body) == (204, [
        ("Access-Control-Allow-Origin", SITE), ("Vary", "Origin"),
        ("Access-Control-Allow-Methods", "GET,HEAD,PUT,PATCH,POST,DELETE"),
        ("Access-Control-Allow-Headers", "x-token"),
        ("Access-Control-Max-Age", "86400"),
    ], b"")
    assert preflight(config, request(SITE)).headers == [
        ("Access-Control-Allow-Origin", SITE), ("Vary", "Origin"),
        ("Access-Control-Allow-Methods", "GET,HEAD,PUT,PATCH,POST,DELETE"),
        ("Access-Control-Max-Age", "86400"),
    ]
    # another origin: a 204 that allows nothing (the browser refuses the request)
    refused = preflight(config, request("https://evil.example"))
    assert (refused.status, refused.headers) == (204, [])


async def test_cors_on_the_wire() -> None:
    config = Config(cors_allowed_origins=[SITE], cors_credentials=True)
    allow = (f"Access-Control-Allow-Origin: {SITE}", "Vary: Origin",
             "Access-Control-Allow-Credentials: true")
    async with serving(config) as engine:
        assert await engine.exchange(
            f"OPTIONS /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nOrigin: {SITE}\r\n"
            "Access-Control-Request-Method: POST\r\n"
            "Access-Control-Request-Headers: content-type\r\n\r\n".encode()) == answer_bytes(
            "204 No Content", headers=(
                *allow, "Access-Control-Allow-Methods: GET,HEAD,PUT,PATCH,POST,DELETE",
                "Access-Control-Allow-Headers: content-type", "Access-Control-Max-Age: 86400"))
        answer = await engine.exchange(
            f"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nOrigin: {SITE}\r\n\r\n"
            .encode())
        [sid] = engine.recorder.sockets
        assert answer == payload_bytes(open_packet(sid), allow)
        assert await engine.exchange(
            f"GET /socket.io/?EIO=4 HTTP/1.1\r\nOrigin: {SITE}\r\n\r\n".encode()) \
            == error_bytes(ERR_TRANSPORT, allow)
        # another origin: no CORS headers at all
        assert await engine.exchange(
            b"GET /socket.io/?EIO=4 HTTP/1.1\r\nOrigin: https://evil.example\r\n\r\n") \
            == error_bytes(ERR_TRANSPORT)
