"""sio_core.socketio.handlers: how a listener's signature is read (arity, and how it takes an ack).

The rule (README, "Acks"): a parameter named ``ack`` or ``callback`` gets the ack callable by
keyword; otherwise a handler gets it as one more positional argument only when it has a required
positional parameter left after the client's arguments. The interop tests drive the same rule
through the official client (tests/test_socketio_interop.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest

from sio_core.socketio.handlers import signature_of


def plain(data: Any) -> None: ...
def js_style(data: Any, cb: Any) -> None: ...
def optional(room: Any = None) -> None: ...
def varargs(*args: Any) -> None: ...
def varargs_ack(*args: Any, ack: Any = None) -> None: ...
def named_callback(data: Any, callback: Any) -> None: ...
def positional_only_ack(data: Any, ack: Any, /) -> None: ...
def nothing() -> None: ...


class Handlers:
    def method(self, data: Any, cb: Any) -> None: ...


@functools.wraps(optional)
def wrapped(*args: Any, **kwargs: Any) -> None: ...


CASES: list[tuple[Callable[..., Any], tuple[int | None, str | int]]] = [
    (plain, (1, 1)),                     # 1 argument sent: no ack; 0 sent: the ack
    (js_style, (2, 2)),
    (optional, (1, 0)),                  # never the ack
    (varargs, (None, 0)),
    (varargs_ack, (None, "ack")),
    (named_callback, (2, "callback")),
    (positional_only_ack, (2, 2)),       # cannot be passed by keyword: the positional rule
    (nothing, (0, 0)),
    (lambda data, ack=None: None, (2, "ack")),
    (Handlers().method, (2, 2)),         # inspect.signature: self is bound
    (wrapped, (1, 0)),                   # follows __wrapped__
    (functools.partial(js_style, 1), (1, 1)),
    (print, (None, 0)),
]  # fmt: skip


@pytest.mark.parametrize(("fn", "expected"), CASES, ids=lambda v: getattr(v, "__name__", None))
def test_signature_of(fn: Callable[..., Any], expected: tuple[int | None, str | int]) -> None:
    assert signature_of(fn) == expected
