"""Static files: a directory served at "/" (the demo page), plus named files (the official
client bundle, as the reference's ``serveClient`` does).

Paths are resolved and must stay inside the directory (no traversal through "..",
encoded dots, or symlinks pointing out).
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from urllib.parse import unquote

from ..config import Config
from .messages import Request, Response, text_response

_TYPES = {
    ".html": "text/html; charset=UTF-8",
    ".js": "application/javascript; charset=UTF-8",
    ".css": "text/css; charset=UTF-8",
    ".map": "application/json; charset=UTF-8",
    ".svg": "image/svg+xml",
}


#: the official client bundle in an installed wheel (copied there at build time: setup.py)
PACKAGED_CLIENT = Path(__file__).resolve().parent.parent / "client_dist"
_CLIENT_FILES = ("socket.io.js", "socket.io.js.map", "socket.io.min.js", "socket.io.min.js.map",
                 "socket.io.esm.min.js", "socket.io.esm.min.js.map")


def client_files(config: Config) -> dict[str, str]:
    """URL -> file for the official client bundle, when it is installed."""
    if not config.serve_client:
        return {}
    candidates = [Path(config.client_dist_dir)] if config.client_dist_dir else [
        PACKAGED_CLIENT,
        Path.cwd() / "node_modules/socket.io-client/dist",
        Path(__file__).resolve().parent.parent.parent / "node_modules/socket.io-client/dist",
    ]
    for directory in candidates:
        if (directory / "socket.io.js").is_file():
            return {config.path + name: str(directory / name) for name in _CLIENT_FILES
                    if (directory / name).is_file()}
    return {}


class StaticFiles:
    def __init__(self, directory: str | None, files: dict[str, str] | None = None) -> None:
        self.root = Path(directory).resolve() if directory else None
        self.files = {url: Path(path) for url, path in (files or {}).items()}

    def __bool__(self) -> bool:
        return self.root is not None or bool(self.files)

    def resolve(self, url_path: str) -> Path | None:
        if url_path in self.files:
            path = self.files[url_path]
            return path if path.is_file() else None
        if self.root is None:
            return None
        relative = unquote(url_path).lstrip("/")
        if "\x00" in relative:
            return None
        candidate = (self.root / relative).resolve()
        if candidate != self.root and self.root not in candidate.parents:
            return None
        if candidate.is_dir():
            candidate = candidate / "index.html"
        return candidate if candidate.is_file() else None

    def respond(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return text_response(405, "Method Not Allowed", headers=[("Allow", "GET, HEAD")])
        path = self.resolve(request.path)
        if path is None:
            return text_response(404, "Not Found")
        content_type = _TYPES.get(path.suffix) or (
            mimetypes.guess_type(path.name)[0] or "application/octet-stream")
        body = path.read_bytes()
        response = Response(200, [("Content-Type", content_type),
                                  ("Cache-Control", "no-cache")], body)
        if request.method == "HEAD":
            response.body = b""
        return response
