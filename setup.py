"""The one build step pyproject.toml cannot say: the wheel ships the official JavaScript client,
and the Socket.IO admin UI's page.

The chat demo's page (and any page of an application) loads ``/socket.io/socket.io.js``, which
the server hands out as the reference server does (Config.serve_client). A wheel installed on a
machine without node has no node_modules to take it from, so the build copies the bundle from
the npm package ``socket.io-client`` (pinned by package-lock.json, installed by ``npm ci`` or
scripts/setup.sh) into ``sio_core/client_dist/``, with that package's LICENSE beside it. The
bundle is a build input: it is never committed to the repository. An sdist carries it (see
MANIFEST.in), so a wheel built from the sdist has it too.

The admin UI (``serve --admin-ui``, sio_core.admin.ui) is the ``ui/dist`` folder of the npm
package ``@socket.io/admin-ui``, pinned the same way: the build copies it, without its source
maps, into ``sio_core/admin/ui_dist/``, with that package's LICENSE beside it.

An editable install (``pip install -e .``, what scripts/setup.sh does) copies nothing: the
server finds both in the checkout's node_modules.

With ``SIO_CORE_MYPYC=1`` the typed hot modules (:data:`COMPILED`) are also compiled to C
extensions by mypyc (from mypy; a C compiler and Python's headers needed), which Python imports
before the ``.py`` files beside them: the same code, running about a third fewer instructions
per message (benchmarks/PROFILE.md). Without it the package is pure Python, the same
behaviour. mypy must be importable by the build: ``SIO_CORE_MYPYC=1 pip install
--no-build-isolation .`` in an environment that has it (the dev extra does).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
CLIENT_PACKAGE = ROOT / "node_modules" / "socket.io-client"
#: what sio_core.http.static.client_files serves, and the licence it comes under
BUNDLE = [f"dist/socket.io{kind}.js{suffix}" for kind in ("", ".min", ".esm.min")
          for suffix in ("", ".map")] + ["LICENSE"]
ADMIN_UI_PACKAGE = ROOT / "node_modules" / "@socket.io" / "admin-ui"

#: what ``SIO_CORE_MYPYC=1`` compiles: the modules every message and connection runs through.
#: Not socketio/namespace.py and server.py: their broadcast operators are duck-typed (a
#: parent namespace's operator is no BroadcastOperator), which compiled code refuses.
#: socketio/attributes.py neither: the Python base that gives the compiled sockets a
#: ``__dict__`` and weak references.
COMPILED = [f"sio_core/{name}.py" for name in (
    "protocol/engineio", "protocol/session", "protocol/socketio", "protocol/sid",
    "http/messages", "http/connection",
    "engine/socket", "engine/websocket", "engine/polling", "engine/server",
    "socketio/handlers", "socketio/client", "socketio/broadcast",
    "socketio/adapter", "socketio/socket",
)]


class BuildWithClient(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        missing = [name for name in BUNDLE if not (CLIENT_PACKAGE / name).is_file()]
        if missing:
            raise SystemExit(
                f"the wheel ships the official client from {CLIENT_PACKAGE}, which lacks"
                f" {', '.join(missing)}: run `npm ci` (or `bash scripts/setup.sh`) first")
        target = Path(self.build_lib) / "sio_core" / "client_dist"
        target.mkdir(parents=True, exist_ok=True)
        for name in BUNDLE:
            shutil.copyfile(CLIENT_PACKAGE / name, target / Path(name).name)
        ui = ADMIN_UI_PACKAGE / "ui" / "dist"
        if not (ui / "index.html").is_file() or not (ADMIN_UI_PACKAGE / "LICENSE").is_file():
            raise SystemExit(
                f"the wheel ships the admin UI from {ADMIN_UI_PACKAGE}, which lacks ui/dist or"
                " its LICENSE: run `npm ci` (or `bash scripts/setup.sh`) first")
        target = Path(self.build_lib) / "sio_core" / "admin" / "ui_dist"
        shutil.copytree(ui, target, ignore=shutil.ignore_patterns("*.map"), dirs_exist_ok=True)
        shutil.copyfile(ADMIN_UI_PACKAGE / "LICENSE", target / "LICENSE")


def compiled() -> list[Any]:
    if os.environ.get("SIO_CORE_MYPYC") != "1":
        return []
    from mypyc.build import mypycify

    # unused "type: ignore"s differ with the installed stubs' versions: no reason to fail a build
    return mypycify(["--no-warn-unused-ignores", *COMPILED], opt_level="3")


setup(cmdclass={"build_py": BuildWithClient}, ext_modules=compiled())
