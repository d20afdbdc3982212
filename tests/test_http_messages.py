"""Unit tests of sio_core.http.messages: a Response as written, and Deferred (an answer that
comes later, given to its listener at once)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from sio_core.http import messages
from sio_core.http.messages import Deferred, Request, Response


@pytest.mark.parametrize(
    ("response", "keep_alive", "expected"),
    [
        (Response(200, [("Content-Type", "text/html")], b"ok"), True,
         b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\nok"),
        (Response(200, [("Content-Type", "text/html")], b"ok"), False,
         b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n"
         b"Connection: close\r\n\r\nok"),
        (Response(404), True, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
        (Response(299, [("A", "1"), ("B", "2")], b"xyz"), True,
         b"HTTP/1.1 299 Unknown\r\nA: 1\r\nB: 2\r\nContent-Length: 3\r\n\r\nxyz"),
    ],
)
def test_serialize(response: Response, keep_alive: bool, expected: bytes) -> None:
    assert response.serialize(keep_alive) == expected
    assert response.serialize(keep_alive) == expected  # from the kept head, the same


def test_serialize_keeps_a_bounded_number_of_heads() -> None:
    """Heads that vary (a cookie per session) do not grow the table past its bound, and a
    head made again after the table was emptied is the same."""
    first = Response(200, [("Set-Cookie", "io=0")], b"a").serialize(True)
    for index in range(messages._MAX_HEADS * 2):
        response = Response(200, [("Set-Cookie", f"io={index}")], b"a")
        assert response.serialize(True).endswith(b"io=%d\r\nContent-Length: 1\r\n\r\na" % index)
        assert len(messages._HEADS) <= messages._MAX_HEADS
    assert Response(200, [("Set-Cookie", "io=0")], b"a").serialize(True) == first


def test_a_deferred_answer_goes_to_its_listener_at_once() -> None:
    answers: list[str] = []
    deferred: Deferred[str] = Deferred()
    deferred.listen(answers.append)
    assert not deferred.done()
    deferred.set_result("answer")
    assert answers == ["answer"]  # in set_result's call, not a loop turn later
    assert deferred.done() and not deferred.cancelled()
    deferred.set_result("another")  # ignored: the first answer stands
    assert not deferred.cancel()
    assert answers == ["answer"]
    late: list[str] = []
    deferred.listen(late.append)  # a listener after the answer gets it at once
    assert late == ["answer"]


def test_cancelling_a_deferred_calls_on_cancel_at_once() -> None:
    cancelled: list[Deferred[str]] = []
    answers: list[str] = []
    deferred: Deferred[str] = Deferred(cancelled.append)
    deferred.listen(answers.append)
    assert deferred.cancel()
    assert cancelled == [deferred] and deferred.cancelled() and deferred.done()
    assert not deferred.cancel()  # once only
    deferred.set_result("too late")
    assert answers == [] and cancelled == [deferred]


async def test_a_deferred_can_be_awaited() -> None:
    deferred: Deferred[str] = Deferred()
    asyncio.get_running_loop().call_soon(deferred.set_result, "answer")
    assert await deferred == "answer"
    assert await deferred == "answer"  # once done, at once


async def test_cancelling_the_await_cancels_the_deferred() -> None:
    """An integration's task cancelled (its client went away) withdraws the answer."""
    cancelled: list[Deferred[str]] = []
    deferred: Deferred[str] = Deferred(cancelled.append)

    async def wait() -> str:
        return await deferred

    task = asyncio.ensure_future(wait())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)  # the Future's callback, a loop turn later
    assert cancelled == [deferred]
    future = deferred.as_future()  # what is cancelled stays so
    assert future.cancelled()


def test_what_a_session_keeps_of_its_handshake_request() -> None:
    """Request.parsed: every field but the bytes (raw headers, body, trailing data)."""
    request = Request("GET", "/socket.io/", {"EIO": "4"}, {"host": "x"}, b"body", ("h", 1),
                      True, [(b"Host", b"x")], b"/socket.io/?EIO=4", "1.0", False, True,
                      b"frames")
    assert request.parsed() == dataclasses.replace(request, raw_headers=[], body=b"",
                                                   trailing=b"")
