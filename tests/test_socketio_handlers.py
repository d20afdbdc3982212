"""sio_core.socketio.handlers: listeners, calling them (sync or async), and how a listener's
signature is read (arity, and how it takes an ack).

The rule (README, "Acks"): a parameter named ``ack`` or ``callback`` gets the ack callable by
keyword; otherwise a handler gets it as one more positional argument only when it has a required
positional parameter left after the client's arguments. The interop tests drive the same rule
through the official client (tests/test_socketio_interop.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any

import pytest

from sio_core.socketio.handlers import DONE, Context, EventEmitter, call, signature_of


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
    (next, (None, 0)),                   # no signature to read: never handed the ack
]  # fmt: skip


@pytest.mark.parametrize(("fn", "expected"), CASES, ids=lambda v: getattr(v, "__name__", None))
def test_signature_of(fn: Callable[..., Any], expected: tuple[int | None, str | int]) -> None:
    assert signature_of(fn) == expected


# --- EventEmitter ---------------------------------------------------------------------------------


def fired(emitter: EventEmitter, event: str) -> list[Callable[..., Any]]:
    """The listeners one occurrence of ``event`` calls."""
    return [listener.fn for listener in emitter._take(event)]


def test_on_once_off() -> None:
    emitter = EventEmitter()
    a, b, c = (lambda: None), (lambda: None), (lambda: None)
    assert emitter.on("x", a) is a
    assert emitter.once("x", b) is b
    assert emitter.on("y")(c) is c
    assert emitter.once("z")(a) is a
    assert fired(emitter, "x") == [a, b]
    assert fired(emitter, "x") == [a]
    assert fired(emitter, "z") == [a] and fired(emitter, "z") == []
    assert emitter.listeners("z") == [] and emitter.listeners("y") == [c]
    emitter.on("x", b)
    emitter.on("x", c)
    emitter.off("x", b)
    assert emitter.listeners("x") == [a, c]
    emitter.off("x", a)
    emitter.off("x", c)
    assert emitter.listeners("x") == [] and fired(emitter, "x") == []
    emitter.off("y")
    emitter.off("nothing", a)
    assert emitter.listeners("y") == []
    emitter.on("x", a)
    emitter.off()
    assert emitter.listeners("x") == []


def test_once_events_are_filtered_only_once_fired() -> None:
    emitter = EventEmitter()
    first, second = (lambda: 1), (lambda: 2)
    emitter.once("x", first)
    emitter.on("x", second)
    assert fired(emitter, "x") == [first, second]
    assert fired(emitter, "x") == [second]
    emitter.once("x", first)
    assert fired(emitter, "x") == [second, first]


# --- call -----------------------------------------------------------------------------------------


async def test_call_a_sync_handler() -> None:
    results: list[Any] = []
    assert call(lambda a, b=0: a + b, (1,), "ctx", results.append, {"b": 2}) is None
    assert call(lambda: None, (), "ctx") is None
    assert results == [3]


async def test_call_an_async_handler() -> None:
    results: list[Any] = []

    async def handler(value: int) -> int:
        await asyncio.sleep(0)
        return value * 2

    task = call(handler, (21,), "ctx", results.append)
    assert task is not None and results == []
    await task
    assert results == [42]
    task = call(handler, (1,), "ctx")  # nobody wants the result
    assert task is not None
    await task


@pytest.mark.parametrize("is_async", [False, True])
async def test_a_handlers_exception_is_logged_with_its_context(
        is_async: bool, caplog: pytest.LogCaptureFixture) -> None:
    def sync_bug() -> None:
        raise RuntimeError("bug")

    async def async_bug() -> None:
        raise RuntimeError("bug")

    results: list[Any] = []
    with caplog.at_level(logging.ERROR, "sio_core.socketio"):
        task = call(async_bug if is_async else sync_bug, (),
                    Context(None, "event {!r} of {}", "x", 1),
                    results.append)
        if task is not None:
            await task
    assert [r.getMessage() for r in caplog.records] == ["error in handler for event 'x' of 1"]
    assert results == []


@pytest.mark.parametrize("is_async", [False, True])
async def test_a_failing_result_consumer_is_logged(is_async: bool,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    async def later() -> str:
        return "v"

    def consumer(value: Any) -> None:
        raise ValueError(value)

    with caplog.at_level(logging.ERROR, "sio_core.socketio"):
        task = call(later if is_async else (lambda: "v"), (), "ctx", consumer)
        if task is not None:
            await task
    assert [r.getMessage() for r in caplog.records] == ["error delivering the result of ctx"]


async def test_a_cancelled_handler_is_not_an_error(caplog: pytest.LogCaptureFixture) -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    task = call(forever, (), "ctx", print)
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert caplog.records == []


def test_context_is_formatted_when_read() -> None:
    class Loud:
        def __repr__(self) -> str:
            raise AssertionError("formatted too early")

    context = Context(None, "event {!r} of {!r}", "x", Loud())
    with pytest.raises(AssertionError):
        str(context)
    assert str(Context(None, "ack {} of {}", 3, "s")) == "ack 3 of s"


async def test_done_is_an_awaitable_that_is_done() -> None:
    assert await DONE is None
