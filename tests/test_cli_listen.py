"""Where and how ``python -m sio_core serve`` listens and logs: ``--uds`` (one worker, and
``--workers 2`` sharing the master's socket), TLS (``--ssl-certfile/--ssl-keyfile``, a
self-signed certificate made by openssl, the official client trusting it as a CA, each of two
workers wrapping its own SO_REUSEPORT socket), ``--log-format json``, and trusted proxy headers
(``--forwarded-allow-ips``) seen in ``handshake.address/secure``. Real clients: python-socketio
(over the unix socket through aiohttp's UnixConnector) and the official client (node)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio

from sio_core import Server
from sio_core.http.proxy import TrustedProxies, forwarded_secure
from sio_core.listen import bind_unix, tls_context
from sio_core.logs import JSONFormatter
from tests.support import ServerProcess, disconnect_python_client, free_port, scaled, start_node
from tests.test_socketio_interop import APP, SIO_CLIENT, SioClient

pytestmark = [pytest.mark.interop]


class UnixServerProcess(ServerProcess):
    """A ServerProcess ready once its unix socket answers (not a TCP port)."""

    def __init__(self, *args: str, uds: Path, log_path: Path) -> None:
        super().__init__(*args, "--uds", str(uds), log_path=log_path)
        self.uds = uds

    async def _wait_listening(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + scaled(15)
        while True:
            if self.returncode is not None:
                raise AssertionError(f"exited {self.returncode}: {self.log_text()}")
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_unix_connection(str(self.uds))
                writer.close()
                return
            if loop.time() > deadline:
                raise AssertionError(f"no unix socket: {self.log_text()}")
            await asyncio.sleep(0.05)  # a cadence, not a deadline


@contextlib.asynccontextmanager
async def unix_client(uds: Path) -> AsyncIterator[socketio.AsyncClient]:
    session = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(uds)))
    client = socketio.AsyncClient(reconnection=False, http_session=session)
    try:
        yield client
    finally:
        await disconnect_python_client(client)
        await session.close()


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("transport", ["polling", "websocket"])
async def test_serve_on_a_unix_socket(tmp_path: Path, workers: str, transport: str) -> None:
    uds = tmp_path / "sio.sock"
    async with UnixServerProcess(APP, "--workers", workers, uds=uds,
                                 log_path=tmp_path / "server.log") as server:
        if workers == "2":
            await server.wait_for_log("2 workers ready on http on unix socket", timeout=15)
        assert uds.is_socket() and (uds.stat().st_mode & 0o777) == 0o666
        for _ in range(3):  # with two workers: the kernel picks one for each connection
            async with unix_client(uds) as client:
                await client.connect("http://localhost", transports=[transport],
                                     wait_timeout=scaled(5))
                assert await client.call("echo", b"\x00uds", timeout=scaled(5)) == b"\x00uds"
                peer = await client.call("peer", timeout=scaled(5))
                # a unix peer has no address
                assert (peer["address"], peer["secure"]) == (None, False)
    assert not uds.exists()  # removed by whoever bound it


def test_bind_unix_replaces_a_stale_socket_and_refuses_a_live_one(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    first = bind_unix(path, 8)
    with pytest.raises(OSError, match="a server is listening on"):
        bind_unix(path, 8)
    first.close()  # gone, its file left behind
    bind_unix(path, 8).close()
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError, match="is not a socket"):
        bind_unix(str(tmp_path / "file"), 8)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, made by openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=scaled(30))
    return cert, key


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_tls_with_the_official_client(tmp_path: Path, certificate: tuple[Path, Path],
                                            workers: str) -> None:
    cert, key = certificate
    async with ServerProcess(APP, "--workers", workers, "--ssl-certfile", str(cert),
                             "--ssl-keyfile", str(key), log_path=tmp_path / "server.log",
                             startup_timeout=20) as server:
        await server.wait_for_log(r"(workers ready|listening) on https://", timeout=15)
        url = f"https://127.0.0.1:{server.port}"
        # the certificate is trusted as a CA (rejectUnauthorized stays on)
        node = await start_node(SIO_CLIENT, url, env={"NODE_EXTRA_CA_CERTS": str(cert)})
        await node.next_event({"ev": "ready"})
        client = SioClient(node)
        async with client.node:
            for transport in ("polling", "websocket"):
                name = f"tls-{transport}"
                await client.connected(name, transports=[transport])
                assert await client.call(name, "echo", "over TLS") == ["over TLS"]
                [peer] = await client.call(name, "peer")
                assert (peer["address"], peer["secure"]) == ("127.0.0.1", True)
            await client.connected("upgraded")  # polling, then the upgrade to WSS
            await client.node.next_event({"ev": "upgrade", "name": "upgraded",
                                          "transport": "websocket"})
            assert await client.call("upgraded", "echo", "wss") == ["wss"]


async def test_json_logs(tmp_path: Path) -> None:
    async with ServerProcess(APP, "--workers", "2", "--log-format", "json",
                             log_path=tmp_path / "server.log") as server:
        await server.wait_for_log(r'"2 workers ready on http://', timeout=15)
    lines = server.log_text().splitlines()
    entries = [json.loads(line) for line in lines]  # every line one JSON object
    assert len(entries) >= 4
    assert {e["role"] for e in entries} == {"master", "worker #1", "worker #2"}
    for entry in entries:
        assert set(entry) >= {"time", "level", "logger", "role", "message"}
    assert any(e["message"].startswith("listening on http://") for e in entries)


# --- trusted proxy headers ----------------------------------------------------------------------


async def handshake_seen(config: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    """The handshake's address and secure as a python-socketio client's socket sees them,
    the client sending ``headers``."""
    io = Server(**config)
    seen: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    @io.on("connection")
    def connection(socket: Any) -> None:
        seen.set_result({"address": socket.handshake.address,
                         "secure": socket.handshake.secure})

    port = free_port()
    await io.serve("127.0.0.1", port)
    client = socketio.AsyncClient(reconnection=False)
    try:
        await client.connect(f"http://127.0.0.1:{port}", headers=headers,
                             transports=["websocket"], wait_timeout=scaled(5))
        async with asyncio.timeout(scaled(5)):
            return await seen
    finally:
        await client.disconnect()
        await io.close(scaled(5))


FORWARDED = {"X-Forwarded-For": "203.0.113.9, 10.1.2.3", "X-Forwarded-Proto": "https"}


@pytest.mark.parametrize(("allowed", "expected"), [
    # the peer (127.0.0.1) is trusted; so is 10.1.2.3 (the proxy before it): the client is
    # the first untrusted address from the right
    (["127.0.0.1", "10.0.0.0/8"], {"address": "203.0.113.9", "secure": True}),
    (["127.0.0.0/8"], {"address": "10.1.2.3", "secure": True}),
    (["*"], {"address": "203.0.113.9", "secure": True}),
    # not trusted: the headers are ignored
    (["10.0.0.0/8"], {"address": "127.0.0.1", "secure": False}),
    ([], {"address": "127.0.0.1", "secure": False}),
])
async def test_trusted_proxy_headers(allowed: list[str], expected: dict[str, Any]) -> None:
    assert await handshake_seen({"forwarded_allow_ips": allowed}, FORWARDED) == expected


async def test_forwarded_allow_ips_on_the_command_line(tmp_path: Path) -> None:
    async with ServerProcess(APP, "--forwarded-allow-ips", "127.0.0.1",
                             log_path=tmp_path / "server.log") as server:
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(server.url, headers=FORWARDED, transports=["polling"],
                             wait_timeout=scaled(5))
        try:
            peer = await client.call("peer", timeout=scaled(5))
            assert (peer["address"], peer["secure"]) == ("10.1.2.3", True)
        finally:
            await client.disconnect()


# --- in process: the pieces -----------------------------------------------------------------------


@pytest.mark.parametrize(("allowed", "host", "trusted"), [
    (["127.0.0.1"], "127.0.0.1", True),
    (["127.0.0.1"], "127.0.0.2", False),
    (["10.0.0.0/8", "::1"], "10.9.9.9", True),
    (["10.0.0.0/8", "::1"], "::1", True),
    (["10.0.0.0/8"], None, False),  # a unix-socket peer
    (["unix"], None, True),
    (["unix"], "127.0.0.1", False),
    (["*"], None, True),
    (["*"], "198.51.100.1", True),
    (["127.0.0.1"], "not-an-address", False),
])
def test_trusted_proxies(allowed: list[str], host: str | None, trusted: bool) -> None:
    assert TrustedProxies(allowed).trusts(host) is trusted


def test_forwarded_values() -> None:
    proxies = TrustedProxies(["10.0.0.0/8"])
    assert proxies.client("1.2.3.4, 10.0.0.1, 10.0.0.2") == "1.2.3.4"
    assert proxies.client("10.0.0.1, 10.0.0.2") == "10.0.0.1"  # all trusted: the leftmost
    assert proxies.client(" , ") is None
    assert not TrustedProxies([]) and TrustedProxies(["unix"])
    assert forwarded_secure("http, https") and forwarded_secure("WSS")
    assert not forwarded_secure("https, http")


def test_json_formatter() -> None:
    formatter = JSONFormatter("worker #3")
    record = logging.LogRecord("sio_core.x", logging.WARNING, __file__, 1, "a %s", ("b",), None)
    entry = json.loads(formatter.format(record))
    assert (entry["level"], entry["logger"], entry["role"], entry["message"]) == \
        ("WARNING", "sio_core.x", "worker #3", "a b")
    try:
        raise ValueError("boom ü")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (),
                                   sys.exc_info())
    entry = json.loads(formatter.format(record))
    assert "ValueError: boom ü" in entry["exception"]
    assert "\n" not in formatter.format(record)  # one line


def test_tls_context_and_unix_socket_errors(tmp_path: Path,
                                            certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    assert tls_context(str(cert), str(key)).check_hostname is False
    with pytest.raises(ssl.SSLError):
        tls_context(str(key), str(key))  # a key is no certificate
    with pytest.raises(OSError):
        bind_unix(str(tmp_path / "no-such-dir" / "s.sock"), 8)
