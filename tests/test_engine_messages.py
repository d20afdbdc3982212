"""The engine's messages between workers (sio_core.engine.messages): every kind round-trips
through the bus's envelope, and anything else raises the one error, BadMessage."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sio_core.engine.messages import (
    EngineKind,
    Open,
    Poll,
    PollAbort,
    Post,
    Verdict,
    WsClose,
    WsIn,
    WsOpen,
    WsOut,
)
from sio_core.stores.base import BadMessage, Envelope

Message = Poll | PollAbort | Post | WsOpen | WsIn | WsOut | WsClose | Open
CLASSES: list[type[Message]] = [Poll, PollAbort, Post, WsOpen, WsIn, WsOut, WsClose, Open]

MESSAGES: list[Message] = [
    Poll("AAAAAAAAAAAAAAAA.w1", 1),
    PollAbort(2**40),
    Post("AAAAAAAAAAAAAAAA.w1", b"4hello\x1ebAQI="),
    Post("s", b""),
    WsOpen("s", "w2:7"),
    WsIn("w2:7", "4text"),
    WsIn("w2:7", b"\x00\xff"),
    WsOut("w2:7", ["4one", b"\x01"]),
    WsOut("w2:7", []),
    WsClose("w2:7"),
    Open("AAAAAAAAAAAAAAAA.w1", "/socket.io/", b"/socket.io/?EIO=4&transport=polling",
         {"EIO": "4", "transport": "polling"}, {"host": "h", "cookie": "a=\u00e9"},
         ("127.0.0.1", 50000), True),
    Open("s", "/", b"/", {}, {}, None, False),
]


def test_every_kind_has_its_message() -> None:
    # (METRICS and ALIVE carry nothing: no message)
    assert {cls.KIND for cls in CLASSES} == set(EngineKind) - {EngineKind.METRICS,
                                                               EngineKind.ALIVE}


@pytest.mark.parametrize("message", MESSAGES, ids=repr)
def test_round_trip_through_the_envelope(message: Message) -> None:
    envelope = Envelope.unpack(Envelope(message.KIND, "w1", message.to_wire()).pack())
    assert envelope.kind == message.KIND
    assert type(message).from_wire(envelope.payload) == message


VERDICTS = [Verdict(200), Verdict(400, 1), Verdict(200, body=b"4x"), Verdict(101, close=True),
            Verdict(413)]


@pytest.mark.parametrize("verdict", VERDICTS, ids=repr)
def test_verdict_round_trip(verdict: Verdict) -> None:
    wire = msgpack.unpackb(msgpack.packb(verdict.to_wire(), use_bin_type=True), raw=False)
    assert Verdict.from_wire(wire) == verdict


BAD: list[tuple[type[Message] | type[Verdict], Any]] = [
    (Poll, None), (Poll, {"sid": "s", "t": 1}), (Poll, ["s"]), (Poll, ["s", "1"]),
    (Poll, [b"s", 1]), (Poll, ["s", True]), (Poll, ["s", 1, 2]),
    (PollAbort, []), (PollAbort, ["1"]), (PollAbort, 1),
    (Post, ["s", "text"]), (Post, [1, b""]), (Post, ["s"]),
    (WsOpen, ["s", 1]), (WsOpen, [None, "p"]), (WsOpen, "s"),
    (WsIn, ["p", 1]), (WsIn, ["p", None]), (WsIn, [1, "x"]),
    (WsOut, ["p", "4x"]), (WsOut, ["p", ["4x", 1]]), (WsOut, [None, []]),
    (WsClose, []), (WsClose, [1]), (WsClose, {"p": "x"}),
    (Verdict, None), (Verdict, [200]), (Verdict, ["200", None, b"", False]),
    (Verdict, [200, "1", b"", False]), (Verdict, [200, None, "", False]),
    (Verdict, [200, None, b"", 1]),
    (Open, ["s", "/", b"/", {}, {}, None]), (Open, ["s", "/", "/", {}, {}, None, False]),
    (Open, ["s", "/", b"/", {"a": 1}, {}, None, False]),
    (Open, ["s", "/", b"/", {}, [], None, False]),
    (Open, ["s", "/", b"/", {}, {}, ["h"], False]),
    (Open, ["s", "/", b"/", {}, {}, ["h", "1"], False]),
    (Open, ["s", "/", b"/", {}, {}, None, 0]),
]


@pytest.mark.parametrize(("cls", "wire"), BAD, ids=lambda v: repr(v)[:40])
def test_bad_input_raises_the_one_error(cls: type[Message] | type[Verdict], wire: Any) -> None:
    with pytest.raises(BadMessage, match="malformed"):
        cls.from_wire(wire)


values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([*CLASSES, Verdict]), st.one_of(values, st.lists(values, max_size=5)))
def test_any_value_decodes_or_raises_bad_message(cls: type[Message] | type[Verdict],
                                                 wire: Any) -> None:
    try:
        message = cls.from_wire(wire)
    except BadMessage:
        return
    assert message.to_wire() == wire
