"""The Socket.IO admin UI in a real browser, against four workers.

``python -m sio_core serve tests.apps.admin_app:io --workers 4 --admin-ui`` serves the UI's page
at ``/admin/`` from the npm package ``@socket.io/admin-ui`` (no hosted site), and the application,
instrumented, on every worker. Eight official node clients connect first (four over WebSocket,
four long-polling), so that several workers hold some. Headless Chromium (Debian's, driven by
playwright) opens the page and logs in as a person would: a wrong password is refused ("Invalid
credentials"), the right one shows the sockets of every worker, each with its transport, and the
four workers; a click on one socket's disconnect button, for a socket that another worker than
the UI's own owns, disconnects that client.

The page asks public CDNs for its fonts and icons (its own index.html): those requests are
aborted (the tests use the loopback only), so the buttons show no icon, and the console errors
of the aborted requests are expected. Every wait is playwright's own or a node event, scaled.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.apps.admin_app import PASSWORD, USERNAME
from tests.support import ServerProcess, start_node
from tests.test_admin_cluster import APP
from tests.test_chat_browser import browser, ms  # noqa: F401
from tests.test_cluster import CLIENTS_JS, WORKER_IDS, Clients, cluster_server, owner_worker

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page, Route

pytestmark = [pytest.mark.browser, pytest.mark.interop]

TRANSPORT_LABELS = {"websocket": "WebSocket", "polling": "HTTP long-polling"}


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    server = await cluster_server(tmp_path / "server.log", "--admin-ui", app=APP)
    try:
        yield server
    finally:
        await server.stop()


async def admin_page(browser: Browser, server: ServerProcess,  # noqa: F811
                     errors: list[str]) -> Page:
    """A page at the UI, with everything not from the server aborted."""
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(ms(10))

    async def local_only(route: Route) -> None:
        if route.request.url.startswith(server.url + "/"):
            await route.continue_()
        else:
            await route.abort()

    await context.route("**/*", local_only)
    page = await context.new_page()
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    response = await page.goto(server.url + "/admin/", wait_until="domcontentloaded")
    assert response is not None and response.status == 200
    return page


async def log_in(page: Page, server_url: str, password: str) -> None:
    await page.get_by_label("Server URL").fill(server_url)
    await page.get_by_label("Username").fill(USERNAME)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Connect").click()


async def test_the_ui_lists_and_disconnects_the_sockets_of_every_worker(
    browser: Browser, server: ServerProcess, tmp_path: Path  # noqa: F811
) -> None:
    from playwright.async_api import expect

    errors: list[str] = []
    async with await start_node(CLIENTS_JS, server.url) as node:
        clients = Clients(node)
        app = {**await clients.open("ws", 4, ["websocket"]),
               **await clients.open("poll", 4, ["polling"])}
        assert len({owner_worker(c["sid"]) for c in app.values()}) >= 2, app

        page = await admin_page(browser, server, errors)
        await log_in(page, server.url, "not the password")
        await expect(page.get_by_text("Invalid credentials")).to_be_visible()

        # the UI connects over polling, then upgrades: the websocket's URL names its session
        async with page.expect_websocket(lambda ws: "sid=" in ws.url) as upgrade:
            await log_in(page, server.url, PASSWORD)
        ui_worker = owner_worker((await upgrade.value).url.rpartition("sid=")[2])
        await expect(page.get_by_text("Invalid credentials")).to_be_hidden()

        await page.locator("nav").get_by_role("link", name="Servers").click()
        servers = page.locator("tbody tr")
        await expect(servers).to_have_count(len(WORKER_IDS))
        for row in await servers.all():
            await expect(row).to_contain_text("Healthy", ignore_case=True)
        await page.screenshot(path=tmp_path / "admin-servers.png")

        await page.locator("nav").get_by_role("link", name="Sockets").click()
        rows = page.locator("tbody tr")
        await expect(rows).to_have_count(len(app))
        for client in app.values():
            row = rows.filter(has_text=client["id"])
            await expect(row).to_contain_text(TRANSPORT_LABELS[client["transport"]])
            await expect(row).to_contain_text("127.0.0.1")
        await page.screenshot(path=tmp_path / "admin-sockets.png")

        target = next((name for name, c in app.items()
                       if owner_worker(c["sid"]) != ui_worker), None)
        assert target is not None, f"every client is on the UI's worker {ui_worker}"
        target_id = app[target]["id"]
        await rows.filter(has_text=target_id).get_by_role("button").click()
        event = await node.next_event({"ev": "disconnect", "name": target}, timeout=10)
        assert event["reason"] == "io server disconnect"
        # the click reached the row too, which opens the socket's details (the UI's way): back
        await page.locator("nav").get_by_role("link", name="Sockets").click()
        await expect(rows).to_have_count(len(app) - 1)
        await expect(rows.filter(has_text=target_id)).to_have_count(0)
        await page.screenshot(path=tmp_path / "admin-after-disconnect.png")

        stats = await clients.stats(list(app))
        assert [name for name, c in stats.items() if not c["connected"]] == [target]
    log: Any = server.log_text()
    assert "Traceback" not in log, log
    assert errors == []
