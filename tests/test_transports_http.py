"""Unit tests of sio_core.transports.http's helpers (the HTTP server itself is driven over real
sockets in test_http_errors.py and the interop tests)."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sio_core.transports.http import parse_query


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", {}),
        (b"EIO=4&transport=polling&t=PZx1&sid=abc.def-w1-00",
         {"EIO": "4", "transport": "polling", "t": "PZx1", "sid": "abc.def-w1-00"}),
        (b"a&b=&&c=1=2", {"a": "", "b": "", "c": "1=2"}),
        (b"x=1&x=2", {"x": "2"}),  # the last one wins, as dict(parse_qsl(...))
        (b"name=a%20b+c", {"name": "a b c"}),  # escapes: parse_qsl's path
    ],
)
def test_parse_query(raw: bytes, expected: dict[str, str]) -> None:
    assert parse_query(raw) == expected


@given(st.text(alphabet="ab=&%+;2 \x00\xe9", max_size=40))
def test_parse_query_is_parse_qsl(text: str) -> None:
    raw = text.encode("latin-1")
    try:
        expected = dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))
    except ValueError:
        expected = {}
    assert parse_query(raw) == expected
