"""Tests for sio_core.protocol.sid: session ids that name their owner, socket ids."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sio_core.protocol.sid import MAX_LENGTH, SEPARATOR, new_id, new_sid, owner_of

URL_SAFE = frozenset(string.ascii_letters + string.digits + "-_")
TOKEN = "AbCdEfGh-_012345"  # 16 URL-safe characters, the shape of a real token

OWNERS = ["w1", "0", "node-a_w~3", "A" * 64, "n0~w1"]


@pytest.mark.parametrize("owner", OWNERS)
def test_new_sid_format(owner: str) -> None:
    sid = new_sid(owner)
    token, separator, rest = sid.partition(SEPARATOR)
    assert separator == "."
    assert rest == owner
    assert len(token) == 16  # 96 random bits
    assert set(token) <= URL_SAFE
    assert len(sid) <= MAX_LENGTH
    assert owner_of(sid) == owner


@pytest.mark.parametrize(
    "owner",
    ["", "A" * 65, "w.1", "w 1", "w/1", "w%1", "w+1", "w=1", "wé", "w\n", "\u0663"],
)
def test_new_sid_refuses_bad_owners(owner: str) -> None:
    with pytest.raises(ValueError):
        new_sid(owner)


# (sid, owner_of(sid)): the owner of a well-formed sid, None for anything else.
OWNER_CASES: list[tuple[str, str | None]] = [
    (f"{TOKEN}.w1", "w1"),
    (f"{TOKEN}.node-a_w~3", "node-a_w~3"),
    (f"{TOKEN}.{'x' * 64}", "x" * 64),
    # forged or damaged
    ("", None),
    (TOKEN, None),  # no owner
    (f"{TOKEN}.", None),  # empty owner
    (".w1", None),  # no token
    (f"{TOKEN[:15]}.w1", None),  # token too short
    (f"{TOKEN}A.w1", None),  # token too long
    (f"{TOKEN[:15]}=.w1", None),  # base64 padding is not URL-safe
    (f"{TOKEN[:15]}+.w1", None),  # standard, not URL-safe, base64
    (f"{TOKEN[:15]}~.w1", None),  # "~" is for owners only
    (f"{TOKEN}.w1.w2", None),  # two separators
    (f"{TOKEN}.w/1", None),
    (f"{TOKEN}.w 1", None),
    (f"{TOKEN}.w%2F1", None),
    (f"{TOKEN}.wé", None),
    (f"{TOKEN}.w1\n", None),  # a trailing newline ($ would let it through)
    (f"\n{TOKEN}.w1", None),
    (f"{TOKEN}.w\x00", None),
    (f"{TOKEN}.\u0663", None),  # a Unicode digit is not [0-9]
    (f"{TOKEN}.{'x' * 65}", None),  # owner too long
    (f"{TOKEN}.{'x' * 1000}", None),  # far too long
    ("x" * (MAX_LENGTH + 1), None),
    ("AAAAAAAAAAAAAAAAAAAA", None),  # a socket id is not a sid
]


@pytest.mark.parametrize(("sid", "owner"), OWNER_CASES)
def test_owner_of(sid: str, owner: str | None) -> None:
    assert owner_of(sid) == owner


def test_new_id_length_and_alphabet() -> None:
    for _ in range(200):
        sid = new_id()
        assert len(sid) == 20  # 120 random bits
        assert set(sid) <= URL_SAFE
        assert owner_of(sid) is None


def test_ids_are_unique() -> None:
    draws = 20_000
    assert len({new_sid("w1") for _ in range(draws)}) == draws
    assert len({new_id() for _ in range(draws)}) == draws


def test_tokens_use_the_whole_alphabet() -> None:
    # a crude check that the token is random base64url, not, say, hex
    seen: set[str] = set()
    for _ in range(500):
        seen.update(new_sid("w1").partition(SEPARATOR)[0])
    assert seen == URL_SAFE


@settings(max_examples=300, deadline=None, database=None)
@given(text=st.text())
def test_owner_of_fails_closed(text: str) -> None:
    owner = owner_of(text)
    if owner is not None:
        assert re.fullmatch(r"[A-Za-z0-9_-]{16}\.[A-Za-z0-9_~-]{1,64}", text)
        assert text.endswith(SEPARATOR + owner)


@settings(max_examples=100, deadline=None, database=None)
@given(owner=st.text(alphabet=string.ascii_letters + string.digits + "_~-", min_size=1,
                     max_size=64))
def test_owner_round_trip(owner: str) -> None:
    assert owner_of(new_sid(owner)) == owner
