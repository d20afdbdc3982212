"""In-process tests of sio_core.http.static: files from a directory of the test's own
(never anything outside it), named files, the official client bundle; and the same over
the wire of an EngineServer in the test's event loop, answers compared byte for byte."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sio_core.config import Config
from sio_core.http.messages import Request
from sio_core.http.static import StaticFiles, client_files
from tests.engine_harness import answer_bytes, serving
from tests.test_http_errors import http_request

HTML = "text/html; charset=UTF-8"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """root/ with an index, a style sheet, a subdirectory, files of other types; and a
    secret beside root/ that no request may reach."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "index.html").write_bytes(b"<html>home</html>")
    (root / "style.css").write_bytes(b"p{}")
    (root / "sub" / "index.html").write_bytes(b"<html>sub</html>")
    (root / "logo.png").write_bytes(b"\x89PNG")
    (root / "data.zzunknown").write_bytes(b"\x00\x01")
    (tmp_path / "secret.txt").write_bytes(b"secret")
    os.symlink(tmp_path / "secret.txt", root / "link-out.txt")
    return root


def get(path: str, method: str = "GET") -> Request:
    return Request(method, path, {}, {})


@pytest.mark.parametrize(("path", "content_type", "body"), [
    ("/", HTML, b"<html>home</html>"),
    ("/index.html", HTML, b"<html>home</html>"),
    ("/sub", HTML, b"<html>sub</html>"),
    ("/sub/", HTML, b"<html>sub</html>"),
    ("/style.css", "text/css; charset=UTF-8", b"p{}"),
    ("/logo.png", "image/png", b"\x89PNG"),  # by mimetypes
    ("/data.zzunknown", "application/octet-stream", b"\x00\x01"),
    ("/%69ndex.html", HTML, b"<html>home</html>"),  # escapes are undone
])
def test_files_of_the_directory(site: Path, path: str, content_type: str, body: bytes) -> None:
    response = StaticFiles(str(site)).respond(get(path))
    assert (response.status, response.headers, response.body) \
        == (200, [("Content-Type", content_type), ("Cache-Control", "no-cache")], body)


@pytest.mark.parametrize("path", [
    "/missing.html", "/empty", "/../secret.txt", "/%2e%2e/secret.txt", "/sub/../../secret.txt",
    "/link-out.txt", "/%00index.html", "/index.html%00",
])
def test_nothing_else(site: Path, path: str) -> None:
    response = StaticFiles(str(site)).respond(get(path))
    assert (response.status, response.body) == (404, b"Not Found")


def test_head_and_other_methods(site: Path) -> None:
    static = StaticFiles(str(site))
    head = static.respond(get("/", "HEAD"))
    assert (head.status, head.headers[0], head.body) == (200, ("Content-Type", HTML), b"")
    post = static.respond(get("/", "POST"))
    assert (post.status, post.body) == (405, b"Method Not Allowed")
    assert ("Allow", "GET, HEAD") in post.headers


def test_named_files(site: Path, tmp_path: Path) -> None:
    static = StaticFiles(None, {"/app.js": str(site / "style.css"),
                                "/gone.js": str(tmp_path / "nothing.js")})
    assert static
    assert static.respond(get("/app.js")).body == b"p{}"
    assert static.respond(get("/gone.js")).status == 404
    assert static.respond(get("/index.html")).status == 404  # no directory
    assert not StaticFiles(None)


def test_client_files(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "socket.io.js").write_text("// the bundle")
    (dist / "socket.io.min.js").write_text("//")
    config = Config(client_dist_dir=str(dist), path="/io")
    assert client_files(config) == {"/io/socket.io.js": str(dist / "socket.io.js"),
                                    "/io/socket.io.min.js": str(dist / "socket.io.min.js")}
    assert client_files(Config(client_dist_dir=str(tmp_path))) == {}  # no bundle there
    assert client_files(Config(client_dist_dir=str(dist), serve_client=False)) == {}


async def test_static_files_over_the_wire(site: Path) -> None:
    async with serving(Config(static_dir=str(site), serve_client=False)) as engine:
        assert await engine.exchange(b"GET / HTTP/1.1\r\n\r\n") == answer_bytes(
            "200 OK", b"<html>home</html>", HTML, ("Cache-Control: no-cache",))
        assert await engine.exchange(b"GET /../secret.txt HTTP/1.1\r\n\r\n") == answer_bytes(
            "404 Not Found", b"Not Found", "text/plain; charset=UTF-8")
        assert await engine.exchange(b"DELETE / HTTP/1.1\r\n\r\n") == answer_bytes(
            "405 Method Not Allowed", b"Method Not Allowed", "text/plain; charset=UTF-8",
            ("Allow: GET, HEAD",))


async def test_the_client_bundle_is_served_under_the_engine_path(tmp_path: Path) -> None:
    """As the reference's serveClient: ``<path>socket.io.js`` is a file, not Engine.IO."""
    (tmp_path / "socket.io.js").write_bytes(b"var io;")
    async with serving(Config(client_dist_dir=str(tmp_path))) as engine:
        assert await engine.exchange(http_request("GET", "/socket.io/socket.io.js")) \
            == answer_bytes("200 OK", b"var io;", "application/javascript; charset=UTF-8",
                            ("Cache-Control: no-cache",))
