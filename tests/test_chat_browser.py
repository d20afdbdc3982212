"""The chat demo in a real browser: headless Chromium (Debian's, driven by playwright) loads
``sio_core/demo/static/index.html`` from ``python -m sio_core serve`` with the official
JavaScript client the server hands out at ``/socket.io/socket.io.js``.

Two browser contexts (two independent visitors, no shared cookies or storage) open the page; what
one sends must show up exactly once on both pages, in order, after the client has upgraded to
WebSocket; the server's log must show which worker connected the clients and processed the
messages. With ``--workers 4`` the same holds for two pages whose sockets belong to different
workers.

Every wait is playwright's own (``expect``, ``wait_for_function``) with a scaled timeout, or
``wait_for_log``; there are no sleeps.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support import ServerProcess, scaled

if TYPE_CHECKING:
    from playwright.async_api import Browser, ConsoleMessage, Page

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Non-ASCII on purpose (Korean, an emoji outside the BMP, markup that must stay text): the message
# goes through the JS client's encoder, the server's decoder and encoder, and back.
MESSAGE_A = "안녕하세요, A입니다 🙂 <b>not bold</b>"
MESSAGE_B = "B가 답장합니다 — ok ✅"


def ms(seconds: float) -> float:
    """A scaled timeout in milliseconds, as playwright wants it."""
    return scaled(seconds) * 1000


@pytest.fixture
async def browser(chromium_path: str) -> AsyncIterator[Browser]:
    """Headless Chromium with a fresh profile, closed (browser, then playwright's driver) at the
    end so no process, pipe or transport outlives the test.

    The fresh user data dir: playwright refuses ``--user-data-dir`` in ``args`` for a
    non-persistent launch (and a persistent context would give one browser context only), so it is
    playwright's own: each ``launch()`` gets a new ``playwright_chromiumdev_profile-*`` directory
    from mkdtemp in the temp directory, deleted when the browser closes. (It is not moved into
    tmp_path by pointing TMPDIR there: Chromium inherits TMPDIR, and its singleton socket path
    under a deep tmp_path exceeds the 107-byte limit of a Unix socket path, which aborts it.)"""
    async_api = pytest.importorskip(
        "playwright.async_api", reason="playwright is not installed: pip install -e '.[dev]'"
    )
    async with async_api.async_playwright() as pw:
        launched: Browser = await pw.chromium.launch(
            executable_path=chromium_path,
            headless=True,
            args=CHROMIUM_ARGS,
            timeout=ms(15),
        )
        try:
            yield launched
        finally:
            await launched.close()


async def open_chat(browser: Browser, url: str, errors: list[str], name: str) -> Page:
    """A page in a browser context of its own, at the chat, connected."""
    from playwright.async_api import expect

    context = await browser.new_context(locale="ko-KR")
    context.set_default_timeout(ms(5))
    page = await context.new_page()

    def on_console(msg: ConsoleMessage) -> None:
        if msg.type in ("error", "warning"):
            errors.append(f"{name}: console.{msg.type}: {msg.text} ({msg.location})")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(f"{name}: page error: {exc}"))
    await page.goto(url, wait_until="domcontentloaded", timeout=ms(5))
    await expect(page.locator("#messages li.status")).to_have_text(["connected"], timeout=ms(5))
    # The page connects over polling first; the official client then upgrades to WebSocket. Wait
    # for the upgrade so the messages below travel over the WebSocket (a broken upgrade would
    # otherwise go unnoticed: the chat works over polling too). `socket` is the page's own global.
    await page.wait_for_function(
        "() => socket.connected && socket.io.engine.transport.name === 'websocket'",
        timeout=ms(5),
    )
    return page


async def send(page: Page, text: str) -> None:
    from playwright.async_api import expect

    box = page.get_by_role("textbox", name="message")
    await box.fill(text)
    await page.get_by_role("button", name="전송").click()
    await expect(box).to_have_value("", timeout=ms(5))  # the page clears the box once sent


async def expect_messages(page: Page, texts: list[str]) -> None:
    """The page's chat messages (status lines aside) are exactly ``texts``, in order: a missing,
    duplicated or reordered message fails."""
    from playwright.async_api import expect

    await expect(page.locator("#messages li:not(.status)")).to_have_text(texts, timeout=ms(5))


async def page_elsewhere(browser: Browser, url: str, errors: list[str],
                         owner_of: Callable[[Page], Awaitable[str]], first: str) -> Page:
    """A chat page whose socket belongs to another worker than ``first``: each page's handshake
    lands on a worker the kernel picks, so pages are opened until one does (each try does so
    with probability 3/4 with four workers on SO_REUSEPORT; uvicorn's workers share one
    listening socket, and on a loaded machine a run of 12 pages once all went to one)."""
    for attempt in range(24):
        page = await open_chat(browser, url, errors, f"B{attempt}")
        if await owner_of(page) != first:
            return page
        await page.context.close()
    raise AssertionError(f"every page connected to {first}")


async def exchange(page_a: Page, page_b: Page) -> None:
    """A sends, both pages show it; B answers, both show both, in order."""
    await send(page_a, MESSAGE_A)
    await expect_messages(page_a, [MESSAGE_A])
    await expect_messages(page_b, [MESSAGE_A])

    await send(page_b, MESSAGE_B)
    await expect_messages(page_b, [MESSAGE_A, MESSAGE_B])
    await expect_messages(page_a, [MESSAGE_A, MESSAGE_B])


def count(pattern: str, log: str) -> int:
    return len(re.findall(pattern, log))


async def test_chat_in_two_browser_contexts(
    browser: Browser, server_factory: Any, tmp_path: Path
) -> None:
    server: ServerProcess = await server_factory()  # no app argument: the chat demo
    errors: list[str] = []

    page_a = await open_chat(browser, server.url + "/", errors, "A")
    page_b = await open_chat(browser, server.url + "/", errors, "B")
    await server.wait_for_log(r"(?s)connected by worker #\d+.*connected by worker #\d+")

    await send(page_a, MESSAGE_A)
    await expect_messages(page_a, [MESSAGE_A])  # back to the sender
    await expect_messages(page_b, [MESSAGE_A])  # and broadcast to the other

    await send(page_b, MESSAGE_B)
    await expect_messages(page_b, [MESSAGE_A, MESSAGE_B])
    await expect_messages(page_a, [MESSAGE_A, MESSAGE_B])

    await page_a.screenshot(path=tmp_path / "chat-a.png", full_page=True)

    await server.wait_for_log(
        r"(?s)message processed by worker #\d+.*message processed by worker #\d+"
    )
    log = server.log_text()
    assert count(r"connected by worker #\d+", log) == 2, log
    assert count(r"message processed by worker #\d+", log) == 2, log
    assert "Traceback" not in log, log
    assert errors == []


async def worker_of(server: ServerProcess, page: Page) -> str:
    """The worker that owns the page's socket: the one that logged its connection."""
    socket_id = await page.evaluate("() => socket.id")
    match = await server.wait_for_log(
        rf"connected by worker #(\d+) \({re.escape(socket_id)}\)", timeout=5
    )
    return match[1]


async def test_chat_across_workers(browser: Browser, server_factory: Any, tmp_path: Path) -> None:
    """The demo with four workers: two pages whose sockets belong to different workers still
    see each other's messages (a broadcast through the master, upgrades that may land on any
    worker)."""
    server: ServerProcess = await server_factory("--workers", "4")
    await server.wait_for_log(r"\[master\] .*4 workers ready", timeout=30)
    errors: list[str] = []

    page_a = await open_chat(browser, server.url + "/", errors, "A")
    worker_a = await worker_of(server, page_a)
    page_b = await page_elsewhere(browser, server.url + "/", errors,
                                  lambda page: worker_of(server, page), worker_a)
    worker_b = await worker_of(server, page_b)
    await exchange(page_a, page_b)

    await page_b.screenshot(path=tmp_path / "chat-workers-b.png", full_page=True)

    # each message was handled by the worker that owns its sender's socket
    await server.wait_for_log(rf"\[worker #{worker_a}\] .*message processed by worker #{worker_a}")
    await server.wait_for_log(rf"\[worker #{worker_b}\] .*message processed by worker #{worker_b}")
    log = server.log_text()
    assert count(r"message processed by worker #\d+", log) == 2, log
    assert "Traceback" not in log, log
    assert errors == []
