"""Raw HTTP/1.1 exchanges, row by row, against sio_core and against the reference server.

Each row of ``ROWS`` is what a client does on one TCP connection (requests written byte for
byte, several in one write for pipelining, a half-close) and the answers it gets: status,
``Connection`` (what the client may do next), body, and whether the connection is then still
open (a further request is answered) or closed. The rows cover keep-alive and close in HTTP/1.0
and 1.1 (RFC 9112 §9), pipelining, ``Expect: 100-continue`` (RFC 9110 §10.1.1), bodies over
max_payload, and a half-close after the last request.

Every row's answer is the reference's: the test first runs the table against node's socket.io 4
(``tests/js/reference_server.js``) and checks that it still answers so, then runs it against
``serve`` on one worker and on four (where any request for a session may land on a worker that
does not own it and be forwarded). Where sio_core answers otherwise on purpose, the row says
what it answers and why (``ours``/``why``).

Also here: a client that pipelines a thousand requests for the client bundle and does not read
the answers does not make the server buffer them all (its memory is measured).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support import REPO_ROOT, ServerProcess, scaled, start_node
from tests.test_http_errors import Answer, RawConnection, handshake, polling, request

pytestmark = [pytest.mark.interop, pytest.mark.asyncio(loop_scope="module")]

APP = "tests.apps.sio_app:io"
MAX_PAYLOAD = 1000
REFERENCE_JS = REPO_ROOT / "tests" / "js" / "reference_server.js"
READY = re.compile(r"\[master\] INFO sio_core\.supervisor: 4 workers ready")

# --- the table -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    """Write these bytes (``{sid}``: the row's live polling session)."""

    data: bytes


@dataclass(frozen=True)
class Read:
    """Read this many answers (an interim 100 counts as one)."""

    count: int = 1


@dataclass(frozen=True)
class BodyIfContinued:
    """If the last answer was 100 Continue, send the body and read the final answer."""

    body: bytes


@dataclass(frozen=True)
class ShutWrite:
    """Half-close: the client sends nothing more (it waits for its answers)."""


Step = Send | Read | BodyIfContinued | ShutWrite


@dataclass(frozen=True)
class Seen:
    """What the client saw: one ``"status connection body"`` per answer, then whether the
    connection stayed open."""

    answers: tuple[str, ...]
    end: str  # "open" | "closed"


@dataclass(frozen=True)
class Row:
    name: str
    steps: tuple[Step, ...]
    #: the reference's answer
    seen: Seen
    #: HTTP/1.0 requests: no Connection header means close; Keep-Alive is shown
    http10: bool = False
    #: where sio_core answers otherwise on purpose: what, and why
    ours: Seen | None = None
    why: str = ""


def http(method: str, target: str, *, version: str = "1.1", body: bytes = b"",
         headers: Sequence[str] = ()) -> bytes:
    """One request; Content-Length when there is a body, unless ``headers`` frame it."""
    lines = [f"{method} {target} HTTP/{version}", "Host: 127.0.0.1", *headers]
    if body and not any(h.lower().startswith(("content-length", "transfer-encoding"))
                        for h in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


HANDSHAKE = polling()
SESSION = polling("{sid}")
CLOSE = "Connection: close"
KEEP_ALIVE = "Connection: keep-alive"
EXPECT = "Expect: 100-continue"

#: sids are random: shown as "…"
OPEN = ('0{"sid":"…","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,'
        '"maxPayload":1000}')
CONNECTED = '40{"sid":"…"}'
UNKNOWN_TRANSPORT = '{"code":0,"message":"Transport unknown"}'
UNKNOWN_SID = '{"code":1,"message":"Session ID unknown"}'

#: well over max_payload, and over what the socket buffers hold: a server that closes at once
#: while it is still coming resets the connection, and the client never reads the 413
BIG = 8_000_000
BIG_BODY = b"4" + b"x" * (BIG - 1)
CHUNKED_BIG_BODY = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in
                            (BIG_BODY[i:i + 65536] for i in range(0, BIG, 65536))) + b"0\r\n\r\n"

LINGER = ("we close once we have answered, in stages: our side is shut and what the client"
          " still sends is read and discarded (up to lingering_bytes/lingering_timeout), so"
          " it reads the 413; the reference reads and discards any amount and keeps the"
          " connection")

ROWS = [
    # -- keep-alive and close (RFC 9112 §9.3, §9.6)
    Row("HTTP/1.1 is kept alive",
        (Send(http("GET", HANDSHAKE)), Read()),
        Seen((f"200 keep-alive {OPEN}",), "open")),
    Row("HTTP/1.1 with Connection: close",
        (Send(http("GET", HANDSHAKE, headers=[CLOSE])), Read()),
        Seen((f"200 close {OPEN}",), "closed")),
    Row("HTTP/1.0 closes",
        (Send(http("GET", HANDSHAKE, version="1.0")), Read()),
        Seen((f"200 close {OPEN}",), "closed"), http10=True),
    Row("HTTP/1.0 with Connection: keep-alive is kept alive",
        (Send(http("GET", HANDSHAKE, version="1.0", headers=[KEEP_ALIVE])), Read()),
        Seen((f"200 keep-alive (timeout=5) {OPEN}",), "open"), http10=True),
    Row("HTTP/1.0 keep-alive, then without it, in one write",
        (Send(http("GET", HANDSHAKE, version="1.0", headers=[KEEP_ALIVE])
              + http("GET", HANDSHAKE, version="1.0")), Read(2)),
        Seen((f"200 keep-alive (timeout=5) {OPEN}", f"200 close {OPEN}"), "closed"),
        http10=True),
    # -- pipelining: answered in order, however long each takes
    Row("four requests in one write",
        (Send(http("POST", SESSION, body=b"40") + http("GET", SESSION)
              + http("GET", "/socket.io/?EIO=4") + http("GET", polling("nope"))), Read(4)),
        Seen(("200 keep-alive ok", f"200 keep-alive {CONNECTED}",
              f"400 keep-alive {UNKNOWN_TRANSPORT}", f"400 keep-alive {UNKNOWN_SID}"), "open")),
    Row("pipelined, the last with Connection: close",
        (Send(http("POST", SESSION, body=b"40") + http("GET", SESSION, headers=[CLOSE])),
         Read(2)),
        Seen(("200 keep-alive ok", f"200 close {CONNECTED}"), "closed")),
    Row("a request after Connection: close",
        (Send(http("GET", HANDSHAKE, headers=[CLOSE]) + http("GET", HANDSHAKE)), Read()),
        Seen(("400 close",), "closed"),
        ours=Seen((f"200 close {OPEN}",), "closed"),
        why="RFC 9112 §9.6: no request after a close is processed; we answer the one that"
            " closes and ignore the rest, where the reference's parser refuses the data after"
            " it and the connection with a bare 400, before the first answer is written"),
    # -- the client's half-close: what it asked for is still answered
    Row("Connection: close, then the client's EOF",
        (Send(http("GET", HANDSHAKE, headers=[CLOSE])), ShutWrite(), Read()),
        Seen((f"200 close {OPEN}",), "closed")),
    Row("a POST, then the client's EOF",
        (Send(http("POST", SESSION, body=b"40")), ShutWrite(), Read()),
        Seen(("200 keep-alive ok",), "closed")),
    # -- Expect: 100-continue (RFC 9110 §10.1.1), as Node's http server answers it
    Row("Expect: 100-continue",
        (Send(http("POST", SESSION, headers=[EXPECT, "Content-Length: 2"])), Read(),
         BodyIfContinued(b"40")),
        Seen(("100", "200 keep-alive ok"), "open")),
    Row("Expect: 100-continue, Content-Length over max_payload",
        (Send(http("POST", SESSION, headers=[EXPECT, f"Content-Length: {BIG}"])), Read(),
         BodyIfContinued(BIG_BODY)),
        Seen(("100", "413 keep-alive"), "open"),
        ours=Seen(("413 close",), "closed"),
        why="RFC 9110 §10.1.1: 'an immediate response with a final status code, if that status"
            " can be determined by examining just the method, target URI, and header fields':"
            " the client need not send the body; the reference answers 100, reads"
            " max_payload bytes of it, then 413. Then we close: " + LINGER),
    Row("Expect: 100-continue in HTTP/1.0 is ignored",
        (Send(http("POST", SESSION, version="1.0", headers=[EXPECT], body=b"40")), Read()),
        Seen(("200 close ok",), "closed"), http10=True),
    Row("an expectation other than 100-continue",
        (Send(http("POST", SESSION, headers=["Expect: 200-ok"], body=b"40")), Read()),
        Seen(("417 keep-alive",), "open"),
        ours=Seen(("417 close",), "closed"),
        why="we do not read a body we refuse: " + LINGER),
    # -- bodies over max_payload: the client, still sending, reads its 413
    Row("a body over max_payload",
        (Send(http("POST", SESSION, body=BIG_BODY)), Read()),
        Seen(("413 keep-alive",), "open"),
        ours=Seen(("413 close",), "closed"), why=LINGER),
    Row("a chunked body over max_payload",
        (Send(http("POST", SESSION, headers=["Transfer-Encoding: chunked"],
                   body=CHUNKED_BIG_BODY)), Read()),
        Seen(("413 keep-alive",), "open"),
        ours=Seen(("413 close",), "closed"), why=LINGER),
]


# --- running a row -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int


#: a request every server answers the same, to learn whether the connection is still open
PROBE = http("GET", polling("nope"))


def describe(answer: Answer, http10: bool) -> str:
    if answer.status < 200:
        return str(answer.status)
    connection = answer.headers.get("connection", "close" if http10 else "keep-alive").lower()
    if http10 and "keep-alive" in answer.headers:
        connection += f" ({answer.headers['keep-alive']})"
    body = re.sub(r'"sid":"[^"]*"', '"sid":"…"', answer.text)
    return " ".join(part for part in (str(answer.status), connection, body) if part)


async def run_row(server: Endpoint, row: Row) -> Seen:
    sid = await handshake(server)
    answers: list[str] = []
    last: Answer | None = None
    shut = False
    async with await RawConnection.open(server) as conn:
        try:
            for step in row.steps:
                if isinstance(step, Send):
                    await conn.send(step.data.replace(b"{sid}", sid.encode()))
                elif isinstance(step, ShutWrite):
                    conn.writer.write_eof()
                    shut = True
                elif isinstance(step, BodyIfContinued):
                    if last is not None and last.status == 100:
                        await conn.send(step.body)
                        last = await conn.answer()
                        answers.append(describe(last, row.http10))
                else:
                    for _ in range(step.count):
                        last = await conn.answer()
                        answers.append(describe(last, row.http10))
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
            return Seen((*answers, f"no answer: {exc!r}"), "closed")
        end = await (ends(conn) if shut else still_answers(conn))
    with contextlib.suppress(OSError, asyncio.IncompleteReadError, TimeoutError):
        await request(server, "POST", polling(sid), b"1")  # end the session, if it lives
    return Seen(tuple(answers), end)


async def still_answers(conn: RawConnection) -> str:
    try:
        await conn.send(PROBE)
        answer = await conn.answer()
    except (OSError, asyncio.IncompleteReadError):
        return "closed"
    except TimeoutError:
        return "neither answered nor closed"
    return "open" if answer.status == 400 else f"probe answered {answer.status}"


async def ends(conn: RawConnection) -> str:
    try:
        async with asyncio.timeout(scaled(5)):
            rest = await conn.reader.read()
    except ConnectionError:
        return "closed"
    except TimeoutError:
        return "open"
    return "closed" if rest == b"" else f"more data: {rest[:80]!r}"


async def run_table(server: Endpoint) -> list[Seen]:
    return [await run_row(server, row) for row in ROWS]


def differences(rows: Sequence[Row], seen: Sequence[Seen], expected: Sequence[Seen]) -> str:
    return "\n".join(f"{row.name}:\n  got      {got}\n  expected {want}"
                     for row, got, want in zip(rows, seen, expected, strict=True) if got != want)


# --- the servers ---------------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def reference() -> AsyncIterator[Endpoint]:
    async with await start_node(REFERENCE_JS, str(MAX_PAYLOAD)) as node:
        listening = await node.next_event({"event": "listening"}, timeout=10)
        yield Endpoint("127.0.0.1", int(listening["port"]))


async def start_ours(log_path: Path, workers: int) -> ServerProcess:
    server = ServerProcess(APP, "--max-payload", str(MAX_PAYLOAD), "--workers", str(workers),
                           "--shutdown-timeout", "2", log_path=log_path)
    await server.start()
    try:
        if workers > 1:
            await server.wait_for_log(READY, timeout=30)
    except BaseException:
        await server.stop()
        raise
    return server


# --- the tests -----------------------------------------------------------------------------------


async def test_the_reference_answers_as_the_table_says(reference: Endpoint) -> None:
    seen = await run_table(reference)
    assert seen == [row.seen for row in ROWS], differences(ROWS, seen, [r.seen for r in ROWS])


@pytest.mark.parametrize("workers", [1, 4])
async def test_sio_core_answers_as_the_reference(workers: int, tmp_path: Path) -> None:
    server = await start_ours(tmp_path / "server.log", workers)
    try:
        seen = await run_table(server)
        expected = [row.ours or row.seen for row in ROWS]
        assert seen == expected, differences(ROWS, seen, expected)
        assert "Traceback" not in server.log_text()
    finally:
        await server.stop()


# --- pipelining without reading ------------------------------------------------------------------

BUNDLE = "/socket.io/socket.io.js"
PIPELINED = 1000
#: What the server may grow by while a thousand answers of ~150 KB each (~150 MB) wait for their
#: client: its unsent output stays under the transport's high-water mark (64 KiB) plus one answer
#: (README, Limits); the rest is the allocator's slack and the queued requests. Without that
#: back-pressure it grew by ~143 MiB.
PIPELINE_GROWTH_BOUND = 8 * 1024 * 1024


def memory_kib(pid: int, field: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", status, re.MULTILINE)
    assert match is not None, status
    return int(match.group(1))


async def test_pipelined_answers_wait_for_their_client(tmp_path: Path) -> None:
    """A client pipelines a thousand requests for the client bundle in one write and reads
    nothing until all are sent: the server stops answering (and then reading) while its
    unsent output is over the transport's high-water mark, instead of making every answer at
    once; the client then reads every answer, in order."""
    server = await start_ours(tmp_path / "server.log", 1)  # one worker: serve's own process
    try:
        bundle = await request(server, "GET", BUNDLE)
        assert bundle.status == 200 and len(bundle.body) > 100_000, bundle.status
        # the peak (VmHWM) from here on: writing 5 to clear_refs resets it to the current RSS
        Path(f"/proc/{server.pid}/clear_refs").write_text("5")
        before = memory_kib(server.pid, "VmRSS")
        async with await RawConnection.open(server) as conn:
            await conn.send(http("GET", BUNDLE) * (PIPELINED - 1) + http("GET", polling("nope")))
            # a barrier: the server reads connections in order, so once a request sent after
            # these is answered, it has read them and answered all it was going to
            assert (await request(server, "GET", polling("nope"))).status == 400
            for index in range(PIPELINED - 1):
                answer = await conn.answer()
                assert (answer.status, answer.body) == (200, bundle.body), index
            assert (await conn.answer()).json() == {"code": 1, "message": "Session ID unknown"}
        growth = (memory_kib(server.pid, "VmHWM") - before) * 1024
        assert growth < PIPELINE_GROWTH_BOUND, f"grew by {growth / 2**20:.0f} MiB"
    finally:
        await server.stop()
